//! Phase 1, discover: what the plugin found, and — for a run over the store
//! itself — the in-store moves it proposes, each checked by the run's
//! allowance before it becomes an item.

use std::collections::{BTreeSet, HashMap};

use super::drive::Phase;
use super::plan::Origin;
use super::{clip, normal_ref, MigrateError, RENAME_PREFIX};
use crate::audit::{Access, Action};
use crate::names::{Scope, SecretRef};
use crate::runtime::{Binding, LegacyItem};
use crate::vault::Vault;

/// Most refused renames logged per run as access-log rows (the rest only
/// in the host's log): a plugin's list must not flood the access log.
const MAX_REFUSAL_ROWS: usize = 64;

/// What discovery found: items with where each comes from, and the
/// problems the plugin reported (`(id, reason)`).
pub(super) struct Found {
    pub items: Vec<(LegacyItem, Origin)>,
    pub problems: Vec<(String, String)>,
}

pub(super) async fn discover(p: &Phase<'_>) -> Result<Found, MigrateError> {
    let run = &p.request.source;
    let found = p.runtime.migration_discover(p.vault, p.name, run).await?;
    tracing::debug!(plugin = %p.name, items = found.items.len(), ms = p.clock.elapsed().as_millis() as u64, "migration: discovered");
    let mut items: Vec<(LegacyItem, Origin)> = found
        .items
        .into_iter()
        .map(|i| (i, Origin::Plugin))
        .collect();
    if run.dir.is_none() && run.url.is_none() {
        items.extend(renames(p).await?);
    }
    Ok(Found {
        items,
        problems: found.problems,
    })
}

/// In-store moves: the plugin is offered the global scope's references
/// only, and every pair it returns is checked (what it was not offered, a
/// move onto itself, a target outside the run's scopes, one secret moved
/// to two places) — a refused pair still becomes an item, failed, so that
/// the report shows it.
async fn renames(p: &Phase<'_>) -> Result<Vec<(LegacyItem, Origin)>, MigrateError> {
    let existing: Vec<String> = p
        .vault
        .list(Some(&Scope::global()))
        .await?
        .into_iter()
        .map(|m| format!("{}/{}", m.scope, m.name))
        .collect();
    if existing.is_empty() {
        return Ok(Vec::new());
    }
    let offered: BTreeSet<String> = existing.iter().cloned().collect();
    let pairs = p
        .runtime
        .migration_plan_renames(p.vault, p.name, &p.request.source, existing)
        .await?;
    // One secret moved to two places would be copied, not moved.
    let mut sources: HashMap<String, usize> = HashMap::new();
    for (old, _) in &pairs {
        *sources.entry(normal_ref(old)).or_default() += 1;
    }
    let mut refused = 0;
    let mut items = Vec::with_capacity(pairs.len());
    for (old, new) in pairs {
        let checked = if sources.get(&normal_ref(&old)).is_some_and(|&n| n > 1) {
            Err(format!(
                "the plugin moves {} to more than one place",
                clip(&old)
            ))
        } else {
            p.access.allow.check_rename(&offered, &old, &new)
        };
        if let Err(reason) = &checked {
            let row = refused < MAX_REFUSAL_ROWS;
            refused += 1;
            refuse_rename(p.vault, &p.access.via, p.name, &old, &new, reason, row).await;
        }
        let id = format!("{RENAME_PREFIX}{old}");
        items.push((
            LegacyItem {
                id: id.clone(),
                target: new,
                description: format!("moved from {old}"),
                binding: Binding::None,
                unit: id,
            },
            Origin::Rename(checked),
        ));
    }
    Ok(items)
}

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
        crate::text::clip(reason, 200)
    );
    if let Err(e) = vault
        .record_denied(via, Action::Reveal, &scope, &name, &detail)
        .await
    {
        tracing::error!(%plugin, error = %e, "migration: the refusal could not be logged");
    }
}
