//! Plugin projects made by `keyward plugin new` and built with their own
//! `build`, outside the repository: shared by tests/plugins/kit.rs and the
//! `plugins` bench. The toolchains are the ones the test suite installs
//! (componentize-py by examples/python-plugin/build, componentize-js by
//! scripts/componentize-js); a Rust project is pointed at this checkout's
//! SDK by a `[patch.crates-io]` written here, never by the scaffold.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::fixtures;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One build at a time: each is heavy, and the Rust ones share a target
/// folder.
static BUILD: Mutex<()> = Mutex::new(());

pub fn keyward() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyward"));
    cmd.env_remove("KEYWARD_ADDR").env_remove("KEYWARD_TOKEN");
    cmd
}

pub fn out_text(out: &Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

/// `keyward plugin new NAME --kind KIND --lang LANG --dir <tmp>/NAME`.
pub fn new_project(tmp: &Path, name: &str, kind: &str, lang: &str) -> PathBuf {
    let dir = tmp.join(name);
    let out = keyward()
        .args([
            "plugin", "new", name, "--kind", kind, "--lang", lang, "--dir",
        ])
        .arg(&dir)
        .output()
        .expect("run keyward plugin new");
    assert!(out.status.success(), "{}", out_text(&out));
    assert!(
        !dir.starts_with(fixtures::root()),
        "the project must be outside the repository"
    );
    dir
}

/// Runs the project's `build` with the toolchain the test suite installs
/// (what an author would get from PyPI or npm the first time); returns how
/// long it took.
pub fn build(project: &Path, lang: &str) -> Duration {
    let _one = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let root = fixtures::root();
    let mut cmd = Command::new(project.join("build"));
    cmd.env("KEYWARD", env!("CARGO_BIN_EXE_keyward"))
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO");
    match lang {
        "rust" => {
            // The scaffold depends on the SDK by version; the test points it
            // at this checkout's SDK (the scaffold itself never does).
            let manifest = project.join("Cargo.toml");
            let mut text = std::fs::read_to_string(&manifest).expect("Cargo.toml");
            text.push_str(&format!(
                "\n[patch.crates-io]\nkeyward-plugin-sdk = {{ path = {:?} }}\n",
                root.join("sdk")
            ));
            std::fs::write(&manifest, text).expect("write Cargo.toml");
            cmd.env("CARGO_TARGET_DIR", root.join("target/plugin-kit-rust"));
        }
        "python" => {
            let status = Command::new(root.join("examples/python-plugin/build"))
                .status()
                .expect("run examples/python-plugin/build");
            assert!(status.success(), "installing componentize-py failed");
            cmd.env(
                "COMPONENTIZE_PY",
                root.join("target/python-plugin/venv/bin/componentize-py"),
            );
        }
        "js" => {
            let out = Command::new(root.join("scripts/componentize-js"))
                .output()
                .expect("run scripts/componentize-js");
            assert!(out.status.success(), "{}", out_text(&out));
            cmd.env("COMPONENTIZE_JS", text(&out.stdout).trim());
        }
        other => panic!("no language {other}"),
    }
    let start = Instant::now();
    let out = cmd.output().expect("run the project's build");
    let took = start.elapsed();
    assert!(out.status.success(), "build failed: {}", out_text(&out));
    took
}
