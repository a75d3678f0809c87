//! API tokens: `kw_<id>_<secret>`, 16 hex digits of public id and 32 random
//! bytes of secret (base64url). The store keeps the SHA-256 of the whole
//! token; the token itself is shown once, when it is created.
//!
//! Checking a token is a primary-key read by its id and a constant-time
//! comparison of hashes, so the time taken says nothing about how much of a
//! guess was right.
//!
//! A token that checked out is remembered for [`CACHE_TTL`] (its hash, never
//! the token), so a steady stream of requests does not read the same row for
//! each one. Revocation still wins: [`Tokens::revoke`] drops the entry at
//! once, so on the revoking host the next request is refused; another host
//! sharing the database (or a `keyward token revoke` beside a running
//! server) reads the row again at most [`CACHE_TTL`] after the revocation
//! committed, because an entry counts its age from before the read that
//! verified it.
//!
//! (Over 500 lines: token format, check, cache and life cycle share the
//! cache's invariants; 190 lines are unit tests.)

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::policy::{Capability, Policy};
use super::AuthError;
use crate::crypto::ct_eq;
use crate::store::tokens::{self, TokenRow};
use crate::store::{now_ms, Db};

/// The prefix of every token (so secret scanners and people recognise one).
pub const PREFIX: &str = "kw_";
const ID_HEX: usize = 16;
const SECRET_B64: usize = 43;
/// The length of every token.
pub const TOKEN_LEN: usize = PREFIX.len() + ID_HEX + 1 + SECRET_B64;

/// How stale `last_used_at` may get before a request updates it: recording
/// every request would put a write on the hot path.
const TOUCH_EVERY_MS: i64 = 60_000;

/// How long a verified token is trusted without reading its row again: the
/// longest a revocation made on another host (or by the CLI) can take to
/// reach this one. A revocation through the same [`Tokens`] (the HTTP
/// `DELETE /tokens/{id}`) takes effect at once.
pub const CACHE_TTL: Duration = Duration::from_secs(1);

/// The longest a token may be made to last (ten years): beyond it, "does
/// not expire" says what is meant.
pub const MAX_TTL: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

/// The longest a rotated token's old value may stay accepted.
pub const MAX_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Most tokens remembered at once; when full, the cache starts over.
const CACHE_MAX: usize = 4096;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Everything, including every change.
    Operator,
    /// Render templates and read metadata; no changes.
    Resolver,
}

impl Role {
    /// Parses `operator` or `resolver`.
    pub fn parse(text: &str) -> Result<Role, AuthError> {
        match text {
            "operator" => Ok(Role::Operator),
            "resolver" => Ok(Role::Resolver),
            _ => Err(AuthError::BadRole(text.chars().take(32).collect())),
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Resolver => "resolver",
        }
    }

    /// Whether this role may do what `needed` may.
    pub fn allows(self, needed: Role) -> bool {
        self == Role::Operator || needed == Role::Resolver
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a new token is allowed beyond its name and role.
#[derive(Default)]
pub struct Grant {
    /// How long it lasts (none: it does not expire).
    pub ttl: Option<Duration>,
    /// Its policy (none: its role's preset).
    pub policy: Option<Policy>,
}

/// A whole token, as handed to its owner once. No `Debug`, zeroed on drop.
pub struct ApiToken(Zeroizing<String>);

impl ApiToken {
    /// The token text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Who a token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The token's public id.
    pub token_id: String,
    /// The token's name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its policy; none: its role's preset (everything the role allows).
    pub policy: Option<Arc<Policy>>,
}

impl Caller {
    /// The accessor recorded in the access log: `token:<name>#<id>`.
    pub fn accessor(&self) -> String {
        format!("token:{}#{}", self.name, self.token_id)
    }

    /// Ok if the caller may make requests of this kind (a token without a
    /// policy may make every kind its role allows).
    pub fn may(&self, capability: Capability) -> Result<(), AuthError> {
        match &self.policy {
            Some(policy) if !policy.can(capability) => Err(AuthError::NotPermitted(format!(
                "this token's policy does not allow {}",
                capability.as_str()
            ))),
            _ => Ok(()),
        }
    }

    /// Ok if the caller's role allows what `needed` may do.
    pub fn require(&self, needed: Role) -> Result<(), AuthError> {
        if self.role.allows(needed) {
            Ok(())
        } else {
            Err(AuthError::Forbidden {
                needed: needed.as_str(),
                held: self.role.as_str(),
            })
        }
    }
}

/// Checks a token name: 1–64 characters of letters, digits, space, `.`,
/// `_` or `-`, not only spaces.
pub fn check_name(name: &str) -> Result<(), AuthError> {
    let ok = !name.trim().is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(AuthError::BadName(name.chars().take(64).collect()))
    }
}

/// Shortest legacy client key accepted (see [`legacy_id`]).
pub const LEGACY_MIN_LEN: usize = 16;
/// Longest legacy client key accepted.
pub const LEGACY_MAX_LEN: usize = 512;
/// The id prefix of a token imported from a legacy client key.
pub const LEGACY_ID_PREFIX: &str = "legacy-";

/// The public id of a legacy client API key imported by a migration
/// (`legacy-` + 16 hex digits of an HMAC-SHA256 of it under `id_key`, a key
/// derived from the master key: a bare hash prefix, shown by `token list`
/// and in logs, would let anyone confirm a guessed key offline), or `None`
/// if the text cannot be one (see [`is_legacy_key`]). Clients keep
/// presenting the key they have; it is stored, like every token, as its
/// SHA-256 only, and found by that hash.
pub fn legacy_id(id_key: &[u8; 32], key: &str) -> Option<String> {
    use hmac::{Hmac, Mac};
    is_legacy_key(key).then(|| {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(id_key).expect("HMAC takes any key size");
        mac.update(key.as_bytes());
        let digest = mac.finalize().into_bytes();
        format!("{LEGACY_ID_PREFIX}{}", &hex::encode(digest)[..ID_HEX])
    })
}

/// Whether `key` can be a legacy client key: [`LEGACY_MIN_LEN`] to
/// [`LEGACY_MAX_LEN`] printable ASCII characters, not shaped like a `kw_`
/// token.
pub fn is_legacy_key(key: &str) -> bool {
    (LEGACY_MIN_LEN..=LEGACY_MAX_LEN).contains(&key.len())
        && key.bytes().all(|b| b.is_ascii_graphic())
        && !key.starts_with(PREFIX)
}

/// A fresh `kw_<id>_<secret>` token for `id`.
fn new_token(id: &str) -> ApiToken {
    let mut secret = Zeroizing::new([0u8; 32]);
    crate::crypto::fill_random(secret.as_mut());
    let token = ApiToken(Zeroizing::new(format!(
        "{PREFIX}{id}_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret.as_ref())
    )));
    debug_assert!(kw_id_of(token.expose()).is_some());
    token
}

/// The stored hash of a token or legacy key.
pub fn token_hash(token: &str) -> [u8; 32] {
    hash(token)
}

/// The id of a presented `kw_<id>_<secret>` token; `None` if it is not
/// one (a legacy client key is found by its hash, see
/// [`Tokens::authenticate`]).
fn id_of(token: &str) -> Option<&str> {
    if token.starts_with(PREFIX) {
        return kw_id_of(token);
    }
    None
}

/// Splits `kw_<id>_<secret>` and returns the id, or `None` if the text is
/// not shaped like a token.
fn kw_id_of(token: &str) -> Option<&str> {
    if token.len() != TOKEN_LEN || !token.is_ascii() {
        return None;
    }
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_at(ID_HEX);
    let secret = secret.strip_prefix('_')?;
    let id_ok = id
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let secret_ok = secret
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (id_ok && secret_ok).then_some(id)
}

/// The id of the legacy key whose stored hash is `hash`.
async fn tokens_by_hash(db: &Db, hash: &[u8; 32]) -> Result<Option<String>, sqlx::Error> {
    use sqlx::Row as _;
    let row = sqlx::query("SELECT id FROM api_token WHERE hash = $1 AND id LIKE 'legacy-%'")
        .bind(hash.to_vec())
        .fetch_optional(db.reader())
        .await?;
    row.map(|r| r.try_get::<String, _>("id")).transpose()
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A token that checked out against its row, and when that check began.
struct Verified {
    /// SHA-256 of the whole token (as stored; the token itself is not kept).
    hash: [u8; 32],
    caller: Caller,
    last_used_at: Option<i64>,
    /// When the token expires, if it does: a remembered token is refused
    /// from then on like any other.
    expires_at: Option<i64>,
    /// Taken before the row was read: the entry's age covers the read.
    checked: Instant,
}

#[derive(Default)]
struct Cache {
    by_id: HashMap<String, Verified>,
    /// Moves on every revocation through this [`Tokens`]. A verification
    /// that began under an older epoch is not remembered: its read may
    /// predate the revocation.
    epoch: u64,
}

/// API tokens in one store.
#[derive(Clone)]
pub struct Tokens {
    db: Db,
    cache: Arc<Mutex<Cache>>,
    ttl: Duration,
}

impl Tokens {
    /// Tokens in `db`, verified tokens remembered for [`CACHE_TTL`].
    pub fn new(db: Db) -> Self {
        Self::with_cache_ttl(db, CACHE_TTL)
    }

    /// Tokens in `db`, verified tokens remembered for `ttl` (zero: never).
    pub fn with_cache_ttl(db: Db, ttl: Duration) -> Self {
        Tokens {
            db,
            cache: Arc::default(),
            ttl,
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates a token that does not expire. The returned [`ApiToken`] is
    /// the only copy.
    pub async fn create(&self, name: &str, role: Role) -> Result<(TokenRow, ApiToken), AuthError> {
        self.create_with(name, role, Grant::default()).await
    }

    /// Creates a token with what `grant` says: refused from `ttl` after now
    /// on (none: never; at most [`MAX_TTL`]), and held to `policy` (a
    /// resolver's only). The returned [`ApiToken`] is the only copy.
    pub async fn create_with(
        &self,
        name: &str,
        role: Role,
        grant: Grant,
    ) -> Result<(TokenRow, ApiToken), AuthError> {
        check_name(name)?;
        let policy = match grant.policy {
            None => None,
            // An operator may change anything, policies included: a
            // narrow operator token would be a false promise.
            Some(_) if role == Role::Operator => {
                return Err(AuthError::BadPolicy(
                    "only resolver tokens take a policy; an operator token may do everything"
                        .into(),
                ))
            }
            Some(p) => {
                p.check().map_err(|e| AuthError::BadPolicy(e.to_string()))?;
                Some(p.to_json())
            }
        };
        let ttl_ms = match grant.ttl {
            None => None,
            Some(t) if t.is_zero() || t > MAX_TTL => return Err(AuthError::BadTtl),
            Some(t) => Some(i64::try_from(t.as_millis()).map_err(|_| AuthError::BadTtl)?),
        };
        let mut id_bytes = [0u8; ID_HEX / 2];
        crate::crypto::fill_random(&mut id_bytes);
        let id = hex::encode(id_bytes);
        let token = new_token(&id);
        let row = TokenRow {
            id,
            name: name.to_owned(),
            role: role.as_str().to_owned(),
            created_at: now_ms(),
            last_used_at: None,
            revoked_at: None,
            expires_at: None,
            policy,
        };
        let row = TokenRow {
            expires_at: ttl_ms.map(|ms| row.created_at.saturating_add(ms)),
            ..row
        };
        tokens::insert(&mut *self.db.writer().await?, &row, &hash(token.expose())).await?;
        Ok((row, token))
    }

    /// Every token, newest first (revoked ones too).
    pub async fn list(&self) -> Result<Vec<TokenRow>, AuthError> {
        Ok(tokens::list(self.db.reader()).await?)
    }

    /// Revokes the active token `id`. From the moment this returns, this
    /// [`Tokens`] refuses it (other hosts within [`CACHE_TTL`]).
    pub async fn revoke(&self, id: &str) -> Result<(), AuthError> {
        let revoked = tokens::revoke(&mut *self.db.writer().await?, id, now_ms()).await;
        // Forget it whatever the outcome: the row may have changed anyway.
        self.forget(id);
        if revoked? {
            Ok(())
        } else {
            Err(AuthError::NotFound(id.chars().take(32).collect()))
        }
    }

    /// Gives the active token `id` a new value (same id, name, role and
    /// expiry); the old value stays accepted for `grace` (zero: refused at
    /// once), at most [`MAX_GRACE`]. The returned [`ApiToken`] is the only
    /// copy. A legacy client key cannot be rotated: its id is derived from
    /// the key itself.
    pub async fn rotate(
        &self,
        id: &str,
        grace: Duration,
    ) -> Result<(TokenRow, ApiToken, Option<i64>), AuthError> {
        let not_found = || AuthError::NotFound(id.chars().take(32).collect());
        if id.starts_with(LEGACY_ID_PREFIX) {
            return Err(AuthError::Legacy(id.chars().take(32).collect()));
        }
        if kw_id_of(&format!("{PREFIX}{id}_{}", "A".repeat(SECRET_B64))).is_none() {
            return Err(not_found());
        }
        if grace > MAX_GRACE {
            return Err(AuthError::BadGrace);
        }
        let token = new_token(id);
        let now = now_ms();
        let grace_ms = i64::try_from(grace.as_millis()).map_err(|_| AuthError::BadGrace)?;
        let until = (!grace.is_zero()).then(|| now.saturating_add(grace_ms));
        let rotated = tokens::rotate(
            &mut *self.db.writer().await?,
            id,
            &hash(token.expose()),
            until,
        )
        .await;
        // Forget it whatever the outcome: the row may have changed anyway.
        self.forget(id);
        if !rotated? {
            return Err(not_found());
        }
        let (row, _) = tokens::get(self.db.reader(), id)
            .await?
            .ok_or_else(not_found)?;
        Ok((row, token, until))
    }

    fn forget(&self, id: &str) {
        let mut cache = self.cache();
        cache.epoch += 1;
        cache.by_id.remove(id);
    }

    /// Who `presented` belongs to. Malformed, unknown, wrong and revoked
    /// tokens all give [`AuthError::Invalid`].
    pub async fn authenticate(&self, presented: &str) -> Result<Caller, AuthError> {
        let presented_hash = hash(presented);
        let legacy;
        let id = match id_of(presented) {
            Some(id) => id,
            None if is_legacy_key(presented) => {
                // A legacy key's id is keyed by the master key, which this
                // does not hold: the row is found by the key's hash.
                legacy = tokens_by_hash(&self.db, &presented_hash)
                    .await?
                    .ok_or(AuthError::Invalid)?;
                legacy.as_str()
            }
            None => return Err(AuthError::Invalid),
        };
        let (epoch, checked) = match self.remembered(id, &presented_hash) {
            Remembered::Valid(caller, None) => return Ok(caller),
            Remembered::Valid(caller, Some(now)) => {
                // Recording the last use must not hold a request up while
                // the database is unreachable: it is skipped then.
                if !self.db.seems_unreachable() {
                    self.touch(&caller.token_id, now).await;
                }
                return Ok(caller);
            }
            Remembered::Unknown { epoch, checked } => (epoch, checked),
        };
        let Some((row, stored)) = self.db.bounded(tokens::get(self.db.reader(), id)).await? else {
            return Err(AuthError::Invalid);
        };
        let now = now_ms();
        let current = ct_eq(&presented_hash, &stored.current);
        // The value a rotation replaced, while its grace period lasts. Both
        // comparisons always run: the time taken does not say which matched.
        let (previous_hash, previous_until) = stored.previous.unwrap_or_default();
        let previous = ct_eq(&presented_hash, &previous_hash) && now < previous_until;
        if !(current || previous) || row.revoked_at.is_some() || row.expired(now) {
            return Err(AuthError::Invalid);
        }
        // A remembered old value is good only as long as its grace period.
        let expires_at = match (row.expires_at, current) {
            (at, true) => at,
            (Some(at), false) => Some(at.min(previous_until)),
            (None, false) => Some(previous_until),
        };
        let role = Role::parse(&row.role).map_err(|_| AuthError::Invalid)?;
        // A stored policy that does not read back refuses the token: it
        // must never fall back to the role's wider preset.
        let policy = match &row.policy {
            None => None,
            Some(text) => match Policy::from_json(text) {
                Ok(p) => Some(Arc::new(p)),
                Err(e) => {
                    tracing::error!(token = %row.id, error = %e, "a token's stored policy does not read; the token is refused");
                    return Err(AuthError::Invalid);
                }
            },
        };
        let caller = Caller {
            token_id: row.id,
            name: row.name,
            role,
            policy,
        };
        let mut last_used_at = row.last_used_at;
        if last_used_at.is_none_or(|at| now - at >= TOUCH_EVERY_MS) {
            self.touch(&caller.token_id, now).await;
            last_used_at = Some(now);
        }
        self.remember(
            epoch,
            Verified {
                hash: presented_hash,
                caller: caller.clone(),
                last_used_at,
                expires_at,
                checked,
            },
        );
        Ok(caller)
    }

    /// What the cache says about token `id` presented with this hash. A
    /// valid entry also says whether its last use is due to be recorded
    /// (and marks it recorded, so one request does it).
    fn remembered(&self, id: &str, presented_hash: &[u8; 32]) -> Remembered {
        let now = Instant::now();
        let mut cache = self.cache();
        let epoch = cache.epoch;
        if let Some(entry) = cache.by_id.get_mut(id) {
            let fresh = now.saturating_duration_since(entry.checked) < self.ttl
                && entry.expires_at.is_none_or(|at| at > now_ms());
            // Another secret with a remembered id is checked against the row
            // like any other guess (the entry stays): a wrong guess takes
            // the same time whether or not the id was used a moment ago.
            if fresh && ct_eq(presented_hash, &entry.hash) {
                let now_ms = now_ms();
                let touch = entry
                    .last_used_at
                    .is_none_or(|at| now_ms - at >= TOUCH_EVERY_MS)
                    .then(|| {
                        entry.last_used_at = Some(now_ms);
                        now_ms
                    });
                return Remembered::Valid(entry.caller.clone(), touch);
            }
            if !fresh {
                cache.by_id.remove(id);
            }
        }
        Remembered::Unknown {
            epoch,
            checked: now,
        }
    }

    /// Remembers a verification that began at `epoch`, unless a revocation
    /// came through since.
    fn remember(&self, epoch: u64, verified: Verified) {
        if self.ttl.is_zero() {
            return;
        }
        let mut cache = self.cache();
        if cache.epoch != epoch {
            return;
        }
        if cache.by_id.len() >= CACHE_MAX {
            cache.by_id.clear();
        }
        cache
            .by_id
            .insert(verified.caller.token_id.clone(), verified);
    }

    /// Records the token's last use. Best effort: a failed bookkeeping write
    /// must not fail the request.
    async fn touch(&self, id: &str, now: i64) {
        let touched = match self.db.writer().await {
            Ok(mut w) => tokens::touch(&mut w, id, now).await,
            Err(e) => Err(e),
        };
        if let Err(e) = touched {
            tracing::warn!(token = %id, error = %e, "cannot record the token's last use");
        }
    }
}

enum Remembered {
    /// Verified within the TTL; `Some(now)` if its last use is to be recorded.
    Valid(Caller, Option<i64>),
    /// Not remembered, expired, or not the remembered token: read the row.
    Unknown { epoch: u64, checked: Instant },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles() {
        assert!(Role::Operator.allows(Role::Resolver));
        assert!(Role::Operator.allows(Role::Operator));
        assert!(Role::Resolver.allows(Role::Resolver));
        assert!(!Role::Resolver.allows(Role::Operator));
        assert!(Role::parse("admin").is_err());
        assert!(Role::parse("Operator").is_err());
    }

    #[test]
    fn only_well_shaped_tokens_have_an_id() {
        let good = format!("kw_0123456789abcdef_{}", "A".repeat(SECRET_B64));
        assert_eq!(id_of(&good), Some("0123456789abcdef"));
        for bad in [
            String::new(),
            "kw_".into(),
            good.replace("kw_", "kx_"),
            good.replace("0123", "0X23"),
            format!("{good}A"),
            good[..good.len() - 1].to_owned(),
            good.replacen('A', "é", 1),
            good.replacen('A', "/", 1),
            good.replacen("_A", "-A", 1),
        ] {
            assert_eq!(kw_id_of(&bad), None, "{bad:?}");
            // A malformed `kw_` token is never taken for a legacy key.
            if bad.starts_with(PREFIX) {
                assert_eq!(id_of(&bad), None, "{bad:?}");
            }
        }
    }

    #[test]
    fn legacy_keys_get_an_id_keyed_by_the_master_key() {
        let (k1, k2) = ([1u8; 32], [2u8; 32]);
        let key = "sk-legacy-0123456789abcdef";
        let id = legacy_id(&k1, key).expect("a legacy id");
        assert!(id.starts_with(LEGACY_ID_PREFIX) && id.len() == LEGACY_ID_PREFIX.len() + ID_HEX);
        assert_eq!(id_of(key), None, "found by its hash, not by an id");
        assert_ne!(
            legacy_id(&k1, "sk-legacy-0123456789abcdeF"),
            Some(id.clone())
        );
        assert_ne!(legacy_id(&k2, key), Some(id.clone()), "keyed");
        let bare = hex::encode(Sha256::digest(key.as_bytes()));
        assert!(
            !bare.starts_with(&id[LEGACY_ID_PREFIX.len()..]),
            "not a bare hash"
        );
        for bad in [
            "short",
            "has a space in it ok",
            "kw_looks_like_ours_1234",
            "tab\there-0123456789",
        ] {
            assert_eq!(legacy_id(&k1, bad), None, "{bad:?}");
        }
        assert_eq!(legacy_id(&k1, &"x".repeat(LEGACY_MAX_LEN + 1)), None);
    }

    async fn store() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/tokens.db", dir.path().display());
        let db = Db::connect(&url).await.expect("connect");
        db.migrate().await.expect("migrate");
        (dir, db)
    }

    fn refused(result: Result<Caller, AuthError>) -> bool {
        matches!(result, Err(AuthError::Invalid))
    }

    #[tokio::test]
    async fn a_revocation_through_the_same_tokens_takes_effect_at_once() {
        let (_dir, db) = store().await;
        // A long TTL: only the revocation itself can end the entry.
        let tokens = Tokens::with_cache_ttl(db, Duration::from_secs(3600));
        let (row, token) = tokens.create("a", Role::Resolver).await.expect("create");
        let (_, other) = tokens.create("b", Role::Operator).await.expect("create");
        tokens.authenticate(token.expose()).await.expect("valid");
        tokens.authenticate(other.expose()).await.expect("valid");
        assert!(tokens.cache().by_id.contains_key(&row.id), "remembered");
        // The HTTP state holds clones: they share one cache.
        tokens.clone().revoke(&row.id).await.expect("revoke");
        assert!(refused(tokens.authenticate(token.expose()).await));
        tokens
            .authenticate(other.expose())
            .await
            .expect("the other still works");
    }

    #[tokio::test]
    async fn a_revocation_elsewhere_takes_effect_within_the_ttl() {
        let (_dir, db) = store().await;
        let ttl = Duration::from_millis(300);
        let here = Tokens::with_cache_ttl(db.clone(), ttl);
        // Another host on the same database: a cache of its own.
        let elsewhere = Tokens::new(db);
        let (row, token) = elsewhere.create("a", Role::Resolver).await.expect("create");
        here.authenticate(token.expose()).await.expect("valid");
        assert!(here.cache().by_id.contains_key(&row.id), "remembered");
        elsewhere.revoke(&row.id).await.expect("revoke");
        let revoked = Instant::now();
        loop {
            let since = revoked.elapsed();
            let result = here.authenticate(token.expose()).await;
            if refused(result) {
                break;
            }
            assert!(
                since < ttl,
                "accepted {since:?} after its revocation (bound {ttl:?})"
            );
            assert!(since < ttl * 10, "never refused");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(refused(here.authenticate(token.expose()).await));
    }

    #[tokio::test]
    async fn a_check_that_began_before_a_revocation_is_not_remembered() {
        let (_dir, db) = store().await;
        let tokens = Tokens::with_cache_ttl(db, Duration::from_secs(3600));
        let (row, token) = tokens.create("a", Role::Resolver).await.expect("create");
        let presented = hash(token.expose());
        let Remembered::Unknown { epoch, checked } = tokens.remembered(&row.id, &presented) else {
            panic!("nothing is remembered yet");
        };
        // The row was read (not revoked), then the revocation came through
        // before the answer was remembered.
        tokens.revoke(&row.id).await.expect("revoke");
        tokens.remember(
            epoch,
            Verified {
                hash: presented,
                caller: Caller {
                    token_id: row.id.clone(),
                    name: row.name.clone(),
                    role: Role::Resolver,
                    policy: None,
                },
                last_used_at: None,
                expires_at: None,
                checked,
            },
        );
        assert!(!tokens.cache().by_id.contains_key(&row.id));
        assert!(refused(tokens.authenticate(token.expose()).await));
    }

    #[tokio::test]
    async fn a_remembered_id_with_another_secret_is_refused() {
        let (_dir, db) = store().await;
        let tokens = Tokens::new(db.clone());
        let (row, token) = tokens.create("a", Role::Resolver).await.expect("create");
        tokens.authenticate(token.expose()).await.expect("valid");
        let mut forged = token.expose().to_owned();
        let last = forged.pop().expect("non-empty");
        forged.push(if last == 'A' { 'B' } else { 'A' });
        assert!(refused(tokens.authenticate(&forged).await));
        // The guess was checked against the row; the real token's entry stays.
        assert!(tokens.cache().by_id.contains_key(&row.id));
        tokens
            .authenticate(token.expose())
            .await
            .expect("still valid");
        // A zero TTL remembers nothing.
        let uncached = Tokens::with_cache_ttl(db, Duration::ZERO);
        uncached.authenticate(token.expose()).await.expect("valid");
        assert!(uncached.cache().by_id.is_empty());
    }

    #[test]
    fn names() {
        for ok in ["deploy", "ci runner-2", "a.b_c"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "   ", "tab\there", "semi;colon", "ünï", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
