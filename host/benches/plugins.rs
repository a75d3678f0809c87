//! The plugin runtime's two costs that matter to an operator:
//!
//! - `warm_call`: one call of a trivial export — a fresh `Store` from the
//!   cached `InstancePre`, instantiation from the pool, the call, and one
//!   host import (`log.emit`). This is the per-call overhead every forge or
//!   migrator call pays on top of its own work.
//! - `host_start`: `Runtime::start` with every built-in plugin and a warm
//!   compile cache: engine, pool, deserialising each component, linking.
//!
//! - `warm_call_<lang>_scaffold`: the same for the forge adapter that
//!   `keyward plugin new --kind forge --lang rust|python|js` writes, built
//!   by its own `build` (its `info` export: the language's fixed cost per
//!   call). `KEYWARD_BENCH_KIT=0` skips them (they build three projects);
//!   `KEYWARD_BENCH_KIT=rust,js` picks languages.
//!
//! Run: `cargo bench -p keyward --bench plugins`. The fixture plugins are
//! built from tests/fixtures/plugins first (as the tests do).

#[path = "../../tests/plugins/fixtures.rs"]
#[allow(dead_code)]
mod fixtures;
#[path = "../../tests/plugins/scaffold.rs"]
#[allow(dead_code)]
mod scaffold;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

// The same allocator as the `keyward` binary (see src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use keyward::config::Config;
use keyward::crypto::MasterKey;
use keyward::names::SecretRef;
use keyward::runtime::{BaseUrl, Options, Runtime};
use keyward::vault::Vault;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let dir = tempfile::tempdir().expect("temp dir");
    let plugins = dir.path().join("plugins");
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(&plugins).expect("mkdir");
    fixtures::install(&plugins, "minimal", |m| m);
    // KEYWARD_BENCH_KIT: unset for all three, `0` for none, or a comma
    // list (`rust,js`).
    let chosen = std::env::var("KEYWARD_BENCH_KIT").unwrap_or_default();
    let kit: Vec<&str> = ["rust", "python", "js"]
        .into_iter()
        .filter(|lang| chosen.is_empty() || chosen.split(',').any(|c| c == *lang))
        .collect();
    for lang in &kit {
        let name = format!("kit-{lang}-forge");
        let project = scaffold::new_project(dir.path(), &name, "forge", lang);
        let took = scaffold::build(&project, lang);
        let wasm = project.join("dist").join(format!("{name}.wasm"));
        eprintln!(
            "{name}: build {:.1} s, {} bytes",
            took.as_secs_f64(),
            std::fs::metadata(&wasm).expect("built").len()
        );
        for ext in ["wasm", "toml"] {
            std::fs::copy(
                project.join("dist").join(format!("{name}.{ext}")),
                plugins.join(format!("{name}.{ext}")),
            )
            .expect("copy");
        }
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
    let runtime = Runtime::start(Options {
        plugins_dir: Some(plugins.clone()),
        cache_dir: Some(cache.clone()),
        builtins: true,
        hosts: Default::default(),
    })
    .expect("runtime");
    let token = SecretRef::parse("UNUSED").expect("reference");
    // Parsed once, as a configured forge's base URL is.
    let base = BaseUrl::parse("http://127.0.0.1:9").expect("base URL");

    let mut group = c.benchmark_group("plugins");
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("warm_call", |b| {
        b.to_async(&rt).iter(|| async {
            runtime
                .forge_whoami(&vault, "minimal", &base, &token)
                .await
                .expect("call")
        })
    });
    for lang in &kit {
        let name = format!("kit-{lang}-forge");
        group.bench_function(format!("warm_call_{lang}_scaffold"), |b| {
            b.to_async(&rt)
                .iter(|| async { runtime.forge_info(&vault, &name).await.expect("info") })
        });
    }
    // The cache is warm: the runtime above compiled every built-in into it.
    group.sample_size(20);
    group.bench_function("host_start", |b| {
        b.iter(|| {
            let started = Runtime::start(Options {
                plugins_dir: None,
                cache_dir: Some(cache.clone()),
                builtins: true,
                hosts: Default::default(),
            })
            .expect("runtime");
            assert!(started.registry().refused.is_empty());
            started
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
