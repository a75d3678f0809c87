//! The plugin runtime: one wasmtime engine, plugins loaded from the binary
//! and from `KEYWARD_PLUGINS_DIR`, and calls into them, each in a fresh,
//! limited store with the host interfaces of `wit/` (one file each under
//! `host/`). docs/plugins.md is the author's guide.

pub mod addresses;
pub mod bindings;
mod builtin;
mod cache;
mod call;
pub mod egress;
mod engine;
pub mod error;
mod expand;
mod export;
mod forge_calls;
pub mod grants;
mod host;
pub mod journal;
pub mod manifest;
pub mod migration;
pub mod redact;
pub mod registry;
pub mod view;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use wasmtime::component::{Component, Linker};

pub use self::cache::CacheOutcome;
pub use self::error::{LoadError, PluginError, ReturnedError};
pub use self::forge_calls::{
    Account, ForgeInfo, OAuthApp, Repository, RepositoryPage, TokenRef, TokenSet,
};
pub use self::manifest::{Kind, Limits, Manifest};
pub use self::migration::{Binding, Discovered, LegacyItem, MigrationSource, MigratorInfo};
pub use self::registry::{Loaded, Registry, Source};

use self::bindings::forge::ForgeAdapter;
use self::call::{CallCtx, CallState};
use self::egress::Egress;
pub use self::grants::BaseUrl;
use self::grants::CallGrants;
pub use self::journal::Journal;
use self::redact::Redactor;
use self::registry::Loader;
use crate::vault::Vault;

/// Environment variable: the drop-in plugins folder.
pub const PLUGINS_DIR_VAR: &str = "KEYWARD_PLUGINS_DIR";

/// How the folder is watched: it is compared with its last state this often.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// How to set the runtime up.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The drop-in folder (`KEYWARD_PLUGINS_DIR`), if any.
    pub plugins_dir: Option<PathBuf>,
    /// Where compiled components are cached, if anywhere.
    pub cache_dir: Option<PathBuf>,
    /// Whether to load the plugins embedded in the binary.
    pub builtins: bool,
    /// Names pinned to addresses for `outbound` (before DNS).
    pub hosts: HashMap<String, Vec<IpAddr>>,
}

/// The plugin runtime. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    loader: Loader,
    egress: Egress,
    registry: RwLock<Arc<Registry>>,
    stats: CallStats,
    ticker: engine::EpochTicker,
}

/// Counts of plugin calls, for metrics.
#[derive(Default)]
pub struct CallStats {
    /// Calls made (each export call, whatever its end).
    pub calls: std::sync::atomic::AtomicU64,
    /// Failed calls by [`PluginError::kind`].
    pub failures: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// Seconds per call by plugin and outcome (`ok` or the error's kind).
    /// Only loaded plugins' calls are counted (a name that is not loaded
    /// fails before the call), and a not-found error would count as plugin
    /// `unknown`: a caller cannot make series at will.
    pub durations: crate::metrics::Family<&'static str>,
}

impl CallStats {
    fn count<T>(&self, plugin: &str, took: std::time::Duration, result: &Result<T, PluginError>) {
        let (plugin, outcome) = match result {
            Ok(_) => (plugin, "ok"),
            Err(PluginError::NotFound(_)) => ("unknown", "not_found"),
            Err(e) => (plugin, e.kind()),
        };
        self.durations.observe(plugin, outcome, took.as_secs_f64());
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Err(e) = result {
            let mut failures = self
                .failures
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *failures.entry(e.kind()).or_default() += 1;
        }
    }
}

impl Runtime {
    /// Builds the engine and loads every plugin. Plugins that fail to load
    /// are in [`Registry::refused`]; the runtime starts regardless.
    pub fn start(options: Options) -> anyhow::Result<Runtime> {
        let (engine, ticker) = engine::build().map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let linker = linker(&engine)?;
        let cache = cache::CompileCache::new(&engine, options.cache_dir.as_deref())?;
        let loader = Loader::new(engine, linker, cache, options.builtins, options.plugins_dir);
        let registry = Arc::new(loader.load_all());
        Ok(Runtime {
            inner: Arc::new(Inner {
                loader,
                egress: Egress::new(options.hosts)?,
                registry: RwLock::new(registry),
                stats: CallStats::default(),
                ticker,
            }),
        })
    }

    /// Counts of calls and failures since start.
    pub fn stats(&self) -> &CallStats {
        &self.inner.stats
    }

    /// Why plugin calls cannot be served now, if they cannot: the clock
    /// that enforces wall-time limits has stopped, or a reload panicked and
    /// left the registry unusable. `/readyz` asks.
    pub fn not_ready(&self) -> Option<&'static str> {
        if !self.inner.ticker.running() {
            return Some("the plugin runtime's clock (wall-time limits) has stopped");
        }
        if self.inner.registry.is_poisoned() {
            return Some("the plugin registry is unusable (a reload panicked)");
        }
        None
    }

    /// Stops the runtime's clock, so that [`Self::not_ready`] says so (the
    /// readiness test's fault; builds with `fault-injection` only).
    #[cfg(feature = "fault-injection")]
    pub fn stop_clock(&self) {
        self.inner.ticker.stop();
    }

    /// What is loaded now (and what was refused at the last load).
    pub fn registry(&self) -> Arc<Registry> {
        self.inner
            .registry
            .read()
            .expect("registry lock poisoned")
            .clone()
    }

    /// Loads everything again (compiling only what changed) and swaps the
    /// result in; calls already running finish on the plugin they started
    /// with.
    pub async fn reload(&self) -> Arc<Registry> {
        let me = self.clone();
        let registry = tokio::task::spawn_blocking(move || Arc::new(me.inner.loader.load_all()))
            .await
            .expect("plugin loading panicked");
        *self.inner.registry.write().expect("registry lock poisoned") = registry.clone();
        let names: Vec<&str> = registry.plugins.keys().map(String::as_str).collect();
        tracing::info!(loaded = ?names, refused = registry.refused.len(), "plugins reloaded");
        registry
    }

    /// Watches the plugins folder and reloads when a file appears, changes
    /// or goes. Polling (every [`WATCH_INTERVAL`]) works the same on every
    /// filesystem, network mounts included; the cost is one `readdir`.
    pub fn watch(&self) -> Option<tokio::task::JoinHandle<()>> {
        let dir = self.inner.loader.dir.clone()?;
        let me = self.clone();
        // Taken now, not when the task first runs: a file dropped in between
        // must count as a change.
        let mut last = registry::fingerprint(&dir);
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(WATCH_INTERVAL);
            loop {
                tick.tick().await;
                let now = registry::fingerprint(&dir);
                if now != last {
                    // Let a copy in progress finish before reading it.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    last = registry::fingerprint(&dir);
                    me.reload().await;
                }
            }
        }))
    }

    fn get(&self, name: &str) -> Result<Arc<Loaded>, PluginError> {
        self.registry()
            .plugins
            .get(name)
            .cloned()
            .ok_or_else(|| PluginError::NotFound(name.chars().take(64).collect()))
    }

    fn context(&self, plugin: &Loaded, vault: &Vault, grants: CallGrants) -> CallCtx {
        CallCtx {
            plugin: plugin.name.clone(),
            accessor: plugin.accessor.clone(),
            grants,
            limits: plugin.manifest.limits.clone(),
            vault: vault.clone(),
            egress: self.inner.egress.clone(),
            redactor: Redactor::default(),
            expanded: Redactor::default(),
            bound: Vec::new(),
            outbound_used: 0,
            log_used: 0,
            log_exceeded: false,
            journal: None,
            on_behalf: None,
            refusals: 0,
            refusals_exceeded: false,
        }
    }
}

/// The host's imports, for both worlds: WASI p2 and the keyward interfaces
/// (the `migrator` bindings reuse the `forge-adapter` import traits).
fn linker(engine: &wasmtime::Engine) -> anyhow::Result<Linker<CallState>> {
    let mut linker = Linker::<CallState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)
        .map_err(|e| anyhow::anyhow!("linking WASI: {e:#}"))?;
    ForgeAdapter::add_to_linker::<_, wasmtime::component::HasSelf<CallState>>(&mut linker, |s| s)
        .map_err(|e| anyhow::anyhow!("linking the host interfaces: {e:#}"))?;
    Ok(linker)
}

/// What `keyward plugin check` reports about a component.
#[derive(Debug)]
pub struct CheckReport {
    /// sha256 of the file.
    pub sha256: String,
    /// The component's imports, by name.
    pub imports: Vec<String>,
    /// The component's exports, by name.
    pub exports: Vec<String>,
    /// The worlds it implements, among `forge-adapter` and `migrator`.
    pub worlds: Vec<&'static str>,
    /// The manifest, if one was given and it parsed.
    pub manifest: Option<Manifest>,
}

/// Validates a component (and optionally its manifest) the way loading
/// would, without a store or a running host. Any problem is an error that
/// says what is wrong.
pub fn check(wasm_path: &Path, manifest_path: Option<&Path>) -> anyhow::Result<CheckReport> {
    let (engine, _ticker) = engine::build().map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let linker = linker(&engine)?;
    let meta = std::fs::metadata(wasm_path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", wasm_path.display()))?;
    anyhow::ensure!(
        meta.len() <= registry::MAX_WASM_BYTES,
        "{}: larger than {} bytes",
        wasm_path.display(),
        registry::MAX_WASM_BYTES
    );
    let wasm = std::fs::read(wasm_path)?;
    let sha256 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&wasm))
    };
    let component = Component::new(&engine, &wasm).map_err(|e| {
        anyhow::anyhow!(
            "{}: not a valid WebAssembly component: {e:#}",
            wasm_path.display()
        )
    })?;
    let ty = component.component_type();
    let imports = ty.imports(&engine).map(|(n, _)| n.to_owned()).collect();
    let exports = ty.exports(&engine).map(|(n, _)| n.to_owned()).collect();
    let mut worlds = Vec::new();
    let mut problems = Vec::new();
    for kind in [Kind::Forge, Kind::Migrator] {
        match registry::prelink(&linker, &component, kind) {
            Ok(_) => worlds.push(kind.world()),
            Err(e) => problems.push(e),
        }
    }
    let manifest = match manifest_path {
        None => None,
        Some(path) => {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .ok_or_else(|| anyhow::anyhow!("{}: no file name", path.display()))?;
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let m = Manifest::parse(&text, stem)
                .map_err(|e| anyhow::anyhow!("{}: manifest: {e}", path.display()))?;
            if let Some(expected) = &m.sha256 {
                anyhow::ensure!(
                    *expected == sha256,
                    "{}: sha256 mismatch: the manifest says {expected}, the file is {sha256}",
                    wasm_path.display()
                );
            }
            anyhow::ensure!(
                worlds.contains(&m.kind.world()),
                "{}: component of the wrong world: the manifest says kind {:?}, which needs world {}; {}",
                wasm_path.display(),
                m.kind.as_str(),
                m.kind.world(),
                problems.join("; ")
            );
            Some(m)
        }
    };
    anyhow::ensure!(
        !worlds.is_empty(),
        "{}: implements neither world forge-adapter nor migrator: {}",
        wasm_path.display(),
        problems.join("; ")
    );
    Ok(CheckReport {
        sha256,
        imports,
        exports,
        worlds,
        manifest,
    })
}
