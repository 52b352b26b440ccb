//! Where a configuration value came from, so that an error names it: the
//! file with its line, the `--set`, or the flag. [`RunConfig::load_sourced`]
//! reads the file alone first (an error there gets TOML's line and column),
//! then applies the overrides one at a time (an override that breaks the
//! configuration is named); [`Sources::blame`] adds the origin of a key to
//! a later error about it ("config key 'optim.lr': ... (from --lr -1)"),
//! finding the key as data ([`key_of`]: the error's [`KeyError`]), not in
//! its words.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

use zftrain_model::ModelError;
use zftrain_parallel::ParallelError;

use super::{parse_value, set_value, KeyError, RunConfig};

/// One override: a key, its value, and what the user typed for it (`--set
/// optim.lr=0.1`, or a flag such as `--lr 0.1`). A flag's value is typed
/// as it was parsed (never printed and parsed again); a `--set`'s text is
/// parsed once, as TOML or else as a bare string.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The dotted key it sets (`section.key`).
    key: String,
    /// Its value (`None`: a `--set` without `=`, refused when applied).
    value: Option<toml::Value>,
    /// What to call it in an error.
    pub origin: String,
}

impl Override {
    /// An override the user typed as `--set SET` (`key=value`).
    pub fn set(set: &str) -> Override {
        let (key, value) = match set.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), Some(parse_value(v.trim()))),
            None => (set.trim().to_string(), None),
        };
        Override {
            key,
            value,
            origin: format!("--set {set}"),
        }
    }

    /// An override that flag `origin` stands for: `key` = `value`, typed.
    pub fn flag(key: &str, value: impl Into<toml::Value>, origin: impl Into<String>) -> Override {
        Override {
            key: key.to_string(),
            value: Some(value.into()),
            origin: origin.into(),
        }
    }

    /// The dotted key it sets.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Its value (`None` for a `--set` without `=`).
    pub fn value(&self) -> Option<&toml::Value> {
        self.value.as_ref()
    }
}

/// Where the values of a loaded configuration came from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    file: Option<(PathBuf, String)>,
    overrides: Vec<Override>,
}

impl Sources {
    /// `err` with the origin of the config key it is about ([`key_of`]),
    /// when that key was set by an override or written in the file.
    pub fn blame(&self, err: anyhow::Error) -> anyhow::Error {
        let Some(key) = key_of(&err) else {
            return err;
        };
        match self.origin(&key) {
            Some(origin) => anyhow::anyhow!("{err:#} (from {origin})"),
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

/// The configuration key an error is about, as data: a [`KeyError`]
/// anywhere in its chain (the engine's included), or a layer name that a
/// key gave the model ([`ModelError::UnknownLayer`]).
pub fn key_of(err: &anyhow::Error) -> Option<String> {
    if let Some(k) = err.downcast_ref::<KeyError>() {
        return Some(k.key.clone());
    }
    err.chain().find_map(|e| {
        if let Some(k) = e.downcast_ref::<KeyError>() {
            return Some(k.key.clone());
        }
        if let Some(ParallelError::Key(k)) = e.downcast_ref::<ParallelError>() {
            return Some(k.key.clone());
        }
        match e.downcast_ref::<ModelError>() {
            Some(ModelError::UnknownLayer { key, .. }) => Some(key.clone()),
            _ => None,
        }
    })
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
            let value = o
                .value()
                .with_context(|| format!("{}: expected key=value", o.origin))?;
            set_value(&mut table, o.key(), value.clone()).with_context(|| o.origin.clone())?;
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
            &[Override::flag("train.epochs", -3i64, "--epochs -3")],
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
            Override::flag("optim.lr", -2.0, "--lr -2"),
        ];
        let (config, sources) = RunConfig::load_sourced(Some(&path), &sets).unwrap();
        let err = sources.blame(config.validate().unwrap_err()).to_string();
        assert!(err.ends_with("(from --lr -2)"), "{err}");
    }

    #[test]
    fn the_key_is_found_as_data_not_in_an_errors_words() {
        let (_d, path) = file("[optim]\nlr = 0.1\n[model]\narch = \"zfnet\"\n");
        let (_, sources) = RunConfig::load_sourced(Some(&path), &[]).unwrap();
        // Words that look like a key error are not one: left as they are.
        let words = anyhow::anyhow!("config key 'optim.lr': made up");
        assert_eq!(
            sources.blame(words).to_string(),
            "config key 'optim.lr': made up"
        );
        // A key error as the context of another keeps the cause.
        let cause = std::io::Error::other("no such file");
        let err = anyhow::Error::new(cause).context(KeyError::about("model.arch"));
        let err = format!("{:#}", sources.blame(err));
        assert_eq!(
            err,
            "config key 'model.arch': no such file (from run.toml line 4)"
                .replace("run.toml", &path.display().to_string())
        );
        // The engine's key errors are found through its error type.
        let engine = ParallelError::from(KeyError::new("optim.lr", "refused"));
        let err = sources.blame(anyhow::Error::new(engine)).to_string();
        assert!(err.ends_with("line 2)"), "{err}");
    }

    #[test]
    fn flags_are_typed_values_and_a_set_is_parsed_once() {
        // A flag's string stays a string whatever it looks like.
        let sets = [
            Override::flag("name", "true", "--name true"),
            Override::flag("runs_dir", "[1, 2]", "--runs-dir [1, 2]"),
            Override::flag("train.epochs", 3i64, "--epochs 3"),
            Override::set("optim.lr=0.5"),
            Override::set("model.arch=zfnet-seed"),
        ];
        let (c, _) = RunConfig::load_sourced(None, &sets).unwrap();
        assert_eq!(
            (c.name.as_str(), c.runs_dir.to_str()),
            ("true", Some("[1, 2]"))
        );
        assert_eq!((c.train.epochs, c.optim.lr), (3, 0.5));
        assert_eq!(c.model.arch, zftrain_model::ArchName::ZfnetSeed);
        let err = RunConfig::load_sourced(None, &[Override::set("optim.lr")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--set optim.lr: expected key=value"), "{err}");
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
