//! Docs that must agree with the code: every crate of the workspace has its
//! row in docs/architecture.md and its line in README's layout.

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
