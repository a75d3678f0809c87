//! Secret versions on both backends: each write keeps the value it
//! replaces as a version sealed on its own; the oldest past the limit are
//! destroyed with a log row; a version reads back (logged) and rolls back
//! (a logged read and a logged write); a master-key rotation re-seals kept
//! versions; a version's ciphertext moved elsewhere does not open.

use keyward::store::versions::State;
use keyward::vault::{Vault, VaultError};

use crate::support::{TestDb, TestKey};
use crate::{access, name, reveal, scope};

crate::on_both_backends!(
    writes_keep_versions_and_the_oldest_past_the_limit_are_destroyed,
    a_rollback_is_a_new_version_logged_as_a_read_and_a_write,
    a_version_moved_to_another_version_or_secret_does_not_open,
    a_key_rotation_reseals_kept_versions,
);

async fn set(vault: &Vault, n: &str, value: &str) {
    vault
        .put(
            &scope("global"),
            &name(n),
            value.as_bytes(),
            None,
            &access(),
            keyward::vault::PutMode::Upsert,
        )
        .await
        .expect("put");
}

async fn writes_keep_versions_and_the_oldest_past_the_limit_are_destroyed(db: TestDb) {
    let vault = db.open(&TestKey::new()).await.with_max_versions(3);
    let (g, n) = (scope("global"), name("ROTATED"));
    for i in 1..=5 {
        set(&vault, "ROTATED", &format!("value-number-{i}")).await;
    }
    let all = vault.versions(&g, &n).await.expect("versions");
    let seen: Vec<(i64, State)> = all.iter().map(|v| (v.version, v.state)).collect();
    assert_eq!(
        seen,
        [
            (5, State::Current),
            (4, State::Kept),
            (3, State::Kept),
            (2, State::Destroyed),
            (1, State::Destroyed),
        ]
    );
    assert!(all.iter().all(|v| v.written_by == "test:suite"), "{all:?}");
    assert!(all[3].key_id.is_empty() && all[3].destroyed_at.is_some());
    // Kept versions read back; destroyed ones are gone, and so are their
    // bytes from the database files.
    let four = vault
        .reveal_version(&g, &n, 4, &access())
        .await
        .expect("kept");
    assert_eq!(four.expose(), b"value-number-4");
    for gone in [1, 2, 9, 0] {
        match vault.reveal_version(&g, &n, gone, &access()).await {
            Err(VaultError::VersionUnavailable { version, .. }) => assert_eq!(version, gone),
            other => panic!("version {gone}: {:?}", other.map(|_| "a value")),
        }
    }
    // Every destroy and every version read is in the log.
    let log = vault.log_tail(100).await.expect("tail");
    let destroyed: Vec<&str> = log
        .iter()
        .filter(|r| r.action == "destroy")
        .map(|r| r.detail.as_str())
        .collect();
    assert_eq!(
        destroyed,
        [
            "version 1 (beyond the 3 kept)",
            "version 2 (beyond the 3 kept)"
        ]
    );
    let reads: Vec<(&str, &str)> = log
        .iter()
        .filter(|r| r.action == "reveal")
        .map(|r| (r.outcome.as_str(), r.detail.as_str()))
        .collect();
    assert_eq!(reads[0], ("ok", "version 4"));
    assert_eq!(reads[1], ("missing", "version 1"));
    // Destroying the secret takes every version with it.
    vault.destroy(&g, &n, &access()).await.expect("destroy");
    set(&vault, "ROTATED", "a-new-secret").await;
    let fresh = vault.versions(&g, &n).await.expect("versions");
    assert_eq!(
        fresh.len(),
        1,
        "old versions outlived their secret: {fresh:?}"
    );
}

async fn a_rollback_is_a_new_version_logged_as_a_read_and_a_write(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let (g, n) = (scope("global"), name("DEPLOY_TOKEN"));
    set(&vault, "DEPLOY_TOKEN", "good-token").await;
    set(&vault, "DEPLOY_TOKEN", "bad-rotation").await;
    let who = keyward::audit::Access::new("operator:alice", "the rotation broke deploys")
        .expect("access");
    let version = vault.rollback(&g, &n, 1, &who).await.expect("rollback");
    assert_eq!(version, 3);
    let (_, value) = reveal(&vault, "DEPLOY_TOKEN").await.expect("reveal");
    assert_eq!(value.expose(), b"good-token");
    // Version 2 (the bad one) is kept, so the rollback itself can be undone.
    let kept = vault.versions(&g, &n).await.expect("versions");
    assert_eq!(
        kept.iter()
            .map(|v| (v.version, v.state))
            .collect::<Vec<_>>(),
        [(3, State::Current), (2, State::Kept), (1, State::Kept)]
    );
    assert_eq!(kept[0].written_by, "operator:alice");
    let log = vault.log_tail(100).await.expect("tail");
    let rollback: Vec<(&str, &str, &str, &str)> = log
        .iter()
        .filter(|r| r.accessor == "operator:alice")
        .map(|r| {
            (
                r.action.as_str(),
                r.outcome.as_str(),
                r.reason.as_str(),
                r.detail.as_str(),
            )
        })
        .collect();
    assert_eq!(
        rollback,
        [
            (
                "reveal",
                "ok",
                "the rotation broke deploys",
                "version 1, for a rollback"
            ),
            (
                "replace",
                "ok",
                "the rotation broke deploys",
                "version 3: rollback to version 1"
            ),
        ]
    );
    // Not to the current version, nor to one that is not there.
    for to in [3, 0, 7] {
        assert!(
            matches!(
                vault.rollback(&g, &n, to, &who).await,
                Err(VaultError::VersionUnavailable { .. })
            ),
            "rollback to {to}"
        );
    }
    assert_eq!(vault.meta(&g, &n).await.expect("meta").version, 3);
}

async fn a_version_moved_to_another_version_or_secret_does_not_open(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let g = scope("global");
    for value in ["a-one", "a-two", "a-three"] {
        set(&vault, "A", value).await;
    }
    set(&vault, "B", "b-one").await;
    set(&vault, "B", "b-two").await;
    // An attacker with the database copies version 1's ciphertext over
    // version 2 of A, and A's version 1 over B's version 1.
    db.exec(
        "UPDATE secret_version SET nonce = (SELECT nonce FROM secret_version v \
         WHERE v.secret_id = secret_version.secret_id AND v.version = 1), \
         ciphertext = (SELECT ciphertext FROM secret_version v \
         WHERE v.secret_id = secret_version.secret_id AND v.version = 1), \
         tag = (SELECT tag FROM secret_version v \
         WHERE v.secret_id = secret_version.secret_id AND v.version = 1) \
         WHERE version = 2 AND secret_id = (SELECT id FROM secret WHERE name = 'A')",
    )
    .await;
    db.exec(
        "UPDATE secret_version SET nonce = a.nonce, ciphertext = a.ciphertext, tag = a.tag \
         FROM (SELECT nonce, ciphertext, tag FROM secret_version \
         WHERE version = 1 AND secret_id = (SELECT id FROM secret WHERE name = 'A')) AS a \
         WHERE version = 1 AND secret_id = (SELECT id FROM secret WHERE name = 'B')",
    )
    .await;
    for (n, v) in [("A", 2), ("B", 1)] {
        match vault.reveal_version(&g, &name(n), v, &access()).await {
            Err(VaultError::Unreadable(_)) => {}
            other => panic!("{n} version {v}: {:?}", other.map(|_| "a value")),
        }
    }
    // The untouched version still opens; the failed reads are logged.
    let one = vault
        .reveal_version(&g, &name("A"), 1, &access())
        .await
        .expect("version 1");
    assert_eq!(one.expose(), b"a-one");
    let errors = vault
        .log_tail(100)
        .await
        .expect("tail")
        .iter()
        .filter(|r| r.action == "reveal" && r.outcome == "error")
        .count();
    assert_eq!(errors, 2);
}

async fn a_key_rotation_reseals_kept_versions(db: TestDb) {
    let old = TestKey::new();
    let vault = db.open(&old).await;
    set(&vault, "KEPT", "kept-one").await;
    set(&vault, "KEPT", "kept-two").await;
    vault.db().close().await;
    drop(vault);
    let new = TestKey::new();
    let vault = Vault::open_with(
        &db.config(&new, &[&old]),
        keyward::vault::NewKey::Adopt { replace: false },
    )
    .await
    .expect("open with the new key");
    let report = vault.rotate_master(&access(), None).await.expect("rotate");
    assert!(report.complete(), "{report:?}");
    assert_eq!(report.resealed, 2, "the current value and the kept version");
    let current = vault.keyring().current_id().to_string();
    let versions = vault
        .versions(&scope("global"), &name("KEPT"))
        .await
        .expect("versions");
    assert!(versions.iter().all(|v| v.key_id == current), "{versions:?}");
    vault.db().close().await;
    drop(vault);
    // The old key is no longer needed for any version.
    let vault = db.open(&new).await;
    let one = vault
        .reveal_version(&scope("global"), &name("KEPT"), 1, &access())
        .await
        .expect("version 1 under the new key");
    assert_eq!(one.expose(), b"kept-one");
}
