//! Bindings generated from the crate's own copy of the WIT package
//! (`sdk/wit/plugin.wit`, `keyward:plugin@0.1.0`), byte-identical to the
//! repository's `wit/` (a test keeps it so). The copy travels with the crate,
//! so a plugin that depends on the SDK by version or git URL builds anywhere.
//!
//! Hidden from the docs: plugin authors use the re-exports at the crate root.
//! It is `pub` only because the export macros, which expand inside the plugin
//! crate, name paths in here.
//!
//! wit-bindgen's output is unsafe by nature (it lifts and lowers values across
//! the canonical ABI with raw pointers) and unwraps UTF-8 in debug builds, so
//! the workspace's `unsafe_code` and `unwrap_used` lints are allowed here and
//! nowhere else in the SDK.
#![allow(unsafe_code, clippy::unwrap_used, missing_docs)]

/// The `forge-adapter` world. It owns the imported host interfaces (`types`,
/// `secrets`, `outbound`, `log`); the `migrator` world reuses them, so both
/// worlds share one `Error` type.
pub mod forge {
    wit_bindgen::generate!({
        world: "forge-adapter",
        // Relative to CARGO_MANIFEST_DIR (sdk/): inside the crate, so it
        // is packaged with it.
        path: "wit",
        additional_derives: [PartialEq, Eq],
        pub_export_macro: true,
        // The SDK's own `export_forge!` (sdk/src/forge.rs) wraps this one: it
        // adapts a `ForgeAdapter` to the generated `Guest` first.
        export_macro_name: "export_forge_guest",
        default_bindings_module: "keyward_plugin_sdk::bindings::forge",
    });
}

/// The `migrator` world; its imports point at the `forge` module's.
pub mod migrator {
    wit_bindgen::generate!({
        world: "migrator",
        path: "wit",
        with: {
            "keyward:plugin/types@0.1.0": crate::bindings::forge::keyward::plugin::types,
            "keyward:plugin/secrets@0.1.0": crate::bindings::forge::keyward::plugin::secrets,
            "keyward:plugin/outbound@0.1.0": crate::bindings::forge::keyward::plugin::outbound,
            "keyward:plugin/log@0.1.0": crate::bindings::forge::keyward::plugin::log,
        },
        additional_derives: [PartialEq, Eq],
        pub_export_macro: true,
        // The SDK's own `export_migrator!` (sdk/src/migrate.rs) wraps this
        // one: it adapts a `Migrator` to the generated `Guest` first.
        export_macro_name: "export_migrator_guest",
        default_bindings_module: "keyward_plugin_sdk::bindings::migrator",
    });
}
