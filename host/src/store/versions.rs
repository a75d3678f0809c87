//! `secret_version`: the superseded values of each secret (the current one
//! is in `secret`), sealed as they were, and their metadata once destroyed.

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Executor, Row};

use super::secrets::SecretRow;
use super::Reader;
use crate::crypto::Sealed;

/// What is left of a version.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// The secret's value now.
    Current,
    /// Superseded, its ciphertext kept: it can be read and rolled back to.
    Kept,
    /// Superseded and destroyed: only this metadata is left.
    Destroyed,
}

/// One version's metadata: never a value.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct VersionMeta {
    /// The version number.
    pub version: i64,
    /// Unix ms the value was written (for the current version: last written
    /// or re-sealed).
    pub written_at: i64,
    /// Who wrote it ('' before versions were recorded).
    pub written_by: String,
    /// The master key that seals it ('' once destroyed).
    pub key_id: String,
    /// Unix ms a newer value replaced it (none for the current one).
    pub superseded_at: Option<i64>,
    /// Unix ms its ciphertext was removed.
    pub destroyed_at: Option<i64>,
    /// What is left of it.
    pub state: State,
}

/// A kept version: its number and sealed value.
pub struct KeptVersion {
    /// The secret's row id.
    pub secret_id: i64,
    /// The version number.
    pub version: i64,
    /// The sealed value (associated data: scope, name, version).
    pub sealed: Sealed,
}

fn meta_of(row: &AnyRow) -> Result<VersionMeta, sqlx::Error> {
    let destroyed_at: Option<i64> = row.try_get("destroyed_at")?;
    Ok(VersionMeta {
        version: row.try_get("version")?,
        written_at: row.try_get("written_at")?,
        written_by: row.try_get("written_by")?,
        key_id: row.try_get("key_id")?,
        superseded_at: Some(row.try_get("superseded_at")?),
        destroyed_at,
        state: if destroyed_at.is_some() {
            State::Destroyed
        } else {
            State::Kept
        },
    })
}

/// Keeps `current` (the row about to be replaced) as a superseded version.
pub async fn keep(
    conn: &mut AnyConnection,
    current: &SecretRow,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO secret_version (secret_id, version, key_id, nonce, ciphertext, tag, \
         written_at, written_by, superseded_at, destroyed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)",
    )
    .bind(current.id)
    .bind(current.meta.version)
    .bind(current.sealed.key_id.clone())
    .bind(current.sealed.nonce.clone())
    .bind(current.sealed.ciphertext.clone())
    .bind(current.sealed.tag.clone())
    .bind(current.meta.rotated_at)
    .bind(current.written_by.clone())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The superseded versions of secret `id`, newest first.
pub async fn list(db: Reader<'_>, id: i64) -> Result<Vec<VersionMeta>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT version, written_at, written_by, key_id, superseded_at, destroyed_at \
         FROM secret_version WHERE secret_id = $1 ORDER BY version DESC",
    )
    .bind(id)
    .fetch_all(db)
    .await?;
    rows.iter().map(meta_of).collect()
}

/// Version `version` of secret `id`, if it is kept (not destroyed).
pub async fn get_kept<'c>(
    conn: impl Executor<'c, Database = Any>,
    id: i64,
    version: i64,
) -> Result<Option<KeptVersion>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT key_id, nonce, ciphertext, tag FROM secret_version \
         WHERE secret_id = $1 AND version = $2 AND destroyed_at IS NULL",
    )
    .bind(id)
    .bind(version)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(KeptVersion {
            secret_id: id,
            version,
            sealed: super::sealed_of(&r, r.try_get("key_id")?),
        })
    })
    .transpose()
}

/// Destroys every kept version of secret `id` older than the newest
/// `keep` (which count the current version: `keep` 10 leaves 9 superseded
/// ones); `keep` 0 keeps all. The ciphertext is removed, the metadata
/// stays. Returns the versions destroyed, oldest first.
pub async fn prune(
    conn: &mut AnyConnection,
    id: i64,
    current_version: i64,
    keep: i64,
    now: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    if keep <= 0 {
        return Ok(Vec::new());
    }
    let below = current_version - keep + 1;
    destroy_where(conn, id, below, now).await
}

/// Destroys every kept version of secret `id` (the secret is going).
pub async fn destroy_all(
    conn: &mut AnyConnection,
    id: i64,
    now: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    destroy_where(conn, id, i64::MAX, now).await
}

async fn destroy_where(
    conn: &mut AnyConnection,
    id: i64,
    below: i64,
    now: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    let doomed: Vec<i64> = sqlx::query_scalar(
        "SELECT version FROM secret_version \
         WHERE secret_id = $1 AND version < $2 AND destroyed_at IS NULL ORDER BY version",
    )
    .bind(id)
    .bind(below)
    .fetch_all(&mut *conn)
    .await?;
    if !doomed.is_empty() {
        sqlx::query(
            "UPDATE secret_version SET nonce = NULL, ciphertext = NULL, tag = NULL, key_id = '', \
             destroyed_at = $1 WHERE secret_id = $2 AND version < $3 AND destroyed_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .bind(below)
        .execute(&mut *conn)
        .await?;
    }
    Ok(doomed)
}

/// Deletes every version row of secret `id` (with the secret itself).
/// Returns how many versions still had their ciphertext.
pub async fn delete_all(conn: &mut AnyConnection, id: i64) -> Result<u64, sqlx::Error> {
    let kept: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM secret_version WHERE secret_id = $1 AND destroyed_at IS NULL",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM secret_version WHERE secret_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(kept.max(0) as u64)
}

/// Up to `limit` kept versions sealed by a key other than `current_key_id`,
/// after (`secret_id`, `version`) `after`, with their secret's scope and
/// name (the associated data), for a master-key rotation.
pub async fn sealed_by_other_keys(
    db: Reader<'_>,
    current_key_id: &str,
    after: (i64, i64),
    limit: i64,
) -> Result<Vec<(String, String, KeptVersion)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT v.secret_id, v.version, v.key_id, v.nonce, v.ciphertext, v.tag, s.scope, s.name \
         FROM secret_version v JOIN secret s ON s.id = v.secret_id \
         WHERE v.destroyed_at IS NULL AND v.key_id <> $1 \
         AND (v.secret_id > $2 OR (v.secret_id = $2 AND v.version > $3)) \
         ORDER BY v.secret_id, v.version LIMIT $4",
    )
    .bind(current_key_id.to_owned())
    .bind(after.0)
    .bind(after.1)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("scope")?,
                r.try_get("name")?,
                KeptVersion {
                    secret_id: r.try_get("secret_id")?,
                    version: r.try_get("version")?,
                    sealed: super::sealed_of(r, r.try_get("key_id")?),
                },
            ))
        })
        .collect()
}

/// Kept versions sealed by a key other than `current_key_id`.
pub async fn count_sealed_by_other_keys(
    db: Reader<'_>,
    current_key_id: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM secret_version WHERE destroyed_at IS NULL AND key_id <> $1",
    )
    .bind(current_key_id.to_owned())
    .fetch_one(db)
    .await
}

/// Stores a re-sealed kept version, if it is still sealed by
/// `expected_key_id`.
pub async fn reseal(
    conn: &mut AnyConnection,
    secret_id: i64,
    version: i64,
    expected_key_id: &str,
    sealed: &Sealed,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE secret_version SET key_id = $1, nonce = $2, ciphertext = $3, tag = $4 \
         WHERE secret_id = $5 AND version = $6 AND key_id = $7 AND destroyed_at IS NULL",
    )
    .bind(sealed.key_id.clone())
    .bind(sealed.nonce.clone())
    .bind(sealed.ciphertext.clone())
    .bind(sealed.tag.clone())
    .bind(secret_id)
    .bind(version)
    .bind(expected_key_id.to_owned())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
