//! `audit export --to FILE [--follow]`: every access-log row appended to a
//! file exactly once, across restarts, a `kill -9`, a torn last line and
//! the operator's log rotation; a file that is not an export is refused.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::{code, text, Kw};

/// The seqs of the rows in the export file, in file order.
fn seqs(path: &Path) -> Vec<i64> {
    std::fs::read_to_string(path)
        .expect("read the export")
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            assert!(
                row["mac"].is_string() && row["action"].is_string(),
                "{line}"
            );
            row["seq"].as_i64().expect("seq")
        })
        .collect()
}

fn export(kw: &Kw, path: &Path) -> std::process::Output {
    kw.run(
        &["audit", "export", "--to", path.to_str().expect("UTF-8")],
        b"",
    )
}

fn read(kw: &Kw, times: usize) {
    for _ in 0..times {
        kw.ok(&["secret", "get", "S", "--reason", "export test"], b"");
    }
}

#[test]
fn export_appends_each_row_once_across_restarts_tears_and_rotations() {
    let kw = Kw::new();
    kw.ok(&["secret", "set", "S"], b"v");
    read(&kw, 3); // rows 1–4
    let file = kw.dir.path().join("export.jsonl");
    let mark = kw.dir.path().join("export.jsonl.seq");
    assert_eq!(code(&export(&kw, &file)), 0);
    assert_eq!(seqs(&file), [1, 2, 3, 4]);
    let mode = std::fs::metadata(&file).expect("file").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&mark).expect("mark"), "4\n");
    // Again: nothing new, nothing repeated.
    assert_eq!(code(&export(&kw, &file)), 0);
    assert_eq!(seqs(&file), [1, 2, 3, 4]);
    read(&kw, 2); // rows 5–6
    assert_eq!(code(&export(&kw, &file)), 0);
    assert_eq!(seqs(&file), [1, 2, 3, 4, 5, 6]);

    // A crash in the middle of a line, before the side file moved on.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .expect("open");
        f.write_all(br#"{"seq":7,"at":17"#).expect("torn write");
    }
    read(&kw, 1); // row 7
    let out = export(&kw, &file);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(seqs(&file), [1, 2, 3, 4, 5, 6, 7]);

    // Rotation by moving the file: the new file starts after row 7.
    std::fs::rename(&file, kw.dir.path().join("export.jsonl.1")).expect("rotate");
    read(&kw, 1); // row 8
    assert_eq!(code(&export(&kw, &file)), 0);
    assert_eq!(seqs(&file), [8]);
    // Rotation by truncating in place (copytruncate).
    std::fs::write(&file, b"").expect("truncate");
    read(&kw, 1); // row 9
    assert_eq!(code(&export(&kw, &file)), 0);
    assert_eq!(seqs(&file), [9]);
}

#[test]
fn a_file_that_is_not_an_export_is_refused_and_left_alone() {
    let kw = Kw::new();
    kw.ok(&["secret", "set", "S"], b"v");
    let other = kw.dir.path().join("notes.txt");
    std::fs::write(&other, "remember the milk\n").expect("write");
    let out = export(&kw, &other);
    assert_eq!(code(&out), 1, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("does not look like an access-log export"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&other).expect("read"),
        "remember the milk\n"
    );
    // A side file that does not hold a row number.
    let file = kw.dir.path().join("export.jsonl");
    std::fs::write(kw.dir.path().join("export.jsonl.seq"), "soon\n").expect("write");
    let out = export(&kw, &file);
    assert_eq!(code(&out), 1, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("does not hold a row number"),
        "{}",
        text(&out.stderr)
    );
    // Through a server nothing changes but where the rows come from.
    std::fs::remove_file(kw.dir.path().join("export.jsonl.seq")).expect("rm");
    let token = kw.token("exporter", "operator");
    let served = kw.serve("serve.log");
    let mut cmd = kw.cmd(&["audit", "export", "--to", file.to_str().expect("UTF-8")]);
    cmd.env("KEYWARD_ADDR", format!("http://{}", served.addr))
        .env("KEYWARD_TOKEN", &token);
    let out = crate::run_with(cmd, b"");
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(seqs(&file), [1]);
}

#[test]
fn a_following_export_killed_and_restarted_loses_and_repeats_nothing() {
    let kw = Kw::new();
    kw.ok(&["secret", "set", "S"], b"v");
    let file = kw.dir.path().join("export.jsonl");
    let follow = || {
        kw.cmd(&[
            "audit",
            "export",
            "--to",
            file.to_str().expect("UTF-8"),
            "--follow",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn export --follow")
    };
    let wait_for = |n: usize| {
        let since = Instant::now();
        while std::fs::read_to_string(&file).map_or(0, |t| t.lines().count()) < n {
            assert!(
                since.elapsed() < Duration::from_secs(10),
                "the export did not reach {n} rows"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let mut child = follow();
    read(&kw, 5); // rows 2–6
    wait_for(6);
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    read(&kw, 4); // rows 7–10, while nothing exports
    let mut child = follow();
    read(&kw, 2); // rows 11–12
    wait_for(12);
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    assert_eq!(seqs(&file), (1..=12).collect::<Vec<i64>>());
}
