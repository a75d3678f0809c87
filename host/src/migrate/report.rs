//! Phase 5, report: what became of each item, in discovery order, then the
//! units finished from an earlier run.

use std::collections::BTreeSet;

use super::retire::Retired;
use super::{key_of, Candidate, ItemReport, Report, Status};
use crate::store::migrate::State;

/// A dry run's report: what a real run would do with each candidate.
pub(super) fn dry_run(report: &mut Report, candidates: &[Candidate], again: bool) {
    for c in candidates {
        report.items.push(ItemReport {
            id: c.item.id.clone(),
            target: c.item.target.clone(),
            key: key_of(&c.item),
            status: match (&c.failed, c.state) {
                (Some(reason), _) => Status::Failed(reason.clone()),
                (None, Some(State::Written)) => Status::WouldRetire,
                (None, Some(State::Retired)) if !again => {
                    Status::Skipped("already migrated".into())
                }
                (None, _) => Status::WouldMigrate,
            },
        });
    }
}

/// A real run's report. `wrote` holds the positions written by this run.
pub(super) fn finish(
    report: &mut Report,
    candidates: &[Candidate],
    wrote: &BTreeSet<usize>,
    retired: &Retired,
) {
    let mut reported_units = BTreeSet::new();
    for (i, c) in candidates.iter().enumerate() {
        reported_units.insert(c.item.unit.clone());
        let status = if let Some(reason) = &c.failed {
            Status::Failed(reason.clone())
        } else if let Some(reason) = retired.failed.get(&c.item.unit) {
            Status::WrittenNotRetired(format!("written; retiring failed: {reason}"))
        } else if retired.units.contains(&c.item.unit) {
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
    for unit in retired
        .units
        .iter()
        .filter(|u| !reported_units.contains(*u))
    {
        report.items.push(ItemReport {
            id: unit.clone(),
            target: String::new(),
            key: None,
            status: Status::Retired,
        });
    }
    for (unit, reason) in retired
        .failed
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
}
