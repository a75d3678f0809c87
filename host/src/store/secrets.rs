//! The `secret` table: sealed values with their metadata.

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Executor, Row};

use super::Reader;

use super::Backend;
use crate::crypto::Sealed;

/// A secret's metadata (never its value).
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
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
    /// Who wrote the current value ('' for values written before versions).
    pub written_by: String,
    /// Unix ms it was soft-deleted; `None` while it is live.
    pub deleted_at: Option<i64>,
    /// Who soft-deleted it.
    pub deleted_by: Option<String>,
    /// Versions this secret keeps (0: all); `None` follows the server's.
    pub max_versions: Option<i64>,
}

/// A soft-deleted secret, restorable until the retention window passes.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct DeletedMeta {
    /// Its metadata as it was.
    #[serde(flatten)]
    pub meta: SecretMeta,
    /// Unix ms of the deletion.
    pub deleted_at: i64,
    /// Who deleted it.
    pub deleted_by: String,
    /// Unix ms after which it can no longer be undeleted (and the purge
    /// destroys it).
    pub undeletable_until: i64,
}

const META: &str = "scope, name, description, version, key_id, created_at, updated_at, rotated_at";

/// Every column of a full row, as a literal so that statements can be
/// assembled with `concat!` (no allocation on the render path).
macro_rules! full_columns {
    () => {
        "id, scope, name, description, version, key_id, created_at, updated_at, rotated_at, \
         nonce, ciphertext, tag, written_by, deleted_at, deleted_by, max_versions"
    };
}
pub(crate) use full_columns;
const FULL: &str = full_columns!();

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
        sealed: super::sealed_of(row, meta.key_id.clone()),
        written_by: row.try_get("written_by")?,
        deleted_at: row.try_get("deleted_at")?,
        deleted_by: row.try_get("deleted_by")?,
        max_versions: row.try_get("max_versions")?,
        meta,
    })
}

/// Which rows a listing wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Liveness {
    Live,
    Deleted,
}

async fn list_rows(
    db: Reader<'_>,
    scope: Option<&str>,
    which: Liveness,
) -> Result<Vec<AnyRow>, sqlx::Error> {
    let (columns, deleted) = match which {
        Liveness::Live => (META.to_owned(), "deleted_at IS NULL"),
        Liveness::Deleted => (
            format!("{META}, deleted_at, deleted_by"),
            "deleted_at IS NOT NULL",
        ),
    };
    // `$1 IS NULL` keeps one statement for "every scope" and "one scope".
    sqlx::query(&format!(
        "SELECT {columns} FROM secret WHERE {deleted} AND (scope = $1 OR $1 IS NULL) \
         ORDER BY scope, name"
    ))
    .bind(scope.map(str::to_owned))
    .fetch_all(db)
    .await
}

/// Metadata of every live secret, optionally of one scope, ordered by scope
/// and name.
pub async fn list(db: Reader<'_>, scope: Option<&str>) -> Result<Vec<SecretMeta>, sqlx::Error> {
    list_rows(db, scope, Liveness::Live)
        .await?
        .iter()
        .map(meta)
        .collect()
}

/// Every soft-deleted secret, optionally of one scope, ordered by scope and
/// name; each undeletable for `retention_ms` after its deletion.
pub async fn list_deleted(
    db: Reader<'_>,
    scope: Option<&str>,
    retention_ms: i64,
) -> Result<Vec<DeletedMeta>, sqlx::Error> {
    list_rows(db, scope, Liveness::Deleted)
        .await?
        .iter()
        .map(|row| {
            let deleted_at: i64 = row.try_get("deleted_at")?;
            Ok(DeletedMeta {
                meta: meta(row)?,
                deleted_at,
                deleted_by: row
                    .try_get::<Option<String>, _>("deleted_by")?
                    .unwrap_or_default(),
                undeletable_until: deleted_at.saturating_add(retention_ms),
            })
        })
        .collect()
}

/// One live secret's full row.
pub async fn get<'c>(
    conn: impl Executor<'c, Database = Any>,
    scope: &str,
    name: &str,
) -> Result<Option<SecretRow>, sqlx::Error> {
    Ok(get_any(conn, scope, name)
        .await?
        .filter(|row| row.deleted_at.is_none()))
}

/// One full row, live or soft-deleted (see [`SecretRow::deleted_at`]).
pub async fn get_any<'c>(
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

/// Every live row whose name is one of `names` (any scope), for a group of
/// lookups. The names travel as one JSON array: one statement of one fixed
/// shape.
pub async fn get_by_names<'c>(
    conn: impl Executor<'c, Database = Any>,
    backend: Backend,
    names: &[&str],
) -> Result<Vec<SecretRow>, sqlx::Error> {
    let sql = match backend {
        Backend::Sqlite => concat!(
            "SELECT ",
            full_columns!(),
            " FROM secret WHERE deleted_at IS NULL AND name IN (SELECT value FROM json_each($1))"
        ),
        Backend::Postgres => concat!(
            "SELECT ",
            full_columns!(),
            " FROM secret WHERE deleted_at IS NULL AND name IN \
             (SELECT jsonb_array_elements_text($1::jsonb))"
        ),
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

/// Every row, live or soft-deleted, whose (scope, name) is one of `pairs`,
/// for a batch of writes (a write to a deleted secret makes it live again).
/// The pairs travel as one JSON array, as in [`get_by_names`].
pub async fn get_pairs<'c>(
    conn: impl Executor<'c, Database = Any>,
    backend: Backend,
    pairs: &[(&str, &str)],
) -> Result<Vec<SecretRow>, sqlx::Error> {
    let sql = match backend {
        Backend::Sqlite => concat!(
            "SELECT ",
            full_columns!(),
            " FROM secret WHERE (scope, name) IN (SELECT json_extract(value, '$[0]'), \
             json_extract(value, '$[1]') FROM json_each($1))"
        ),
        Backend::Postgres => concat!(
            "SELECT ",
            full_columns!(),
            " FROM secret WHERE (scope, name) IN \
             (SELECT e->>0, e->>1 FROM jsonb_array_elements($1::jsonb) AS e)"
        ),
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

/// What a new secret or a new value is written with.
pub struct NewValue<'a> {
    /// The sealed value (associated data: scope, name, version).
    pub sealed: &'a Sealed,
    /// Who writes it (an access log's accessor).
    pub written_by: &'a str,
    /// Unix ms.
    pub now: i64,
}

/// Inserts a new secret at version 1 and answers its row id. Fails on a
/// (scope, name) conflict.
pub async fn insert(
    conn: &mut AnyConnection,
    scope: &str,
    name: &str,
    description: &str,
    value: NewValue<'_>,
) -> Result<i64, sqlx::Error> {
    let row = sqlx::query(
        "INSERT INTO secret (scope, name, description, version, key_id, nonce, ciphertext, tag, \
         created_at, updated_at, rotated_at, written_by) \
         VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8, $8, $8, $9) RETURNING id",
    )
    .bind(scope.to_owned())
    .bind(name.to_owned())
    .bind(description.to_owned())
    .bind(value.sealed.key_id.clone())
    .bind(value.sealed.nonce.clone())
    .bind(value.sealed.ciphertext.clone())
    .bind(value.sealed.tag.clone())
    .bind(value.now)
    .bind(value.written_by.to_owned())
    .fetch_one(&mut *conn)
    .await?;
    row.try_get("id")
}

/// Stores a new value at `version`, if the row is still at `expected_version`;
/// a soft-deleted secret is live again. Returns false when it was changed
/// meanwhile.
pub async fn replace_value(
    conn: &mut AnyConnection,
    id: i64,
    expected_version: i64,
    version: i64,
    value: NewValue<'_>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE secret SET version = $1, key_id = $2, nonce = $3, ciphertext = $4, tag = $5, \
         updated_at = $6, rotated_at = $6, written_by = $7, deleted_at = NULL, \
         deleted_by = NULL WHERE id = $8 AND version = $9",
    )
    .bind(version)
    .bind(value.sealed.key_id.clone())
    .bind(value.sealed.nonce.clone())
    .bind(value.sealed.ciphertext.clone())
    .bind(value.sealed.tag.clone())
    .bind(value.now)
    .bind(value.written_by.to_owned())
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

/// Marks a live secret deleted (renders and listings skip it from now on).
/// Returns false if it was not live.
pub async fn soft_delete(
    conn: &mut AnyConnection,
    id: i64,
    by: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE secret SET deleted_at = $1, deleted_by = $2, updated_at = $1 \
         WHERE id = $3 AND deleted_at IS NULL",
    )
    .bind(now)
    .bind(by.to_owned())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Makes a soft-deleted secret live again, if it was deleted at `deleted_at`
/// (so that two undeletes, or an undelete racing a purge, change it once).
pub async fn undelete(
    conn: &mut AnyConnection,
    id: i64,
    deleted_at: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE secret SET deleted_at = NULL, deleted_by = NULL, updated_at = $1 \
         WHERE id = $2 AND deleted_at = $3",
    )
    .bind(now)
    .bind(id)
    .bind(deleted_at)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Soft-deleted secrets deleted at or before `before` (Unix ms), oldest
/// deletion first, at most `limit`: what the purge destroys.
pub async fn deleted_before<'c>(
    conn: impl Executor<'c, Database = Any>,
    before: i64,
    limit: i64,
) -> Result<Vec<SecretRow>, sqlx::Error> {
    sqlx::query(&format!(
        "SELECT {FULL} FROM secret WHERE deleted_at IS NOT NULL AND deleted_at <= $1 \
         ORDER BY deleted_at, id LIMIT $2"
    ))
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await?
    .iter()
    .map(full)
    .collect()
}

/// Sets how many versions this secret keeps (`None`: the server's number).
pub async fn set_max_versions(
    conn: &mut AnyConnection,
    id: i64,
    max_versions: Option<i64>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE secret SET max_versions = $1, updated_at = $2 WHERE id = $3")
        .bind(max_versions)
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Removes a row by id, ciphertext and all (its versions go with
/// [`super::versions::delete_all`]).
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
