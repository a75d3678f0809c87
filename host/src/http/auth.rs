//! The rail every route goes through: a bearer token, and the role the
//! route needs. A handler takes [`Resolver`] or [`Operator`] as an argument,
//! so a route cannot forget to check.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::error::ApiError;
use super::AppState;
use crate::auth::{AuthError, Caller, Role};

/// A caller with at least the resolver role (render, read metadata).
pub struct Resolver(pub Caller);

/// A caller with the operator role (every change).
pub struct Operator(pub Caller);

async fn caller(parts: &Parts, state: &AppState, needed: Role) -> Result<Caller, ApiError> {
    let header = parts.headers.get(AUTHORIZATION).ok_or(AuthError::Missing)?;
    // Anything but one `Bearer <token>` is as good as no token.
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or(AuthError::Invalid)?;
    let caller = state.tokens.authenticate(token.trim()).await?;
    caller.require(needed)?;
    if caller.policy.is_some() {
        // The route table says which capability each resolver route needs;
        // a route it does not know (none should reach here) is refused.
        let capability = parts
            .extensions
            .get::<axum::extract::MatchedPath>()
            .and_then(|p| super::api::capability(parts.method.as_str(), p.as_str()))
            .ok_or_else(|| {
                AuthError::NotPermitted("this token's policy does not allow this route".into())
            })?;
        caller.may(capability)?;
        if let Some(policy) = &caller.policy {
            // The TCP peer (a reverse proxy's address, if there is one in
            // front). Served without peer addresses, a token held to
            // networks is refused rather than let through.
            let peer = parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip());
            if !peer.is_some_and(|ip| policy.admits(ip)) && !policy.networks.is_empty() {
                return Err(AuthError::NotPermitted(format!(
                    "this token's policy does not allow requests from {}",
                    peer.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string())
                ))
                .into());
            }
        }
    }
    Ok(caller)
}

impl FromRequestParts<AppState> for Resolver {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        caller(parts, state, Role::Resolver).await.map(Resolver)
    }
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        caller(parts, state, Role::Operator).await.map(Operator)
    }
}

/// A signed-in operator's session, for JSON routes (`GET /me`): no or a
/// dead cookie is a 401 in the API's shape, not a redirect. Bearer tokens
/// do not count.
pub struct SessionCaller(pub crate::auth::Session);

impl FromRequestParts<AppState> for SessionCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let secret =
            super::dashboard::cookie(&parts.headers, state.web.name()).ok_or(AuthError::Missing)?;
        Ok(SessionCaller(state.sessions.get(secret).await?))
    }
}
