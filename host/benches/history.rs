//! The access log at size (issue #24): a log of `HISTORY_ROWS` rows written
//! through the real group-commit writer (so the chain is valid), then
//!
//! - how fast the history index catches up with it (rows/s),
//! - history latency, p50 and p99 over 200 requests each, for a busy
//!   secret, a quiet one (a row every 100,000), a missing one, a filter the
//!   index does not hold, and an accessor,
//! - logged reveals/s (`HISTORY_ROUNDS` 5-second rounds, taken in turn,
//!   each after the index caught up and a checkpoint; the median, the
//!   best, and the median of each round against its empty-log window) on
//!   an empty log (a second store), on the full log (the index follower
//!   running; how far it lags), and on the full log with 8 tasks each
//!   asking for a missing secret's history ten times a second (and, to
//!   calibrate, for the chain head: the cheapest read),
//! - a full `audit verify` (rows/s), an incremental one of the newest
//!   million rows (seconds),
//! - `audit archive` of the older half (rows/s, bytes a row in the file),
//!   and `audit verify --archive` over the archive and the live log.
//!
//! Run: `cargo bench -p keyward --bench history`. Settings (environment):
//! `HISTORY_ROWS` (2,000,000), `HISTORY_ROUNDS` (5: rounds of renders on
//! each log, taken in turn), `KEYWARD_BENCH_DIR` (where
//! the SQLite file goes; default the temp dir), `KEYWARD_BENCH_DATABASE_URL`
//! (a PostgreSQL database to use instead: it must be empty). See docs/benchmarks.md.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use keyward::audit::chain::{Head, HistoryQuery};
use keyward::audit::{log_index, Access, Action, VerifyReport};
use keyward::config::Config;
use keyward::crypto::MasterKey;
use keyward::names::{Scope, SecretName, SecretRef};
use keyward::resolve::Context;
use keyward::vault::Vault;

/// Log rows per `record_used` call (one writer job).
const ROWS_PER_JOB: usize = 500;
/// Concurrent fillers.
const FILLERS: usize = 4;
/// Distinct other secrets the filler's rows are about.
const OTHERS: usize = 10_000;

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is ignored.
    let rows: u64 = std::env::var("HISTORY_ROWS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(2_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let rounds: u32 = std::env::var("HISTORY_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    rt.block_on(run(rows, rounds));
}

/// A store at `database_url` under a fresh key, with the defaults.
fn config(database_url: &str) -> Config {
    Config {
        database_url: database_url.to_owned(),
        master_key: MasterKey::generate(),
        previous_keys: vec![],
        dev_key_file: None,
        max_versions: keyward::vault::DEFAULT_MAX_VERSIONS as u32,
        delete_retention: keyward::vault::DEFAULT_RETENTION,
    }
}

fn name(text: &str) -> SecretName {
    SecretName::parse(text).expect("valid name")
}

async fn run(rows: u64, rounds: u32) {
    let dir = match std::env::var_os("KEYWARD_BENCH_DIR") {
        Some(base) => tempfile::TempDir::new_in(base),
        None => tempfile::TempDir::new(),
    }
    .expect("temp dir");
    let database_url = std::env::var("KEYWARD_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/k.db", dir.path().display()));
    let vault = Vault::open(&config(&database_url))
        .await
        .expect("open vault");
    let store = if database_url.starts_with("sqlite") {
        "SQLite"
    } else {
        "PostgreSQL"
    };
    let access = Access::new("bench", "history bench").expect("valid access");
    for secret in ["BUSY", "QUIET"] {
        vault
            .create(&Scope::global(), &name(secret), b"value", "bench", &access)
            .await
            .expect("create");
    }
    println!("store: {store}; log rows to write: {rows}");
    // A second store that stays (nearly) empty, for renders on an empty log
    // measured in turn with those on the full one: on a shared 2-core VM
    // the machine's speed drifts over a long run (measured: the same code
    // ±10 % between rounds), so "before" and "after" minutes apart would
    // compare the drift as much as the log.
    let empty_url = match database_url.strip_prefix("sqlite") {
        Some(_) => format!("sqlite://{}/empty.db", dir.path().display()),
        None => {
            use sqlx::Connection;
            let mut admin = sqlx::PgConnection::connect(&database_url)
                .await
                .expect("connect");
            let (base, db_name) = database_url.rsplit_once('/').expect("a database name");
            let empty_name = format!("{db_name}_empty");
            sqlx::query(&format!("DROP DATABASE IF EXISTS {empty_name}"))
                .execute(&mut admin)
                .await
                .expect("drop");
            sqlx::query(&format!("CREATE DATABASE {empty_name}"))
                .execute(&mut admin)
                .await
                .expect("create the empty database");
            format!("{base}/{empty_name}")
        }
    };
    let empty_vault = Vault::open(&config(&empty_url))
        .await
        .expect("open the empty vault");
    empty_vault
        .create(&Scope::global(), &name("BUSY"), b"value", "bench", &access)
        .await
        .expect("create");

    // The log, through the real writer.
    let started = Instant::now();
    let written = Arc::new(AtomicU64::new(0));
    let mut fillers = Vec::new();
    for f in 0..FILLERS {
        let (vault, written) = (vault.clone(), written.clone());
        let accessor = Access::new(format!("filler-{f}"), "history bench").expect("access");
        fillers.push(tokio::spawn(async move {
            let mut job = 0u64;
            loop {
                let first = written.fetch_add(ROWS_PER_JOB as u64, Ordering::Relaxed);
                if first >= rows {
                    break;
                }
                let refs: Vec<SecretRef> = (0..ROWS_PER_JOB as u64)
                    .map(|i| {
                        let n = first + i;
                        let text = if n.is_multiple_of(100_000) {
                            "QUIET".to_owned()
                        } else if n.is_multiple_of(3) {
                            "BUSY".to_owned()
                        } else {
                            format!("OTHER_{}", (n as usize * 7919) % OTHERS)
                        };
                        SecretRef::parse(&text).expect("ref")
                    })
                    .collect();
                vault
                    .record_used(&accessor, Action::Render, &refs)
                    .await
                    .expect("record");
                job += 1;
                if f == 0 && job.is_multiple_of(400) {
                    let done = written.load(Ordering::Relaxed).min(rows);
                    eprintln!(
                        "  {done} rows, {:.0} rows/s",
                        done as f64 / started.elapsed().as_secs_f64()
                    );
                }
            }
        }));
    }
    for filler in fillers {
        filler.await.expect("filler");
    }
    let took = started.elapsed();
    let head = vault.log_tail(1).await.expect("tail")[0].seq;
    println!(
        "wrote {head} rows through the writer in {:.1} s ({:.0} rows/s)",
        took.as_secs_f64(),
        head as f64 / took.as_secs_f64()
    );

    // The index catches up.
    let started = Instant::now();
    let mut indexed = 0;
    loop {
        let done = log_index::index_batch(vault.db()).await.expect("index");
        indexed += done.rows;
        if done.rows == 0 {
            break;
        }
    }
    let took = started.elapsed();
    println!(
        "indexed {indexed} rows in {:.1} s ({:.0} rows/s)",
        took.as_secs_f64(),
        indexed as f64 / took.as_secs_f64()
    );

    // The bulk load's aftermath settled before anything is timed, as in a
    // database that grew over weeks (PostgreSQL: autovacuum would otherwise work on
    // the new tables during the rounds, and the checkpoint flush them).
    if store == "PostgreSQL" {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&database_url)
            .await
            .expect("connect");
        for sql in ["VACUUM ANALYZE", "CHECKPOINT"] {
            sqlx::query(sql).execute(&mut admin).await.expect("settle");
        }
    }
    // Disk per row: the log (table and its primary key) and the index.
    let (log_bytes, index_bytes) = if store == "SQLite" {
        let size = |suffix: &str| {
            std::fs::metadata(dir.path().join(format!("k.db{suffix}"))).map_or(0, |m| m.len())
        };
        (
            size("") + size("-wal"),
            size("-log-index") + size("-log-index-wal"),
        )
    } else {
        use sqlx::Row;
        let row = sqlx::query(
            "SELECT pg_total_relation_size('secret_access_log') AS log, \
             pg_total_relation_size('access_log_by_secret') \
             + pg_total_relation_size('access_log_by_secret_accessor') \
             + pg_total_relation_size('access_log_by_accessor') AS idx",
        )
        .fetch_one(vault.db().reader())
        .await
        .expect("sizes");
        (
            row.try_get::<i64, _>("log").expect("log") as u64,
            row.try_get::<i64, _>("idx").expect("idx") as u64,
        )
    };
    println!(
        "disk: log {:.1} MB ({:.0} bytes/row), history index {:.1} MB ({:.0} bytes/row)",
        log_bytes as f64 / 1e6,
        log_bytes as f64 / head as f64,
        index_bytes as f64 / 1e6,
        index_bytes as f64 / head as f64
    );

    // History latency.
    let denied = HistoryQuery {
        outcome: Some("denied".into()),
        ..HistoryQuery::default()
    };
    let cases: [(&str, &str, HistoryQuery); 4] = [
        ("busy secret", "BUSY", HistoryQuery::default()),
        ("quiet secret", "QUIET", HistoryQuery::default()),
        ("missing secret", "NEVER", HistoryQuery::default()),
        ("busy secret, outcome=denied (not indexed)", "BUSY", denied),
    ];
    println!("| history request | rows | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|");
    for (label, secret, query) in cases {
        let mut times = Vec::with_capacity(200);
        let mut found = 0;
        for _ in 0..200 {
            let t = Instant::now();
            let page = vault
                .history(&Scope::global(), &name(secret), &query, 50)
                .await
                .expect("history");
            times.push(t.elapsed());
            found = page.rows.len();
        }
        times.sort();
        println!(
            "| {label} | {found} | {:.2} | {:.2} |",
            ms(times[100]),
            ms(times[197])
        );
    }
    let mut times = Vec::with_capacity(200);
    for _ in 0..200 {
        let t = Instant::now();
        let page = vault
            .search_log(
                &HistoryQuery {
                    accessor: Some("filler-2".into()),
                    ..HistoryQuery::default()
                },
                50,
            )
            .await
            .expect("search");
        times.push(t.elapsed());
        assert_eq!(page.rows.len(), 50);
    }
    times.sort();
    println!(
        "| one accessor, whole log | 50 | {:.2} | {:.2} |",
        ms(times[100]),
        ms(times[197])
    );

    // Renders on the full log, the follower running as under `serve`.
    let follower = log_index::spawn_follower(vault.clone());
    let empty_follower = log_index::spawn_follower(empty_vault.clone());
    // How far the index lags while renders go on.
    let stop_lag = Arc::new(AtomicBool::new(false));
    let max_lag = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (vault, stop, max) = (vault.clone(), stop_lag.clone(), max_lag.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let head = vault.log_head().await.expect("head").seq;
                let mark = log_index::indexed_seq(vault.db().reader(), vault.db().backend)
                    .await
                    .expect("mark");
                max.fetch_max((head - mark).max(0) as u64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    // Rounds of each, in turn; the best of each.
    // Rounds of the four, in turn, each round starting one further on (so
    // no condition always comes first after the previous round's last).
    const CONDITIONS: [&str; 4] = [
        "empty log",
        "full log",
        "full log + 8 missing-secret history loops",
        "full log + 8 chain-head loops (the cheapest read, to calibrate)",
    ];
    let mut taken: [Vec<f64>; 4] = Default::default();
    for round in 0..rounds as usize {
        let mut this = [0.0f64; 4];
        for k in 0..4 {
            let which = (round + k) % 4;
            let (v, url) = match which {
                0 => (&empty_vault, &empty_url),
                _ => (&vault, &database_url),
            };
            settle(v, url).await;
            this[which] = match which {
                0 | 1 => reveals_while(v, &access, 0, Poll::History).await,
                2 => reveals_while(v, &access, 8, Poll::History).await,
                _ => reveals_while(v, &access, 8, Poll::Head).await,
            };
        }
        eprintln!(
            "  round {}: empty {:.0}, full {:.0}, full + history loops {:.0}, full + head loops {:.0}",
            round + 1,
            this[0],
            this[1],
            this[2],
            this[3]
        );
        for (all, one) in taken.iter_mut().zip(this) {
            all.push(one);
        }
    }
    stop_lag.store(true, Ordering::Relaxed);
    sampler.await.expect("lag sampler");
    println!(
        "history index lag while rendering: at most {} rows behind the head",
        max_lag.load(Ordering::Relaxed)
    );
    follower.abort();
    empty_follower.abort();
    // Each round's figure against the same round's empty log (the rounds
    // are minutes apart, the machine's speed drifts), the median of those:
    // one lucky or unlucky window moves a best-of, not a median.
    println!("reveals/s over {rounds} rounds taken in turn:");
    println!("| log | median | best | vs empty, median of the rounds |");
    println!("|---|---:|---:|---:|");
    for (i, condition) in CONDITIONS.iter().enumerate() {
        let ratios: Vec<f64> = taken[i]
            .iter()
            .zip(&taken[0])
            .map(|(x, e)| 100.0 * (x / e - 1.0))
            .collect();
        println!(
            "| {condition} | {:.0} | {:.0} | {:+.1} % |",
            median(&taken[i]),
            taken[i].iter().cloned().fold(0.0, f64::max),
            median(&ratios)
        );
    }
    println!(
        "history rows read from the database: {}",
        vault.history_rows_read()
    );

    let started = Instant::now();
    let report = vault.verify_log().await.expect("verify");
    let took = started.elapsed();
    match report {
        VerifyReport::Intact { rows } => println!(
            "audit verify: {rows} rows intact in {:.1} s ({:.0} rows/s)",
            took.as_secs_f64(),
            rows as f64 / took.as_secs_f64()
        ),
        VerifyReport::Broken { seq, problem } => panic!("the chain broke at {seq}: {problem}"),
    }

    // Incremental verify of the newest million rows (what `audit verify
    // --since-checkpoint` and `serve`'s background verify do): trusted up
    // to the row before them.
    let head = vault.log_head().await.expect("head");
    let newest = 1_000_000.min(head.seq - 1);
    let from = vault
        .log_after(head.seq - newest - 1, 1)
        .await
        .expect("row")
        .remove(0);
    let started = Instant::now();
    let (report, _) = vault
        .verify_walk(&Head {
            seq: from.seq,
            mac: from.mac,
        })
        .await
        .expect("incremental verify");
    let took = started.elapsed();
    assert!(matches!(report, VerifyReport::Intact { .. }), "{report:?}");
    println!(
        "incremental verify of the newest {newest} rows: {:.2} s ({:.0} rows/s)",
        took.as_secs_f64(),
        newest as f64 / took.as_secs_f64()
    );

    // Archive the older half, then verify archive + live log as one chain.
    let middle = vault
        .log_after(head.seq / 2, 1)
        .await
        .expect("row")
        .remove(0);
    let file = dir.path().join("archive.jsonl.gz");
    let started = Instant::now();
    let done = vault
        .archive_before(middle.at, &|_, _| file.clone(), &access)
        .await
        .expect("archive")
        .expect("rows to archive");
    let took = started.elapsed();
    let archived = done.last - done.first + 1;
    let bytes = std::fs::metadata(&file).expect("archive file").len();
    println!(
        "audit archive: {archived} rows in {:.1} s ({:.0} rows/s, written and deleted), {:.1} bytes a row gzipped",
        took.as_secs_f64(),
        archived as f64 / took.as_secs_f64(),
        bytes as f64 / archived as f64
    );
    let started = Instant::now();
    let verdict = vault
        .verify_with_archives(std::slice::from_ref(&file), &[], &mut |_| {})
        .await
        .expect("verify --archive");
    let took = started.elapsed();
    assert!(verdict.intact, "{verdict:?}");
    let rows = verdict.rows.expect("rows");
    println!(
        "audit verify --archive: {rows} rows (archive + live) in {:.1} s ({:.0} rows/s)",
        took.as_secs_f64(),
        rows as f64 / took.as_secs_f64()
    );
}

/// Before each timed window: the index follower caught up with the head
/// and, on PostgreSQL, a checkpoint taken. Otherwise a window inherits the
/// previous one's index backlog, and a checkpoint (every ~30 s of renders,
/// set off by WAL volume) lands in some windows and not others, each page's
/// first change after it writing the whole page to the WAL.
async fn settle(vault: &Vault, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let head = vault.log_head().await.expect("head").seq;
        let mark = log_index::indexed_seq(vault.db().reader(), vault.db().backend)
            .await
            .expect("mark");
        if mark >= head || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !url.starts_with("sqlite") {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(url).await.expect("connect");
        sqlx::query("CHECKPOINT")
            .execute(&mut admin)
            .await
            .expect("checkpoint");
    }
}

/// The median (the mean of the middle two of an even count).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n == 0 {
        return 0.0;
    }
    (sorted[(n - 1) / 2] + sorted[n / 2]) / 2.0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// What the polling clients ask for.
#[derive(Clone, Copy)]
enum Poll {
    /// A missing secret's history.
    History,
    /// The chain head: the cheapest read there is, to tell what any 80
    /// requests a second cost renders on this machine from what history
    /// costs beyond that.
    Head,
}

/// Logged reveals of `BUSY` per second over 5 s from 16 tasks, while
/// `pollers` tasks each ask for `poll` ten times a second.
async fn reveals_while(vault: &Vault, access: &Access, pollers: usize, poll: Poll) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..pollers {
        let (vault, stop) = (vault.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match poll {
                    Poll::History => {
                        let page = vault
                            .history(
                                &Scope::global(),
                                &name("NEVER"),
                                &HistoryQuery::default(),
                                50,
                            )
                            .await
                            .expect("history");
                        std::hint::black_box(page);
                    }
                    Poll::Head => {
                        std::hint::black_box(vault.log_head().await.expect("head"));
                    }
                }
                // Ten requests a second each: eight busy clients, not a
                // flood (a closed loop of any request takes the CPU).
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }
    let started = Instant::now();
    for _ in 0..16 {
        let (vault, stop, count, access) =
            (vault.clone(), stop.clone(), count.clone(), access.clone());
        tasks.push(tokio::spawn(async move {
            let ctx = Context::default();
            let busy = SecretRef::parse("BUSY").expect("ref");
            while !stop.load(Ordering::Relaxed) {
                let (_, value) = vault
                    .reveal(&busy, &ctx, &access, Action::Reveal)
                    .await
                    .expect("reveal");
                std::hint::black_box(value);
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    let took = started.elapsed();
    for task in tasks {
        task.await.expect("task");
    }
    count.load(Ordering::Relaxed) as f64 / took.as_secs_f64()
}
