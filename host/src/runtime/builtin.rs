//! The plugins compiled from `plugins/` by build.rs and embedded here.

/// One embedded plugin.
pub struct Builtin {
    /// Its folder name under `plugins/`, which its manifest's name must equal.
    pub name: &'static str,
    /// `plugin.toml`.
    pub manifest: &'static str,
    /// The component.
    pub wasm: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));
