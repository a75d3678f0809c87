//! The access log: written before plaintext, append-only, hash-chained,
//! group-committed.

use std::sync::atomic::Ordering;

use keyward::audit::anchor::Anchor;
use keyward::audit::chain::{HistoryQuery, SCAN_BUDGET};
use keyward::audit::log_index;
use keyward::audit::{Access, Action, AuditError, VerifyReport};
use keyward::store::Backend;
use keyward::vault::{Vault, VaultError};

use crate::support::{TestDb, TestKey};
use crate::{access, log_summary, name, reference, reveal, scope};

crate::on_both_backends!(
    a_reveal_whose_log_write_fails_returns_no_plaintext,
    missing_and_denied_lookups_are_logged,
    the_log_is_append_only,
    verify_detects_an_edited_row,
    verify_detects_a_deleted_row,
    verify_detects_reordered_rows,
    verify_detects_an_inserted_row,
    verify_detects_a_truncated_tail,
    concurrent_reveals_share_group_commits,
    two_hosts_on_one_database_keep_one_chain,
    a_writer_never_chains_after_a_head_another_host_moved,
    history_is_an_index_lookup_and_every_read_is_bounded,
    history_and_search_end_at_the_archive_mark,
    history_requests_share_one_read_of_the_rows_after_the_index_mark,
    history_after_a_restore_shows_only_what_the_database_holds,
    a_change_by_another_host_or_by_hand_is_seen_at_once,
    commits_wait_for_durable_storage,
    a_checkpoint_anchors_the_end_of_the_log,
    verify_can_start_from_a_checkpoint,
    checkpoints_outlive_a_master_key_rotation,
);

async fn seeded(db: &TestDb, key: &TestKey, reveals: usize) -> Vault {
    let vault = db.open(key).await;
    vault
        .create(&scope("global"), &name("S"), b"s3cr3t-value", "", &access())
        .await
        .expect("create");
    for i in 0..reveals {
        let who = Access::new(format!("test:{i}"), "seed").expect("access");
        vault
            .reveal(&reference("S"), &Default::default(), &who, Action::Reveal)
            .await
            .expect("reveal");
    }
    vault
}

async fn assert_broken_at(vault: &Vault, expected_seq: i64) -> String {
    match vault.verify_log().await.expect("verify runs") {
        VerifyReport::Broken { seq, problem } => {
            assert_eq!(seq, expected_seq, "{problem}");
            problem
        }
        VerifyReport::Intact { rows } => panic!("tampering not detected ({rows} rows)"),
    }
}

async fn a_reveal_whose_log_write_fails_returns_no_plaintext(db: TestDb) {
    let key = TestKey::new();
    let vault = seeded(&db, &key, 0).await;
    // Make every access-log insert fail, as a full disk or a broken replica would.
    let sabotage = match db.backend {
        Backend::Sqlite => {
            "CREATE TRIGGER sabotage BEFORE INSERT ON secret_access_log \
             BEGIN SELECT RAISE(ABORT, 'disk full (simulated)'); END"
        }
        Backend::Postgres => {
            "CREATE FUNCTION sabotage() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'disk full (simulated)'; END; $$; \
             CREATE TRIGGER sabotage BEFORE INSERT ON secret_access_log \
             FOR EACH ROW EXECUTE FUNCTION sabotage()"
        }
    };
    db.exec(sabotage).await;
    let err = reveal(&vault, "S")
        .await
        .err()
        .expect("no log row, no plaintext");
    assert!(
        matches!(err, VaultError::Audit(AuditError::Write(_))),
        "{err}"
    );
    assert_eq!(err.http_status(), 503);
    assert!(!err.to_string().contains("s3cr3t-value"));
    let err = keyward::template::render(&vault, "x=${SECRET:S}", &Default::default(), &access())
        .await
        .expect_err("a render is a reveal too");
    assert!(
        err.to_string().contains("access log could not be written"),
        "{err}"
    );

    match db.backend {
        Backend::Sqlite => db.exec("DROP TRIGGER sabotage").await,
        Backend::Postgres => db.exec("DROP TRIGGER sabotage ON secret_access_log").await,
    }
    let (_, value) = reveal(&vault, "S")
        .await
        .expect("works again once the log can be written");
    assert_eq!(value.expose(), b"s3cr3t-value");
    assert!(matches!(
        vault.verify_log().await.expect("verify"),
        VerifyReport::Intact { rows: 2 }
    ));
}

async fn missing_and_denied_lookups_are_logged(db: TestDb) {
    let key = TestKey::new();
    let vault = seeded(&db, &key, 0).await;
    let err = reveal(&vault, "agent_type:x/GONE")
        .await
        .err()
        .expect("missing");
    assert!(
        matches!(&err, VaultError::Missing(m) if m.missing == ["agent_type:x/GONE"]),
        "{err}"
    );
    vault
        .record_denied(
            &access(),
            Action::Reveal,
            "global",
            "S",
            "not granted to plugin:x",
        )
        .await
        .expect("record");
    let log = log_summary(&vault).await;
    assert_eq!(
        log[1],
        (
            "reveal".into(),
            "missing".into(),
            "agent_type:x".into(),
            "GONE".into()
        )
    );
    assert_eq!(
        log[2],
        (
            "reveal".into(),
            "denied".into(),
            "global".into(),
            "S".into()
        )
    );
    let rows = vault.log_tail(1).await.expect("tail");
    assert_eq!(rows[0].detail, "not granted to plugin:x");
    assert_eq!(
        (rows[0].accessor.as_str(), rows[0].reason.as_str()),
        ("test:suite", "integration test")
    );
}

async fn the_log_is_append_only(db: TestDb) {
    let key = TestKey::new();
    let _vault = seeded(&db, &key, 2).await;
    for sql in [
        "UPDATE secret_access_log SET reason = 'nothing to see' WHERE seq = 2",
        "DELETE FROM secret_access_log WHERE seq = 2",
    ] {
        let err = db.try_exec(sql).await.expect_err("refused by the database");
        assert!(err.to_string().contains("append-only"), "{err}");
    }
}

async fn verify_detects_an_edited_row(db: TestDb) {
    let key = TestKey::new();
    let vault = seeded(&db, &key, 5).await;
    assert!(matches!(
        vault.verify_log().await.expect("verify"),
        VerifyReport::Intact { rows: 6 }
    ));
    db.drop_append_only_guard().await;
    db.exec("UPDATE secret_access_log SET accessor = 'test:someone-else' WHERE seq = 4")
        .await;
    let problem = assert_broken_at(&vault, 4).await;
    assert!(problem.contains("MAC mismatch"), "{problem}");
}

async fn verify_detects_a_deleted_row(db: TestDb) {
    let key = TestKey::new();
    let vault = seeded(&db, &key, 5).await;
    db.drop_append_only_guard().await;
    db.exec("DELETE FROM secret_access_log WHERE seq = 3").await;
    let problem = assert_broken_at(&vault, 3).await;
    assert!(problem.contains("missing"), "{problem}");
}

async fn verify_detects_reordered_rows(db: TestDb) {
    let key = TestKey::new();
    let vault = seeded(&db, &key, 5).await;
    db.drop_append_only_guard().await;
    // Swap rows 2 and 5 (their seq numbers), keeping the numbering contiguous.
    db.exec("UPDATE secret_access_log SET seq = -2 WHERE seq = 2")
        .await;
    db.exec("UPDATE secret_access_log SET seq = 2 WHERE seq = 5")
        .await;
    db.exec("UPDATE secret_access_log SET seq = 5 WHERE seq = -2")
        .await;
    assert_broken_at(&vault, 2).await;
}

async fn verify_detects_an_inserted_row(db: TestDb) {
    let key = TestKey::new();
    let vault = seeded(&db, &key, 5).await;
    db.drop_append_only_guard().await;
    // Make room after row 3 and insert a plausible copy of row 3 there.
    db.exec("UPDATE secret_access_log SET seq = seq + 1000 WHERE seq > 3")
        .await;
    db.exec("UPDATE secret_access_log SET seq = seq - 999 WHERE seq > 1000")
        .await;
    db.exec(
        "INSERT INTO secret_access_log (seq, at, accessor, reason, action, outcome, scope, name, detail, mac) \
         SELECT 4, at, 'test:intruder', reason, action, outcome, scope, name, detail, mac \
         FROM secret_access_log WHERE seq = 3",
    )
    .await;
    db.exec("UPDATE audit_head SET seq = seq + 1").await;
    assert_broken_at(&vault, 4).await;
}

async fn verify_detects_a_truncated_tail(db: TestDb) {
    let key = TestKey::new();
    let vault = seeded(&db, &key, 5).await;
    db.drop_append_only_guard().await;
    db.exec("DELETE FROM secret_access_log WHERE seq >= 5")
        .await;
    let problem = assert_broken_at(&vault, 5).await;
    assert!(problem.contains("head"), "{problem}");
}

async fn concurrent_reveals_share_group_commits(db: TestDb) {
    let key = TestKey::new();
    let vault = seeded(&db, &key, 0).await;
    let groups_before = vault.log_stats().groups.load(Ordering::Relaxed);
    let callers = 64;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..callers {
        let vault = vault.clone();
        tasks.spawn(async move {
            let who = Access::new(format!("test:{i}"), "load").expect("access");
            for _ in 0..5 {
                let (_, v) = vault
                    .reveal(&reference("S"), &Default::default(), &who, Action::Reveal)
                    .await
                    .expect("reveal");
                assert_eq!(v.expose(), b"s3cr3t-value");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("task");
    }
    let reveals = callers * 5;
    let groups = vault.log_stats().groups.load(Ordering::Relaxed) - groups_before;
    assert!(
        groups < reveals as u64 / 2,
        "{reveals} concurrent reveals took {groups} transactions: they should share commits"
    );
    let rows = vault.log_tail(10_000).await.expect("tail");
    assert_eq!(rows.len(), reveals + 1, "one row per reveal, none lost");
    assert!(matches!(
        vault.verify_log().await.expect("verify"),
        VerifyReport::Intact { .. }
    ));
}

async fn two_hosts_on_one_database_keep_one_chain(db: TestDb) {
    let key = TestKey::new();
    let a = seeded(&db, &key, 0).await;
    let b = db.open(&key).await;
    let mut tasks = tokio::task::JoinSet::new();
    for (host, vault) in [("a", a.clone()), ("b", b.clone())] {
        for i in 0..8 {
            let vault = vault.clone();
            tasks.spawn(async move {
                let who = Access::new(format!("host-{host}:{i}"), "two hosts").expect("access");
                for j in 0..10 {
                    if j % 5 == 4 {
                        let n = name(&format!("W{host}{i}{j}"));
                        vault
                            .create(&scope("global"), &n, b"w", "", &who)
                            .await
                            .expect("create");
                    } else {
                        vault
                            .reveal(&reference("S"), &Default::default(), &who, Action::Reveal)
                            .await
                            .expect("reveal");
                    }
                }
            });
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("task");
    }
    assert!(matches!(
        a.verify_log().await.expect("verify"),
        VerifyReport::Intact { rows: 161 }
    ));
    assert!(matches!(
        b.verify_log().await.expect("verify"),
        VerifyReport::Intact { rows: 161 }
    ));
}

/// Host A's writer remembers the head it wrote; host B appends after it.
/// A's next group must see that its head is stale and chain after B's row,
/// not write a second row with B's seq or fork the chain.
async fn a_writer_never_chains_after_a_head_another_host_moved(db: TestDb) {
    let key = TestKey::new();
    let a = seeded(&db, &key, 1).await;
    let b = db.open(&key).await;
    let conflicts = || a.log_stats().head_conflicts.load(Ordering::Relaxed);
    let before = conflicts();
    for (vault, reveals) in [(&b, 2), (&a, 1), (&b, 1), (&a, 2)] {
        for _ in 0..reveals {
            let (_, value) = reveal(vault, "S").await.expect("reveal");
            assert_eq!(value.expose(), b"s3cr3t-value");
        }
    }
    assert!(matches!(
        a.verify_log().await.expect("verify"),
        VerifyReport::Intact { rows: 8 }
    ));
    if db.backend == Backend::Postgres {
        // A's remembered head was stale after B's first two reveals; that
        // conflict sent A's next group to the head's lock (which is where
        // it met B's third), and its last group appended conditionally again.
        assert_eq!(conflicts() - before, 1, "A's stale head was noticed");
    }
}

/// Appends rows `first..=last` about `global/NOISE` by `bulk` straight into
/// the log and moves the head past them: a long log in a second. Their MACs
/// are zeros (nothing here verifies the chain).
async fn bulk_rows(db: &TestDb, first: i64, last: i64) {
    let insert = match db.backend {
        Backend::Sqlite => format!(
            "WITH RECURSIVE n(i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM n WHERE i < {last}) \
             INSERT INTO secret_access_log (seq, at, accessor, reason, action, outcome, scope, name, detail, mac) \
             SELECT i, 0, 'bulk', 'bulk', 'render', 'ok', 'global', 'NOISE', '', zeroblob(32) FROM n"
        ),
        Backend::Postgres => format!(
            "INSERT INTO secret_access_log (seq, at, accessor, reason, action, outcome, scope, name, detail, mac) \
             SELECT i, 0, 'bulk', 'bulk', 'render', 'ok', 'global', 'NOISE', '', decode(repeat('00', 32), 'hex') \
             FROM generate_series({first}, {last}) AS i"
        ),
    };
    db.exec(&insert).await;
    db.exec(&format!("UPDATE audit_head SET seq = {last} WHERE id = 1"))
        .await;
}

/// S's history (first page) and the log rows reading it took.
async fn history_of_s(vault: &Vault) -> (keyward::audit::chain::LogPage, u64) {
    history_of(vault, "S").await
}

/// A global secret's history (50 rows at most), and the log rows it read.
async fn history_of(vault: &Vault, secret: &str) -> (keyward::audit::chain::LogPage, u64) {
    let start = vault.history_rows_read();
    let page = vault
        .history(
            &scope("global"),
            &name(secret),
            &HistoryQuery::default(),
            50,
        )
        .await
        .expect("history");
    (page, vault.history_rows_read() - start)
}

/// Deletes the log's rows after `keep` and points the head at row `keep`,
/// as a restore from an older copy (or someone with write access) does.
async fn cut_back(db: &TestDb, keep: i64) {
    db.drop_append_only_guard().await;
    db.exec(&format!("DELETE FROM secret_access_log WHERE seq > {keep}"))
        .await;
    db.exec(&format!(
        "UPDATE audit_head SET seq = {keep}, \
         mac = (SELECT mac FROM secret_access_log WHERE seq = {keep}) WHERE id = 1"
    ))
    .await;
}

/// Runs the history index's batches until it has caught up with the log.
async fn index_all(vault: &Vault) {
    while log_index::index_batch(vault.db())
        .await
        .expect("index")
        .rows
        > 0
    {}
}

/// A quiet secret's history behind 30,000 rows of another one: before the
/// index has caught up a request reads at most `SCAN_BUDGET` rows and says
/// where to go on; after, it is an index lookup that finds everything at
/// once. A filter the index does not hold is bounded the same way.
async fn history_is_an_index_lookup_and_every_read_is_bounded(db: TestDb) {
    let key = TestKey::new();
    let vault = seeded(&db, &key, 0).await; // row 1: S created
    bulk_rows(&db, 2, 30_001).await;
    for _ in 0..3 {
        reveal(&vault, "S").await.expect("reveal"); // rows 30,002–30,004
    }
    let history = |query: HistoryQuery, limit: i64| {
        let vault = vault.clone();
        async move {
            vault
                .history(&scope("global"), &name("S"), &query, limit)
                .await
                .expect("history")
        }
    };
    let seqs =
        |rows: &[keyward::audit::chain::LogRow]| rows.iter().map(|r| r.seq).collect::<Vec<_>>();

    // Nothing indexed yet: the newest SCAN_BUDGET rows are read, no more.
    let page = history(HistoryQuery::default(), 50).await;
    assert_eq!(seqs(&page.rows), [30_004, 30_003, 30_002]);
    assert_eq!(page.next_before, Some(30_005 - SCAN_BUDGET));

    index_all(&vault).await;
    assert_eq!(
        log_index::indexed_seq(vault.db().reader(), db.backend)
            .await
            .expect("mark"),
        30_004
    );
    // One more row after the mark: read from the log, the rest from the index.
    reveal(&vault, "S").await.expect("reveal"); // row 30,005
    let page = history(HistoryQuery::default(), 50).await;
    assert_eq!(seqs(&page.rows), [30_005, 30_004, 30_003, 30_002, 1]);
    assert_eq!(
        page.next_before, None,
        "the whole history, nothing to go on to"
    );
    // Pages: a full page says where the next starts.
    let page = history(HistoryQuery::default(), 2).await;
    assert_eq!(seqs(&page.rows), [30_005, 30_004]);
    let page = history(
        HistoryQuery {
            before: page.next_before,
            ..HistoryQuery::default()
        },
        2,
    )
    .await;
    assert_eq!(seqs(&page.rows), [30_003, 30_002]);
    // By accessor within the secret (an index range too).
    let page = history(
        HistoryQuery {
            accessor: Some("test:suite".into()),
            ..HistoryQuery::default()
        },
        50,
    )
    .await;
    assert_eq!(page.next_before, None);
    assert_eq!(seqs(&page.rows), [30_005, 30_004, 30_003, 30_002, 1]);
    // A secret nobody asked for: nothing, at once.
    let (page, _) = history_of(&vault, "NEVER").await;
    assert!(page.rows.is_empty());
    assert_eq!(page.next_before, None);

    // An action no NOISE row has: the index gives NOISE's keys, and the
    // filter on them stops after SCAN_BUDGET keys, saying where to go on.
    let mut before = None;
    let mut pages = 0;
    loop {
        let page = vault
            .history(
                &scope("global"),
                &name("NOISE"),
                &HistoryQuery {
                    action: Some("reveal".into()),
                    before,
                    ..HistoryQuery::default()
                },
                50,
            )
            .await
            .expect("history");
        assert!(page.rows.is_empty());
        pages += 1;
        match page.next_before {
            Some(next) => {
                assert!(before.is_none_or(|b| next < b), "the cursor goes back");
                before = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(pages, 4, "30,000 keys in pages of at most {SCAN_BUDGET}");
    // The whole log by accessor: the accessor index.
    let page = vault
        .search_log(
            &HistoryQuery {
                accessor: Some("bulk".into()),
                ..HistoryQuery::default()
            },
            50,
        )
        .await
        .expect("search");
    assert_eq!(page.rows.len(), 50);
    assert_eq!(page.rows[0].seq, 30_001);
    assert_eq!(page.next_before, Some(29_952));
}

/// Eight clients asking at once, again and again, for the history of
/// secrets that do not exist — names of their choice — while 5,000 rows
/// wait for the index: the rows after the mark are read from the database
/// once, not once per request (each request walked them all before: 24 ×
/// 5,000). Rows another host appends are in the answers too.
async fn history_requests_share_one_read_of_the_rows_after_the_index_mark(db: TestDb) {
    let key = TestKey::new();
    let vault = seeded(&db, &key, 0).await; // row 1: S created
    bulk_rows(&db, 2, 5_001).await;
    let start = vault.history_rows_read();
    for round in 0..3 {
        let mut asks = tokio::task::JoinSet::new();
        for i in 0..8 {
            let vault = vault.clone();
            asks.spawn(async move {
                vault
                    .history(
                        &scope("global"),
                        &name(&format!("MISSING_{round}_{i}")),
                        &HistoryQuery::default(),
                        50,
                    )
                    .await
                    .expect("history")
            });
        }
        for page in asks.join_all().await {
            assert!(page.rows.is_empty());
            assert_eq!(page.next_before, None, "the whole log was looked at");
        }
    }
    let read = vault.history_rows_read() - start;
    assert!(
        read <= 5_001,
        "24 requests read {read} log rows; the 5,001 after the mark once is enough"
    );

    // Another host's rows, and this one's, are in the next answers; only
    // the other host's is read from the database (this host's comes from
    // its own writer).
    let other = db.open(&key).await;
    reveal(&other, "S").await.expect("reveal on host B"); // row 5,002
    reveal(&vault, "S").await.expect("reveal"); // row 5,003
    let (page, read) = history_of_s(&vault).await;
    let seqs: Vec<i64> = page.rows.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [5_003, 5_002, 1]);
    assert_eq!(page.next_before, None);
    assert_eq!(
        read,
        1 + 3,
        "the other host's new row, then the three returned"
    );
    // Filters the index does not hold are checked in memory the same way
    // SQL checks them.
    let only = |query: HistoryQuery| {
        let vault = vault.clone();
        async move {
            vault
                .search_log(&query, 50)
                .await
                .expect("search")
                .rows
                .iter()
                .map(|r| r.seq)
                .collect::<Vec<_>>()
        }
    };
    let at = page.rows[0].at;
    assert_eq!(
        only(HistoryQuery {
            action: Some("reveal".into()),
            ..HistoryQuery::default()
        })
        .await,
        [5_003, 5_002]
    );
    assert_eq!(
        only(HistoryQuery {
            name: Some("S".into()),
            until: Some(at.min(page.rows[1].at)),
            ..HistoryQuery::default()
        })
        .await,
        [1]
    );
    assert_eq!(
        only(HistoryQuery {
            accessor: Some("bulk".into()),
            since: Some(0),
            until: Some(1),
            before: Some(10),
            ..HistoryQuery::default()
        })
        .await,
        (2..10).rev().collect::<Vec<i64>>()
    );

    // The index catches up: the tail drops what it now covers, and a
    // history is the index below the mark and the tail above it, each row
    // once.
    index_all(&vault).await;
    reveal(&vault, "S").await.expect("reveal"); // row 5,004
    let (page, read) = history_of_s(&vault).await;
    let seqs: Vec<i64> = page.rows.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [5_004, 5_003, 5_002, 1]);
    assert_eq!(page.next_before, None);
    assert_eq!(
        read,
        1 + 3,
        "the one from the tail (this host's new row, from its writer) and the three from the index"
    );

    // Renders on this host while clients poll: not one of their rows is
    // read back from the database.
    for _ in 0..300 {
        reveal(&vault, "S").await.expect("reveal");
    }
    let (page, read) = history_of(&vault, "NEVER").await;
    assert!(page.rows.is_empty());
    assert_eq!(
        read, 0,
        "this host's own 300 new rows were read back from the database"
    );
}

async fn history_after_a_restore_shows_only_what_the_database_holds(db: TestDb) {
    let key = TestKey::new();
    let vault = seeded(&db, &key, 2).await; // rows 1–3 about S
    let (page, _) = history_of_s(&vault).await; // the tail is at the head
    assert_eq!(page.rows.len(), 3);
    for _ in 0..3 {
        reveal(&vault, "S").await.expect("reveal"); // rows 4–6, handed to the tail
    }
    // The database goes back to row 3 (restored from a copy), and the
    // host writes on: row 4 is now about T.
    cut_back(&db, 3).await;
    vault
        .create(&scope("global"), &name("T"), b"t", "", &access())
        .await
        .expect("create T");
    for _ in 0..2 {
        let (page, _) = history_of_s(&vault).await;
        let seqs: Vec<i64> = page.rows.iter().map(|r| r.seq).collect();
        assert!(
            page.rows.iter().all(|r| r.name == "S"),
            "a row about another secret in S's history: {seqs:?}"
        );
        assert_eq!(seqs, [3, 2, 1], "S's rows are the database's");
    }
}

async fn a_change_by_another_host_or_by_hand_is_seen_at_once(db: TestDb) {
    let key = TestKey::new();
    let a = seeded(&db, &key, 3).await; // host A has read S, so its writer caches the row
    let b = db.open(&key).await;
    let read =
        |vault: Vault| async move { reveal(&vault, "S").await.map(|(_, v)| v.expose().to_vec()) };
    assert_eq!(read(a.clone()).await.expect("reveal"), b"s3cr3t-value");
    b.replace(&scope("global"), &name("S"), b"changed-by-b", &access())
        .await
        .expect("replace on host B");
    assert_eq!(read(a.clone()).await.expect("reveal"), b"changed-by-b");
    b.create(&scope("global"), &name("T"), b"t", "", &access())
        .await
        .expect("create");
    // A manual edit (no Keyward involved) is seen too: the triggers bump the generation.
    db.exec(
        "UPDATE secret SET nonce = (SELECT nonce FROM secret WHERE name = 'T') WHERE name = 'S'",
    )
    .await;
    assert!(matches!(
        read(a.clone()).await,
        Err(VaultError::Unreadable(_))
    ));
    b.delete(&scope("global"), &name("S"), &access())
        .await
        .expect("delete on host B");
    assert!(matches!(read(a.clone()).await, Err(VaultError::Missing(_))));
}

async fn commits_wait_for_durable_storage(db: TestDb) {
    let key = TestKey::new();
    let vault = db.open(&key).await;
    let (query, expected) = match db.backend {
        // 2 = FULL: the WAL is fsync'd at every commit.
        Backend::Sqlite => ("PRAGMA synchronous", "2"),
        Backend::Postgres => ("SHOW synchronous_commit", "on"),
    };
    // Every pooled connection, even if the server default says otherwise.
    if db.backend == Backend::Postgres {
        let name = db.pg_name.clone().expect("database name");
        db.exec(&format!(
            "ALTER DATABASE {name} SET synchronous_commit = off"
        ))
        .await;
    }
    let vault = if db.backend == Backend::Postgres {
        vault.db().close().await;
        db.open(&key).await
    } else {
        vault
    };
    for _ in 0..3 {
        use sqlx::Row;
        let row = sqlx::query(query)
            .fetch_one(vault.db().reader())
            .await
            .expect("query");
        let value: String = row
            .try_get::<String, _>(0)
            .or_else(|_| row.try_get::<i64, _>(0).map(|v| v.to_string()))
            .expect("setting");
        assert_eq!(value, expected);
    }
}

async fn a_checkpoint_anchors_the_end_of_the_log(db: TestDb) {
    let key = TestKey::new();
    let vault = seeded(&db, &key, 5).await;
    let signed = vault.checkpoint().await.expect("checkpoint");
    assert_eq!(signed.seq(), 6);
    let checkpoint = vault.check_checkpoint(&signed).expect("genuine");
    assert_eq!(
        vault.anchor(6, &checkpoint).await.expect("anchor"),
        Anchor::Reached
    );
    // Another host of the same store checks it too (same log secret).
    let other_host = db.open(&key).await;
    assert!(other_host.check_checkpoint(&signed).is_ok());

    cut_back(&db, 4).await;
    let rows = match vault.verify_log().await.expect("verify") {
        VerifyReport::Intact { rows } => rows,
        broken => panic!("the chain alone still verifies: {broken:?}"),
    };
    assert_eq!(rows, 4);
    assert_eq!(
        vault.anchor(rows, &checkpoint).await.expect("anchor"),
        Anchor::CutOff { log_ends: 4 }
    );
    // Written again up to and past the checkpoint's row: another history.
    for _ in 0..3 {
        reveal(&vault, "S").await.expect("reveal");
    }
    assert_eq!(
        vault.anchor(7, &checkpoint).await.expect("anchor"),
        Anchor::Diverged
    );
}

async fn verify_can_start_from_a_checkpoint(db: TestDb) {
    let key = TestKey::new();
    let vault = seeded(&db, &key, 3).await;
    let signed = vault.checkpoint().await.expect("checkpoint");
    let checkpoint = vault.check_checkpoint(&signed).expect("genuine");
    for _ in 0..3 {
        reveal(&vault, "S").await.expect("reveal");
    }
    assert_eq!(
        vault.verify_log_since(&checkpoint).await.expect("verify"),
        VerifyReport::Intact { rows: 7 }
    );
    db.drop_append_only_guard().await;
    // Before the checkpoint: not read again (the checkpoint vouches for it).
    db.exec("UPDATE secret_access_log SET reason = 'edited' WHERE seq = 2")
        .await;
    assert_eq!(
        vault.verify_log_since(&checkpoint).await.expect("verify"),
        VerifyReport::Intact { rows: 7 }
    );
    // After it: found.
    db.exec("UPDATE secret_access_log SET reason = 'edited' WHERE seq = 6")
        .await;
    assert!(matches!(
        vault.verify_log_since(&checkpoint).await.expect("verify"),
        VerifyReport::Broken { seq: 6, .. }
    ));
    // A log cut back before the checkpoint's row.
    db.exec("DELETE FROM secret_access_log WHERE seq > 2").await;
    db.exec("UPDATE audit_head SET seq = 2 WHERE id = 1").await;
    assert!(matches!(
        vault.verify_log_since(&checkpoint).await.expect("verify"),
        VerifyReport::Broken { seq: 3, .. }
    ));
}

/// The checkpoint key comes from the log secret, which a master-key
/// rotation re-seals without changing: checkpoints shipped before a
/// rotation still verify after it.
async fn checkpoints_outlive_a_master_key_rotation(db: TestDb) {
    let old = TestKey::new();
    let vault = seeded(&db, &old, 2).await;
    let signed = vault.checkpoint().await.expect("checkpoint");
    vault.db().close().await;
    drop(vault);
    let new = TestKey::new();
    let vault = keyward::vault::Vault::open_with(
        &db.config(&new, &[&old]),
        keyward::vault::NewKey::Adopt { replace: false },
    )
    .await
    .expect("open mid-rotation, adopting the new key");
    let report = vault.rotate_master(&access(), None).await.expect("rotate");
    assert!(report.complete(), "{report:?}");
    vault.db().close().await;
    drop(vault);
    let vault = db.open(&new).await;
    let checkpoint = vault.check_checkpoint(&signed).expect("still genuine");
    assert_eq!(
        vault
            .anchor(checkpoint.seq(), &checkpoint)
            .await
            .expect("anchor"),
        Anchor::Reached
    );
}

/// After `audit archive`, a secret's history and an unindexed search end
/// at the archive mark (no cursor paging down through seqs that are gone),
/// and the index holds no key of an archived row.
async fn history_and_search_end_at_the_archive_mark(db: TestDb) {
    let key = TestKey::new();
    let vault = seeded(&db, &key, 0).await; // row 1: S created
    let noise: Vec<keyward::names::SecretRef> = (0..500).map(|_| reference("NOISE")).collect();
    for _ in 0..40 {
        vault
            .record_used(&access(), Action::Render, &noise)
            .await
            .expect("record"); // rows 2–20,001
    }
    reveal(&vault, "S").await.expect("reveal"); // row 20,002
    index_all(&vault).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    reveal(&vault, "S").await.expect("reveal"); // row 20,003
    let cut = vault.log_tail(1).await.expect("tail")[0].at;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("a.jsonl.gz");
    let done = vault
        .archive_before(cut, &|_, _| file.clone(), &access())
        .await
        .expect("archive")
        .expect("rows archived");
    assert_eq!((done.first, done.last), (1, 20_002)); // row 20,004: the run
    let seqs =
        |rows: &[keyward::audit::chain::LogRow]| rows.iter().map(|r| r.seq).collect::<Vec<_>>();
    let page = vault
        .history(&scope("global"), &name("S"), &HistoryQuery::default(), 50)
        .await
        .expect("history");
    assert_eq!(seqs(&page.rows), [20_003]);
    assert_eq!(page.next_before, None);
    // A filter the index does not hold: one page, and it says the log ends.
    let page = vault
        .search_log(
            &HistoryQuery {
                action: Some("reveal".into()),
                ..HistoryQuery::default()
            },
            50,
        )
        .await
        .expect("search");
    assert_eq!(seqs(&page.rows), [20_003]);
    assert_eq!(page.next_before, None, "no cursor into archived rows");
    let page = vault
        .search_log(
            &HistoryQuery {
                action: Some("reveal".into()),
                before: Some(15_000),
                ..HistoryQuery::default()
            },
            50,
        )
        .await
        .expect("search");
    assert!(page.rows.is_empty());
    assert_eq!(page.next_before, None);
    let by_secret = match db.backend {
        Backend::Sqlite => "log_index.access_log_by_secret",
        Backend::Postgres => "access_log_by_secret",
    };
    let left: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM {by_secret} WHERE seq <= 20002"
    ))
    .fetch_one(vault.db().reader())
    .await
    .expect("count");
    assert_eq!(left, 0, "index keys of archived rows are deleted");
    assert!(matches!(
        vault.verify_log().await.expect("verify"),
        VerifyReport::Intact { rows: 20_004 }
    ));
}
