//! What `GET /plugins`, `keyward plugin list` and `keyward migrate list`
//! show of the loaded plugins: one typed view, so the HTTP answer (and its
//! OpenAPI schema), the CLI's text and its JSON cannot drift apart.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::registry::Registry;
use super::Kind;
use crate::store::migrate::RunRow;

/// The loaded plugins and the files refused, with why.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone)]
pub struct PluginList {
    /// Loaded plugins, by name.
    pub plugins: Vec<PluginView>,
    /// Plugin files refused at the last (re)load.
    pub refused: Vec<RefusedView>,
}

/// One loaded plugin.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone)]
pub struct PluginView {
    pub name: String,
    /// `forge` or `migrator`.
    pub kind: String,
    /// The WIT world it implements.
    pub world: String,
    pub version: String,
    pub description: String,
    /// sha256 of its wasm (lower-case hex).
    pub sha256: String,
    /// `built-in`, or the file it was loaded from.
    pub source: String,
    pub grants: GrantsView,
    pub limits: LimitsView,
    /// A migrator's last finished run on this store; `null` if none (or
    /// not looked up: `plugin list` without a store).
    pub last_run: Option<LastRunView>,
}

/// What the manifest grants.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone)]
pub struct GrantsView {
    /// Secrets it may reveal (read in plain text).
    pub reveal: Vec<String>,
    /// Secrets it may use in outbound requests without seeing them.
    #[serde(rename = "use")]
    pub uses: Vec<String>,
    /// Origins it may call.
    pub origins: Vec<String>,
}

/// Its limits per call.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone)]
pub struct LimitsView {
    pub memory_bytes: u64,
    pub wall_time_ms: u64,
    pub response_bytes: u64,
    pub outbound_calls: u64,
    pub log_bytes: u64,
    pub refusals: u64,
}

/// A migrator's last finished run.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone)]
pub struct LastRunView {
    /// Unix ms.
    pub finished_at: i64,
    pub migrated: i64,
    pub skipped: i64,
}

/// A plugin file that was refused.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone)]
pub struct RefusedView {
    /// The file (or `built-in NAME`) at fault.
    pub file: String,
    /// What is wrong, for an operator.
    pub problem: String,
}

impl PluginList {
    /// The view of `registry`, with each migrator's last run from `runs`.
    pub fn of(registry: &Registry, runs: &[RunRow]) -> PluginList {
        let plugins = registry
            .plugins
            .values()
            .map(|p| {
                let m = &p.manifest;
                let l = &m.limits;
                PluginView {
                    name: m.name.clone(),
                    kind: m.kind.as_str().to_owned(),
                    world: m.kind.world().to_owned(),
                    version: m.version.clone(),
                    description: m.description.clone(),
                    sha256: p.sha256.clone(),
                    source: p.source.to_string(),
                    grants: GrantsView {
                        reveal: m.grants.secrets.iter().map(ToString::to_string).collect(),
                        uses: m.grants.uses.iter().map(ToString::to_string).collect(),
                        origins: m.grants.origins.iter().map(ToString::to_string).collect(),
                    },
                    limits: LimitsView {
                        memory_bytes: l.memory_bytes,
                        wall_time_ms: u64::try_from(l.wall_time.as_millis()).unwrap_or(u64::MAX),
                        response_bytes: l.response_bytes,
                        outbound_calls: u64::from(l.outbound_calls),
                        log_bytes: l.log_bytes,
                        refusals: u64::from(l.refusals),
                    },
                    last_run: runs
                        .iter()
                        .find(|r| r.plugin == m.name)
                        .map(|r| LastRunView {
                            finished_at: r.finished_at,
                            migrated: r.migrated,
                            skipped: r.skipped,
                        }),
                }
            })
            .collect();
        let refused = registry
            .refused
            .iter()
            .map(|e| RefusedView {
                file: e.file.clone(),
                problem: e.problem.clone(),
            })
            .collect();
        PluginList { plugins, refused }
    }

    /// The migrators alone (`migrate list`).
    pub fn migrators(&self) -> impl Iterator<Item = &PluginView> {
        self.plugins
            .iter()
            .filter(|p| p.kind == Kind::Migrator.as_str())
    }
}
