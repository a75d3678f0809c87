//! A legacy token folder migrated end to end: 10,000 `tokens/<agent>`
//! files through the built-in `token-dir` migrator into a durable SQLite
//! store (WAL, `synchronous=FULL`), write before retire: discover, batched
//! reads, one transaction per batch for secrets + ledger + access log, the
//! renames to `.bak`, and the retire marks. The goal (issue #6) is ≤ 5 s.
//!
//! Run: `cargo bench -p keyward --bench migrate`. Each sample builds a fresh
//! folder and store (not timed) and migrates it once (timed).

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use keyward::config::Config;
use keyward::crypto::MasterKey;
use keyward::migrate::{self, Quiet, Request};
use keyward::runtime::{MigrationSource, Options, Runtime};
use keyward::vault::Vault;

const FILES: usize = 10_000;

fn bench(c: &mut Criterion) {
    // KEYWARD_LOG=keyward::migrate=debug shows where a run's time goes.
    if let Ok(filter) = std::env::var("KEYWARD_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let cache = tempfile::tempdir().expect("temp dir");
    let runtime = Runtime::start(Options {
        plugins_dir: None,
        cache_dir: Some(cache.path().to_owned()),
        builtins: true,
        hosts: Default::default(),
    })
    .expect("runtime");
    let mut group = c.benchmark_group("migrate");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(60));
    group.bench_function("token_dir_10k_files_sqlite", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("temp dir");
                let tokens = dir.path().join("legacy/tokens");
                std::fs::create_dir_all(&tokens).expect("mkdir");
                for i in 0..FILES {
                    std::fs::write(
                        tokens.join(format!("agent-{i}")),
                        format!("tok-{i}-{:032x}\n", i),
                    )
                    .expect("write");
                }
                let vault = rt.block_on(async {
                    Vault::open(&Config {
                        database_url: format!("sqlite://{}/k.db", dir.path().display()),
                        master_key: MasterKey::generate(),
                        previous_keys: vec![],
                        dev_key_file: None,
                        max_versions: keyward::vault::DEFAULT_MAX_VERSIONS as u32,
                        delete_retention: keyward::vault::DEFAULT_RETENTION,
                    })
                    .await
                    .expect("open vault")
                });
                let source = MigrationSource {
                    dir: Some(dir.path().join("legacy")),
                    ..MigrationSource::default()
                };
                let request = Request::new("token-dir", source, "bench:migrate");
                let start = Instant::now();
                let report = rt
                    .block_on(migrate::run(&vault, &runtime, &request, &Quiet))
                    .expect("run");
                total += start.elapsed();
                assert_eq!(report.counts(), (FILES, 0, 0));
                assert!(tokens.join(".agent-0.migrated.bak").is_file());
            }
            total
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
