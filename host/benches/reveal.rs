//! Logged reveals per second on SQLite, with 1, 16 and 64 concurrent callers.
//!
//! Every `Vault::reveal` goes through the group-commit task: the caller only
//! gets the value after its access-log row is committed (WAL,
//! `synchronous=FULL`, so one fsync per group). That commit is the real cost
//! measured here; concurrent callers share it by landing in the same group.
//!
//! One criterion iteration = `REVEALS_PER_ITER` reveals spread evenly over the
//! callers. Callers run continuously across all iterations of a sample (no
//! barrier per iteration), so batching behaves as under steady load.
//!
//! Run: `cargo bench -p keyward --bench reveal` (set `KEYWARD_BENCH_DIR` to
//! put the database on another file system than the system temp dir).
//! Besides criterion's throughput line, each caller count prints the average
//! group-commit size (access-log rows per transaction) seen while it ran.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use keyward::audit::{Access, Action};
use keyward::config::Config;
use keyward::crypto::MasterKey;
use keyward::names::{Scope, SecretName, SecretRef};
use keyward::resolve::Context;
use keyward::vault::Vault;

/// Secrets seeded into the store.
const SECRETS: usize = 64;
/// Reveals per criterion iteration (divisible by every caller count).
const REVEALS_PER_ITER: u64 = 64;
/// Concurrent callers to measure.
const CALLERS: [u64; 3] = [1, 16, 64];

struct Fixture {
    vault: Vault,
    refs: Arc<Vec<SecretRef>>,
    access: Access,
    // Dropped last: removes the database file.
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    // KEYWARD_BENCH_DIR picks the file system (default: the system temp dir),
    // e.g. a tmpfs to see the cost without a real fsync.
    let dir = match std::env::var_os("KEYWARD_BENCH_DIR") {
        Some(base) => tempfile::TempDir::new_in(base),
        None => tempfile::TempDir::new(),
    }
    .expect("temp dir");
    let config = Config {
        database_url: format!("sqlite://{}/k.db", dir.path().display()),
        master_key: MasterKey::generate(),
        previous_keys: vec![],
        dev_key_file: None,
        max_versions: keyward::vault::DEFAULT_MAX_VERSIONS as u32,
        delete_retention: keyward::vault::DEFAULT_RETENTION,
    };
    let vault = Vault::open(&config).await.expect("open vault");
    let access = Access::new("bench", "bench").expect("valid access");
    let mut refs = Vec::with_capacity(SECRETS);
    for i in 0..SECRETS {
        let name = SecretName::parse(&format!("BENCH_SECRET_{i}")).expect("valid name");
        let value = format!("value-{i}-{}", "x".repeat(32));
        vault
            .create(&Scope::global(), &name, value.as_bytes(), "bench", &access)
            .await
            .expect("create secret");
        refs.push(SecretRef::parse(name.as_str()).expect("valid ref"));
    }
    Fixture {
        vault,
        refs: Arc::new(refs),
        access,
        _dir: dir,
    }
}

/// Runs `total` reveals over `callers` tasks and returns the wall time.
async fn run(fx: &Fixture, callers: u64, total: u64) -> Duration {
    let per_caller = total / callers;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(callers as usize);
    for caller in 0..callers {
        let vault = fx.vault.clone();
        let refs = fx.refs.clone();
        let access = fx.access.clone();
        tasks.push(tokio::spawn(async move {
            let ctx = Context::default();
            for i in 0..per_caller {
                let r = &refs[((caller + i) as usize) % refs.len()];
                let (_, value) = vault
                    .reveal(r, &ctx, &access, Action::Reveal)
                    .await
                    .expect("reveal");
                std::hint::black_box(value);
            }
        }));
    }
    for task in tasks {
        task.await.expect("caller task");
    }
    start.elapsed()
}

fn reveal(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut group = c.benchmark_group("sqlite_logged_reveal");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(6))
        .throughput(Throughput::Elements(REVEALS_PER_ITER));

    let mut summary = Vec::new();
    for callers in CALLERS {
        // A fresh store per caller count, so log size does not carry over.
        let fx = rt.block_on(fixture());
        let stats = fx.vault.log_stats();
        let (groups0, rows0) = (
            stats.groups.load(Ordering::Relaxed),
            stats.rows.load(Ordering::Relaxed),
        );
        let mut reveals = 0u64;
        group.bench_with_input(
            BenchmarkId::new("callers", callers),
            &callers,
            |b, &callers| {
                b.to_async(&rt).iter_custom(|iters| {
                    let total = iters * REVEALS_PER_ITER;
                    reveals += total;
                    let fx = &fx;
                    async move { run(fx, callers, total).await }
                });
            },
        );
        if reveals == 0 {
            // Filtered out on the command line.
            rt.block_on(fx.vault.db().close());
            continue;
        }
        let (g1, r1) = (
            stats.groups.load(Ordering::Relaxed),
            stats.rows.load(Ordering::Relaxed),
        );
        // A 2 s probe after criterion: throughput and group size of the same
        // workload, measured outside criterion's sampling, as a cross-check.
        let probe_start = Instant::now();
        let mut probe_reveals = 0u64;
        let mut busy = Duration::ZERO;
        while probe_start.elapsed() < Duration::from_secs(2) {
            let chunk = REVEALS_PER_ITER * 16;
            busy += rt.block_on(run(&fx, callers, chunk));
            probe_reveals += chunk;
        }
        let (g2, r2) = (
            stats.groups.load(Ordering::Relaxed),
            stats.rows.load(Ordering::Relaxed),
        );
        let (bench_groups, bench_rows) = (g1 - groups0, r1 - rows0);
        let (probe_groups, probe_rows) = (g2 - g1, r2 - r1);
        let line = format!(
            "callers={callers:>2}: avg group size {:>5.1} rows ({bench_rows} rows / {bench_groups} groups \
             during the criterion run, incl. warm-up); probe: {:>6.0} reveals/s, avg group {:.1}",
            bench_rows as f64 / bench_groups.max(1) as f64,
            probe_reveals as f64 / busy.as_secs_f64(),
            probe_rows as f64 / probe_groups.max(1) as f64,
        );
        println!("{line}");
        summary.push(line);
        rt.block_on(fx.vault.db().close());
    }
    group.finish();
    println!("\n== group-commit summary (SQLite, WAL, synchronous=FULL) ==");
    for line in summary {
        println!("{line}");
    }
}

criterion_group!(benches, reveal);
criterion_main!(benches);
