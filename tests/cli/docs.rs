//! The docs hold. Every shell block marked `<!-- runnable … -->` in
//! README.md and docs/*.md runs as written (with the `keyward` under test
//! first on PATH, in an empty folder, with no Keyward variable set) and
//! exits 0, printing what the marker's `expect="…"` says; and every
//! setting of the README's table is in deploy/keyward.env.example.
//!
//! The harness stubs two commands a block may use that need more than a
//! test has: `cargo` (the binary is already built) and `logger` (no syslog
//! here). Everything else runs for real.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::text;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository")
        .to_path_buf()
}

/// (file, line, what it must print, the block's text) of each runnable block.
fn runnable_blocks() -> Vec<(String, usize, Vec<String>, String)> {
    let root = repo();
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut blocks = Vec::new();
    for file in files {
        let content = std::fs::read_to_string(&file).expect("read");
        let lines: Vec<&str> = content.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let Some(marker) = lines[i].trim().strip_prefix("<!-- runnable") else {
                i += 1;
                continue;
            };
            let expect: Vec<String> = marker
                .split("expect=\"")
                .skip(1)
                .filter_map(|rest| rest.split('"').next())
                .map(str::to_owned)
                .collect();
            let start = (i + 1..lines.len())
                .find(|&j| lines[j].trim() == "```sh")
                .unwrap_or_else(|| {
                    panic!(
                        "{}:{}: no ```sh block after the marker",
                        file.display(),
                        i + 1
                    )
                });
            let end = (start + 1..lines.len())
                .find(|&j| lines[j].trim() == "```")
                .expect("a closed block");
            let name = file
                .strip_prefix(&root)
                .expect("in the repository")
                .display()
                .to_string();
            blocks.push((name, start + 1, expect, lines[start + 1..end].join("\n")));
            i = end + 1;
        }
    }
    blocks
}

#[test]
fn every_runnable_block_in_the_docs_runs() {
    let blocks = runnable_blocks();
    assert!(
        blocks.iter().any(|(file, ..)| file == "README.md"),
        "the README's quick start is marked runnable"
    );
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_keyward"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    for (file, line, expect, block) in blocks {
        let dir = tempfile::tempdir().expect("temp dir");
        let script = format!(
            "set -euo pipefail\ncargo() {{ :; }}\nlogger() {{ cat >/dev/null; }}\n{block}\n"
        );
        let out = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .env_clear()
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    bin_dir.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("HOME", dir.path())
            .env("USER", "docs-reader")
            .current_dir(dir.path())
            .output()
            .expect("run bash");
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "{file}:{line}: the block failed ({}):\n{stdout}\n{}",
            out.status,
            text(&out.stderr)
        );
        for want in &expect {
            assert!(
                stdout.contains(want.as_str()),
                "{file}:{line}: the block did not print {want:?}:\n{stdout}"
            );
        }
    }
}

/// Every `KEYWARD_*` setting of the README's table that the server reads is
/// in the example environment file (or the unit), so an operator who starts
/// from it sees every knob.
#[test]
fn every_server_setting_is_in_the_example_environment_file() {
    let root = repo();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README");
    let example = std::fs::read_to_string(root.join("deploy/keyward.env.example")).expect("env");
    let unit = std::fs::read_to_string(root.join("deploy/keyward.service")).expect("unit");
    // The client's own variables and the test suite's are not the server's.
    let not_the_servers = [
        "KEYWARD_ADDR",
        "KEYWARD_TOKEN",
        "KEYWARD_FUZZ_SECONDS",
        "KEYWARD_API_FUZZ_SECONDS",
        "KEYWARD_TEST_POSTGRES_URL",
        "KEYWARD_GIT_COMMIT",
    ];
    let mut missing = Vec::new();
    for row in readme.lines().filter(|l| l.starts_with("| `KEYWARD_")) {
        let var = row
            .trim_start_matches("| `")
            .split('`')
            .next()
            .expect("a name");
        if !not_the_servers.contains(&var) && !example.contains(var) && !unit.contains(var) {
            missing.push(var.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "settings in the README's table but not in deploy/keyward.env.example: {missing:?}"
    );
}

/// The Dockerfile (not built here: no container engine on the test
/// machine) keeps what docs/operations.md promises: multi-stage, a final
/// image that adds the binary alone to a distroless base, a non-root user,
/// and no master key baked in.
#[test]
fn the_dockerfile_ships_the_binary_alone_as_a_non_root_user() {
    let root = repo();
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).expect("Dockerfile");
    let lines: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let stages: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("FROM "))
        .collect();
    assert_eq!(stages.len(), 2, "a build stage and the final image");
    assert!(
        lines[stages[0]].ends_with(" AS build"),
        "{}",
        lines[stages[0]]
    );
    let last = &lines[stages[1]..];
    assert!(
        last[0].starts_with("FROM gcr.io/distroless/") && last[0].ends_with(":nonroot"),
        "{}",
        last[0]
    );
    // The final stage copies the binary and an empty data folder, nothing else.
    let copies: Vec<&&str> = last.iter().filter(|l| l.starts_with("COPY")).collect();
    assert_eq!(copies.len(), 2, "{copies:?}");
    assert!(
        copies[0].ends_with("/out/keyward /usr/bin/keyward"),
        "{}",
        copies[0]
    );
    assert!(
        copies[1].contains("--chmod=0700") && copies[1].ends_with("/out/data /var/lib/keyward"),
        "{}",
        copies[1]
    );
    assert!(
        !last.iter().any(|l| l.starts_with("RUN")),
        "the final image runs nothing at build"
    );
    let user = last
        .iter()
        .find(|l| l.starts_with("USER "))
        .expect("a USER");
    assert!(!user.contains("root") && !user.contains(" 0"), "{user}");
    assert!(
        !dockerfile.contains("KEYWARD_MASTER_KEY"),
        "the key must come from the environment at run time"
    );
    assert!(lines.contains(&"ENTRYPOINT [\"/usr/bin/keyward\"]"));
    // What the image leaves out of its build context.
    let ignored = std::fs::read_to_string(root.join(".dockerignore")).expect(".dockerignore");
    for entry in ["target", "keyward-data", ".git"] {
        assert!(ignored.lines().any(|l| l.trim() == entry), "{entry}");
    }
}

/// The packaged configuration file is valid for `config check` and holds
/// no secret (those belong in keyward.env, which only root reads).
#[test]
fn the_packaged_configuration_checks_and_holds_no_secret() {
    let root = repo();
    let file = root.join("deploy/keyward.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args([
            "--config",
            file.to_str().expect("UTF-8"),
            "config",
            "check",
            "--output",
            "json",
        ])
        .env_remove("KEYWARD_DATA_DIR")
        .env_remove("KEYWARD_LISTEN")
        .env_remove("KEYWARD_AUDIT_CHECKPOINT")
        .env_remove("KEYWARD_CONFIG")
        .output()
        .expect("run keyward");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown: serde_json::Value = serde_json::from_str(&text(&out.stdout)).expect("JSON");
    for (key, value) in [
        ("data_dir", "/var/lib/keyward"),
        ("listen", "127.0.0.1:8080"),
        ("audit_checkpoint", "/var/lib/keyward/checkpoint.json"),
    ] {
        assert_eq!(shown["settings"][key]["value"], value, "{shown}");
        assert_eq!(shown["settings"][key]["source"], "file", "{shown}");
    }
    let unit = std::fs::read_to_string(root.join("deploy/keyward.service")).expect("unit");
    assert!(
        unit.contains("\nExecStart=/usr/bin/keyward serve --config /etc/keyward/keyward.toml\n"),
        "the unit names the packaged configuration"
    );
}
