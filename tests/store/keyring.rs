//! The keyring canary and master-key rotation.

use keyward::vault::{Vault, VaultError};

use crate::support::{TestDb, TestKey};
use crate::{access, name, reveal, scope};

crate::on_both_backends!(
    a_different_key_is_refused_and_writes_nothing,
    rotation_is_resumable_and_retires_the_previous_key,
);

/// Everything the store holds, as text, to compare before and after.
async fn snapshot(db: &TestDb) -> String {
    sqlx::any::install_default_drivers();
    use sqlx::Connection;
    let mut conn = sqlx::AnyConnection::connect(&db.url)
        .await
        .expect("connect");
    let mut out = String::new();
    for (table, order) in [
        ("keyring", "purpose"),
        ("secret", "id"),
        ("secret_access_log", "seq"),
        ("audit_head", "id"),
    ] {
        let count: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut conn)
            .await
            .expect("count");
        out.push_str(&format!("{table}:{count}\n"));
        let rows: Vec<(String,)> = sqlx::query_as(&format!(
            "SELECT CAST({order} AS TEXT) FROM {table} ORDER BY {order}"
        ))
        .fetch_all(&mut conn)
        .await
        .expect("rows");
        out.push_str(&format!("{rows:?}\n"));
    }
    let head: (i64, i64) = sqlx::query_as("SELECT seq, touched_at FROM audit_head")
        .fetch_one(&mut conn)
        .await
        .expect("head");
    out.push_str(&format!("head:{head:?}\n"));
    let sealed: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT key_id, ciphertext FROM secret ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .expect("sealed");
    out.push_str(&format!("{sealed:?}\n"));
    out
}

async fn a_different_key_is_refused_and_writes_nothing(db: TestDb) {
    let right = TestKey::new();
    let vault = db.open(&right).await;
    vault
        .create(&scope("global"), &name("K"), b"v", "", &access())
        .await
        .expect("create");
    vault.db().close().await;
    drop(vault);

    let before = snapshot(&db).await;
    let wrong = TestKey::new();
    let err = Vault::open(&db.config(&wrong, &[]))
        .await
        .err()
        .expect("refused");
    let message = err.to_string();
    assert!(matches!(err, VaultError::WrongKey { .. }), "{message}");
    assert!(
        message.contains("KEYWARD_MASTER_KEY does not open the store"),
        "{message}"
    );
    assert!(message.contains("KEYWARD_MASTER_KEY_PREVIOUS"), "{message}");
    assert!(!message.contains(wrong.base64()) && !message.contains(right.base64()));
    assert_eq!(snapshot(&db).await, before, "a refused start wrote nothing");

    // A wrong key offered as "previous" does not help either.
    let err = Vault::open(&db.config(&TestKey::new(), &[&wrong]))
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, VaultError::WrongKey { .. }));
    assert_eq!(snapshot(&db).await, before);

    // The right key still opens it.
    let vault = db.open(&right).await;
    assert_eq!(vault.list(None).await.expect("list").len(), 1);
}

async fn rotation_is_resumable_and_retires_the_previous_key(db: TestDb) {
    let old = TestKey::new();
    let vault = db.open(&old).await;
    for i in 0..10 {
        let value = format!("value-{i}");
        vault
            .create(
                &scope("global"),
                &name(&format!("R{i}")),
                value.as_bytes(),
                "",
                &access(),
            )
            .await
            .expect("create");
    }
    let old_id = vault.keyring().current_id().to_string();
    vault.db().close().await;
    drop(vault);

    let new = TestKey::new();
    // Without the old key as "previous", the new key is refused.
    assert!(Vault::open(&db.config(&new, &[])).await.is_err());

    // With it, the new key is still refused until it is adopted...
    let err = Vault::open(&db.config(&new, &[&old])).await.err();
    assert!(
        matches!(err, Some(VaultError::KeyNotAdopted { .. })),
        "{err:?}"
    );
    let vault = Vault::open_with(
        &db.config(&new, &[&old]),
        keyward::vault::NewKey::Adopt { replace: false },
    )
    .await
    .expect("open mid-rotation");
    // ...and once it is, another new key is refused.
    let err = Vault::open(&db.config(&TestKey::new(), &[&old]))
        .await
        .err();
    assert!(
        matches!(err, Some(VaultError::OtherKeyAdopted { .. })),
        "{err:?}"
    );
    // An interrupted run: only three rows.
    let report = vault
        .rotate_master(&access(), Some(3))
        .await
        .expect("partial rotation");
    assert_eq!((report.resealed, report.remaining), (3, 7));
    assert!(!report.complete());
    // Mid-rotation every value still opens (old rows with the previous key).
    for i in 0..10 {
        let (_, v) = reveal(&vault, &format!("R{i}"))
            .await
            .expect("reveal mid-rotation");
        assert_eq!(v.expose(), format!("value-{i}").as_bytes());
    }
    // New writes during the rotation use the new key.
    vault
        .create(&scope("global"), &name("NEW"), b"fresh", "", &access())
        .await
        .expect("create");
    let report = vault.rotate_master(&access(), None).await.expect("resume");
    assert_eq!((report.resealed, report.remaining), (7, 0));
    assert!(report.complete(), "{report:?}");
    let again = vault
        .rotate_master(&access(), None)
        .await
        .expect("idempotent");
    assert_eq!(again.resealed, 0);
    let new_id = vault.keyring().current_id().to_string();
    assert!(vault
        .list(None)
        .await
        .expect("list")
        .iter()
        .all(|m| m.key_id == new_id));
    vault.db().close().await;
    drop(vault);

    // The previous key is no longer needed...
    let vault = Vault::open(&db.config(&new, &[]))
        .await
        .expect("open with the new key alone");
    for i in 0..10 {
        let (_, v) = reveal(&vault, &format!("R{i}"))
            .await
            .expect("reveal after rotation");
        assert_eq!(v.expose(), format!("value-{i}").as_bytes());
    }
    // ...the access log survived the rotation...
    assert!(matches!(
        vault.verify_log().await.expect("verify"),
        keyward::audit::VerifyReport::Intact { .. }
    ));
    let reseals = vault
        .log_tail(1000)
        .await
        .expect("tail")
        .into_iter()
        .filter(|r| r.action == "reseal" && r.detail.contains(&old_id))
        .count();
    assert_eq!(reseals, 12, "10 secrets + canary + log secret");
    vault.db().close().await;
    drop(vault);
    // ...and the old key no longer opens the store.
    let err = Vault::open(&db.config(&old, &[]))
        .await
        .err()
        .expect("old key refused");
    assert!(matches!(err, VaultError::WrongKey { .. }));
}
