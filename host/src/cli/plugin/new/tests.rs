//! The templates render, names and folders are checked, and the pinned
//! toolchain versions are the repository's.

use super::*;

const KINDS: [Kind; 2] = [Kind::Forge, Kind::Migrator];
const LANGS: [Lang; 3] = [Lang::Rust, Lang::Python, Lang::Js];

#[test]
fn every_template_renders_with_no_placeholder_left() {
    for kind in KINDS {
        for lang in LANGS {
            let files = project("my-plugin", kind, lang).expect("renders");
            for f in &files {
                assert!(!f.text.contains("{{"), "{kind:?} {lang:?} {}", f.path);
            }
            let manifest = files
                .iter()
                .find(|f| f.path == "my-plugin.toml")
                .expect("a manifest named like the plugin");
            let parsed = crate::runtime::Manifest::parse(&manifest.text, "my-plugin")
                .expect("the manifest parses");
            assert_eq!(parsed.kind.world(), files_world(kind));
            assert!(files.iter().any(|f| f.path == "build" && f.executable));
        }
    }
}

fn files_world(kind: Kind) -> &'static str {
    match kind {
        Kind::Forge => "forge-adapter",
        Kind::Migrator => "migrator",
    }
}

#[test]
fn bad_names_are_refused_with_the_rule() {
    for bad in ["", "../x", "x/y", "My", "-x", "a b", "é", &"a".repeat(65)] {
        let err = project(bad, Kind::Forge, Lang::Python).expect_err(bad);
        assert!(err.to_string().contains("a-z 0-9 - _"), "{err}");
    }
    let err = project("test", Kind::Forge, Lang::Rust).expect_err("reserved");
    assert!(err.to_string().contains("reserves"), "{err}");
    project("test", Kind::Forge, Lang::Js).expect("fine outside Rust");
}

#[test]
fn pinned_versions_match_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let toolchain =
        std::fs::read_to_string(root.join("rust-toolchain.toml")).expect("rust-toolchain");
    assert!(
        toolchain.contains(&format!("channel = \"{RUST_CHANNEL}\"")),
        "{toolchain}"
    );
    let py = std::fs::read_to_string(root.join("examples/python-plugin/build")).expect("py");
    assert!(
        py.contains(&format!(
            "COMPONENTIZE_PY_VERSION={COMPONENTIZE_PY_VERSION}"
        )),
        "examples/python-plugin/build pins another componentize-py"
    );
    let js = std::fs::read_to_string(root.join("scripts/componentize-js")).expect("js");
    assert!(
        js.contains(&format!(
            "COMPONENTIZE_JS_VERSION={COMPONENTIZE_JS_VERSION}"
        )),
        "scripts/componentize-js pins another componentize-js"
    );
}

#[test]
fn an_existing_non_empty_dir_or_a_file_is_never_written_into() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = project("x", Kind::Forge, Lang::Rust).expect("renders");
    std::fs::write(dir.path().join("mine.txt"), "keep").expect("write");
    let err = write_project(dir.path(), &files).expect_err("not empty");
    assert!(err.to_string().contains("not empty"), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("ls").count(),
        1,
        "nothing written"
    );
    let err = write_project(&dir.path().join("mine.txt"), &files).expect_err("a file");
    assert!(err.to_string().contains("not a folder"), "{err}");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    write_project(&empty, &files).expect("an empty folder is fine");
    write_project(&dir.path().join("new/nested"), &files).expect("a new one too");
}
