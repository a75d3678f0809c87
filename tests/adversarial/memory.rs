//! The memory limit holds per instance: a component with two memories
//! cannot grow each up to the limit. The hostile component is built here
//! from WebAssembly text (tests/fixtures/plugins/two-memories) and the WIT
//! in wit/, as any component toolchain would.

use std::collections::HashMap;

use keyward::runtime::{BaseUrl, PluginError};

use crate::fixtures::root;
use crate::harness::{reference, Sandbox};

/// The fixture made into one `forge-adapter` component: the adapter's core
/// module with its WIT (wit-component), the hog from its text, and an outer
/// component that instantiates the hog, hands it to the adapter and exports
/// the adapter's `forge`.
fn two_memories() -> (Vec<u8>, String) {
    use wasm_encoder::{
        Component, ComponentAliasSection, ComponentExportKind, ComponentExportSection,
        ComponentImportSection, ComponentInstanceSection, ComponentSectionId, ComponentTypeRef,
        ComponentTypeSection, ComponentValType, InstanceType, PrimitiveValType, RawSection,
        TypeBounds,
    };
    let dir = root().join("tests/fixtures/plugins/two-memories");
    let hog = wat::parse_file(dir.join("hog.wat")).expect("the hog assembles");
    let mut module = wat::parse_file(dir.join("forge.wat")).expect("the adapter assembles");
    let mut resolve = wit_parser::Resolve::default();
    resolve
        .push_dir(root().join("wit"))
        .expect("the WIT parses");
    let package = resolve
        .push_file(dir.join("hog.wit"))
        .expect("hog.wit parses");
    let world = resolve
        .select_world(&[package], Some("adapter"))
        .expect("the world");
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
        // The module's names are the canonical ABI's `cm32p2|…` ones.
        true,
    )
    .expect("metadata");
    let adapter = wit_component::ComponentEncoder::default()
        .module(&module)
        .expect("module")
        .validate(true)
        .encode()
        .expect("the adapter encodes");

    const FORGE: &str = "keyward:plugin/forge@0.1.0";
    const TYPES: &str = "keyward:plugin/types@0.1.0";
    const HOG: &str = "test:hog/hog";
    let mut outer = Component::new();
    // Type 0: the `types` interface the adapter's `forge` uses, imported
    // from the host as every plugin does (instance 0).
    let mut types = InstanceType::new();
    let string = Some(ComponentValType::Primitive(PrimitiveValType::String));
    types.ty().defined_type().variant([
        ("denied", string),
        ("not-found", string),
        ("invalid", string),
        ("limit", string),
        ("upstream", string),
    ]);
    types.export("error", ComponentTypeRef::Type(TypeBounds::Eq(0)));
    let mut section = ComponentTypeSection::new();
    section.instance(&types);
    outer.section(&section);
    let mut imports = ComponentImportSection::new();
    imports.import(TYPES, ComponentTypeRef::Instance(0));
    outer.section(&imports);
    for nested in [&hog, &adapter] {
        // Components 0 (the hog) and 1 (the adapter), as they are.
        outer.section(&RawSection {
            id: ComponentSectionId::Component as u8,
            data: nested,
        });
    }
    let mut instances = ComponentInstanceSection::new();
    instances.instantiate(0, Vec::<(&str, ComponentExportKind, u32)>::new()); // instance 1
    outer.section(&instances);
    let mut alias = ComponentAliasSection::new();
    alias.alias(wasm_encoder::Alias::InstanceExport {
        instance: 1,
        kind: ComponentExportKind::Instance,
        name: HOG,
    }); // instance 2
    outer.section(&alias);
    let mut instances = ComponentInstanceSection::new();
    instances.instantiate(
        1,
        [
            (HOG, ComponentExportKind::Instance, 2),
            (TYPES, ComponentExportKind::Instance, 0),
        ],
    ); // instance 3
    outer.section(&instances);
    let mut alias = ComponentAliasSection::new();
    alias.alias(wasm_encoder::Alias::InstanceExport {
        instance: 3,
        kind: ComponentExportKind::Instance,
        name: FORGE,
    }); // instance 4
    outer.section(&alias);
    let mut exports = ComponentExportSection::new();
    exports.export(FORGE, ComponentExportKind::Instance, 4, None);
    outer.section(&exports);
    let manifest = std::fs::read_to_string(dir.join("plugin.toml")).expect("manifest");
    (outer.finish(), manifest)
}

#[tokio::test]
async fn two_memories_cannot_each_grow_to_the_limit() {
    let sandbox = Sandbox::new(&[], |_, m| m, HashMap::new()).await;
    sandbox
        .secret("FORGE_TOKEN", b"fjt_memory-test-token")
        .await;
    let (wasm, manifest) = two_memories();
    sandbox.drop_in("two-memories", &wasm, &manifest).await;
    let base = BaseUrl::parse("http://127.0.0.1:9").expect("base URL");
    let err = sandbox
        .rt
        .forge_whoami(
            &sandbox.vault,
            "two-memories",
            &base,
            &reference("FORGE_TOKEN"),
        )
        .await
        .expect_err("stopped");
    assert!(
        matches!(err, PluginError::MemoryLimit { limit_mib: 64, .. }),
        "{err}"
    );
}
