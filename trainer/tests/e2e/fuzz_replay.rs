//! The fuzzing seeds and every input that ever made a fuzz target fail
//! (`fuzz/seeds/<target>`, `fuzz/regressions/<target>`), replayed through
//! the same parsers and checks as the targets in `fuzz/fuzz_targets/`.

use std::path::{Path, PathBuf};

use zftrain::config::RunConfig;
use zftrain_checkpoints::Manifest;
use zftrain_tensorboard::record::{read_record, write_record};

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut out = Vec::new();
    for dir in ["seeds", "regressions"] {
        for e in std::fs::read_dir(root.join(dir).join(target))
            .into_iter()
            .flatten()
        {
            let p = e.unwrap().path();
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    assert!(
        !out.is_empty(),
        "no inputs for {target} in {}",
        root.display()
    );
    out
}

#[test]
fn pack_inputs_are_refused_or_lie_inside_the_file() {
    let mut accepted = 0;
    for (path, bytes) in inputs("pack_index") {
        match zftrain_data::pack::parse_layout(&bytes) {
            Ok((entries, classes)) => {
                accepted += 1;
                for e in &entries {
                    let inside = (e.offset + e.len) as usize <= bytes.len();
                    assert!(inside && e.label < classes.len(), "{}", path.display());
                }
            }
            Err(m) => assert!(!m.is_empty()),
        }
    }
    assert!(accepted >= 1, "the valid seed pack was refused");
}

#[test]
fn record_inputs_round_trip() {
    for (path, bytes) in inputs("tb_record") {
        let mut framed = Vec::new();
        write_record(&mut framed, &bytes).unwrap();
        let back = read_record(&mut framed.as_slice()).unwrap();
        assert_eq!(back.as_deref(), Some(&bytes[..]), "{}", path.display());
        let mut raw = bytes.as_slice();
        while let Ok(Some(_)) = read_record(&mut raw) {}
    }
}

#[test]
fn manifest_inputs_name_only_plain_files_or_are_refused_by_name() {
    let mut refused = 0;
    for (path, bytes) in inputs("manifest") {
        match Manifest::parse(&bytes, &path) {
            Ok(m) => assert!(
                m.files.keys().all(|n| !n.contains('/')),
                "{}",
                path.display()
            ),
            Err(e) => {
                assert!(e.to_string().contains(&*path.to_string_lossy()));
                refused += 1;
            }
        }
    }
    assert!(refused >= 1, "the escaping seed manifest was accepted");
}

#[test]
fn config_inputs_parse_and_validate_without_a_panic() {
    let mut refused = 0;
    for (path, bytes) in inputs("config") {
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        let what = path.display().to_string();
        match RunConfig::from_toml(text, &what) {
            Ok(mut c) => {
                c.data.train = std::env::temp_dir();
                c.data.val = std::env::temp_dir();
                refused += c.validate().is_err() as usize;
            }
            Err(e) => {
                assert!(format!("{e:#}").contains(&what));
                refused += 1;
            }
        }
    }
    assert!(refused >= 2, "the hostile seed configs were accepted");
}
