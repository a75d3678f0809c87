//! The one error shape of the HTTP API: `{"error": {"code", "message"}}`,
//! with the status each kind of failure maps to.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::auth::AuthError;
use crate::forge::ForgeError;
use crate::runtime::{PluginError, ReturnedError};
use crate::template::RenderError;
use crate::vault::VaultError;

/// Everything a route can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Credentials missing, wrong or of the wrong role: 401 or 403 (see
    /// [`AuthError::http_status`]).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The store refused or failed: the status of
    /// [`VaultError::http_status`] (400, 404, 409, 413, 422, 500, 503).
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// A template breaks the grammar: 422.
    #[error(transparent)]
    Template(#[from] crate::template::TemplateError),
    /// The request body is not the JSON the route takes: 400 (415 when it
    /// is not declared as JSON, 413 when it is over the limit).
    #[error("{message}")]
    Body {
        /// 400, 413 or 415.
        status: u16,
        /// What is wrong with it.
        message: String,
    },
    /// A field is present but invalid: 400.
    #[error("{0}")]
    Invalid(String),
    /// Too many unauthenticated requests (sign-in starts past the rate,
    /// pending sign-ins at their cap, or the unauthenticated share of the
    /// plugin pool in use): 429 with `Retry-After`.
    #[error("{message}")]
    TooMany {
        /// What is full, and what to do.
        message: String,
        /// Seconds to wait before trying again.
        retry_after: u32,
    },
    /// A part of the service this route needs is not running: 503.
    #[error("{0}")]
    Unavailable(String),
    /// A forge sign-in, router or agent-type call failed: the status of
    /// [`ForgeError::http_status`] (400, 403, 404, 409, 412, 424, 429, 5xx);
    /// a rate limit carries the forge's `Retry-After`.
    #[error(transparent)]
    Forge(#[from] ForgeError),
}

/// Field errors are the store's to classify (422), whichever layer found
/// them first.
macro_rules! via_vault {
    ($($from:ty),*) => {$(
        impl From<$from> for ApiError {
            fn from(e: $from) -> Self {
                ApiError::Vault(VaultError::from(e))
            }
        }
    )*};
}

via_vault!(
    crate::names::NameError,
    crate::audit::AccessError,
    crate::resolve::ContextError
);

impl From<RenderError> for ApiError {
    fn from(e: RenderError) -> Self {
        match e {
            RenderError::Template(t) => ApiError::Template(t),
            RenderError::Vault(v) => ApiError::Vault(v),
        }
    }
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::Auth(e) => e.http_status(),
            ApiError::Vault(e) => e.http_status(),
            ApiError::Template(_) => 422,
            ApiError::Body { status, .. } => *status,
            ApiError::Invalid(_) => 400,
            ApiError::Unavailable(_) => 503,
            ApiError::TooMany { .. } => 429,
            ApiError::Forge(e) => e.http_status(),
        }
    }

    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Auth(AuthError::Missing | AuthError::Invalid) => "unauthenticated",
            ApiError::Auth(AuthError::Forbidden { .. } | AuthError::NotPermitted(_)) => "forbidden",
            ApiError::Auth(AuthError::Csrf) => "csrf",
            ApiError::Auth(AuthError::NotFound(_)) => "not_found",
            ApiError::Auth(
                AuthError::BadName(_)
                | AuthError::BadRole(_)
                | AuthError::BadTtl
                | AuthError::BadGrace
                | AuthError::Legacy(_)
                | AuthError::BadPolicy(_),
            ) => "invalid",
            ApiError::Auth(AuthError::Store(_)) => "unavailable",
            ApiError::Vault(VaultError::Missing(_)) => "missing_secrets",
            ApiError::Vault(
                VaultError::NotFound { .. } | VaultError::VersionUnavailable { .. },
            ) => "not_found",
            ApiError::Vault(VaultError::Denied { .. }) => "forbidden",
            ApiError::Vault(VaultError::Exists { .. }) => "exists",
            ApiError::Vault(VaultError::NotDeleted { .. }) => "not_deleted",
            ApiError::Vault(VaultError::RetentionPassed { .. }) => "retention_passed",
            ApiError::Vault(VaultError::Conflict { .. } | VaultError::Race(_)) => "conflict",
            ApiError::Vault(VaultError::VersionMismatch { .. }) => "version_mismatch",
            ApiError::Vault(VaultError::ValueTooLarge { .. }) => "too_large",
            ApiError::Vault(e) if e.http_status() == 503 => "unavailable",
            ApiError::Vault(e) if e.http_status() >= 500 => "internal",
            ApiError::Vault(_) => "invalid",
            ApiError::Template(_) => "invalid_template",
            ApiError::Body { status: 413, .. } => "too_large",
            ApiError::Body { status: 415, .. } => "unsupported_media_type",
            ApiError::Body { .. } | ApiError::Invalid(_) => "invalid",
            ApiError::Forge(e) => forge_code(e),
            ApiError::Unavailable(_) => "unavailable",
            ApiError::TooMany { .. } => "rate_limited",
        }
    }
}

fn forge_code(e: &ForgeError) -> &'static str {
    match e {
        ForgeError::UnknownForge(_)
        | ForgeError::UnknownAgentType(_)
        | ForgeError::UnknownInstance(_) => "not_found",
        ForgeError::NoActiveForge => "no_active_forge",
        ForgeError::BadCallback | ForgeError::Invalid(_) => "invalid",
        ForgeError::NotAnOperator(_) | ForgeError::Refused(_) => "forbidden",
        ForgeError::Expired(_) => "sign_in_again",
        ForgeError::AgentTypeExists(_) | ForgeError::InstanceTaken(_) => "exists",
        ForgeError::Race => "conflict",
        ForgeError::NoToken(_) => "no_token",
        ForgeError::Plugin(PluginError::Returned { error, .. }) => match error {
            ReturnedError::Unauthorized(_)
            | ReturnedError::Forbidden(_)
            | ReturnedError::InvalidGrant(_) => "forge_refused",
            ReturnedError::RateLimited { .. } => "rate_limited",
            ReturnedError::NotFound(_) => "not_found",
            ReturnedError::Denied(_) => "denied",
            ReturnedError::Unsupported(_) => "unsupported",
            _ => "forge_failed",
        },
        ForgeError::Plugin(_) => "plugin_failed",
        ForgeError::Vault(e) if e.http_status() == 404 => "not_found",
        ForgeError::Vault(e) if e.http_status() >= 500 => "unavailable",
        ForgeError::Vault(_) => "invalid",
        _ if e.http_status() == 503 => "unavailable",
        _ => "internal",
    }
}

/// `Retry-After` for a forge's rate limit whose plugin named no wait: a
/// 429 without one leaves the caller guessing, and a minute is what GitHub
/// asks for when it names none.
const FORGE_RETRY_AFTER: u32 = 60;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        // Server-side failures are logged in full and answered briefly: the
        // caller cannot act on database details.
        let message = if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
            match (&self, status) {
                (ApiError::Unavailable(m), _) => m.clone(),
                (_, StatusCode::SERVICE_UNAVAILABLE) => {
                    "the store is unavailable; try again".to_owned()
                }
                (_, _) => "internal error; see the server log".to_owned(),
            }
        } else {
            self.to_string()
        };
        let mut body = json!({"error": {"code": self.code(), "message": message}});
        if let ApiError::Vault(VaultError::Missing(m)) = &self {
            body["error"]["missing"] = json!(m.missing);
        }
        if let ApiError::Vault(VaultError::VersionMismatch { current, .. }) = &self {
            body["error"]["current_version"] = json!(current);
        }
        let retry_after = match &self {
            ApiError::Forge(ForgeError::Plugin(PluginError::Returned {
                error: ReturnedError::RateLimited { retry_after, .. },
                ..
            })) => Some(retry_after.unwrap_or(FORGE_RETRY_AFTER)),
            ApiError::TooMany { retry_after, .. } => Some(*retry_after),
            _ => None,
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}
