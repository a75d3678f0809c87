//! `secret`, `render` and `audit` commands, with hostile input.

use crate::{code, text, Kw};

#[test]
fn set_get_list_rotate_rm_round_trip() {
    let kw = Kw::new();
    assert_eq!(
        kw.ok(
            &["secret", "set", "GITHUB_TOKEN", "--description", "forge"],
            b"ghp_abc\n"
        ),
        "created global/GITHUB_TOKEN (version 1)\n"
    );
    assert_eq!(
        kw.ok(&["secret", "set", "GITHUB_TOKEN"], b"ghp_def\r\n"),
        "replaced global/GITHUB_TOKEN (version 2)\n"
    );
    assert_eq!(
        kw.ok(
            &["secret", "get", "GITHUB_TOKEN", "--reason", "deploy"],
            b""
        ),
        "ghp_def"
    );
    kw.ok(&["secret", "set", "NL", "--keep-newline"], b"line\n");
    assert_eq!(
        kw.ok(&["secret", "get", "NL", "--reason", "r"], b""),
        "line\n"
    );

    let file = kw.dir.path().join("value.txt");
    std::fs::write(&file, b"from-file\n").expect("write");
    kw.ok(
        &[
            "secret",
            "set",
            "F",
            "--scope",
            "agent_type:coder",
            "--from-file",
            file.to_str().expect("utf8"),
        ],
        b"",
    );
    assert_eq!(
        kw.ok(
            &[
                "secret",
                "get",
                "F",
                "--scope",
                "agent_type:coder",
                "--reason",
                "r"
            ],
            b""
        ),
        "from-file"
    );

    // Names and the access log are not sealed: the SQLite file is private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(kw.dir.path().join("keyward.db"))
        .expect("db file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let list = kw.ok(&["secret", "list"], b"");
    assert!(
        list.contains("GITHUB_TOKEN")
            && list.contains("forge")
            && list.contains("agent_type:coder"),
        "{list}"
    );
    let json = kw.ok(&["secret", "list", "--json"], b"");
    assert_eq!(json.lines().count(), 3);
    for value in ["ghp_abc", "ghp_def", "from-file"] {
        assert!(!list.contains(value) && !json.contains(value));
    }
    let rotated = kw.ok(&["secret", "rotate", "GITHUB_TOKEN"], b"");
    assert!(
        rotated.starts_with("re-sealed global/GITHUB_TOKEN (version 2)"),
        "{rotated}"
    );
    let removed = kw.ok(&["secret", "rm", "GITHUB_TOKEN"], b"");
    assert!(
        removed.starts_with("deleted global/GITHUB_TOKEN;") && removed.contains("secret undelete"),
        "{removed}"
    );
    let out = kw.run(&["secret", "get", "GITHUB_TOKEN", "--reason", "r"], b"");
    assert_eq!(code(&out), 3, "a missing secret has its own exit code");
    assert!(text(&out.stderr).contains("missing secrets: global/GITHUB_TOKEN"));

    let tail = kw.ok(&["audit", "tail", "-n", "100"], b"");
    for needle in [
        "create",
        "replace",
        "reveal",
        "reseal",
        "delete",
        "missing",
        "by cli:tester — deploy",
    ] {
        assert!(tail.contains(needle), "{needle} not in {tail}");
    }
    assert!(!tail.contains("ghp_"), "values never reach the log");
    let json = kw.ok(&["audit", "tail", "--json", "-n", "1"], b"");
    let row: serde_json::Value = serde_json::from_str(json.trim()).expect("json row");
    assert_eq!(row["outcome"], "missing");
    assert_eq!(
        kw.ok(&["audit", "verify"], b""),
        format!("OK: {} rows, chain intact\n", row["seq"])
    );
}

#[test]
fn hostile_input_gets_a_clear_error_and_writes_nothing() {
    let kw = Kw::new();
    let big = vec![b'x'; 64 * 1024 + 1];
    let cases: Vec<(Vec<&str>, Vec<u8>, &str)> = vec![
        (
            vec!["secret", "set", "bad name"],
            b"v".to_vec(),
            "invalid secret name",
        ),
        (
            vec!["secret", "set", "../etc/passwd"],
            b"v".to_vec(),
            "invalid secret name",
        ),
        (
            vec!["secret", "set", "X", "--scope", "Global"],
            b"v".to_vec(),
            "invalid scope",
        ),
        (
            vec!["secret", "set", "X", "--scope", "agent_type:"],
            b"v".to_vec(),
            "invalid scope",
        ),
        (
            vec!["secret", "set", "X"],
            b"".to_vec(),
            "the value is empty",
        ),
        (
            vec!["secret", "set", "X"],
            b"\n".to_vec(),
            "the value is empty",
        ),
        (
            vec!["secret", "set", "X"],
            big.clone(),
            "larger than 65536 bytes",
        ),
        (
            vec!["secret", "set", "X", "--description", "a\u{1b}[2Jb"],
            b"v".to_vec(),
            "invalid description",
        ),
        (
            vec!["secret", "set", "X", "--from-file", "/nonexistent/file"],
            b"".to_vec(),
            "cannot read /nonexistent/file",
        ),
        (
            vec!["secret", "get", "X", "--reason", ""],
            b"".to_vec(),
            "invalid reason",
        ),
        (
            vec!["secret", "get", "X", "--reason", "a\nb"],
            b"".to_vec(),
            "invalid reason",
        ),
        (
            vec!["secret", "list", "--scope", "nope"],
            b"".to_vec(),
            "invalid scope",
        ),
        (
            vec!["render", "--context", "tenant=x"],
            b"".to_vec(),
            "unknown context key",
        ),
        (
            vec!["render", "--context", "instance"],
            b"".to_vec(),
            "must be key=value",
        ),
        (vec!["render"], b"${SECRET:A".to_vec(), "line 1, column 1"),
        (
            vec!["render"],
            b"ok\n${SECRET:bad name}".to_vec(),
            "line 2, column 1",
        ),
        (vec!["render"], vec![0xff, 0xfe], "not UTF-8"),
    ];
    for (args, stdin, needle) in cases {
        let out = kw.run(&args, &stdin);
        let err = text(&out.stderr);
        assert_eq!(code(&out), 1, "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: expected {needle:?} in {err}"
        );
        assert!(err.len() < 1000, "errors stay short: {err}");
    }
    let out = kw.run(&["secret", "get"], b"");
    assert_eq!(code(&out), 2, "usage errors are clap's");
    let out = kw.run(&["secret", "get", "X"], b"");
    assert_eq!(code(&out), 2, "--reason is required");
    // Nothing was stored by any refused command.
    assert_eq!(kw.ok(&["secret", "list", "--json"], b""), "");
}

#[test]
fn render_substitutes_resolves_and_names_every_missing_secret() {
    let kw = Kw::new();
    kw.ok(&["secret", "set", "TOKEN"], b"global-token");
    kw.ok(
        &["secret", "set", "TOKEN", "--scope", "agent_type:coder"],
        b"coder-token",
    );
    let out = kw.ok(
        &["render", "--context", "agent_type=coder", "--reason", "dispatch"],
        b"token = \"${SECRET:TOKEN}\"\nglobal = ${SECRET:global/TOKEN}\nliteral = $${SECRET:TOKEN}\n",
    );
    assert_eq!(
        out,
        "token = \"coder-token\"\nglobal = global-token\nliteral = ${SECRET:TOKEN}\n"
    );
    let plain = "no placeholders here: ${HOME} $$ é\n";
    assert_eq!(kw.ok(&["render"], plain.as_bytes()), plain);

    let out = kw.run(
        &["render"],
        b"${SECRET:TOKEN} ${SECRET:A} ${SECRET:instance:i-1/B}",
    );
    assert_eq!(code(&out), 3);
    assert!(out.stdout.is_empty(), "no partial text");
    assert!(
        text(&out.stderr).contains("missing secrets: A, instance:i-1/B"),
        "{}",
        text(&out.stderr)
    );
    let tail = kw.ok(&["audit", "tail", "-n", "3"], b"");
    assert!(
        tail.contains("withheld") && tail.contains("missing"),
        "{tail}"
    );
}

#[test]
fn audit_verify_reports_the_first_bad_row() {
    let kw = Kw::new();
    kw.ok(&["secret", "set", "S"], b"v");
    for _ in 0..4 {
        kw.ok(&["secret", "get", "S", "--reason", "r"], b"");
    }
    assert_eq!(
        kw.ok(&["audit", "verify"], b""),
        "OK: 5 rows, chain intact\n"
    );
    let db = kw.dir.path().join("keyward.db");
    let url = format!("sqlite://{}", db.display());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("open");
        sqlx::raw_sql(
            "DROP TRIGGER secret_access_log_no_update; \
             UPDATE secret_access_log SET reason = 'innocent' WHERE seq = 3",
        )
        .execute(&mut conn)
        .await
        .expect("tamper");
    });
    let out = kw.run(&["audit", "verify"], b"");
    assert_eq!(code(&out), 4);
    assert!(
        text(&out.stdout).starts_with("BROKEN at row 3: MAC mismatch"),
        "{}",
        text(&out.stdout)
    );
    // The same verdict for scripts, with the same exit code.
    let out = kw.run(&["audit", "verify", "--output", "json"], b"");
    assert_eq!(code(&out), 4);
    let verdict: serde_json::Value = serde_json::from_str(&text(&out.stdout)).expect("JSON");
    assert_eq!(verdict["intact"], false, "{verdict}");
    assert_eq!(verdict["broken_at"], 3, "{verdict}");
    assert!(
        verdict["problem"]
            .as_str()
            .unwrap_or("")
            .contains("MAC mismatch"),
        "{verdict}"
    );
    assert!(verdict.get("rows").is_none(), "{verdict}");
}

#[test]
fn the_cli_works_against_postgres_too() {
    let db = tokio::runtime::Runtime::new()
        .expect("rt")
        .block_on(crate::support::TestDb::postgres());
    let kw = Kw {
        database_url: Some(db.url.clone()),
        ..Kw::new()
    };
    kw.ok(&["secret", "set", "PG"], b"pg-value");
    assert_eq!(
        kw.ok(&["secret", "get", "PG", "--reason", "r"], b""),
        "pg-value"
    );
    assert_eq!(
        kw.ok(&["audit", "verify"], b""),
        "OK: 2 rows, chain intact\n"
    );
    assert!(
        !kw.dir.path().join("keyward.db").exists(),
        "no SQLite file when a URL is given"
    );
}

#[test]
fn every_command_has_help() {
    let kw = Kw::new();
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["key", "--help"],
        vec!["key", "generate", "--help"],
        vec!["key", "rotate", "--help"],
        vec!["secret", "--help"],
        vec!["secret", "set", "--help"],
        vec!["secret", "get", "--help"],
        vec!["secret", "list", "--help"],
        vec!["secret", "rm", "--help"],
        vec!["secret", "rotate", "--help"],
        vec!["render", "--help"],
        vec!["audit", "--help"],
        vec!["audit", "tail", "--help"],
        vec!["audit", "verify", "--help"],
        vec!["audit", "checkpoint", "--help"],
    ] {
        let out = kw.ok(&args, b"");
        assert!(out.contains("Usage: keyward"), "{args:?}: {out}");
    }
}

/// `KEYWARD_MAX_VERSIONS` (or `max_versions` in the configuration file)
/// sets how many versions a secret keeps; older ones are destroyed. A bad
/// value stops the command with exit 78 before anything is written.
#[test]
fn max_versions_bounds_the_history_and_bad_values_are_refused() {
    let kw = Kw::new();
    let with = |n: &str, args: &[&str], stdin: &[u8]| {
        let mut cmd = kw.cmd(args);
        cmd.env("KEYWARD_MAX_VERSIONS", n);
        crate::run_with(cmd, stdin)
    };
    for i in 1..=4 {
        let out = with(
            "2",
            &["secret", "set", "KEPT_TWO"],
            format!("value-{i}").as_bytes(),
        );
        assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    }
    let out = kw.ok(&["secret", "versions", "KEPT_TWO"], b"");
    let states: Vec<&str> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(1).unwrap_or(""))
        .collect();
    assert_eq!(
        states,
        ["current", "kept", "destroyed", "destroyed"],
        "{out}"
    );
    let old = kw.run(
        &[
            "secret",
            "get",
            "KEPT_TWO",
            "--version",
            "2",
            "--reason",
            "r",
        ],
        b"",
    );
    assert_ne!(code(&old), 0, "a destroyed version was read");
    for bad in ["abc", "-1", "10001", "+3", "2.5"] {
        let out = with(bad, &["secret", "set", "KEPT_TWO"], b"value-bad");
        assert_eq!(
            code(&out),
            78,
            "KEYWARD_MAX_VERSIONS={bad}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("KEYWARD_MAX_VERSIONS"),
            "{}",
            text(&out.stderr)
        );
    }
    assert_eq!(
        kw.ok(&["secret", "get", "KEPT_TWO", "--reason", "r"], b""),
        "value-4",
        "a refused command wrote"
    );
    // The same from the configuration file: a number, not a string.
    let file = kw.dir.path().join("keyward.toml");
    std::fs::write(&file, "max_versions = 1\n").expect("write");
    let config = file.to_str().expect("utf-8");
    kw.ok(
        &["--config", config, "secret", "set", "KEPT_TWO"],
        b"value-5",
    );
    let out = kw.ok(&["secret", "versions", "KEPT_TWO"], b"");
    assert!(
        out.lines().nth(2).unwrap_or("").contains("destroyed"),
        "{out}"
    );
    std::fs::write(&file, "max_versions = \"1\"\n").expect("write");
    let out = kw.run(
        &["--config", config, "secret", "set", "KEPT_TWO"],
        b"value-6",
    );
    assert_eq!(code(&out), 78, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("whole number of versions"),
        "{}",
        text(&out.stderr)
    );
}
