//! The WIT package in `wit/` parses, and has the shape the host relies on.

mod versions;

use std::path::Path;

use wit_parser::{Resolve, WorldItem, WorldKey};

fn resolve() -> (Resolve, wit_parser::PackageId) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
    let mut resolve = Resolve::new();
    let (package, _) = resolve.push_dir(&dir).expect("wit/ parses and resolves");
    (resolve, package)
}

fn names(resolve: &Resolve, items: &wit_parser::IndexMap<WorldKey, WorldItem>) -> Vec<String> {
    let mut names: Vec<String> = items
        .iter()
        .filter_map(|(key, item)| match item {
            WorldItem::Interface { id, .. } => Some(resolve.interfaces[*id].name.clone()?),
            _ => {
                let _ = key;
                None
            }
        })
        .collect();
    names.sort();
    names
}

#[test]
fn the_package_is_keyward_plugin_0_1_0() {
    let (resolve, package) = resolve();
    assert_eq!(
        resolve.packages[package].name.to_string(),
        "keyward:plugin@0.1.0"
    );
}

#[test]
fn both_worlds_import_the_host_interfaces_and_export_their_own() {
    let (resolve, package) = resolve();
    for (world, export) in [("forge-adapter", "forge"), ("migrator", "migration")] {
        let id = resolve
            .select_world(&[package], Some(world))
            .unwrap_or_else(|e| panic!("world {world}: {e}"));
        let w = &resolve.worlds[id];
        let imports = names(&resolve, &w.imports);
        for needed in ["log", "outbound", "secrets"] {
            assert!(
                imports.contains(&needed.to_owned()),
                "{world} imports {imports:?}"
            );
        }
        assert!(
            !imports.contains(&"forge".to_owned()) && !imports.contains(&"migration".to_owned())
        );
        assert_eq!(names(&resolve, &w.exports), [export], "{world}");
    }
}

#[test]
fn host_functions_are_the_documented_ones() {
    let (resolve, package) = resolve();
    let iface = |name: &str| {
        let id = resolve.packages[package].interfaces[name];
        let mut f: Vec<String> = resolve.interfaces[id].functions.keys().cloned().collect();
        f.sort();
        f
    };
    assert_eq!(iface("secrets"), ["exists", "reveal"]);
    assert_eq!(iface("outbound"), ["fetch"]);
    assert_eq!(iface("log"), ["emit"]);
    assert_eq!(
        iface("forge"),
        [
            "authorize-url",
            "exchange-code",
            "info",
            "list-repositories",
            "refresh",
            "revoke",
            "whoami"
        ]
    );
    assert_eq!(
        iface("migration"),
        ["discover", "info", "plan-renames", "read", "retire"]
    );
}
