//! Migrators cannot exceed the migration they were asked to run: a hostile
//! migrator (tests/fixtures/plugins/hostile-migrator) and the built-in ones,
//! driven by the real `keyward` binary with the fixture in `--plugins-dir`.
//! Each test is one threat; each checks that nothing moved, nothing was
//! deleted and the refusal is on record.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::fixtures;
use crate::support::kw::{code, text, Kw};

/// A data folder with the hostile migrator (and echo-forge, whose scope
/// `plugin:echo-forge` a migrator must never write into) installed.
struct Env {
    kw: Kw,
    plugins: PathBuf,
}

impl Env {
    fn new() -> Env {
        let kw = Kw::new();
        let plugins = kw.dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).expect("plugins dir");
        for name in ["hostile-migrator", "echo-forge"] {
            fixtures::install(&plugins, name, |m| m);
        }
        Env { kw, plugins }
    }

    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = vec!["--plugins-dir", self.plugins.to_str().expect("utf-8")];
        all.extend_from_slice(args);
        all
    }

    fn run(&self, args: &[&str]) -> Output {
        self.kw.run(&self.args(args), b"")
    }

    fn ok(&self, args: &[&str]) -> String {
        self.kw.ok(&self.args(args), b"")
    }

    fn set(&self, scope: &str, name: &str, value: &str) {
        self.kw.ok(
            &self.args(&["secret", "set", name, "--scope", scope]),
            value.as_bytes(),
        );
    }

    fn get(&self, scope: &str, name: &str) -> Option<String> {
        self.kw.secret_value(scope, name)
    }

    /// Runs the hostile migrator in `mode` with `extra` arguments.
    fn hostile(&self, mode: &str, extra: &[&str]) -> (i32, String) {
        let option = format!("mode={mode}");
        let mut args = vec!["migrate", "run", "hostile-migrator", "--option", &option];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        (
            code(&out),
            format!("{}{}", text(&out.stdout), text(&out.stderr)),
        )
    }

    /// The access log, one JSON object per row.
    fn log(&self) -> Vec<serde_json::Value> {
        self.ok(&["audit", "tail", "--json", "-n", "1000"])
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }
}

/// The line of the report for item `id`.
fn line<'a>(out: &'a str, id: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{id} ")))
        .unwrap_or_else(|| panic!("no line for {id}: {out}"))
}

fn assert_failed(out: &str, id: &str, says: &str) {
    let l = line(out, id);
    assert!(l.contains("FAILED") && l.contains(says), "{id}: {l}\n{out}");
}

/// Every row of the log that a migration run wrote for `name`.
fn rows_for<'a>(log: &'a [serde_json::Value], name: &str) -> Vec<&'a serde_json::Value> {
    log.iter().filter(|r| r["name"] == name).collect()
}

#[test]
fn a_migrator_cannot_rename_a_secret_it_was_not_offered() {
    let env = Env::new();
    env.set("global", "DECOY", "decoy-value");
    env.set("agent_type:coder", "FORGE_TOKEN", "coder-forge-token");
    let (status, out) = env.hostile(
        "rename-unoffered",
        &["--option", "target_scopes=global,workload:*"],
    );
    assert_eq!(status, 1, "{out}");
    assert_failed(&out, "rename:agent_type:coder/FORGE_TOKEN", "not offered");
    assert_eq!(
        env.get("agent_type:coder", "FORGE_TOKEN").as_deref(),
        Some("coder-forge-token")
    );
    assert_eq!(env.get("global", "STOLEN"), None);
    // The host never read it on the plugin's behalf; the refusal is logged.
    let log = env.log();
    let rows = rows_for(&log, "FORGE_TOKEN");
    assert!(
        rows.iter().all(|r| r["action"] != "reveal"
            || r["outcome"] != "ok"
            || !r["accessor"].as_str().unwrap_or("").contains("hostile")),
        "{rows:?}"
    );
    assert!(
        rows.iter().any(|r| r["outcome"] == "denied"
            && r["accessor"]
                .as_str()
                .is_some_and(|a| a.starts_with("plugin:hostile-migrator"))),
        "the refusal is on record: {rows:?}"
    );
}

#[test]
fn a_migrator_cannot_delete_a_secret_by_renaming_it_onto_itself() {
    let env = Env::new();
    env.set("global", "VICTIM", "victim-value");
    let (status, out) = env.hostile("rename-onto-itself", &["--option", "target_scopes=global"]);
    assert_eq!(status, 1, "{out}");
    assert_failed(&out, "rename:VICTIM", "onto itself");
    assert_eq!(
        env.get("global", "VICTIM").as_deref(),
        Some("victim-value"),
        "{out}"
    );
}

#[test]
fn a_migrator_cannot_move_a_secret_into_a_plugin_scope() {
    let env = Env::new();
    env.set("global", "VICTIM", "victim-value");
    // Not even an operator can name a plugin's scope as a target.
    let (status, out) = env.hostile(
        "rename-into-plugin",
        &["--option", "target_scopes=plugin:echo-forge"],
    );
    assert_ne!(status, 0, "{out}");
    assert!(out.contains("plugin's own scope"), "{out}");
    let (status, out) = env.hostile("rename-into-plugin", &["--option", "target_scopes=global"]);
    assert_eq!(status, 1, "{out}");
    assert_failed(&out, "rename:global/VICTIM", "plugin's own scope");
    // Nor plant a value there through discovery.
    let (status, out) = env.hostile("plant", &[]);
    assert_eq!(status, 1, "{out}");
    assert_failed(&out, "planted", "plugin's own scope");
    assert_eq!(env.get("plugin:echo-forge", "TOKEN"), None);
    assert_eq!(env.get("global", "VICTIM").as_deref(), Some("victim-value"));
}

#[test]
fn a_migrator_cannot_move_a_secret_outside_the_scopes_the_run_allows() {
    let env = Env::new();
    env.set("global", "VICTIM", "victim-value");
    let (status, out) = env.hostile(
        "rename-elsewhere",
        &["--option", "target_scopes=workload:*"],
    );
    assert_eq!(status, 1, "{out}");
    assert_failed(&out, "rename:global/VICTIM", "outside the scopes");
    // Without any target scopes, no in-store move at all.
    let (status, out) = env.hostile("rename-elsewhere", &[]);
    assert_eq!(status, 1, "{out}");
    assert_failed(&out, "rename:global/VICTIM", "target_scopes=agent_type:*");
    assert_eq!(env.get("agent_type:coder", "VICTIM"), None);
    assert_eq!(env.get("global", "VICTIM").as_deref(), Some("victim-value"));
}

#[test]
fn a_migrators_reads_name_the_plugin_and_the_operator_who_started_the_run() {
    let env = Env::new();
    env.set("global", "MOVED", "moved-value");
    let (status, out) = env.hostile("rename-honest", &["--option", "target_scopes=workload:*"]);
    assert_eq!(status, 0, "{out}");
    assert_eq!(
        env.get("workload:moved", "MOVED").as_deref(),
        Some("moved-value")
    );
    // An item whose target holds another value: the host compares them.
    env.set("global", "ONE", "the operator's own");
    let (_, out) = env.hostile("plain", &[]);
    assert!(line(&out, "one").contains("another value"), "{out}");
    let log = env.log();
    let via = "plugin:hostile-migrator via cli:tester";
    for (name, scope) in [("MOVED", "global"), ("ONE", "global")] {
        let reads: Vec<_> = rows_for(&log, name)
            .into_iter()
            .filter(|r| r["scope"] == scope && r["action"] == "reveal")
            .filter(|r| r["accessor"] != "cli:tester")
            .collect();
        assert!(
            !reads.is_empty(),
            "no read of {scope}/{name} on record: {log:?}"
        );
        for r in reads {
            assert_eq!(r["accessor"], via, "{r}");
        }
    }
}

#[test]
fn a_migrator_cannot_mint_an_operator_key_without_consent() {
    let env = Env::new();
    // The plan names every key and role the run would create, and says
    // which would be refused.
    let plan = [
        "migrate",
        "plan",
        "hostile-migrator",
        "--option",
        "mode=operator-key",
    ];
    let refused = env.run(&plan);
    let shown = text(&refused.stdout);
    assert_eq!(code(&refused), 1, "{shown}");
    assert!(
        shown.contains("api key hostile.admin (operator): refused"),
        "{shown}"
    );
    let mut consented = plan.to_vec();
    consented.push("--allow-operator-keys");
    let shown = env.ok(&consented);
    assert!(
        shown.contains("api key hostile.admin (operator)\n"),
        "{shown}"
    );
    let (status, out) = env.hostile("operator-key", &[]);
    assert_eq!(status, 1, "{out}");
    assert_failed(&out, "admin-key", "--allow-operator-keys");
    let tokens = env.ok(&["token", "list", "--json"]);
    assert!(!tokens.contains("hostile.admin"), "{tokens}");
    // With the operator's explicit consent it is made.
    let (status, out) = env.hostile("operator-key", &["--allow-operator-keys"]);
    assert_eq!(status, 0, "{out}");
    let tokens = env.ok(&["token", "list", "--json"]);
    assert!(
        tokens.contains("hostile.admin") && tokens.contains("operator"),
        "{tokens}"
    );
}

#[test]
fn a_legacy_key_id_is_not_a_bare_hash_of_the_key() {
    use sha2::{Digest, Sha256};
    let env = Env::new();
    let (status, out) = env.hostile("operator-key", &["--allow-operator-keys"]);
    assert_eq!(status, 0, "{out}");
    let key = "sk-hostile-chosen-0123456789";
    let bare = format!(
        "legacy-{}",
        &hex::encode(Sha256::digest(key.as_bytes()))[..16]
    );
    let tokens = env.ok(&["token", "list", "--json"]);
    assert!(tokens.contains("legacy-"), "{tokens}");
    assert!(
        !tokens.contains(&bare),
        "the id is a guessable hash of the key: {tokens}"
    );
}

// ----------------------------------------------------------------- key-prefix

#[cfg(unix)]
#[test]
fn a_migrators_rewrite_keeps_the_files_mode() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let src = env.kw.dir.path().join("legacy");
    std::fs::create_dir_all(&src).expect("mkdir");
    let file = src.join("workloads.env");
    std::fs::write(&file, "BEARER_TOKEN_WEB=web-token-0123456789\nKEEP=1\n").expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = env.ok(&[
        "migrate",
        "run",
        "key-prefix",
        "--source",
        src.to_str().expect("utf-8"),
    ]);
    assert!(out.contains("1 migrated"), "{out}");
    let after = std::fs::read_to_string(&file).expect("the file stays");
    assert_eq!(after, "KEEP=1\n");
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600, "the rewrite widened the file's mode");
    assert_eq!(
        mode(&src.join(".workloads.env.migrated.bak")),
        0o600,
        "the kept original widened"
    );
}

// ------------------------------------------------------ through the runtime

#[tokio::test]
async fn a_refused_rename_is_on_record_and_reads_nothing() {
    use keyward::migrate::{self, Quiet, Request, Status};
    use keyward::runtime::MigrationSource;

    use crate::harness::{captured_log, Sandbox};

    let sandbox = Sandbox::new(&["hostile-migrator"], |_, m| m, Default::default()).await;
    assert!(sandbox
        .plugins
        .path()
        .join("hostile-migrator.wasm")
        .is_file());
    sandbox.secret("DECOY", b"decoy-value").await;
    sandbox
        .secret("agent_type:coder/FORGE_TOKEN", b"coder-forge-token")
        .await;
    let source = MigrationSource {
        options: vec![
            ("mode".into(), "rename-unoffered".into()),
            ("target_scopes".into(), "global".into()),
        ],
        ..MigrationSource::default()
    };
    let request = Request::new("hostile-migrator", source, "cli:alice");
    let report = migrate::run(&sandbox.vault, &sandbox.rt, &request, &Quiet)
        .await
        .expect("the run ends");
    let item = report
        .items
        .iter()
        .find(|i| i.id == "rename:agent_type:coder/FORGE_TOKEN")
        .expect("the refused rename is reported");
    assert!(
        matches!(&item.status, Status::Failed(r) if r.contains("not offered")),
        "{item:?}"
    );
    assert!(
        sandbox
            .holds("agent_type:coder/FORGE_TOKEN", b"coder-forge-token")
            .await
    );
    assert!(!sandbox.holds("global/STOLEN", b"coder-forge-token").await);
    let rows = sandbox.rows_of("hostile-migrator").await;
    assert!(
        rows.iter().all(|r| r.outcome == "denied"),
        "nothing was read for the plugin: {rows:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.accessor == "plugin:hostile-migrator via cli:alice"
                && r.scope == "agent_type:coder"
                && r.name == "FORGE_TOKEN"
                && r.detail.contains("global/STOLEN")),
        "{rows:?}"
    );
    assert!(
        sandbox
            .log()
            .await
            .iter()
            .all(|r| r.name != "STOLEN" || r.action != "create"),
        "nothing was written"
    );
    assert!(
        captured_log().contains("a rename was refused"),
        "the host's log says so"
    );
}
