//! The HTTP service: every route takes a bearer API token with the role it
//! needs (see [`auth`]), reads JSON through [`body::Body`] and fails with
//! the one error shape of [`error::ApiError`].

pub mod api;
mod auth;
mod body;
pub mod dashboard;
pub mod error;
mod forge;
mod log;
mod metrics;
mod openapi;
mod routes;
pub(crate) mod secrets;
pub mod throttle;
mod tokens;
pub mod trace;
mod versions;

pub use log::MAX_ROWS as MAX_LOG_ROWS;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::Router;

use crate::auth::{Sessions, Tokens};
use crate::runtime::Runtime;
use crate::template::MAX_TEMPLATE_LEN;
use crate::vault::Vault;

/// The largest request body: a template at its limit plus room for the
/// rest of the JSON (escaping can grow text; a template that needs more is
/// refused with 413).
pub const MAX_BODY: usize = MAX_TEMPLATE_LEN + (256 << 10);

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The store and its access log.
    pub vault: Vault,
    /// API tokens.
    pub tokens: Tokens,
    /// Operator sessions of the dashboard.
    pub sessions: Sessions,
    /// How the session cookie is set.
    pub web: dashboard::CookiePolicy,
    /// The plugin runtime, when the server runs one.
    pub plugins: Option<Runtime>,
    /// Forge sign-in, the active-forge router and agent types, when the
    /// server runs a plugin runtime.
    pub forges: Option<crate::forge::Forges>,
    /// `/readyz`'s last verdict (see [`routes::ReadyCache`]).
    pub ready: routes::ReadyCache,
    /// The limits on unauthenticated sign-in.
    pub sign_in: std::sync::Arc<throttle::SignInGate>,
    /// Request counts for `/metrics`.
    pub http: std::sync::Arc<metrics::HttpStats>,
}

/// Builds the router over `vault` and, if given, the plugin runtime, with
/// a plain-http session cookie and no forges configured.
pub fn router(vault: Vault, plugins: Option<Runtime>) -> Router {
    let forges = crate::forge::Forges::new(vault.clone(), plugins.clone(), Default::default());
    router_with(
        vault,
        plugins,
        Some(forges),
        dashboard::CookiePolicy::default(),
    )
}

/// [`router`] with forges and the session cookie set as `web` says.
pub fn router_with(
    vault: Vault,
    plugins: Option<Runtime>,
    forges: Option<crate::forge::Forges>,
    web: dashboard::CookiePolicy,
) -> Router {
    router_with_limits(vault, plugins, forges, web, Default::default())
}

/// [`router_with`] with the sign-in limits of `sign_in` instead of the
/// defaults (docs/http-api.md, "Sign-in limits").
pub fn router_with_limits(
    vault: Vault,
    plugins: Option<Runtime>,
    forges: Option<crate::forge::Forges>,
    web: dashboard::CookiePolicy,
    sign_in: throttle::SignInLimits,
) -> Router {
    let state = AppState {
        sign_in: std::sync::Arc::new(throttle::SignInGate::new(sign_in)),
        forges,
        tokens: Tokens::new(vault.db().clone()),
        sessions: Sessions::new(vault.db().clone()),
        web,
        vault,
        plugins,
        http: Default::default(),
        ready: Default::default(),
    };
    api::register(Router::new())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        // Outermost first: the id is known before the request's span opens.
        .layer(trace::layer())
        .layer(middleware::from_fn(trace::request_id))
        .with_state(state)
}
