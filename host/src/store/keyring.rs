//! The `keyring` table: sealed values the host itself needs.

use sqlx::{AnyConnection, Row};

use crate::crypto::Sealed;

/// The canary: a known plaintext proving the master key opens this store.
pub const CANARY: &str = "canary";
/// The log secret: the audit chain key is derived from it.
pub const LOG_SECRET: &str = "log-secret";
/// The adopted key's canary: sealed under the key a rotation moves to, so
/// that key alone may start beside the old one (`vault::keycheck`).
pub const NEXT_KEY: &str = "next-key";

/// Associated data for a keyring row, so the canary and the log secret cannot
/// be swapped for each other.
pub fn aad(purpose: &str) -> Vec<u8> {
    format!("keyward/v1/keyring\0{purpose}").into_bytes()
}

/// The sealed value for `purpose`, if recorded.
pub async fn get<'c, E>(conn: E, purpose: &str) -> Result<Option<Sealed>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let row = sqlx::query("SELECT key_id, nonce, ciphertext, tag FROM keyring WHERE purpose = $1")
        .bind(purpose.to_owned())
        .fetch_optional(conn)
        .await?;
    row.map(|row| {
        Ok(Sealed {
            key_id: row.try_get("key_id")?,
            nonce: row.try_get("nonce")?,
            ciphertext: row.try_get("ciphertext")?,
            tag: row.try_get("tag")?,
        })
    })
    .transpose()
}

/// Records `sealed` for `purpose` unless a row exists (first start wins when
/// several hosts start together).
pub async fn insert_if_absent(
    conn: &mut AnyConnection,
    purpose: &str,
    sealed: &Sealed,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO keyring (purpose, key_id, nonce, ciphertext, tag, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (purpose) DO NOTHING",
    )
    .bind(purpose.to_owned())
    .bind(sealed.key_id.clone())
    .bind(sealed.nonce.clone())
    .bind(sealed.ciphertext.clone())
    .bind(sealed.tag.clone())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Replaces the sealed value for `purpose` if it is still sealed by `expected_key_id`.
pub async fn reseal(
    conn: &mut AnyConnection,
    purpose: &str,
    expected_key_id: &str,
    sealed: &Sealed,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE keyring SET key_id = $1, nonce = $2, ciphertext = $3, tag = $4, updated_at = $5 \
         WHERE purpose = $6 AND key_id = $7",
    )
    .bind(sealed.key_id.clone())
    .bind(sealed.nonce.clone())
    .bind(sealed.ciphertext.clone())
    .bind(sealed.tag.clone())
    .bind(now)
    .bind(purpose.to_owned())
    .bind(expected_key_id.to_owned())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes the row for `purpose`, if any.
pub async fn delete(conn: &mut AnyConnection, purpose: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM keyring WHERE purpose = $1")
        .bind(purpose.to_owned())
        .execute(&mut *conn)
        .await?;
    Ok(())
}
