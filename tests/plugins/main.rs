//! The plugin runtime with real components built from source: a
//! well-behaved forge adapter, the hostile fixtures, manifests and drop-in
//! loading. Every test checks the host survives and that denials are in the
//! access log.

#[path = "../support/mod.rs"]
mod support;

mod cli;
mod fixtures;
mod forms;
mod hostile;
mod kit;
mod loading;
mod migrators;
mod python;
mod scaffold;
mod server;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use keyward::audit::{chain::LogRow, Access};
use keyward::names::{Scope, SecretName, SecretRef};
use keyward::runtime::{BaseUrl, Options, PluginError, Runtime};
use keyward::vault::Vault;
use support::{TestDb, TestKey};

/// The global reference forge calls use as their token in these tests.
pub const TOKEN_REF: &str = "FORGE_TOKEN";
/// The secret the `revealer` fixture's manifest grants.
pub const GRANTED_REF: &str = "plugin:revealer/granted";
/// Its value.
pub const GRANTED_VALUE: &str = "granted-value-0xC0FFEE";

pub use support::log_capture::captured as captured_log;
use support::log_capture::init as init_log_capture;

/// A host for one test: a store with the test secrets, a forge emulator, a
/// plugins folder and a runtime over it.
pub struct Host {
    pub rt: Runtime,
    pub vault: Vault,
    pub base: String,
    pub plugins: tempfile::TempDir,
    _db: TestDb,
}

pub fn access() -> Access {
    Access::new("test:plugins", "plugin test").expect("valid access")
}

pub fn reference(text: &str) -> SecretRef {
    SecretRef::parse(text).expect("valid reference")
}

/// Reveals `text` as the test suite: the scope found and the value.
pub async fn reveal_as_test(vault: &Vault, text: &str) -> (Scope, Vec<u8>) {
    let (scope, value) = vault
        .reveal(
            &reference(text),
            &Default::default(),
            &access(),
            keyward::audit::Action::Reveal,
        )
        .await
        .expect("reveal");
    (scope, value.expose().to_vec())
}

impl Host {
    /// A host with `fixtures` installed (manifests as written).
    pub async fn with(fixtures: &[&str]) -> Host {
        Self::build(fixtures, false, HashMap::new()).await
    }

    /// The same, with built-in plugins and pinned host names.
    pub async fn build(
        fixtures: &[&str],
        builtins: bool,
        hosts: HashMap<String, Vec<IpAddr>>,
    ) -> Host {
        init_log_capture();
        let db = TestDb::sqlite().await;
        let vault = db.open(&TestKey::new()).await;
        vault
            .create(
                &Scope::global(),
                &SecretName::parse(TOKEN_REF).expect("name"),
                server::TOKEN.as_bytes(),
                "forge token",
                &access(),
            )
            .await
            .expect("create token");
        let granted = reference(GRANTED_REF);
        vault
            .create(
                granted.scope.as_ref().expect("scoped"),
                &granted.name,
                GRANTED_VALUE.as_bytes(),
                "granted to the revealer fixture",
                &access(),
            )
            .await
            .expect("create granted");
        let plugins = tempfile::tempdir().expect("temp dir");
        for name in fixtures {
            fixtures::install(plugins.path(), name, |m| m);
        }
        let rt = Runtime::start(Options {
            plugins_dir: Some(plugins.path().to_path_buf()),
            // One cache for the whole suite: each fixture compiles once.
            cache_dir: Some(fixtures::root().join("target").join("plugin-test-cache")),
            builtins,
            hosts,
        })
        .expect("runtime starts");
        Host {
            rt,
            vault,
            base: server::start().await,
            plugins,
            _db: db,
        }
    }

    /// The emulator's base URL.
    pub fn base_url(&self) -> BaseUrl {
        BaseUrl::parse(&self.base).expect("the emulator's URL")
    }

    /// `forge.whoami` of `plugin` against the emulator with the test token.
    pub async fn whoami(&self, plugin: &str) -> Result<keyward::runtime::Account, PluginError> {
        self.rt
            .forge_whoami(&self.vault, plugin, &self.base_url(), &reference(TOKEN_REF))
            .await
    }

    /// The access log, oldest first.
    pub async fn log(&self) -> Vec<LogRow> {
        self.vault.log_tail(1000).await.expect("log tail")
    }

    /// Rows written by `plugin`.
    pub async fn log_of(&self, plugin: &str) -> Vec<LogRow> {
        let accessor = format!("plugin:{plugin}");
        self.log()
            .await
            .into_iter()
            .filter(|r| r.accessor == accessor)
            .collect()
    }

    /// The host still serves a well-behaved plugin.
    pub async fn still_serves(&self) {
        let account = self
            .whoami("echo-forge")
            .await
            .expect("echo-forge still works after a hostile call");
        assert_eq!(account.login, "alice");
    }
}

#[tokio::test]
async fn a_forge_adapter_uses_a_token_it_never_sees() {
    let host = Host::with(&["echo-forge"]).await;
    let account = host.whoami("echo-forge").await.expect("whoami");
    assert_eq!(account.id, "42");
    assert_eq!(account.login, "alice");
    assert_eq!(account.name.as_deref(), Some("Alice Liddell"));
    assert_eq!(account.email.as_deref(), Some("alice@example.org"));
    let rows = host.log_of("echo-forge").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(
        (row.action.as_str(), row.outcome.as_str(), row.name.as_str()),
        ("egress", "ok", TOKEN_REF)
    );
    assert!(
        row.reason.contains(&host.base.replace("http://", "")),
        "{}",
        row.reason
    );
    assert!(!captured_log().contains(server::TOKEN));
}

#[tokio::test]
async fn reveals_are_logged_and_redacted_and_a_lent_token_is_not_revealed() {
    let host = Host::with(&["revealer"]).await;
    // The manifest grants one secret for reveal; the call lends the token
    // for egress only, so revealing it is refused.
    let err = host
        .whoami("revealer")
        .await
        .expect_err("the token is not revealed");
    assert!(
        matches!(
            err,
            PluginError::Returned {
                error: keyward::runtime::ReturnedError::Denied(_),
                ..
            }
        ),
        "{err}"
    );
    let rows = host.log_of("revealer").await;
    let outcome = |name: &str| {
        rows.iter()
            .filter(|r| r.action == "reveal" && r.name == name)
            .map(|r| r.outcome.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(outcome("granted"), ["ok"], "{rows:?}");
    assert_eq!(outcome(TOKEN_REF), ["denied"], "{rows:?}");
    assert!(
        rows.iter()
            .filter(|r| r.outcome == "ok")
            .all(|r| r.reason.contains("fixture")),
        "{rows:?}"
    );
    let log = captured_log();
    assert!(
        log.contains("[REDACTED]"),
        "the fixture's prints reach the log"
    );
    assert!(!log.contains(server::TOKEN), "a lent value reached the log");
    assert!(
        !log.contains(GRANTED_VALUE),
        "a revealed value reached the log"
    );
}

#[tokio::test]
async fn an_echoing_server_cannot_hand_an_expanded_token_back() {
    let host = Host::with(&["exfiltrate-header", "echo-forge"]).await;
    let account = host.whoami("exfiltrate-header").await.expect("whoami");
    assert_eq!(account.login, "[REDACTED]");
    host.still_serves().await;
}

#[tokio::test]
async fn calls_share_nothing_and_run_concurrently() {
    let host = Arc::new(Host::with(&["echo-forge", "minimal"]).await);
    let mut tasks = Vec::new();
    for i in 0..24 {
        let host = host.clone();
        tasks.push(tokio::spawn(async move {
            let plugin = if i % 2 == 0 { "echo-forge" } else { "minimal" };
            host.whoami(plugin).await.map(|a| a.login)
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let login = task.await.expect("task").expect("call");
        assert_eq!(login, if i % 2 == 0 { "alice" } else { "minimal" });
    }
}

#[tokio::test]
async fn a_bad_call_is_refused_before_the_plugin_runs() {
    let host = Host::with(&["echo-forge"]).await;
    for base in [
        "not a url",
        "ftp://x",
        "http://example.org",
        "https://u:p@example.org",
    ] {
        let err = BaseUrl::parse(base).expect_err("refused");
        assert!(matches!(err, PluginError::Invalid(_)), "{base}: {err}");
        assert_eq!(err.http_status(), 400);
    }
    let err = host.whoami("no-such-plugin").await.expect_err("refused");
    assert!(matches!(err, PluginError::NotFound(_)) && err.http_status() == 404);
    assert!(host.log_of("echo-forge").await.is_empty());
}
