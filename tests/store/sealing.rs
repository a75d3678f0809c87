//! Values are sealed at rest and bound to their rows.

use keyward::vault::VaultError;

use crate::support::{contains, TestDb, TestKey};
use crate::{access, log_summary, name, reveal, scope};

crate::on_both_backends!(
    no_plaintext_at_rest,
    swapped_ciphertexts_fail_to_open,
    flipped_tag_byte_fails_to_open,
);

async fn no_plaintext_at_rest(db: TestDb) {
    let key = TestKey::new();
    let vault = db.open(&key).await;
    let markers: Vec<String> = (0..20)
        .map(|i| format!("PLAINTEXT-MARKER-{i:02}-zq8x"))
        .collect();
    for (i, marker) in markers.iter().enumerate() {
        vault
            .create(
                &scope("global"),
                &name(&format!("S{i}")),
                marker.as_bytes(),
                "d",
                &access(),
            )
            .await
            .expect("create");
    }
    for i in 0..20 {
        reveal(&vault, &format!("S{i}")).await.expect("reveal");
    }
    // Replace some so old versions' pages are also on disk.
    vault
        .replace(
            &scope("global"),
            &name("S0"),
            b"PLAINTEXT-MARKER-NEW-zq8x",
            &access(),
        )
        .await
        .expect("replace");
    let raw = db.raw_bytes();
    assert!(
        contains(&raw, b"S19"),
        "the dump/file does hold the rows (names are metadata)"
    );
    for marker in markers
        .iter()
        .map(String::as_str)
        .chain(["PLAINTEXT-MARKER-NEW-zq8x"])
    {
        assert!(
            !contains(&raw, marker.as_bytes()),
            "{marker} found in plaintext at rest"
        );
    }
    assert!(!contains(&raw, b"PLAINTEXT-MARKER"));
    assert!(
        !contains(&raw, key.base64().as_bytes()),
        "the master key is never stored"
    );
}

async fn swapped_ciphertexts_fail_to_open(db: TestDb) {
    let key = TestKey::new();
    let vault = db.open(&key).await;
    for (n, v) in [("A", "value-a"), ("B", "value-b")] {
        vault
            .create(&scope("global"), &name(n), v.as_bytes(), "", &access())
            .await
            .expect("create");
    }
    // An attacker with write access to the database swaps the sealed parts.
    // (Through a copy: SQLite's UPDATE would see its own earlier writes.)
    db.exec(
        "CREATE TABLE swap AS SELECT name, nonce, ciphertext, tag FROM secret; \
         UPDATE secret SET nonce = (SELECT s.nonce FROM swap s WHERE s.name <> secret.name), \
         ciphertext = (SELECT s.ciphertext FROM swap s WHERE s.name <> secret.name), \
         tag = (SELECT s.tag FROM swap s WHERE s.name <> secret.name); \
         DROP TABLE swap",
    )
    .await;
    for n in ["A", "B"] {
        let err = reveal(&vault, n)
            .await
            .err()
            .expect("a moved ciphertext must not open");
        assert!(
            matches!(&err, VaultError::Unreadable(which) if which == &format!("global/{n}")),
            "{err}"
        );
        let message = err.to_string();
        assert!(!message.contains("value-"), "{message}");
    }
    let outcomes: Vec<String> = log_summary(&vault)
        .await
        .into_iter()
        .skip(2)
        .map(|r| r.1)
        .collect();
    assert_eq!(outcomes, ["error", "error"], "failed opens are logged");
}

async fn flipped_tag_byte_fails_to_open(db: TestDb) {
    let key = TestKey::new();
    let vault = db.open(&key).await;
    vault
        .create(&scope("global"), &name("T"), b"tagged", "", &access())
        .await
        .expect("create");
    vault
        .create(&scope("global"), &name("U"), b"untouched", "", &access())
        .await
        .expect("create");
    // Flip one bit of the tag's first byte, in SQL both backends understand.
    let flip = match db.backend {
        keyward::store::Backend::Sqlite => {
            "UPDATE secret SET tag = CAST((CASE WHEN substr(tag, 1, 1) = x'00' THEN x'01' ELSE x'00' END) \
             || substr(tag, 2) AS BLOB) WHERE name = 'T'"
        }
        keyward::store::Backend::Postgres => {
            "UPDATE secret SET tag = set_byte(tag, 0, get_byte(tag, 0) # 1) WHERE name = 'T'"
        }
    };
    db.exec(flip).await;
    let err = reveal(&vault, "T")
        .await
        .err()
        .expect("a tampered tag must not open");
    assert!(matches!(err, VaultError::Unreadable(_)), "{err}");
    // A column of the wrong type (a careless manual edit) is unreadable too,
    // and does not break reads of other rows.
    if db.backend == keyward::store::Backend::Sqlite {
        db.exec("UPDATE secret SET tag = 'text, not a blob: \u{e9}' WHERE name = 'T'")
            .await;
        let err = reveal(&vault, "T")
            .await
            .err()
            .expect("a mistyped tag must not open");
        assert!(matches!(err, VaultError::Unreadable(_)), "{err}");
    }
    let (_, ok) = reveal(&vault, "U").await.expect("other rows still open");
    assert_eq!(ok.expose(), b"untouched");
}
