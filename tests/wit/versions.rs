//! The versioning rule of `keyward:plugin@0.1.x` (docs/plugins.md,
//! "Versions of the contract"): a component built against an earlier
//! published 0.1.x keeps loading when the WIT gains an additive change.
//!
//! `published/0.1.0/plugin.wit` is the WIT as released for 0.1.0 and never
//! edited. Components are built from it here, as any toolchain would (a core
//! module for the world, its WIT embedded, made a component by
//! wit-component), and then:
//! - loaded by this host, whatever `wit/` has become since (the real
//!   linker, typed: `keyward::runtime::check`);
//! - linked against an additively changed 0.1.1 of the current WIT (a new
//!   function in an imported interface, a new interface and world), which
//!   must succeed, and against a breaking one (a function removed), which
//!   must fail, naming what is missing.

use std::path::{Path, PathBuf};

use wit_parser::{Resolve, WorldItem};

fn wit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit")
}

fn published() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/wit/published/0.1.0")
}

/// A component exporting `world` of the WIT package in `dir`.
fn component(dir: &Path, world: &str) -> Vec<u8> {
    let mut resolve = Resolve::default();
    let (package, _) = resolve.push_dir(dir).expect("the WIT parses");
    let world = resolve
        .select_world(&[package], Some(world))
        .expect("the world");
    let mut module = wit_component::dummy_module(
        &resolve,
        world,
        wit_parser::ManglingAndAbi::Legacy(wit_parser::LiftLowerAbi::Sync),
    );
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
        false,
    )
    .expect("metadata");
    wit_component::ComponentEncoder::default()
        .module(&module)
        .expect("module")
        .validate(true)
        .encode()
        .expect("the component encodes")
}

/// The current WIT as 0.1.1 with `edit` applied, written to a folder.
fn variant(edit: impl FnOnce(String) -> String) -> tempfile::TempDir {
    let text = std::fs::read_to_string(wit_dir().join("plugin.wit")).expect("wit/plugin.wit");
    let text = edit(text.replace("@0.1.0", "@0.1.1"));
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("plugin.wit"), text).expect("write");
    dir
}

/// Instantiates (pre) `component` with a linker that defines exactly the
/// functions the `world` of the WIT in `dir` imports, under their
/// versioned names, as the host's generated bindings would.
fn link(component_bytes: &[u8], dir: &Path, world: &str) -> Result<(), String> {
    use wasmtime::component::{Component, Linker};
    let mut resolve = Resolve::default();
    let (package, _) = resolve.push_dir(dir).expect("the WIT parses");
    let world = resolve
        .select_world(&[package], Some(world))
        .expect("the world");
    let engine = wasmtime::Engine::default();
    let mut linker = Linker::<()>::new(&engine);
    for (key, item) in &resolve.worlds[world].imports {
        let WorldItem::Interface { id, .. } = item else {
            continue;
        };
        let name = resolve.name_world_key(key);
        let mut instance = linker.instance(&name).map_err(|e| format!("{e:?}"))?;
        for func in resolve.interfaces[*id].functions.keys() {
            instance
                .func_new(func, |_, _, _, _| Ok(()))
                .map_err(|e| format!("{e:?}"))?;
        }
    }
    let component = Component::new(&engine, component_bytes).map_err(|e| format!("{e:?}"))?;
    linker
        .instantiate_pre(&component)
        .map(drop)
        .map_err(|e| format!("{e:?}"))
}

#[test]
fn the_published_0_1_0_is_still_a_prefix_of_wit() {
    // Additive only: every line of the published package's interfaces is
    // still in the current one (modulo the version), or the change needed
    // 0.2. A cheap guard; the tests below are the proof.
    let old = std::fs::read_to_string(published().join("plugin.wit")).expect("published");
    let now = std::fs::read_to_string(wit_dir().join("plugin.wit")).expect("wit");
    let version = |t: &str| {
        t.lines()
            .find_map(|l| l.strip_prefix("package keyward:plugin@"))
            .map(|v| v.trim_end_matches(';').to_owned())
            .expect("a package line")
    };
    assert_eq!(version(&old), "0.1.0");
    assert!(
        version(&now).starts_with("0.1."),
        "wit/ left the 0.1 line: published/ needs its 0.2 counterpart and docs/plugins.md a note"
    );
    for line in old.lines().map(str::trim) {
        if line.contains(": func(") {
            assert!(
                now.lines().any(|l| l.trim() == line),
                "wit/ changed or removed `{line}`, which 0.1.0 components use"
            );
        }
    }
}

#[test]
fn components_built_for_the_published_0_1_0_load_in_this_host() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (world, kind) in [("forge-adapter", "forge"), ("migrator", "migrator")] {
        let wasm = dir.path().join(format!("{kind}.wasm"));
        std::fs::write(&wasm, component(&published(), world)).expect("write");
        let report = keyward::runtime::check(&wasm, None)
            .unwrap_or_else(|e| panic!("a 0.1.0 {world} component is refused: {e:#}"));
        assert_eq!(report.worlds, [world], "{:?}", report.imports);
    }
}

#[test]
fn an_additive_change_keeps_0_1_0_components_linking_and_a_removal_does_not() {
    let additive = variant(|text| {
        let text = text.replacen(
            "interface log {",
            "interface log {\n    /// Added in 0.1.1.\n    flush: func();\n",
            1,
        );
        format!(
            "{text}\n/// Added in 0.1.1.\ninterface clock {{\n    now: func() -> u64;\n}}\n\n\
             world forge-adapter-next {{\n    include forge-adapter;\n    import clock;\n}}\n"
        )
    });
    let removal = variant(|text| {
        let start = text.find("    emit: func(").expect("log.emit");
        let end = start + text[start..].find(';').expect("end of emit") + 1;
        format!("{}{}", &text[..start], &text[end..])
    });
    for world in ["forge-adapter", "migrator"] {
        let old = component(&published(), world);
        link(&old, additive.path(), world)
            .unwrap_or_else(|e| panic!("0.1.0 {world} against an additive 0.1.1: {e}"));
        let err = link(&old, removal.path(), world).expect_err("a removed function breaks");
        assert!(err.contains("emit"), "{err}");
    }
    let old = component(&published(), "forge-adapter");
    link(&old, additive.path(), "forge-adapter-next").expect("the new world takes old components");
}
