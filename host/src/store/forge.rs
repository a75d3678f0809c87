//! `operator_oauth_tokens`, `service_settings` and `oauth_pending`: the
//! operators' forge tokens (sealed by the caller), the active forge, and
//! sign-ins in progress. Functions that must share a transaction take a
//! connection.
//!
//! (Over 500 lines: three small tables that the sign-in and refresh code
//! changes together, in shared transactions.)

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Connection, Row};

use super::Reader;

use crate::crypto::Sealed;

/// The `service_settings` key of the active forge.
pub const ACTIVE_FORGE: &str = "active_forge_type";

/// One operator token row.
#[derive(Clone, Debug)]
pub struct OAuthTokenRow {
    /// The forge plugin's name.
    pub forge_type: String,
    /// The access token, sealed.
    pub access: Sealed,
    /// The refresh token, sealed, if the forge issued one.
    pub refresh: Option<Sealed>,
    /// Expiry of the access token (ms), if known.
    pub expires_at: Option<i64>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The account's login.
    pub account_login: String,
    /// The account's id.
    pub account_id: String,
    /// The account's e-mail address, when the forge showed it at sign-in.
    pub account_email: Option<String>,
    /// The forge's base URL.
    pub base_url: String,
    /// Moves on every change of the tokens.
    pub generation: i64,
    /// Created (ms).
    pub created_at: i64,
    /// Last written (ms).
    pub updated_at: i64,
}

/// A sign-in's tokens, to upsert.
pub struct NewToken {
    /// The forge plugin's name.
    pub forge_type: String,
    /// The access token, sealed.
    pub access: Sealed,
    /// The refresh token, sealed.
    pub refresh: Option<Sealed>,
    /// Expiry (ms).
    pub expires_at: Option<i64>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The account's login.
    pub account_login: String,
    /// The account's id.
    pub account_id: String,
    /// The account's e-mail address, if the forge showed it.
    pub account_email: Option<String>,
    /// The forge's base URL.
    pub base_url: String,
    /// Now (ms).
    pub now: i64,
}

/// A refresh's new tokens.
pub struct Refreshed {
    /// The new access token, sealed.
    pub access: Sealed,
    /// The refresh token to keep (new, or the old one).
    pub refresh: Option<Sealed>,
    /// Expiry (ms).
    pub expires_at: Option<i64>,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Now (ms).
    pub now: i64,
}

const COLUMNS: &str = "forge_type, access_key_id, access_nonce, access_ciphertext, access_tag, \
     refresh_key_id, refresh_nonce, refresh_ciphertext, refresh_tag, expires_at, scopes, \
     account_login, account_id, account_email, base_url, generation, created_at, updated_at";

fn row_of(row: &AnyRow) -> Result<OAuthTokenRow, sqlx::Error> {
    let refresh_key: Option<String> = row.try_get("refresh_key_id")?;
    let refresh = match refresh_key {
        Some(key_id) => Some(Sealed {
            key_id,
            nonce: row
                .try_get::<Option<Vec<u8>>, _>("refresh_nonce")?
                .unwrap_or_default(),
            ciphertext: row
                .try_get::<Option<Vec<u8>>, _>("refresh_ciphertext")?
                .unwrap_or_default(),
            tag: row
                .try_get::<Option<Vec<u8>>, _>("refresh_tag")?
                .unwrap_or_default(),
        }),
        None => None,
    };
    let scopes: String = row.try_get("scopes")?;
    Ok(OAuthTokenRow {
        forge_type: row.try_get("forge_type")?,
        access: Sealed {
            key_id: row.try_get("access_key_id")?,
            nonce: row.try_get("access_nonce")?,
            ciphertext: row.try_get("access_ciphertext")?,
            tag: row.try_get("access_tag")?,
        },
        refresh,
        expires_at: row.try_get("expires_at")?,
        scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        account_login: row.try_get("account_login")?,
        account_id: row.try_get("account_id")?,
        account_email: row.try_get("account_email")?,
        base_url: row.try_get("base_url")?,
        generation: row.try_get("generation")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// The token row of `forge_type`.
pub async fn get_token(
    db: Reader<'_>,
    forge_type: &str,
) -> Result<Option<OAuthTokenRow>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM operator_oauth_tokens WHERE forge_type = $1"
    ))
    .bind(forge_type.to_owned())
    .fetch_optional(db)
    .await?;
    row.as_ref().map(row_of).transpose()
}

/// Every token row, by forge.
pub async fn list_tokens(db: Reader<'_>) -> Result<Vec<OAuthTokenRow>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM operator_oauth_tokens ORDER BY forge_type"
    ))
    .fetch_all(db)
    .await?;
    rows.iter().map(row_of).collect()
}

/// Inserts or replaces the row of `t.forge_type` (a new sign-in): the
/// generation moves on and any refresh lease is dropped.
pub async fn upsert_token(conn: &mut AnyConnection, t: &NewToken) -> Result<(), sqlx::Error> {
    let refresh = t.refresh.as_ref();
    sqlx::query(
        "INSERT INTO operator_oauth_tokens (forge_type, access_key_id, access_nonce, \
         access_ciphertext, access_tag, refresh_key_id, refresh_nonce, refresh_ciphertext, \
         refresh_tag, expires_at, scopes, account_login, account_id, base_url, generation, \
         refresh_holder, refresh_until, created_at, updated_at, account_email) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 1, NULL, NULL, $15, $15, $16) \
         ON CONFLICT (forge_type) DO UPDATE SET access_key_id = excluded.access_key_id, \
         access_nonce = excluded.access_nonce, access_ciphertext = excluded.access_ciphertext, \
         access_tag = excluded.access_tag, refresh_key_id = excluded.refresh_key_id, \
         refresh_nonce = excluded.refresh_nonce, refresh_ciphertext = excluded.refresh_ciphertext, \
         refresh_tag = excluded.refresh_tag, expires_at = excluded.expires_at, \
         scopes = excluded.scopes, account_login = excluded.account_login, \
         account_id = excluded.account_id, base_url = excluded.base_url, \
         account_email = excluded.account_email, generation = operator_oauth_tokens.generation + 1, refresh_holder = NULL, \
         refresh_until = NULL, updated_at = excluded.updated_at",
    )
    .bind(t.forge_type.clone())
    .bind(t.access.key_id.clone())
    .bind(t.access.nonce.clone())
    .bind(t.access.ciphertext.clone())
    .bind(t.access.tag.clone())
    .bind(refresh.map(|r| r.key_id.clone()))
    .bind(refresh.map(|r| r.nonce.clone()))
    .bind(refresh.map(|r| r.ciphertext.clone()))
    .bind(refresh.map(|r| r.tag.clone()))
    .bind(t.expires_at)
    .bind(t.scopes.join(" "))
    .bind(t.account_login.clone())
    .bind(t.account_id.clone())
    .bind(t.base_url.clone())
    .bind(t.now)
    .bind(t.account_email.clone())
    .execute(&mut *conn)
    .await?;
    forget_refresh_answers(conn, &t.forge_type).await
}

/// Kept refresh answers belong to the tokens they refreshed: a new sign-in
/// or a deleted row makes them meaningless (and a re-created row starts
/// again at generation 1, where an old answer must not be replayed).
async fn forget_refresh_answers(
    conn: &mut AnyConnection,
    forge_type: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM oauth_refresh_answer WHERE forge_type = $1")
        .bind(forge_type.to_owned())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Deletes the row of `forge_type`; false if there was none.
pub async fn delete_token(conn: &mut AnyConnection, forge_type: &str) -> Result<bool, sqlx::Error> {
    let mut tx = conn.begin().await?;
    let done = sqlx::query("DELETE FROM operator_oauth_tokens WHERE forge_type = $1")
        .bind(forge_type.to_owned())
        .execute(&mut *tx)
        .await?;
    forget_refresh_answers(&mut tx, forge_type).await?;
    tx.commit().await?;
    Ok(done.rows_affected() > 0)
}

/// Takes the refresh lease of `forge_type` for `holder` until `until`, if
/// the row is still at `generation` and no live lease is held. One UPDATE
/// decides, so of racing hosts exactly one gets it.
pub async fn take_refresh_lease(
    conn: &mut AnyConnection,
    forge_type: &str,
    generation: i64,
    holder: &str,
    now: i64,
    until: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE operator_oauth_tokens SET refresh_holder = $1, refresh_until = $2 \
         WHERE forge_type = $3 AND generation = $4 \
         AND (refresh_until IS NULL OR refresh_until <= $5)",
    )
    .bind(holder.to_owned())
    .bind(until)
    .bind(forge_type.to_owned())
    .bind(generation)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores a refresh's tokens if the row is still at `generation` (the one
/// refreshed from), whoever holds the lease now: the forge has already
/// spent the old refresh token, so the new set must stand. In the same
/// transaction the generation moves on, the lease is dropped and the kept
/// answers of this and older generations go. False when another host
/// stored this refresh first.
pub async fn finish_refresh(
    conn: &mut AnyConnection,
    forge_type: &str,
    generation: i64,
    r: &Refreshed,
) -> Result<bool, sqlx::Error> {
    let mut tx = conn.begin().await?;
    let refresh = r.refresh.as_ref();
    let done = sqlx::query(
        "UPDATE operator_oauth_tokens SET access_key_id = $1, access_nonce = $2, \
         access_ciphertext = $3, access_tag = $4, refresh_key_id = $5, refresh_nonce = $6, \
         refresh_ciphertext = $7, refresh_tag = $8, expires_at = $9, scopes = $10, \
         generation = generation + 1, refresh_holder = NULL, refresh_until = NULL, \
         updated_at = $11 WHERE forge_type = $12 AND generation = $13",
    )
    .bind(r.access.key_id.clone())
    .bind(r.access.nonce.clone())
    .bind(r.access.ciphertext.clone())
    .bind(r.access.tag.clone())
    .bind(refresh.map(|x| x.key_id.clone()))
    .bind(refresh.map(|x| x.nonce.clone()))
    .bind(refresh.map(|x| x.ciphertext.clone()))
    .bind(refresh.map(|x| x.tag.clone()))
    .bind(r.expires_at)
    .bind(r.scopes.join(" "))
    .bind(r.now)
    .bind(forge_type.to_owned())
    .bind(generation)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM oauth_refresh_answer WHERE forge_type = $1 AND generation <= $2")
        .bind(forge_type.to_owned())
        .bind(generation)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// Keeps the forge's answer to a refresh of `generation` (sealed), before
/// anyone reads it: from here on the refresh can be finished by any host.
pub async fn keep_refresh_answer(
    conn: &mut AnyConnection,
    forge_type: &str,
    generation: i64,
    attempt: &str,
    answer: &Sealed,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO oauth_refresh_answer (forge_type, generation, attempt, key_id, nonce, \
         ciphertext, tag, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(forge_type.to_owned())
    .bind(generation)
    .bind(attempt.to_owned())
    .bind(answer.key_id.clone())
    .bind(answer.nonce.clone())
    .bind(answer.ciphertext.clone())
    .bind(answer.tag.clone())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The kept answers to refreshes of `generation`, oldest first, by attempt.
pub async fn kept_refresh_answers(
    db: Reader<'_>,
    forge_type: &str,
    generation: i64,
) -> Result<Vec<(String, Sealed)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT attempt, key_id, nonce, ciphertext, tag FROM oauth_refresh_answer \
         WHERE forge_type = $1 AND generation = $2 ORDER BY created_at, attempt",
    )
    .bind(forge_type.to_owned())
    .bind(generation)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("attempt")?,
                Sealed {
                    key_id: r.try_get("key_id")?,
                    nonce: r.try_get("nonce")?,
                    ciphertext: r.try_get("ciphertext")?,
                    tag: r.try_get("tag")?,
                },
            ))
        })
        .collect()
}

/// Forgets one kept answer (it did not yield tokens).
pub async fn drop_refresh_answer(
    conn: &mut AnyConnection,
    forge_type: &str,
    generation: i64,
    attempt: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM oauth_refresh_answer WHERE forge_type = $1 AND generation = $2 \
         AND attempt = $3",
    )
    .bind(forge_type.to_owned())
    .bind(generation)
    .bind(attempt.to_owned())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Drops `holder`'s lease (a failed refresh), so another may try.
pub async fn release_refresh_lease(
    conn: &mut AnyConnection,
    forge_type: &str,
    holder: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE operator_oauth_tokens SET refresh_holder = NULL, refresh_until = NULL \
         WHERE forge_type = $1 AND refresh_holder = $2",
    )
    .bind(forge_type.to_owned())
    .bind(holder.to_owned())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Re-seals a row's tokens (master-key rotation, in the caller's logged
/// transaction), if its generation is still `generation`; false when it
/// changed meanwhile. Not a token change: the generation stays.
pub async fn reseal_token(
    conn: &mut AnyConnection,
    forge_type: &str,
    generation: i64,
    access: &Sealed,
    refresh: Option<&Sealed>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE operator_oauth_tokens SET access_key_id = $1, access_nonce = $2, \
         access_ciphertext = $3, access_tag = $4, refresh_key_id = $5, refresh_nonce = $6, \
         refresh_ciphertext = $7, refresh_tag = $8 WHERE forge_type = $9 AND generation = $10",
    )
    .bind(access.key_id.clone())
    .bind(access.nonce.clone())
    .bind(access.ciphertext.clone())
    .bind(access.tag.clone())
    .bind(refresh.map(|x| x.key_id.clone()))
    .bind(refresh.map(|x| x.nonce.clone()))
    .bind(refresh.map(|x| x.ciphertext.clone()))
    .bind(refresh.map(|x| x.tag.clone()))
    .bind(forge_type.to_owned())
    .bind(generation)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A setting's value.
pub async fn get_setting(db: Reader<'_>, key: &str) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query("SELECT value FROM service_settings WHERE key = $1")
        .bind(key.to_owned())
        .fetch_optional(db)
        .await?;
    row.map(|r| r.try_get("value")).transpose()
}

/// Sets a setting (in the caller's transaction).
pub async fn set_setting(
    conn: &mut AnyConnection,
    key: &str,
    value: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO service_settings (key, value, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(key.to_owned())
    .bind(value.to_owned())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Removes a setting.
pub async fn clear_setting(conn: &mut AnyConnection, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM service_settings WHERE key = $1")
        .bind(key.to_owned())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Stores a sign-in in progress, bound to the browser whose pre-auth
/// nonce hashes to `browser_hash`.
pub async fn insert_pending(
    conn: &mut AnyConnection,
    state_hash: &str,
    browser_hash: &str,
    forge_type: &str,
    verifier: &Sealed,
    created_at: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO oauth_pending (state_hash, forge_type, key_id, nonce, ciphertext, tag, \
         created_at, expires_at, used_at, browser_hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9)",
    )
    .bind(state_hash.to_owned())
    .bind(forge_type.to_owned())
    .bind(verifier.key_id.clone())
    .bind(verifier.nonce.clone())
    .bind(verifier.ciphertext.clone())
    .bind(verifier.tag.clone())
    .bind(created_at)
    .bind(expires_at)
    .bind(browser_hash.to_owned())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The browser hash of the live, unused sign-in `state_hash`, if there is
/// one (read without using it up: a callback from the wrong browser must
/// leave it for the right one).
pub async fn pending_browser(
    db: Reader<'_>,
    state_hash: &str,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT browser_hash FROM oauth_pending \
         WHERE state_hash = $1 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(state_hash.to_owned())
    .bind(now)
    .fetch_optional(db)
    .await?;
    Ok(row
        .map(|r| r.try_get::<Option<String>, _>("browser_hash"))
        .transpose()?
        .flatten())
}

/// Uses up the sign-in `state_hash` started by the browser `browser_hash`
/// if it is unused and unexpired at `now`: its forge and sealed verifier.
/// One UPDATE decides, so of racing callbacks (on one host or several)
/// exactly one gets it.
pub async fn consume_pending(
    conn: &mut AnyConnection,
    state_hash: &str,
    browser_hash: &str,
    now: i64,
) -> Result<Option<(String, Sealed)>, sqlx::Error> {
    let row = sqlx::query(
        "UPDATE oauth_pending SET used_at = $1 \
         WHERE state_hash = $2 AND used_at IS NULL AND expires_at > $1 AND browser_hash = $3 \
         RETURNING forge_type, key_id, nonce, ciphertext, tag",
    )
    .bind(now)
    .bind(state_hash.to_owned())
    .bind(browser_hash.to_owned())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| {
        Ok((
            r.try_get("forge_type")?,
            Sealed {
                key_id: r.try_get("key_id")?,
                nonce: r.try_get("nonce")?,
                ciphertext: r.try_get("ciphertext")?,
                tag: r.try_get("tag")?,
            },
        ))
    })
    .transpose()
}

/// Sign-ins that have not expired at `now` (used or not: a used row stays
/// until it expires), and when the first of them expires.
pub async fn live_pending(db: Reader<'_>, now: i64) -> Result<(u64, Option<i64>), sqlx::Error> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, MIN(expires_at) AS first FROM oauth_pending WHERE expires_at > $1",
    )
    .bind(now)
    .fetch_one(db)
    .await?;
    let n: i64 = row.try_get("n")?;
    let first: Option<i64> = row.try_get("first")?;
    Ok((u64::try_from(n).unwrap_or(0), first))
}

/// Deletes sign-ins that expired before `now`; returns how many.
pub async fn purge_pending(conn: &mut AnyConnection, now: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM oauth_pending WHERE expires_at <= $1")
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}

/// Deletes sign-ins in progress whose verifier is sealed by a key other than
/// `current_key_id` (master-key rotation); returns how many.
pub async fn delete_pending_sealed_by_other_keys(
    conn: &mut AnyConnection,
    current_key_id: &str,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM oauth_pending WHERE key_id <> $1")
        .bind(current_key_id.to_owned())
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}

/// Pins `login` (lower-cased) of `forge_type` to `account_id` if it is not
/// pinned yet, and answers the id it is pinned to (the first one seen).
pub async fn pin_login(
    conn: &mut AnyConnection,
    forge_type: &str,
    login: &str,
    account_id: &str,
    now: i64,
) -> Result<String, sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::query(
        "INSERT INTO operator_login_pin (forge_type, login, account_id, pinned_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (forge_type, login) DO NOTHING",
    )
    .bind(forge_type.to_owned())
    .bind(login.to_owned())
    .bind(account_id.to_owned())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let pinned: String = sqlx::query(
        "SELECT account_id FROM operator_login_pin WHERE forge_type = $1 AND login = $2",
    )
    .bind(forge_type.to_owned())
    .bind(login.to_owned())
    .fetch_one(&mut *tx)
    .await?
    .try_get("account_id")?;
    tx.commit().await?;
    Ok(pinned)
}
