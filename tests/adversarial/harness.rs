#![allow(dead_code)]
//! The sandbox a hostile plugin is dropped into: a store, a runtime over a
//! temporary plugins folder holding the fixtures under test, and the host's
//! log captured so a test can look for leaked values.

use std::collections::HashMap;

use keyward::audit::{chain::LogRow, Access, Action};
use keyward::names::{Scope, SecretName, SecretRef};
use keyward::runtime::{Options, Runtime};
use keyward::vault::Vault;

use crate::fixtures;
use crate::support::{TestDb, TestKey};

/// A store and a runtime with some fixtures installed.
pub struct Sandbox {
    /// The runtime.
    pub rt: Runtime,
    /// The store the plugins reach through the host.
    pub vault: Vault,
    /// The plugins folder.
    pub plugins: tempfile::TempDir,
    pub db: TestDb,
}

/// The accessor the tests write with.
pub fn access() -> Access {
    Access::new("test:adversarial", "adversarial test").expect("valid access")
}

/// A reference, parsed.
pub fn reference(text: &str) -> SecretRef {
    SecretRef::parse(text).expect("valid reference")
}

impl Sandbox {
    /// A sandbox with `fixtures` installed, each manifest edited by `edit`
    /// (given the fixture's name and its manifest with the hash line).
    pub async fn new(
        names: &[&str],
        edit: impl Fn(&str, String) -> String,
        hosts: HashMap<String, Vec<std::net::IpAddr>>,
    ) -> Sandbox {
        init_log_capture();
        let db = TestDb::sqlite().await;
        let vault = db.open(&TestKey::new()).await;
        let plugins = tempfile::tempdir().expect("temp dir");
        for name in names {
            fixtures::install(plugins.path(), name, |m| edit(name, m));
        }
        let rt = Runtime::start(Options {
            plugins_dir: Some(plugins.path().to_path_buf()),
            cache_dir: Some(fixtures::root().join("target").join("plugin-test-cache")),
            builtins: false,
            hosts,
        })
        .expect("runtime starts");
        for name in names {
            assert!(
                rt.registry().plugins.contains_key(*name),
                "{name} loads: {:?}",
                rt.registry().refused
            );
        }
        Sandbox {
            rt,
            vault,
            plugins,
            db,
        }
    }

    /// Stores `value` at `text` (`NAME` or `SCOPE/NAME`).
    pub async fn secret(&self, text: &str, value: &[u8]) {
        let r = reference(text);
        self.vault
            .create(
                &r.scope.clone().unwrap_or_else(Scope::global),
                &SecretName::parse(r.name.as_str()).expect("name"),
                value,
                "adversarial test secret",
                &access(),
            )
            .await
            .expect("create secret");
    }

    /// Whether `text` still holds `value`.
    pub async fn holds(&self, text: &str, value: &[u8]) -> bool {
        match self
            .vault
            .reveal(
                &reference(text),
                &Default::default(),
                &access(),
                Action::Reveal,
            )
            .await
        {
            Ok((_, v)) => v.expose() == value,
            Err(_) => false,
        }
    }

    /// The access log, oldest first.
    pub async fn log(&self) -> Vec<LogRow> {
        self.vault.log_tail(100_000).await.expect("log tail")
    }

    /// Rows whose accessor starts with `plugin:<plugin>`.
    pub async fn rows_of(&self, plugin: &str) -> Vec<LogRow> {
        let accessor = format!("plugin:{plugin}");
        self.log()
            .await
            .into_iter()
            .filter(|r| r.accessor == accessor || r.accessor.starts_with(&format!("{accessor} ")))
            .collect()
    }
}

pub use crate::support::log_capture::captured as captured_log;
use crate::support::log_capture::init as init_log_capture;

impl Sandbox {
    /// Drops `wasm` into the plugins folder as `name`, with `manifest` and
    /// its hash, and reloads; panics unless it loads.
    pub async fn drop_in(&self, name: &str, wasm: &[u8], manifest: &str) {
        let dir = self.plugins.path();
        std::fs::write(dir.join(format!("{name}.wasm")), wasm).expect("write wasm");
        std::fs::write(
            dir.join(format!("{name}.toml")),
            fixtures::with_hash(manifest, wasm),
        )
        .expect("write manifest");
        self.rt.reload().await;
        assert!(
            self.rt.registry().plugins.contains_key(name),
            "{name} loads: {:?}",
            self.rt.registry().refused
        );
    }
}
