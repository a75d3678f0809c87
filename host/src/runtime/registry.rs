//! Which plugins are loaded: the built-in ones, overridden by files in the
//! plugins folder. Loading a plugin verifies its manifest and hash, compiles
//! it (or takes it from the compile cache) and checks its world; a plugin
//! that fails any step is refused with a message naming its file, and the
//! others load regardless.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::Engine;

use super::bindings::forge::ForgeAdapterPre;
use super::bindings::migrator::MigratorPre;
use super::builtin::BUILTIN;
use super::cache::{CacheOutcome, CompileCache};
use super::call::CallState;
use super::call::WasiPool;
use super::error::LoadError;
use super::grants::Grants;
use super::manifest::{Kind, Manifest, MAX_MANIFEST_BYTES};

/// Largest `.wasm` accepted (a CPython component is about 40 MiB).
pub const MAX_WASM_BYTES: u64 = 256 << 20;

/// Where a plugin came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Embedded in the binary.
    BuiltIn,
    /// A file in the plugins folder.
    File(PathBuf),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::BuiltIn => f.write_str("built-in"),
            Source::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A loaded plugin, ready to instantiate.
pub struct Loaded {
    /// Its manifest.
    pub manifest: Manifest,
    /// sha256 of its wasm (lower-case hex).
    pub sha256: String,
    /// Where it came from.
    pub source: Source,
    pub(crate) pre: Pre,
    /// Computed once at load rather than on every call.
    pub(crate) name: Arc<str>,
    /// `plugin:<name>`, the accessor in the access log.
    pub(crate) accessor: Arc<str>,
    /// The manifest's grants, shared by every call.
    pub(crate) grants: Arc<Grants>,
    /// Its idle WASI contexts.
    pub(crate) wasi: WasiPool,
}

/// The pre-linked component, by world.
#[derive(Clone)]
pub(crate) enum Pre {
    Forge(ForgeAdapterPre<CallState>),
    Migrator(MigratorPre<CallState>),
}

/// One snapshot of what is loaded and what was refused.
#[derive(Default)]
pub struct Registry {
    /// Loaded plugins by name.
    pub plugins: BTreeMap<String, Arc<Loaded>>,
    /// Plugins refused, with why.
    pub refused: Vec<LoadError>,
}

/// Loads plugins, remembering compiled components by hash so a reload
/// compiles only what changed.
pub(crate) struct Loader {
    pub engine: Engine,
    pub linker: Linker<CallState>,
    pub cache: CompileCache,
    pub builtins: bool,
    pub dir: Option<PathBuf>,
    compiled: Mutex<HashMap<String, Component>>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Loader {
    pub fn new(
        engine: Engine,
        linker: Linker<CallState>,
        cache: CompileCache,
        builtins: bool,
        dir: Option<PathBuf>,
    ) -> Self {
        Loader {
            engine,
            linker,
            cache,
            builtins,
            dir,
            compiled: Mutex::new(HashMap::new()),
        }
    }

    /// Loads everything: built-ins first, then the folder, whose plugins
    /// replace built-ins of the same name. A folder plugin that is refused
    /// leaves the built-in of that name in place.
    pub fn load_all(&self) -> Registry {
        let mut registry = Registry::default();
        if self.builtins {
            for b in BUILTIN {
                let file = format!("built-in {}", b.name);
                match self.load(b.name, b.manifest, b.wasm, Source::BuiltIn, false) {
                    Ok(p) => {
                        registry
                            .plugins
                            .insert(p.manifest.name.clone(), Arc::new(p));
                    }
                    Err(problem) => registry.refused.push(LoadError { file, problem }),
                }
            }
        }
        if let Some(dir) = &self.dir {
            match scan(dir) {
                Ok(entries) => {
                    for entry in entries {
                        match self.load_file(&entry) {
                            Ok(p) => {
                                registry
                                    .plugins
                                    .insert(p.manifest.name.clone(), Arc::new(p));
                            }
                            Err(e) => registry.refused.push(e),
                        }
                    }
                }
                Err(e) => registry.refused.push(LoadError {
                    file: dir.display().to_string(),
                    problem: format!("cannot read the plugins folder: {e}"),
                }),
            }
        }
        for refused in &registry.refused {
            tracing::error!("{refused}; the host goes on without it");
        }
        registry
    }

    /// Loads one `NAME.wasm` + `NAME.toml` pair from the folder.
    pub fn load_file(&self, entry: &Entry) -> Result<Loaded, LoadError> {
        let refuse = |file: &Path, problem: String| LoadError {
            file: file.display().to_string(),
            problem,
        };
        let (wasm_path, toml_path) = match (&entry.wasm, &entry.toml) {
            (Some(w), Some(t)) => (w, t),
            (Some(w), None) => {
                return Err(refuse(
                    w,
                    format!("no manifest beside it (expected {}.toml)", entry.stem),
                ))
            }
            (None, Some(t)) => {
                return Err(refuse(
                    t,
                    format!("no component beside it (expected {}.wasm)", entry.stem),
                ))
            }
            (None, None) => unreachable!("scan yields a file for every entry"),
        };
        let manifest =
            read_limited(toml_path, MAX_MANIFEST_BYTES as u64).map_err(|e| refuse(toml_path, e))?;
        let manifest = String::from_utf8(manifest)
            .map_err(|_| refuse(toml_path, "manifest is not UTF-8".into()))?;
        let wasm = read_limited(wasm_path, MAX_WASM_BYTES).map_err(|e| refuse(wasm_path, e))?;
        self.load(
            &entry.stem,
            &manifest,
            &wasm,
            Source::File(wasm_path.clone()),
            true,
        )
        .map_err(|problem| {
            let at = if problem.starts_with("manifest") {
                toml_path
            } else {
                wasm_path
            };
            refuse(at, problem)
        })
    }

    fn load(
        &self,
        stem: &str,
        manifest: &str,
        wasm: &[u8],
        source: Source,
        hash_required: bool,
    ) -> Result<Loaded, String> {
        let manifest = Manifest::parse(manifest, stem).map_err(|e| format!("manifest: {e}"))?;
        let sha256 = sha256_hex(wasm);
        match &manifest.sha256 {
            Some(expected) if *expected != sha256 => {
                return Err(format!(
                    "sha256 mismatch: the manifest says {expected}, the file is {sha256}; \
                     refusing a component that is not the one its manifest describes"
                ))
            }
            None if hash_required => {
                return Err(format!(
                    "manifest: sha256 is required for a plugin file (this file's is {sha256})"
                ))
            }
            _ => {}
        }
        let component = self.component(&sha256, wasm)?;
        let pre = prelink(&self.linker, &component, manifest.kind)?;
        Ok(Loaded {
            name: Arc::from(manifest.name.as_str()),
            accessor: Arc::from(format!("plugin:{}", manifest.name)),
            grants: Arc::new(manifest.grants.clone()),
            wasi: WasiPool::default(),
            manifest,
            sha256,
            source,
            pre,
        })
    }

    fn component(&self, sha256: &str, wasm: &[u8]) -> Result<Component, String> {
        if let Some(c) = self
            .compiled
            .lock()
            .expect("compiled-component map poisoned")
            .get(sha256)
        {
            return Ok(c.clone());
        }
        let started = std::time::Instant::now();
        let (component, outcome) = self
            .cache
            .load_or_compile(&self.engine, sha256, wasm)
            .map_err(|e| format!("not a valid WebAssembly component: {e:#}"))?;
        tracing::debug!(
            sha256,
            cached = outcome == CacheOutcome::Hit,
            ms = started.elapsed().as_millis() as u64,
            "component ready"
        );
        self.compiled
            .lock()
            .expect("compiled-component map poisoned")
            .insert(sha256.to_owned(), component.clone());
        Ok(component)
    }
}

/// Links `component` against the host's imports and checks it exports the
/// world its kind requires.
pub(crate) fn prelink(
    linker: &Linker<CallState>,
    component: &Component,
    kind: Kind,
) -> Result<Pre, String> {
    let pre = linker.instantiate_pre(component).map_err(|e| {
        format!(
            "component of the wrong world for a {} plugin (world {}): it imports something the host \
             does not provide: {e:#}",
            kind.as_str(),
            kind.world()
        )
    })?;
    let wrong = |e: wasmtime::Error| {
        format!(
            "component of the wrong world for a {} plugin: it does not export world {}: {e:#}",
            kind.as_str(),
            kind.world()
        )
    };
    Ok(match kind {
        Kind::Forge => Pre::Forge(ForgeAdapterPre::new(pre).map_err(wrong)?),
        Kind::Migrator => Pre::Migrator(MigratorPre::new(pre).map_err(wrong)?),
    })
}

fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > max {
        return Err(format!("larger than {max} bytes"));
    }
    std::fs::read(path).map_err(|e| format!("cannot read: {e}"))
}

/// One plugin's files in the folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The shared file stem.
    pub stem: String,
    /// `STEM.wasm`, if present.
    pub wasm: Option<PathBuf>,
    /// `STEM.toml`, if present.
    pub toml: Option<PathBuf>,
}

/// The `.wasm`/`.toml` pairs in `dir`, by stem. Hidden files and other
/// extensions are ignored (editors and copy tools leave such files behind).
pub fn scan(dir: &Path) -> std::io::Result<Vec<Entry>> {
    let mut by_stem: BTreeMap<String, Entry> = BTreeMap::new();
    for item in std::fs::read_dir(dir)? {
        let path = item?.path();
        let (Some(stem), Some(ext)) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|e| e.to_str()),
        ) else {
            continue;
        };
        if stem.starts_with('.') || !matches!(ext, "wasm" | "toml") {
            continue;
        }
        let entry = by_stem.entry(stem.to_owned()).or_insert_with(|| Entry {
            stem: stem.to_owned(),
            wasm: None,
            toml: None,
        });
        if ext == "wasm" {
            entry.wasm = Some(path);
        } else {
            entry.toml = Some(path);
        }
    }
    Ok(by_stem.into_values().collect())
}

/// What the folder looks like now: names, sizes and modification times.
/// A change means a reload.
pub fn fingerprint(dir: &Path) -> Vec<(String, u64, Option<SystemTime>)> {
    let mut out = Vec::new();
    if let Ok(items) = std::fs::read_dir(dir) {
        for item in items.flatten() {
            let meta = item.metadata().ok();
            out.push((
                item.file_name().to_string_lossy().into_owned(),
                meta.as_ref().map_or(0, |m| m.len()),
                meta.and_then(|m| m.modified().ok()),
            ));
        }
    }
    out.sort();
    out
}
