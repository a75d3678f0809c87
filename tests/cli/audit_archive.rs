//! `audit archive` and `audit verify --archive`, and `serve --audit-retain`:
//! the oldest access-log rows moved to archive files that verify with the
//! live log as one chain; an edited archive, a missing one, a mark moved by
//! hand and a broken log are all found, on both backends.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::support::kw::Served;
use crate::support::TestDb;
use crate::{code, text, Kw};

crate::on_both_backends!(
    archive_then_verify_across_archives_and_the_live_log,
    an_edited_or_damaged_archive_is_detected,
    the_database_deletes_only_archived_rows_and_a_forged_mark_is_found,
    a_broken_log_is_not_archived,
    serve_archives_rows_past_retention,
    an_export_behind_the_archive_stops_instead_of_skipping_rows,
);

/// `n` reads of S (one row each).
fn read(kw: &Kw, n: usize) {
    for _ in 0..n {
        kw.ok(&["secret", "get", "S", "--reason", "archive test"], b"");
    }
}

/// An RFC 3339 time a little after every row written so far and before
/// every row written after it.
fn cut_time() -> String {
    std::thread::sleep(Duration::from_millis(20));
    let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    std::thread::sleep(Duration::from_millis(20));
    now
}

fn archive(kw: &Kw, before: &str, file: &Path) -> std::process::Output {
    kw.run(
        &[
            "audit",
            "archive",
            "--before",
            before,
            "--to",
            file.to_str().expect("UTF-8"),
        ],
        b"",
    )
}

fn verify_with(kw: &Kw, archives: &[&Path], json: bool) -> std::process::Output {
    let mut args: Vec<String> = Vec::new();
    if json {
        args.extend(["--output".into(), "json".into()]);
    }
    args.extend(["audit".into(), "verify".into()]);
    for path in archives {
        args.push("--archive".into());
        args.push(path.to_str().expect("UTF-8").into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    kw.run(&args, b"")
}

async fn scalar(db: &TestDb, sql: &str) -> i64 {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url)
        .await
        .expect("connect");
    let value: i64 = sqlx::query_scalar(sql)
        .fetch_one(&mut conn)
        .await
        .expect(sql);
    conn.close().await.expect("close");
    value
}

/// The archive's lines, decompressed.
fn lines(path: &Path) -> Vec<String> {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).expect("open archive"))
        .read_to_string(&mut text)
        .expect("gzip");
    text.lines().map(str::to_owned).collect()
}

/// Writes `lines` as a gzip archive at `path`.
fn write_lines(path: &Path, lines: &[String]) {
    let file = std::fs::File::create(path).expect("create");
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    for line in lines {
        gz.write_all(line.as_bytes()).expect("write");
        gz.write_all(b"\n").expect("write");
    }
    gz.finish().expect("finish");
}

fn stdout_starts(out: &std::process::Output, expected: &str) {
    assert!(
        text(&out.stdout).starts_with(expected),
        "expected {expected:?}\nstdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

async fn archive_then_verify_across_archives_and_the_live_log(db: TestDb) {
    let kw = Kw::on(&db);
    kw.ok(&["secret", "set", "S"], b"v");
    read(&kw, 3); // rows 1–4
    let first_cut = cut_time();
    read(&kw, 3); // rows 5–7
    let a1 = kw.dir.path().join("a1.jsonl.gz");
    let out = archive(&kw, &first_cut, &a1);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    stdout_starts(&out, "archived rows 1–4 to ");
    // Row 8 records the run: the file and its SHA-256.
    let tail = kw.ok(&["audit", "tail", "-n", "1", "--json"], b"");
    let row: Value = serde_json::from_str(tail.trim()).expect("JSON row");
    assert_eq!(
        (row["seq"].as_i64(), row["action"].as_str()),
        (Some(8), Some("archive"))
    );
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(&a1).expect("read")))
    };
    let detail = row["detail"].as_str().expect("detail");
    assert!(
        detail.starts_with("rows 1–4 to ") && detail.contains(&sha),
        "{detail}"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&a1).expect("archive").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    // The archive: a header, rows 1–4, a signed end; gzip anyone can read.
    let archived = lines(&a1);
    assert_eq!(archived.len(), 6, "{archived:?}");
    let header: Value = serde_json::from_str(&archived[0]).expect("header");
    assert_eq!(header["format"], "keyward-audit-archive");
    assert_eq!(
        (header["first"].as_i64(), header["last"].as_i64()),
        (Some(1), Some(4))
    );
    let end: Value = serde_json::from_str(&archived[5]).expect("end");
    assert_eq!(end["format"], "keyward-audit-checkpoint");
    assert_eq!(end["seq"], 4);
    // Gone from the database, and so from history; nothing else moved.
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM secret_access_log WHERE seq <= 4").await,
        0
    );
    assert_eq!(
        scalar(&db, "SELECT MIN(seq) FROM secret_access_log").await,
        5
    );

    // The live log verifies from the mark; with the archive, as one chain.
    let out = kw.run(&["audit", "verify"], b"");
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    stdout_starts(
        &out,
        "OK: rows 5–8 verified after the archive mark at row 4 (rows 1–4 are archived",
    );
    let out = verify_with(&kw, &[&a1], false);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    stdout_starts(
        &out,
        "OK: rows 1–8 verified as one chain: 1 archive(s) to row 4, then the live log",
    );

    // A second archive: rows 5–9 (the first run's row among them).
    read(&kw, 1); // row 9
    let second_cut = cut_time();
    read(&kw, 2); // rows 10–11
    let a2 = kw.dir.path().join("a2.jsonl.gz");
    let out = archive(&kw, &second_cut, &a2);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    stdout_starts(&out, "archived rows 5–9 to ");
    // Both archives, in any order, and the live log: one chain.
    let out = verify_with(&kw, &[&a2, &a1], true);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let verdict: Value = serde_json::from_str(&text(&out.stdout)).expect("JSON");
    assert_eq!(verdict["intact"], true, "{verdict}");
    assert_eq!(verdict["rows"], 12, "{verdict}");
    assert_eq!(verdict["archived_to"], 9, "{verdict}");
    assert_eq!(verdict["archives"][0]["first"], 1, "{verdict}");
    assert_eq!(verdict["archives"][1]["last"], 9, "{verdict}");
    // Only the newest archive: verified from its start (older ones may
    // have been retired on purpose).
    let out = verify_with(&kw, &[&a2], false);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    stdout_starts(&out, "OK: rows 5–12 verified as one chain");
    // Only the older one: its end does not meet the live log's start.
    let out = verify_with(&kw, &[&a1], false);
    assert_eq!(code(&out), 4, "{}", text(&out.stderr));
    stdout_starts(
        &out,
        "BROKEN at row 5: the archives end at row 4 but the live log starts after row 9",
    );
    // An archive is never overwritten, and nothing older is left to take.
    let out = archive(&kw, &second_cut, &a1);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    stdout_starts(&out, "nothing to archive");
    let out = archive(&kw, "0s", &a1);
    assert_ne!(code(&out), 0);
    assert!(
        text(&out.stderr).contains("never overwritten"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(lines(&a1), archived, "the old archive is untouched");
    // Through a server both are refused: they need the master key.
    for args in [
        vec!["audit", "archive", "--before", "1d", "--to", "x.gz"],
        vec!["audit", "verify", "--archive", "x.gz"],
    ] {
        let mut cmd = kw.cmd(&args);
        cmd.env("KEYWARD_ADDR", "http://127.0.0.1:9")
            .env("KEYWARD_TOKEN", "x");
        let remote = crate::run_with(cmd, b"");
        assert_eq!(code(&remote), 78, "{args:?}: {}", text(&remote.stderr));
    }
    // A date that is not one.
    let out = archive(&kw, "last tuesday", &kw.dir.path().join("x.gz"));
    assert_eq!(code(&out), 2, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("is not a date"),
        "{}",
        text(&out.stderr)
    );
}

/// Archives 1–4 and returns the archive's path and its lines.
fn archived_store(kw: &Kw) -> (PathBuf, Vec<String>) {
    kw.ok(&["secret", "set", "S"], b"v");
    read(kw, 3); // rows 1–4
    let cut = cut_time();
    read(kw, 1); // row 5
    let path = kw.dir.path().join("a.jsonl.gz");
    let out = archive(kw, &cut, &path);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let lines = lines(&path);
    (path, lines)
}

async fn an_edited_or_damaged_archive_is_detected(db: TestDb) {
    let kw = Kw::on(&db);
    let (path, good) = archived_store(&kw);
    let edited = kw.dir.path().join("edited.jsonl.gz");
    let broken = |lines: Vec<String>, expected: &str| {
        write_lines(&edited, &lines);
        let out = verify_with(&kw, &[&edited], false);
        assert_eq!(code(&out), 4, "{expected}: {}", text(&out.stderr));
        stdout_starts(&out, expected);
    };
    let with_row = |index: usize, edit: &dyn Fn(&mut Value)| {
        let mut lines = good.clone();
        let mut row: Value = serde_json::from_str(&lines[index]).expect("row");
        edit(&mut row);
        lines[index] = row.to_string();
        lines
    };
    // A row's reason edited inside the archive.
    broken(
        with_row(2, &|row| row["reason"] = "nothing to see".into()),
        "BROKEN at row 2: archive ",
    );
    let out = verify_with(&kw, &[&edited], false);
    assert!(
        text(&out.stdout).contains("MAC mismatch in the archive"),
        "{}",
        text(&out.stdout)
    );
    // A row dropped.
    let mut dropped = good.clone();
    dropped.remove(2);
    broken(dropped, "BROKEN at row 2: archive ");
    // The end checkpoint cut off (a truncated copy).
    broken(good[..good.len() - 1].to_vec(), "BROKEN at row 4: archive ");
    // A row added after the last, under the same end.
    let mut added = good.clone();
    let extra = with_row(4, &|row| row["seq"] = 5.into())[4].clone();
    added.insert(5, extra);
    broken(added, "BROKEN at row 5: archive ");
    // The signed start moved.
    broken(
        with_row(0, &|header| header["start"]["seq"] = 1.into()),
        "BROKEN at row 1: archive ",
    );
    // The untouched archive still verifies.
    let out = verify_with(&kw, &[&path], false);
    assert_eq!(code(&out), 0, "{}", text(&out.stdout));

    // Not an archive at all: refused with a reason (exit 1), not a verdict.
    std::fs::write(&edited, b"plain text\n").expect("write");
    let out = verify_with(&kw, &[&edited], false);
    assert_eq!(code(&out), 1, "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("is not a Keyward access-log archive"),
        "{}",
        text(&out.stderr)
    );
    write_lines(&edited, &["{\"format\":\"something else\"}".to_owned()]);
    let out = verify_with(&kw, &[&edited], false);
    assert_eq!(code(&out), 1, "{}", text(&out.stdout));
    // A hostile line: one 1 MiB line is refused, not read into memory.
    write_lines(&edited, &[format!("{{\"x\":\"{}\"}}", "a".repeat(1 << 20))]);
    let out = verify_with(&kw, &[&edited], false);
    assert_eq!(code(&out), 1, "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("longer than"),
        "{}",
        text(&out.stderr)
    );
    // Another store's archive (another log secret) is refused.
    let other = Kw::new();
    let (theirs, _) = archived_store(&other);
    let out = verify_with(&kw, &[&theirs], false);
    assert_eq!(code(&out), 1, "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("another access log"),
        "{}",
        text(&out.stderr)
    );
}

async fn the_database_deletes_only_archived_rows_and_a_forged_mark_is_found(db: TestDb) {
    let kw = Kw::on(&db);
    // Before any archive nothing may be deleted.
    kw.ok(&["secret", "set", "S"], b"v");
    assert!(db
        .try_exec("DELETE FROM secret_access_log WHERE seq = 1")
        .await
        .is_err());
    let (_path, _) = {
        read(&kw, 3); // rows 2–4
        let cut = cut_time();
        read(&kw, 2); // rows 5–6
        let path = kw.dir.path().join("a.jsonl.gz");
        let out = archive(&kw, &cut, &path);
        assert_eq!(code(&out), 0, "{}", text(&out.stderr));
        (path, ())
    };
    // Rows after the mark stay append-only; the mark only moves forward
    // and cannot be removed.
    for sql in [
        "DELETE FROM secret_access_log WHERE seq = 5",
        "UPDATE secret_access_log SET reason = 'x' WHERE seq = 6",
        "UPDATE audit_archive SET seq = 1 WHERE id = 1",
        "DELETE FROM audit_archive",
    ] {
        assert!(db.try_exec(sql).await.is_err(), "{sql} was allowed");
    }
    assert_eq!(code(&kw.run(&["audit", "verify"], b"")), 0);
    // Someone with write access moves the mark forward by hand (copying
    // row 6's MAC) and deletes rows 5–6: the mark's signature gives it away.
    db.exec(
        "UPDATE audit_archive SET seq = 6, \
         mac = (SELECT mac FROM secret_access_log WHERE seq = 6) WHERE id = 1",
    )
    .await;
    db.exec("DELETE FROM secret_access_log WHERE seq <= 6")
        .await;
    let out = kw.run(&["audit", "verify"], b"");
    assert_eq!(code(&out), 4, "{}", text(&out.stderr));
    stdout_starts(
        &out,
        "BROKEN at row 6: the archive mark (row 6) does not match its signature",
    );
    // And no archive run goes on from a forged mark.
    let out = archive(&kw, "0s", &kw.dir.path().join("b.jsonl.gz"));
    assert_ne!(code(&out), 0);
    assert!(
        text(&out.stderr).contains("does not match its signature"),
        "{}",
        text(&out.stderr)
    );
}

async fn a_broken_log_is_not_archived(db: TestDb) {
    let kw = Kw::on(&db);
    kw.ok(&["secret", "set", "S"], b"v");
    read(&kw, 3); // rows 1–4
    db.drop_append_only_guard().await;
    db.exec("UPDATE secret_access_log SET reason = 'edited' WHERE seq = 3")
        .await;
    let file = kw.dir.path().join("a.jsonl.gz");
    let out = archive(&kw, "0s", &file);
    assert_ne!(code(&out), 0, "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("row 3 does not match its MAC"),
        "{}",
        text(&out.stderr)
    );
    assert!(!file.exists(), "no archive is left behind");
    let partial = kw.dir.path().join("a.jsonl.gz.partial");
    assert!(!partial.exists(), "no partial file is left behind");
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM secret_access_log").await,
        4
    );
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM audit_archive").await, 0);
}

async fn serve_archives_rows_past_retention(db: TestDb) {
    let kw = Kw::on(&db);
    kw.ok(&["secret", "set", "S"], b"v");
    read(&kw, 3); // rows 1–4
    let dir = kw.dir.path().join("archives");
    let mut cmd = kw.cmd(&["serve", "--listen", "127.0.0.1:0"]);
    cmd.env("KEYWARD_AUDIT_RETAIN", "2s")
        .env("KEYWARD_AUDIT_ARCHIVE_DIR", &dir);
    let served = Served::spawn(cmd, &kw.dir.path().join("serve.log"));
    // Rows 1–4 are past 2 s within a run or two (every 1 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    let archives = loop {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|entries| entries.filter_map(|e| Some(e.ok()?.path())).collect())
            .unwrap_or_default();
        names.retain(|p| p.extension().is_some_and(|e| e == "gz"));
        if !names.is_empty() {
            names.sort();
            break names;
        }
        assert!(Instant::now() < deadline, "no archive within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    let name = archives[0]
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(name.starts_with("access-log-000000000001-"), "{name}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&dir).expect("dir").permissions(),
    );
    assert_eq!(mode & 0o777, 0o700);
    // Stopped once the run is recorded (its row is in the log), not between
    // placing the file and recording it.
    while !kw
        .ok(&["audit", "tail", "-n", "50", "--json"], b"")
        .contains("\"action\":\"archive\"")
    {
        assert!(Instant::now() < deadline, "no archive row within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(served);
    let mut all: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "gz"))
        .collect();
    all.sort();
    let refs: Vec<&Path> = all.iter().map(PathBuf::as_path).collect();
    let out = verify_with(&kw, &refs, true);
    assert_eq!(code(&out), 0, "{}", text(&out.stdout));
    let verdict: Value = serde_json::from_str(&text(&out.stdout)).expect("JSON");
    assert_eq!(verdict["archives"][0]["first"], 1, "{verdict}");
    // The runs are in the log, by the retention's accessor.
    let rows = kw.ok(&["audit", "tail", "-n", "50", "--json"], b"");
    assert!(
        rows.lines()
            .any(|l| l.contains("\"action\":\"archive\"") && l.contains("keyward:retention")),
        "{rows}"
    );
    // Retention without a folder is refused at start.
    let out = kw.run(
        &["serve", "--listen", "127.0.0.1:0", "--audit-retain", "1d"],
        b"",
    );
    assert_eq!(code(&out), 2, "{}", text(&out.stderr));
}

async fn an_export_behind_the_archive_stops_instead_of_skipping_rows(db: TestDb) {
    let kw = Kw::on(&db);
    kw.ok(&["secret", "set", "S"], b"v");
    read(&kw, 1); // rows 1–2
    let export_file = kw.dir.path().join("export.jsonl");
    let export = || {
        kw.run(
            &[
                "audit",
                "export",
                "--to",
                export_file.to_str().expect("UTF-8"),
            ],
            b"",
        )
    };
    assert_eq!(code(&export()), 0);
    read(&kw, 2); // rows 3–4, not exported yet
    let cut = cut_time();
    read(&kw, 1); // row 5
    let out = archive(&kw, &cut, &kw.dir.path().join("a.jsonl.gz"));
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let before = std::fs::read_to_string(&export_file).expect("export");
    let out = export();
    assert_ne!(code(&out), 0, "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("rows 3–4 are no longer in the access log"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&export_file).expect("export"),
        before,
        "nothing written"
    );
}
