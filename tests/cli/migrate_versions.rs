//! A migration and secret versions: an item written again with `--again`
//! keeps the value it replaces as a version, the ledger records which
//! version each item wrote, and the import can be rolled back; a secret an
//! operator deleted is written as its next version.

use crate::Kw;

/// The ledger's (item id, version) rows of the store at `kw`.
fn ledger_versions(kw: &Kw) -> Vec<(String, Option<i64>)> {
    let url = format!("sqlite://{}/keyward.db", kw.dir.path().display());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            use sqlx::{Connection, Row};
            let mut conn = sqlx::sqlite::SqliteConnection::connect(&url)
                .await
                .expect("open the store");
            sqlx::query("SELECT item_id, version FROM migration_ledger ORDER BY item_id")
                .fetch_all(&mut conn)
                .await
                .expect("ledger")
                .iter()
                .map(|r| (r.get::<String, _>(0), r.get::<Option<i64>, _>(1)))
                .collect()
        })
}

#[test]
fn an_import_is_versioned_recorded_and_can_be_rolled_back() {
    let kw = Kw::new();
    let src = kw.dir.path().join("legacy");
    let tokens = src.join("tokens");
    std::fs::create_dir_all(&tokens).expect("mkdir");
    let src_s = src.to_str().expect("utf-8 path");
    let run = |again: bool| {
        let mut args = vec!["migrate", "run", "token-dir", "--source", src_s];
        if again {
            args.push("--again");
        }
        kw.ok(&args, b"")
    };
    std::fs::write(tokens.join("agent-0"), "first-token-0123456789\n").expect("write");
    let out = run(false);
    assert!(out.contains("1 migrated"), "{out}");
    assert_eq!(ledger_versions(&kw), [("tokens/agent-0".into(), Some(1))]);

    // The legacy file comes back with another token: written again as
    // version 2, the first kept.
    std::fs::write(tokens.join("agent-0"), "second-token-0123456789\n").expect("write");
    let out = run(true);
    assert!(out.contains("1 migrated"), "{out}");
    assert_eq!(ledger_versions(&kw), [("tokens/agent-0".into(), Some(2))]);
    let secret = ["--scope", "agent_type:agent-0"];
    let get = |extra: &[&str]| {
        let mut args = vec!["secret", "get", "FORGE_TOKEN", "--reason", "check"];
        args.extend_from_slice(&secret);
        args.extend_from_slice(extra);
        kw.ok(&args, b"")
    };
    assert_eq!(get(&[]), "second-token-0123456789");
    assert_eq!(get(&["--version", "1"]), "first-token-0123456789");
    let mut rollback = vec![
        "secret",
        "rollback",
        "FORGE_TOKEN",
        "--to",
        "1",
        "--reason",
        "bad import",
    ];
    rollback.extend_from_slice(&secret);
    kw.ok(&rollback, b"");
    assert_eq!(get(&[]), "first-token-0123456789");

    // Deleted by an operator to clear the name: a later run writes it as
    // the next version (live again), the deleted value kept as a version.
    let mut rm = vec!["secret", "rm", "FORGE_TOKEN"];
    rm.extend_from_slice(&secret);
    kw.ok(&rm, b"");
    std::fs::write(tokens.join("agent-0"), "third-token-0123456789\n").expect("write");
    let out = run(true);
    assert!(out.contains("1 migrated"), "{out}");
    assert_eq!(get(&[]), "third-token-0123456789");
    assert_eq!(ledger_versions(&kw), [("tokens/agent-0".into(), Some(4))]);
    assert_eq!(get(&["--version", "3"]), "first-token-0123456789");
    let deleted = kw.ok(&["secret", "deleted"], b"");
    assert!(!deleted.contains("FORGE_TOKEN"), "{deleted}");
}
