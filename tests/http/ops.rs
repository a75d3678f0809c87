//! What operators' tools rely on: `/readyz` naming the part that failed,
//! `/metrics` latencies, systemd's readiness message, `keyward version`,
//! shell completions and manual pages.

use std::time::{Duration, Instant};

use keyward::runtime::{Options, Runtime};
use serde_json::Value;

use crate::support::kw::{text, Kw, Served};
use crate::support::{TestDb, TestKey};

/// `router` served on 127.0.0.1; its base URL.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

async fn ready(base: &str) -> (u16, Value) {
    let res = reqwest::get(format!("{base}/readyz"))
        .await
        .expect("readyz");
    let status = res.status().as_u16();
    let body = res.text().await.expect("body");
    (status, serde_json::from_str(&body).expect("JSON"))
}

/// Polls `/readyz` until it answers `status` (the verdict is cached 100 ms).
async fn ready_until(base: &str, status: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (got, body) = ready(base).await;
        if got == status {
            return body;
        }
        assert!(Instant::now() < deadline, "/readyz stays {got}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn readyz_checks_the_plugin_runtime_and_names_what_failed() {
    let db = TestDb::sqlite().await;
    let vault = db.open(&TestKey::new()).await;
    let rt = Runtime::start(Options::default()).expect("runtime starts");
    let base = serve(keyward::http::router(vault.clone(), Some(rt.clone()))).await;
    let (status, body) = ready(&base).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"status": "ready", "checks":
            {"database": "ok", "access_log": "ok", "plugins": "ok"}})
    );

    // The clock that ends runaway plugin calls stops: not ready, and why
    // (the fault needs a build with `fault-injection`, as scripts/test makes).
    #[cfg(feature = "fault-injection")]
    {
        rt.stop_clock();
        let body = ready_until(&base, 503).await;
        assert_eq!(body["failed"], "plugins", "{body}");
        assert_eq!(body["error"]["code"], "unavailable", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("clock")),
            "{body}"
        );
        assert_eq!(
            body["checks"],
            serde_json::json!({"database": "ok", "access_log": "ok", "plugins": "failed"})
        );
    }

    // A server without a plugin runtime is ready, and says it has none;
    // with its database gone it is not, and the access log is not probed.
    let db = TestDb::sqlite().await;
    let vault = db.open(&TestKey::new()).await;
    let base = serve(keyward::http::router(vault.clone(), None)).await;
    let (status, body) = ready(&base).await;
    assert_eq!(
        (status, &body["checks"]["plugins"]),
        (200, &Value::from("none"))
    );
    vault.db().close().await;
    let body = ready_until(&base, 503).await;
    assert_eq!(body["failed"], "database", "{body}");
    assert_eq!(
        body["checks"],
        serde_json::json!({"database": "failed", "access_log": "skipped", "plugins": "none"})
    );
}

#[tokio::test]
async fn metrics_have_latency_histograms_build_and_process_metrics() {
    let kw = Kw::new();
    let resolver = kw.token("prom", "resolver");
    let served = kw.serve("serve.log");
    let client = reqwest::Client::new();
    let base = format!("http://{}", served.addr);
    let body = serde_json::json!({"template": "no secrets", "reason": "metrics test"});
    for _ in 0..3 {
        let res = client
            .post(format!("{base}/render"))
            .bearer_auth(&resolver)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("render");
        assert_eq!(res.status(), 200);
    }
    // Plugin calls: an agent type without a base URL asks its forge plugin
    // for the default one; a forge that is not loaded is no call, and no
    // series named by the caller.
    let operator = kw.token("ops", "operator");
    for (name, forge, want) in [
        ("coder", "forgejo", 201),
        ("ghost", "no-such-forge-xyz", 404),
    ] {
        let res = client
            .post(format!("{base}/agent-types"))
            .bearer_auth(&operator)
            .header("content-type", "application/json")
            .body(serde_json::json!({"name": name, "forge": forge}).to_string())
            .send()
            .await
            .expect("agent type");
        let status = res.status().as_u16();
        assert_eq!(
            status,
            want,
            "{forge}: {}",
            res.text().await.unwrap_or_default()
        );
    }
    let res = client
        .get(format!("{base}/metrics"))
        .bearer_auth(&resolver)
        .send()
        .await
        .expect("metrics");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "text/plain; version=0.0.4",
        "the Prometheus text format"
    );
    let text = res.text().await.expect("text");
    for line in [
        "# TYPE keyward_http_request_duration_seconds histogram",
        r#"keyward_http_request_duration_seconds_count{route="/render",status="200"} 3"#,
        r#"keyward_http_request_duration_seconds_bucket{route="/render",status="200",le="+Inf"} 3"#,
        r#"keyward_http_requests_total{route="/render",status="200"} 3"#,
        "# TYPE keyward_access_log_commit_duration_seconds histogram",
        "keyward_access_log_commit_duration_seconds_count ",
        "# TYPE keyward_plugin_call_duration_seconds histogram",
        r#"keyward_plugin_call_duration_seconds_count{plugin="forgejo",outcome="ok"} 1"#,
        "keyward_plugin_calls_total 1",
        "# TYPE keyward_access_log_batch_rows histogram",
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
        "process_open_fds ",
        "process_start_time_seconds ",
    ] {
        assert!(text.contains(line), "{line} not in:\n{text}");
    }
    let build = text
        .lines()
        .find(|l| l.starts_with("keyward_build_info{"))
        .unwrap_or_else(|| panic!("no keyward_build_info:\n{text}"));
    assert!(
        build.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION")))
            && build.contains("commit=\"")
            && build.ends_with(" 1"),
        "{build}"
    );
    assert!(!text.contains("no-such-forge-xyz"), "{text}");
}

#[cfg(unix)]
#[tokio::test]
async fn serve_tells_systemd_when_it_is_ready_and_when_it_stops() {
    use std::os::unix::net::UnixDatagram;
    let kw = Kw::new();
    let socket_path = kw.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut cmd = kw.cmd(&["serve", "--listen", "127.0.0.1:0"]);
    cmd.env("NOTIFY_SOCKET", &socket_path);
    let served = Served::spawn(cmd, &kw.dir.path().join("serve.log"));
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("READY=1 arrives");
    let message = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert_eq!(
        message,
        format!("READY=1\nSTATUS=listening on {}", served.addr)
    );
    // Ready means ready: it answers at once.
    let (status, _) = ready(&format!("http://{}", served.addr)).await;
    assert_eq!(status, 200);
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(served.child.id() as i32).expect("pid"),
        rustix::process::Signal::TERM,
    )
    .expect("SIGTERM");
    let n = socket.recv(&mut buf).expect("STOPPING=1 arrives");
    assert_eq!(&buf[..n], b"STOPPING=1");

    // A socket that is not there is logged, not fatal.
    let kw = Kw::new();
    let mut cmd = kw.cmd(&["serve", "--listen", "127.0.0.1:0"]);
    cmd.env("NOTIFY_SOCKET", kw.dir.path().join("absent.sock"));
    let served = Served::spawn(cmd, &kw.dir.path().join("serve.log"));
    let (status, _) = ready(&format!("http://{}", served.addr)).await;
    assert_eq!(status, 200);
    let log = std::fs::read_to_string(kw.dir.path().join("serve.log")).expect("log");
    assert!(log.contains("cannot notify systemd"), "{log}");
}

#[test]
fn version_completions_and_man_pages() {
    let kw = Kw::new();
    // No key needed: none of these opens the store.
    let mut cmd = kw.cmd(&["version"]);
    cmd.env_remove("KEYWARD_MASTER_KEY")
        .env("KEYWARD_ADDR", "http://127.0.0.1:9");
    let out = crate::support::kw::run_with(cmd, b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        line.starts_with(&format!("keyward {version} (commit ")) && line.ends_with(")\n"),
        "{line}"
    );
    let json: Value =
        serde_json::from_str(&kw.ok(&["version", "--output", "json"], b"")).expect("JSON");
    assert_eq!(json["version"], version);
    let commit = json["commit"].as_str().expect("commit");
    assert!(
        commit == "unknown"
            || (commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{commit}"
    );
    assert!(line.contains(commit));
    assert!(kw.ok(&["--version"], b"").contains(commit));

    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef keyward"),
        ("fish", "complete -c keyward"),
    ] {
        let script = kw.ok(&["completions", shell], b"");
        assert!(script.contains(marker), "{shell}: {script}");
        for sub in ["serve", "secret", "completions", "log-format"] {
            assert!(script.contains(sub), "{shell} lacks {sub}");
        }
    }
    let out = kw.run(&["completions", "tcsh"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("invalid value 'tcsh'"),
        "{}",
        text(&out.stderr)
    );

    let page = kw.ok(&["man"], b"");
    assert!(
        page.starts_with(".ie") || page.contains(".TH keyward 1"),
        "{page}"
    );
    for part in ["database\\-url", "serve", "completions", "log\\-format"] {
        assert!(page.contains(part), "{part} not in the page");
    }
    let dir = kw.dir.path().join("man/man1");
    kw.ok(&["man", "--dir", dir.to_str().expect("UTF-8")], b"");
    for file in [
        "keyward.1",
        "keyward-serve.1",
        "keyward-secret-set.1",
        "keyward-completions.1",
    ] {
        let page =
            std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(page.contains(".TH"), "{file}");
    }
    // A folder that cannot be made is a clear error.
    let blocker = kw.dir.path().join("file");
    std::fs::write(&blocker, "x").expect("write");
    let out = kw.run(
        &["man", "--dir", blocker.join("sub").to_str().expect("UTF-8")],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot create"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_config_file_fills_in_what_flags_and_the_environment_do_not_say() {
    let kw = Kw::new();
    let file = kw.dir.path().join("keyward.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:7001\"\n\
         log_format = \"json\"\n\
         audit_checkpoint_every = 30\n\
         public_url = \"https://keyward.example\"\n\
         database_url = \"postgres://kw:hunter2@db.example/kw\"\n",
    )
    .expect("write");
    let config = file.to_str().expect("UTF-8");
    // flag > env > file > default.
    let mut cmd = kw.cmd(&[
        "--config",
        config,
        "--database-url",
        "sqlite:///tmp/flag.db",
        "config",
        "check",
        "--output",
        "json",
    ]);
    cmd.env("KEYWARD_AUDIT_CHECKPOINT_EVERY", "45");
    let out = crate::support::kw::run_with(cmd, b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    let json: Value = serde_json::from_str(&shown).expect("JSON");
    let setting = |key: &str| {
        let s = &json["settings"][key];
        (
            s["value"].as_str().unwrap_or("?").to_owned(),
            s["source"].as_str().unwrap_or("?").to_owned(),
        )
    };
    let pair = |v: &str, s: &str| (v.to_owned(), s.to_owned());
    assert_eq!(
        setting("database_url"),
        pair("sqlite:///tmp/flag.db", "flag")
    );
    assert_eq!(setting("audit_checkpoint_every"), pair("45", "env"));
    assert_eq!(setting("listen"), pair("127.0.0.1:7001", "file"));
    assert_eq!(setting("log_format"), pair("json", "file"));
    assert_eq!(
        setting("public_url"),
        pair("https://keyward.example", "file")
    );
    assert_eq!(setting("data_dir").1, "env");
    assert_eq!(setting("master_key"), pair("set (masked)", "env"));
    assert_eq!(json["file"], config);
    assert!(!shown.contains(kw.key.base64()), "the key is never printed");

    // The file's password is masked; KEYWARD_CONFIG names the file too.
    let mut cmd = kw.cmd(&["config", "check"]);
    cmd.env("KEYWARD_CONFIG", &file);
    let out = crate::support::kw::run_with(cmd, b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(
        shown.contains("listen = \"127.0.0.1:7001\"  # file"),
        "{shown}"
    );
    assert!(shown.contains("database_url = \"postgres://kw:"), "{shown}");

    // Mistakes stop every command with exit 78 and say what is wrong.
    for (text_of_file, says) in [
        ("lissen = \"127.0.0.1:1\"\n", "unknown key `lissen`"),
        ("master_key = \"AAAA\"\n", "KEYWARD_MASTER_KEY"),
        ("listen = 8080\n", "must be a string"),
        (
            "listen = \"127.0.0.1:1\"\nlisten = \"x\"\n",
            "not valid TOML",
        ),
    ] {
        std::fs::write(&file, text_of_file).expect("write");
        for args in [
            &["--config", config, "secret", "list"][..],
            &["--config", config, "config", "check"],
        ] {
            let out = kw.run(args, b"");
            assert_eq!(
                out.status.code(),
                Some(78),
                "{text_of_file}: {}",
                text(&out.stderr)
            );
            let err = text(&out.stderr);
            assert!(
                err.contains(says) && err.contains("keyward.toml"),
                "{text_of_file}: {err}"
            );
        }
    }
    let out = kw.run(&["--config", "/nonexistent/keyward.toml", "version"], b"");
    assert_eq!(out.status.code(), Some(78));
    assert!(text(&out.stderr).contains("cannot read the configuration file"));
    // A value of the wrong form is caught by config check, naming it.
    std::fs::write(&file, "listen = \"not an address\"\n").expect("write");
    let out = kw.run(&["--config", config, "config", "check"], b"");
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("--listen"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn serve_takes_its_settings_from_the_file() {
    let kw = Kw::new();
    let file = kw.dir.path().join("keyward.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\nlog_format = \"json\"\n").expect("write");
    let mut cmd = kw.cmd(&["--config", file.to_str().expect("UTF-8"), "serve"]);
    cmd.env("KEYWARD_LOG_FORMAT", "text");
    let served = Served::spawn(cmd, &kw.dir.path().join("serve.log"));
    let (status, _) = ready(&format!("http://{}", served.addr)).await;
    assert_eq!(status, 200);
    let log = std::fs::read_to_string(kw.dir.path().join("serve.log")).expect("log");
    assert!(
        log.lines()
            .all(|l| serde_json::from_str::<Value>(l).is_err()),
        "the environment's text beats the file's json:\n{log}"
    );
}
