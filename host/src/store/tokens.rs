//! The `api_token` table: API tokens by their public id, with the SHA-256 of
//! the whole token (never the token).

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Executor, Row};

use super::Reader;

/// A token's row, without its hash.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct TokenRow {
    /// The public id (the `<id>` of `kw_<id>_<secret>`).
    pub id: String,
    /// What the operator called it.
    pub name: String,
    /// `operator` or `resolver`.
    pub role: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds of the last request it authenticated, if any.
    pub last_used_at: Option<i64>,
    /// Unix milliseconds of its revocation, if revoked.
    pub revoked_at: Option<i64>,
    /// Unix milliseconds from which it is refused, if it expires.
    pub expires_at: Option<i64>,
    /// Its policy (JSON), if it has one rather than its role's preset.
    pub policy: Option<String>,
}

impl TokenRow {
    /// Whether it is refused at `now` for having expired.
    pub fn expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

const COLUMNS: &str = "id, name, role, created_at, last_used_at, revoked_at, expires_at, policy";

fn row(r: &AnyRow) -> Result<TokenRow, sqlx::Error> {
    Ok(TokenRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        role: r.try_get("role")?,
        created_at: r.try_get("created_at")?,
        last_used_at: r.try_get("last_used_at")?,
        revoked_at: r.try_get("revoked_at")?,
        expires_at: r.try_get("expires_at")?,
        policy: r.try_get("policy")?,
    })
}

/// Inserts a new token.
pub async fn insert(
    conn: &mut AnyConnection,
    token: &TokenRow,
    hash: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO api_token (id, name, role, hash, created_at, last_used_at, revoked_at, \
         expires_at, policy) VALUES ($1, $2, $3, $4, $5, NULL, NULL, $6, $7)",
    )
    .bind(&token.id)
    .bind(&token.name)
    .bind(&token.role)
    .bind(hash)
    .bind(token.created_at)
    .bind(token.expires_at)
    .bind(token.policy.clone())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Every token, newest first.
pub async fn list(db: Reader<'_>) -> Result<Vec<TokenRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM api_token ORDER BY created_at DESC, id");
    sqlx::query(&sql)
        .fetch_all(db)
        .await?
        .iter()
        .map(row)
        .collect()
}

/// The hashes a token is checked against.
pub struct Hashes {
    /// The current token's.
    pub current: Vec<u8>,
    /// A rotated token's previous one and when it stops being accepted.
    pub previous: Option<(Vec<u8>, i64)>,
}

/// The token with public id `id` and its stored hashes.
pub async fn get(db: Reader<'_>, id: &str) -> Result<Option<(TokenRow, Hashes)>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS}, hash, previous_hash, previous_until FROM api_token WHERE id = $1"
    );
    let Some(r) = sqlx::query(&sql).bind(id).fetch_optional(db).await? else {
        return Ok(None);
    };
    let previous_hash: Option<Vec<u8>> = r.try_get("previous_hash")?;
    let previous_until: Option<i64> = r.try_get("previous_until")?;
    let hashes = Hashes {
        current: r.try_get("hash")?,
        previous: previous_hash.zip(previous_until),
    };
    Ok(Some((row(&r)?, hashes)))
}

/// Gives the active token `id` the hash `hash`; the old one stays accepted
/// until `previous_until` (none: not at all). False if there is no such
/// active token.
pub async fn rotate(
    conn: &mut AnyConnection,
    id: &str,
    hash: &[u8],
    previous_until: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let sql = if previous_until.is_some() {
        "UPDATE api_token SET previous_hash = hash, previous_until = $1, hash = $2 \
         WHERE id = $3 AND revoked_at IS NULL"
    } else {
        "UPDATE api_token SET previous_hash = NULL, previous_until = $1, hash = $2 \
         WHERE id = $3 AND revoked_at IS NULL"
    };
    let done = sqlx::query(sql)
        .bind(previous_until)
        .bind(hash)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks the token revoked at `at`. False if there is no such token or it
/// was already revoked (the first revocation time is kept).
pub async fn revoke(conn: &mut AnyConnection, id: &str, at: i64) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("UPDATE api_token SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(at)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Records that the token authenticated a request at `at`.
pub async fn touch(conn: &mut AnyConnection, id: &str, at: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE api_token SET last_used_at = $1 WHERE id = $2")
        .bind(at)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The id of the token whose hash is `hash`, if any.
pub async fn id_of_hash<'c>(
    conn: impl Executor<'c, Database = Any>,
    hash: &[u8],
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM api_token WHERE hash = $1")
        .bind(hash.to_vec())
        .fetch_optional(conn)
        .await
}

/// Whether a token (revoked or not) has the id `id`.
pub async fn id_taken<'c>(
    conn: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<bool, sqlx::Error> {
    let found: Option<String> = sqlx::query_scalar("SELECT id FROM api_token WHERE id = $1")
        .bind(id.to_owned())
        .fetch_optional(conn)
        .await?;
    Ok(found.is_some())
}
