//! Calls into the `migration` interface of a migrator plugin. The driver
//! in `crate::migrate` decides what to call when; this file only makes the
//! calls, each in a fresh store, with the run's source folder preopened
//! (for that call's store only) and the run's grants.

use std::path::PathBuf;
use std::sync::Arc;

use super::bindings::migrator::exports::keyward::plugin::migration as wit;
use super::bindings::migrator::MigratorPre;
use super::call::{self, CallState};
use super::grants::{BaseUrl, CallGrants};
use super::{Kind, Loaded, PluginError, Pre, Runtime};
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

enum Op {
    Discover,
    Read(Vec<String>),
    Retire(Vec<String>),
    PlanRenames(Vec<String>),
}

enum Reply {
    Discovered(wit::Discovery),
    Values(Vec<Result<Vec<u8>, String>>),
    Retired(Vec<Result<(), String>>),
    Renames(Vec<(String, String)>),
}

impl Runtime {
    fn migrator_pre(
        &self,
        name: &str,
    ) -> Result<(Arc<Loaded>, MigratorPre<CallState>), PluginError> {
        let plugin = self.get(name)?;
        match &plugin.pre {
            Pre::Migrator(pre) => {
                let pre = pre.clone();
                Ok((plugin, pre))
            }
            Pre::Forge(_) => Err(PluginError::WrongKind {
                name: name.to_owned(),
                actual: plugin.manifest.kind.as_str(),
                wanted: Kind::Migrator.as_str(),
            }),
        }
    }

    /// The loaded migrator `name` (its manifest and sha256), or why not.
    pub fn migrator(&self, name: &str) -> Result<Arc<Loaded>, PluginError> {
        self.migrator_pre(name).map(|(plugin, _)| plugin)
    }

    async fn migration_op_once(
        &self,
        vault: &Vault,
        name: &str,
        run: &MigrationSource,
        op: Op,
    ) -> Result<Reply, PluginError> {
        let (plugin, pre) = self.migrator_pre(name)?;
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
        let (mut store, stdio, deadline) =
            call::new_store_sourced(pre.engine(), ctx, &plugin.wasi, run.dir.as_deref())
                .map_err(|e| PluginError::Invalid(format!("{e:#}")))?;
        let config = run.config();
        let outcome = {
            let work = async {
                let instance = pre.instantiate_async(&mut store).await?;
                let m = instance.keyward_plugin_migration();
                wasmtime::Result::Ok(match op {
                    Op::Discover => m
                        .call_discover(&mut store, &config)
                        .await?
                        .map(Reply::Discovered),
                    Op::Read(ids) => {
                        Ok(Reply::Values(m.call_read(&mut store, &config, &ids).await?))
                    }
                    Op::Retire(units) => Ok(Reply::Retired(
                        m.call_retire(&mut store, &config, &units).await?,
                    )),
                    Op::PlanRenames(existing) => m
                        .call_plan_renames(&mut store, &config, &existing)
                        .await?
                        .map(Reply::Renames),
                })
            };
            call::bounded(deadline, work).await
        };
        call::finish(store, stdio, outcome, &plugin.wasi)
    }

    async fn migration_op(
        &self,
        vault: &Vault,
        name: &str,
        run: &MigrationSource,
        op: Op,
    ) -> Result<Reply, PluginError> {
        self.counted(name, self.migration_op_once(vault, name, run, op))
            .await
    }

    /// `migration.discover`.
    pub async fn migration_discover(
        &self,
        vault: &Vault,
        name: &str,
        run: &MigrationSource,
    ) -> Result<Discovered, PluginError> {
        match self.migration_op(vault, name, run, Op::Discover).await? {
            Reply::Discovered(d) => Ok(Discovered {
                items: d.items.into_iter().map(item).collect(),
                problems: d.problems.into_iter().map(|p| (p.id, p.reason)).collect(),
            }),
            _ => Err(unexpected(name)),
        }
    }

    /// `migration.read`: one answer per id, in order (checked).
    pub async fn migration_read(
        &self,
        vault: &Vault,
        name: &str,
        run: &MigrationSource,
        ids: &[String],
    ) -> Result<Vec<Result<SecretBytes, String>>, PluginError> {
        match self
            .migration_op(vault, name, run, Op::Read(ids.to_vec()))
            .await?
        {
            Reply::Values(values) if values.len() == ids.len() => Ok(values
                .into_iter()
                .map(|v| v.map(SecretBytes::new))
                .collect()),
            Reply::Values(values) => Err(miscounted(name, "read", ids.len(), values.len())),
            _ => Err(unexpected(name)),
        }
    }

    /// `migration.retire`: one answer per unit, in order (checked).
    pub async fn migration_retire(
        &self,
        vault: &Vault,
        name: &str,
        run: &MigrationSource,
        units: &[String],
    ) -> Result<Vec<Result<(), String>>, PluginError> {
        match self
            .migration_op(vault, name, run, Op::Retire(units.to_vec()))
            .await?
        {
            Reply::Retired(r) if r.len() == units.len() => Ok(r),
            Reply::Retired(r) => Err(miscounted(name, "retire", units.len(), r.len())),
            _ => Err(unexpected(name)),
        }
    }

    /// `migration.plan-renames` over `existing` references.
    pub async fn migration_plan_renames(
        &self,
        vault: &Vault,
        name: &str,
        run: &MigrationSource,
        existing: Vec<String>,
    ) -> Result<Vec<(String, String)>, PluginError> {
        match self
            .migration_op(vault, name, run, Op::PlanRenames(existing))
            .await?
        {
            Reply::Renames(r) => Ok(r),
            _ => Err(unexpected(name)),
        }
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

fn unexpected(name: &str) -> PluginError {
    PluginError::Internal(format!(
        "plugin {name:?}: a migration call answered with the wrong shape"
    ))
}

fn miscounted(name: &str, call: &str, asked: usize, answered: usize) -> PluginError {
    PluginError::Crashed {
        plugin: name.to_owned(),
        reason: format!("{call} answered {answered} results for {asked} entries"),
    }
}
