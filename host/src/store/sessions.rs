//! The `operator_session` and `login_link` tables, keyed by the SHA-256
//! (hex) of their secrets, never the secrets.

use sqlx::{AnyConnection, Row};

use super::Reader;

/// Inserts a session.
pub async fn insert(
    conn: &mut AnyConnection,
    id_hash: &str,
    subject: &str,
    created_at: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO operator_session (id_hash, subject, created_at, expires_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(id_hash)
    .bind(subject)
    .bind(created_at)
    .bind(expires_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The subject of the live session `id_hash` at `now`.
pub async fn subject(
    db: Reader<'_>,
    id_hash: &str,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    let row =
        sqlx::query("SELECT subject FROM operator_session WHERE id_hash = $1 AND expires_at > $2")
            .bind(id_hash)
            .bind(now)
            .fetch_optional(db)
            .await?;
    row.map(|r| r.try_get("subject")).transpose()
}

/// Ends the session `id_hash` (no error if there is none).
pub async fn delete(conn: &mut AnyConnection, id_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM operator_session WHERE id_hash = $1")
        .bind(id_hash)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Deletes sessions and links that expired before `now`; returns how many.
pub async fn purge(conn: &mut AnyConnection, now: i64) -> Result<u64, sqlx::Error> {
    let sessions = sqlx::query("DELETE FROM operator_session WHERE expires_at <= $1")
        .bind(now)
        .execute(&mut *conn)
        .await?;
    let links = sqlx::query("DELETE FROM login_link WHERE expires_at <= $1")
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(sessions.rows_affected() + links.rows_affected())
}

/// Inserts a one-time sign-in link.
pub async fn insert_link(
    conn: &mut AnyConnection,
    hash: &str,
    subject: &str,
    created_at: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO login_link (hash, subject, created_at, expires_at, used_at) \
         VALUES ($1, $2, $3, $4, NULL)",
    )
    .bind(hash)
    .bind(subject)
    .bind(created_at)
    .bind(expires_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks the link `hash` used at `now` if it is unused and unexpired, and
/// returns its subject. One UPDATE decides, so of two racing consumers
/// (on one host or several) exactly one gets the subject.
pub async fn consume_link(
    conn: &mut AnyConnection,
    hash: &str,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query(
        "UPDATE login_link SET used_at = $1 \
         WHERE hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING subject",
    )
    .bind(now)
    .bind(hash)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| r.try_get("subject")).transpose()
}

/// Whether the link `hash` exists, unused and unexpired at `now` (for the
/// confirmation page; only [`consume_link`] decides).
pub async fn link_usable(db: Reader<'_>, hash: &str, now: i64) -> Result<bool, sqlx::Error> {
    let row = sqlx::query(
        "SELECT 1 AS one FROM login_link WHERE hash = $1 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(hash)
    .bind(now)
    .fetch_optional(db)
    .await?;
    Ok(row.is_some())
}
