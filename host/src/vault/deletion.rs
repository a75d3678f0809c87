//! Soft delete, undelete, destroy and the purge of deletions past the
//! retention window. A deleted secret keeps its row and versions, so an
//! operator's slip can be undone; a destroy (on request, or by the purge)
//! removes every version's ciphertext. Each is one transaction with its
//! access-log rows.

use std::time::Duration;

use super::{Vault, VaultError};
use crate::audit::{Access, AccessEntry, Action, Outcome};
use crate::names::{Scope, SecretName};
use crate::store::secrets::{self, DeletedMeta, SecretMeta, SecretRow};
use crate::store::{now_ms, versions, Backend};

/// How long a deleted secret can be undeleted by default.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The accessor of the purge's `destroy` rows.
pub const PURGE_ACCESSOR: &str = "keyward:purge";

/// Deletions purged per transaction, so a large backlog does not hold the
/// write turn for long.
const PURGE_BATCH: i64 = 100;

/// Any constant both hosts agree on: the key of PostgreSQL's advisory lock
/// that lets one host purge at a time.
const PURGE_LOCK: i64 = 0x6b65_7977_7075_7267; // "keywpurg"

/// `7d`, `12h`, `90m` or `30s`: a retention as an operator would write it.
pub fn describe_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn entry(access: &Access, action: Action, row: &SecretRow) -> AccessEntry {
    AccessEntry::new(access, action, Outcome::Ok, &row.meta.scope, &row.meta.name)
}

fn not_found(scope: &Scope, name: &SecretName) -> VaultError {
    VaultError::NotFound {
        scope: scope.to_string(),
        name: name.to_string(),
    }
}

impl Vault {
    /// How long a deleted secret can be undeleted.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// Keeps deleted secrets undeletable for `retention` from now on.
    pub fn with_retention(mut self, retention: Duration) -> Vault {
        self.retention = retention;
        self
    }

    fn retention_ms(&self) -> i64 {
        i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX)
    }

    /// Soft-deletes a live secret: from the commit on, renders and reveals
    /// fail as missing and listings skip it; [`Vault::undelete`] brings it
    /// back within the retention window, after which the purge destroys it.
    pub async fn delete(
        &self,
        scope: &Scope,
        name: &SecretName,
        access: &Access,
    ) -> Result<(), VaultError> {
        let (mut tx, head) = self.begin_logged().await?;
        let row = self.row(&mut tx, scope, name).await?;
        if !secrets::soft_delete(&mut tx, row.id, access.accessor(), now_ms()).await? {
            return Err(not_found(scope, name));
        }
        let logged = entry(access, Action::Delete, &row).with_detail(format!(
            "version {}; can be undeleted for {}",
            row.meta.version,
            describe_duration(self.retention)
        ));
        self.commit_logged(tx, head, &[logged]).await
    }

    /// Makes a soft-deleted secret live again, with the value and versions
    /// it had. 409 if it is live, 410 once the retention window has passed.
    pub async fn undelete(
        &self,
        scope: &Scope,
        name: &SecretName,
        access: &Access,
    ) -> Result<SecretMeta, VaultError> {
        let (mut tx, head) = self.begin_logged().await?;
        let row = secrets::get_any(&mut *tx, scope.as_str(), name.as_str())
            .await?
            .ok_or_else(|| not_found(scope, name))?;
        let Some(deleted_at) = row.deleted_at else {
            return Err(VaultError::NotDeleted {
                scope: scope.to_string(),
                name: name.to_string(),
            });
        };
        let now = now_ms();
        if now.saturating_sub(deleted_at) > self.retention_ms() {
            return Err(VaultError::RetentionPassed {
                scope: scope.to_string(),
                name: name.to_string(),
                retention: describe_duration(self.retention),
            });
        }
        if !secrets::undelete(&mut tx, row.id, deleted_at, now).await? {
            return Err(VaultError::Conflict {
                scope: scope.to_string(),
                name: name.to_string(),
            });
        }
        let logged = entry(access, Action::Undelete, &row)
            .with_detail(format!("version {}", row.meta.version));
        self.commit_logged(tx, head, &[logged]).await?;
        let mut meta = row.meta;
        meta.updated_at = now;
        Ok(meta)
    }

    /// Destroys a secret, live or deleted: its row and every version's
    /// ciphertext are removed in one transaction, logged as one `destroy`
    /// row. Not undoable. On SQLite the write-ahead log is then truncated so
    /// no copy of the ciphertext is left in it (see docs/secrets.md).
    pub async fn destroy(
        &self,
        scope: &Scope,
        name: &SecretName,
        access: &Access,
    ) -> Result<(), VaultError> {
        let (mut tx, head) = self.begin_logged().await?;
        let row = secrets::get_any(&mut *tx, scope.as_str(), name.as_str())
            .await?
            .ok_or_else(|| not_found(scope, name))?;
        let kept = versions::delete_all(&mut tx, row.id).await?;
        secrets::delete(&mut tx, row.id).await?;
        let state = if row.deleted_at.is_some() {
            "deleted"
        } else {
            "live"
        };
        let logged = entry(access, Action::Destroy, &row).with_detail(format!(
            "the {state} secret at version {} and {kept} superseded version(s), on request",
            row.meta.version
        ));
        self.commit_logged(tx, head, &[logged]).await?;
        self.scrub_wal().await;
        Ok(())
    }

    /// Destroys every secret deleted longer ago than the retention window
    /// (one `destroy` row each, accessor [`PURGE_ACCESSOR`]). On PostgreSQL
    /// one host purges at a time: the others skip the round. Returns how
    /// many were destroyed.
    pub async fn purge_expired(&self) -> Result<usize, VaultError> {
        let access = Access::new(
            PURGE_ACCESSOR,
            "deleted longer ago than the retention window",
        )?;
        let mut purged = 0;
        loop {
            let (mut tx, head) = self.begin_logged().await?;
            if self.db.backend == Backend::Postgres {
                let ours: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                    .bind(PURGE_LOCK)
                    .fetch_one(&mut *tx)
                    .await?;
                if !ours {
                    return Ok(purged);
                }
            }
            let before = now_ms().saturating_sub(self.retention_ms());
            let due = secrets::deleted_before(&mut *tx, before, PURGE_BATCH).await?;
            if due.is_empty() {
                return Ok(purged);
            }
            let mut entries = Vec::with_capacity(due.len());
            for row in &due {
                let kept = versions::delete_all(&mut tx, row.id).await?;
                secrets::delete(&mut tx, row.id).await?;
                entries.push(entry(&access, Action::Destroy, row).with_detail(format!(
                    "deleted by {} more than {} ago: version {} and {kept} superseded version(s)",
                    row_deleted_by(row),
                    describe_duration(self.retention),
                    row.meta.version
                )));
            }
            self.commit_logged(tx, head, &entries).await?;
            purged += due.len();
            if (due.len() as i64) < PURGE_BATCH {
                self.scrub_wal().await;
                return Ok(purged);
            }
        }
    }

    /// Every soft-deleted secret (of one scope, if given), with when and by
    /// whom it was deleted. Never a value.
    pub async fn deleted(&self, scope: Option<&Scope>) -> Result<Vec<DeletedMeta>, VaultError> {
        let scope = scope.map(Scope::as_str);
        Ok(secrets::list_deleted(self.db.reader(), scope, self.retention_ms()).await?)
    }

    /// Sets how many versions a secret keeps (the current one included; 0:
    /// all; `None`: the server's number), destroying at once the kept
    /// versions beyond it (one `destroy` row each). Returns the versions
    /// destroyed.
    pub async fn set_max_versions(
        &self,
        scope: &Scope,
        name: &SecretName,
        max_versions: Option<u32>,
        access: &Access,
    ) -> Result<Vec<i64>, VaultError> {
        let (mut tx, head) = self.begin_logged().await?;
        let row = self.row(&mut tx, scope, name).await?;
        let now = now_ms();
        let limit = max_versions.map(i64::from);
        secrets::set_max_versions(&mut tx, row.id, limit, now).await?;
        let keep = limit.unwrap_or(self.max_versions);
        let destroyed = versions::prune(&mut tx, row.id, row.meta.version, keep, now).await?;
        let mut entries = vec![
            entry(access, Action::Describe, &row).with_detail(match limit {
                Some(n) => format!("keeps {n} version(s) (0: all)"),
                None => format!("keeps the server's {} version(s)", self.max_versions),
            }),
        ];
        entries.extend(destroyed.iter().map(|v| {
            entry(access, Action::Destroy, &row)
                .with_detail(format!("version {v} (beyond the {keep} kept)"))
        }));
        self.commit_logged(tx, head, &entries).await?;
        Ok(destroyed)
    }

    /// After ciphertext was removed on SQLite: copies the write-ahead log
    /// into the database (whose freed pages `secure_delete` zeroes) and
    /// truncates it, so no frame still holds the removed values. Best
    /// effort: under a steady stream of writes the checkpoint can be busy,
    /// and then the access-log writer's own checkpoints overwrite the
    /// frames soon after.
    async fn scrub_wal(&self) {
        if self.db.backend != Backend::Sqlite {
            return;
        }
        let done: Result<(i64, i64, i64), sqlx::Error> = async {
            let mut writer = self.db.writer().await?;
            sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&mut *writer)
                .await
        }
        .await;
        match done {
            Ok((0, _, _)) => {}
            Ok(_) => tracing::warn!(
                "the WAL checkpoint after a destroy was busy; it is retried by the next one"
            ),
            Err(error) => tracing::warn!(%error, "cannot checkpoint the WAL after a destroy"),
        }
    }
}

fn row_deleted_by(row: &SecretRow) -> &str {
    row.deleted_by.as_deref().unwrap_or("?")
}
