//! The built-in migrator plugins other than `token-dir`, end to end through
//! the real binary: `agents-json`, `account-credentials`, `key-prefix` and
//! `openbao-kv` (against a real OpenBao dev server).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::kw::http;
use crate::{code, text, Kw};

fn get(kw: &Kw, scope: &str, name: &str) -> Option<String> {
    kw.secret_value(scope, name)
}

fn migrate(kw: &Kw, args: &[&str]) -> Output {
    kw.migrate(args)
}

/// A fresh legacy folder `name` under the test's data folder.
/// `keyward migrate run ARGS…`, which must succeed with `summary` (`NAME: N
/// migrated, N skipped, N failed`) in its output; the output.
fn migrate_ok(kw: &Kw, args: &[&str], summary: &str) -> String {
    let mut full = vec!["migrate", "run"];
    full.extend_from_slice(args);
    let out = kw.ok(&full, b"");
    assert!(out.contains(summary), "{out}");
    out
}

fn legacy(kw: &Kw, name: &str) -> PathBuf {
    let dir = kw.dir.path().join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, bytes).expect("write");
}

fn utf8(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// The report line of item `id` (lines start with the id, then spaces).
fn line_of<'a>(stdout: &'a str, id: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| {
            l.strip_prefix(id)
                .is_some_and(|rest| rest.starts_with("  "))
        })
        .unwrap_or_else(|| panic!("no line for {id}: {stdout}"))
}

/// Asserts that item `id`'s report line contains `text` (its target, say).
fn assert_line(stdout: &str, id: &str, text: &str) {
    assert!(line_of(stdout, id).contains(text), "{stdout}");
}

fn assert_failed(stdout: &str, id: &str, reason: &str) {
    let line = line_of(stdout, id);
    assert!(
        line.contains("FAILED") && line.contains(reason),
        "{id} should fail with {reason:?}: {line}"
    );
}

fn bak(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).expect("name");
    path.with_file_name(format!(".{name}.migrated.bak"))
}

/// A child process killed (and reaped) when dropped, also on a panic.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------- agents-json

#[test]
fn agents_json_migrates_token_files_and_runs_once() {
    let kw = Kw::new();
    let src = legacy(&kw, "agents");
    write(
        &src.join("agents.json"),
        r#"{"agents": [
            {"name": "coder", "token_file": "tokens/coder", "model": "x"},
            {"name": "reviewer", "token_file": "./tokens/reviewer"},
            {"name": "plain"}
        ]}"#,
    );
    write(&src.join("tokens/coder"), "coder-token-0123456789\n");
    write(&src.join("tokens/reviewer"), "  reviewer-token-abcdef  \n");
    let agents_before = std::fs::read(src.join("agents.json")).expect("read");

    let out = migrate_ok(
        &kw,
        &["agents-json", "--source", utf8(&src)],
        "agents-json: 2 migrated, 0 skipped, 0 failed",
    );
    assert_line(&out, "tokens/coder", "agent_type:coder/FORGE_TOKEN");
    kw.assert_secret(
        "agent_type:coder",
        "FORGE_TOKEN",
        Some("coder-token-0123456789"),
    );
    assert_eq!(
        get(&kw, "agent_type:reviewer", "FORGE_TOKEN").as_deref(),
        Some("reviewer-token-abcdef"),
        "the token is trimmed"
    );
    kw.assert_secret("agent_type:plain", "FORGE_TOKEN", None);
    for agent in ["coder", "reviewer"] {
        let file = src.join("tokens").join(agent);
        assert!(!file.exists(), "{agent} was not retired");
        assert!(bak(&file).is_file(), "{agent} has no .bak");
    }
    assert_eq!(
        std::fs::read_to_string(bak(&src.join("tokens/coder"))).expect("bak"),
        "coder-token-0123456789\n"
    );
    assert_eq!(
        std::fs::read(src.join("agents.json")).expect("read"),
        agents_before,
        "agents.json itself is never modified"
    );

    let again = kw.ok(
        &["migrate", "run", "agents-json", "--source", utf8(&src)],
        b"",
    );
    assert!(again.contains("finished before"), "{again}");
    migrate_ok(
        &kw,
        &["agents-json", "--source", utf8(&src), "--again"],
        "0 migrated, 0 skipped, 0 failed",
    );
}

#[test]
fn agents_json_refuses_escaping_and_shared_token_files_one_by_one() {
    let kw = Kw::new();
    let src = legacy(&kw, "agents");
    write(
        &src.join("agents.json"),
        r#"[
            {"name": "good", "token_file": "tokens/good"},
            {"name": "abs", "token_file": "/etc/hostname"},
            {"name": "dots", "token_file": "../outside"},
            {"name": "sneaky", "token_file": "tokens/../../outside"},
            {"name": "first", "token_file": "tokens/shared"},
            {"name": "second", "token_file": "tokens/shared"},
            {"name": "missing", "token_file": "tokens/missing"},
            {"name": "bad name!", "token_file": "tokens/good2"}
        ]"#,
    );
    write(&src.join("tokens/good"), "good-token-0123456789");
    write(&src.join("tokens/good2"), "good2-token-0123456789");
    write(&src.join("tokens/shared"), "shared-token-0123456789");
    write(&kw.dir.path().join("outside"), "outside-token-0123456789");

    let stdout = kw.migrate_failing(&["agents-json", "--source", utf8(&src)], "1 migrated");
    assert_failed(
        &stdout,
        "agents.json#abs",
        "relative path inside the source folder",
    );
    assert_failed(
        &stdout,
        "agents.json#dots",
        "relative path inside the source folder",
    );
    assert_failed(
        &stdout,
        "agents.json#sneaky",
        "relative path inside the source folder",
    );
    assert_failed(&stdout, "tokens/shared", "more than one agent");
    assert_failed(&stdout, "tokens/missing", "not found");
    assert_failed(
        &stdout,
        "agents.json#\"bad name!\"",
        "cannot be an agent type",
    );
    assert!(!stdout.contains("shared-token") && !stdout.contains("outside-token"));

    kw.assert_secret(
        "agent_type:good",
        "FORGE_TOKEN",
        Some("good-token-0123456789"),
    );
    assert!(bak(&src.join("tokens/good")).is_file());
    for agent in ["abs", "dots", "sneaky", "first", "second"] {
        assert_eq!(
            get(&kw, &format!("agent_type:{agent}"), "FORGE_TOKEN"),
            None,
            "{agent}"
        );
    }
    // Nothing that failed was retired.
    assert_eq!(
        std::fs::read_to_string(src.join("tokens/shared")).expect("kept"),
        "shared-token-0123456789"
    );
    assert!(!bak(&src.join("tokens/shared")).exists());
    assert!(src.join("tokens/good2").is_file());
    assert!(kw.dir.path().join("outside").is_file());
    assert!(!bak(&kw.dir.path().join("outside")).exists());
    // A run with failures is not recorded as finished.
    let again = migrate(&kw, &["run", "agents-json", "--source", utf8(&src)]);
    assert!(!text(&again.stdout).contains("finished before"));
}

#[test]
fn agents_json_malformed_or_missing_changes_nothing() {
    let kw = Kw::new();
    let src = legacy(&kw, "agents");
    write(
        &src.join("agents.json"),
        r#"{"agents": [{"name": "coder", "token_file": "#,
    );
    write(&src.join("tokens/coder"), "coder-token-0123456789");

    let out = migrate(&kw, &["run", "agents-json", "--source", utf8(&src)]);
    let stdout = text(&out.stdout);
    assert_eq!(code(&out), 1, "{stdout}{}", text(&out.stderr));
    assert_failed(&stdout, "agents.json", "not JSON");
    assert!(stdout.contains("0 migrated"), "{stdout}");
    assert!(src.join("tokens/coder").is_file());
    assert!(!bak(&src.join("tokens/coder")).exists());
    kw.assert_secret("agent_type:coder", "FORGE_TOKEN", None);

    // Neither a list nor a map of agents.
    write(&src.join("agents.json"), "42");
    let out = migrate(&kw, &["run", "agents-json", "--source", utf8(&src)]);
    assert_eq!(code(&out), 1);
    assert_failed(&text(&out.stdout), "agents.json", "neither a list");

    // No agents file at all: an error before anything is done.
    std::fs::remove_file(src.join("agents.json")).expect("rm");
    let out = migrate(&kw, &["run", "agents-json", "--source", utf8(&src)]);
    assert_ne!(code(&out), 0);
    let err = text(&out.stderr);
    assert!(err.contains("agents.json: not found"), "{err}");
    assert!(src.join("tokens/coder").is_file());
    assert_eq!(
        text(&kw.run(&["secret", "list", "--json"], b"").stdout),
        "",
        "nothing was written"
    );
}

// -------------------------------------------------------- account-credentials

const LEGACY_KEY: &str = "legacy-client-key-0123456789abcdef";

#[test]
fn account_credentials_migrate_tokens_with_metadata_and_client_keys_authenticate() {
    let kw = Kw::new();
    let src = legacy(&kw, "accounts");
    write(
        &src.join("alice.credentials.json"),
        r#"{"oauth": {
            "access_token": "alice-access-0123456789",
            "refresh_token": "alice-refresh-0123456789",
            "expires_at": 1798761600,
            "scopes": ["repo", "read:org"]
        }}"#,
    );
    write(
        &src.join("team/bob.credentials.json"),
        r#"{"api_key": "bob-api-key-0123456789"}"#,
    );
    write(
        &src.join("train.credentials.json"),
        format!(
            r#"{{"project": "train-a", "client_api_keys": [{{"name": "ci", "key": "{LEGACY_KEY}"}}]}}"#
        ),
    );

    let out = migrate_ok(
        &kw,
        &["account-credentials", "--source", utf8(&src)],
        "account-credentials: 4 migrated, 0 skipped, 0 failed",
    );
    assert_line(
        &out,
        "alice.credentials.json#oauth/access_token",
        "account:alice/ACCESS_TOKEN",
    );
    assert_line(
        &out,
        "train.credentials.json#client_api_keys/ci",
        "train-a.ci",
    );
    assert!(!out.contains(LEGACY_KEY), "the report holds a key: {out}");
    kw.assert_secret(
        "account:alice",
        "ACCESS_TOKEN",
        Some("alice-access-0123456789"),
    );
    kw.assert_secret(
        "account:alice",
        "REFRESH_TOKEN",
        Some("alice-refresh-0123456789"),
    );
    kw.assert_secret("account:bob", "API_KEY", Some("bob-api-key-0123456789"));

    // Expiry and scopes are in the descriptions, never in a value.
    let list = kw.ok(&["secret", "list", "--json"], b"");
    let rows: Vec<serde_json::Value> = list
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let description = |scope: &str, name: &str| -> String {
        rows.iter()
            .find(|r| r["scope"] == scope && r["name"] == name)
            .unwrap_or_else(|| panic!("no {scope}/{name} in {list}"))["description"]
            .as_str()
            .expect("description")
            .to_owned()
    };
    assert_eq!(
        description("account:alice", "ACCESS_TOKEN"),
        "OAuth access token of alice; expires 2027-01-01T00:00:00Z; scopes repo read:org"
    );
    assert_eq!(
        description("account:alice", "REFRESH_TOKEN"),
        "OAuth refresh token of alice; scopes repo read:org"
    );
    assert_eq!(description("account:bob", "API_KEY"), "API key of bob");
    assert_eq!(rows.len(), 3, "the client key is no secret: {list}");

    for file in [
        "alice.credentials.json",
        "team/bob.credentials.json",
        "train.credentials.json",
    ] {
        let path = src.join(file);
        assert!(!path.exists(), "{file} was not retired");
        assert!(bak(&path).is_file(), "{file} has no .bak");
    }

    // The client key became an API token, stored by hash.
    let tokens = kw.ok(&["token", "list"], b"");
    let row = tokens
        .lines()
        .find(|l| l.ends_with(" train-a.ci"))
        .unwrap_or_else(|| panic!("no train-a.ci token: {tokens}"));
    assert!(row.starts_with("legacy-"), "{row}");
    let id = row.split_whitespace().next().expect("id");
    assert_eq!(id.len(), "legacy-".len() + 16, "{id}");
    assert!(
        id["legacy-".len()..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    assert!(row.contains("resolver"), "{row}");
    assert!(!tokens.contains(LEGACY_KEY));

    // Clients keep authenticating with the legacy key.
    let served = kw.serve("serve.log");
    let addr = served.addr.clone();
    let ok = http(&addr, "GET", "/secrets", Some(LEGACY_KEY));
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(
        ok.contains("ACCESS_TOKEN") && !ok.contains("alice-access"),
        "{ok}"
    );
    for wrong in [
        "legacy-client-key-0123456789abcdeX",
        "short",
        "kw_not-a-real-token-0123456789",
    ] {
        let denied = http(&addr, "GET", "/secrets", Some(wrong));
        assert!(denied.starts_with("HTTP/1.1 401"), "{wrong}: {denied}");
    }
    let none = http(&addr, "GET", "/secrets", None);
    assert!(none.starts_with("HTTP/1.1 401"), "{none}");
    // A resolver may not change anything.
    let refused = http(&addr, "POST", "/plugins/reload", Some(LEGACY_KEY));
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
}

#[test]
fn account_credentials_hostile_files_fail_per_file_and_stay() {
    let kw = Kw::new();
    let src = legacy(&kw, "accounts");
    let files: [(&str, &[u8], &str); 6] = [
        (
            "garbage.credentials.json",
            &[0xff, 0xfe, 0x00, 0x81, 0x7b],
            "not JSON",
        ),
        ("empty.credentials.json", b"{}", "no api_key"),
        ("list.credentials.json", b"[1, 2]", "not a JSON object"),
        (
            "ctrl.credentials.json",
            br#"{"api_key": "abc\u0007def-0123456789"}"#,
            "control characters",
        ),
        (
            "half.credentials.json",
            br#"{"api_key": "half-good-0123456789", "refresh_token": 7}"#,
            "not a string",
        ),
        (
            "shortkey.credentials.json",
            br#"{"project": "p", "client_api_keys": [{"name": "ci", "key": "tiny"}]}"#,
            "not usable as a client key",
        ),
    ];
    for (name, bytes, _) in files {
        write(&src.join(name), bytes);
    }
    write(
        &src.join("good.credentials.json"),
        r#"{"api_key": "good-key-0123456789"}"#,
    );

    let out = migrate(&kw, &["run", "account-credentials", "--source", utf8(&src)]);
    let stdout = text(&out.stdout);
    assert_eq!(code(&out), 1, "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("1 migrated"), "{stdout}");
    let mut failed = 0;
    for (name, bytes, reason) in files {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(name) && l.contains("FAILED"))
            .unwrap_or_else(|| panic!("no FAILED line for {name}: {stdout}"));
        assert!(line.contains(reason), "{name}: {line}");
        failed += 1;
        assert_eq!(
            std::fs::read(src.join(name)).expect("kept"),
            bytes,
            "{name} was changed"
        );
        assert!(!bak(&src.join(name)).exists(), "{name} was retired");
    }
    assert_eq!(failed, files.len());
    // The good field of a half-bad file waits with it.
    let half = line_of(&stdout, "half.credentials.json#api_key");
    assert!(
        half.contains("FAILED") && half.contains("another field"),
        "{half}"
    );
    kw.assert_secret("account:half", "API_KEY", None);
    kw.assert_secret("account:ctrl", "API_KEY", None);
    assert!(
        !stdout.contains("abc\u{7}"),
        "a control character reached the terminal"
    );
    kw.assert_secret("account:good", "API_KEY", Some("good-key-0123456789"));
    assert!(bak(&src.join("good.credentials.json")).is_file());
    let tokens = kw.ok(&["token", "list"], b"");
    assert!(!tokens.contains("p.ci"), "{tokens}");
}

// ----------------------------------------------------------------- key-prefix

#[test]
fn key_prefix_moves_prefixed_keys_out_of_a_dotenv_file() {
    let kw = Kw::new();
    let src = legacy(&kw, "env");
    let original = "# workload keys\n\
                    BEARER_TOKEN_GITHUB=ghp_0123456789abcdef\n\
                    OAUTH_CLIENT_SECRET_SLACK=\"slack secret # not a comment\"\n\
                    KEY=1\n\
                    this line is malformed\n\
                    export BEARER_TOKEN_=nothing-after-the-prefix\n";
    let file = src.join("workloads.env");
    write(&file, original);

    let out = migrate(&kw, &["run", "key-prefix", "--source", utf8(&src)]);
    let stdout = text(&out.stdout);
    assert_eq!(
        code(&out),
        1,
        "the malformed line fails: {stdout}{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("key-prefix: 2 migrated"), "{stdout}");
    assert_line(
        &stdout,
        "workloads.env#BEARER_TOKEN_GITHUB",
        "workload:github/BEARER_TOKEN",
    );
    assert_line(
        &stdout,
        "workloads.env#OAUTH_CLIENT_SECRET_SLACK",
        "workload:slack/OAUTH_CLIENT_SECRET",
    );
    let malformed = stdout
        .lines()
        .find(|l| l.starts_with("workloads.env ") && l.contains("line 5"))
        .unwrap_or_else(|| panic!("no line for the malformed line: {stdout}"));
    assert!(
        malformed.contains("FAILED") && malformed.contains("not KEY=VALUE"),
        "{malformed}"
    );
    assert!(
        !malformed.contains("this line"),
        "the line is not quoted: {malformed}"
    );
    assert_failed(
        &stdout,
        "workloads.env#BEARER_TOKEN_",
        "nothing after the prefix",
    );

    kw.assert_secret(
        "workload:github",
        "BEARER_TOKEN",
        Some("ghp_0123456789abcdef"),
    );
    kw.assert_secret(
        "workload:slack",
        "OAUTH_CLIENT_SECRET",
        Some("slack secret # not a comment"),
    );
    assert_eq!(
        get(&kw, "global", "KEY"),
        None,
        "unrelated keys stay where they are"
    );

    let after = std::fs::read_to_string(&file).expect("the file stays");
    assert!(
        !after.contains("BEARER_TOKEN_GITHUB") && !after.contains("OAUTH_CLIENT_SECRET_SLACK"),
        "{after}"
    );
    assert!(after.contains("KEY=1\n"), "{after}");
    assert!(after.contains("# workload keys\n"), "{after}");
    assert!(after.contains("this line is malformed\n"), "{after}");
    assert!(
        after.contains("export BEARER_TOKEN_=nothing"),
        "a failed key stays: {after}"
    );
    assert_eq!(
        std::fs::read_to_string(bak(&file)).expect("the original is kept"),
        original
    );
    assert!(!src.join("workloads.env.keyward-tmp").exists());

    // Running again: the migrated keys are gone, the failures remain.
    let again = migrate(&kw, &["run", "key-prefix", "--source", utf8(&src)]);
    let again_out = text(&again.stdout);
    assert!(again_out.contains("0 migrated"), "{again_out}");
    assert_eq!(
        std::fs::read_to_string(bak(&file)).expect("kept"),
        original,
        "the .bak keeps the first original"
    );
}

#[test]
fn key_prefix_without_a_source_renames_global_secrets() {
    let kw = Kw::new();
    kw.ok(
        &["secret", "set", "BEARER_TOKEN_GITLAB"],
        b"glpat-0123456789",
    );
    kw.ok(&["secret", "set", "REGISTRY_PASSWORD_DOCKER"], b"dckr-pass");
    kw.ok(&["secret", "set", "UNRELATED"], b"stays");
    // The target of this one exists already (in another scope than the
    // global one the plugin is shown): the host refuses to overwrite it.
    kw.ok(&["secret", "set", "OAUTH_CLIENT_ID_TAKEN"], b"legacy-id");
    kw.ok(
        &[
            "secret",
            "set",
            "OAUTH_CLIENT_ID",
            "--scope",
            "workload:taken",
        ],
        b"the operator's own",
    );

    // An in-store move needs the operator's word on where to.
    let refused = migrate(&kw, &["run", "key-prefix"]);
    assert_eq!(code(&refused), 1);
    assert!(
        text(&refused.stdout).contains("--option target_scopes="),
        "{}",
        text(&refused.stdout)
    );
    kw.assert_secret("global", "BEARER_TOKEN_GITLAB", Some("glpat-0123456789"));
    let scopes = ["--option", "target_scopes=workload:*,registry:*"];
    let run = migrate(&kw, &["run", "key-prefix", scopes[0], scopes[1]]);
    let out = text(&run.stdout);
    assert_eq!(code(&run), 1, "{out}{}", text(&run.stderr));
    assert!(
        out.contains("key-prefix: 2 migrated, 0 skipped, 1 failed"),
        "{out}"
    );
    assert_failed(&out, "rename:global/OAUTH_CLIENT_ID_TAKEN", "another value");
    assert_line(
        &out,
        "rename:global/BEARER_TOKEN_GITLAB",
        "workload:gitlab/BEARER_TOKEN",
    );
    kw.assert_secret("workload:gitlab", "BEARER_TOKEN", Some("glpat-0123456789"));
    assert_eq!(
        get(&kw, "global", "BEARER_TOKEN_GITLAB"),
        None,
        "moved, not copied"
    );
    kw.assert_secret("registry:docker", "PASSWORD", Some("dckr-pass"));
    kw.assert_secret("global", "REGISTRY_PASSWORD_DOCKER", None);
    kw.assert_secret("global", "UNRELATED", Some("stays"));
    kw.assert_secret("global", "OAUTH_CLIENT_ID_TAKEN", Some("legacy-id"));
    kw.assert_secret(
        "workload:taken",
        "OAUTH_CLIENT_ID",
        Some("the operator's own"),
    );
    // Once the clash is resolved, the rest moves and the run is recorded.
    kw.ok(
        &[
            "secret",
            "rm",
            "OAUTH_CLIENT_ID",
            "--scope",
            "workload:taken",
        ],
        b"",
    );
    let out = kw.ok(&["migrate", "run", "key-prefix", scopes[0], scopes[1]], b"");
    assert!(
        out.contains("key-prefix: 1 migrated, 0 skipped, 0 failed"),
        "{out}"
    );
    kw.assert_secret("workload:taken", "OAUTH_CLIENT_ID", Some("legacy-id"));
    kw.assert_secret("global", "OAUTH_CLIENT_ID_TAKEN", None);
    let again = kw.ok(&["migrate", "run", "key-prefix", scopes[0], scopes[1]], b"");
    assert!(again.contains("finished before"), "{again}");
}

// ----------------------------------------------------------------- openbao-kv

/// A real `bao server -dev` on a free port, killed when dropped.
struct Bao {
    child: Killed,
    addr: String,
    root: String,
    home: tempfile::TempDir,
    bin: String,
}

impl Bao {
    fn start() -> Bao {
        let bin = std::env::var("KEYWARD_TEST_BAO_BIN").unwrap_or_else(|_| {
            panic!(
                "KEYWARD_TEST_BAO_BIN is not set: run scripts/test, or `source scripts/openbao` \
                 first (it installs OpenBao and sets it)"
            )
        });
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let root = format!("root-{}", crate::support::TestKey::new().base64())
            .replace(['+', '/', '='], "x");
        let home = tempfile::tempdir().expect("temp dir");
        let child = Command::new(&bin)
            .args([
                "server",
                "-dev",
                &format!("-dev-root-token-id={root}"),
                &format!("-dev-listen-address={addr}"),
            ])
            .env("HOME", home.path())
            .env_remove("BAO_ADDR")
            .env_remove("BAO_TOKEN")
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let mut bao = Bao {
            child: Killed(child),
            addr,
            root,
            home,
            bin,
        };
        bao.wait_healthy();
        bao
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(mut stream) = TcpStream::connect(&self.addr) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = write!(
                    stream,
                    "GET /v1/sys/health HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    self.addr
                );
                let mut response = String::new();
                let _ = stream.read_to_string(&mut response);
                if response.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.0.try_wait() {
                panic!("bao server exited: {status}");
            }
            assert!(Instant::now() < deadline, "bao server never became healthy");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs the `bao` CLI against the server as root; its output.
    fn cli_output(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .env("HOME", self.home.path())
            .env("BAO_ADDR", self.url())
            .env("BAO_TOKEN", &self.root)
            .stdin(Stdio::null())
            .output()
            .expect("run bao")
    }

    /// Runs the `bao` CLI against the server as root, which must succeed.
    fn cli(&self, args: &[&str]) {
        let out = self.cli_output(args);
        assert!(
            out.status.success(),
            "bao {args:?} failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }

    /// `bao kv put -mount=secret PATH FIELD=VALUE…`.
    fn kv_put(&self, path: &str, fields: &[&str]) {
        let mut args = vec!["kv", "put", "-mount=secret", path];
        args.extend_from_slice(fields);
        self.cli(&args);
    }
}

/// `migrate run`'s arguments for `openbao-kv` over `url` with the option
/// `token_ref` (`token_ref=<scope>/<name>`), then `extra`; `prefix` goes
/// first (`["migrate", "run"]`, `["run"]` or nothing).
fn openbao_kv<'a>(
    prefix: &[&'a str],
    url: &'a str,
    token_ref: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = prefix.to_vec();
    args.extend_from_slice(&["openbao-kv", "--source", url, "--option", token_ref]);
    args.extend_from_slice(extra);
    args
}

#[test]
fn openbao_kv_migrates_a_real_mount_and_refuses_a_bad_token() {
    let bao = Bao::start();
    bao.kv_put("apps/github", &["token=ghp-bao-0123456789", "user=octo"]);
    bao.cli(&[
        "kv",
        "metadata",
        "put",
        "-mount=secret",
        "-custom-metadata=description=GitHub bot of the apps team",
        "apps/github",
    ]);
    bao.kv_put("apps/slack/bot", &["token=xoxb-bao-0123456789"]);
    bao.kv_put("top", &["password=p@ss word"]);

    let kw = Kw::new();
    kw.ok(
        &["secret", "set", "BAO_TOKEN", "--scope", "global"],
        bao.root.as_bytes(),
    );
    kw.ok(
        &["secret", "set", "BAO_BAD", "--scope", "global"],
        b"not-the-root-token",
    );
    let url = bao.url();

    // A wrong token: a clear refusal, nothing written.
    let out = migrate(
        &kw,
        &openbao_kv(&["run"], &url, "token_ref=global/BAO_BAD", &[]),
    );
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_ne!(code(&out), 0, "{all}");
    assert!(all.contains("403") && all.contains("refused"), "{all}");
    assert!(
        !all.contains("not-the-root-token") && !all.contains(&bao.root),
        "{all}"
    );
    kw.assert_secret("openbao:secret", "apps.github.token", None);

    let out = migrate_ok(
        &kw,
        &openbao_kv(&[], &url, "token_ref=global/BAO_TOKEN", &[]),
        "openbao-kv: 4 migrated, 0 skipped, 0 failed",
    );
    assert_line(
        &out,
        "apps/github#token",
        "openbao:secret/apps.github.token",
    );
    assert!(!out.contains(&bao.root), "the token reached the report");
    for (name, value) in [
        ("apps.github.token", "ghp-bao-0123456789"),
        ("apps.github.user", "octo"),
        ("apps.slack.bot.token", "xoxb-bao-0123456789"),
        ("top.password", "p@ss word"),
    ] {
        assert_eq!(
            get(&kw, "openbao:secret", name).as_deref(),
            Some(value),
            "{name}"
        );
    }
    let list = kw.ok(
        &["secret", "list", "--json", "--scope", "openbao:secret"],
        b"",
    );
    let rows: Vec<serde_json::Value> = list
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(rows.len(), 4, "{list}");
    let description = |name: &str| {
        rows.iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no {name}: {list}"))["description"]
            .as_str()
            .expect("description")
            .to_owned()
    };
    assert_eq!(
        description("apps.github.token"),
        "GitHub bot of the apps team"
    );
    assert_eq!(
        description("apps.github.user"),
        "GitHub bot of the apps team"
    );
    assert_eq!(
        description("apps.slack.bot.token"),
        "OpenBao secret/apps/slack/bot key token"
    );

    // Without delete=true the source is left as it is; the run is recorded.
    bao.cli(&["kv", "get", "-mount=secret", "apps/github"]);
    let again = kw.ok(
        &openbao_kv(&["migrate", "run"], &url, "token_ref=global/BAO_TOKEN", &[]),
        b"",
    );
    assert!(again.contains("finished before"), "{again}");
    // The token was granted for the run only, and is not logged.
    let log = kw.ok(&["audit", "tail", "--json", "-n", "100"], b"");
    assert!(!log.contains(&bao.root), "{log}");
}

#[test]
fn openbao_kv_delete_destroys_only_the_versions_it_imported() {
    // The run is stopped between its write and its retire by the fault
    // hook, compiled only into builds with the feature.
    crate::support::require_fault_hook();
    let bao = Bao::start();
    bao.kv_put("apps/kept", &["token=imported-v1"]);
    bao.kv_put("apps/gone", &["token=gone-v1"]);
    let kw = Kw::new();
    kw.ok(&["secret", "set", "BAO_TOKEN"], bao.root.as_bytes());
    let url = bao.url();
    let args = openbao_kv(
        &["migrate", "run"],
        &url,
        "token_ref=global/BAO_TOKEN",
        &["--option", "delete=true"],
    );
    // Killed after the write committed, before the retire: the read
    // version is in Keyward, the source untouched.
    let mut cmd = kw.cmd(&args);
    cmd.env("KEYWARD_FAULT_KILL_AT", "3");
    let out = crate::run_with(cmd, b"");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(9),
        "{}",
        text(&out.stderr)
    );
    kw.assert_secret("openbao:secret", "apps.kept.token", Some("imported-v1"));
    // Someone writes a new version between the read and the retire.
    bao.kv_put("apps/kept", &["token=written-since"]);
    let out = kw.ok(&args, b"");
    assert!(out.contains("0 failed"), "{out}");
    // The new version survives; the imported one is destroyed.
    let current = bao.cli_output(&["kv", "get", "-mount=secret", "-field=token", "apps/kept"]);
    assert_eq!(
        text(&current.stdout).trim(),
        "written-since",
        "{}",
        text(&current.stderr)
    );
    let old = bao.cli_output(&[
        "kv",
        "metadata",
        "get",
        "-mount=secret",
        "-format=json",
        "apps/kept",
    ]);
    let meta: serde_json::Value = serde_json::from_slice(&old.stdout).expect("metadata JSON");
    assert_eq!(meta["data"]["versions"]["1"]["destroyed"], true, "{meta}");
    assert_eq!(meta["data"]["versions"]["2"]["destroyed"], false, "{meta}");
    // A path nobody wrote to since is gone, every version.
    let gone = bao.cli_output(&["kv", "metadata", "get", "-mount=secret", "apps/gone"]);
    assert!(!gone.status.success(), "{}", text(&gone.stdout));
}
