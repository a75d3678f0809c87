//! The `secret` table: sealed values with their metadata.

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Executor, Row};

use super::Reader;

use super::Backend;
use crate::crypto::Sealed;

/// A secret's metadata (never its value).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SecretMeta {
    /// `global` or `<kind>:<id>`.
    pub scope: String,
    /// The name.
    pub name: String,
    /// Free text for operators.
    pub description: String,
    /// Bumped by every value replacement; part of the sealing's associated data.
    pub version: i64,
    /// Id of the master key that sealed the current value.
    pub key_id: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds of the last change of any kind.
    pub updated_at: i64,
    /// Unix milliseconds of the last value replacement or re-seal.
    pub rotated_at: i64,
}

/// A full row: metadata plus the sealed value.
#[derive(Clone, Debug)]
pub struct SecretRow {
    /// Row id.
    pub id: i64,
    /// Metadata.
    pub meta: SecretMeta,
    /// The sealed value.
    pub sealed: Sealed,
}

const META: &str = "scope, name, description, version, key_id, created_at, updated_at, rotated_at";
const FULL: &str = "id, scope, name, description, version, key_id, created_at, updated_at, \
                    rotated_at, nonce, ciphertext, tag";

fn meta(row: &AnyRow) -> Result<SecretMeta, sqlx::Error> {
    Ok(SecretMeta {
        scope: row.try_get("scope")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        version: row.try_get("version")?,
        key_id: row.try_get("key_id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        rotated_at: row.try_get("rotated_at")?,
    })
}

fn full(row: &AnyRow) -> Result<SecretRow, sqlx::Error> {
    let meta = meta(row)?;
    Ok(SecretRow {
        id: row.try_get("id")?,
        // A sealed part of the wrong type (a manual edit) makes this row
        // unreadable — it must not make the whole group of lookups fail.
        sealed: Sealed {
            key_id: meta.key_id.clone(),
            nonce: row.try_get("nonce").unwrap_or_default(),
            ciphertext: row.try_get("ciphertext").unwrap_or_default(),
            tag: row.try_get("tag").unwrap_or_default(),
        },
        meta,
    })
}

/// Metadata of every secret, optionally of one scope, ordered by scope and name.
pub async fn list(db: Reader<'_>, scope: Option<&str>) -> Result<Vec<SecretMeta>, sqlx::Error> {
    let rows = match scope {
        Some(scope) => {
            sqlx::query(&format!(
                "SELECT {META} FROM secret WHERE scope = $1 ORDER BY scope, name"
            ))
            .bind(scope.to_owned())
            .fetch_all(db)
            .await?
        }
        None => {
            sqlx::query(&format!("SELECT {META} FROM secret ORDER BY scope, name"))
                .fetch_all(db)
                .await?
        }
    };
    rows.iter().map(meta).collect()
}

/// One full row, in the caller's transaction.
pub async fn get<'c>(
    conn: impl Executor<'c, Database = Any>,
    scope: &str,
    name: &str,
) -> Result<Option<SecretRow>, sqlx::Error> {
    sqlx::query(&format!(
        "SELECT {FULL} FROM secret WHERE scope = $1 AND name = $2"
    ))
    .bind(scope.to_owned())
    .bind(name.to_owned())
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(full)
    .transpose()
}

/// Every row whose name is one of `names` (any scope), for a group of lookups.
/// The names travel as one JSON array: one statement of one fixed shape.
pub async fn get_by_names<'c>(
    conn: impl Executor<'c, Database = Any>,
    backend: Backend,
    names: &[&str],
) -> Result<Vec<SecretRow>, sqlx::Error> {
    let sql = match backend {
        Backend::Sqlite => {
            "SELECT id, scope, name, description, version, key_id, created_at, updated_at, \
             rotated_at, nonce, ciphertext, tag FROM secret \
             WHERE name IN (SELECT value FROM json_each($1))"
        }
        Backend::Postgres => {
            "SELECT id, scope, name, description, version, key_id, created_at, updated_at, \
             rotated_at, nonce, ciphertext, tag FROM secret \
             WHERE name IN (SELECT jsonb_array_elements_text($1::jsonb))"
        }
    };
    let names = serde_json::to_string(names).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(sql)
        .bind(names)
        .fetch_all(conn)
        .await?
        .iter()
        .map(full)
        .collect()
}

/// Every row whose (scope, name) is one of `pairs`, for a batch of writes.
/// The pairs travel as one JSON array, as in [`get_by_names`].
pub async fn get_pairs<'c>(
    conn: impl Executor<'c, Database = Any>,
    backend: Backend,
    pairs: &[(&str, &str)],
) -> Result<Vec<SecretRow>, sqlx::Error> {
    let sql = match backend {
        Backend::Sqlite => {
            "SELECT id, scope, name, description, version, key_id, created_at, updated_at, \
             rotated_at, nonce, ciphertext, tag FROM secret WHERE (scope, name) IN \
             (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each($1))"
        }
        Backend::Postgres => {
            "SELECT id, scope, name, description, version, key_id, created_at, updated_at, \
             rotated_at, nonce, ciphertext, tag FROM secret WHERE (scope, name) IN \
             (SELECT e->>0, e->>1 FROM jsonb_array_elements($1::jsonb) AS e)"
        }
    };
    let pairs = serde_json::to_string(pairs).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(sql)
        .bind(pairs)
        .fetch_all(conn)
        .await?
        .iter()
        .map(full)
        .collect()
}

/// [`insert`], answering the new row's id.
pub async fn insert_returning(
    conn: &mut AnyConnection,
    scope: &str,
    name: &str,
    description: &str,
    sealed: &Sealed,
    now: i64,
) -> Result<i64, sqlx::Error> {
    let row = sqlx::query(
        "INSERT INTO secret (scope, name, description, version, key_id, nonce, ciphertext, tag, \
         created_at, updated_at, rotated_at) VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8, $8, $8) \
         RETURNING id",
    )
    .bind(scope.to_owned())
    .bind(name.to_owned())
    .bind(description.to_owned())
    .bind(sealed.key_id.clone())
    .bind(sealed.nonce.clone())
    .bind(sealed.ciphertext.clone())
    .bind(sealed.tag.clone())
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    row.try_get("id")
}

/// Inserts a new secret at version 1. Fails on a (scope, name) conflict.
pub async fn insert(
    conn: &mut AnyConnection,
    scope: &str,
    name: &str,
    description: &str,
    sealed: &Sealed,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO secret (scope, name, description, version, key_id, nonce, ciphertext, tag, \
         created_at, updated_at, rotated_at) VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8, $8, $8)",
    )
    .bind(scope.to_owned())
    .bind(name.to_owned())
    .bind(description.to_owned())
    .bind(sealed.key_id.clone())
    .bind(sealed.nonce.clone())
    .bind(sealed.ciphertext.clone())
    .bind(sealed.tag.clone())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Stores a new value at `version`, if the row is still at `expected_version`.
/// Returns false when it was changed meanwhile.
pub async fn replace_value(
    conn: &mut AnyConnection,
    id: i64,
    expected_version: i64,
    version: i64,
    sealed: &Sealed,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE secret SET version = $1, key_id = $2, nonce = $3, ciphertext = $4, tag = $5, \
         updated_at = $6, rotated_at = $6 WHERE id = $7 AND version = $8",
    )
    .bind(version)
    .bind(sealed.key_id.clone())
    .bind(sealed.nonce.clone())
    .bind(sealed.ciphertext.clone())
    .bind(sealed.tag.clone())
    .bind(now)
    .bind(id)
    .bind(expected_version)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Re-seals the same version (new nonce and possibly new key), if the row is
/// still sealed by `expected_key_id` at `version`. `bump_rotated` is true for a
/// per-secret rotation, false for a master-key rotation.
#[allow(clippy::too_many_arguments)]
pub async fn reseal(
    conn: &mut AnyConnection,
    id: i64,
    version: i64,
    expected_key_id: &str,
    sealed: &Sealed,
    now: i64,
    bump_rotated: bool,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE secret SET key_id = $1, nonce = $2, ciphertext = $3, tag = $4, updated_at = $5, \
         rotated_at = CASE WHEN $6 = 1 THEN $5 ELSE rotated_at END \
         WHERE id = $7 AND version = $8 AND key_id = $9",
    )
    .bind(sealed.key_id.clone())
    .bind(sealed.nonce.clone())
    .bind(sealed.ciphertext.clone())
    .bind(sealed.tag.clone())
    .bind(now)
    .bind(i64::from(bump_rotated))
    .bind(id)
    .bind(version)
    .bind(expected_key_id.to_owned())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets the description.
pub async fn describe(
    conn: &mut AnyConnection,
    id: i64,
    description: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE secret SET description = $1, updated_at = $2 WHERE id = $3")
        .bind(description.to_owned())
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Deletes a row by id.
pub async fn delete(conn: &mut AnyConnection, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM secret WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Up to `limit` rows not sealed by `current_key_id`, for a master-key rotation.
pub async fn sealed_by_other_keys(
    db: Reader<'_>,
    current_key_id: &str,
    after_id: i64,
    limit: i64,
) -> Result<Vec<SecretRow>, sqlx::Error> {
    sqlx::query(&format!(
        "SELECT {FULL} FROM secret WHERE key_id <> $1 AND id > $2 ORDER BY id LIMIT $3"
    ))
    .bind(current_key_id.to_owned())
    .bind(after_id)
    .bind(limit)
    .fetch_all(db)
    .await?
    .iter()
    .map(full)
    .collect()
}
