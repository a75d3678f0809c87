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
pub mod grants;
mod host;
pub mod journal;
pub mod manifest;
pub mod migration;
pub mod redact;
pub mod registry;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use wasmtime::component::{Component, Linker};

pub use self::cache::CacheOutcome;
pub use self::error::{LoadError, PluginError, ReturnedError};
pub use self::manifest::{Kind, Limits, Manifest};
pub use self::migration::{Binding, Discovered, LegacyItem, MigrationSource};
pub use self::registry::{Loaded, Registry, Source};

use self::bindings::forge::ForgeAdapter;
use self::call::{CallCtx, CallState};
use self::egress::Egress;
pub use self::grants::BaseUrl;
use self::grants::CallGrants;
pub use self::journal::Journal;
use self::redact::Redactor;
use self::registry::{Loader, Pre};
use crate::audit::Access;
use crate::names::SecretRef;
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

/// The account a forge token belongs to (from `forge.whoami`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// The forge's id, as text.
    pub id: String,
    /// The login name.
    pub login: String,
    /// The display name.
    pub name: Option<String>,
    /// The e-mail address.
    pub email: Option<String>,
    /// The token's scopes, as the forge reports them (empty: it did not say).
    pub scopes: Vec<String>,
    /// When the token expires (Unix seconds), when the forge says.
    pub expires_at: Option<i64>,
}

/// An OAuth application registered at a forge (the host's configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthApp {
    /// The client id (public).
    pub client_id: String,
    /// A reference to the client secret in the store; none for a public
    /// client (PKCE only). Granted to the plugin for each call that uses it.
    pub client_secret: Option<SecretRef>,
    /// The registered redirect URI.
    pub redirect_uri: String,
}

/// Tokens a forge issued, as the adapter read them from the token reply.
pub struct TokenSet {
    /// The access token.
    pub access_token: crate::crypto::SecretBytes,
    /// The refresh token, if any.
    pub refresh_token: Option<crate::crypto::SecretBytes>,
    /// Expiry of the access token (Unix seconds), if the forge says.
    pub expires_at: Option<i64>,
    /// Granted scopes, if the reply says.
    pub scopes: Vec<String>,
}

/// One repository.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Repository {
    /// The forge's id.
    pub id: String,
    /// `owner/name`.
    pub full_name: String,
    /// Members only.
    pub private: bool,
    /// Archived.
    pub archived: bool,
    /// The default branch.
    pub default_branch: Option<String>,
    /// The page for people.
    pub web_url: String,
    /// The HTTPS clone URL.
    pub clone_url: String,
}

/// One page of repositories.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RepositoryPage {
    /// This page.
    pub repositories: Vec<Repository>,
    /// The next page's cursor; none on the last page.
    pub next: Option<String>,
    /// The total, when the forge says.
    pub total: Option<u64>,
}

/// The token a forge call uses. Either way the plugin gets a reference,
/// writes `${SECRET:…}` and never sees the value.
pub enum TokenRef {
    /// A secret in the store (an agent type's token).
    Stored(SecretRef),
    /// A value the host binds to `reference` for this call only (an
    /// operator's OAuth token, sealed in its own table): usable at egress,
    /// never revealable.
    Bound(SecretRef, crate::crypto::SecretBytes),
}

impl TokenRef {
    fn reference(&self) -> &SecretRef {
        match self {
            TokenRef::Stored(r) | TokenRef::Bound(r, _) => r,
        }
    }
}

/// One export call of the `forge` interface, with its own arguments.
enum ForgeOp {
    AuthorizeUrl {
        state: String,
        code_challenge: String,
        scopes: Vec<String>,
    },
    ExchangeCode {
        code: String,
        code_verifier: String,
    },
    Refresh,
    Whoami,
    ListRepositories {
        cursor: Option<String>,
    },
    Revoke,
}

/// What a forge call carries besides its operation.
#[derive(Default)]
struct ForgeCallExtra {
    /// A refresh's journal.
    journal: Option<Journal>,
    /// The caller the call runs for, named in its egress rows.
    on_behalf: Option<Access>,
}

/// What a [`ForgeOp`] answered.
enum ForgeReply {
    Url(String),
    Tokens(TokenSet),
    Account(Account),
    Page(RepositoryPage),
    Done,
}

/// A forge adapter's self-description (from `forge.info`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForgeInfo {
    /// `forgejo`, `github`, …
    pub kind: String,
    /// For people.
    pub display_name: String,
    /// Used when no base URL is configured.
    pub default_base_url: String,
}

/// A migrator's self-description (from `migration.info`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigratorInfo {
    /// Short name.
    pub name: String,
    /// What it imports, for people.
    pub description: String,
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
    /// Seconds per call by plugin and outcome (`ok` or the error's kind);
    /// a call to a plugin that is not loaded counts as plugin `unknown`,
    /// so a caller cannot make series at will.
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

    fn forge_pre(
        &self,
        name: &str,
    ) -> Result<(Arc<Loaded>, bindings::forge::ForgeAdapterPre<CallState>), PluginError> {
        let plugin = self.get(name)?;
        match &plugin.pre {
            Pre::Forge(pre) => {
                let pre = pre.clone();
                Ok((plugin, pre))
            }
            Pre::Migrator(_) => Err(PluginError::WrongKind {
                name: name.to_owned(),
                actual: plugin.manifest.kind.as_str(),
                wanted: Kind::Forge.as_str(),
            }),
        }
    }

    async fn forge_info_once(&self, vault: &Vault, name: &str) -> Result<ForgeInfo, PluginError> {
        let (plugin, pre) = self.forge_pre(name)?;
        let ctx = self.context(&plugin, vault, CallGrants::default());
        let (mut store, stdio, deadline) = call::new_store(pre.engine(), ctx, &plugin.wasi);
        let outcome = {
            let work = async {
                let instance = pre.instantiate_async(&mut store).await?;
                let info = instance
                    .keyward_plugin_forge()
                    .call_info(&mut store)
                    .await?;
                wasmtime::Result::Ok(Ok::<_, bindings::GuestError>(info))
            };
            call::bounded(deadline, work).await
        };
        let info = call::finish(store, stdio, outcome, &plugin.wasi)?;
        Ok(ForgeInfo {
            kind: info.kind,
            display_name: info.display_name,
            default_base_url: info.default_base_url,
        })
    }

    async fn migrator_info_once(
        &self,
        vault: &Vault,
        name: &str,
    ) -> Result<MigratorInfo, PluginError> {
        let plugin = self.get(name)?;
        let Pre::Migrator(pre) = &plugin.pre else {
            return Err(PluginError::WrongKind {
                name: name.to_owned(),
                actual: plugin.manifest.kind.as_str(),
                wanted: Kind::Migrator.as_str(),
            });
        };
        let pre = pre.clone();
        let ctx = self.context(&plugin, vault, CallGrants::default());
        let (mut store, stdio, deadline) = call::new_store(pre.engine(), ctx, &plugin.wasi);
        let outcome = {
            let work = async {
                let instance = pre.instantiate_async(&mut store).await?;
                let info = instance
                    .keyward_plugin_migration()
                    .call_info(&mut store)
                    .await?;
                wasmtime::Result::Ok(Ok::<_, bindings::GuestError>(info))
            };
            call::bounded(deadline, work).await
        };
        let info = call::finish(store, stdio, outcome, &plugin.wasi)?;
        Ok(MigratorInfo {
            name: info.name,
            description: info.description,
        })
    }

    /// Runs one `forge` export. For this call only, the plugin is granted
    /// the origin of `base_url`, and the use at egress (never the reveal) of
    /// the token's reference (a bound token's value goes with it) and of
    /// the app's client-secret reference.
    #[allow(clippy::too_many_arguments)] // the export's inputs and the call's extras
    async fn forge_op_once(
        &self,
        vault: &Vault,
        name: &str,
        base_url: &BaseUrl,
        app: Option<&OAuthApp>,
        token: Option<TokenRef>,
        op: ForgeOp,
        extra: ForgeCallExtra,
    ) -> Result<ForgeReply, PluginError> {
        use self::bindings::forge::exports::keyward::plugin::forge as wit;
        let (plugin, pre) = self.forge_pre(name)?;
        let mut grants =
            CallGrants::manifest(plugin.grants.clone()).with_origin(base_url.origin().clone());
        if let Some(secret) = app.and_then(|a| a.client_secret.as_ref()) {
            grants = grants.with_use(secret);
        }
        let token_text = token
            .as_ref()
            .map(|t| t.reference().to_string())
            .unwrap_or_default();
        if let Some(t) = &token {
            grants = grants.with_use(t.reference());
        }
        let mut ctx = self.context(&plugin, vault, grants);
        ctx.journal = extra.journal;
        ctx.on_behalf = extra.on_behalf;
        if let Some(TokenRef::Bound(reference, value)) = token {
            ctx.redactor.add(value.expose());
            ctx.bound.push((reference, value));
        }
        let wit_app = app.map(|a| wit::OauthApp {
            client_id: a.client_id.clone(),
            client_secret: a.client_secret.as_ref().map(ToString::to_string),
            redirect_uri: a.redirect_uri.clone(),
        });
        let base = base_url.as_str();
        let (mut store, stdio, deadline) = call::new_store(pre.engine(), ctx, &plugin.wasi);
        let outcome = {
            let work = async {
                let instance = pre.instantiate_async(&mut store).await?;
                let forge = instance.keyward_plugin_forge();
                let app = || {
                    wit_app.clone().ok_or_else(|| {
                        wasmtime::Error::msg("this forge call needs the OAuth app configuration")
                    })
                };
                wasmtime::Result::Ok(match op {
                    ForgeOp::AuthorizeUrl {
                        state,
                        code_challenge,
                        scopes,
                    } => forge
                        .call_authorize_url(
                            &mut store,
                            base,
                            &app()?,
                            &state,
                            &code_challenge,
                            &scopes,
                        )
                        .await?
                        .map(ForgeReply::Url),
                    ForgeOp::ExchangeCode {
                        code,
                        code_verifier,
                    } => forge
                        .call_exchange_code(&mut store, base, &app()?, &code, &code_verifier)
                        .await?
                        .map(|t| ForgeReply::Tokens(token_set(t))),
                    ForgeOp::Refresh => forge
                        .call_refresh(&mut store, base, &app()?, &token_text)
                        .await?
                        .map(|t| ForgeReply::Tokens(token_set(t))),
                    ForgeOp::Whoami => {
                        forge
                            .call_whoami(&mut store, base, &token_text)
                            .await?
                            .map(|a| {
                                ForgeReply::Account(Account {
                                    id: a.id,
                                    login: a.login,
                                    name: a.name,
                                    email: a.email,
                                    scopes: a.scopes,
                                    expires_at: a.expires_at,
                                })
                            })
                    }
                    ForgeOp::ListRepositories { cursor } => forge
                        .call_list_repositories(&mut store, base, &token_text, cursor.as_deref())
                        .await?
                        .map(|p| ForgeReply::Page(repository_page(p))),
                    ForgeOp::Revoke => forge
                        .call_revoke(&mut store, base, &app()?, &token_text)
                        .await?
                        .map(|()| ForgeReply::Done),
                })
            };
            call::bounded(deadline, work).await
        };
        call::finish(store, stdio, outcome, &plugin.wasi)
    }

    #[allow(clippy::too_many_arguments)] // the export's inputs and the call's extras
    async fn forge_op(
        &self,
        vault: &Vault,
        name: &str,
        base_url: &BaseUrl,
        app: Option<&OAuthApp>,
        token: Option<TokenRef>,
        op: ForgeOp,
        extra: ForgeCallExtra,
    ) -> Result<ForgeReply, PluginError> {
        self.counted(
            name,
            self.forge_op_once(vault, name, base_url, app, token, op, extra),
        )
        .await
    }

    /// Awaits one call of plugin `name` and counts it (its time, and its
    /// failure) for metrics.
    async fn counted<T>(
        &self,
        name: &str,
        call: impl std::future::Future<Output = Result<T, PluginError>>,
    ) -> Result<T, PluginError> {
        let started = std::time::Instant::now();
        let result = call.await;
        self.inner.stats.count(name, started.elapsed(), &result);
        result
    }

    /// `forge.info` of the forge adapter `name`.
    pub async fn forge_info(&self, vault: &Vault, name: &str) -> Result<ForgeInfo, PluginError> {
        self.counted(name, self.forge_info_once(vault, name)).await
    }

    /// `migration.info` of the migrator `name`.
    pub async fn migrator_info(
        &self,
        vault: &Vault,
        name: &str,
    ) -> Result<MigratorInfo, PluginError> {
        self.counted(name, self.migrator_info_once(vault, name))
            .await
    }

    /// `forge.whoami` of the forge adapter `name`: who `token` (a secret
    /// reference) belongs to at `base_url`. For this call only, the plugin is
    /// granted the token reference and the base URL's origin.
    pub async fn forge_whoami(
        &self,
        vault: &Vault,
        name: &str,
        base_url: &BaseUrl,
        token: &SecretRef,
    ) -> Result<Account, PluginError> {
        self.forge_whoami_with(vault, name, base_url, TokenRef::Stored(token.clone()))
            .await
    }

    /// `forge.whoami` with a stored token, for `caller` (a resolver
    /// dispatching an agent type): the egress rows name it and its reason.
    pub async fn forge_whoami_for(
        &self,
        vault: &Vault,
        name: &str,
        base_url: &BaseUrl,
        token: &SecretRef,
        caller: &Access,
    ) -> Result<Account, PluginError> {
        let extra = ForgeCallExtra {
            journal: None,
            on_behalf: Some(caller.clone()),
        };
        let token = TokenRef::Stored(token.clone());
        self.whoami(vault, name, base_url, token, extra).await
    }

    async fn whoami(
        &self,
        vault: &Vault,
        name: &str,
        base_url: &BaseUrl,
        token: TokenRef,
        extra: ForgeCallExtra,
    ) -> Result<Account, PluginError> {
        let op = ForgeOp::Whoami;
        match self
            .forge_op(vault, name, base_url, None, Some(token), op, extra)
            .await?
        {
            ForgeReply::Account(a) => Ok(a),
            _ => Err(unexpected(name)),
        }
    }

    /// `forge.whoami` with a stored or a bound token.
    pub async fn forge_whoami_with(
        &self,
        vault: &Vault,
        name: &str,
        base_url: &BaseUrl,
        token: TokenRef,
    ) -> Result<Account, PluginError> {
        self.whoami(vault, name, base_url, token, ForgeCallExtra::default())
            .await
    }

    /// `forge.authorize-url`: where to send the operator's browser.
    #[allow(clippy::too_many_arguments)] // each is one of the export's own
    pub async fn forge_authorize_url(
        &self,
        vault: &Vault,
        name: &str,
        base_url: &BaseUrl,
        app: &OAuthApp,
        state: &str,
        code_challenge: &str,
        scopes: &[String],
    ) -> Result<String, PluginError> {
        let op = ForgeOp::AuthorizeUrl {
            state: state.to_owned(),
            code_challenge: code_challenge.to_owned(),
            scopes: scopes.to_vec(),
        };
        match self.app_op(vault, name, base_url, app, op).await? {
            ForgeReply::Url(u) => Ok(u),
            _ => Err(unexpected(name)),
        }
    }

    /// An export that takes the OAuth app and no token.
    async fn app_op(
        &self,
        vault: &Vault,
        name: &str,
        base_url: &BaseUrl,
        app: &OAuthApp,
        op: ForgeOp,
    ) -> Result<ForgeReply, PluginError> {
        let extra = ForgeCallExtra::default();
        self.forge_op(vault, name, base_url, Some(app), None, op, extra)
            .await
    }

    /// `forge.exchange-code`: the authorization code (and PKCE verifier)
    /// for tokens.
    pub async fn forge_exchange_code(
        &self,
        vault: &Vault,
        name: &str,
        base_url: &BaseUrl,
        app: &OAuthApp,
        code: &str,
        code_verifier: &str,
    ) -> Result<TokenSet, PluginError> {
        let op = ForgeOp::ExchangeCode {
            code: code.to_owned(),
            code_verifier: code_verifier.to_owned(),
        };
        match self.app_op(vault, name, base_url, app, op).await? {
            ForgeReply::Tokens(t) => Ok(t),
            _ => Err(unexpected(name)),
        }
    }

    /// `forge.refresh`: new tokens for the refresh token `refresh`; the
    /// forge's answer is kept or a kept one replayed, as `journal` says.
    pub async fn forge_refresh(
        &self,
        vault: &Vault,
        name: &str,
        base_url: &BaseUrl,
        app: &OAuthApp,
        refresh: TokenRef,
        journal: Journal,
    ) -> Result<TokenSet, PluginError> {
        let extra = ForgeCallExtra {
            journal: Some(journal),
            on_behalf: None,
        };
        match self
            .forge_op(
                vault,
                name,
                base_url,
                Some(app),
                Some(refresh),
                ForgeOp::Refresh,
                extra,
            )
            .await?
        {
            ForgeReply::Tokens(t) => Ok(t),
            _ => Err(unexpected(name)),
        }
    }

    /// `forge.list-repositories`: one page.
    pub async fn forge_list_repositories(
        &self,
        vault: &Vault,
        name: &str,
        base_url: &BaseUrl,
        token: TokenRef,
        cursor: Option<&str>,
    ) -> Result<RepositoryPage, PluginError> {
        let op = ForgeOp::ListRepositories {
            cursor: cursor.map(str::to_owned),
        };
        match self
            .forge_op(
                vault,
                name,
                base_url,
                None,
                Some(token),
                op,
                ForgeCallExtra::default(),
            )
            .await?
        {
            ForgeReply::Page(p) => Ok(p),
            _ => Err(unexpected(name)),
        }
    }

    /// `forge.revoke`: revokes `token` at the forge (`unsupported` where
    /// the forge cannot).
    pub async fn forge_revoke(
        &self,
        vault: &Vault,
        name: &str,
        base_url: &BaseUrl,
        app: &OAuthApp,
        token: TokenRef,
    ) -> Result<(), PluginError> {
        match self
            .forge_op(
                vault,
                name,
                base_url,
                Some(app),
                Some(token),
                ForgeOp::Revoke,
                ForgeCallExtra::default(),
            )
            .await?
        {
            ForgeReply::Done => Ok(()),
            _ => Err(unexpected(name)),
        }
    }
}

fn unexpected(name: &str) -> PluginError {
    PluginError::Internal(format!(
        "plugin {name:?}: a forge call answered with the wrong shape"
    ))
}

fn token_set(t: bindings::forge::exports::keyward::plugin::forge::TokenSet) -> TokenSet {
    TokenSet {
        access_token: crate::crypto::SecretBytes::new(t.access_token.into_bytes()),
        refresh_token: t
            .refresh_token
            .map(|r| crate::crypto::SecretBytes::new(r.into_bytes())),
        expires_at: t.expires_at,
        scopes: t.scopes,
    }
}

fn repository_page(
    p: bindings::forge::exports::keyward::plugin::forge::RepositoryPage,
) -> RepositoryPage {
    RepositoryPage {
        repositories: p
            .repositories
            .into_iter()
            .map(|r| Repository {
                id: r.id,
                full_name: r.full_name,
                private: r.private,
                archived: r.archived,
                default_branch: r.default_branch,
                web_url: r.web_url,
                clone_url: r.clone_url,
            })
            .collect(),
        next: p.next,
        total: p.total,
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
