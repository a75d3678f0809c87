//! The plugin kit end to end, per language and kind: `keyward plugin new`
//! into a folder outside the repository → the project's own `build` →
//! `keyward plugin check` → dropped into the plugins folder of a running
//! `keyward serve`, which loads it without a restart → a real call (a forge
//! whoami against the forge emulator through the server; a migrator's
//! `migrate plan` over a sample source). Also `keyward plugin manifest`'s
//! refusals. Build times and sizes are printed (docs/plugins.md has them).

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use forge_emulator::{Emulator, Flavor};

use crate::fixtures;
use crate::scaffold::{build, keyward, new_project, out_text};
use crate::support::kw::{run_with, text, Kw, Served};

/// A served store whose plugins folder starts empty, and an operator token.
struct Server {
    kw: Kw,
    plugins: tempfile::TempDir,
    served: Served,
    operator: String,
}

impl Server {
    fn start() -> Server {
        let kw = Kw::new();
        let operator = kw.token("kit", "operator");
        let plugins = tempfile::tempdir().expect("plugins dir");
        let mut cmd = kw.cmd(&["serve", "--listen", "127.0.0.1:0"]);
        cmd.env("KEYWARD_PLUGINS_DIR", plugins.path());
        let served = Served::spawn(cmd, &kw.dir.path().join("serve.log"));
        Server {
            kw,
            plugins,
            served,
            operator,
        }
    }

    /// `keyward ARGS` through the server, as the operator.
    fn remote(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyward"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KEYWARD_DATA_DIR", self.kw.dir.path().join("client"))
            .env("KEYWARD_ADDR", format!("http://{}", self.served.addr))
            .env("KEYWARD_TOKEN", &self.operator);
        run_with(cmd, stdin)
    }

    /// Copies the built pair in, manifest first, and waits for the server's
    /// own folder scan to load it (no reload asked for, no restart).
    fn drop_in(&self, project: &Path, name: &str) {
        for ext in ["toml", "wasm"] {
            std::fs::copy(
                project.join("dist").join(format!("{name}.{ext}")),
                self.plugins.path().join(format!("{name}.{ext}")),
            )
            .expect("copy the built plugin");
        }
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let out = self.remote(&["plugin", "list"], b"");
            let listed = text(&out.stdout);
            if listed.lines().any(|l| l == name) {
                assert!(
                    listed.contains(&format!(
                        "source:   {}",
                        self.plugins.path().join(format!("{name}.wasm")).display()
                    )),
                    "{listed}"
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} was not loaded: {}",
                out_text(&out)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

fn size(project: &Path, name: &str) -> u64 {
    std::fs::metadata(project.join("dist").join(format!("{name}.wasm")))
        .expect("the built wasm")
        .len()
}

/// The whole path for one forge adapter.
fn forge(lang: &str) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let name = format!("kit-{lang}-forge");
    let project = new_project(tmp.path(), &name, "forge", lang);
    let took = build(&project, lang);
    eprintln!(
        "plugin kit: {lang} forge: build {:.1} s, {} bytes",
        took.as_secs_f64(),
        size(&project, &name)
    );
    let wasm = project.join("dist").join(format!("{name}.wasm"));
    let out = keyward()
        .env("KEYWARD_DATA_DIR", tmp.path())
        .args(["plugin", "check"])
        .arg(&wasm)
        .output()
        .expect("plugin check");
    assert!(out.status.success(), "{}", out_text(&out));
    assert!(text(&out.stdout).contains("worlds:  forge-adapter"));

    let server = Server::start();
    server.drop_in(&project, &name);
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let emulator = rt.block_on(Emulator::start(Flavor::Forgejo));
    emulator.add_user("kit-user", 4242);
    let token = emulator.personal_token("kit-user");
    let base = emulator.base_url();
    let ok = |args: &[&str], stdin: &[u8]| {
        let out = server.remote(args, stdin);
        assert!(out.status.success(), "{args:?}: {}", out_text(&out));
        text(&out.stdout)
    };
    ok(
        &[
            "agent-type",
            "add",
            "kit-bot",
            "--forge",
            &name,
            "--base-url",
            &base,
        ],
        b"",
    );
    ok(&["agent-type", "set-token", "kit-bot"], token.as_bytes());
    let who = ok(&["agent-type", "dispatch", "kit-bot"], b"");
    assert!(who.contains("kit-user (id 4242)"), "{who}");
    assert!(!who.contains(&token));
    drop(emulator);
}

/// The whole path for one migrator, over `sample` (a folder, or for the
/// JavaScript skeleton a URL serving a JSON object).
fn migrator(lang: &str) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let name = format!("kit-{lang}-migrator");
    let project = new_project(tmp.path(), &name, "migrator", lang);
    let took = build(&project, lang);
    eprintln!(
        "plugin kit: {lang} migrator: build {:.1} s, {} bytes",
        took.as_secs_f64(),
        size(&project, &name)
    );
    let server = Server::start();
    server.drop_in(&project, &name);

    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let source = if lang == "js" {
        rt.block_on(json_store(
            r#"{"API_TOKEN": "legacy-token-1", "bad name": "x"}"#,
        ))
    } else {
        let dir = tmp.path().join("sample");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("API_TOKEN"), "legacy-token-1\n").expect("write");
        std::fs::write(dir.join("bad name"), "x").expect("write");
        dir.to_str().expect("utf-8").to_owned()
    };
    // A migration works on the store directly (not through the server):
    // the same data folder and key, the same plugins folder.
    let out = server.kw.run(
        &[
            "--plugins-dir",
            server.plugins.path().to_str().expect("utf-8"),
            "migrate",
            "plan",
            &name,
            "--source",
            &source,
            "--option",
            "scope=workload:web",
        ],
        b"",
    );
    let plan = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a problem fails a plan: {}",
        out_text(&out)
    );
    assert!(
        plan.lines().any(|l| l.starts_with("API_TOKEN")
            && l.contains("workload:web/API_TOKEN")
            && l.contains("would migrate")),
        "{plan}"
    );
    assert!(plan.contains("not a secret name"), "{plan}");
    assert!(plan.contains("nothing was changed"), "{plan}");
    assert!(!plan.contains("legacy-token-1"));
}

/// Serves `json` at `/secrets.json` on 127.0.0.1; the URL.
async fn json_store(json: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().route(
        "/secrets.json",
        axum::routing::get(move || async move { ([("content-type", "application/json")], json) }),
    );
    tokio::spawn(async move {
        axum::serve(listener, app).await.ok();
    });
    format!("http://{addr}/secrets.json")
}

#[test]
fn kit_rust_forge() {
    forge("rust");
}

#[test]
fn kit_rust_migrator() {
    migrator("rust");
}

#[test]
fn kit_python_forge() {
    forge("python");
}

#[test]
fn kit_python_migrator() {
    migrator("python");
}

#[test]
fn kit_js_forge() {
    forge("js");
}

#[test]
fn kit_js_migrator() {
    migrator("js");
}

#[test]
fn plugin_new_refuses_a_bad_name_and_a_used_folder() {
    let tmp = tempfile::tempdir().expect("temp dir");
    for bad in ["../x", "X", "a/b", ""] {
        let out = keyward()
            .args([
                "plugin", "new", bad, "--kind", "forge", "--lang", "rust", "--dir",
            ])
            .arg(tmp.path().join("p"))
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(1), "{bad:?}: {}", out_text(&out));
        assert!(out_text(&out).contains("a-z 0-9 - _"), "{}", out_text(&out));
    }
    assert!(
        !tmp.path().join("p").exists(),
        "nothing written for a bad name"
    );
    std::fs::create_dir(tmp.path().join("used")).expect("mkdir");
    std::fs::write(tmp.path().join("used/notes.txt"), "mine").expect("write");
    let out = keyward()
        .args([
            "plugin", "new", "ok", "--kind", "migrator", "--lang", "js", "--dir",
        ])
        .arg(tmp.path().join("used"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out_text(&out).contains("exists and is not empty"),
        "{}",
        out_text(&out)
    );
    assert_eq!(
        std::fs::read_dir(tmp.path().join("used"))
            .expect("ls")
            .count(),
        1
    );
}

#[test]
fn plugin_manifest_fills_in_checks_and_refuses_a_mismatch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (wasm, manifest) = fixtures::fixture("echo-forge");
    let wasm_path = dir.path().join("echo-forge.wasm");
    let toml_path = dir.path().join("echo-forge.toml");
    std::fs::write(&wasm_path, &wasm).expect("write");
    std::fs::write(&toml_path, &manifest).expect("write");
    let run = |args: &[&str]| {
        keyward()
            .args(["plugin", "manifest"])
            .arg(&wasm_path)
            .args(args)
            .output()
            .expect("run")
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out_text(&out).contains("no sha256"), "{}", out_text(&out));

    let out = run(&["--write"]);
    assert!(out.status.success(), "{}", out_text(&out));
    let written = std::fs::read_to_string(&toml_path).expect("read");
    assert!(written.contains(&format!("sha256 = \"{}\"", fixtures::sha256(&wasm))));
    assert!(run(&[]).status.success(), "checks once written");

    // A rebuilt (different) component: a mismatch, named, until --write.
    let mut changed = wasm.clone();
    changed.extend_from_slice(b"rebuilt"); // only hashed here, never loaded
    std::fs::write(&wasm_path, &changed).expect("write");
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out_text(&out).contains("sha256 mismatch"),
        "{}",
        out_text(&out)
    );
    assert!(run(&["--write"]).status.success());
    assert!(std::fs::read_to_string(&toml_path)
        .expect("read")
        .contains(&fixtures::sha256(&changed)));

    // A manifest named for another plugin never pairs with this file.
    let other = dir.path().join("other.wasm");
    std::fs::write(&other, &wasm).expect("write");
    let out = keyward()
        .args(["plugin", "manifest"])
        .arg(&other)
        .arg("--manifest")
        .arg(&toml_path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out_text(&out).contains("loads NAME.wasm with NAME.toml"),
        "{}",
        out_text(&out)
    );

    // No manifest at all.
    std::fs::remove_file(&toml_path).expect("rm");
    let out = run(&["--write"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out_text(&out).contains("cannot read the manifest"),
        "{}",
        out_text(&out)
    );
}
