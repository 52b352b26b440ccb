//! Where a configuration value came from, so that an error names it: the
//! file with its line, the `--set`, or the flag. [`RunConfig::load_sourced`]
//! reads the file alone first (an error there gets TOML's line and column),
//! then applies the overrides one at a time (an override that breaks the
//! configuration is named); [`Sources::blame`] adds the origin of a key to
//! a later error about it ("config key 'optim.lr': ... (from --lr -1)").

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

use super::{set_key, RunConfig};

/// One override: `key=value`, and what the user typed for it (`--set
/// optim.lr=0.1`, or a flag such as `--lr 0.1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// `section.key=value`.
    pub set: String,
    /// What to call it in an error.
    pub origin: String,
}

impl Override {
    /// An override the user typed as `--set SET`.
    pub fn set(set: &str) -> Override {
        Override {
            set: set.to_string(),
            origin: format!("--set {set}"),
        }
    }

    /// An override that flag `origin` stands for.
    pub fn flag(set: String, origin: impl Into<String>) -> Override {
        Override {
            set,
            origin: origin.into(),
        }
    }

    /// The dotted key it sets.
    pub fn key(&self) -> &str {
        self.set.split_once('=').map_or("", |(k, _)| k.trim())
    }
}

/// Where the values of a loaded configuration came from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    file: Option<(PathBuf, String)>,
    overrides: Vec<Override>,
}

impl Sources {
    /// `err` with the origin of the config key it names, when it names one
    /// ("config key 'K'") and that key was set by an override or written in
    /// the file.
    pub fn blame(&self, err: anyhow::Error) -> anyhow::Error {
        let text = err.to_string();
        let Some(key) = text
            .split_once("config key '")
            .and_then(|(_, rest)| rest.split_once('\''))
            .map(|(k, _)| k.to_string())
        else {
            return err;
        };
        match self.origin(&key) {
            Some(origin) => anyhow::anyhow!("{text} (from {origin})"),
            None => err,
        }
    }

    /// The last override that set `key` (or a section or item above or
    /// below it), else the file's line that sets it.
    pub fn origin(&self, key: &str) -> Option<String> {
        let related = |k: &str| {
            k == key
                || key.starts_with(&format!("{k}."))
                || key.starts_with(&format!("{k}["))
                || k.starts_with(&format!("{key}."))
        };
        if let Some(o) = self.overrides.iter().rev().find(|o| related(o.key())) {
            return Some(o.origin.clone());
        }
        let (path, text) = self.file.as_ref()?;
        line_of(text, key).map(|n| format!("{} line {n}", path.display()))
    }
}

/// The line (1-based) of `text` that sets dotted `key` (`optim.lr`: the
/// `lr = ...` line under `[optim]`; top-level keys before any table).
pub fn line_of(text: &str, key: &str) -> Option<usize> {
    let key = key.split('[').next().unwrap_or(key);
    let (section, name) = match key.rsplit_once('.') {
        Some((s, n)) => (s, n),
        None => ("", key),
    };
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(header) = t.strip_prefix('[') {
            current = header
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            continue;
        }
        let Some((k, _)) = t.split_once('=') else {
            continue;
        };
        let k = k.trim().trim_matches('"');
        if current == section && k == name {
            return Some(i + 1);
        }
        // `[optim]` + `lr_mult.fc8 = 2` or a top-level `optim.lr = 1`.
        let full = match current.is_empty() {
            true => k.to_string(),
            false => format!("{current}.{k}"),
        };
        if full == key {
            return Some(i + 1);
        }
    }
    None
}

impl RunConfig {
    /// [`RunConfig::load`] with each override's origin: an error names the
    /// file and line, or the `--set` or flag, that caused it. Returns the
    /// sources for [`Sources::blame`] on later checks.
    pub fn load_sourced(
        path: Option<&Path>,
        overrides: &[Override],
    ) -> Result<(RunConfig, Sources)> {
        let (mut table, file) = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading config {}", p.display()))?;
                // The file alone, with TOML's line and column on an error.
                toml::from_str::<RunConfig>(&text).map_err(|e| {
                    anyhow::anyhow!("config {}: {}", p.display(), e.to_string().trim_end())
                })?;
                let table = text
                    .parse::<toml::Table>()
                    .with_context(|| format!("config {} is not valid TOML", p.display()))?;
                (table, Some((p.to_path_buf(), text)))
            }
            None => (toml::Table::new(), None),
        };
        for o in overrides {
            let (k, v) = o
                .set
                .split_once('=')
                .with_context(|| format!("{}: expected key=value", o.origin))?;
            set_key(&mut table, k.trim(), v.trim()).with_context(|| o.origin.clone())?;
            RunConfig::deserialize(toml::Value::Table(table.clone()))
                .map_err(|e| anyhow::anyhow!("{}: {}", o.origin, e.to_string().trim_end()))?;
        }
        let config = RunConfig::deserialize(toml::Value::Table(table))
            .map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))?;
        Ok((
            config,
            Sources {
                file,
                overrides: overrides.to_vec(),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn a_bad_value_in_a_file_is_named_with_its_line() {
        let (_d, path) = file("name = \"x\"\n\n[optim]\nmomentum = 0.9\nlr = \"fast\"\n");
        let err = RunConfig::load_sourced(Some(&path), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("run.toml") && err.contains("line 5"), "{err}");
    }

    #[test]
    fn a_bad_set_is_named_not_the_file() {
        let (_d, path) = file("[optim]\nlr = 0.1\n");
        let err = RunConfig::load_sourced(Some(&path), &[Override::set("optim.lr=abc")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--set optim.lr=abc:"), "{err}");
        assert!(!err.contains("run.toml"), "{err}");
        let err = RunConfig::load_sourced(
            None,
            &[Override::flag("train.epochs=-3".into(), "--epochs -3")],
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("--epochs -3:"), "{err}");
    }

    #[test]
    fn a_later_check_is_blamed_on_the_last_source_of_its_key() {
        let (_d, path) = file("name = \"x\"\n[optim]\nmomentum = 0.9\nlr = -1.0\n");
        let (config, sources) = RunConfig::load_sourced(Some(&path), &[]).unwrap();
        let err = sources.blame(config.validate().unwrap_err()).to_string();
        assert!(
            err.contains("config key 'optim.lr'") && err.ends_with("run.toml line 4)"),
            "{err}"
        );
        let sets = [
            Override::set("optim.lr=0.5"),
            Override::flag("optim.lr=-2.0".into(), "--lr -2"),
        ];
        let (config, sources) = RunConfig::load_sourced(Some(&path), &sets).unwrap();
        let err = sources.blame(config.validate().unwrap_err()).to_string();
        assert!(err.ends_with("(from --lr -2)"), "{err}");
    }

    #[test]
    fn lines_are_found_under_their_section_and_as_dotted_keys() {
        let text = "seed = 1\n[model]\narch = \"zfnet\"\n[optim]\nlr = 0.1\nlr_mult.fc8 = 2\n[[hooks]]\nkind = \"deconv\"\n";
        assert_eq!(line_of(text, "seed"), Some(1));
        assert_eq!(line_of(text, "model.arch"), Some(3));
        assert_eq!(line_of(text, "optim.lr"), Some(5));
        assert_eq!(line_of(text, "optim.lr_mult.fc8"), Some(6));
        assert_eq!(line_of(text, "hooks[0].kind"), None);
        assert_eq!(line_of(text, "data.train"), None);
    }
}
