//! A secret's versions: the list, a logged read of one, and a rollback
//! (itself a logged read and a logged write, both naming the caller and
//! their reason).

use super::{Vault, VaultError};
use crate::audit::{Access, AccessEntry, Action, Outcome};
use crate::crypto::{secret_aad, Sealed, SecretBytes};
use crate::names::{Scope, SecretName};
use crate::store::now_ms;
use crate::store::versions::{self, State, VersionMeta};

impl Vault {
    /// Every version of a secret, newest first: the current one, then the
    /// superseded ones, kept or destroyed. Never a value.
    pub async fn versions(
        &self,
        scope: &Scope,
        name: &SecretName,
    ) -> Result<Vec<VersionMeta>, VaultError> {
        let row = crate::store::secrets::get(self.db.reader(), scope.as_str(), name.as_str())
            .await?
            .ok_or_else(|| VaultError::NotFound {
                scope: scope.to_string(),
                name: name.to_string(),
            })?;
        let mut all = vec![VersionMeta {
            version: row.meta.version,
            written_at: row.meta.rotated_at,
            written_by: row.written_by.clone(),
            key_id: row.meta.key_id.clone(),
            superseded_at: None,
            destroyed_at: None,
            state: State::Current,
        }];
        all.extend(versions::list(self.db.reader(), row.id).await?);
        Ok(all)
    }

    /// Reveals version `version` of a secret (the current one or a kept
    /// one). The read is logged — action `reveal`, detail `version N` — and
    /// committed before the value comes back; a destroyed or unknown
    /// version is logged `missing` and refused.
    pub async fn reveal_version(
        &self,
        scope: &Scope,
        name: &SecretName,
        version: i64,
        access: &Access,
    ) -> Result<SecretBytes, VaultError> {
        let (mut tx, head) = self.begin_logged().await?;
        let row = self.row(&mut tx, scope, name).await?;
        let found = self.sealed_version(&mut tx, &row, version).await?;
        let logged = |outcome| {
            AccessEntry::new(
                access,
                Action::Reveal,
                outcome,
                scope.as_str(),
                name.as_str(),
            )
            .with_detail(format!("version {version}"))
        };
        let sealed = match found {
            Ok(sealed) => sealed,
            Err(why) => {
                self.commit_logged(tx, head, &[logged(Outcome::Missing)])
                    .await?;
                return Err(unavailable(scope, name, version, why));
            }
        };
        let aad = secret_aad(scope.as_str(), name.as_str(), version);
        match self.keyring.open(&sealed, &aad) {
            Ok(value) => {
                self.commit_logged(tx, head, &[logged(Outcome::Ok)]).await?;
                Ok(value)
            }
            Err(_) => {
                self.commit_logged(tx, head, &[logged(Outcome::Error)])
                    .await?;
                Err(VaultError::Unreadable(format!(
                    "{scope}/{name} version {version}"
                )))
            }
        }
    }

    /// Makes the value of kept version `to` the secret's value again, as a
    /// new version. Logged in one transaction as a `reveal` of version `to`
    /// and a `replace` naming it, both with `access`'s accessor and reason.
    /// Returns the new version.
    pub async fn rollback(
        &self,
        scope: &Scope,
        name: &SecretName,
        to: i64,
        access: &Access,
    ) -> Result<i64, VaultError> {
        let (mut tx, head) = self.begin_logged().await?;
        let row = self.row(&mut tx, scope, name).await?;
        if to == row.meta.version {
            return Err(unavailable(scope, name, to, "the current one"));
        }
        let sealed = match self.sealed_version(&mut tx, &row, to).await? {
            Ok(sealed) => sealed,
            Err(why) => return Err(unavailable(scope, name, to, why)),
        };
        let (s, n) = (scope.as_str(), name.as_str());
        let read = |outcome| {
            AccessEntry::new(access, Action::Reveal, outcome, s, n)
                .with_detail(format!("version {to}, for a rollback"))
        };
        let Ok(value) = self.keyring.open(&sealed, &secret_aad(s, n, to)) else {
            self.commit_logged(tx, head, &[read(Outcome::Error)])
                .await?;
            return Err(VaultError::Unreadable(format!(
                "{scope}/{name} version {to}"
            )));
        };
        let version = row.meta.version + 1;
        let resealed = self
            .keyring
            .seal(value.expose(), &secret_aad(s, n, version));
        drop(value);
        let now = now_ms();
        let mut entries = vec![
            read(Outcome::Ok),
            AccessEntry::new(access, Action::Replace, Outcome::Ok, s, n)
                .with_detail(format!("version {version}: rollback to version {to}")),
        ];
        entries.extend(
            self.supersede(&mut tx, &row, version, &resealed, access, now)
                .await?,
        );
        self.commit_logged(tx, head, &entries).await?;
        Ok(version)
    }

    /// The sealed value of `version` of `row`'s secret, or why there is none.
    async fn sealed_version(
        &self,
        conn: &mut sqlx::AnyConnection,
        row: &crate::store::secrets::SecretRow,
        version: i64,
    ) -> Result<Result<Sealed, &'static str>, VaultError> {
        if version == row.meta.version {
            return Ok(Ok(row.sealed.clone()));
        }
        if version < 1 || version > row.meta.version {
            return Ok(Err("not a version of it"));
        }
        Ok(match versions::get_kept(conn, row.id, version).await? {
            Some(kept) => Ok(kept.sealed),
            None => Err("destroyed"),
        })
    }
}

fn unavailable(scope: &Scope, name: &SecretName, version: i64, why: &'static str) -> VaultError {
    VaultError::VersionUnavailable {
        scope: scope.to_string(),
        name: name.to_string(),
        version,
        why,
    }
}
