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
