//! Master-key rotation: re-seal every stored value under the current key.
//!
//! Row by row, in small transactions, each update conditional on the row still
//! being sealed by the key it was read with — so a rotation can be stopped at
//! any point (or crash) and simply run again; it continues where it stopped.

use super::{Vault, VaultError};
use crate::audit::{Access, AccessEntry, Action, Outcome};
use crate::crypto::{oauth_token_aad, secret_aad};
use crate::store::forge;
use crate::store::keyring::{self as keyring_table, CANARY, LOG_SECRET, NEXT_KEY};
use crate::store::now_ms;
use crate::store::{secrets, versions};

/// Rows re-sealed per transaction.
const BATCH: i64 = 64;

/// What a rotation run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RotateReport {
    /// Secrets re-sealed by this run.
    pub resealed: u64,
    /// Secrets still sealed by another key (non-zero after a capped or failed run).
    pub remaining: u64,
    /// Secrets that did not open with any key of the keyring.
    pub failed: Vec<String>,
    /// True when the keyring rows (canary, log secret) are under the current key.
    pub keyring_current: bool,
}

impl RotateReport {
    /// True when nothing is left sealed by an earlier key.
    pub fn complete(&self) -> bool {
        self.remaining == 0 && self.failed.is_empty() && self.keyring_current
    }
}

impl Vault {
    /// Re-seals up to `max_rows` rows (all when `None`) sealed by earlier
    /// keys — secrets first, then operators' forge tokens (a row holds both
    /// of a forge's tokens) — then the keyring rows once nothing else needs
    /// an earlier key.
    pub async fn rotate_master(
        &self,
        access: &Access,
        max_rows: Option<u64>,
    ) -> Result<RotateReport, VaultError> {
        let current = self.keyring.current_id().to_string();
        let mut report = RotateReport::default();
        let mut after_id = 0i64;
        let mut budget = max_rows.unwrap_or(u64::MAX);
        while budget > 0 {
            let limit = BATCH.min(i64::try_from(budget).unwrap_or(BATCH));
            let rows =
                secrets::sealed_by_other_keys(self.db.reader(), &current, after_id, limit).await?;
            let Some(last) = rows.last() else { break };
            after_id = last.id;
            let (mut tx, head) = self.begin_logged().await?;
            let mut entries = Vec::with_capacity(rows.len());
            let now = now_ms();
            for row in &rows {
                let (scope, name) = (&row.meta.scope, &row.meta.name);
                let aad = secret_aad(scope, name, row.meta.version);
                let Ok(sealed) = self.keyring.reseal(&row.sealed, &aad) else {
                    report.failed.push(format!(
                        "{scope}/{name} (sealed by key {})",
                        row.sealed.key_id
                    ));
                    continue;
                };
                if secrets::reseal(
                    &mut tx,
                    row.id,
                    row.meta.version,
                    &row.sealed.key_id,
                    &sealed,
                    now,
                    false,
                )
                .await?
                {
                    report.resealed += 1;
                    entries.push(
                        AccessEntry::new(access, Action::Reseal, Outcome::Ok, scope, name)
                            .with_detail(format!(
                                "master key rotation {} -> {current}",
                                row.sealed.key_id
                            )),
                    );
                }
            }
            self.commit_logged(tx, head, &entries).await?;
            budget = budget.saturating_sub(rows.len() as u64);
        }
        budget = self
            .reseal_versions(access, &current, budget, &mut report)
            .await?;
        self.reseal_operator_tokens(access, &current, budget, &mut report)
            .await?;
        report.remaining = self.count_sealed_by_other_keys(&current).await?;
        report.keyring_current = if report.remaining == 0 {
            self.rotate_keyring_rows(access, &current).await?
        } else {
            false
        };
        Ok(report)
    }

    /// Kept versions of secrets, after the current values: each is
    /// re-sealed with its own associated data (scope, name, version).
    /// Returns what is left of `budget`.
    async fn reseal_versions(
        &self,
        access: &Access,
        current: &str,
        mut budget: u64,
        report: &mut RotateReport,
    ) -> Result<u64, VaultError> {
        let mut after = (0i64, 0i64);
        while budget > 0 {
            let limit = BATCH.min(i64::try_from(budget).unwrap_or(BATCH));
            let rows =
                versions::sealed_by_other_keys(self.db.reader(), current, after, limit).await?;
            let Some((_, _, last)) = rows.last() else {
                break;
            };
            after = (last.secret_id, last.version);
            let (mut tx, head) = self.begin_logged().await?;
            let mut entries = Vec::with_capacity(rows.len());
            for (scope, name, kept) in &rows {
                let aad = secret_aad(scope, name, kept.version);
                let Ok(sealed) = self.keyring.reseal(&kept.sealed, &aad) else {
                    report.failed.push(format!(
                        "{scope}/{name} version {} (sealed by key {})",
                        kept.version, kept.sealed.key_id
                    ));
                    continue;
                };
                if versions::reseal(
                    &mut tx,
                    kept.secret_id,
                    kept.version,
                    &kept.sealed.key_id,
                    &sealed,
                )
                .await?
                {
                    report.resealed += 1;
                    entries.push(
                        AccessEntry::new(access, Action::Reseal, Outcome::Ok, scope, name)
                            .with_detail(format!(
                                "version {}: master key rotation {} -> {current}",
                                kept.version, kept.sealed.key_id
                            )),
                    );
                }
            }
            self.commit_logged(tx, head, &entries).await?;
            budget = budget.saturating_sub(rows.len() as u64);
        }
        Ok(budget)
    }

    /// Operators' forge tokens (a handful of rows: one per forge) are
    /// re-sealed after the secrets, within what is left of the `budget`, in
    /// one logged transaction; a row refreshed meanwhile is left to the next
    /// run (its new tokens are sealed by the current key anyway). Sign-ins
    /// in progress sealed by an earlier key are dropped instead (they last
    /// minutes; the operator starts again).
    async fn reseal_operator_tokens(
        &self,
        access: &Access,
        current: &str,
        budget: u64,
        report: &mut RotateReport,
    ) -> Result<(), VaultError> {
        let stale: Vec<_> = forge::list_tokens(self.db.reader())
            .await?
            .into_iter()
            .filter(|row| {
                row.access.key_id != current
                    || row.refresh.as_ref().is_some_and(|r| r.key_id != current)
            })
            .take(usize::try_from(budget).unwrap_or(usize::MAX))
            .collect();
        if !stale.is_empty() {
            let (mut tx, head) = self.begin_logged().await?;
            let mut entries = Vec::new();
            for row in &stale {
                let forge_type = &row.forge_type;
                let access_sealed = self
                    .keyring
                    .reseal(&row.access, &oauth_token_aad(forge_type, "access"));
                let refresh_sealed = row
                    .refresh
                    .as_ref()
                    .map(|r| {
                        self.keyring
                            .reseal(r, &oauth_token_aad(forge_type, "refresh"))
                    })
                    .transpose();
                let (Ok(a), Ok(r)) = (access_sealed, refresh_sealed) else {
                    report.failed.push(format!(
                        "the operator OAuth tokens of {forge_type} (sealed by key {})",
                        row.access.key_id
                    ));
                    continue;
                };
                if forge::reseal_token(&mut tx, forge_type, row.generation, &a, r.as_ref()).await? {
                    report.resealed += 1;
                    let scope = format!("operator_oauth:{forge_type}");
                    let sealed = std::iter::once(("ACCESS_TOKEN", &row.access))
                        .chain(row.refresh.iter().map(|r| ("REFRESH_TOKEN", r)));
                    for (name, old) in sealed {
                        entries.push(
                            AccessEntry::new(access, Action::Reseal, Outcome::Ok, &scope, name)
                                .with_detail(format!(
                                    "master key rotation {} -> {current}",
                                    old.key_id
                                )),
                        );
                    }
                }
            }
            self.commit_logged(tx, head, &entries).await?;
        }
        forge::delete_pending_sealed_by_other_keys(&mut *self.db.writer().await?, current).await?;
        Ok(())
    }

    async fn count_sealed_by_other_keys(&self, current: &str) -> Result<u64, VaultError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM secret WHERE key_id <> $1")
            .bind(current.to_owned())
            .fetch_one(self.db.reader())
            .await?;
        let tokens: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM operator_oauth_tokens WHERE access_key_id <> $1 \
             OR (refresh_key_id IS NOT NULL AND refresh_key_id <> $1)",
        )
        .bind(current.to_owned())
        .fetch_one(self.db.reader())
        .await?;
        let kept = versions::count_sealed_by_other_keys(self.db.reader(), current).await?;
        Ok((count + tokens + kept).max(0) as u64)
    }

    async fn rotate_keyring_rows(
        &self,
        access: &Access,
        current: &str,
    ) -> Result<bool, VaultError> {
        let (mut tx, head) = self.begin_logged().await?;
        let mut entries = Vec::new();
        for purpose in [LOG_SECRET, CANARY] {
            let Some(sealed) = keyring_table::get(&mut *tx, purpose).await? else {
                continue;
            };
            if sealed.key_id == current {
                continue;
            }
            let aad = keyring_table::aad(purpose);
            let resealed = self
                .keyring
                .reseal(&sealed, &aad)
                .map_err(|_| VaultError::Unreadable(format!("the keyring's {purpose}")))?;
            if keyring_table::reseal(&mut tx, purpose, &sealed.key_id, &resealed, now_ms()).await? {
                entries.push(
                    AccessEntry::new(access, Action::Reseal, Outcome::Ok, "keyring", purpose)
                        .with_detail(format!(
                            "master key rotation {} -> {current}",
                            sealed.key_id
                        )),
                );
            }
        }
        // The canary is under the current key now: the adopted key's own
        // canary has done its work.
        keyring_table::delete(&mut tx, NEXT_KEY).await?;
        self.commit_logged(tx, head, &entries).await?;
        Ok(true)
    }
}
