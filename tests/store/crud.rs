//! Create, replace, describe, delete, list: metadata only, versions, limits.

use keyward::audit::Action;
use keyward::resolve::Context;
use keyward::vault::{Put, PutMode, VaultError, MAX_VALUE_LEN};

use crate::support::{TestDb, TestKey};
use crate::{access, log_summary, name, reference, reveal, scope};

crate::on_both_backends!(
    create_reveal_and_list_metadata_only,
    replace_bumps_version_and_rotated_at,
    conflicts_and_missing_rows_are_clear_errors,
    value_and_description_limits,
    migrations_are_idempotent,
);

async fn create_reveal_and_list_metadata_only(db: TestDb) {
    let key = TestKey::new();
    let vault = db.open(&key).await;
    let g = scope("global");
    vault
        .create(
            &g,
            &name("GITHUB_TOKEN"),
            b"ghp_secretvalue",
            "forge token",
            &access(),
        )
        .await
        .expect("create");
    vault
        .create(
            &scope("agent_type:coder"),
            &name("GITHUB_TOKEN"),
            b"coder-token",
            "",
            &access(),
        )
        .await
        .expect("create scoped");

    let list = vault.list(None).await.expect("list");
    assert_eq!(list.len(), 2);
    let global = list
        .iter()
        .find(|m| m.scope == "global")
        .expect("global row");
    assert_eq!((global.name.as_str(), global.version), ("GITHUB_TOKEN", 1));
    assert_eq!(global.description, "forge token");
    assert_eq!(global.key_id, vault.keyring().current_id().to_string());
    let json = serde_json::to_string(&list).expect("json");
    assert!(
        !json.contains("ghp_secretvalue") && !json.contains("coder-token"),
        "{json}"
    );
    assert_eq!(
        vault
            .list(Some(&scope("agent_type:coder")))
            .await
            .expect("list")
            .len(),
        1
    );

    let (found_in, value) = vault
        .reveal(
            &reference("GITHUB_TOKEN"),
            &Context::default(),
            &access(),
            Action::Reveal,
        )
        .await
        .expect("reveal");
    assert_eq!(found_in.as_str(), "global");
    assert_eq!(value.expose(), b"ghp_secretvalue");

    let log = log_summary(&vault).await;
    assert_eq!(
        log,
        vec![
            (
                "create".into(),
                "ok".into(),
                "global".into(),
                "GITHUB_TOKEN".into()
            ),
            (
                "create".into(),
                "ok".into(),
                "agent_type:coder".into(),
                "GITHUB_TOKEN".into()
            ),
            (
                "reveal".into(),
                "ok".into(),
                "global".into(),
                "GITHUB_TOKEN".into()
            ),
        ]
    );
}

async fn replace_bumps_version_and_rotated_at(db: TestDb) {
    let key = TestKey::new();
    let vault = db.open(&key).await;
    let (g, n) = (scope("global"), name("API_KEY"));
    vault
        .create(&g, &n, b"one", "first", &access())
        .await
        .expect("create");
    let before = vault.list(None).await.expect("list").remove(0);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;

    assert_eq!(
        vault
            .replace(&g, &n, b"two", &access())
            .await
            .expect("replace"),
        2
    );
    let after = vault.list(None).await.expect("list").remove(0);
    assert_eq!(after.version, 2);
    assert!(after.rotated_at > before.rotated_at);
    assert!(after.updated_at > before.updated_at);
    assert_eq!(after.created_at, before.created_at);
    assert_eq!(after.description, "first");

    let put = vault
        .put(&g, &n, b"three", Some("third"), &access(), PutMode::Upsert)
        .await
        .expect("upsert");
    assert_eq!(put, Put::Replaced(3));
    let meta = vault.list(None).await.expect("list").remove(0);
    assert_eq!((meta.version, meta.description.as_str()), (3, "third"));
    let (_, value) = reveal(&vault, "global/API_KEY").await.expect("reveal");
    assert_eq!(value.expose(), b"three");

    vault
        .describe(&g, &n, "described", &access())
        .await
        .expect("describe");
    vault.delete(&g, &n, &access()).await.expect("delete");
    assert!(vault.list(None).await.expect("list").is_empty());
    let actions: Vec<String> = log_summary(&vault).await.into_iter().map(|r| r.0).collect();
    assert_eq!(
        actions,
        ["create", "replace", "replace", "describe", "reveal", "describe", "delete"]
    );
}

async fn conflicts_and_missing_rows_are_clear_errors(db: TestDb) {
    let key = TestKey::new();
    let vault = db.open(&key).await;
    let (g, n) = (scope("global"), name("X"));
    vault
        .create(&g, &n, b"v", "", &access())
        .await
        .expect("create");
    let err = vault
        .create(&g, &n, b"w", "", &access())
        .await
        .expect_err("exists");
    assert!(matches!(err, VaultError::Exists { .. }), "{err}");
    assert_eq!(err.http_status(), 409);

    let other = name("NOPE");
    for err in [
        vault
            .replace(&g, &other, b"v", &access())
            .await
            .expect_err("missing"),
        vault
            .delete(&g, &other, &access())
            .await
            .expect_err("missing"),
        vault
            .describe(&g, &other, "d", &access())
            .await
            .expect_err("missing"),
        vault
            .reseal(&g, &other, &access())
            .await
            .map(|_| ())
            .expect_err("missing"),
    ] {
        assert!(matches!(err, VaultError::NotFound { .. }), "{err}");
        assert_eq!(err.http_status(), 404);
        assert_eq!(err.to_string(), "no secret global/NOPE");
    }
    // The failed attempts changed nothing.
    let (_, value) = reveal(&vault, "X").await.expect("reveal");
    assert_eq!(value.expose(), b"v");
    assert_eq!(vault.list(None).await.expect("list").len(), 1);
}

async fn value_and_description_limits(db: TestDb) {
    let key = TestKey::new();
    let vault = db.open(&key).await;
    let g = scope("global");
    let err = vault
        .create(&g, &name("E"), b"", "", &access())
        .await
        .expect_err("empty");
    assert!(matches!(err, VaultError::EmptyValue));
    let big = vec![b'x'; MAX_VALUE_LEN + 1];
    let err = vault
        .create(&g, &name("BIG"), &big, "", &access())
        .await
        .expect_err("too big");
    assert!(matches!(err, VaultError::ValueTooLarge { len } if len == MAX_VALUE_LEN + 1));
    assert_eq!(err.http_status(), 413);
    let err = vault
        .create(&g, &name("D"), b"v", "bad\u{7}bell", &access())
        .await
        .expect_err("ctl");
    assert!(matches!(err, VaultError::Description));
    let long = "d".repeat(1025);
    assert!(vault
        .create(&g, &name("D"), b"v", &long, &access())
        .await
        .is_err());
    assert!(
        vault.list(None).await.expect("list").is_empty(),
        "refused input wrote nothing"
    );

    // The largest value and binary bytes round-trip exactly.
    let max: Vec<u8> = (0..MAX_VALUE_LEN).map(|i| (i % 251) as u8).collect();
    vault
        .create(&g, &name("MAX"), &max, "", &access())
        .await
        .expect("max size");
    let (_, value) = reveal(&vault, "MAX").await.expect("reveal");
    assert_eq!(value.expose(), max.as_slice());
}

async fn migrations_are_idempotent(db: TestDb) {
    let key = TestKey::new();
    for _ in 0..3 {
        let vault = db.open(&key).await;
        vault.db().migrate().await.expect("migrate again");
        vault.db().close().await;
    }
    let vault = db.open(&key).await;
    assert!(vault.list(None).await.expect("list").is_empty());
}
