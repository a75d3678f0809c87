//! Check-and-set on a secret's version, on both backends: of writers that
//! read the same version — on two hosts sharing the database — exactly one
//! writes; the others are told the version they lost to and change nothing.

use keyward::vault::{Put, PutMode, VaultError};

use crate::support::{TestDb, TestKey};
use crate::{access, name, reveal, scope};

crate::on_both_backends!(
    concurrent_writers_of_one_version_one_wins,
    cas_zero_means_absent_and_a_mismatch_changes_nothing,
);

async fn concurrent_writers_of_one_version_one_wins(db: TestDb) {
    let key = TestKey::new();
    // Two handles with their own pools stand for two hosts.
    let (a, b) = (db.open(&key).await, db.open(&key).await);
    let (g, n) = (scope("global"), name("SHARED"));
    a.create(&g, &n, b"v1", "", &access())
        .await
        .expect("create");
    let mut writers = Vec::new();
    for i in 0..8 {
        let vault = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (g, n) = (g.clone(), n.clone());
        writers.push(tokio::spawn(async move {
            let value = format!("from-writer-{i}");
            vault
                .put_expecting(
                    &g,
                    &n,
                    value.as_bytes(),
                    None,
                    &access(),
                    PutMode::Replace,
                    Some(1),
                )
                .await
                .map(|put| (put, value))
        }));
    }
    let (mut won, mut lost) = (Vec::new(), 0);
    for w in writers {
        match w.await.expect("join") {
            Ok((put, value)) => won.push((put, value)),
            Err(VaultError::VersionMismatch {
                expected, current, ..
            }) => {
                assert_eq!((expected, current), (1, 2));
                lost += 1;
            }
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!(won.len(), 1, "{} writers of version 1 won", won.len());
    assert_eq!(lost, 7);
    let (put, value) = won.pop().expect("one");
    assert_eq!(put, Put::Replaced(2));
    assert_eq!(
        reveal(&b, "SHARED").await.expect("reveal").1.expose(),
        value.as_bytes()
    );
    assert_eq!(b.meta(&g, &n).await.expect("meta").version, 2);
}

async fn cas_zero_means_absent_and_a_mismatch_changes_nothing(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let (g, n) = (scope("global"), name("FRESH"));
    let put = vault
        .put_expecting(
            &g,
            &n,
            b"first",
            Some("d1"),
            &access(),
            PutMode::Upsert,
            Some(0),
        )
        .await
        .expect("absent, so 0 matches");
    assert_eq!(put, Put::Created(1));
    match vault
        .put_expecting(&g, &n, b"again", None, &access(), PutMode::Upsert, Some(0))
        .await
    {
        Err(VaultError::VersionMismatch {
            expected: 0,
            current: 1,
            ..
        }) => {}
        other => panic!("expected a mismatch, got {other:?}"),
    }
    // A stale value-and-description change writes neither.
    let stale = vault
        .put_expecting(
            &g,
            &n,
            b"stale",
            Some("d2"),
            &access(),
            PutMode::Replace,
            Some(7),
        )
        .await;
    assert!(
        matches!(stale, Err(VaultError::VersionMismatch { current: 1, .. })),
        "{stale:?}"
    );
    let stale = vault
        .describe_expecting(&g, &n, "d3", &access(), Some(2))
        .await;
    assert!(
        matches!(stale, Err(VaultError::VersionMismatch { current: 1, .. })),
        "{stale:?}"
    );
    let meta = vault.meta(&g, &n).await.expect("meta");
    assert_eq!((meta.version, meta.description.as_str()), (1, "d1"));
    assert_eq!(
        reveal(&vault, "FRESH").await.expect("reveal").1.expose(),
        b"first"
    );
    // The matching version writes both at once.
    vault
        .put_expecting(
            &g,
            &n,
            b"second",
            Some("d4"),
            &access(),
            PutMode::Replace,
            Some(1),
        )
        .await
        .expect("matches");
    let meta = vault.meta(&g, &n).await.expect("meta");
    assert_eq!((meta.version, meta.description.as_str()), (2, "d4"));
}
