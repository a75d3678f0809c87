//! Errors of the plugin layer, each with the HTTP status the API maps it to.

use super::bindings::{ForgeError, GuestError};

/// Why a plugin could not be loaded. The host keeps running with the others.
#[derive(Debug, thiserror::Error)]
#[error("plugin {file}: {problem}")]
pub struct LoadError {
    /// The file (or `built-in NAME`) at fault.
    pub file: String,
    /// What is wrong, for an operator.
    pub problem: String,
}

/// Why a plugin call failed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// No loaded plugin has this name. (404)
    #[error("no plugin named {0:?} is loaded (see `keyward plugin list`)")]
    NotFound(String),
    /// The plugin exists but is not of the kind the call needs. (409)
    #[error("plugin {name:?} is a {actual} plugin, not a {wanted} plugin")]
    WrongKind {
        /// The plugin.
        name: String,
        /// What it is.
        actual: &'static str,
        /// What the call needs.
        wanted: &'static str,
    },
    /// The caller's input to the call is malformed (a base URL, a token
    /// reference). (400)
    #[error("invalid call: {0}")]
    Invalid(String),
    /// The plugin returned an error; a `denied` one was also logged. (See
    /// [`ReturnedError::http_status`]: 403 for `denied`, 424 when the forge
    /// refused the token or grant, 429 when it rate-limits, 404, 501, else
    /// 502.)
    #[error("plugin {plugin:?} failed: {error}")]
    Returned {
        /// The plugin.
        plugin: String,
        /// What it returned.
        error: ReturnedError,
    },
    /// The call ran past the plugin's wall-time limit and was stopped. (504)
    #[error("plugin {plugin:?} ran past its wall-time limit of {limit_ms} ms and was stopped")]
    Timeout {
        /// The plugin.
        plugin: String,
        /// Its limit.
        limit_ms: u128,
    },
    /// The plugin tried to grow its memory past its limit. (502)
    #[error("plugin {plugin:?} exceeded its memory limit of {limit_mib} MiB and was stopped")]
    MemoryLimit {
        /// The plugin.
        plugin: String,
        /// Its limit.
        limit_mib: u64,
    },
    /// The plugin wrote more log bytes than its limit allows. (502)
    #[error("plugin {plugin:?} exceeded its log limit of {limit} bytes per call and was stopped")]
    LogLimit {
        /// The plugin.
        plugin: String,
        /// Its limit.
        limit: u64,
    },
    /// The plugin made more refused or invalid host calls in one call than
    /// its limit allows; one summary row was logged. (502)
    #[error("plugin {plugin:?} exceeded its limit of {limit} refused or invalid host calls per call and was stopped")]
    RefusalLimit {
        /// The plugin.
        plugin: String,
        /// Its limit.
        limit: u32,
    },
    /// The plugin trapped: a panic, a stack overflow, an invalid operation. (502)
    #[error("plugin {plugin:?} crashed: {reason}")]
    Crashed {
        /// The plugin.
        plugin: String,
        /// The trap, for an operator (never a secret: revealed values are
        /// redacted from it).
        reason: String,
    },
    /// Every instance slot is in use. (503)
    #[error("too many plugin calls at once; retry shortly")]
    Busy,
    /// The store or its access log failed during a host call, so nothing
    /// was revealed or sent; retry once it is back. (503)
    #[error("secret store unavailable during the plugin call: {0}")]
    Unavailable(String),
    /// The host failed. (500)
    #[error("plugin host error: {0}")]
    Internal(String),
}

/// Raised inside a host call when the store or its access log fails: the
/// call stops (a value must never go out without its row) and is reported
/// as [`PluginError::Unavailable`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct StoreUnavailable(pub String);

impl StoreUnavailable {
    /// As the error a host call returns to stop the guest.
    pub(crate) fn trap(what: impl std::fmt::Display) -> wasmtime::Error {
        wasmtime::Error::new(StoreUnavailable(what.to_string()))
    }
}

impl PluginError {
    /// A short name of the kind of failure, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginError::NotFound(_) => "not_found",
            PluginError::WrongKind { .. } => "wrong_kind",
            PluginError::Invalid(_) => "invalid",
            PluginError::Returned { .. } => "returned",
            PluginError::Timeout { .. } => "timeout",
            PluginError::MemoryLimit { .. } => "memory_limit",
            PluginError::LogLimit { .. } => "log_limit",
            PluginError::RefusalLimit { .. } => "refusal_limit",
            PluginError::Crashed { .. } => "crashed",
            PluginError::Busy => "busy",
            PluginError::Unavailable(_) => "unavailable",
            PluginError::Internal(_) => "internal",
        }
    }

    /// The HTTP status for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            PluginError::NotFound(_) => 404,
            PluginError::WrongKind { .. } => 409,
            PluginError::Invalid(_) => 400,
            PluginError::Returned { error, .. } => error.http_status(),
            PluginError::Timeout { .. } => 504,
            PluginError::MemoryLimit { .. }
            | PluginError::LogLimit { .. }
            | PluginError::RefusalLimit { .. }
            | PluginError::Crashed { .. } => 502,
            PluginError::Busy => 503,
            PluginError::Unavailable(_) => 503,
            PluginError::Internal(_) => 500,
        }
    }
}

/// The `error` variant a plugin returned, as host data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReturnedError {
    /// `denied`.
    #[error("denied: {0}")]
    Denied(String),
    /// `not-found`.
    #[error("not found: {0}")]
    NotFound(String),
    /// `invalid`.
    #[error("invalid: {0}")]
    Invalid(String),
    /// `limit`.
    #[error("limit: {0}")]
    Limit(String),
    /// `upstream`: the remote end failed or answered something unreadable.
    #[error("upstream: {0}")]
    Upstream(String),
    /// `forge-error.unauthorized`: the forge refused the token.
    #[error("the forge refused the token: {0}")]
    Unauthorized(String),
    /// `forge-error.forbidden`: the token lacks a scope or permission.
    #[error("the forge forbids it: {0}")]
    Forbidden(String),
    /// `forge-error.rate-limited`.
    #[error("the forge rate-limits: {message}")]
    RateLimited {
        /// Seconds to wait, when the forge says.
        retry_after: Option<u32>,
        /// What it said.
        message: String,
    },
    /// `forge-error.invalid-grant`: a code or refresh token was refused;
    /// the operator must sign in again.
    #[error("the forge refused the grant: {0}")]
    InvalidGrant(String),
    /// `forge-error.transport`: the forge could not be reached.
    #[error("the forge could not be reached: {0}")]
    Transport(String),
    /// `forge-error.unsupported`: the forge has no such operation.
    #[error("unsupported by this forge: {0}")]
    Unsupported(String),
}

impl ReturnedError {
    /// The HTTP status the API answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            ReturnedError::Denied(_) => 403,
            ReturnedError::NotFound(_) => 404,
            // The forge no longer accepts what Keyward holds for it: a
            // dependency failed, not the caller's request.
            ReturnedError::Unauthorized(_)
            | ReturnedError::Forbidden(_)
            | ReturnedError::InvalidGrant(_) => 424,
            ReturnedError::RateLimited { .. } => 429,
            ReturnedError::Unsupported(_) => 501,
            ReturnedError::Invalid(_)
            | ReturnedError::Limit(_)
            | ReturnedError::Upstream(_)
            | ReturnedError::Transport(_) => 502,
        }
    }

    /// The same error with `f` applied to every message (redaction).
    pub(crate) fn map_message(self, f: impl Fn(String) -> String) -> Self {
        match self {
            ReturnedError::Denied(m) => ReturnedError::Denied(f(m)),
            ReturnedError::NotFound(m) => ReturnedError::NotFound(f(m)),
            ReturnedError::Invalid(m) => ReturnedError::Invalid(f(m)),
            ReturnedError::Limit(m) => ReturnedError::Limit(f(m)),
            ReturnedError::Upstream(m) => ReturnedError::Upstream(f(m)),
            ReturnedError::Unauthorized(m) => ReturnedError::Unauthorized(f(m)),
            ReturnedError::Forbidden(m) => ReturnedError::Forbidden(f(m)),
            ReturnedError::RateLimited {
                retry_after,
                message,
            } => ReturnedError::RateLimited {
                retry_after,
                message: f(message),
            },
            ReturnedError::InvalidGrant(m) => ReturnedError::InvalidGrant(f(m)),
            ReturnedError::Transport(m) => ReturnedError::Transport(f(m)),
            ReturnedError::Unsupported(m) => ReturnedError::Unsupported(f(m)),
        }
    }
}

/// Longest message kept from a guest; a plugin cannot flood the host's
/// errors or logs through them.
pub const MAX_GUEST_MESSAGE: usize = 1024;

/// A guest's text cut to [`MAX_GUEST_MESSAGE`] ([`crate::text::clip`]).
pub(crate) fn clip(text: &str) -> String {
    crate::text::clip(text, MAX_GUEST_MESSAGE)
}

/// Unclipped: the host redacts a returned message first and clips it after
/// ([`ReturnedError::map_message`] in runtime/call.rs), so a value cut in
/// half by the clip cannot slip past the redactor.
impl From<GuestError> for ReturnedError {
    fn from(e: GuestError) -> Self {
        match e {
            GuestError::Denied(m) => ReturnedError::Denied(m),
            GuestError::NotFound(m) => ReturnedError::NotFound(m),
            GuestError::Invalid(m) => ReturnedError::Invalid(m),
            GuestError::Limit(m) => ReturnedError::Limit(m),
            GuestError::Upstream(m) => ReturnedError::Upstream(m),
        }
    }
}

impl From<ForgeError> for ReturnedError {
    fn from(e: ForgeError) -> Self {
        match e {
            ForgeError::Unauthorized(m) => ReturnedError::Unauthorized(m),
            ForgeError::Forbidden(m) => ReturnedError::Forbidden(m),
            ForgeError::NotFound(m) => ReturnedError::NotFound(m),
            ForgeError::RateLimited(r) => ReturnedError::RateLimited {
                retry_after: r.retry_after,
                message: r.message,
            },
            ForgeError::InvalidGrant(m) => ReturnedError::InvalidGrant(m),
            ForgeError::Upstream(m) => ReturnedError::Upstream(m),
            ForgeError::Transport(m) => ReturnedError::Transport(m),
            ForgeError::Unsupported(m) => ReturnedError::Unsupported(m),
            ForgeError::Host(e) => ReturnedError::from(e),
        }
    }
}
