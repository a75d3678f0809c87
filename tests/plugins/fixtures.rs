//! Builds the fixture plugins (tests/fixtures/plugins) and the built-in
//! ones from source, once per test process, and lays out plugin folders.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    root().join("target").join("fixture-plugins")
}

/// Builds every fixture once; returns the folder holding their `.wasm`.
fn built() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let manifest = root().join("tests/fixtures/plugins/Cargo.toml");
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--release",
                "--locked",
                "--target",
                "wasm32-wasip2",
            ])
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--target-dir")
            .arg(target_dir())
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_TARGET_DIR")
            .status()
            .expect("running cargo to build the fixture plugins");
        assert!(status.success(), "building the fixture plugins failed");
        target_dir().join("wasm32-wasip2").join("release")
    })
}

/// The `[package] name` of a crate.
fn package_name(cargo_toml: &Path) -> String {
    let text = std::fs::read_to_string(cargo_toml).expect("a fixture's Cargo.toml");
    let mut in_package = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package {
            if let Some(rest) = line.strip_prefix("name") {
                return rest
                    .trim_start()
                    .trim_start_matches('=')
                    .trim()
                    .trim_matches('"')
                    .to_owned();
            }
        }
    }
    panic!("no package name in {}", cargo_toml.display())
}

/// The wasm and the manifest text (without sha256) of fixture `name`.
pub fn fixture(name: &str) -> (Vec<u8>, String) {
    let dir = root().join("tests/fixtures/plugins").join(name);
    let krate = package_name(&dir.join("Cargo.toml")).replace('-', "_");
    let wasm_path = built().join(format!("{krate}.wasm"));
    let wasm = std::fs::read(&wasm_path).unwrap_or_else(|e| panic!("{}: {e}", wasm_path.display()));
    let manifest = std::fs::read_to_string(dir.join("plugin.toml")).expect("fixture manifest");
    (wasm, manifest)
}

/// Lower-case hex sha256.
pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `manifest` with a `sha256 = "…"` line for `wasm` (as its first line, so
/// it lands before any table).
pub fn with_hash(manifest: &str, wasm: &[u8]) -> String {
    format!("sha256 = \"{}\"\n{manifest}", sha256(wasm))
}

/// Writes fixture `name` into `dir` as NAME.wasm + NAME.toml, with `edit`
/// applied to the manifest text (after the hash is added).
pub fn install(dir: &Path, name: &str, edit: impl FnOnce(String) -> String) {
    let (wasm, manifest) = fixture(name);
    std::fs::write(dir.join(format!("{name}.wasm")), &wasm).expect("write wasm");
    std::fs::write(
        dir.join(format!("{name}.toml")),
        edit(with_hash(&manifest, &wasm)),
    )
    .expect("write manifest");
}
