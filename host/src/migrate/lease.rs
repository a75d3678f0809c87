//! The lease that lets one host at a time run a plugin's migration: a
//! `migration_lock` row taken and renewed by conditional writes, expiring
//! after [`LEASE_MS`] without renewal, and taken over at once from a holder
//! on this machine whose process is gone.

use std::time::Duration;

use super::{write, MigrateError};
use crate::store::migrate as ledger;
use crate::store::now_ms;
use crate::vault::Vault;

/// How long a lease lasts without renewal: a host that died holding one
/// blocks others this long at most.
const LEASE_MS: i64 = 30_000;

/// How long to wait for another host's run of the same migration.
const WAIT_FOR_OTHER: Duration = Duration::from_secs(600);

/// This host's hold on a plugin's migration.
pub(super) struct Lease {
    plugin: String,
    pub(super) holder: String,
}

pub(super) enum Taken {
    Mine(Lease),
    /// Another host held it and let go: its run may have done the work.
    OtherFinished,
}

impl Lease {
    pub(super) async fn take(vault: &Vault, plugin: &str) -> Result<Taken, MigrateError> {
        let holder = holder_id();
        let db = vault.db();
        let deadline = std::time::Instant::now() + WAIT_FOR_OTHER;
        let mut waited = false;
        loop {
            let now = now_ms();
            if ledger::take_lock(
                &mut *db.writer().await?,
                plugin,
                &holder,
                now + LEASE_MS,
                now,
            )
            .await?
            {
                let lease = Lease {
                    plugin: plugin.to_owned(),
                    holder,
                };
                if waited {
                    lease.release(vault).await;
                    return Ok(Taken::OtherFinished);
                }
                return Ok(Taken::Mine(lease));
            }
            // A holder on this machine whose process is gone (killed
            // mid-run) is not waited out: its lease is taken over at once.
            if let Some(stale) = ledger::lock_holder(db.reader(), plugin).await? {
                if holder_is_dead(&stale)
                    && ledger::steal_lock(
                        &mut *db.writer().await?,
                        plugin,
                        &stale,
                        &holder,
                        now + LEASE_MS,
                    )
                    .await?
                {
                    tracing::warn!(%plugin, %stale, "took over the migration lease of a process that is gone");
                    return Ok(Taken::Mine(Lease {
                        plugin: plugin.to_owned(),
                        holder,
                    }));
                }
            }
            if std::time::Instant::now() >= deadline {
                return Err(MigrateError::Busy {
                    plugin: plugin.to_owned(),
                    holder: "another host".into(),
                });
            }
            waited = true;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub(super) async fn renew(&self, vault: &Vault) -> Result<(), MigrateError> {
        let now = now_ms();
        if ledger::take_lock(
            &mut *vault.db().writer().await?,
            &self.plugin,
            &self.holder,
            now + LEASE_MS,
            now,
        )
        .await?
        {
            Ok(())
        } else {
            Err(MigrateError::Busy {
                plugin: self.plugin.clone(),
                holder: "another host (this host's lease expired)".into(),
            })
        }
    }

    pub(super) async fn release(&self, vault: &Vault) {
        let released = match vault.db().writer().await {
            Ok(mut w) => ledger::release_lock(&mut w, &self.plugin, &self.holder).await,
            Err(e) => Err(e),
        };
        if let Err(e) = released {
            tracing::warn!(plugin = %self.plugin, error = %e, "could not release the migration lease; it expires by itself");
        }
    }
}

fn hostname() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().replace(':', "_"))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    write::clip(&host, 64)
}

/// `<hostname>:<pid>:<random>`: unique per process and run.
fn holder_id() -> String {
    let mut nonce = [0u8; 4];
    crate::crypto::fill_random(&mut nonce);
    format!(
        "{}:{}:{}",
        hostname(),
        std::process::id(),
        hex::encode(nonce)
    )
}

/// Whether `holder` names a process on this machine that no longer runs.
/// Anything else (another machine, a live or unknown process) is waited
/// for until its lease expires.
fn holder_is_dead(holder: &str) -> bool {
    let mut parts = holder.split(':');
    let (Some(host), Some(pid), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    host == hostname()
        && pid != std::process::id()
        && std::fs::metadata("/proc/self").is_ok()
        && std::fs::metadata(format!("/proc/{pid}")).is_err()
}
