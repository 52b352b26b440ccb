//! Docs that must agree with the code: every crate of the workspace has its
//! row in docs/architecture.md and its line in README's layout, each row
//! names the crates it uses as its Cargo.toml does, and nothing below the
//! command line imports it.

use std::path::Path;

#[test]
fn every_workspace_crate_is_in_the_architecture_doc_and_the_readme_layout() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let read = |name: &str| std::fs::read_to_string(root.join(name)).unwrap();
    let manifest: toml::Value = toml::from_str(&read("Cargo.toml")).unwrap();
    let members = manifest["workspace"]["members"].as_array().unwrap();
    assert!(members.len() >= 9, "{members:?}");
    let (architecture, readme) = (read("docs/architecture.md"), read("README.md"));
    for member in members {
        let member = member.as_str().unwrap();
        assert!(
            architecture.contains(&format!("| `{member}` |")),
            "docs/architecture.md has no row for the crate '{member}'"
        );
        assert!(
            readme.contains(&format!("\n{member}/ ")),
            "README's layout has no line for the crate '{member}'"
        );
    }
}

/// The "uses" column of docs/architecture.md's crate table is each crate's
/// own dependencies among ours, as its Cargo.toml says (the trainer's row
/// says "all of the above").
#[test]
fn the_architecture_doc_says_what_each_crate_uses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let read = |name: &str| std::fs::read_to_string(root.join(name)).unwrap();
    let manifest: toml::Value = toml::from_str(&read("Cargo.toml")).unwrap();
    let members: Vec<String> = manifest["workspace"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    let architecture = read("docs/architecture.md");
    let mut checked = 0;
    for member in members.iter().filter(|m| *m != "trainer") {
        let row = architecture
            .lines()
            .find(|l| l.starts_with(&format!("| `{member}` |")))
            .unwrap();
        let uses = row.trim_end_matches(" |").rsplit(" | ").next().unwrap();
        let words: Vec<&str> = uses.split(|c: char| !c.is_ascii_alphanumeric()).collect();
        let mut said: Vec<&str> = members
            .iter()
            .map(String::as_str)
            .filter(|m| words.contains(m))
            .collect();
        let cargo: toml::Value = toml::from_str(&read(&format!("{member}/Cargo.toml"))).unwrap();
        let mut deps: Vec<&str> = cargo["dependencies"]
            .as_table()
            .unwrap()
            .keys()
            .filter_map(|k| k.strip_prefix("zftrain-"))
            .collect();
        said.sort_unstable();
        deps.sort_unstable();
        assert_eq!(said, deps, "docs/architecture.md's row for '{member}' says it uses {said:?}; its Cargo.toml {deps:?}");
        checked += 1;
    }
    assert!(checked >= 9, "{checked} crates checked");
}

/// The command line sits on top: the library's modules below it
/// (configuration, weights, the training session, benchmarks) never import
/// `cli` or `commands`, as docs/architecture.md says.
#[test]
fn nothing_below_the_command_line_imports_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.clone()];
    let mut checked = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let rel = path
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let top =
            rel == "cli.rs" || rel == "main.rs" || rel == "lib.rs" || rel.starts_with("commands");
        if top || path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for needle in [
            "crate::cli",
            "crate::commands",
            "super::cli",
            "zftrain::cli",
        ] {
            assert!(
                !text.contains(needle),
                "src/{rel} imports the command line ({needle})"
            );
        }
        checked += 1;
    }
    assert!(
        checked >= 20,
        "only {checked} library files found under {}",
        src.display()
    );
}

/// README's paragraph on architecture files names every layer kind the
/// reader takes, and no other.
#[test]
fn the_readme_names_every_layer_kind_of_architecture_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let start = readme
        .find("**Architecture files**")
        .expect("the paragraph");
    let paragraph = &readme[start..start + readme[start..].find("\n\n").unwrap()];
    let list = &paragraph[paragraph.find('(').unwrap()..paragraph.find(", with").unwrap()];
    let named: Vec<&str> = list.split('`').skip(1).step_by(2).collect();
    let kinds: Vec<&str> = zftrain_model::arch_file::KINDS
        .iter()
        .map(|(k, _)| *k)
        .collect();
    assert_eq!(named, kinds, "README: {list}");
}

/// README's paragraph on `metrics.csv` names its columns, in file order.
#[test]
fn the_readme_names_the_columns_of_metrics_csv_in_order() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let start = readme.find("**Metrics as a file**").expect("the paragraph");
    let paragraph = &readme[start..start + readme[start..].find("\n\n").unwrap()];
    let list =
        &paragraph[paragraph.find("the columns").unwrap()..paragraph.find(" (`step` is").unwrap()];
    let named: Vec<&str> = list.split('`').skip(1).step_by(2).collect();
    assert_eq!(
        named,
        zftrain::train::callbacks::metrics_csv::COLUMNS,
        "README: {list}"
    );
}

/// README names the columns of the deconv hook's `edge-agreement.csv` as
/// the hook writes them.
#[test]
fn the_readme_names_the_columns_of_edge_agreement_csv() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md"))
        .unwrap()
        .replace('\n', " ");
    let header = zftrain_hooks::builtin::deconv_grid::AGREEMENT_HEADER.trim_end();
    assert!(
        readme.contains(&format!("`edge-agreement.csv` (`{header}`")),
        "README does not name {header}"
    );
}

/// docs/tensorboard.md lists every tag pattern with the description the
/// event files carry, in the same order.
#[test]
fn the_tensorboard_doc_lists_every_tag_with_its_description() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let doc = std::fs::read_to_string(root.join("docs/tensorboard.md")).unwrap();
    let rows: Vec<(String, String)> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .map(|l| {
            let (tag, rest) = l.split_once("` | ").expect("| `tag` | description |");
            (tag.to_string(), rest.trim_end_matches(" |").to_string())
        })
        .collect();
    let tags: Vec<(String, String)> = zftrain::train::tags::tags()
        .iter()
        .map(|(t, d)| (t.to_string(), d.to_string()))
        .collect();
    // On a new tag, the table to paste into docs/tensorboard.md.
    let table: Vec<String> = tags
        .iter()
        .map(|(t, d)| format!("| `{t}` | {d} |"))
        .collect();
    assert!(
        rows == tags,
        "docs/tensorboard.md's table differs from the tags the code declares; it should read:\n{}",
        table.join("\n")
    );
}

/// README's table of configuration keys is the one the declarations make
/// (`RunConfig::keys_markdown`): every key, its default, doc and range.
#[test]
fn the_readme_config_table_is_the_declared_keys() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let table = zftrain::config::RunConfig::keys_markdown();
    assert!(
        readme.contains(&table),
        "README's table of configuration keys is not the declared one; it should read:\n{table}"
    );
}
