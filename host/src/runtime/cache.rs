//! The on-disk compile cache: a component's machine code, keyed by the
//! sha256 of its wasm and by the engine's compatibility hash, so a warm
//! start loads code instead of compiling it.
//!
//! Loading precompiled code is `unsafe` in wasmtime because the file is
//! trusted to be what `Component::serialize` wrote. The cache folder is
//! private to the service user (0700, files 0600), written atomically, and
//! wasmtime checks its own header and version on load; anyone who can write
//! there can already replace the binary. A file that fails to load is
//! compiled again and overwritten.

#![allow(unsafe_code)]

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::component::Component;
use wasmtime::Engine;

/// Where compiled components live, one folder per engine configuration.
#[derive(Clone, Debug)]
pub struct CompileCache {
    dir: Option<PathBuf>,
}

/// Whether a component came from the cache or was compiled now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from the cache.
    Hit,
    /// Compiled (and stored, if there is a cache).
    Compiled,
}

impl CompileCache {
    /// A cache under `root` (e.g. `<data dir>/plugin-cache`), or none.
    pub fn new(engine: &Engine, root: Option<&Path>) -> std::io::Result<Self> {
        let Some(root) = root else {
            return Ok(CompileCache { dir: None });
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let dir = root.join(format!("wasmtime-{:016x}", h.finish()));
        crate::store::create_private_dir(&dir)?;
        Ok(CompileCache { dir: Some(dir) })
    }

    /// The component for `wasm`, whose sha256 is `sha256` (lower-case hex,
    /// already verified by the caller).
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        sha256: &str,
        wasm: &[u8],
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let path = self.dir.as_ref().map(|d| d.join(format!("{sha256}.cwasm")));
        if let Some(path) = path.as_ref().filter(|p| p.is_file()) {
            // SAFETY: see the module comment — the file is ours, private, and
            // was written whole by `store` below from `Component::serialize`.
            match unsafe { Component::deserialize_file(engine, path) } {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "compile cache entry unusable; recompiling")
                }
            }
        }
        let component = Component::new(engine, wasm)?;
        if let Some(path) = path {
            if let Err(e) = store(&path, &component.serialize()?) {
                tracing::warn!(path = %path.display(), error = %e, "could not write the compile cache");
            }
        }
        Ok((component, CacheOutcome::Compiled))
    }
}

fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // Two runtimes in one process may store the same component at once:
    // each writes a temporary file of its own.
    crate::store::replace_file(path, bytes)
}
