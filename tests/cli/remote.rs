//! The CLI against a running server (`KEYWARD_ADDR` + `KEYWARD_TOKEN`):
//! the client's environment holds no master key and no database URL, and
//! its data folder stays empty, so every command that works proves it went
//! through the server (with the token's role and policy) and nowhere else.

use std::process::{Command, Output};

use crate::support::kw::Served;
use crate::{code, run_with, text, Kw};

/// A served store and a client with nothing but an address and a token.
struct Remote {
    kw: Kw,
    served: Served,
    /// The client's own folder: its working and data folder.
    client: tempfile::TempDir,
    operator: String,
}

impl Remote {
    fn start() -> Remote {
        let kw = Kw::new();
        let operator = kw.token("laptop", "operator");
        let served = kw.serve("serve.log");
        Remote {
            kw,
            served,
            client: tempfile::tempdir().expect("client dir"),
            operator,
        }
    }

    /// `keyward ARGS` on the client, calling with `token`: a clean
    /// environment, so neither the key nor the database can leak in.
    fn cmd_as(&self, token: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyward"));
        cmd.args(args)
            .env_clear()
            .current_dir(self.client.path())
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("USER", "remote-tester")
            .env("KEYWARD_DATA_DIR", self.client.path())
            .env("KEYWARD_ADDR", format!("http://{}", self.served.addr))
            .env("KEYWARD_TOKEN", token);
        cmd
    }

    fn run_as(&self, token: &str, args: &[&str], stdin: &[u8]) -> Output {
        run_with(self.cmd_as(token, args), stdin)
    }

    fn ok_as(&self, token: &str, args: &[&str], stdin: &[u8]) -> String {
        let out = self.run_as(token, args, stdin);
        assert!(
            out.status.success(),
            "keyward {args:?} (remote) failed with {}: {}",
            code(&out),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    fn ok(&self, args: &[&str], stdin: &[u8]) -> String {
        self.ok_as(&self.operator, args, stdin)
    }

    fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        self.run_as(&self.operator, args, stdin)
    }

    /// The client folder must hold nothing: no store, no key file, no
    /// rendered value.
    fn assert_client_untouched(&self) {
        let left: Vec<_> = std::fs::read_dir(self.client.path())
            .expect("client dir")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "the client wrote {left:?}");
    }
}

#[test]
fn secrets_render_run_and_the_log_work_through_the_server() {
    let r = Remote::start();
    assert_eq!(
        r.ok(&["secret", "set", "API_KEY"], b"first\n").trim(),
        "created global/API_KEY (version 1)"
    );
    assert_eq!(
        r.ok(
            &["secret", "set", "API_KEY", "--description", "ci"],
            b"second"
        )
        .trim(),
        "replaced global/API_KEY (version 2)"
    );
    r.ok(
        &["secret", "set", "DB", "--scope", "agent_type:coder"],
        b"pw\xc3\xa9",
    );
    let exists = r.run(&["secret", "set", "API_KEY", "--create-only"], b"x");
    assert_eq!(code(&exists), 1, "{}", text(&exists.stderr));
    assert!(
        text(&exists.stderr).contains("409"),
        "{}",
        text(&exists.stderr)
    );

    // The value the server holds is what was set, read back both ways.
    assert_eq!(
        r.ok(&["secret", "get", "API_KEY", "--reason", "check"], b""),
        "second"
    );
    assert_eq!(
        r.kw.secret_value("global", "API_KEY").as_deref(),
        Some("second")
    );
    let listed = r.ok(&["secret", "list", "--json"], b"");
    assert!(
        listed.contains(r#""name":"API_KEY""#) && listed.contains(r#""description":"ci""#),
        "{listed}"
    );
    assert!(!listed.contains("second"), "a listing never shows values");

    let rendered = r.ok(
        &[
            "render",
            "--context",
            "agent_type=coder",
            "--reason",
            "deploy",
        ],
        b"key=${SECRET:API_KEY} db=${SECRET:DB}",
    );
    assert_eq!(rendered, "key=second db=pw\u{e9}");
    // Both variables set, and the exit code is sh's.
    let out = r.run(
        &[
            "run",
            "--env",
            "K=${SECRET:API_KEY}",
            "--env",
            "D=${SECRET:agent_type:coder/DB}",
            "--",
            "sh",
            "-c",
            "printf '%s|%s' \"$K\" \"$D\"; exit 7",
        ],
        b"",
    );
    assert_eq!(code(&out), 7, "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "second|pw\u{e9}");

    // Missing secrets: exit 3 before CMD runs, every one named.
    let missing = r.run(
        &[
            "run",
            "--env",
            "A=${SECRET:NOPE1}",
            "--env",
            "B=${SECRET:NOPE2}",
            "--",
            "touch",
            "ran",
        ],
        b"",
    );
    assert_eq!(code(&missing), 3, "{}", text(&missing.stderr));
    let why = text(&missing.stderr);
    assert!(why.contains("NOPE1") && why.contains("NOPE2"), "{why}");
    let get_missing = r.run(&["secret", "get", "NOPE", "--reason", "x"], b"");
    assert_eq!(code(&get_missing), 3, "{}", text(&get_missing.stderr));

    // Every read is on the server's log, under the token's name.
    let tail = r.ok(&["audit", "tail", "-n", "50"], b"");
    assert!(tail.contains("token:laptop"), "{tail}");
    assert!(tail.contains("deploy") && tail.contains("check"), "{tail}");
    let verify = r.ok(&["audit", "verify"], b"");
    assert!(verify.starts_with("OK: "), "{verify}");

    let rotated = r.ok(&["secret", "rotate", "API_KEY"], b"");
    assert!(
        rotated.starts_with("re-sealed global/API_KEY (version 2)"),
        "{rotated}"
    );
    r.ok(&["secret", "rm", "API_KEY"], b"");
    assert_eq!(r.kw.secret_value("global", "API_KEY"), None);
    assert!(
        !r.client.path().join("ran").exists(),
        "CMD ran despite missing secrets"
    );
    r.assert_client_untouched();
}

#[test]
fn tokens_and_agent_types_are_managed_remotely_and_policies_hold() {
    let r = Remote::start();
    r.ok(
        &["secret", "set", "OWN", "--scope", "agent_type:coder"],
        b"mine",
    );
    r.ok(
        &["secret", "set", "OTHER", "--scope", "agent_type:reviewer"],
        b"theirs",
    );
    r.ok(
        &[
            "agent-type",
            "add",
            "coder",
            "--forge",
            "forgejo",
            "--base-url",
            "http://127.0.0.1:9",
        ],
        b"",
    );
    r.ok(&["agent-type", "set-token", "coder"], b"forge-token-1\n");
    let types = r.ok(&["agent-type", "list"], b"");
    assert!(
        types.contains("coder") && types.contains("agent_type:coder/FORGE_TOKEN"),
        "{types}"
    );
    assert!(!types.contains("forge-token-1"), "{types}");
    assert_eq!(
        r.ok(&["agent-type", "token", "coder", "--reason", "check"], b"")
            .trim(),
        "forge-token-1"
    );

    let agent = r
        .ok(
            &[
                "token",
                "create",
                "--name",
                "coder-agent",
                "--role",
                "resolver",
                "--agent-type",
                "coder",
                "--ttl",
                "1h",
            ],
            b"",
        )
        .trim()
        .to_owned();
    let listed = r.ok(&["token", "list", "--json"], b"");
    assert!(
        listed.contains("coder-agent") && listed.contains(r#"\"agent_type\":\"coder\""#),
        "{listed}"
    );
    // The agent's token renders its own secrets, not another agent's.
    assert_eq!(r.ok_as(&agent, &["render"], b"${SECRET:OWN}"), "mine");
    // The walkthrough of docs/operations.md: the agent starts with its own
    // forge token and secrets in its environment, and nothing else.
    let out = r.run_as(
        &agent,
        &[
            "run",
            "--env",
            "GITHUB_TOKEN=${SECRET:FORGE_TOKEN}",
            "--env",
            "OWN=${SECRET:OWN}",
            "--",
            "sh",
            "-c",
            "printf '%s %s' \"$GITHUB_TOKEN\" \"$OWN\"",
        ],
        b"",
    );
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "forge-token-1 mine");
    // Asking for another agent's context is refused, whatever the request says.
    let out = r.run_as(
        &agent,
        &[
            "run",
            "--context",
            "agent_type=reviewer",
            "--env",
            "X=${SECRET:OTHER}",
            "--",
            "true",
        ],
        b"",
    );
    assert_eq!(code(&out), 1, "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("403"), "{}", text(&out.stderr));
    let other = r.run_as(&agent, &["render"], b"${SECRET:agent_type:reviewer/OTHER}");
    assert_eq!(code(&other), 1, "{}", text(&other.stderr));
    assert!(
        text(&other.stderr).contains("403"),
        "{}",
        text(&other.stderr)
    );
    let other = r.run_as(
        &agent,
        &[
            "secret",
            "get",
            "OTHER",
            "--scope",
            "agent_type:reviewer",
            "--reason",
            "x",
        ],
        b"",
    );
    assert_eq!(code(&other), 1, "{}", text(&other.stderr));
    assert!(!text(&other.stdout).contains("theirs"));
    // Nor operator work.
    let list = r.run_as(&agent, &["token", "list"], b"");
    assert!(text(&list.stderr).contains("403"), "{}", text(&list.stderr));
    // The refusals are on the log as denied rows.
    let tail = r.ok(&["audit", "tail", "-n", "100"], b"");
    assert!(
        tail.lines()
            .any(|l| l.contains("denied") && l.contains("agent_type:reviewer/OTHER")),
        "{tail}"
    );

    // Rotation: a new value; the old one is refused at once.
    let id = listed
        .lines()
        .find(|l| l.contains("coder-agent"))
        .and_then(|l| l.split(r#""id":""#).nth(1))
        .and_then(|rest| rest.split('"').next())
        .expect("id")
        .to_owned();
    let fresh = r.ok(&["token", "rotate", &id], b"").trim().to_owned();
    assert_ne!(fresh, agent);
    assert_eq!(r.ok_as(&fresh, &["render"], b"${SECRET:OWN}"), "mine");
    let old = r.run_as(&agent, &["render"], b"${SECRET:OWN}");
    assert!(text(&old.stderr).contains("401"), "{}", text(&old.stderr));
    r.ok(&["token", "revoke", &id], b"");
    let revoked = r.run_as(&fresh, &["render"], b"${SECRET:OWN}");
    assert!(
        text(&revoked.stderr).contains("401"),
        "{}",
        text(&revoked.stderr)
    );

    let plugins = r.ok(&["plugin", "list"], b"");
    assert!(
        plugins.contains("forgejo") && plugins.contains("sha256:"),
        "{plugins}"
    );
    let migrators = r.ok(&["migrate", "list"], b"");
    assert!(
        migrators.contains("token-dir") && migrators.contains("never run"),
        "{migrators}"
    );
    let reload = r.ok(&["plugin", "reload"], b"");
    assert!(reload.contains("forgejo"), "{reload}");
    r.ok(&["agent-type", "rm", "coder"], b"");
    assert!(!r.ok(&["agent-type", "list"], b"").contains("coder "));
    r.assert_client_untouched();
}

#[test]
fn misconfigured_or_refused_clients_fail_clearly() {
    let r = Remote::start();
    // An address without a token, a bad address, a bad token, no server.
    let mut no_token = r.cmd_as("", &["secret", "list"]);
    no_token.env_remove("KEYWARD_TOKEN");
    let out = run_with(no_token, b"");
    assert_eq!(code(&out), 78, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("KEYWARD_TOKEN"),
        "{}",
        text(&out.stderr)
    );
    for addr in ["ftp://127.0.0.1:1", "not a url", "http://"] {
        let mut cmd = r.cmd_as(&r.operator, &["secret", "list"]);
        cmd.env("KEYWARD_ADDR", addr);
        let out = run_with(cmd, b"");
        assert_eq!(code(&out), 78, "{addr}: {}", text(&out.stderr));
    }
    let out = r.run_as("kw_bad\nInjected: header", &["secret", "list"], b"");
    assert_eq!(code(&out), 78, "{}", text(&out.stderr));
    let out = r.run_as("kw_0000000000000000_nope", &["secret", "list"], b"");
    assert_eq!(code(&out), 1);
    assert!(text(&out.stderr).contains("401"), "{}", text(&out.stderr));
    let mut gone = r.cmd_as(&r.operator, &["secret", "list"]);
    gone.env("KEYWARD_ADDR", "http://127.0.0.1:1");
    let out = run_with(gone, b"");
    assert_eq!(code(&out), 1);
    assert!(
        text(&out.stderr).contains("cannot reach the Keyward server at http://127.0.0.1:1"),
        "{}",
        text(&out.stderr)
    );
    // --help says which mode is in effect, never with a password.
    let help = r.ok(&["--help"], b"");
    assert!(
        help.contains("Now: remote — KEYWARD_ADDR=http://127.0.0.1:"),
        "{help}"
    );
    let mut cmd = r.cmd_as(&r.operator, &["--help"]);
    cmd.env("KEYWARD_ADDR", "http://admin:hunter2@127.0.0.1:1");
    let out = run_with(cmd, b"");
    assert!(
        !text(&out.stdout).contains("hunter2"),
        "{}",
        text(&out.stdout)
    );
    let mut cmd = r.cmd_as(&r.operator, &["secret", "list"]);
    cmd.env("KEYWARD_ADDR", "http://admin:hunter2@127.0.0.1:1");
    let out = run_with(cmd, b"");
    assert!(
        !text(&out.stderr).contains("hunter2"),
        "{}",
        text(&out.stderr)
    );
    let local = r.kw.ok(&["--help"], b"");
    assert!(local.contains("Now: local"), "{local}");
    // Commands that work on a store directly refuse rather than surprise.
    for args in [
        &["audit", "checkpoint"][..],
        &["migrate", "run", "token-dir", "--source", "."][..],
        &["migrate", "plan", "token-dir", "--source", "."][..],
    ] {
        let out = r.run(args, b"");
        assert_eq!(code(&out), 78, "{args:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("--local"),
            "{}",
            text(&out.stderr)
        );
    }
    // A hostile name cannot change the path it is sent to.
    let out = r.run(&["secret", "rm", "../tokens"], b"");
    assert_ne!(code(&out), 0);
    assert!(r.kw.ok(&["token", "list"], b"").contains("laptop"));
    // A binary value cannot travel in JSON: refused, with the way out.
    let out = r.run(&["secret", "set", "BIN"], b"\xff\xfe");
    assert_eq!(code(&out), 1);
    assert!(
        text(&out.stderr).contains("--local"),
        "{}",
        text(&out.stderr)
    );
    // --local ignores the address: here it has no key, so it says so.
    let out = r.run(&["--local", "secret", "list"], b"");
    assert_eq!(code(&out), 78, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("KEYWARD_MASTER_KEY"),
        "{}",
        text(&out.stderr)
    );
    r.assert_client_untouched();
}

/// `secret set --cas N`, locally and through the server: a stale version
/// writes nothing and says which version is current; 0 means "only if it
/// does not exist yet"; `--cas` with `--create-only` is a usage error.
#[test]
fn secret_set_cas_checks_the_version_locally_and_remotely() {
    let r = Remote::start();
    let local = &r.kw;
    assert!(local
        .ok(
            &["secret", "set", "CAS_ME", "--local", "--cas", "0"],
            b"one"
        )
        .contains("created global/CAS_ME (version 1)"));
    let stale = local.run(
        &["secret", "set", "CAS_ME", "--local", "--cas", "0"],
        b"two",
    );
    assert_eq!(code(&stale), 1, "{}", text(&stale.stderr));
    assert!(
        text(&stale.stderr).contains("is at version 1, not 0"),
        "{}",
        text(&stale.stderr)
    );
    assert!(local
        .ok(
            &["secret", "set", "CAS_ME", "--local", "--cas", "1"],
            b"two"
        )
        .contains("(version 2)"));
    let stale = local.run(
        &["secret", "set", "CAS_ME", "--local", "--cas", "1"],
        b"three",
    );
    assert_eq!(code(&stale), 1);
    assert!(text(&stale.stderr).contains("is at version 2, not 1"));

    // Through the server.
    let stale = r.run(&["secret", "set", "CAS_ME", "--cas", "1"], b"three");
    assert_eq!(code(&stale), 1, "{}", text(&stale.stderr));
    assert!(
        text(&stale.stderr).contains("409") && text(&stale.stderr).contains("is at version 2"),
        "{}",
        text(&stale.stderr)
    );
    assert!(r
        .ok(&["secret", "set", "CAS_ME", "--cas", "2"], b"three")
        .contains("(version 3)"));
    // A check-and-set never creates what is not there (but 0 does).
    let absent = r.run(&["secret", "set", "NOT_THERE", "--cas", "4"], b"x");
    assert_ne!(code(&absent), 0);
    assert!(r
        .ok(&["secret", "set", "NOT_THERE", "--cas", "0"], b"x")
        .contains("(version 1)"));
    let both = r.run(&["secret", "set", "X", "--cas", "1", "--create-only"], b"x");
    assert_eq!(code(&both), 2, "{}", text(&both.stderr));
    let bad = r.run(&["secret", "set", "X", "--cas", "-1"], b"x");
    assert_eq!(code(&bad), 2, "{}", text(&bad.stderr));
    assert_eq!(
        local.ok(
            &["secret", "get", "CAS_ME", "--local", "--reason", "check"],
            b""
        ),
        "three"
    );
    r.assert_client_untouched();
}

/// `secret versions`, `secret get --version` and `secret rollback`,
/// locally and through the server.
#[test]
fn versions_and_rollback_from_the_cli() {
    let r = Remote::start();
    let local = &r.kw;
    local.ok(&["secret", "set", "ROLL", "--local"], b"first-value");
    local.ok(&["secret", "set", "ROLL", "--local"], b"second-value");
    for out in [
        local.ok(&["secret", "versions", "ROLL", "--local"], b""),
        r.ok(&["secret", "versions", "ROLL"], b""),
    ] {
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[1].trim_start().starts_with("2 current"), "{out}");
        assert!(lines[2].trim_start().starts_with("1 kept"), "{out}");
        assert!(!out.contains("first-value"), "{out}");
    }
    let json = r.ok(&["secret", "versions", "ROLL", "--json"], b"");
    assert_eq!(json.lines().count(), 2, "{json}");
    assert_eq!(
        r.ok(
            &[
                "secret",
                "get",
                "ROLL",
                "--version",
                "1",
                "--reason",
                "compare"
            ],
            b""
        ),
        "first-value"
    );
    assert_eq!(
        local.ok(
            &[
                "secret",
                "get",
                "ROLL",
                "--local",
                "--version",
                "1",
                "--reason",
                "compare"
            ],
            b""
        ),
        "first-value"
    );
    let out = r.ok(
        &[
            "secret",
            "rollback",
            "ROLL",
            "--to",
            "1",
            "--reason",
            "bad rotation",
        ],
        b"",
    );
    assert!(
        out.contains("back to the value of version 1 (now version 3)"),
        "{out}"
    );
    assert_eq!(
        local.ok(
            &["secret", "get", "ROLL", "--local", "--reason", "check"],
            b""
        ),
        "first-value"
    );
    let out = local.ok(
        &[
            "secret", "rollback", "ROLL", "--local", "--to", "2", "--reason", "undo it",
        ],
        b"",
    );
    assert!(out.contains("(now version 4)"), "{out}");
    // Hostile or impossible: exit non-zero, nothing written.
    for args in [
        vec!["secret", "get", "ROLL", "--version", "0", "--reason", "x"],
        vec!["secret", "get", "ROLL", "--version", "99", "--reason", "x"],
        vec!["secret", "rollback", "ROLL", "--to", "4", "--reason", "x"],
        vec!["secret", "rollback", "ROLL", "--to", "1"],
        vec!["secret", "rollback", "ROLL", "--to", "one", "--reason", "x"],
    ] {
        let out = r.run(&args, b"");
        assert_ne!(code(&out), 0, "{args:?}");
    }
    let out = local.ok(&["secret", "versions", "ROLL", "--local"], b"");
    assert!(
        out.lines()
            .nth(1)
            .unwrap_or("")
            .trim_start()
            .starts_with("4 current"),
        "{out}"
    );
    r.assert_client_untouched();
}

/// `secret rm` deletes softly (renders miss, `secret deleted` lists it,
/// `secret undelete` restores it), `rm --destroy` is final, `set
/// --max-versions` bounds one secret; each locally and through a server.
/// A server whose retention is short purges a deletion by itself, logged as
/// `keyward:purge`.
#[test]
fn soft_delete_undelete_destroy_and_the_purge_from_the_cli() {
    let kw = Kw::new();
    let operator = kw.token("laptop", "operator");
    let mut serve = kw.cmd(&["serve", "--listen", "127.0.0.1:0"]);
    serve.env("KEYWARD_DELETE_RETENTION", "2s");
    let served = crate::support::kw::Served::spawn(serve, &kw.dir.path().join("serve.log"));
    let r = Remote {
        kw,
        served,
        client: tempfile::tempdir().expect("client dir"),
        operator,
    };
    let local = &r.kw;
    for (who, via_server) in [("LOCAL", false), ("REMOTE", true)] {
        let run = |args: &[&str], stdin: &[u8]| {
            let mut args = args.to_vec();
            if via_server {
                r.ok(&args, stdin)
            } else {
                args.push("--local");
                local.ok(&args, stdin)
            }
        };
        let name = format!("{who}_GONE");
        run(&["secret", "set", &name], b"value-one");
        run(&["secret", "set", &name], b"value-two");
        let out = run(&["secret", "rm", &name], b"");
        assert!(out.contains("secret undelete"), "{out}");
        let get = local.run(&["secret", "get", &name, "--reason", "r"], b"");
        assert_ne!(code(&get), 0, "a deleted secret was read");
        assert!(!run(&["secret", "list"], b"").contains(&name));
        let listed = run(&["secret", "deleted", "--json"], b"");
        let row: serde_json::Value = serde_json::from_str(
            listed
                .lines()
                .find(|l| l.contains(&name))
                .unwrap_or_else(|| panic!("{name} not in {listed}")),
        )
        .expect("json");
        assert_eq!(row["version"], 2);
        assert!(run(&["secret", "deleted"], b"").contains("UNDELETABLE UNTIL"));
        let out = run(&["secret", "undelete", &name], b"");
        assert!(out.contains("(version 2)"), "{out}");
        assert_eq!(
            local.ok(&["secret", "get", &name, "--reason", "r"], b""),
            "value-two"
        );
        let out = run(&["secret", "set", &name, "--max-versions", "1"], b"value-3");
        assert!(out.contains("keeps 1 version(s)"), "{out}");
        let versions = local.ok(&["secret", "versions", &name], b"");
        assert_eq!(versions.matches("kept").count(), 0, "{versions}");
        let out = run(&["secret", "rm", &name, "--destroy"], b"");
        assert!(out.contains("destroyed"), "{out}");
        let again = local.run(&["secret", "undelete", &name], b"");
        assert_ne!(code(&again), 0, "a destroyed secret came back");
        for bad in [
            vec!["secret", "set", &name, "--max-versions", "-1"],
            vec!["secret", "set", &name, "--max-versions", "10001"],
            vec!["secret", "undelete", "bad name!"],
            vec!["secret", "rm", &name, "--destroy=maybe"],
        ] {
            let out = if via_server {
                r.run(&bad, b"v")
            } else {
                let mut args = bad.clone();
                args.push("--local");
                local.run(&args, b"v")
            };
            assert_ne!(code(&out), 0, "{bad:?}");
        }
    }

    // The server's purge: deleted, then gone once the 2 s window passed.
    r.ok(&["secret", "set", "PURGED"], b"old-value");
    r.ok(&["secret", "rm", "PURGED"], b"");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while r.ok(&["secret", "deleted"], b"").contains("PURGED") {
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not purge a deletion past its window"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let tail = local.ok(&["audit", "tail", "-n", "5", "--json"], b"");
    assert!(
        tail.lines()
            .any(|l| l.contains("keyward:purge") && l.contains("PURGED") && l.contains("destroy")),
        "{tail}"
    );
    r.assert_client_untouched();

    // A bad retention stops the server before it serves (exit 78).
    for bad in ["0s", "7", "-1d", "366d", "1w"] {
        let mut cmd = r.kw.cmd(&["secret", "list"]);
        cmd.env("KEYWARD_DELETE_RETENTION", bad);
        let out = run_with(cmd, b"");
        assert_eq!(code(&out), 78, "{bad}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains("KEYWARD_DELETE_RETENTION"));
    }
}

/// `--output json` prints the same document locally and through a server
/// (one typed view behind both, and behind `GET /plugins`), and an unknown
/// format is refused before anything runs.
#[test]
fn json_output_is_the_same_locally_and_through_the_server() {
    let r = Remote::start();
    let json = |s: &str| -> serde_json::Value {
        serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
    };
    let local = json(&r.kw.ok(&["plugin", "list", "--output", "json"], b""));
    let remote = json(&r.ok(&["--output", "json", "plugin", "list"], b""));
    let plugins = |v: &serde_json::Value| -> Vec<(String, String, String)> {
        v["plugins"]
            .as_array()
            .expect("plugins")
            .iter()
            .map(|p| {
                let s = |k: &str| {
                    p[k].as_str()
                        .unwrap_or_else(|| panic!("{k} in {p}"))
                        .to_owned()
                };
                (s("name"), s("kind"), s("sha256"))
            })
            .collect()
    };
    assert!(
        plugins(&local)
            .iter()
            .any(|(n, k, _)| n == "github" && k == "forge"),
        "{local}"
    );
    assert_eq!(plugins(&local), plugins(&remote));
    assert_eq!(local["refused"], serde_json::json!([]));
    assert_eq!(
        remote["plugins"][0]["grants"],
        local["plugins"][0]["grants"]
    );

    // migrate list: one object per line, migrators only, never run yet.
    for out in [
        r.kw.ok(&["migrate", "list", "--output", "json"], b""),
        r.ok(&["migrate", "list", "--output", "json"], b""),
    ] {
        let migrators: Vec<serde_json::Value> = out.lines().map(json).collect();
        assert!(migrators.iter().any(|m| m["name"] == "token-dir"), "{out}");
        assert!(
            migrators
                .iter()
                .all(|m| m["kind"] == "migrator" && m["last_run"].is_null()),
            "{out}"
        );
    }

    // audit verify: the server's verdict has the local one's shape.
    r.ok(&["secret", "set", "JSON_OUT"], b"value-1");
    for out in [
        r.kw.ok(&["audit", "verify", "--output", "json"], b""),
        r.ok(&["audit", "verify", "--output", "json"], b""),
    ] {
        let verdict = json(&out);
        assert_eq!(verdict["intact"], true, "{out}");
        assert!(verdict["rows"].as_i64().is_some_and(|n| n > 0), "{out}");
        assert_eq!(verdict["checkpoints"], serde_json::json!([]), "{out}");
    }

    // An unknown format: a usage error naming the choices, nothing printed.
    for args in [
        &["--output", "yaml", "plugin", "list"][..],
        &["audit", "verify", "--output="],
    ] {
        let out = r.run(args, b"");
        assert_eq!(code(&out), 2, "{args:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("[possible values: text, json]"),
            "{}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty());
    }
    r.assert_client_untouched();
}
