//! `migrate list|plan|run` with the built-in `token-dir` migrator: the
//! order (write, then retire), one-shot runs, hostile legacy input, SIGKILL
//! at every checkpoint, and two hosts booting on one PostgreSQL.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use crate::{code, text, Kw};

/// A token folder with `n` agents' files: `agent-<i>` → `tok-<i>-…`.
fn token_dir(root: &Path, n: usize) -> PathBuf {
    let dir = root.join("legacy");
    std::fs::create_dir_all(dir.join("tokens")).expect("mkdir");
    for i in 0..n {
        std::fs::write(dir.join(format!("tokens/agent-{i}")), token(i) + "\n").expect("write");
    }
    dir
}

fn token(i: usize) -> String {
    format!("tok-{i}-0123456789abcdef")
}

fn get(kw: &Kw, scope: &str, name: &str) -> Option<String> {
    kw.secret_value(scope, name)
}

fn migrate(kw: &Kw, args: &[&str]) -> std::process::Output {
    kw.migrate(args)
}

#[test]
fn token_dir_writes_then_retires_and_runs_once() {
    let kw = Kw::new();
    let src = token_dir(kw.dir.path(), 3);
    let src_s = src.to_str().expect("utf-8 path");
    // agent-0 is a known agent type: its token gets linked.
    kw.ok(
        &[
            "agent-type",
            "add",
            "agent-0",
            "--forge",
            "forgejo",
            "--base-url",
            "https://codeberg.org",
        ],
        b"",
    );

    let listed = kw.ok(&["migrate", "list"], b"");
    for plugin in [
        "token-dir",
        "agents-json",
        "account-credentials",
        "key-prefix",
        "openbao-kv",
    ] {
        assert!(listed.contains(plugin), "{plugin} is not loaded: {listed}");
    }
    assert!(listed.contains("never run"), "{listed}");
    // Every built-in plugin loads (`plugin list` exits 1 if one was refused).
    kw.ok(&["plugin", "list"], b"");

    // The plan changes nothing.
    let plan = kw.ok(&["migrate", "plan", "token-dir", "--source", src_s], b"");
    assert!(
        plan.contains("would migrate") && plan.contains("dry run"),
        "{plan}"
    );
    assert!(src.join("tokens/agent-0").is_file());
    kw.assert_secret("agent_type:agent-0", "FORGE_TOKEN", None);

    let out = kw.ok(&["migrate", "run", "token-dir", "--source", src_s], b"");
    assert!(out.contains("3 migrated, 0 skipped, 0 failed"), "{out}");
    for i in 0..3 {
        assert_eq!(
            get(&kw, &format!("agent_type:agent-{i}"), "FORGE_TOKEN").as_deref(),
            Some(token(i).as_str()),
            "the final newline is not part of the token"
        );
        assert!(!src.join(format!("tokens/agent-{i}")).exists());
        let bak = src.join(format!("tokens/.agent-{i}.migrated.bak"));
        assert_eq!(std::fs::read_to_string(bak).expect("kept"), token(i) + "\n");
    }
    let types = kw.ok(&["agent-type", "list"], b"");
    assert!(types.contains("agent_type:agent-0/FORGE_TOKEN"), "{types}");
    // A type created later adopts its migrated token.
    kw.ok(
        &[
            "agent-type",
            "add",
            "agent-1",
            "--forge",
            "forgejo",
            "--base-url",
            "https://codeberg.org",
        ],
        b"",
    );
    let token1 = kw.ok(
        &["agent-type", "token", "agent-1", "--reason", "check"],
        b"",
    );
    assert_eq!(token1.trim_end(), token(1));

    // The same run again is a no-op; --again finds nothing left to do.
    let again = kw.ok(&["migrate", "run", "token-dir", "--source", src_s], b"");
    assert!(again.contains("finished before"), "{again}");
    let listed = kw.ok(&["migrate", "list"], b"");
    assert!(listed.contains("3 migrated"), "{listed}");
    let forced = kw.ok(
        &["migrate", "run", "token-dir", "--source", src_s, "--again"],
        b"",
    );
    assert!(
        forced.contains("0 migrated, 0 skipped, 0 failed"),
        "{forced}"
    );

    // Every write is in the access log, as the CLI user.
    let log = kw.ok(&["audit", "tail", "--json", "-n", "100"], b"");
    assert!(
        log.contains("migrated by token-dir from tokens/agent-2"),
        "{log}"
    );
    assert!(!log.contains(&token(2)), "the log holds a value");
    kw.ok(&["audit", "verify"], b"");
}

#[test]
fn hostile_legacy_files_fail_one_by_one_and_nothing_unwritten_is_retired() {
    let kw = Kw::new();
    let src = token_dir(kw.dir.path(), 1);
    let tokens = src.join("tokens");
    std::fs::write(tokens.join("empty"), b"").expect("write");
    std::fs::write(tokens.join("blank"), b" \n\n").expect("write");
    std::fs::write(tokens.join("garbage"), [0xff, 0xfe, 0x00, 0x81]).expect("write");
    std::fs::write(tokens.join("oversized"), vec![b'a'; 100 * 1024]).expect("write");
    std::fs::write(tokens.join("two-words"), b"one two\n").expect("write");
    std::os::unix::fs::symlink("/etc/hostname", tokens.join("escape")).expect("symlink");
    std::os::unix::fs::symlink("../../nowhere", tokens.join("dangling")).expect("symlink");
    let fifo = tokens.join("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo")
        .success());
    std::fs::write(tokens.join("bad name!"), b"tok").expect("write");
    // The store already holds another value where one file would go.
    kw.ok(
        &[
            "secret",
            "set",
            "FORGE_TOKEN",
            "--scope",
            "agent_type:taken",
        ],
        b"the operator's own value",
    );
    std::fs::write(tokens.join("taken"), b"legacy-value-for-taken").expect("write");

    let source = src.to_str().expect("utf-8");
    let stdout = kw.migrate_failing(&["token-dir", "--source", source], "1 migrated");
    for (file, reason) in [
        ("empty", "empty"),
        ("blank", "only whitespace"),
        ("garbage", "binary"),
        ("oversized", "more than"),
        ("two-words", "inner whitespace"),
        ("escape", "outside the source folder"),
        ("dangling", "outside the source folder"),
        ("fifo", "not a regular file"),
        ("bad name!", "not an agent name"),
        ("taken", "another value"),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("tokens/{file} ")))
            .unwrap_or_else(|| panic!("no line for {file}: {stdout}"));
        assert!(
            line.contains("FAILED") && line.contains(reason),
            "{file}: {line}"
        );
        // Nothing that failed was retired.
        assert!(
            std::fs::symlink_metadata(tokens.join(file)).is_ok(),
            "{file} was moved"
        );
    }
    assert!(!stdout.contains("legacy-value-for-taken") && !stdout.contains("aaaa"));
    assert_eq!(
        get(&kw, "agent_type:taken", "FORGE_TOKEN").as_deref(),
        Some("the operator's own value"),
        "an existing secret is not overwritten"
    );
    assert!(tokens.join(".agent-0.migrated.bak").is_file());
    // A run with failures is not recorded: running again retries them.
    let again = migrate(
        &kw,
        &["run", "token-dir", "--source", src.to_str().expect("utf-8")],
    );
    assert!(!text(&again.stdout).contains("finished before"));
}

#[test]
fn malformed_migrate_commands_are_refused_with_a_reason() {
    let kw = Kw::new();
    let src = token_dir(kw.dir.path(), 1);
    let src_s = src.to_str().expect("utf-8");
    let missing = kw.dir.path().join("missing");
    let file = src.join("tokens/agent-0");
    for (args, says) in [
        (
            vec!["run", "no-such-plugin", "--source", src_s],
            "no plugin named",
        ),
        (
            vec!["run", "forgejo", "--source", src_s],
            "not a migrator plugin",
        ),
        (
            vec![
                "run",
                "token-dir",
                "--source",
                missing.to_str().expect("utf-8"),
            ],
            "--source",
        ),
        (
            vec![
                "run",
                "token-dir",
                "--source",
                file.to_str().expect("utf-8"),
            ],
            "not a folder",
        ),
        (
            vec!["run", "token-dir", "--source", "ftp://example.org/x"],
            "--source",
        ),
        (
            vec!["run", "token-dir", "--source", src_s, "--option", "novalue"],
            "key=value",
        ),
        (
            vec![
                "run",
                "token-dir",
                "--source",
                src_s,
                "--option",
                "bad key=1",
            ],
            "option key",
        ),
        (
            vec![
                "run",
                "token-dir",
                "--source",
                src_s,
                "--option",
                "token_ref=not a ref",
            ],
            "token_ref",
        ),
        (vec!["run", "token-dir"], "--source DIR"),
        (
            vec![
                "run",
                "token-dir",
                "--source",
                src_s,
                "--option",
                "dir=../..",
            ],
            "not a path inside",
        ),
    ] {
        let out = migrate(&kw, &args);
        assert_ne!(code(&out), 0, "{args:?} succeeded");
        let err = text(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let out = migrate(
        &kw,
        &["run", "token-dir", "--source", src_s, "--batch", "0"],
    );
    assert_eq!(code(&out), 2, "clap refuses a zero batch");
    // Nothing was migrated or moved by any of them.
    assert!(file.is_file());
    kw.assert_secret("agent_type:agent-0", "FORGE_TOKEN", None);
}

/// The ledger's rows: (item id, state).
fn ledger(kw: &Kw) -> Vec<(String, String)> {
    let url = kw
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/keyward.db", kw.dir.path().display()));
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            use sqlx::{Connection, Row};
            let mut conn = sqlx::sqlite::SqliteConnection::connect(&url)
                .await
                .expect("open the store");
            let rows = sqlx::query("SELECT item_id, state FROM migration_ledger ORDER BY item_id")
                .fetch_all(&mut conn)
                .await
                .expect("ledger");
            rows.iter()
                .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
                .collect()
        })
}

#[test]
fn sigkill_at_every_checkpoint_then_a_rerun_loses_and_duplicates_nothing() {
    // The hook is compiled only into builds with the feature; without it
    // this test would find no kill point, so it says how to run it instead.
    crate::support::require_fault_hook();
    const N: usize = 5;
    let mut kill_at = 1;
    let mut kills = 0;
    // One data folder (so one warm plugin compile cache), a fresh store
    // and legacy folder per kill point.
    let mut kw = Kw::new();
    loop {
        let round = kw.dir.path().join(format!("round-{kill_at}"));
        std::fs::create_dir_all(&round).expect("mkdir");
        kw.database_url = Some(format!("sqlite://{}/keyward.db", round.display()));
        let src = token_dir(&round, N);
        let src_s = src.to_str().expect("utf-8").to_owned();
        let args = [
            "migrate",
            "run",
            "token-dir",
            "--source",
            &src_s,
            "--batch",
            "2",
        ];
        let mut cmd = kw.cmd(&args);
        cmd.env("KEYWARD_FAULT_KILL_AT", kill_at.to_string());
        let out = crate::run_with(cmd, b"");
        let killed = out.status.signal() == Some(9);
        let check = |stage: &str| {
            let rows = ledger(&kw);
            for i in 0..N {
                let file = src.join(format!("tokens/agent-{i}"));
                let bak = src.join(format!("tokens/.agent-{i}.migrated.bak"));
                let id = format!("tokens/agent-{i}");
                assert!(
                    file.exists() != bak.exists(),
                    "{stage}, kill at {kill_at}: agent-{i} must be in place or .bak, exactly one"
                );
                let state = rows.iter().find(|(r, _)| *r == id).map(|(_, s)| s.as_str());
                let stored = get(&kw, &format!("agent_type:agent-{i}"), "FORGE_TOKEN");
                if bak.exists() {
                    // Retired only after it was written.
                    assert_eq!(
                        stored.as_deref(),
                        Some(token(i).as_str()),
                        "{stage}: {kill_at}/{i}"
                    );
                    assert!(state.is_some(), "{stage}: retired without a ledger row");
                }
                match state {
                    Some("written") | Some("retired") => {
                        assert_eq!(stored.as_deref(), Some(token(i).as_str()));
                    }
                    Some(other) => panic!("state {other}"),
                    None => assert_eq!(stored, None, "{stage}: a secret without its ledger row"),
                }
                if state == Some("retired") {
                    assert!(bak.exists(), "{stage}: marked retired but not renamed");
                }
            }
        };
        if !killed {
            assert!(out.status.success(), "{}", text(&out.stderr));
            check("unkilled run");
            break;
        }
        kills += 1;
        check("after SIGKILL");
        let rerun = kw.ok(&args, b"");
        // Killed after the run was recorded: the re-run is the no-op.
        assert!(
            rerun.contains("0 failed") || rerun.contains("finished before"),
            "{rerun}"
        );
        check("after the re-run");
        for i in 0..N {
            assert!(src.join(format!("tokens/.agent-{i}.migrated.bak")).exists());
        }
        assert!(ledger(&kw).iter().all(|(_, s)| s == "retired"));
        let list = kw.ok(&["secret", "list", "--json"], b"");
        assert_eq!(list.lines().count(), N, "{list}");
        assert!(
            list.lines().all(|l| l.contains("\"version\":1")),
            "a second version was written: {list}"
        );
        kill_at += 1;
        assert!(kill_at < 100, "the run never got past its checkpoints");
    }
    // 3 batches and 3 retire rounds of 4 checkpoints each, plus the record.
    assert!(kills >= 12, "only {kills} kill points were exercised");
}

/// Starts `keyward serve` with boot migrations; returns it once it listens
/// (boot migrations run before that).
fn serve_with_boot(kw: &Kw, file: &Path) -> std::process::Child {
    use std::io::BufRead;
    let mut child = kw
        .cmd(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--migrations",
            file.to_str().expect("utf-8"),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    assert!(
        line.contains("http://127.0.0.1:"),
        "not listening: {line:?}"
    );
    child
}

#[test]
fn two_hosts_booting_on_one_postgres_run_a_boot_migration_once() {
    const N: usize = 40;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let db = rt.block_on(crate::support::TestDb::postgres());
    let a = Kw {
        database_url: Some(db.url.clone()),
        ..Kw::new()
    };
    let b = Kw {
        dir: tempfile::tempdir().expect("temp dir"),
        key: crate::support::TestKey::from_base64(a.key.base64()),
        database_url: Some(db.url.clone()),
    };
    let src = token_dir(a.dir.path(), N);
    let file = a.dir.path().join("boot-migrations.toml");
    std::fs::write(
        &file,
        format!(
            "[[migration]]\nplugin = \"token-dir\"\nsource = \"{}\"\n",
            src.display()
        ),
    )
    .expect("write");
    // Both start at once: one migrates, the other waits for its lease and
    // then finds the run finished.
    let (mut ha, mut hb) = std::thread::scope(|s| {
        let ta = s.spawn(|| serve_with_boot(&a, &file));
        let tb = s.spawn(|| serve_with_boot(&b, &file));
        (ta.join().expect("host a"), tb.join().expect("host b"))
    });
    for i in 0..N {
        assert!(src
            .join(format!("tokens/.agent-{i}.migrated.bak"))
            .is_file());
        assert_eq!(
            get(&a, &format!("agent_type:agent-{i}"), "FORGE_TOKEN").as_deref(),
            Some(token(i).as_str())
        );
    }
    let runs = || {
        rt.block_on(async {
            use sqlx::{Connection, Row};
            let mut conn = sqlx::postgres::PgConnection::connect(&db.url)
                .await
                .expect("connect");
            let n: i64 =
                sqlx::query("SELECT COUNT(*) FROM migration_run WHERE plugin = 'token-dir'")
                    .fetch_one(&mut conn)
                    .await
                    .expect("count")
                    .get(0);
            let versions: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM secret")
                .fetch_one(&mut conn)
                .await
                .expect("versions")
                .get(0);
            (n, versions)
        })
    };
    assert_eq!(runs(), (1, 1), "one run, every secret at version 1");
    for h in [&mut ha, &mut hb] {
        h.kill().expect("kill");
        h.wait().expect("wait");
    }
    // A later boot is a no-op.
    let mut again = serve_with_boot(&b, &file);
    assert_eq!(runs(), (1, 1));
    again.kill().expect("kill");
    again.wait().expect("wait");
}

#[test]
fn a_token_file_named_for_an_instance_becomes_that_instances_override() {
    let kw = Kw::new();
    let src = token_dir(kw.dir.path(), 0);
    kw.ok(
        &[
            "agent-type",
            "add",
            "coder",
            "--forge",
            "forgejo",
            "--base-url",
            "https://codeberg.org",
        ],
        b"",
    );
    kw.ok(
        &["agent-type", "set-token", "coder"],
        b"type-token-0123456789",
    );
    kw.ok(
        &["agent-type", "set-token", "coder", "--instance", "i-7"],
        b"old-instance-token-0123",
    );
    std::fs::write(src.join("tokens/i-7"), "migrated-instance-token-0123\n").expect("write");
    let out = kw.ok(
        &[
            "migrate",
            "run",
            "token-dir",
            "--source",
            src.to_str().expect("utf-8"),
        ],
        b"",
    );
    assert!(out.contains("1 migrated"), "{out}");
    let token = |instance: Option<&str>| {
        let mut args = vec!["agent-type", "token", "coder", "--reason", "check"];
        if let Some(i) = instance {
            args.extend(["--instance", i]);
        }
        kw.ok(&args, b"").trim_end().to_owned()
    };
    assert_eq!(token(Some("i-7")), "migrated-instance-token-0123");
    assert_eq!(
        token(None),
        "type-token-0123456789",
        "the type's own token is untouched"
    );
}
