//! The migration driver: runs a migrator plugin over a legacy store and
//! enforces the order that makes a run crash-safe and idempotent.
//!
//! 1. `discover` (the plugin) finds the items; the host checks every target
//!    and the ledger, and refuses per item what cannot be migrated.
//! 2. For each batch: `read` (the plugin), then one transaction writes the
//!    new secrets, their bindings, their ledger rows (`written`) and their
//!    access-log entries.
//! 3. For each retire unit whose every item is written: `retire` (the
//!    plugin: rename to `.bak`, delete a key), then the ledger marks the
//!    unit `retired`.
//! 4. A run that ends with nothing failed is recorded (plugin, its sha256, a
//!    digest of source and options); the same run again is a no-op unless
//!    `again`.
//!
//! A crash anywhere leaves one of: nothing of an item written (found and
//! written again), written but not retired (retired on the re-run), retired
//! but not marked (the re-run finds the `written` row, calls the idempotent
//! `retire` again and marks it). One lease row per plugin keeps hosts that
//! share a database from running the same migration at once.
//!
//! `drive.rs` runs these phases in order; each has its own file:
//! `discover`, `plan`, `read`, `write`, `retire`, `report`.

pub mod allow;
pub mod boot;
mod discover;
mod drive;
pub mod fault;
#[cfg(unix)]
mod keep;
mod lease;
mod plan;
mod read;
mod report;
mod retire;
mod write;

use sha2::{Digest, Sha256};

use self::allow::Allowance;
use self::lease::{Lease, Taken};
use crate::audit::Access;
use crate::names::{Scope, SecretRef};
use crate::runtime::{Binding, LegacyItem, MigrationSource, PluginError, Runtime};
use crate::store::migrate::{self as ledger, RunRow, State};
use crate::store::now_ms;
use crate::vault::{Vault, VaultError};

/// The id prefix of an in-store rename (host-made items only).
const RENAME_PREFIX: &str = "rename:";

/// Longest item id or unit accepted from a plugin.
const MAX_ID_LEN: usize = 1024;

/// Items read and written per transaction (and per `read` call).
pub const DEFAULT_BATCH: usize = 256;

/// Errors of a migration run as a whole (an item's own failure is in the
/// [`Report`], not here). Not reachable over HTTP; the CLI exits 1 on each.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The plugin failed a call the run cannot go on without (`discover`),
    /// or is not a loaded migrator.
    #[error("{0}")]
    Plugin(#[from] PluginError),
    /// The store failed.
    #[error("{0}")]
    Vault(#[from] VaultError),
    /// A bad source or option.
    #[error("{0}")]
    Invalid(String),
    /// Another host kept the migration's lease for too long.
    #[error("another host ({holder}) is running the {plugin} migration; try again later")]
    Busy {
        /// The migrator.
        plugin: String,
        /// Who holds the lease.
        holder: String,
    },
}

impl From<sqlx::Error> for MigrateError {
    fn from(e: sqlx::Error) -> Self {
        MigrateError::Vault(VaultError::from(e))
    }
}

/// One run, as asked for.
#[derive(Clone, Debug)]
pub struct Request {
    /// The migrator plugin.
    pub plugin: String,
    /// Source folder or URL, options and granted references.
    pub source: MigrationSource,
    /// The source as the operator gave it (a host path or URL), for the
    /// run's digest and the report.
    pub shown_source: Option<String>,
    /// Print the plan, change nothing.
    pub dry_run: bool,
    /// Run even if the same run finished before.
    pub again: bool,
    /// Items per batch.
    pub batch: usize,
    /// The accessor in the access log (`cli:<user>`, `host:boot`).
    pub accessor: String,
    /// The operator allows the plugin to create operator API keys
    /// (`--allow-operator-keys`); without it, resolver keys only.
    pub allow_operator_keys: bool,
}

impl Request {
    /// A run of `plugin` with `source`, as `accessor`, with the defaults.
    pub fn new(plugin: &str, source: MigrationSource, accessor: &str) -> Request {
        Request {
            plugin: plugin.to_owned(),
            source,
            shown_source: None,
            dry_run: false,
            again: false,
            batch: DEFAULT_BATCH,
            accessor: accessor.to_owned(),
            allow_operator_keys: false,
        }
    }

    /// SHA-256 (hex) of what makes two runs the same run: source, options
    /// and granted references.
    pub fn digest(&self) -> String {
        let grants: Vec<String> = self
            .source
            .secrets
            .iter()
            .map(ToString::to_string)
            .collect();
        let mut canonical = serde_json::json!({
            "source": self.shown_source,
            "options": self.source.options,
            "grants": grants,
        });
        // Only when given, so the digests of runs recorded before the
        // opt-in existed stay what they were.
        if self.allow_operator_keys {
            canonical["operator_keys"] = serde_json::Value::Bool(true);
        }
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }
}

/// Parses `--option key=value` text. Keys: 1-64 of `A-Za-z0-9_.-`. The
/// value of a key ending in `_ref` is a secret reference, granted to the
/// plugin for the run.
pub fn parse_option(text: &str) -> Result<(String, String, Option<SecretRef>), MigrateError> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| MigrateError::Invalid(format!("option {:?}: use key=value", clip(text))))?;
    let key_ok = !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !key_ok {
        return Err(MigrateError::Invalid(format!(
            "option key {:?}: use 1-64 of A-Z a-z 0-9 _ . -",
            clip(key)
        )));
    }
    if value.len() > 4096 || value.chars().any(char::is_control) {
        return Err(MigrateError::Invalid(format!(
            "option {key}: the value must be at most 4096 printable characters"
        )));
    }
    let grant = if key.ends_with("_ref") {
        Some(
            SecretRef::parse(value)
                .map_err(|e| MigrateError::Invalid(format!("option {key}: {e}")))?,
        )
    } else {
        None
    };
    Ok((key.to_owned(), value.to_owned(), grant))
}

/// Turns `--source` text into a folder or a URL. A folder must exist.
pub fn parse_source(text: &str) -> Result<(MigrationSource, String), MigrateError> {
    let mut s = MigrationSource::default();
    if text.starts_with("http://") || text.starts_with("https://") {
        s.url = Some(
            crate::runtime::BaseUrl::parse(text)
                .map_err(|e| MigrateError::Invalid(format!("--source {text:?}: {e}")))?,
        );
        return Ok((s, text.to_owned()));
    }
    let dir = std::path::PathBuf::from(text);
    let meta = std::fs::metadata(&dir)
        .map_err(|e| MigrateError::Invalid(format!("--source {}: {e}", dir.display())))?;
    if !meta.is_dir() {
        return Err(MigrateError::Invalid(format!(
            "--source {}: not a folder (give a folder or an http(s) URL)",
            dir.display()
        )));
    }
    let shown = std::fs::canonicalize(&dir)
        .unwrap_or_else(|_| dir.clone())
        .display()
        .to_string();
    s.dir = Some(dir);
    Ok((s, shown))
}

fn clip(text: &str) -> String {
    write::clip(text, 80)
}

/// What became of one item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Dry run: would be written and retired.
    WouldMigrate,
    /// Dry run: written earlier, would be retired.
    WouldRetire,
    /// Written and retired by this run.
    Migrated,
    /// Written by this run; its unit is not retired (another item of the
    /// unit failed), so the legacy item stays in place.
    WrittenNotRetired(String),
    /// Written before (a run that stopped), retired by this run.
    Retired,
    /// Nothing to do.
    Skipped(String),
    /// Not migrated; the legacy item is untouched.
    Failed(String),
}

/// One line of the summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemReport {
    /// The plugin's id of the item.
    pub id: String,
    /// Its target.
    pub target: String,
    /// The API key it creates: `(name, role)`.
    pub key: Option<(String, String)>,
    /// What happened.
    pub status: Status,
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct Report {
    /// The migrator.
    pub plugin: String,
    /// Its sha256.
    pub sha256: String,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Set when the same run had finished already (nothing was done).
    pub already: Option<RunRow>,
    /// Every item and problem, in discovery order.
    pub items: Vec<ItemReport>,
}

impl Report {
    /// (migrated, skipped, failed); an item retired now counts as migrated.
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for i in &self.items {
            match i.status {
                Status::Migrated | Status::Retired | Status::WrittenNotRetired(_) => c.0 += 1,
                Status::Skipped(_) | Status::WouldMigrate | Status::WouldRetire => c.1 += 1,
                Status::Failed(_) => c.2 += 1,
            }
        }
        c
    }

    /// Whether every item ended well.
    pub fn ok(&self) -> bool {
        self.items
            .iter()
            .all(|i| !matches!(i.status, Status::Failed(_) | Status::WrittenNotRetired(_)))
    }
}

/// Where a run is, for a progress bar.
pub trait Progress: Send + Sync {
    /// A phase begins with `total` steps.
    fn phase(&self, _name: &str, _total: usize) {}
    /// `n` more steps are done.
    fn advance(&self, _n: usize) {}
    /// The run is over.
    fn done(&self) {}
}

/// No progress output.
pub struct Quiet;
impl Progress for Quiet {}

/// An item on its way, with what the ledger knew of it.
pub(crate) struct Candidate {
    item: LegacyItem,
    /// The ledger's state before this run (none: never written).
    state: Option<State>,
    /// Refused before anything was written.
    failed: Option<String>,
    /// Where it comes from: the plugin, or (a rename) the old reference.
    rename_from: Option<SecretRef>,
}

/// Runs one migration (see the module docs for the order it keeps).
pub async fn run(
    vault: &Vault,
    runtime: &Runtime,
    request: &Request,
    progress: &dyn Progress,
) -> Result<Report, MigrateError> {
    // The plugin's own reads name whoever started the run.
    let mut request = request.clone();
    request.source.started_by = Some(request.accessor.clone());
    let request = &request;
    let plugin = runtime.migrator(&request.plugin)?;
    let name = request.plugin.as_str();
    let digest = request.digest();
    let mut report = Report {
        plugin: name.to_owned(),
        sha256: plugin.sha256.clone(),
        dry_run: request.dry_run,
        already: None,
        items: Vec::new(),
    };
    let db = vault.db();
    if !request.again && !request.dry_run {
        if let Some(done) = ledger::finished(db.reader(), name, &plugin.sha256, &digest).await? {
            report.already = Some(done);
            return Ok(report);
        }
    }
    let access = Access::new(request.accessor.clone(), format!("migrate {name}"))
        .map_err(VaultError::from)?;
    let allow = Allowance::new(&request.source.options, request.allow_operator_keys)?;
    let lease = if request.dry_run {
        None
    } else {
        match Lease::take(vault, name).await? {
            Taken::Mine(lease) => {
                // Another host may have finished the same run between the
                // check above and this lease (it let go before we asked):
                // checked again under the lease, or it would run twice.
                if !request.again {
                    let done = ledger::finished(db.reader(), name, &plugin.sha256, &digest).await?;
                    if let Some(done) = done {
                        lease.release(vault).await;
                        report.already = Some(done);
                        return Ok(report);
                    }
                }
                Some(lease)
            }
            Taken::OtherFinished => {
                report.already =
                    ledger::finished(db.reader(), name, &plugin.sha256, &digest).await?;
                if report.already.is_some() && !request.again {
                    return Ok(report);
                }
                match Lease::take(vault, name).await? {
                    Taken::Mine(lease) => Some(lease),
                    Taken::OtherFinished => {
                        return Err(MigrateError::Busy {
                            plugin: name.to_owned(),
                            holder: "another host".into(),
                        })
                    }
                }
            }
        }
    };
    let started_at = now_ms();
    let run_access = RunAccess {
        via: Access::new(
            via_accessor(name, &request.accessor),
            format!("migrate {name}"),
        )
        .map_err(VaultError::from)?,
        operator: access,
        allow,
    };
    let phase = drive::Phase {
        vault,
        runtime,
        request,
        progress,
        access: &run_access,
        lease: lease.as_ref(),
        name,
        source_key: request.shown_source.clone().unwrap_or_default(),
        clock: std::time::Instant::now(),
    };
    let outcome = drive::drive(&phase, &mut report).await;
    progress.done();
    if let Some(lease) = &lease {
        if outcome.is_ok() && report.ok() {
            let (migrated, skipped, _) = report.counts();
            ledger::record_run(
                &mut *db.writer().await?,
                &RunRow {
                    plugin: name.to_owned(),
                    sha256: plugin.sha256.clone(),
                    options_digest: digest,
                    started_at,
                    finished_at: now_ms(),
                    migrated: migrated as i64,
                    skipped: skipped as i64,
                    host: lease.holder.clone(),
                },
            )
            .await?;
            fault::checkpoint("run recorded");
        }
        lease.release(vault).await;
    }
    outcome.map(|()| report)
}

/// Who a run acts as, and what it may do.
pub(crate) struct RunAccess {
    /// The operator (or boot entry) who started the run: writes and
    /// deletes they asked for.
    operator: Access,
    /// `plugin:<name> via <operator>`: every read the host does on the
    /// plugin's behalf (rename sources, comparisons with stored values).
    via: Access,
    /// Target scopes and operator keys.
    allow: Allowance,
}

/// `plugin:<name> via <accessor>`, clipped to the accessor limit (the
/// plugin's name first: it is the part a reader looks for).
pub(crate) fn via_accessor(plugin: &str, accessor: &str) -> String {
    write::clip(
        &format!("plugin:{plugin} via {accessor}"),
        crate::audit::entry::MAX_ACCESSOR_LEN,
    )
}

/// `NAME` and `global/NAME` as one text (other text as it is).
fn normal_ref(text: &str) -> String {
    SecretRef::parse(text)
        .map(|r| {
            let r = allow::explicit(r);
            format!(
                "{}/{}",
                r.scope.as_ref().map_or("global", Scope::as_str),
                r.name.as_str()
            )
        })
        .unwrap_or_else(|_| text.to_owned())
}

/// The API key an item creates, for the plan.
fn key_of(item: &LegacyItem) -> Option<(String, String)> {
    match &item.binding {
        Binding::ApiKey { name, role } => Some((name.clone(), role.clone())),
        _ => None,
    }
}
