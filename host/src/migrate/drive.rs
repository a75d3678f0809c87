//! One run, phase by phase: discover → plan → write (read, then write,
//! per batch) → retire → report. Each phase is a function of its own
//! (`discover`, `plan`, `read`, `write`, `retire`, `report`); this file
//! keeps their order and what passes between them. The ledger is read once,
//! before planning.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::lease::Lease;
use super::{
    discover, fault, plan, read, report, retire, write, Candidate, ItemReport, MigrateError,
    Progress, Report, Request, RunAccess, Status, RENAME_PREFIX,
};
use crate::crypto::SecretBytes;
use crate::runtime::Runtime;
use crate::store::migrate::{self as ledger, LedgerRow, State};
use crate::vault::Vault;

/// What every phase of one run needs.
pub(super) struct Phase<'a> {
    pub vault: &'a Vault,
    pub runtime: &'a Runtime,
    pub request: &'a Request,
    pub progress: &'a dyn Progress,
    pub access: &'a RunAccess,
    pub lease: Option<&'a Lease>,
    /// The migrator.
    pub name: &'a str,
    /// The ledger's key for this source.
    pub source_key: String,
    /// Since the run began, for the debug log's timings.
    pub clock: Instant,
}

pub(super) async fn drive(p: &Phase<'_>, report: &mut Report) -> Result<(), MigrateError> {
    let found = discover::discover(p).await?;
    let known: HashMap<String, LedgerRow> =
        ledger::ledger(p.vault.db().reader(), p.name, &p.source_key)
            .await?
            .into_iter()
            .map(|r| (r.item_id.clone(), r))
            .collect();
    let mut candidates = plan::plan(found.items, &known, &p.access.allow);
    let mut blocked = blocked_units(&candidates, found.problems, report);
    if p.request.dry_run {
        report::dry_run(report, &candidates, p.request.again);
        return Ok(());
    }
    tracing::debug!(plugin = %p.name, ms = p.clock.elapsed().as_millis() as u64, "migration: planned");
    let wrote = write_all(p, &mut candidates, &mut blocked).await?;
    let units = units_to_retire(&known, &candidates, &wrote, &blocked);
    let retired = retire::retire(p, units).await?;
    report::finish(report, &candidates, &wrote, &retired);
    Ok(())
}

/// Units not to retire this run: those with a refused item, and those a
/// problem names — a problem whose id is the unit or starts with `<unit>#`
/// (a bad line of a file that retires whole). Each problem goes into the
/// report.
fn blocked_units(
    candidates: &[Candidate],
    problems: Vec<(String, String)>,
    report: &mut Report,
) -> BTreeSet<String> {
    let mut blocked: BTreeSet<String> = candidates
        .iter()
        .filter(|c| c.failed.is_some())
        .map(|c| c.item.unit.clone())
        .collect();
    let units_found: BTreeSet<&str> = candidates.iter().map(|c| c.item.unit.as_str()).collect();
    for (id, reason) in problems {
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
    blocked
}

/// Reads and writes, batch by batch, every candidate that is to be written
/// (new, or retired before and run `again`). Returns the positions written;
/// a failed item is marked on its candidate and blocks its unit.
async fn write_all(
    p: &Phase<'_>,
    candidates: &mut [Candidate],
    blocked: &mut BTreeSet<String>,
) -> Result<BTreeSet<usize>, MigrateError> {
    let to_write: Vec<usize> = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            c.failed.is_none()
                && match c.state {
                    None => true,
                    Some(State::Written) => false,
                    Some(State::Retired) => p.request.again,
                }
        })
        .map(|(i, _)| i)
        .collect();
    let mut wrote = BTreeSet::new();
    let (mut read_time, mut write_time) = (Duration::ZERO, Duration::ZERO);
    p.progress.phase("write", to_write.len());
    for chunk in to_write.chunks(p.request.batch.max(1)) {
        if let Some(lease) = p.lease {
            lease.renew(p.vault).await?;
        }
        fault::checkpoint("before read");
        let t = Instant::now();
        let values = read::read_values(p, candidates, chunk).await;
        read_time += t.elapsed();
        let mut good: Vec<(usize, SecretBytes)> = Vec::new();
        for (&i, value) in chunk.iter().zip(values) {
            match value {
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
        let t = Instant::now();
        let results = write::batch(p.vault, p.name, &p.source_key, p.access, &batch).await?;
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
        p.progress.advance(chunk.len());
    }
    tracing::debug!(
        plugin = %p.name,
        ms = p.clock.elapsed().as_millis() as u64,
        read_ms = read_time.as_millis() as u64,
        write_ms = write_time.as_millis() as u64,
        "migration: written"
    );
    Ok(wrote)
}

/// Every unit whose items are all written, this run or before — including
/// units of a run that stopped after its retire but before marking it (no
/// longer discovered, still `written` in the ledger) — as `(unit,
/// host_made)`. Worked out from the ledger as read before planning plus
/// what this run wrote: while the run holds the lease nobody else changes
/// this plugin's rows.
fn units_to_retire(
    known: &HashMap<String, LedgerRow>,
    candidates: &[Candidate],
    wrote: &BTreeSet<usize>,
    blocked: &BTreeSet<String>,
) -> Vec<(String, bool)> {
    let mut units: BTreeMap<String, bool> = BTreeMap::new();
    // Only the host makes `rename:` ids (plan refuses them from a plugin),
    // so such a unit is the host's to retire.
    let mut add = |unit: &str, item_id: &str| {
        if !blocked.contains(unit) {
            units.insert(unit.to_owned(), item_id.starts_with(RENAME_PREFIX));
        }
    };
    for row in known.values().filter(|r| r.state == State::Written) {
        add(&row.unit, &row.item_id);
    }
    for &i in wrote {
        add(&candidates[i].item.unit, &candidates[i].item.id);
    }
    units.into_iter().collect()
}
