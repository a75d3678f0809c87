//! Host-side bindings generated from `wit/` (the one source of truth). The
//! `migrator` world reuses the `forge-adapter` world's import bindings, so
//! both worlds share one set of host traits and one `error` type.

/// World `forge-adapter`, and the imported interfaces both worlds share.
pub mod forge {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "forge-adapter",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// World `migrator`.
pub mod migrator {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "migrator",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "keyward:plugin/types": super::forge::keyward::plugin::types,
            "keyward:plugin/secrets": super::forge::keyward::plugin::secrets,
            "keyward:plugin/outbound": super::forge::keyward::plugin::outbound,
            "keyward:plugin/log": super::forge::keyward::plugin::log,
        },
    });
}

pub use forge::exports::keyward::plugin::forge::ForgeError;
pub use forge::keyward::plugin::types::Error as GuestError;
