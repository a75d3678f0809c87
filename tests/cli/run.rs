//! `keyward run … -- CMD` (secrets in CMD's environment, never on disk) and
//! `keyward render --out FILE` (atomic, owner-only).

use crate::{code, text, Kw};

/// A value no other test uses, so finding it on disk means this run put it
/// there.
fn marker() -> String {
    let mut bytes = [0u8; 12];
    getrandom::getrandom(&mut bytes).expect("random");
    format!("run-secret-{}", hex::encode(bytes))
}

/// Every regular file under `dir` (not following links) modified since
/// `since` whose bytes contain `needle`.
fn files_holding(
    dir: &std::path::Path,
    needle: &[u8],
    since: std::time::SystemTime,
) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if meta.is_dir() {
            found.extend(files_holding(&entry.path(), needle, since));
        } else if meta.is_file()
            && meta.len() < 64 << 20
            && meta.modified().is_ok_and(|m| m >= since)
        {
            if let Ok(bytes) = std::fs::read(entry.path()) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(entry.path().display().to_string());
                }
            }
        }
    }
    found
}

#[test]
fn run_puts_rendered_secrets_in_the_environment_and_nowhere_else() {
    let kw = Kw::new();
    let value = marker();
    let since = std::time::SystemTime::now() - std::time::Duration::from_secs(2);
    kw.ok(&["secret", "set", "API_KEY"], value.as_bytes());
    kw.ok(
        &["secret", "set", "DB_PASS", "--scope", "agent_type:coder"],
        b"pw",
    );
    let env_file = kw.dir.path().join("agent.env");
    std::fs::write(
        &env_file,
        "# the agent's database\n\nDB_URL=postgres://app:${SECRET:DB_PASS}@db/app\n",
    )
    .expect("env file");
    let out = kw.run(
        &[
            "run",
            "--env",
            "API_KEY=${SECRET:API_KEY}",
            "--env",
            "GREETING=hello",
            "--env-file",
            env_file.to_str().expect("utf-8"),
            "--context",
            "agent_type=coder",
            "--reason",
            "start the coder agent",
            "--",
            "sh",
            "-c",
            "printf '%s|%s|%s' \"$API_KEY\" \"$GREETING\" \"$DB_URL\"",
        ],
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("{value}|hello|postgres://app:pw@db/app")
    );
    // One log row per secret, with the reason.
    let log = kw.ok(&["audit", "tail", "--json"], b"");
    let rows: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("start the coder agent"))
        .collect();
    assert_eq!(rows.len(), 2, "{log}");
    assert!(rows.iter().any(|r| r.contains("API_KEY")), "{log}");
    assert!(rows.iter().any(|r| r.contains("DB_PASS")), "{log}");
    // The value is in no file this run wrote: not in the data folder (the
    // store holds it sealed) and not under the temporary folder.
    for dir in [kw.dir.path(), &std::env::temp_dir()] {
        let found = files_holding(dir, value.as_bytes(), since);
        assert!(found.is_empty(), "the value is on disk in {found:?}");
    }
}

#[test]
fn run_passes_the_exit_code_on() {
    let kw = Kw::new();
    let out = kw.run(&["run", "--env", "X=1", "--", "sh", "-c", "exit 42"], b"");
    assert_eq!(code(&out), 42, "{}", text(&out.stderr));
    let out = kw.run(&["run", "--", "keyward-no-such-command-here"], b"");
    assert_eq!(code(&out), 127, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("cannot run"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_missing_secret_fails_before_the_command_starts_and_every_one_is_named() {
    let kw = Kw::new();
    kw.ok(&["secret", "set", "HERE"], b"present");
    let started = kw.dir.path().join("started");
    let out = kw.run(
        &[
            "run",
            "--env",
            "A=${SECRET:HERE}",
            "--env",
            "B=${SECRET:NOT_HERE} and ${SECRET:ALSO_MISSING}",
            "--",
            "touch",
            started.to_str().expect("utf-8"),
        ],
        b"",
    );
    assert_eq!(code(&out), 3, "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("NOT_HERE") && stderr.contains("ALSO_MISSING"),
        "{stderr}"
    );
    assert!(!started.exists(), "the command ran");
}

#[test]
fn hostile_run_input_is_refused_before_anything_runs() {
    let kw = Kw::new();
    kw.ok(&["secret", "set", "NUL_VALUE"], b"a\0b");
    let started = kw.dir.path().join("started");
    let touch = started.to_str().expect("utf-8");
    for (args, needle) in [
        (vec!["--env", "1BAD=x"], "not a variable name"),
        (vec!["--env", "A-B=x"], "not a variable name"),
        (vec!["--env", "NOEQUALS"], "NAME=TEMPLATE"),
        (vec!["--env", "A=x", "--env", "A=y"], "more than once"),
        (vec!["--env", "A=${SECRET:"], "template of A"),
        (vec!["--env", "A=${SECRET:NUL_VALUE}"], "NUL"),
        (
            vec!["--env-file", "/nonexistent/keyward.env"],
            "cannot read the env file",
        ),
    ] {
        let mut all = vec!["run"];
        all.extend(args.iter().copied());
        all.extend(["--", "touch", touch]);
        let out = kw.run(&all, b"");
        let stderr = text(&out.stderr);
        assert_ne!(code(&out), 0, "{args:?}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!started.exists(), "{args:?}: the command ran");
    }
    // No command at all is a usage error.
    let out = kw.run(&["run", "--env", "A=x"], b"");
    assert_eq!(code(&out), 2, "{}", text(&out.stderr));
}

#[test]
fn render_out_writes_an_owner_only_file_in_one_step() {
    use std::os::unix::fs::PermissionsExt;
    let kw = Kw::new();
    kw.ok(&["secret", "set", "TOKEN"], b"t0ken");
    let target = kw.dir.path().join("agent.conf");
    std::fs::write(&target, "old contents").expect("old file");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = kw.run(
        &["render", "--out", target.to_str().expect("utf-8")],
        b"token = ${SECRET:TOKEN}\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "nothing on stdout");
    assert_eq!(
        std::fs::read_to_string(&target).expect("read"),
        "token = t0ken\n"
    );
    let mode = std::fs::metadata(&target)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(kw.dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("agent.conf"))
        .collect();
    assert_eq!(names, ["agent.conf"]);
    // A missing secret leaves the old file as it was.
    let out = kw.run(
        &["render", "--out", target.to_str().expect("utf-8")],
        b"token = ${SECRET:GONE}\n",
    );
    assert_eq!(code(&out), 3);
    assert_eq!(
        std::fs::read_to_string(&target).expect("read"),
        "token = t0ken\n"
    );
}
