//! The one shape of every export call, whatever the world and the export:
//! the loaded plugin of the wanted kind, a fresh limited store for the
//! call, the component instantiated, the export run against the call's
//! deadline, the store torn down into a [`PluginError`] or the answer, and
//! the call counted for metrics.

use std::path::Path;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use wasmtime::Store;

use super::bindings::forge::{ForgeAdapter, ForgeAdapterPre};
use super::bindings::migrator::{Migrator, MigratorPre};
use super::call::{self, CallCtx, CallState};
use super::registry::Pre;
use super::{Kind, Loaded, PluginError, ReturnedError, Runtime};

/// A component of one world, ready to instantiate.
pub(super) trait World: Clone + Send + Sync + 'static {
    /// The instance of that world.
    type Instance: Send;
    /// The plugin kind that exports it.
    const KIND: Kind;
    /// `Some` when `pre` is of this world.
    fn pick(pre: &Pre) -> Option<&Self>;
    fn engine(&self) -> &wasmtime::Engine;
    fn instantiate<'s>(
        &'s self,
        store: &'s mut Store<CallState>,
    ) -> BoxFuture<'s, wasmtime::Result<Self::Instance>>;
}

impl World for ForgeAdapterPre<CallState> {
    type Instance = ForgeAdapter;
    const KIND: Kind = Kind::Forge;
    fn pick(pre: &Pre) -> Option<&Self> {
        match pre {
            Pre::Forge(p) => Some(p),
            Pre::Migrator(_) => None,
        }
    }
    fn engine(&self) -> &wasmtime::Engine {
        ForgeAdapterPre::engine(self)
    }
    fn instantiate<'s>(
        &'s self,
        store: &'s mut Store<CallState>,
    ) -> BoxFuture<'s, wasmtime::Result<ForgeAdapter>> {
        self.instantiate_async(store).boxed()
    }
}

impl World for MigratorPre<CallState> {
    type Instance = Migrator;
    const KIND: Kind = Kind::Migrator;
    fn pick(pre: &Pre) -> Option<&Self> {
        match pre {
            Pre::Migrator(p) => Some(p),
            Pre::Forge(_) => None,
        }
    }
    fn engine(&self) -> &wasmtime::Engine {
        MigratorPre::engine(self)
    }
    fn instantiate<'s>(
        &'s self,
        store: &'s mut Store<CallState>,
    ) -> BoxFuture<'s, wasmtime::Result<Migrator>> {
        self.instantiate_async(store).boxed()
    }
}

/// An export call on a fresh instance: gets the store and the instance,
/// answers the export's own result (a trap or host error is the outer one).
pub(super) type Export<'s, T, E> = BoxFuture<'s, wasmtime::Result<Result<T, E>>>;

impl Runtime {
    /// The loaded plugin `name` and its component, if it is of world `W`.
    pub(super) fn loaded<W: World>(&self, name: &str) -> Result<(Arc<Loaded>, W), PluginError> {
        let plugin = self.get(name)?;
        match W::pick(&plugin.pre) {
            Some(pre) => {
                let pre = pre.clone();
                Ok((plugin, pre))
            }
            None => Err(PluginError::WrongKind {
                name: name.to_owned(),
                actual: plugin.manifest.kind.as_str(),
                wanted: W::KIND.as_str(),
            }),
        }
    }

    /// Runs `export` on a fresh instance of `pre` (plugin `plugin`) with
    /// the call context `ctx`; `source` is a migrator's legacy folder,
    /// mounted read-write for this call only.
    pub(super) async fn call_export<W, T, E>(
        &self,
        plugin: &Loaded,
        pre: &W,
        ctx: CallCtx,
        source: Option<&Path>,
        export: impl for<'s> FnOnce(&'s mut Store<CallState>, W::Instance) -> Export<'s, T, E> + Send,
    ) -> Result<T, PluginError>
    where
        W: World,
        T: Send,
        E: Into<ReturnedError> + Send,
    {
        let started = std::time::Instant::now();
        let result = async {
            let (mut store, stdio, deadline) =
                call::new_store(pre.engine(), ctx, &plugin.wasi, source)
                    .map_err(|e| PluginError::Invalid(format!("{e:#}")))?;
            let outcome = {
                let work = async {
                    let instance = pre.instantiate(&mut store).await?;
                    export(&mut store, instance).await
                };
                call::bounded(deadline, work).await
            };
            call::finish(store, stdio, outcome, &plugin.wasi)
        }
        .await;
        self.inner
            .stats
            .count(&plugin.manifest.name, started.elapsed(), &result);
        result
    }
}
