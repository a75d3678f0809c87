//! The migration tables on both backends: ledger rows per plugin and
//! source, one owner per target, unit marks, finished runs, and the lease
//! that lets one host at a time run a plugin's migration.

use keyward::store::migrate::{self as ledger, LedgerRow, RunRow, State};

use crate::support::{TestDb, TestKey};

crate::on_both_backends!(
    ledger_rows_are_per_source_and_a_target_has_one_owner,
    finished_runs_are_found_by_plugin_build_and_options,
    one_host_at_a_time_holds_the_lease,
    batch_statements_agree_with_the_single_ones,
);

fn row(source: &str, id: &str, unit: &str, target: &str) -> LedgerRow {
    LedgerRow {
        plugin: "token-dir".into(),
        source: source.into(),
        item_id: id.into(),
        unit: unit.into(),
        target: target.into(),
        state: State::Written,
        secret_id: None,
        version: None,
        written_at: 10,
        retired_at: None,
    }
}

async fn ledger_rows_are_per_source_and_a_target_has_one_owner(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let kdb = vault.db().clone();
    let mut conn = kdb.writer().await.expect("conn");
    let c = &mut *conn;
    ledger::written(
        c,
        &row("/a", "tokens/x", "tokens/x", "agent_type:x/FORGE_TOKEN"),
    )
    .await
    .expect("write");
    // The same id in another source is another item.
    ledger::written(
        c,
        &row("/b", "tokens/x", "tokens/x", "agent_type:y/FORGE_TOKEN"),
    )
    .await
    .expect("write");
    // Writing it again (a re-run) updates the row; it does not add one.
    ledger::written(
        c,
        &row("/a", "tokens/x", "tokens/x", "agent_type:x/FORGE_TOKEN"),
    )
    .await
    .expect("write again");
    assert_eq!(
        ledger::ledger(kdb.reader(), "token-dir", "/a")
            .await
            .expect("read")
            .len(),
        1
    );
    assert_eq!(
        ledger::ledger(kdb.reader(), "token-dir", "/b")
            .await
            .expect("read")
            .len(),
        1
    );
    assert!(ledger::ledger(kdb.reader(), "agents-json", "/a")
        .await
        .expect("read")
        .is_empty());
    // A second item claiming a target is refused by the store itself.
    let clash = ledger::written(
        c,
        &row("/a", "tokens/z", "tokens/z", "agent_type:x/FORGE_TOKEN"),
    )
    .await;
    assert!(clash.is_err(), "two items with one target");
    let owner = ledger::by_target(c, "agent_type:x/FORGE_TOKEN")
        .await
        .expect("read")
        .expect("owned");
    assert_eq!(
        (owner.source.as_str(), owner.item_id.as_str()),
        ("/a", "tokens/x")
    );

    // Marking a unit retired touches that source's unit only, once.
    assert_eq!(
        ledger::retired(c, "token-dir", "/a", "tokens/x", 20)
            .await
            .expect("mark"),
        1
    );
    assert_eq!(
        ledger::retired(c, "token-dir", "/a", "tokens/x", 30)
            .await
            .expect("mark"),
        0
    );
    let a = ledger::ledger(kdb.reader(), "token-dir", "/a")
        .await
        .expect("read");
    assert_eq!((a[0].state, a[0].retired_at), (State::Retired, Some(20)));
    let b = ledger::ledger(kdb.reader(), "token-dir", "/b")
        .await
        .expect("read");
    assert_eq!(b[0].state, State::Written);
    // Hostile text is stored and read back as text (the driver refuses
    // control characters before they get here: PostgreSQL cannot store NUL).
    let odd = "tokens/'; DROP TABLE secret; --\u{202e}";
    ledger::written(c, &row("/a", odd, odd, "global/ODD"))
        .await
        .expect("write");
    assert!(ledger::ledger(kdb.reader(), "token-dir", "/a")
        .await
        .expect("read")
        .iter()
        .any(|r| r.item_id == odd));
}

async fn finished_runs_are_found_by_plugin_build_and_options(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let kdb = vault.db().clone();
    let run = |finished_at, digest: &str| RunRow {
        plugin: "token-dir".into(),
        sha256: "aa".into(),
        options_digest: digest.into(),
        started_at: 1,
        finished_at,
        migrated: 3,
        skipped: 0,
        host: "h:1".into(),
    };
    assert!(ledger::finished(kdb.reader(), "token-dir", "aa", "d1")
        .await
        .expect("read")
        .is_none());
    ledger::record_run(&mut kdb.writer().await.expect("writer"), &run(5, "d1"))
        .await
        .expect("record");
    ledger::record_run(&mut kdb.writer().await.expect("writer"), &run(9, "d1"))
        .await
        .expect("record");
    let found = ledger::finished(kdb.reader(), "token-dir", "aa", "d1")
        .await
        .expect("read")
        .expect("found");
    assert_eq!(found.finished_at, 9, "the newest");
    for (sha, digest) in [("bb", "d1"), ("aa", "d2")] {
        assert!(ledger::finished(kdb.reader(), "token-dir", sha, digest)
            .await
            .expect("read")
            .is_none());
    }
    let last = ledger::last_runs(kdb.reader()).await.expect("read");
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].finished_at, 9);
}

async fn one_host_at_a_time_holds_the_lease(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let kdb = vault.db().clone();
    assert!(ledger::take_lock(
        &mut kdb.writer().await.expect("writer"),
        "token-dir",
        "a",
        100,
        0
    )
    .await
    .expect("take"));
    assert!(
        !ledger::take_lock(
            &mut kdb.writer().await.expect("writer"),
            "token-dir",
            "b",
            150,
            50
        )
        .await
        .expect("take"),
        "held"
    );
    assert!(
        ledger::take_lock(
            &mut kdb.writer().await.expect("writer"),
            "token-dir",
            "a",
            200,
            60
        )
        .await
        .expect("renew"),
        "own renewal"
    );
    assert!(
        ledger::take_lock(
            &mut kdb.writer().await.expect("writer"),
            "agents-json",
            "b",
            150,
            50
        )
        .await
        .expect("take"),
        "per plugin"
    );
    // Expired: another host takes it over, and the first cannot renew.
    assert!(ledger::take_lock(
        &mut kdb.writer().await.expect("writer"),
        "token-dir",
        "b",
        400,
        201
    )
    .await
    .expect("take over"));
    assert!(!ledger::take_lock(
        &mut kdb.writer().await.expect("writer"),
        "token-dir",
        "a",
        500,
        210
    )
    .await
    .expect("renew"));
    // Releasing someone else's lease does nothing; one's own frees it.
    ledger::release_lock(&mut kdb.writer().await.expect("writer"), "token-dir", "a")
        .await
        .expect("release");
    assert!(!ledger::take_lock(
        &mut kdb.writer().await.expect("writer"),
        "token-dir",
        "c",
        500,
        300
    )
    .await
    .expect("take"));
    ledger::release_lock(&mut kdb.writer().await.expect("writer"), "token-dir", "b")
        .await
        .expect("release");
    assert!(ledger::take_lock(
        &mut kdb.writer().await.expect("writer"),
        "token-dir",
        "c",
        500,
        300
    )
    .await
    .expect("take"));

    // Many hosts at once: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let kdb = kdb.clone();
        tasks.push(tokio::spawn(async move {
            ledger::take_lock(
                &mut kdb.writer().await.expect("writer"),
                "race",
                &format!("host-{i}"),
                1_000,
                0,
            )
            .await
            .expect("take")
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.expect("task"));
    }
    assert_eq!(winners, 1);
}

async fn batch_statements_agree_with_the_single_ones(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let (kdb, backend) = (vault.db().clone(), vault.db().backend);
    let mut conn = kdb.writer().await.expect("conn");
    let c = &mut *conn;
    // secret_id stays NULL: it references secret(id).
    let rows: Vec<LedgerRow> = (0..300)
        .map(|i| {
            row(
                "/src",
                &format!("tokens/a-{i}"),
                &format!("u-{}", i / 2),
                &format!("agent_type:a-{i}/FORGE_TOKEN"),
            )
        })
        .collect();
    ledger::written_many(c, backend, &rows)
        .await
        .expect("write many");
    ledger::written_many(c, backend, &rows[..10])
        .await
        .expect("again: upsert");
    ledger::written_many(c, backend, &[])
        .await
        .expect("nothing");
    let stored = ledger::ledger(kdb.reader(), "token-dir", "/src")
        .await
        .expect("read");
    assert_eq!(stored.len(), 300);
    let targets = [
        "agent_type:a-7/FORGE_TOKEN",
        "agent_type:a-299/FORGE_TOKEN",
        "global/NOPE",
        "it's \"quoted\"",
    ];
    let owners = ledger::by_targets(c, backend, &targets)
        .await
        .expect("owners");
    let mut found: Vec<&str> = owners.iter().map(|r| r.item_id.as_str()).collect();
    found.sort_unstable();
    assert_eq!(found, ["tokens/a-299", "tokens/a-7"]);
    let marked = ledger::retired_many(
        c,
        backend,
        "token-dir",
        "/src",
        &["u-0", "u-1", "u-none"],
        50,
    )
    .await
    .expect("mark");
    assert_eq!(marked, 4, "two units of two items each");
    assert_eq!(
        ledger::retired_many(c, backend, "token-dir", "/other", &["u-2"], 50)
            .await
            .expect("mark"),
        0
    );
    let retired = ledger::ledger(kdb.reader(), "token-dir", "/src")
        .await
        .expect("read")
        .into_iter()
        .filter(|r| r.state == State::Retired)
        .count();
    assert_eq!(retired, 4);
    let agent = keyward::store::agents::AgentType {
        name: "coder".into(),
        forge: "forgejo".into(),
        base_url: "https://codeberg.org".into(),
        token_secret_id: None,
        description: String::new(),
        created_at: 1,
        updated_at: 1,
    };
    drop(conn);
    assert!(
        keyward::store::agents::create(&mut kdb.writer().await.expect("writer"), &agent)
            .await
            .expect("type")
    );
    keyward::store::agents::create_instance(
        &mut kdb.writer().await.expect("writer"),
        "i-1",
        "coder",
        None,
        1,
    )
    .await
    .expect("instance");
    let mut conn = kdb.writer().await.expect("conn");
    let c = &mut *conn;
    let types = ledger::agent_types_among(c, backend, &["coder", "i-1", "nobody"])
        .await
        .expect("types");
    assert_eq!(types.into_iter().collect::<Vec<_>>(), ["coder"]);
    let instances = ledger::instances_among(c, backend, &["coder", "i-1"])
        .await
        .expect("instances");
    assert_eq!(instances.get("i-1").map(String::as_str), Some("coder"));
    assert_eq!(instances.len(), 1);
}
