//! API tokens: `kw_<id>_<secret>`, 16 hex digits of public id and 32 random
//! bytes of secret (base64url). The store keeps the SHA-256 of the whole
//! token; the token itself is shown once, when it is created.
//!
//! Checking a token is a primary-key read by its id and a constant-time
//! comparison of hashes, so the time taken says nothing about how much of a
//! guess was right.

use std::fmt;

use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::AuthError;
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
}

impl Caller {
    /// The accessor recorded in the access log: `token:<name>#<id>`.
    pub fn accessor(&self) -> String {
        format!("token:{}#{}", self.name, self.token_id)
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

/// Splits `kw_<id>_<secret>` and returns the id, or `None` if the text is
/// not shaped like a token.
fn id_of(token: &str) -> Option<&str> {
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

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// API tokens in one store.
#[derive(Clone)]
pub struct Tokens {
    db: Db,
}

impl Tokens {
    /// Tokens in `db`.
    pub fn new(db: Db) -> Self {
        Tokens { db }
    }

    /// Creates a token. The returned [`ApiToken`] is the only copy.
    pub async fn create(&self, name: &str, role: Role) -> Result<(TokenRow, ApiToken), AuthError> {
        check_name(name)?;
        let mut id_bytes = [0u8; ID_HEX / 2];
        crate::crypto::fill_random(&mut id_bytes);
        let mut secret = Zeroizing::new([0u8; 32]);
        crate::crypto::fill_random(secret.as_mut());
        let id = hex::encode(id_bytes);
        let token = ApiToken(Zeroizing::new(format!(
            "{PREFIX}{id}_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret.as_ref())
        )));
        debug_assert!(id_of(token.expose()).is_some());
        let row = TokenRow {
            id,
            name: name.to_owned(),
            role: role.as_str().to_owned(),
            created_at: now_ms(),
            last_used_at: None,
            revoked_at: None,
        };
        tokens::insert(&self.db.pool, &row, &hash(token.expose())).await?;
        Ok((row, token))
    }

    /// Every token, newest first (revoked ones too).
    pub async fn list(&self) -> Result<Vec<TokenRow>, AuthError> {
        Ok(tokens::list(&self.db.pool).await?)
    }

    /// Revokes the active token `id`.
    pub async fn revoke(&self, id: &str) -> Result<(), AuthError> {
        if tokens::revoke(&self.db.pool, id, now_ms()).await? {
            Ok(())
        } else {
            Err(AuthError::NotFound(id.chars().take(32).collect()))
        }
    }

    /// Who `presented` belongs to. Malformed, unknown, wrong and revoked
    /// tokens all give [`AuthError::Invalid`].
    pub async fn authenticate(&self, presented: &str) -> Result<Caller, AuthError> {
        let id = id_of(presented).ok_or(AuthError::Invalid)?;
        let Some((row, stored)) = tokens::get(&self.db.pool, id).await? else {
            return Err(AuthError::Invalid);
        };
        let matches: bool = hash(presented).ct_eq(stored.as_slice()).into();
        if !matches || row.revoked_at.is_some() {
            return Err(AuthError::Invalid);
        }
        let role = Role::parse(&row.role).map_err(|_| AuthError::Invalid)?;
        let now = now_ms();
        if row.last_used_at.is_none_or(|at| now - at >= TOUCH_EVERY_MS) {
            // Best effort: a failed bookkeeping write must not fail the request.
            if let Err(e) = tokens::touch(&self.db.pool, &row.id, now).await {
                tracing::warn!(token = %row.id, error = %e, "cannot record the token's last use");
            }
        }
        Ok(Caller {
            token_id: row.id,
            name: row.name,
            role,
        })
    }
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
            assert_eq!(id_of(&bad), None, "{bad:?}");
        }
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
