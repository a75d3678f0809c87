//! Builds the built-in plugins in `../plugins` for wasm32-wasip2 (a nested
//! cargo with its own target folder) and embeds them, manifest and wasm, in
//! the binary. Without the `builtin-plugins` feature (the fuzz build, which
//! runs a toolchain without the wasm target), nothing is embedded.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("host/ has a parent")
        .to_path_buf();
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let dest = out.join("builtin_plugins.rs");
    for watched in ["plugins", "sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=KEYWARD_PLUGINS_TARGET_DIR");
    git_commit(&root);

    if env::var_os("CARGO_FEATURE_BUILTIN_PLUGINS").is_none() {
        std::fs::write(&dest, "pub static BUILTIN: &[Builtin] = &[];\n").expect("writing OUT_DIR");
        return;
    }

    let plugins = root.join("plugins");
    let target_dir = env::var_os("KEYWARD_PLUGINS_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target").join("wasm-plugins"));
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "--locked",
        "--target",
        "wasm32-wasip2",
    ])
    .arg("--manifest-path")
    .arg(plugins.join("Cargo.toml"))
    .arg("--target-dir")
    .arg(&target_dir)
    .current_dir(&plugins);
    // The outer build's flags are for the host target (and, under cargo
    // fuzz, for sanitizers); they must not leak into the wasm build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_PKG_NAME",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("running cargo for the built-in plugins");
    assert!(
        status.success(),
        "building the built-in plugins in {} failed (is the wasm32-wasip2 target installed? \
         rust-toolchain.toml asks rustup for it)",
        plugins.display()
    );

    let mut code = String::from("pub static BUILTIN: &[Builtin] = &[\n");
    let mut members: Vec<PathBuf> = std::fs::read_dir(&plugins)
        .expect("reading plugins/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("plugin.toml").is_file() && p.join("Cargo.toml").is_file())
        .collect();
    members.sort();
    for dir in members {
        let krate = package_name(&dir.join("Cargo.toml")).replace('-', "_");
        let wasm = target_dir
            .join("wasm32-wasip2")
            .join("release")
            .join(format!("{krate}.wasm"));
        assert!(wasm.is_file(), "{} was not built", wasm.display());
        let dir_name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 plugin folder");
        writeln!(
            code,
            "    Builtin {{ name: {dir_name:?}, manifest: include_str!({:?}), wasm: include_bytes!({:?}) }},",
            dir.join("plugin.toml"),
            wasm
        )
        .expect("writing to a String");
    }
    code.push_str("];\n");
    std::fs::write(&dest, code).expect("writing OUT_DIR");
}

/// The `name` of `[package]` in a plugin's Cargo.toml.
fn package_name(cargo_toml: &Path) -> String {
    let text = std::fs::read_to_string(cargo_toml).expect("reading a plugin's Cargo.toml");
    let mut in_package = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package {
            if let Some(value) = line.strip_prefix("name") {
                let value = value.trim_start().trim_start_matches('=').trim();
                return value.trim_matches('"').to_owned();
            }
        }
    }
    panic!("no [package] name in {}", cargo_toml.display());
}

/// Sets `KEYWARD_GIT_COMMIT` for `keyward version` and `keyward_build_info`:
/// the variable if set (a build from a source archive), else the checkout's
/// HEAD, else `unknown`. Rebuilt when HEAD moves.
fn git_commit(root: &Path) {
    println!("cargo:rerun-if-env-changed=KEYWARD_GIT_COMMIT");
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let commit = env::var("KEYWARD_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=KEYWARD_GIT_COMMIT={commit}");
    // HEAD names the branch; the branch's file (or packed-refs) holds the
    // commit. Only files that exist are watched: a missing one would make
    // cargo run this script on every build.
    let mut watched = Vec::new();
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        watched.push(PathBuf::from(dir).join("HEAD"));
    }
    if let Some(common) = git(&["rev-parse", "--git-common-dir"]) {
        let common = root.join(common);
        watched.push(common.join("packed-refs"));
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watched.push(common.join(branch));
        }
    }
    for path in watched.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
