//! Operator sessions of the dashboard.
//!
//! A session is 32 random bytes in an HttpOnly, SameSite=Strict cookie
//! (Secure, with the `__Host-` prefix, when the public URL is https). The
//! database keeps only their SHA-256, with an absolute expiry; sign-out
//! deletes the row, so it ends the session on every host sharing the store.
//!
//! Every form carries a CSRF token derived from the session secret
//! (SHA-256 over a domain tag and the secret): another origin cannot read
//! the cookie, so it cannot compute the token, and nothing extra is stored.
//!
//! Sessions are minted by a one-time sign-in link (`keyward serve --dev`
//! prints one) and by the forge sign-in (`http/forge.rs`). A link's
//! secret is also stored only as a hash, expires after [`LINK_TTL_MS`] and
//! signs in once.

use base64::Engine as _;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::AuthError;
use crate::crypto::ct_eq;
use crate::store::{now_ms, sessions, Db};

/// How long a session lasts from sign-in (absolute, not sliding: a stolen
/// cookie stops working on schedule whatever its thief does).
pub const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;
/// How long a sign-in link may wait to be used.
pub const LINK_TTL_MS: i64 = 15 * 60 * 1000;
/// Characters of a session secret or link secret (32 bytes, base64url).
const SECRET_LEN: usize = 43;

/// A session or link secret as given to the browser. No `Debug`; zeroed
/// on drop.
pub struct SessionSecret(Zeroizing<String>);

impl SessionSecret {
    fn fresh() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        crate::crypto::fill_random(bytes.as_mut());
        SessionSecret(Zeroizing::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref()),
        ))
    }

    /// The text that goes into the cookie or the link.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A signed-in operator. Its `Debug` shows the subject only: the CSRF
/// token (and the session's hash) stay out of any log or panic message.
/// Its `==` compares them in constant time.
#[derive(Clone)]
pub struct Session {
    /// Who signed in (`dev` for a `--dev` link; the forge login later).
    pub subject: String,
    id_hash: String,
    csrf: String,
}

impl Session {
    /// The accessor recorded in the access log: `session:<subject>`.
    pub fn accessor(&self) -> String {
        format!("session:{}", self.subject)
    }

    /// The CSRF token every form of this session must carry.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Ok if `presented` is this session's CSRF token (constant time).
    pub fn check_csrf(&self, presented: &str) -> Result<(), AuthError> {
        if ct_eq(self.csrf.as_bytes(), presented.as_bytes()) {
            Ok(())
        } else {
            Err(AuthError::Csrf)
        }
    }
}

impl PartialEq for Session {
    fn eq(&self, other: &Self) -> bool {
        // Both compared whatever the first says: no early exit to time.
        let secrets = [
            ct_eq(self.id_hash.as_bytes(), other.id_hash.as_bytes()),
            ct_eq(self.csrf.as_bytes(), other.csrf.as_bytes()),
        ];
        self.subject == other.subject && secrets == [true, true]
    }
}

impl Eq for Session {}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

fn well_shaped(secret: &str) -> bool {
    secret.len() == SECRET_LEN
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn hash_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn csrf_of(secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"keyward csrf v1\0");
    h.update(secret.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h.finalize())
}

/// Sessions and sign-in links in one store.
#[derive(Clone)]
pub struct Sessions {
    db: Db,
}

impl Sessions {
    /// Sessions in `db`.
    pub fn new(db: Db) -> Self {
        Sessions { db }
    }

    /// Starts a session for `subject`; the secret goes into the cookie.
    pub async fn start(&self, subject: &str) -> Result<(Session, SessionSecret), AuthError> {
        let secret = SessionSecret::fresh();
        let now = now_ms();
        let id_hash = hash_hex(secret.expose());
        sessions::insert(
            &mut *self.db.writer().await?,
            &id_hash,
            subject,
            now,
            now + SESSION_TTL_MS,
        )
        .await?;
        // Expired rows go when new ones come: no timer task to run.
        if let Err(e) = sessions::purge(&mut *self.db.writer().await?, now).await {
            tracing::warn!(error = %e, "cannot purge expired sessions");
        }
        let session = Session {
            subject: subject.to_owned(),
            csrf: csrf_of(secret.expose()),
            id_hash,
        };
        Ok((session, secret))
    }

    /// The live session whose cookie holds `secret`. Malformed, unknown and
    /// expired all give [`AuthError::Invalid`].
    pub async fn get(&self, secret: &str) -> Result<Session, AuthError> {
        if !well_shaped(secret) {
            return Err(AuthError::Invalid);
        }
        let id_hash = hash_hex(secret);
        let subject = sessions::subject(self.db.reader(), &id_hash, now_ms())
            .await?
            .ok_or(AuthError::Invalid)?;
        Ok(Session {
            subject,
            csrf: csrf_of(secret),
            id_hash,
        })
    }

    /// Ends `session` on every host.
    pub async fn end(&self, session: &Session) -> Result<(), AuthError> {
        Ok(sessions::delete(&mut *self.db.writer().await?, &session.id_hash).await?)
    }

    /// Makes a one-time sign-in link secret for `subject`.
    pub async fn link(&self, subject: &str) -> Result<SessionSecret, AuthError> {
        let secret = SessionSecret::fresh();
        let now = now_ms();
        sessions::insert_link(
            &mut *self.db.writer().await?,
            &hash_hex(secret.expose()),
            subject,
            now,
            now + LINK_TTL_MS,
        )
        .await?;
        Ok(secret)
    }

    /// Whether the link secret could still sign in (for the confirmation
    /// page; only [`Sessions::redeem`] decides).
    pub async fn link_usable(&self, secret: &str) -> Result<bool, AuthError> {
        if !well_shaped(secret) {
            return Ok(false);
        }
        Ok(sessions::link_usable(self.db.reader(), &hash_hex(secret), now_ms()).await?)
    }

    /// Uses the link secret up and starts a session; [`AuthError::Invalid`]
    /// if it is malformed, unknown, used or expired.
    pub async fn redeem(&self, secret: &str) -> Result<(Session, SessionSecret), AuthError> {
        if !well_shaped(secret) {
            return Err(AuthError::Invalid);
        }
        let subject =
            sessions::consume_link(&mut *self.db.writer().await?, &hash_hex(secret), now_ms())
                .await?
                .ok_or(AuthError::Invalid)?;
        self.start(&subject).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_well_shaped_and_distinct() {
        let (a, b) = (SessionSecret::fresh(), SessionSecret::fresh());
        assert!(well_shaped(a.expose()) && well_shaped(b.expose()));
        assert_ne!(a.expose(), b.expose());
        for bad in [
            "",
            "short",
            &"A".repeat(44),
            &format!("{}=", "A".repeat(42)),
            &"é".repeat(21),
        ] {
            assert!(!well_shaped(bad), "{bad:?}");
        }
    }

    #[test]
    fn csrf_depends_on_the_secret_and_is_checked() {
        let s = SessionSecret::fresh();
        let session = Session {
            subject: "dev".into(),
            id_hash: hash_hex(s.expose()),
            csrf: csrf_of(s.expose()),
        };
        assert_ne!(session.csrf(), csrf_of(SessionSecret::fresh().expose()));
        // The stored hash does not give the CSRF token away.
        assert_ne!(session.csrf(), session.id_hash);
        assert!(session.check_csrf(&csrf_of(s.expose())).is_ok());
        for bad in ["", "x", &session.csrf()[1..]] {
            assert!(matches!(session.check_csrf(bad), Err(AuthError::Csrf)));
        }
    }

    #[test]
    fn sessions_are_equal_only_with_the_same_secrets() {
        let s = SessionSecret::fresh();
        let session = |subject: &str, secret: &str| Session {
            subject: subject.into(),
            id_hash: hash_hex(secret),
            csrf: csrf_of(secret),
        };
        let a = session("alice", s.expose());
        assert_eq!(a, session("alice", s.expose()));
        assert_ne!(a, session("bob", s.expose()));
        assert_ne!(a, session("alice", SessionSecret::fresh().expose()));
        let mut other_csrf = a.clone();
        other_csrf.csrf.push('x');
        assert_ne!(a, other_csrf, "a longer CSRF token");
        let mut other_hash = a.clone();
        other_hash.id_hash = hash_hex("other");
        assert_ne!(a, other_hash);
    }
}
