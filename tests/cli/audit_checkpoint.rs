//! `audit checkpoint` and `audit verify --checkpoint`: the end of the access
//! log anchored outside the database, on both backends.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::kw::Served;
use crate::support::TestDb;
use crate::{code, text, Kw};

crate::on_both_backends!(
    a_checkpoint_verifies_against_the_log_it_came_from,
    a_cut_off_tail_with_a_rewritten_head_is_detected,
    a_tail_cut_off_and_written_again_is_detected,
    a_modified_checkpoint_is_refused,
    a_checkpoint_of_another_store_is_refused,
    serve_writes_checkpoints_that_verify,
    verify_since_a_checkpoint_reads_only_the_new_rows,
);

/// A store in `db` with secret S set and read `reads` times: `reads + 1` rows.
fn seeded(db: &TestDb, reads: usize) -> Kw {
    let kw = Kw::on(db);
    kw.ok(&["secret", "set", "S"], b"v");
    for _ in 0..reads {
        kw.ok(&["secret", "get", "S", "--reason", "r"], b"");
    }
    kw
}

fn checkpoint_to(kw: &Kw, file: &str) -> PathBuf {
    let path = kw.dir.path().join(file);
    let out = kw.ok(
        &[
            "audit",
            "checkpoint",
            "--out",
            path.to_str().expect("utf-8"),
        ],
        b"",
    );
    assert!(out.is_empty(), "--out writes nothing to stdout: {out}");
    path
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("read checkpoint");
    assert_eq!(text.lines().count(), 1, "one line: {text}");
    serde_json::from_str(&text).expect("a JSON checkpoint")
}

fn verify(kw: &Kw, checkpoints: &[&Path]) -> std::process::Output {
    let mut args = vec!["audit".to_owned(), "verify".to_owned()];
    for path in checkpoints {
        args.push("--checkpoint".into());
        args.push(path.to_str().expect("utf-8").into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    kw.run(&args, b"")
}

/// Deletes the rows after `keep` and points `audit_head` at row `keep`,
/// as someone with write access to the database can.
async fn cut_tail(db: &TestDb, keep: i64) {
    db.drop_append_only_guard().await;
    db.exec(&format!("DELETE FROM secret_access_log WHERE seq > {keep}"))
        .await;
    db.exec(&format!(
        "UPDATE audit_head SET seq = {keep}, \
         mac = (SELECT mac FROM secret_access_log WHERE seq = {keep}) WHERE id = 1"
    ))
    .await;
}

async fn a_checkpoint_verifies_against_the_log_it_came_from(db: TestDb) {
    let kw = seeded(&db, 2);
    // To stdout: one JSON line, the documented format.
    let line = kw.ok(&["audit", "checkpoint"], b"");
    let json: Value = serde_json::from_str(line.trim_end()).expect("JSON");
    assert_eq!(json["format"], "keyward-audit-checkpoint", "{line}");
    assert_eq!(json["version"], 1, "{line}");
    assert_eq!(json["seq"], 3, "{line}");
    for (field, hex_len) in [("log", 32), ("mac", 64), ("sig", 64)] {
        let value = json[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field}: {line}"));
        assert_eq!(value.len(), hex_len, "{field}: {line}");
        assert!(value.bytes().all(|b| b.is_ascii_hexdigit()), "{line}");
    }
    assert!(
        json["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{line}"
    );
    let tail = kw.ok(&["audit", "tail", "-n", "1", "--json"], b"");
    let last: Value = serde_json::from_str(tail.trim_end()).expect("JSON");
    assert_eq!(json["mac"], last["mac"], "the MAC of the last row");

    let early = checkpoint_to(&kw, "early.json");
    assert_eq!(read_json(&early)["seq"], 3);
    kw.ok(&["secret", "get", "S", "--reason", "r"], b"");
    let late = checkpoint_to(&kw, "late.json");
    assert_eq!(read_json(&late)["seq"], 4);
    // The write is atomic: nothing but the file itself is left beside it.
    let mut names: Vec<String> = std::fs::read_dir(kw.dir.path())
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("json"))
        .collect();
    names.sort();
    assert_eq!(names, ["early.json", "late.json"]);
    // Replacing a checkpoint file works too.
    checkpoint_to(&kw, "early.json");

    let out = verify(&kw, &[&early, &late]);
    let stdout = text(&out.stdout);
    assert_eq!(code(&out), 0, "{stdout}{}", text(&out.stderr));
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("OK: 4 rows, chain intact"));
    for path in [&early, &late] {
        let line = lines.next().unwrap_or_default();
        assert!(
            line.starts_with("OK: checkpoint ")
                && line.contains(&path.display().to_string())
                && line.contains("row 4"),
            "{stdout}"
        );
    }
    // Without checkpoints the output is what it always was.
    assert_eq!(
        kw.ok(&["audit", "verify"], b""),
        "OK: 4 rows, chain intact\n"
    );
}

/// Asserts that the chain alone verifies (`rows` rows) and that it fails
/// against `checkpoint` (exit 4); returns what verify printed then.
fn broken_only_by(kw: &Kw, checkpoint: &Path, rows: i64) -> String {
    assert_eq!(
        kw.ok(&["audit", "verify"], b""),
        format!("OK: {rows} rows, chain intact\n")
    );
    let out = verify(kw, &[checkpoint]);
    let stdout = text(&out.stdout);
    assert_eq!(code(&out), 4, "{stdout}{}", text(&out.stderr));
    stdout
}

async fn a_cut_off_tail_with_a_rewritten_head_is_detected(db: TestDb) {
    let kw = seeded(&db, 5);
    let checkpoint = checkpoint_to(&kw, "checkpoint.json");
    cut_tail(&db, 3).await;
    // The chain alone cannot tell: that is the hole checkpoints close.
    let stdout = broken_only_by(&kw, &checkpoint, 3);
    assert!(
        stdout.starts_with("BROKEN at row 4: the log ends at row 3 but checkpoint ")
            && stdout.contains("records row 6")
            && stdout.contains("cut off"),
        "{stdout}"
    );
    // For scripts: the chain verifies, the checkpoint is cut off, exit 4.
    let path = checkpoint.to_str().expect("UTF-8");
    let out = kw.run(
        &["--output", "json", "audit", "verify", "--checkpoint", path],
        b"",
    );
    assert_eq!(code(&out), 4, "{}", text(&out.stderr));
    let verdict: Value = serde_json::from_str(&text(&out.stdout)).expect("JSON");
    assert_eq!(verdict["intact"], false, "{verdict}");
    assert_eq!(verdict["rows"], 3, "{verdict}");
    assert_eq!(
        verdict["checkpoints"],
        serde_json::json!([{"seq": 6, "made_at": verdict["checkpoints"][0]["made_at"], "verdict": "cut_off", "log_ends": 3}]),
        "{verdict}"
    );
}

async fn a_tail_cut_off_and_written_again_is_detected(db: TestDb) {
    let kw = seeded(&db, 5);
    let checkpoint = checkpoint_to(&kw, "checkpoint.json");
    cut_tail(&db, 3).await;
    // The host itself chains new rows onto the cut log, with valid MACs,
    // until the log is as long as it was.
    for _ in 0..4 {
        kw.ok(&["secret", "get", "S", "--reason", "again"], b"");
    }
    let stdout = broken_only_by(&kw, &checkpoint, 7);
    assert!(
        stdout.starts_with("BROKEN at row 6: ") && stdout.contains("not the row checkpoint"),
        "{stdout}"
    );
}

/// Writes `json` (a checkpoint, changed) to a file in the test's folder.
fn write_json(kw: &Kw, file: &str, json: &Value) -> PathBuf {
    let path = kw.dir.path().join(file);
    std::fs::write(&path, format!("{json}\n")).expect("write");
    path
}

fn assert_refused(kw: &Kw, path: &Path, needle: &str) {
    let out = verify(kw, &[path]);
    let stderr = text(&out.stderr);
    assert_eq!(code(&out), 1, "{}{stderr}", text(&out.stdout));
    assert!(
        stderr.contains(&path.display().to_string()) && stderr.contains(needle),
        "{needle:?} in {stderr}"
    );
    assert!(!text(&out.stdout).contains("OK"), "{}", text(&out.stdout));
}

async fn a_modified_checkpoint_is_refused(db: TestDb) {
    let kw = seeded(&db, 5);
    let genuine = read_json(&checkpoint_to(&kw, "genuine.json"));
    let mut other_mac = genuine["mac"].as_str().expect("mac").to_owned();
    other_mac.replace_range(
        ..2,
        if other_mac.starts_with("00") {
            "11"
        } else {
            "00"
        },
    );
    let changes: [(&str, Value); 5] = [
        // Claiming an earlier row would hide a cut-off tail.
        ("seq", Value::from(3)),
        ("mac", Value::from(other_mac)),
        ("time", Value::from("2020-01-01T00:00:00.000Z")),
        ("sig", Value::from("00".repeat(32))),
        ("log", Value::from("00".repeat(16))),
    ];
    for (field, value) in changes {
        let mut forged = genuine.clone();
        forged[field] = value;
        let path = write_json(&kw, &format!("forged-{field}.json"), &forged);
        let needle = if field == "log" {
            "another access log"
        } else {
            "signature does not match"
        };
        assert_refused(&kw, &path, needle);
    }
    let mut newer = genuine.clone();
    newer["version"] = Value::from(2);
    assert_refused(&kw, &write_json(&kw, "v2.json", &newer), "version 2");
    let path = kw.dir.path().join("garbage.json");
    std::fs::write(&path, "seq=6\n").expect("write");
    assert_refused(&kw, &path, "not a Keyward access-log checkpoint");
    assert_refused(&kw, &kw.dir.path().join("absent.json"), "cannot read");
    // The genuine one still verifies.
    let path = write_json(&kw, "again.json", &genuine);
    assert_eq!(code(&verify(&kw, &[&path])), 0);
}

async fn a_checkpoint_of_another_store_is_refused(db: TestDb) {
    let kw = seeded(&db, 5);
    // Another deployment (its own master key and store) with a log just as long.
    let other = seeded(&TestDb::sqlite().await, 5);
    let theirs = checkpoint_to(&other, "theirs.json");
    let copied = kw.dir.path().join("theirs.json");
    std::fs::copy(&theirs, &copied).expect("copy");
    assert_refused(&kw, &copied, "another access log");
    // Relabelled as ours, its signature (by the other store's key) fails.
    let ours = read_json(&checkpoint_to(&kw, "ours.json"));
    let mut relabelled = read_json(&theirs);
    relabelled["log"] = ours["log"].clone();
    let path = write_json(&kw, "relabelled.json", &relabelled);
    assert_refused(&kw, &path, "signature does not match");
}

fn wait_for_checkpoint(path: &Path, seq: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let json = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok());
        if let Some(json) = json.filter(|j| j["seq"] == seq) {
            return json;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of row {seq} in {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn serve_writes_checkpoints_that_verify(db: TestDb) {
    let kw = seeded(&db, 2);
    let path = kw.dir.path().join("anchors").join("head.json");
    std::fs::create_dir(path.parent().expect("parent")).expect("mkdir");
    let mut cmd = kw.cmd(&["serve", "--listen", "127.0.0.1:0"]);
    cmd.env("KEYWARD_AUDIT_CHECKPOINT", &path)
        .env("KEYWARD_AUDIT_CHECKPOINT_EVERY", "1");
    let served = Served::spawn(cmd, &kw.dir.path().join("serve.log"));
    wait_for_checkpoint(&path, 3);
    // A new row while serving: a later checkpoint records it.
    kw.ok(&["secret", "get", "S", "--reason", "r"], b"");
    wait_for_checkpoint(&path, 4);
    drop(served);
    let out = verify(&kw, &[&path]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("OK: checkpoint"),
        "{}",
        text(&out.stdout)
    );

    // A checkpoint that cannot be written is logged; serving goes on.
    let mut cmd = kw.cmd(&["serve", "--listen", "127.0.0.1:0"]);
    let nowhere = kw.dir.path().join("no-such-folder").join("head.json");
    cmd.env("KEYWARD_AUDIT_CHECKPOINT", &nowhere)
        .env("KEYWARD_AUDIT_CHECKPOINT_EVERY", "1");
    let log = kw.dir.path().join("serve-2.log");
    let served = Served::spawn(cmd, &log);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("cannot write the access-log checkpoint")
    {
        assert!(Instant::now() < deadline, "no warning in the log");
        std::thread::sleep(Duration::from_millis(100));
    }
    let health = crate::serve::get(&served.addr, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
}

fn verify_since(kw: &Kw, checkpoint: &Path, json: bool) -> std::process::Output {
    let path = checkpoint.to_str().expect("utf-8");
    let mut args = vec![];
    if json {
        args.extend(["--output", "json"]);
    }
    args.extend(["audit", "verify", "--since-checkpoint", path]);
    kw.run(&args, b"")
}

/// `--since-checkpoint` checks the rows after the checkpoint (an edit there
/// is found), trusts the ones before (an edit there is the whole verify's
/// to find), and still insists the checkpoint's own row is in the log.
async fn verify_since_a_checkpoint_reads_only_the_new_rows(db: TestDb) {
    let kw = seeded(&db, 3); // rows 1–4
    let checkpoint = checkpoint_to(&kw, "checkpoint.json");
    for _ in 0..3 {
        kw.ok(&["secret", "get", "S", "--reason", "later"], b""); // rows 5–7
    }
    let out = verify_since(&kw, &checkpoint, false);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("OK: rows 5–7 verified after the checkpoint at row 4, chain intact\n"),
        "{stdout}"
    );
    let out = verify_since(&kw, &checkpoint, true);
    let verdict: Value = serde_json::from_str(&text(&out.stdout)).expect("JSON");
    assert_eq!(verdict["intact"], true, "{verdict}");
    assert_eq!(verdict["rows"], 7, "{verdict}");
    assert_eq!(verdict["verified_from"], 5, "{verdict}");
    assert_eq!(verdict["checkpoints"][0]["verdict"], "reached", "{verdict}");
    // Through a server it is refused: the server has no such route.
    let mut cmd = kw.cmd(&[
        "audit",
        "verify",
        "--since-checkpoint",
        checkpoint.to_str().expect("utf-8"),
    ]);
    cmd.env("KEYWARD_ADDR", "http://127.0.0.1:9")
        .env("KEYWARD_TOKEN", "x");
    let remote = crate::run_with(cmd, b"");
    assert_eq!(code(&remote), 78, "{}", text(&remote.stderr));
    assert!(
        text(&remote.stderr).contains("--since-checkpoint"),
        "{}",
        text(&remote.stderr)
    );

    db.drop_append_only_guard().await;
    // An edit before the checkpoint: trusted by the incremental verify,
    // found by the whole one.
    db.exec("UPDATE secret_access_log SET reason = 'edited' WHERE seq = 2")
        .await;
    assert_eq!(code(&verify_since(&kw, &checkpoint, false)), 0);
    let whole = kw.run(&["audit", "verify"], b"");
    assert_eq!(code(&whole), 4);
    assert!(text(&whole.stdout).starts_with("BROKEN at row 2: "));
    // An edit after it is found.
    db.exec("UPDATE secret_access_log SET reason = 'edited' WHERE seq = 6")
        .await;
    let out = verify_since(&kw, &checkpoint, false);
    assert_eq!(code(&out), 4, "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("BROKEN at row 6: MAC mismatch"),
        "{}",
        text(&out.stdout)
    );
    // The log cut back below the checkpoint (the guard is already down).
    db.exec("DELETE FROM secret_access_log WHERE seq > 3").await;
    db.exec(
        "UPDATE audit_head SET seq = 3, \
         mac = (SELECT mac FROM secret_access_log WHERE seq = 3) WHERE id = 1",
    )
    .await;
    let out = verify_since(&kw, &checkpoint, false);
    assert_eq!(code(&out), 4, "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("BROKEN at row 4: "),
        "{}",
        text(&out.stdout)
    );
}
