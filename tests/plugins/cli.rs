//! `keyward plugin list|check|reload` on the real binary.

use std::process::{Command, Output};

use crate::fixtures;

fn keyward(data: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("KEYWARD_DATA_DIR", data)
        .output()
        .expect("run keyward")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn check_accepts_a_good_component_and_prints_its_interface() {
    let dir = tempfile::tempdir().expect("temp dir");
    fixtures::install(dir.path(), "echo-forge", |m| m);
    let wasm = dir.path().join("echo-forge.wasm");
    let out = keyward(
        dir.path(),
        &["plugin", "check", wasm.to_str().expect("utf-8")],
    );
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("worlds:  forge-adapter"), "{shown}");
    assert!(shown.contains("keyward:plugin/outbound@0.1.0"), "{shown}");
    assert!(shown.contains("keyward:plugin/forge@0.1.0"), "{shown}");
    assert!(shown.contains("manifest: echo-forge"), "{shown}");
}

#[test]
fn check_refuses_a_wrong_world_a_bad_hash_and_junk_with_the_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    fixtures::install(dir.path(), "wrong-world", |m| m);
    let wasm = dir.path().join("wrong-world.wasm");
    let out = keyward(
        dir.path(),
        &["plugin", "check", wasm.to_str().expect("utf-8")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("wrong world"), "{}", text(&out));

    fixtures::install(dir.path(), "minimal", |m| {
        let (wasm, _) = fixtures::fixture("minimal");
        m.replace(&fixtures::sha256(&wasm), &"a".repeat(64))
    });
    let wasm = dir.path().join("minimal.wasm");
    let out = keyward(
        dir.path(),
        &["plugin", "check", wasm.to_str().expect("utf-8")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("sha256 mismatch"), "{}", text(&out));

    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"MZ\x90\0 not wasm").expect("write");
    let out = keyward(
        dir.path(),
        &["plugin", "check", junk.to_str().expect("utf-8")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("not a valid WebAssembly component"),
        "{}",
        text(&out)
    );

    let out = keyward(dir.path(), &["plugin", "check", "/no/such/file.wasm"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("/no/such/file.wasm"), "{}", text(&out));
}

#[test]
fn list_shows_built_ins_drop_ins_and_refusals() {
    let data = tempfile::tempdir().expect("temp dir");
    let plugins = tempfile::tempdir().expect("temp dir");
    fixtures::install(plugins.path(), "echo-forge", |m| m);
    std::fs::write(plugins.path().join("broken.toml"), "kind = 3").expect("write");
    std::fs::write(plugins.path().join("broken.wasm"), b"x").expect("write");
    let out = keyward(
        data.path(),
        &[
            "plugin",
            "list",
            "--plugins-dir",
            plugins.path().to_str().expect("utf-8"),
        ],
    );
    let shown = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a refusal makes list fail: {shown}"
    );
    for needle in [
        "forgejo",
        "github",
        "gitlab",
        "source:   built-in",
        "echo-forge",
        "kind:     forge (world forge-adapter)",
        "REFUSED",
        "broken.toml",
    ] {
        assert!(shown.contains(needle), "{needle:?} missing from: {shown}");
    }
    assert!(shown.contains(&format!(
        "source:   {}",
        plugins.path().join("echo-forge.wasm").display()
    )));
}

#[test]
fn reload_without_a_running_server_says_so() {
    let data = tempfile::tempdir().expect("temp dir");
    let out = keyward(data.path(), &["plugin", "reload"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("no running keyward serve found"),
        "{}",
        text(&out)
    );
}

/// A pid file left by a server that was killed (`kill -9` leaves it) names
/// a pid the system may since have given to anything: `reload` reports the
/// file as stale and signals nobody.
#[test]
fn reload_never_signals_a_stranger_through_a_stale_pid_file() {
    let data = tempfile::tempdir().expect("temp dir");
    // The stranger: SIGHUP's default action would end it.
    let mut stranger = Command::new("sleep").arg("30").spawn().expect("sleep");
    std::fs::write(
        data.path().join("keyward.pid"),
        format!("{}\n", stranger.id()),
    )
    .expect("pid file");
    let out = keyward(data.path(), &["plugin", "reload"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("stale"), "{shown}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let alive = stranger.try_wait().expect("wait").is_none();
    let _ = stranger.kill();
    let _ = stranger.wait();
    assert!(alive, "reload signalled an unrelated process: {shown}");
}
