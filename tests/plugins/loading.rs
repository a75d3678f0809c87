//! Loading: manifests, hashes, worlds, the drop-in folder, built-ins and
//! their overrides. A refused plugin never stops the others.

use std::time::Duration;

use keyward::runtime::{Options, Runtime, Source};

use crate::{fixtures, Host};

fn refused(host: &Host) -> Vec<String> {
    host.rt
        .registry()
        .refused
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[tokio::test]
async fn a_component_of_the_wrong_world_is_refused_by_name() {
    let host = Host::with(&["wrong-world", "echo-forge"]).await;
    let refused = refused(&host);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].contains("wrong-world.wasm"), "{}", refused[0]);
    assert!(refused[0].contains("wrong world"), "{}", refused[0]);
    assert!(refused[0].contains("forge-adapter"), "{}", refused[0]);
    host.still_serves().await;
}

#[tokio::test]
async fn hostile_manifests_and_files_are_refused_and_the_rest_load() {
    let host = Host::with(&["echo-forge"]).await;
    let dir = host.plugins.path();
    let (wasm, manifest) = fixtures::fixture("minimal");
    let good = fixtures::with_hash(&manifest, &wasm);
    let cases: Vec<(&str, String, &str)> = vec![
        ("bad-toml", "name = [".to_owned(), "bad-toml.toml"),
        (
            "bad-kind",
            good.replace("kind = \"forge\"", "kind = \"daemon\""),
            "kind",
        ),
        (
            "bad-hash",
            good.replace(&fixtures::sha256(&wasm), &"0".repeat(64)),
            "sha256 mismatch",
        ),
        ("no-hash", manifest.clone(), "sha256 is required"),
        (
            "bad-grant",
            format!("{good}\n[grants]\norigins = [\"http://example.org\"]\n"),
            "plain http",
        ),
        (
            "bad-limit",
            format!("{good}\n[limits]\nmemory_mib = 999999\n"),
            "memory_mib",
        ),
        ("unknown-key", format!("fuel = 5\n{good}"), "unknown field"),
    ];
    for (stem, text, _) in &cases {
        // Every case is the minimal component under another name.
        let text = text.replace("name = \"minimal\"", &format!("name = \"{stem}\""));
        std::fs::write(dir.join(format!("{stem}.wasm")), &wasm).expect("write");
        std::fs::write(dir.join(format!("{stem}.toml")), text).expect("write");
    }
    std::fs::write(dir.join("orphan.wasm"), &wasm).expect("write");
    std::fs::write(dir.join("lonely.toml"), &good).expect("write");
    std::fs::write(dir.join("garbage.wasm"), b"\0asm\x01\0\0\0 not really").expect("write");
    std::fs::write(
        dir.join("garbage.toml"),
        fixtures::with_hash(
            &manifest.replace("name = \"minimal\"", "name = \"garbage\""),
            b"\0asm\x01\0\0\0 not really",
        ),
    )
    .expect("write");
    std::fs::write(dir.join("renamed.wasm"), &wasm).expect("write");
    std::fs::write(dir.join("renamed.toml"), &good).expect("write");
    std::fs::write(dir.join(".hidden.toml"), "junk").expect("write");
    std::fs::write(dir.join("notes.txt"), "ignored").expect("write");
    host.rt.reload().await;
    let refused = refused(&host);
    for (stem, _, needle) in &cases {
        let line = refused
            .iter()
            .find(|r| r.contains(&format!("/{stem}.")))
            .unwrap_or_else(|| panic!("{stem} not refused: {refused:?}"));
        assert!(line.contains(needle), "{stem}: {line}");
    }
    for (stem, needle) in [
        ("orphan", "no manifest beside it"),
        ("lonely", "no component beside it"),
        ("garbage", "not a valid WebAssembly component"),
        ("renamed", "does not match the file name"),
    ] {
        assert!(
            refused
                .iter()
                .any(|r| r.contains(stem) && r.contains(needle)),
            "{stem}: {refused:?}"
        );
    }
    assert_eq!(refused.len(), cases.len() + 4, "{refused:?}");
    assert_eq!(
        host.rt.registry().plugins.keys().collect::<Vec<_>>(),
        ["echo-forge"]
    );
    host.still_serves().await;
}

#[tokio::test]
async fn the_folder_is_watched_for_new_changed_and_removed_plugins() {
    let host = Host::with(&["echo-forge"]).await;
    let _watch = host.rt.watch().expect("a folder to watch");
    let dir = host.plugins.path().to_path_buf();
    let wait_for = |want: bool| {
        let rt = host.rt.clone();
        async move {
            for _ in 0..600 {
                if rt.registry().plugins.contains_key("minimal") == want {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("minimal loaded = {} never happened", want);
        }
    };
    fixtures::install(&dir, "minimal", |m| m);
    wait_for(true).await;
    assert_eq!(host.whoami("minimal").await.expect("call").login, "minimal");
    // A change: the same component, a different (and broken) manifest.
    std::fs::write(dir.join("minimal.toml"), "name = \"minimal\"\n").expect("write");
    wait_for(false).await;
    fixtures::install(&dir, "minimal", |m| m);
    wait_for(true).await;
    std::fs::remove_file(dir.join("minimal.wasm")).expect("rm");
    std::fs::remove_file(dir.join("minimal.toml")).expect("rm");
    wait_for(false).await;
    host.still_serves().await;
}

#[tokio::test]
async fn built_ins_load_and_a_file_of_the_same_name_overrides_one() {
    let host = Host::build(&[], true, Default::default()).await;
    let registry = host.rt.registry();
    for name in [
        "forgejo",
        "github",
        "gitlab",
        "token-dir",
        "agents-json",
        "account-credentials",
        "key-prefix",
        "openbao-kv",
    ] {
        let p = registry
            .plugins
            .get(name)
            .unwrap_or_else(|| panic!("{name} built in"));
        assert_eq!(p.source, Source::BuiltIn);
    }
    assert!(
        registry.refused.is_empty(),
        "{:?}",
        registry
            .refused
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    );
    let info = host
        .rt
        .forge_info(&host.vault, "github")
        .await
        .expect("info");
    assert_eq!(info.kind, "github");
    // Drop in echo-forge as "forgejo".
    fixtures::install(host.plugins.path(), "echo-forge", |m| {
        m.replace("name = \"echo-forge\"", "name = \"forgejo\"")
    });
    std::fs::rename(
        host.plugins.path().join("echo-forge.wasm"),
        host.plugins.path().join("forgejo.wasm"),
    )
    .expect("rename");
    std::fs::rename(
        host.plugins.path().join("echo-forge.toml"),
        host.plugins.path().join("forgejo.toml"),
    )
    .expect("rename");
    let registry = host.rt.reload().await;
    let forgejo = registry.plugins.get("forgejo").expect("forgejo");
    assert_eq!(
        forgejo.source,
        Source::File(host.plugins.path().join("forgejo.wasm"))
    );
    let info = host
        .rt
        .forge_info(&host.vault, "forgejo")
        .await
        .expect("info");
    assert_eq!(info.kind, "echo-forge", "the file's component answers");
}

#[tokio::test]
async fn the_compile_cache_is_used_on_the_next_start() {
    let host = Host::with(&["echo-forge"]).await;
    let cache = tempfile::tempdir().expect("temp dir");
    let start = || {
        Runtime::start(Options {
            plugins_dir: Some(host.plugins.path().to_path_buf()),
            cache_dir: Some(cache.path().to_path_buf()),
            builtins: false,
            hosts: Default::default(),
        })
        .expect("starts")
    };
    drop(start());
    let cached: Vec<_> = walk(cache.path());
    assert_eq!(cached.len(), 1, "{cached:?}");
    // Corrupt the entry: the next start recompiles instead of failing.
    std::fs::write(&cached[0], b"not machine code").expect("write");
    let rt = start();
    assert!(rt.registry().plugins.contains_key("echo-forge"));
    assert!(
        std::fs::read(&cached[0]).expect("read").len() > 1000,
        "rewritten"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
