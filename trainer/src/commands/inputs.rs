//! The images a command is given: files, folders (every image under them,
//! sorted) and glob patterns (`*` and `?` in any component, for patterns
//! the shell did not expand, as when quoted). A pattern that matches
//! nothing and a path that does not exist are errors that name them.

use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Result};

/// Every image `inputs` name, in the order given (a folder's and a
/// pattern's sorted).
pub fn expand(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for input in inputs {
        let text = input.to_string_lossy();
        if !input.exists() && (text.contains('*') || text.contains('?')) {
            let matched = glob(input)?;
            if matched.is_empty() {
                bail!("{}: no file matches this pattern", input.display());
            }
            for m in matched {
                push(&m, &mut out)?;
            }
            continue;
        }
        if !input.exists() {
            bail!("{}: no such file or folder", input.display());
        }
        push(input, &mut out)?;
    }
    if out.is_empty() {
        bail!("no images given (files, folders or patterns)");
    }
    Ok(out)
}

/// A file as is, a folder as every image under it.
fn push(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if path.is_dir() {
        let found = zftrain_data::dataset::list_images(path)?;
        if found.is_empty() {
            bail!("{}: no JPEG or PNG images in this folder", path.display());
        }
        out.extend(found);
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

/// The existing paths that `pattern` matches, sorted per component.
fn glob(pattern: &Path) -> Result<Vec<PathBuf>> {
    let mut current = vec![PathBuf::new()];
    for component in pattern.components() {
        let part = match component {
            Component::Normal(p) => p.to_string_lossy().into_owned(),
            other => {
                current.iter_mut().for_each(|c| c.push(other.as_os_str()));
                continue;
            }
        };
        if !part.contains('*') && !part.contains('?') {
            current.iter_mut().for_each(|c| c.push(&part));
            continue;
        }
        let mut next = Vec::new();
        for dir in &current {
            let listed = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            let Ok(entries) = std::fs::read_dir(listed) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.') && matches(&part, n))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| dir.join(n)));
        }
        current = next;
    }
    Ok(current.into_iter().filter(|p| p.exists()).collect())
}

/// Whether `name` matches `pattern` (`*`: any run of characters, `?`: one).
fn matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_runs_and_single_characters() {
        assert!(matches("*.jpg", "a.jpg"));
        assert!(matches("*.jpg", ".jpg"));
        assert!(!matches("*.jpg", "a.png"));
        assert!(matches("0000?.jpg", "00001.jpg"));
        assert!(!matches("0000?.jpg", "000012.jpg"));
        assert!(matches("a*b*c", "aXbYYc"));
        assert!(!matches("a*b*c", "aXbYY"));
        assert!(matches("*", "anything"));
    }

    #[test]
    fn files_folders_and_patterns_expand_in_order_and_nothing_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        for (dir, name) in [
            ("x", "b.jpg"),
            ("x", "a.png"),
            ("y", "c.jpg"),
            ("y", "notes.txt"),
        ] {
            std::fs::create_dir_all(d.path().join(dir)).unwrap();
            std::fs::write(d.path().join(dir).join(name), b"").unwrap();
        }
        let got = expand(&[d.path().join("y/c.jpg"), d.path().join("x")]).unwrap();
        assert_eq!(
            got,
            vec![
                d.path().join("y/c.jpg"),
                d.path().join("x/a.png"),
                d.path().join("x/b.jpg")
            ]
        );
        let got = expand(&[d.path().join("*/*.jpg")]).unwrap();
        assert_eq!(
            got,
            vec![d.path().join("x/b.jpg"), d.path().join("y/c.jpg")]
        );
        let err = expand(&[d.path().join("*/*.gif")]).unwrap_err().to_string();
        assert!(
            err.contains("*.gif") && err.contains("no file matches"),
            "{err}"
        );
        let err = expand(&[d.path().join("gone.jpg")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("gone.jpg") && err.contains("no such"), "{err}");
    }
}
