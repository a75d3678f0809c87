//! Phase 4, retire: every unit whose items are all written (this run or
//! before) is retired — by the plugin (rename to `.bak`, delete a key), or
//! by the host for an in-store move (the old secret deleted) — and then
//! marked `retired` in the ledger.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::drive::Phase;
use super::{fault, MigrateError, RENAME_PREFIX};
use crate::audit::Access;
use crate::names::{Scope, SecretRef};
use crate::store::migrate as ledger;
use crate::store::now_ms;
use crate::vault::{Vault, VaultError};

/// What retiring did: the units retired, and those that failed with why.
#[derive(Default)]
pub(super) struct Retired {
    pub units: BTreeSet<String>,
    pub failed: BTreeMap<String, String>,
}

/// Retires `units` (`(unit, host_made)`) in batches.
pub(super) async fn retire(
    p: &Phase<'_>,
    units: Vec<(String, bool)>,
) -> Result<Retired, MigrateError> {
    let mut out = Retired::default();
    let (mut retire_time, mut mark_time) = (Duration::ZERO, Duration::ZERO);
    // The modes and owners retiring must keep (the sandbox cannot).
    #[cfg(unix)]
    let kept = match &p.request.source.dir {
        Some(dir) if !units.is_empty() => Some(super::keep::Snapshot::take(dir)),
        _ => None,
    };
    p.progress.phase("retire", units.len());
    for chunk in units.chunks(p.request.batch.max(1)) {
        if let Some(lease) = p.lease {
            lease.renew(p.vault).await?;
        }
        let (plugin_units, host_units): (Vec<_>, Vec<_>) = chunk.iter().partition(|(_, r)| !r);
        let plugin_units: Vec<String> = plugin_units.into_iter().map(|(u, _)| u.clone()).collect();
        fault::checkpoint("before retire");
        let t = std::time::Instant::now();
        let mut results: Vec<(String, Result<(), String>)> = Vec::new();
        if !plugin_units.is_empty() {
            match p
                .runtime
                .migration_retire(p.vault, p.name, &p.request.source, &plugin_units)
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
            results.push((
                unit.clone(),
                retire_rename(p.vault, old, &p.access.operator).await,
            ));
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
                    out.failed.insert(unit, reason);
                }
            }
        }
        let marked: Vec<&str> = done.iter().map(String::as_str).collect();
        let mut conn = p.vault.db().writer().await?;
        ledger::retired_many(
            &mut conn,
            p.vault.db().backend,
            p.name,
            &p.source_key,
            &marked,
            now_ms(),
        )
        .await?;
        drop(conn);
        out.units.extend(done);
        mark_time += t.elapsed();
        fault::checkpoint("retire marked");
        p.progress.advance(chunk.len());
    }
    tracing::debug!(
        plugin = %p.name,
        ms = p.clock.elapsed().as_millis() as u64,
        retire_ms = retire_time.as_millis() as u64,
        mark_ms = mark_time.as_millis() as u64,
        "migration: retired"
    );
    Ok(out)
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
