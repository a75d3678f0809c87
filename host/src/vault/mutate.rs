//! Changes to secrets. Each runs in one transaction that also appends its
//! access-log row, so a change and its record commit together or not at all.

use super::{Vault, VaultError, MAX_DESCRIPTION_LEN, MAX_VALUE_LEN};
use crate::audit::{Access, AccessEntry, Action, Outcome};
use crate::crypto::secret_aad;
use crate::names::{Scope, SecretName};
use crate::store::now_ms;
use crate::store::secrets::{self, SecretMeta};
use crate::store::versions;

/// Whether [`Vault::put`] may create, replace, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// Fail with [`VaultError::Exists`] if the secret exists.
    Create,
    /// Fail with [`VaultError::NotFound`] if it does not.
    Replace,
    /// Create or replace.
    Upsert,
}

/// What [`Vault::put`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Put {
    /// A new secret at version 1.
    Created(i64),
    /// A new value; the version it got.
    Replaced(i64),
}

fn check_value(value: &[u8]) -> Result<(), VaultError> {
    if value.is_empty() {
        return Err(VaultError::EmptyValue);
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(VaultError::ValueTooLarge { len: value.len() });
    }
    Ok(())
}

/// Checks a description against the documented limits.
pub fn check_description(description: &str) -> Result<(), VaultError> {
    if description.len() > MAX_DESCRIPTION_LEN || description.chars().any(char::is_control) {
        return Err(VaultError::Description);
    }
    Ok(())
}

/// A check-and-set's verdict: `current` is the secret's version (`None`:
/// absent), `expect` what the caller read (0: absent).
fn check_expected(
    scope: &Scope,
    name: &SecretName,
    current: Option<i64>,
    expect: Option<i64>,
) -> Result<(), VaultError> {
    match expect {
        Some(expected) if expected != current.unwrap_or(0) => Err(VaultError::VersionMismatch {
            scope: scope.to_string(),
            name: name.to_string(),
            expected,
            current: current.unwrap_or(0),
        }),
        _ => Ok(()),
    }
}

fn entry(access: &Access, action: Action, scope: &Scope, name: &SecretName) -> AccessEntry {
    AccessEntry::new(access, action, Outcome::Ok, scope.as_str(), name.as_str())
}

impl Vault {
    /// Creates a secret; fails with [`VaultError::Exists`] if it exists.
    pub async fn create(
        &self,
        scope: &Scope,
        name: &SecretName,
        value: &[u8],
        description: &str,
        access: &Access,
    ) -> Result<(), VaultError> {
        self.put(
            scope,
            name,
            value,
            Some(description),
            access,
            PutMode::Create,
        )
        .await
        .map(|_| ())
    }

    /// Creates the secret and/or gives it a new value and version, as `mode`
    /// allows. `description`, when given, is set too.
    pub async fn put(
        &self,
        scope: &Scope,
        name: &SecretName,
        value: &[u8],
        description: Option<&str>,
        access: &Access,
        mode: PutMode,
    ) -> Result<Put, VaultError> {
        self.put_expecting(scope, name, value, description, access, mode, None)
            .await
    }

    /// [`Vault::put`] as a check-and-set: with `expect`, the secret's
    /// current version must be that one (0: the secret must not exist), or
    /// nothing is written and the answer is
    /// [`VaultError::VersionMismatch`] with the current version. The check
    /// and the write are one transaction, so of two writers that read the
    /// same version only one succeeds.
    #[allow(clippy::too_many_arguments)] // put's inputs and the expectation
    pub async fn put_expecting(
        &self,
        scope: &Scope,
        name: &SecretName,
        value: &[u8],
        description: Option<&str>,
        access: &Access,
        mode: PutMode,
        expect: Option<i64>,
    ) -> Result<Put, VaultError> {
        check_value(value)?;
        if let Some(description) = description {
            check_description(description)?;
        }
        let (mut tx, head) = self.begin_logged().await?;
        let now = now_ms();
        // A soft-deleted secret is absent to writers (a create succeeds, a
        // check-and-set expects 0), but its row stays: a new value makes it
        // live again as its next version, the deleted value kept as a
        // version like any other.
        let existing = secrets::get_any(&mut *tx, scope.as_str(), name.as_str()).await?;
        let current = existing
            .as_ref()
            .filter(|r| r.deleted_at.is_none())
            .map(|r| r.meta.version);
        check_expected(scope, name, current, expect)?;
        let (outcome, entries) = match existing {
            None if mode == PutMode::Replace => {
                return Err(VaultError::NotFound {
                    scope: scope.to_string(),
                    name: name.to_string(),
                })
            }
            None => {
                let sealed = self
                    .keyring
                    .seal(value, &secret_aad(scope.as_str(), name.as_str(), 1));
                let description = description.unwrap_or("");
                let value = secrets::NewValue {
                    sealed: &sealed,
                    written_by: access.accessor(),
                    now,
                };
                secrets::insert(&mut tx, scope.as_str(), name.as_str(), description, value).await?;
                (
                    Put::Created(1),
                    vec![entry(access, Action::Create, scope, name)],
                )
            }
            Some(row) if mode == PutMode::Create && row.deleted_at.is_none() => {
                return Err(VaultError::Exists {
                    scope: scope.to_string(),
                    name: name.to_string(),
                })
            }
            Some(row) => {
                let version = row.meta.version + 1;
                let aad = secret_aad(scope.as_str(), name.as_str(), version);
                let sealed = self.keyring.seal(value, &aad);
                let revived = if row.deleted_at.is_some() {
                    " (it was deleted: live again)"
                } else {
                    ""
                };
                let mut entries = vec![entry(access, Action::Replace, scope, name)
                    .with_detail(format!("version {version}{revived}"))];
                entries.extend(
                    self.supersede(&mut tx, &row, version, &sealed, access, now)
                        .await?,
                );
                if let Some(description) = description.filter(|d| *d != row.meta.description) {
                    secrets::describe(&mut tx, row.id, description, now).await?;
                    entries.push(entry(access, Action::Describe, scope, name));
                }
                (Put::Replaced(version), entries)
            }
        };
        self.commit_logged(tx, head, &entries).await?;
        Ok(outcome)
    }

    /// Replaces `row`'s value with `sealed` at `version` (the next one):
    /// the value it had is kept as a version, and versions past
    /// the secret's limit (else [`Vault::max_versions`]) are destroyed.
    /// Returns the destroy entries.
    pub(crate) async fn supersede(
        &self,
        tx: &mut sqlx::AnyConnection,
        row: &secrets::SecretRow,
        version: i64,
        sealed: &crate::crypto::Sealed,
        access: &Access,
        now: i64,
    ) -> Result<Vec<AccessEntry>, VaultError> {
        let (scope, name) = (row.meta.scope.as_str(), row.meta.name.as_str());
        versions::keep(tx, row, now).await?;
        let value = secrets::NewValue {
            sealed,
            written_by: access.accessor(),
            now,
        };
        if !secrets::replace_value(tx, row.id, row.meta.version, version, value).await? {
            return Err(VaultError::Conflict {
                scope: scope.to_owned(),
                name: name.to_owned(),
            });
        }
        let keep = row.max_versions.unwrap_or(self.max_versions);
        let destroyed = versions::prune(tx, row.id, version, keep, now).await?;
        Ok(destroyed
            .into_iter()
            .map(|v| {
                AccessEntry::new(access, Action::Destroy, Outcome::Ok, scope, name)
                    .with_detail(format!("version {v} (beyond the {keep} kept)"))
            })
            .collect())
    }

    /// Gives an existing secret a new value (version + 1, rotated_at = now).
    pub async fn replace(
        &self,
        scope: &Scope,
        name: &SecretName,
        value: &[u8],
        access: &Access,
    ) -> Result<i64, VaultError> {
        match self
            .put(scope, name, value, None, access, PutMode::Replace)
            .await?
        {
            Put::Replaced(version) | Put::Created(version) => Ok(version),
        }
    }

    /// Sets a secret's description.
    pub async fn describe(
        &self,
        scope: &Scope,
        name: &SecretName,
        description: &str,
        access: &Access,
    ) -> Result<(), VaultError> {
        self.describe_expecting(scope, name, description, access, None)
            .await
    }

    /// [`Vault::describe`] as a check-and-set on the version (see
    /// [`Vault::put_expecting`]).
    pub async fn describe_expecting(
        &self,
        scope: &Scope,
        name: &SecretName,
        description: &str,
        access: &Access,
        expect: Option<i64>,
    ) -> Result<(), VaultError> {
        check_description(description)?;
        let (mut tx, head) = self.begin_logged().await?;
        let row = self.row(&mut tx, scope, name).await?;
        check_expected(scope, name, Some(row.meta.version), expect)?;
        secrets::describe(&mut tx, row.id, description, now_ms()).await?;
        self.commit_logged(tx, head, &[entry(access, Action::Describe, scope, name)])
            .await
    }

    /// Re-seals one secret under the current master key with a fresh nonce
    /// (same value and version; rotated_at = now).
    pub async fn reseal(
        &self,
        scope: &Scope,
        name: &SecretName,
        access: &Access,
    ) -> Result<SecretMeta, VaultError> {
        let (mut tx, head) = self.begin_logged().await?;
        let row = self.row(&mut tx, scope, name).await?;
        let aad = secret_aad(scope.as_str(), name.as_str(), row.meta.version);
        let sealed = self
            .keyring
            .reseal(&row.sealed, &aad)
            .map_err(|_| VaultError::Unreadable(format!("{scope}/{name}")))?;
        let now = now_ms();
        let key_id = sealed.key_id.clone();
        if !secrets::reseal(
            &mut tx,
            row.id,
            row.meta.version,
            &row.sealed.key_id,
            &sealed,
            now,
            true,
        )
        .await?
        {
            return Err(VaultError::Conflict {
                scope: scope.to_string(),
                name: name.to_string(),
            });
        }
        let logged = entry(access, Action::Reseal, scope, name)
            .with_detail(format!("key {} -> {key_id}", row.sealed.key_id));
        self.commit_logged(tx, head, &[logged]).await?;
        let mut meta = row.meta;
        meta.key_id = key_id;
        meta.updated_at = now;
        meta.rotated_at = now;
        Ok(meta)
    }

    pub(super) async fn row(
        &self,
        conn: &mut sqlx::AnyConnection,
        scope: &Scope,
        name: &SecretName,
    ) -> Result<secrets::SecretRow, VaultError> {
        secrets::get(conn, scope.as_str(), name.as_str())
            .await?
            .ok_or_else(|| VaultError::NotFound {
                scope: scope.to_string(),
                name: name.to_string(),
            })
    }
}
