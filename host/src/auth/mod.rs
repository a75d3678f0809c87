//! Who is calling and what they may do: API tokens (`kw_…`) with a role.
//!
//! An operator may do everything; a resolver may render templates and read
//! metadata, never change anything. The HTTP layer asks [`Tokens`] who a
//! bearer token belongs to and checks the role a route needs.

pub mod policy;
pub mod session;
pub mod token;

pub use session::{Session, Sessions};
pub use token::{ApiToken, Caller, Grant, Role, Tokens};

/// Errors of the auth layer, each with the HTTP status it maps to.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credentials were sent. HTTP 401.
    #[error("no credentials: send `Authorization: Bearer kw_…`")]
    Missing,
    /// The token is malformed, unknown, wrong or revoked; which of these is
    /// not said, so a guesser learns nothing. HTTP 401.
    #[error("invalid or revoked token")]
    Invalid,
    /// The caller's role does not allow this. HTTP 403.
    #[error("this needs the {needed} role; the token has the {held} role")]
    Forbidden {
        /// The role the action needs.
        needed: &'static str,
        /// The caller's role.
        held: &'static str,
    },
    /// A form of the dashboard came without its session's CSRF token, or
    /// from another origin. HTTP 403.
    #[error("this form is stale or came from another site: reload the page and try again")]
    Csrf,
    /// A token name breaks the rules. HTTP 400.
    #[error(
        "invalid token name {0:?}: 1–64 characters of letters, digits, space, `.`, `_` or `-`"
    )]
    BadName(String),
    /// A token lifetime that is zero or over ten years. HTTP 400.
    #[error("invalid token lifetime: more than 0 seconds and at most ten years (e.g. 90d, 12h, 30m, 3600s)")]
    BadTtl,
    /// A policy that cannot be given. HTTP 400.
    #[error("invalid policy: {0}")]
    BadPolicy(String),
    /// The token's policy does not allow this request. HTTP 403.
    #[error("{0}")]
    NotPermitted(String),
    /// An imported legacy client key cannot be rotated. HTTP 400.
    #[error("token {0} is an imported legacy key and cannot be rotated: create a new token, hand it out, then revoke this one")]
    Legacy(String),
    /// A rotation grace period over seven days. HTTP 400.
    #[error("invalid grace period: at most seven days (e.g. 10m, 1h, 0s for none)")]
    BadGrace,
    /// Not a role. HTTP 400.
    #[error("invalid role {0:?}: use operator or resolver")]
    BadRole(String),
    /// No active token with that id. HTTP 404.
    #[error("no active token with id {0:?}")]
    NotFound(String),
    /// The database failed. HTTP 503.
    #[error("database error: {0}")]
    Store(#[from] sqlx::Error),
}

impl AuthError {
    /// The HTTP status of this error.
    pub fn http_status(&self) -> u16 {
        match self {
            AuthError::Missing | AuthError::Invalid => 401,
            AuthError::Forbidden { .. } | AuthError::Csrf | AuthError::NotPermitted(_) => 403,
            AuthError::BadName(_)
            | AuthError::BadRole(_)
            | AuthError::BadTtl
            | AuthError::BadGrace
            | AuthError::Legacy(_)
            | AuthError::BadPolicy(_) => 400,
            AuthError::NotFound(_) => 404,
            AuthError::Store(_) => 503,
        }
    }
}
