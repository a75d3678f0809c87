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

pub mod allow;
pub mod boot;
pub mod fault;
#[cfg(unix)]
mod keep;
mod lease;
mod plan;
mod write;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use sha2::{Digest, Sha256};

use self::allow::Allowance;
use self::lease::{Lease, Taken};
use crate::audit::{Access, Action};
use crate::crypto::SecretBytes;
use crate::names::{Scope, SecretRef};
use crate::runtime::{Binding, LegacyItem, MigrationSource, PluginError, Runtime};
use crate::store::migrate::{self as ledger, RunRow, State};
use crate::store::now_ms;
use crate::vault::{Vault, VaultError, MAX_VALUE_LEN};

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
    let pool = &vault.db().pool;
    if !request.again && !request.dry_run {
        if let Some(done) = ledger::finished(pool, name, &plugin.sha256, &digest).await? {
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
            Taken::Mine(lease) => Some(lease),
            Taken::OtherFinished => {
                report.already = ledger::finished(pool, name, &plugin.sha256, &digest).await?;
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
    let outcome = drive(
        vault,
        runtime,
        request,
        progress,
        &run_access,
        lease.as_ref(),
        &mut report,
    )
    .await;
    progress.done();
    if let Some(lease) = &lease {
        if outcome.is_ok() && report.ok() {
            let (migrated, skipped, _) = report.counts();
            ledger::record_run(
                pool,
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

async fn drive(
    vault: &Vault,
    runtime: &Runtime,
    request: &Request,
    progress: &dyn Progress,
    run_access: &RunAccess,
    lease: Option<&Lease>,
    report: &mut Report,
) -> Result<(), MigrateError> {
    let access = &run_access.operator;
    let name = request.plugin.as_str();
    let run = &request.source;
    let clock = std::time::Instant::now();
    let found = runtime.migration_discover(vault, name, run).await?;
    tracing::debug!(plugin = %name, items = found.items.len(), ms = clock.elapsed().as_millis() as u64, "migration: discovered");
    let mut items: Vec<(LegacyItem, bool)> = found.items.into_iter().map(|i| (i, false)).collect();
    let mut renames: BTreeMap<String, Result<SecretRef, String>> = BTreeMap::new();
    if run.dir.is_none() && run.url.is_none() {
        // In-store moves: offered the global scope's references only.
        let global = Scope::global();
        let existing: Vec<String> = vault
            .list(Some(&global))
            .await?
            .into_iter()
            .map(|m| format!("{}/{}", m.scope, m.name))
            .collect();
        if !existing.is_empty() {
            let offered: BTreeSet<String> = existing.iter().cloned().collect();
            let pairs = runtime
                .migration_plan_renames(vault, name, run, existing.clone())
                .await?;
            // One secret moved to two places would be copied, not moved.
            let mut sources: HashMap<String, usize> = HashMap::new();
            for (old, _) in &pairs {
                *sources.entry(normal_ref(old)).or_default() += 1;
            }
            let mut refused = 0;
            for (old, new) in pairs {
                // Every pair passes the run's allowance before it becomes
                // an item: what the plugin was not offered, a move onto
                // itself, a target outside the run's scopes, is refused.
                let checked = if sources.get(&normal_ref(&old)).is_some_and(|&n| n > 1) {
                    Err(format!(
                        "the plugin moves {} to more than one place",
                        clip(&old)
                    ))
                } else {
                    run_access.allow.check_rename(&offered, &old, &new)
                };
                if let Err(reason) = &checked {
                    let row = refused < MAX_REFUSAL_ROWS;
                    refused += 1;
                    refuse_rename(vault, &run_access.via, name, &old, &new, reason, row).await;
                }
                let id = format!("{RENAME_PREFIX}{old}");
                items.push((
                    LegacyItem {
                        id: id.clone(),
                        target: new,
                        description: format!("moved from {old}"),
                        binding: Binding::None,
                        unit: id.clone(),
                    },
                    true,
                ));
                renames.insert(id, checked);
            }
        }
    }
    let source_key = request.shown_source.clone().unwrap_or_default();
    let known: HashMap<String, ledger::LedgerRow> =
        ledger::ledger(&vault.db().pool, name, &source_key)
            .await?
            .into_iter()
            .map(|r| (r.item_id.clone(), r))
            .collect();
    let mut candidates = plan::plan(items, &known, &renames, &run_access.allow);

    // Units with a refused item are not retired this run, nor units a
    // problem names: a problem whose id is the unit or starts with
    // `<unit>#` (a bad line of a file that retires whole).
    let mut blocked: BTreeSet<String> = candidates
        .iter()
        .filter(|c| c.failed.is_some())
        .map(|c| c.item.unit.clone())
        .collect();
    let units_found: BTreeSet<String> = candidates.iter().map(|c| c.item.unit.clone()).collect();
    for (id, reason) in found.problems {
        let unit = id.split_once('#').map_or(id.as_str(), |(u, _)| u);
        for u in [id.as_str(), unit] {
            if units_found.contains(u) {
                blocked.insert(u.to_owned());
            }
        }
        report.items.push(ItemReport {
            id,
            target: String::new(),
            key: None,
            status: Status::Failed(reason),
        });
    }

    if request.dry_run {
        for c in &candidates {
            report.items.push(ItemReport {
                id: c.item.id.clone(),
                target: c.item.target.clone(),
                key: key_of(&c.item),
                status: match (&c.failed, c.state) {
                    (Some(reason), _) => Status::Failed(reason.clone()),
                    (None, Some(State::Written)) => Status::WouldRetire,
                    (None, Some(State::Retired)) if !request.again => {
                        Status::Skipped("already migrated".into())
                    }
                    (None, _) => Status::WouldMigrate,
                },
            });
        }
        return Ok(());
    }

    // Writes.
    let to_write: Vec<usize> = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            c.failed.is_none()
                && match c.state {
                    None => true,
                    Some(State::Written) => false,
                    Some(State::Retired) => request.again,
                }
        })
        .map(|(i, _)| i)
        .collect();
    let mut wrote: BTreeSet<usize> = BTreeSet::new();
    tracing::debug!(plugin = %name, ms = clock.elapsed().as_millis() as u64, "migration: planned");
    let (mut read_time, mut write_time) = (Duration::ZERO, Duration::ZERO);
    progress.phase("write", to_write.len());
    for chunk in to_write.chunks(request.batch.max(1)) {
        if let Some(lease) = lease {
            lease.renew(vault).await?;
        }
        fault::checkpoint("before read");
        let t = std::time::Instant::now();
        let values =
            read_values(vault, runtime, request, &run_access.via, &candidates, chunk).await;
        read_time += t.elapsed();
        let mut good = Vec::new();
        for (&i, value) in chunk.iter().zip(values) {
            match value.and_then(check_value) {
                Ok(v) => good.push((i, v)),
                Err(reason) => {
                    blocked.insert(candidates[i].item.unit.clone());
                    candidates[i].failed = Some(reason);
                }
            }
        }
        let positions: Vec<usize> = good.iter().map(|(i, _)| *i).collect();
        let batch: Vec<(&Candidate, SecretBytes)> =
            good.into_iter().map(|(i, v)| (&candidates[i], v)).collect();
        fault::checkpoint("before write");
        let t = std::time::Instant::now();
        let results = write::batch(vault, name, &source_key, run_access, &batch).await?;
        write_time += t.elapsed();
        drop(batch);
        fault::checkpoint("written");
        for (i, result) in positions.into_iter().zip(results) {
            match result {
                Ok(()) => {
                    wrote.insert(i);
                    candidates[i].state = Some(State::Written);
                }
                Err(reason) => {
                    blocked.insert(candidates[i].item.unit.clone());
                    candidates[i].failed = Some(reason);
                }
            }
        }
        progress.advance(chunk.len());
    }

    // Retires: every unit whose items are all written, this run or before
    // (including units of a run that stopped after its retire but before
    // marking it: no longer discovered, still `written` in the ledger).
    let mut units: BTreeMap<String, bool> = BTreeMap::new();
    for row in ledger::ledger(&vault.db().pool, name, &source_key).await? {
        if row.state == State::Written && !blocked.contains(&row.unit) {
            // Only the host makes `rename:` ids (plan refuses them from a
            // plugin), so such a unit is the host's to retire.
            units.insert(row.unit.clone(), row.item_id.starts_with(RENAME_PREFIX));
        }
    }
    let unit_list: Vec<(String, bool)> = units.into_iter().collect();
    let mut retired: BTreeSet<String> = BTreeSet::new();
    let mut retire_failed: BTreeMap<String, String> = BTreeMap::new();
    tracing::debug!(
        plugin = %name,
        ms = clock.elapsed().as_millis() as u64,
        read_ms = read_time.as_millis() as u64,
        write_ms = write_time.as_millis() as u64,
        "migration: written"
    );
    let (mut retire_time, mut mark_time) = (Duration::ZERO, Duration::ZERO);
    // The modes and owners retiring must keep (the sandbox cannot).
    #[cfg(unix)]
    let kept = match &run.dir {
        Some(dir) if !unit_list.is_empty() => Some(keep::Snapshot::take(dir)),
        _ => None,
    };
    progress.phase("retire", unit_list.len());
    for chunk in unit_list.chunks(request.batch.max(1)) {
        if let Some(lease) = lease {
            lease.renew(vault).await?;
        }
        let (plugin_units, host_units): (Vec<_>, Vec<_>) = chunk.iter().partition(|(_, r)| !r);
        let plugin_units: Vec<String> = plugin_units.into_iter().map(|(u, _)| u.clone()).collect();
        fault::checkpoint("before retire");
        let t = std::time::Instant::now();
        let mut results: Vec<(String, Result<(), String>)> = Vec::new();
        if !plugin_units.is_empty() {
            match runtime
                .migration_retire(vault, name, run, &plugin_units)
                .await
            {
                Ok(r) => results.extend(plugin_units.iter().cloned().zip(r)),
                Err(e) => {
                    results.extend(plugin_units.iter().map(|u| (u.clone(), Err(e.to_string()))))
                }
            }
        }
        for (unit, _) in host_units {
            let old = unit.strip_prefix(RENAME_PREFIX).unwrap_or(unit);
            results.push((unit.clone(), retire_rename(vault, old, access).await));
        }
        #[cfg(unix)]
        if let Some(kept) = &kept {
            kept.restore();
        }
        retire_time += t.elapsed();
        fault::checkpoint("retired");
        let t = std::time::Instant::now();
        let mut done = Vec::new();
        for (unit, result) in results {
            match result {
                Ok(()) => done.push(unit),
                Err(reason) => {
                    retire_failed.insert(unit, reason);
                }
            }
        }
        let units: Vec<&str> = done.iter().map(String::as_str).collect();
        let turn = crate::store::write_turn();
        let mut conn = vault.db().pool.acquire().await?;
        ledger::retired_many(
            &mut conn,
            vault.db().backend,
            name,
            &source_key,
            &units,
            now_ms(),
        )
        .await?;
        drop((conn, turn));
        retired.extend(done);
        mark_time += t.elapsed();
        fault::checkpoint("retire marked");
        progress.advance(chunk.len());
    }

    tracing::debug!(
        plugin = %name,
        ms = clock.elapsed().as_millis() as u64,
        retire_ms = retire_time.as_millis() as u64,
        mark_ms = mark_time.as_millis() as u64,
        "migration: retired"
    );
    // The report, in discovery order, then the units finished from before.
    let mut reported_units = BTreeSet::new();
    for (i, c) in candidates.iter().enumerate() {
        reported_units.insert(c.item.unit.clone());
        let status = if let Some(reason) = &c.failed {
            Status::Failed(reason.clone())
        } else if let Some(reason) = retire_failed.get(&c.item.unit) {
            Status::WrittenNotRetired(format!("written; retiring failed: {reason}"))
        } else if retired.contains(&c.item.unit) {
            if wrote.contains(&i) {
                Status::Migrated
            } else {
                Status::Retired
            }
        } else if wrote.contains(&i) {
            Status::WrittenNotRetired(
                "written; not retired: another item of its unit failed".into(),
            )
        } else {
            Status::Skipped("already migrated".into())
        };
        report.items.push(ItemReport {
            id: c.item.id.clone(),
            target: c.item.target.clone(),
            key: key_of(&c.item),
            status,
        });
    }
    for unit in retired.iter().filter(|u| !reported_units.contains(*u)) {
        report.items.push(ItemReport {
            id: unit.clone(),
            target: String::new(),
            key: None,
            status: Status::Retired,
        });
    }
    for (unit, reason) in retire_failed
        .iter()
        .filter(|(u, _)| !reported_units.contains(*u))
    {
        report.items.push(ItemReport {
            id: unit.clone(),
            target: String::new(),
            key: None,
            status: Status::WrittenNotRetired(format!("written; retiring failed: {reason}")),
        });
    }
    Ok(())
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

/// Most refused renames logged per run as access-log rows (the rest only
/// in the host's log): a plugin's list must not flood the access log.
const MAX_REFUSAL_ROWS: usize = 64;

/// Puts a refused `plan-renames` pair on record: a warning, and a `denied`
/// row for the secret it tried to move, as the plugin via the operator.
async fn refuse_rename(
    vault: &Vault,
    via: &Access,
    plugin: &str,
    old: &str,
    new: &str,
    reason: &str,
    row: bool,
) {
    let (old, new) = (clip(old), clip(new));
    tracing::warn!(%plugin, %old, %new, %reason, "migration: a rename was refused");
    if !row {
        return;
    }
    let (scope, name) = match SecretRef::parse(&old) {
        Ok(r) => (
            r.scope
                .map_or_else(|| "global".to_owned(), |s| s.as_str().to_owned()),
            r.name.as_str().to_owned(),
        ),
        Err(_) => ("migration".to_owned(), old.clone()),
    };
    let detail = format!(
        "plan-renames to {new} refused: {}",
        write::clip(reason, 200)
    );
    if let Err(e) = vault
        .record_denied(via, Action::Reveal, &scope, &name, &detail)
        .await
    {
        tracing::error!(%plugin, error = %e, "migration: the refusal could not be logged");
    }
}

/// The values of the candidates at `chunk`: the plugin's `read` for its
/// items, the store for renames. One result per position.
async fn read_values(
    vault: &Vault,
    runtime: &Runtime,
    request: &Request,
    access: &Access,
    candidates: &[Candidate],
    chunk: &[usize],
) -> Vec<Result<SecretBytes, String>> {
    let mut out: Vec<Option<Result<SecretBytes, String>>> =
        (0..chunk.len()).map(|_| None).collect();
    let mut from_plugin = Vec::new();
    for (k, &i) in chunk.iter().enumerate() {
        match &candidates[i].rename_from {
            Some(old) => {
                let ctx = crate::resolve::Context::default();
                out[k] = Some(
                    vault
                        .reveal(old, &ctx, access, Action::Reveal)
                        .await
                        .map(|(_, v)| v)
                        .map_err(|e| e.to_string()),
                );
            }
            None => from_plugin.push(k),
        }
    }
    if !from_plugin.is_empty() {
        let ids: Vec<String> = from_plugin
            .iter()
            .map(|&k| candidates[chunk[k]].item.id.clone())
            .collect();
        match runtime
            .migration_read(vault, &request.plugin, &request.source, &ids)
            .await
        {
            Ok(values) => {
                for (&k, v) in from_plugin.iter().zip(values) {
                    out[k] = Some(v);
                }
            }
            Err(e) => {
                for &k in &from_plugin {
                    out[k] = Some(Err(format!("read failed: {e}")));
                }
            }
        }
    }
    out.into_iter()
        .map(|v| v.unwrap_or_else(|| Err("not read".into())))
        .collect()
}

fn check_value(v: SecretBytes) -> Result<SecretBytes, String> {
    if v.is_empty() {
        return Err("empty value".into());
    }
    if v.len() > MAX_VALUE_LEN {
        return Err(format!(
            "a value of {} bytes is larger than the {MAX_VALUE_LEN}-byte limit",
            v.len()
        ));
    }
    Ok(v)
}

/// Retires an in-store rename: deletes the old secret (gone already is
/// done).
async fn retire_rename(vault: &Vault, old: &str, access: &Access) -> Result<(), String> {
    let reference = SecretRef::parse(old).map_err(|e| e.to_string())?;
    let scope = reference.scope.clone().unwrap_or_else(Scope::global);
    match vault.delete(&scope, &reference.name, access).await {
        Ok(()) | Err(VaultError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}
