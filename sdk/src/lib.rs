//! Write Keyward plugins in Rust.
//!
//! A plugin is a `cdylib` crate built for `wasm32-wasip2` (which produces a
//! component directly). It depends on this crate, implements one trait and
//! calls one export macro; it never runs `wit_bindgen::generate!` itself, so
//! every plugin agrees with the host on the one contract in `wit/`.
//!
//! | world           | trait              | export macro                            |
//! |-----------------|--------------------|-----------------------------------------|
//! | `forge-adapter` | [`ForgeAdapter`]   | `keyward_plugin_sdk::export_forge!(T)`    |
//! | `migrator`      | [`Migrator`]       | `keyward_plugin_sdk::export_migrator!(T)` |
//!
//! A forge adapter:
//!
//! ```
//! use keyward_plugin_sdk::{http::Request, secret_ref, Account, ForgeAdapter, ForgeError, ForgeInfo};
//!
//! #[derive(serde::Deserialize)]
//! struct User {
//!     id: u64,
//!     login: String,
//! }
//!
//! struct Forgejo;
//!
//! impl ForgeAdapter for Forgejo {
//!     fn info() -> ForgeInfo {
//!         ForgeInfo {
//!             kind: "forgejo".into(),
//!             display_name: "Forgejo".into(),
//!             default_base_url: "https://codeberg.org".into(),
//!         }
//!     }
//!
//!     // Only `info` and `whoami` are required; the other operations default
//!     // to `ForgeError::Unsupported`.
//!     fn whoami(base_url: String, token: String) -> Result<Account, ForgeError> {
//!         let user: User = Request::get(format!("{base_url}/api/v1/user"))
//!             // The host expands this at egress: the plugin never sees the token.
//!             .header("authorization", format!("token {}", secret_ref(&token)))
//!             .send_forge()? // a host error, or `transport`
//!             .check()? // 401 → unauthorized, 403 → forbidden, …
//!             .parse()?; // unreadable → upstream
//!         Ok(Account::new(user.id.to_string(), user.login))
//!     }
//! }
//!
//! keyward_plugin_sdk::export_forge!(Forgejo);
//! # fn main() {}
//! ```
//!
//! The macro emits a shim implementing the generated bindings' `Guest` by
//! calling the adapter, plus the component's exports and the custom section
//! that describes the world, so only the world a plugin exports ends up in
//! its component.
//!
//! Host calls fail with [`Error`]; `?` turns it into [`ForgeError::Host`],
//! unchanged, so the host can tell its own refusal from the forge's answer.

#![warn(missing_docs)]

#[doc(hidden)]
pub mod bindings;
mod error;
pub mod forge;
pub mod forgejo;
pub mod http;
pub mod log;
pub mod migrate;
pub mod oauth;
pub mod wire;

/// The imported `secrets` interface: `exists` and `reveal` by reference,
/// for secrets the manifest (or the host, for one call) grants. Prefer
/// [`secret_ref`] in a request over revealing: a revealed value is in the
/// plugin's memory, an expanded one never is.
pub use bindings::forge::keyward::plugin::secrets;

/// The imported `outbound` interface (raw HTTP); [`http`] wraps it.
pub use bindings::forge::keyward::plugin::outbound;

/// Why a host call failed, and what a plugin call returns when it fails.
pub use bindings::forge::keyward::plugin::types::Error;

pub use forge::{
    Account, ForgeAdapter, ForgeError, ForgeInfo, OauthApp, RateLimit, Repository, RepositoryPage,
    TokenSet,
};

pub use migrate::{Migrator, MigratorInfo};

/// `${SECRET:reference}`, to put in a request header value or body.
///
/// The host replaces it with the secret's value as the request leaves (and
/// records the use), so the plugin can authenticate with a token it never
/// holds: nothing to leak through a log line, a panic message or memory.
/// The reference must be granted, by the manifest or (for a forge call's
/// token) by the host for that call.
pub fn secret_ref(reference: &str) -> String {
    format!("${{SECRET:{reference}}}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn secret_ref_is_the_template_the_host_expands() {
        assert_eq!(
            super::secret_ref("forgejo/alice"),
            "${SECRET:forgejo/alice}"
        );
    }
}
