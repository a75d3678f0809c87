//! Soft delete, undelete, destroy and the purge, on both backends: a
//! deleted secret renders as missing and comes back whole within the
//! retention window; past it, undelete says so and the purge destroys it;
//! a destroy leaves no ciphertext of any version in the files or a dump.

use std::time::Duration;

use keyward::vault::{PutMode, Vault, VaultError, PURGE_ACCESSOR};

use crate::support::{contains, TestDb, TestKey};
use crate::{access, log_summary, name, reveal, scope};

crate::on_both_backends!(
    a_deleted_secret_is_missing_until_undeleted_whole,
    a_new_value_makes_a_deleted_secret_live_again,
    past_the_retention_undelete_refuses_and_the_purge_destroys,
    two_hosts_purging_at_once_destroy_each_secret_once,
    a_destroy_leaves_no_ciphertext_of_any_version,
    a_per_secret_limit_prunes_at_once_and_on_later_writes,
);

async fn set(vault: &Vault, n: &str, value: &str) -> i64 {
    match vault
        .put(
            &scope("global"),
            &name(n),
            value.as_bytes(),
            None,
            &access(),
            PutMode::Upsert,
        )
        .await
        .expect("put")
    {
        keyward::vault::Put::Created(v) | keyward::vault::Put::Replaced(v) => v,
    }
}

async fn a_deleted_secret_is_missing_until_undeleted_whole(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let (g, n) = (scope("global"), name("API_KEY"));
    set(&vault, "API_KEY", "one").await;
    set(&vault, "API_KEY", "two").await;

    vault.delete(&g, &n, &access()).await.expect("delete");
    let Err(err) = reveal(&vault, "API_KEY").await else {
        panic!("a deleted secret was revealed");
    };
    assert!(matches!(err, VaultError::Missing(_)), "{err}");
    assert!(vault.list(None).await.expect("list").is_empty());
    let deleted = vault.deleted(None).await.expect("deleted");
    assert_eq!(deleted.len(), 1);
    assert_eq!(
        (deleted[0].meta.name.as_str(), deleted[0].meta.version),
        ("API_KEY", 2)
    );
    assert_eq!(deleted[0].deleted_by, "test:suite");
    // Everything that names a live secret says it is not there...
    let versions = vault.versions(&g, &n).await.expect_err("not live");
    assert_eq!(versions.http_status(), 404);
    let again = vault.delete(&g, &n, &access()).await.expect_err("twice");
    assert_eq!(again.http_status(), 404);

    let meta = vault.undelete(&g, &n, &access()).await.expect("undelete");
    assert_eq!(meta.version, 2);
    let (_, value) = reveal(&vault, "API_KEY").await.expect("live again");
    assert_eq!(value.expose(), b"two");
    let history = vault.versions(&g, &n).await.expect("versions");
    assert_eq!(history.len(), 2, "the kept version came back too");
    let twice = vault.undelete(&g, &n, &access()).await.expect_err("live");
    assert!(matches!(twice, VaultError::NotDeleted { .. }), "{twice}");
    assert_eq!(twice.http_status(), 409);
    let missing = vault
        .undelete(&g, &name("NEVER"), &access())
        .await
        .expect_err("absent");
    assert_eq!(missing.http_status(), 404);

    let actions: Vec<String> = log_summary(&vault)
        .await
        .into_iter()
        .filter(|r| r.3 == "API_KEY")
        .map(|r| format!("{}:{}", r.0, r.1))
        .collect();
    assert_eq!(
        actions,
        [
            "create:ok",
            "replace:ok",
            "delete:ok",
            "reveal:missing",
            "undelete:ok",
            "reveal:ok"
        ]
    );
}

async fn a_new_value_makes_a_deleted_secret_live_again(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let (g, n) = (scope("global"), name("TOKEN"));
    set(&vault, "TOKEN", "one").await;
    vault.delete(&g, &n, &access()).await.expect("delete");
    // To writers a deleted secret is absent: a check-and-set of version 1
    // is stale, one of 0 ("absent") and a create go through.
    let stale = vault
        .put_expecting(&g, &n, b"x", None, &access(), PutMode::Replace, Some(1))
        .await
        .expect_err("absent to writers");
    assert!(
        matches!(stale, VaultError::VersionMismatch { current: 0, .. }),
        "{stale}"
    );
    vault
        .put_expecting(&g, &n, b"two", None, &access(), PutMode::Create, Some(0))
        .await
        .expect("a create of a deleted name");
    assert_eq!(vault.meta(&g, &n).await.expect("meta").version, 2);
    let (_, value) = reveal(&vault, "TOKEN").await.expect("live");
    assert_eq!(value.expose(), b"two");
    assert!(vault.deleted(None).await.expect("deleted").is_empty());
    // The value it had when deleted is kept as a version.
    let v1 = vault
        .reveal_version(&g, &n, 1, &access())
        .await
        .expect("kept");
    assert_eq!(v1.expose(), b"one");
}

async fn past_the_retention_undelete_refuses_and_the_purge_destroys(db: TestDb) {
    let vault = db
        .open(&TestKey::new())
        .await
        .with_retention(Duration::from_millis(300));
    let g = scope("global");
    set(&vault, "OLD", "a").await;
    set(&vault, "OLD", "b").await;
    vault
        .delete(&g, &name("OLD"), &access())
        .await
        .expect("delete");
    tokio::time::sleep(Duration::from_millis(400)).await;
    set(&vault, "RECENT", "c").await;
    vault
        .delete(&g, &name("RECENT"), &access())
        .await
        .expect("delete");

    let err = vault
        .undelete(&g, &name("OLD"), &access())
        .await
        .expect_err("too late");
    assert!(matches!(err, VaultError::RetentionPassed { .. }), "{err}");
    assert_eq!(err.http_status(), 410);

    assert_eq!(vault.purge_expired().await.expect("purge"), 1);
    assert_eq!(vault.purge_expired().await.expect("again"), 0);
    let left: Vec<String> = vault
        .deleted(None)
        .await
        .expect("deleted")
        .into_iter()
        .map(|d| d.meta.name)
        .collect();
    assert_eq!(left, ["RECENT"], "only the one past the window went");
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM secret_version")
        .fetch_one(vault.db().reader())
        .await
        .expect("count");
    assert_eq!(rows, 0, "OLD's kept version went with it");
    let err = vault
        .undelete(&g, &name("OLD"), &access())
        .await
        .expect_err("gone");
    assert_eq!(err.http_status(), 404);
    // The name is free again.
    assert_eq!(set(&vault, "OLD", "new").await, 1);

    let purged: Vec<_> = vault
        .log_tail(100)
        .await
        .expect("tail")
        .into_iter()
        .filter(|r| r.action == "destroy")
        .collect();
    assert_eq!(purged.len(), 1);
    assert_eq!(
        (purged[0].accessor.as_str(), purged[0].name.as_str()),
        (PURGE_ACCESSOR, "OLD")
    );
    assert!(
        purged[0].detail.contains("version 2 and 1 superseded"),
        "{}",
        purged[0].detail
    );
    assert!(matches!(
        vault.verify_log().await.expect("verify"),
        keyward::audit::VerifyReport::Intact { .. }
    ));
}

async fn two_hosts_purging_at_once_destroy_each_secret_once(db: TestDb) {
    let key = TestKey::new();
    let retention = Duration::from_millis(100);
    let a = db.open(&key).await.with_retention(retention);
    let b = db.open(&key).await.with_retention(retention);
    let g = scope("global");
    for i in 0..30 {
        let n = format!("GONE_{i}");
        set(&a, &n, "x").await;
        a.delete(&g, &name(&n), &access()).await.expect("delete");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (x, y) = tokio::join!(a.purge_expired(), b.purge_expired());
    assert_eq!(x.expect("a") + y.expect("b"), 30);
    let destroys = a
        .log_tail(1000)
        .await
        .expect("tail")
        .into_iter()
        .filter(|r| r.action == "destroy")
        .count();
    assert_eq!(destroys, 30, "one destroy row per secret");
    assert!(a.deleted(None).await.expect("deleted").is_empty());
}

async fn a_destroy_leaves_no_ciphertext_of_any_version(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let (g, n) = (scope("global"), name("DOOMED"));
    for v in ["first-value", "second-value", "third-value"] {
        set(&vault, "DOOMED", v).await;
    }
    set(&vault, "KEPT", "stays").await;
    let mut ciphertexts: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT ciphertext FROM secret WHERE name = 'DOOMED'")
            .fetch_all(vault.db().reader())
            .await
            .expect("current");
    ciphertexts.extend(
        sqlx::query_scalar::<_, Vec<u8>>(
            "SELECT ciphertext FROM secret_version WHERE ciphertext IS NOT NULL",
        )
        .fetch_all(vault.db().reader())
        .await
        .expect("kept"),
    );
    assert_eq!(ciphertexts.len(), 3);
    // A dump shows bytea as hex; the SQLite files hold the bytes.
    let found = |raw: &[u8], c: &[u8]| contains(raw, c) || contains(raw, hex::encode(c).as_bytes());
    let before = db.raw_bytes();
    for c in &ciphertexts {
        assert!(found(&before, c), "the check must see a stored ciphertext");
    }

    vault.destroy(&g, &n, &access()).await.expect("destroy");
    let after = db.raw_bytes();
    for (i, c) in ciphertexts.iter().enumerate() {
        assert!(
            !found(&after, c),
            "ciphertext {i} of DOOMED outlived its destroy"
        );
    }
    assert!(vault.versions(&g, &n).await.is_err());
    let (_, kept) = reveal(&vault, "KEPT").await.expect("others stay");
    assert_eq!(kept.expose(), b"stays");
    let row = vault
        .log_tail(10)
        .await
        .expect("tail")
        .into_iter()
        .find(|r| r.action == "destroy")
        .expect("a destroy row");
    assert!(
        row.detail
            .contains("live secret at version 3 and 2 superseded"),
        "{}",
        row.detail
    );
    // A soft-deleted secret can be destroyed too; then nothing is left.
    set(&vault, "LATER", "v").await;
    vault
        .delete(&g, &name("LATER"), &access())
        .await
        .expect("delete");
    vault
        .destroy(&g, &name("LATER"), &access())
        .await
        .expect("destroy deleted");
    assert!(vault.deleted(None).await.expect("deleted").is_empty());
    let err = vault
        .destroy(&g, &name("LATER"), &access())
        .await
        .expect_err("gone");
    assert_eq!(err.http_status(), 404);
}

async fn a_per_secret_limit_prunes_at_once_and_on_later_writes(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let (g, n) = (scope("global"), name("ROLLING"));
    for i in 1..=5 {
        set(&vault, "ROLLING", &format!("v{i}")).await;
    }
    let destroyed = vault
        .set_max_versions(&g, &n, Some(2), &access())
        .await
        .expect("limit");
    assert_eq!(destroyed, [1, 2, 3], "keeps the current one and one more");
    set(&vault, "ROLLING", "v6").await;
    let kept: Vec<i64> = vault
        .versions(&g, &n)
        .await
        .expect("versions")
        .into_iter()
        .filter(|v| v.destroyed_at.is_none())
        .map(|v| v.version)
        .collect();
    assert_eq!(kept, [6, 5]);
    // 0 keeps every version from now on, whatever the server's number.
    vault
        .set_max_versions(&g, &n, Some(0), &access())
        .await
        .expect("all");
    for i in 7..=20 {
        set(&vault, "ROLLING", &format!("v{i}")).await;
    }
    let kept = vault
        .versions(&g, &n)
        .await
        .expect("versions")
        .into_iter()
        .filter(|v| v.destroyed_at.is_none())
        .count();
    assert_eq!(kept, 16, "v5..v20");
}
