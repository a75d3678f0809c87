//! Calls into the `migration` interface of a migrator plugin. The driver
//! in `crate::migrate` decides what to call when; this file only makes the
//! calls, each in a fresh store, with the run's source folder preopened
//! (for that call's store only) and the run's grants.

use std::path::PathBuf;
use std::sync::Arc;

use super::bindings::migrator::exports::keyward::plugin::migration as wit;
use futures_util::FutureExt;
use wasmtime::Store;

use super::bindings::migrator::{Migrator, MigratorPre};
use super::bindings::GuestError;
use super::call::{self, CallState};
use super::export::Export;
use super::grants::{BaseUrl, CallGrants};
use super::{Loaded, PluginError, ReturnedError, Runtime};
use crate::crypto::SecretBytes;
use crate::names::SecretRef;
use crate::vault::Vault;

/// What one migration run gives the plugin, on every call.
#[derive(Clone, Debug, Default)]
pub struct MigrationSource {
    /// A folder, preopened at `/source` for each call of the run.
    pub dir: Option<PathBuf>,
    /// A URL (`--source URL`): its origin is granted for the run.
    pub url: Option<BaseUrl>,
    /// `--option key=value`, in order.
    pub options: Vec<(String, String)>,
    /// Secret references granted for the run (the values of `*_ref`
    /// options): usable in `${SECRET:…}` at egress only (use grants).
    pub secrets: Vec<SecretRef>,
    /// Who started the run (`cli:<user>`, `host:boot-migration`): the
    /// plugin's reads are logged as `plugin:<name> via <this>`. Not shown
    /// to the plugin.
    pub started_by: Option<String>,
}

impl MigrationSource {
    fn config(&self) -> wit::RunConfig {
        let source = if self.dir.is_some() {
            Some(call::SOURCE_GUEST_PATH.to_owned())
        } else {
            self.url.as_ref().map(|u| u.as_str().to_owned())
        };
        wit::RunConfig {
            source,
            options: self.options.clone(),
        }
    }
}

/// How a migrated value is linked, besides being stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Binding {
    /// Only a secret.
    None,
    /// The token of an agent type (or of the instance with that id, if an
    /// override row exists).
    AgentTypeToken(String),
    /// An instance's token override.
    InstanceToken {
        /// The agent type.
        agent_type: String,
        /// The instance id.
        instance: String,
    },
    /// A Keyward API token with the legacy value's hash.
    ApiKey {
        /// The token's name.
        name: String,
        /// Its role.
        role: String,
    },
}

/// One legacy item, as the plugin found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegacyItem {
    /// The plugin's id.
    pub id: String,
    /// Where it goes.
    pub target: String,
    /// For people.
    pub description: String,
    /// What to link it to.
    pub binding: Binding,
    /// Retired together with the other items of its unit.
    pub unit: String,
}

/// What discovery answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Discovered {
    /// Items to migrate.
    pub items: Vec<LegacyItem>,
    /// `(id, reason)` of entries that cannot be migrated.
    pub problems: Vec<(String, String)>,
}

/// A migrator's self-description (from `migration.info`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigratorInfo {
    /// Short name.
    pub name: String,
    /// What it imports, for people.
    pub description: String,
}

impl Runtime {
    /// The loaded migrator `name` (its manifest and sha256), or why not.
    pub fn migrator(&self, name: &str) -> Result<Arc<Loaded>, PluginError> {
        self.loaded::<MigratorPre<CallState>>(name)
            .map(|(plugin, _)| plugin)
    }

    /// `migration.info` of the migrator `name`.
    pub async fn migrator_info(
        &self,
        vault: &Vault,
        name: &str,
    ) -> Result<MigratorInfo, PluginError> {
        let (plugin, pre) = self.loaded::<MigratorPre<CallState>>(name)?;
        let ctx = self.context(&plugin, vault, CallGrants::default());
        let info = self
            .call_export(&plugin, &pre, ctx, None, |store, m: Migrator| {
                async move {
                    let info = m.keyward_plugin_migration().call_info(store).await?;
                    Ok(Ok::<_, GuestError>(info))
                }
                .boxed()
            })
            .await?;
        Ok(MigratorInfo {
            name: info.name,
            description: info.description,
        })
    }

    /// Runs one `migration` export for `run`: with the run's grants (its
    /// URL's origin, the use of its secrets), read as the plugin via
    /// whoever started the run, and the run's folder mounted.
    async fn migration_call<T: Send, E: Into<ReturnedError> + Send>(
        &self,
        vault: &Vault,
        name: &str,
        run: &MigrationSource,
        export: impl for<'s> FnOnce(&'s mut Store<CallState>, Migrator, wit::RunConfig) -> Export<'s, T, E>
            + Send,
    ) -> Result<T, PluginError> {
        let (plugin, pre) = self.loaded::<MigratorPre<CallState>>(name)?;
        let mut grants = CallGrants::manifest(plugin.grants.clone());
        if let Some(url) = &run.url {
            grants = grants.with_origin(url.origin().clone());
        }
        for secret in &run.secrets {
            grants = grants.with_use(secret);
        }
        let mut ctx = self.context(&plugin, vault, grants);
        if let Some(by) = &run.started_by {
            ctx.accessor = Arc::from(crate::migrate::via_accessor(&plugin.manifest.name, by));
        }
        let config = run.config();
        self.call_export(&plugin, &pre, ctx, run.dir.as_deref(), move |store, m| {
            export(store, m, config)
        })
        .await
    }

    /// `migration.discover`.
    pub async fn migration_discover(
        &self,
        vault: &Vault,
        name: &str,
        run: &MigrationSource,
    ) -> Result<Discovered, PluginError> {
        let d = self
            .migration_call(vault, name, run, |store, m, config| {
                async move {
                    let m = m.keyward_plugin_migration();
                    m.call_discover(store, &config).await
                }
                .boxed()
            })
            .await?;
        Ok(Discovered {
            items: d.items.into_iter().map(item).collect(),
            problems: d.problems.into_iter().map(|p| (p.id, p.reason)).collect(),
        })
    }

    /// `migration.read`: one answer per id, in order (checked).
    pub async fn migration_read(
        &self,
        vault: &Vault,
        name: &str,
        run: &MigrationSource,
        ids: &[String],
    ) -> Result<Vec<Result<SecretBytes, String>>, PluginError> {
        let asked = ids.to_vec();
        let values = self
            .migration_call(vault, name, run, |store, m, config| {
                async move {
                    let m = m.keyward_plugin_migration();
                    Ok(Ok::<_, GuestError>(
                        m.call_read(store, &config, &asked).await?,
                    ))
                }
                .boxed()
            })
            .await?;
        if values.len() != ids.len() {
            return Err(miscounted(name, "read", ids.len(), values.len()));
        }
        Ok(values
            .into_iter()
            .map(|v| v.map(SecretBytes::new))
            .collect())
    }

    /// `migration.retire`: one answer per unit, in order (checked).
    pub async fn migration_retire(
        &self,
        vault: &Vault,
        name: &str,
        run: &MigrationSource,
        units: &[String],
    ) -> Result<Vec<Result<(), String>>, PluginError> {
        let asked = units.to_vec();
        let retired = self
            .migration_call(vault, name, run, |store, m, config| {
                async move {
                    let m = m.keyward_plugin_migration();
                    Ok(Ok::<_, GuestError>(
                        m.call_retire(store, &config, &asked).await?,
                    ))
                }
                .boxed()
            })
            .await?;
        if retired.len() != units.len() {
            return Err(miscounted(name, "retire", units.len(), retired.len()));
        }
        Ok(retired)
    }

    /// `migration.plan-renames` over `existing` references.
    pub async fn migration_plan_renames(
        &self,
        vault: &Vault,
        name: &str,
        run: &MigrationSource,
        existing: Vec<String>,
    ) -> Result<Vec<(String, String)>, PluginError> {
        self.migration_call(vault, name, run, |store, m, config| {
            async move {
                let m = m.keyward_plugin_migration();
                m.call_plan_renames(store, &config, &existing).await
            }
            .boxed()
        })
        .await
    }
}

fn item(i: wit::Item) -> LegacyItem {
    LegacyItem {
        id: i.id,
        target: i.target,
        description: i.description,
        binding: match i.binding {
            wit::Binding::None => Binding::None,
            wit::Binding::AgentTypeToken(name) => Binding::AgentTypeToken(name),
            wit::Binding::InstanceToken(b) => Binding::InstanceToken {
                agent_type: b.agent_type,
                instance: b.instance,
            },
            wit::Binding::ApiKey(k) => Binding::ApiKey {
                name: k.name,
                role: k.role,
            },
        },
        unit: i.unit,
    }
}

fn miscounted(name: &str, call: &str, asked: usize, answered: usize) -> PluginError {
    PluginError::Crashed {
        plugin: name.to_owned(),
        reason: format!("{call} answered {answered} results for {asked} entries"),
    }
}
