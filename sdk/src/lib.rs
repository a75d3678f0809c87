//! Write Keyward plugins in Rust.
//!
//! A plugin is a `cdylib` crate built for `wasm32-wasip2` (which produces a
//! component directly). It depends on this crate, implements one trait and
//! calls one export macro; it never runs `wit_bindgen::generate!` itself, so
//! every plugin agrees with the host on the one contract, the WIT package
//! `keyward:plugin@0.1.0`. The crate carries its own copy of it
//! (`wit/plugin.wit`, also as [`WIT`]), so a plugin can depend on the SDK by
//! version or by git URL from anywhere; `keyward plugin new NAME --kind
//! forge|migrator --lang rust` writes such a project. The versioning rule of
//! the contract is in the repository's docs/plugins.md ("Versions of the
//! contract").
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
//!     // to `ForgeError::Unsupported`, but for `authorize_url`,
//!     // `exchange_code` and `refresh`, which follow the forge's OAuth flow
//!     // once `oauth()` describes it (see `oauth::OauthFlow`).
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
//!
//! A migrator, here of a folder of token files (`tokens/<agent>`), run with
//! `keyward migrate plan|run PLUGIN --source DIR`:
//!
//! ```
//! use keyward_plugin_sdk::migrate::{
//!     self, Binding, Discovery, Item, Migrator, MigratorInfo, RunConfig,
//! };
//! use keyward_plugin_sdk::Error;
//!
//! struct TokenFiles;
//!
//! impl Migrator for TokenFiles {
//!     fn info() -> MigratorInfo {
//!         MigratorInfo {
//!             name: "token-files".into(),
//!             description: "tokens/<agent> files".into(),
//!         }
//!     }
//!
//!     // The run's --source folder is preopened at `run.source`; each
//!     // item's id is a path inside it, its unit what `retire` removes.
//!     fn discover(run: &RunConfig) -> Result<Discovery, Error> {
//!         let source = migrate::source_dir(run)?;
//!         let (mut items, mut problems) = (Vec::new(), Vec::new());
//!         let listing = std::fs::read_dir(source.join("tokens"))
//!             .map_err(|e| Error::Invalid(format!("tokens/: {e}")))?;
//!         for entry in listing.flatten() {
//!             let name = entry.file_name().to_string_lossy().into_owned();
//!             let id = format!("tokens/{name}");
//!             if name.starts_with('.') {
//!                 continue; // retired `.x.migrated.bak` files, editor leftovers
//!             } else if !migrate::valid_name(&name) {
//!                 let shown = migrate::quoted(&name);
//!                 problems.push(migrate::problem(&id, format!("{shown}: not an agent name")));
//!             } else {
//!                 items.push(Item {
//!                     target: format!("agent_type:{name}/FORGE_TOKEN"),
//!                     description: format!("token of agent {name}"),
//!                     binding: Binding::AgentTypeToken(name),
//!                     unit: id.clone(),
//!                     id,
//!                 });
//!             }
//!         }
//!         Ok(Discovery { items, problems })
//!     }
//!
//!     fn read(run: &RunConfig, id: &str) -> Result<Vec<u8>, String> {
//!         let source = migrate::source_dir(run).map_err(|e| e.message().to_owned())?;
//!         let bytes = migrate::read_file(&migrate::inside(&source, id)?, id, 4096)?;
//!         migrate::token_text(&bytes, id)
//!     }
//!
//!     // Called only once the unit's secrets are committed; renames the file
//!     // to `.<name>.migrated.bak`, durably, and answers Ok if done already.
//!     fn retire(run: &RunConfig, unit: &str) -> Result<(), String> {
//!         let source = migrate::source_dir(run).map_err(|e| e.message().to_owned())?;
//!         migrate::retire_file(&migrate::inside(&source, unit)?, unit)
//!     }
//! }
//!
//! keyward_plugin_sdk::export_migrator!(TokenFiles);
//!
//! // Unit tests run natively over a scratch folder:
//! let dir = keyward_plugin_sdk::testing::TempDir::new("token-files-doc");
//! dir.write("tokens/coder", "tok\n");
//! dir.write("tokens/bad name", "x");
//! let found = TokenFiles::discover(&dir.run(&[])).expect("discover");
//! assert_eq!(found.items[0].target, "agent_type:coder/FORGE_TOKEN");
//! assert_eq!(found.problems[0].reason, "\"bad name\": not an agent name");
//! assert_eq!(TokenFiles::read(&dir.run(&[]), "tokens/coder").expect("read"), b"tok");
//! TokenFiles::retire(&dir.run(&[]), "tokens/coder").expect("retire");
//! assert!(dir.exists("tokens/.coder.migrated.bak"));
//! ```

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
pub mod testing;
pub mod wire;

/// The WIT package this SDK was built against (`keyward:plugin@0.1.0`),
/// as text: what `componentize-py -d` or `jco componentize --wit` need in a
/// plugin written in another language.
pub const WIT: &str = include_str!("../wit/plugin.wit");

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
    /// The WIT inside the crate (packaged with it) is the repository's
    /// `wit/`, byte for byte: edit `wit/plugin.wit`, then copy it here.
    #[test]
    fn the_packaged_wit_is_the_repositorys() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let repo = std::fs::read(root.join("../wit/plugin.wit")).expect("the repository's wit/");
        assert!(
            repo == super::WIT.as_bytes(),
            "sdk/wit/plugin.wit differs from wit/plugin.wit: run `cp wit/plugin.wit sdk/wit/`"
        );
        let files: Vec<_> = std::fs::read_dir(root.join("wit"))
            .expect("sdk/wit")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(files, ["plugin.wit"], "sdk/wit holds only the copy");
    }

    #[test]
    fn secret_ref_is_the_template_the_host_expands() {
        assert_eq!(
            super::secret_ref("forgejo/alice"),
            "${SECRET:forgejo/alice}"
        );
    }
}
