//! The access log's history index as `serve` keeps it: the follower catches
//! up with what was rendered, says how far in `/metrics`, and history pages
//! come from it; on SQLite it is a private file beside the database.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::Kw;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_indexes_what_it_logs_and_history_reads_the_index() {
    let kw = Kw::new();
    let _ = kw.ok(&["secret", "set", "QUIET"], b"quiet-value");
    let _ = kw.ok(&["secret", "set", "BUSY"], b"busy-value");
    let token = kw.token("history", "resolver");
    let served = kw.serve("serve.log");
    let addr = served.addr.clone();
    let client = reqwest::Client::new();
    let render = |name: &'static str| {
        let (client, addr, token) = (client.clone(), addr.clone(), token.clone());
        async move {
            let status = client
                .post(format!("http://{addr}/render"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(format!(
                    r#"{{"template": "v=${{SECRET:{name}}}", "reason": "history test"}}"#
                ))
                .send()
                .await
                .expect("render")
                .status();
            assert_eq!(status, 200);
        }
    };
    render("QUIET").await;
    for _ in 0..40 {
        render("BUSY").await;
    }
    // The head: the newest row (two creates, 41 renders).
    let tail = kw.ok(&["audit", "tail", "-n", "1", "--json"], b"");
    let head: i64 = serde_json::from_str::<serde_json::Value>(tail.trim()).expect("a JSON row")
        ["seq"]
        .as_i64()
        .expect("seq");
    let since = Instant::now();
    while gauge(&client, &addr, &token, "keyward_access_log_indexed_seq").await < head {
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "the history index did not catch up with row {head} within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let page = client
        .get(format!("http://{addr}/secrets/QUIET/access-log"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("history")
        .text()
        .await
        .expect("body");
    let page: serde_json::Value = serde_json::from_str(&page).expect("json");
    let rows = page["rows"].as_array().expect("rows");
    let actions: Vec<&str> = rows
        .iter()
        .map(|r| r["action"].as_str().expect("action"))
        .collect();
    assert_eq!(actions, ["render", "create"], "{page}");
    assert!(page.get("next_before").is_none(), "{page}");

    let index = kw.dir.path().join("keyward.db-log-index");
    let mode = std::fs::metadata(&index)
        .expect("the index file is beside the database")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{}", index.display());
    drop(served);
    let verify = kw.ok(&["audit", "verify"], b"");
    assert!(verify.starts_with("OK: "), "{verify}");
}

async fn gauge(client: &reqwest::Client, addr: &str, token: &str, name: &str) -> i64 {
    let metrics = client
        .get(format!("http://{addr}/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} is in /metrics"))
        .trim()
        .parse()
        .expect("a number")
}

/// Polls the gauge `name` until `done` holds for it, at most 10 s.
async fn until_gauge(
    client: &reqwest::Client,
    addr: &str,
    token: &str,
    name: &str,
    done: impl Fn(i64) -> bool,
) -> i64 {
    let since = Instant::now();
    loop {
        let value = gauge(client, addr, token, name).await;
        if done(value) {
            return value;
        }
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "{name} stayed at {value} for 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `serve` walking the chain every second, its log in `log`.
fn serve_verifying_every_second(kw: &Kw, log: &str) -> crate::support::kw::Served {
    crate::support::kw::Served::spawn(
        kw.cmd(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--audit-verify-every",
            "1",
        ]),
        &kw.dir.path().join(log),
    )
}

/// `serve --audit-verify-every 1` walks the chain as it grows, and a row
/// edited behind its back shows up in /metrics within a walk or two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_verifies_the_log_in_the_background_and_reports_a_break() {
    let kw = Kw::new();
    for i in 0..5 {
        let _ = kw.ok(&["secret", "set", &format!("S{i}")], b"v");
    }
    let token = kw.token("verify", "resolver");
    let served = serve_verifying_every_second(&kw, "serve.log");
    let addr = served.addr.clone();
    let client = reqwest::Client::new();
    let verified = until_gauge(
        &client,
        &addr,
        &token,
        "keyward_access_log_verified_seq",
        |v| v >= 5,
    )
    .await;
    assert_eq!(verified, 5);
    assert_eq!(
        gauge(&client, &addr, &token, "keyward_access_log_broken_at").await,
        0
    );

    // Someone with the database edits row 3, which the walks have passed:
    // each walk goes on from the last good row, so this server checks what
    // is appended after it (and leaves the old rows to `audit verify`).
    let db = rusqlite::Connection::open(kw.dir.path().join("keyward.db")).expect("open");
    db.execute_batch(
        "DROP TRIGGER secret_access_log_no_update; \
         UPDATE secret_access_log SET reason = 'nothing to see' WHERE seq = 3",
    )
    .expect("tamper");
    let _ = kw.ok(&["secret", "set", "S9"], b"v");
    let verified = until_gauge(
        &client,
        &addr,
        &token,
        "keyward_access_log_verified_seq",
        |v| v >= 6,
    )
    .await;
    assert_eq!(verified, 6, "rows after the walk's position are checked");
    drop(served);

    // A server started afresh walks from the first row: row 3 is found.
    let served = serve_verifying_every_second(&kw, "serve-2.log");
    let addr = served.addr.clone();
    let broken = until_gauge(
        &client,
        &addr,
        &token,
        "keyward_access_log_broken_at",
        |v| v > 0,
    )
    .await;
    assert_eq!(broken, 3);
    assert_eq!(
        gauge(&client, &addr, &token, "keyward_access_log_verified_seq").await,
        2,
        "good up to the row before the break"
    );
    let log = std::fs::read_to_string(kw.dir.path().join("serve-2.log")).expect("log");
    assert!(log.contains("chain is broken"), "{log}");
}
