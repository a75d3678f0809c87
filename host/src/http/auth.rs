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
    super::trace::record_accessor(&caller.accessor());
    caller.require(needed)?;
    if let Some(policy) = caller.policy.clone() {
        let route = parts
            .extensions
            .get::<axum::extract::MatchedPath>()
            .map(|p| p.as_str().to_owned());
        if let Err(refusal) = policy_admits(parts, &caller, &policy, route.as_deref()) {
            // Every refusal by a policy is on record, naming the token.
            let access =
                crate::audit::Access::new(caller.accessor(), "refused by the token's policy")
                    .map_err(|e| ApiError::Invalid(e.to_string()))?;
            let name = format!("{} {}", parts.method, route.as_deref().unwrap_or("?"));
            let detail = refusal.to_string();
            state
                .vault
                .record_denied(
                    &access,
                    crate::audit::Action::Request,
                    "route",
                    &name,
                    &detail,
                )
                .await?;
            return Err(refusal.into());
        }
    }
    Ok(caller)
}

/// Whether `policy` lets `caller` make this request: the route's capability
/// (from the route table; a route it does not know is refused) and the
/// client network (the TCP peer; served without peer addresses, a policy
/// with networks refuses).
fn policy_admits(
    parts: &Parts,
    caller: &Caller,
    policy: &crate::auth::policy::Policy,
    route: Option<&str>,
) -> Result<(), AuthError> {
    let capability = route
        .and_then(|p| super::api::capability(parts.method.as_str(), p))
        .ok_or_else(|| {
            AuthError::NotPermitted("this token's policy does not allow this route".into())
        })?;
    caller.may(capability)?;
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    if !policy.networks.is_empty() && !peer.is_some_and(|ip| policy.admits(ip)) {
        return Err(AuthError::NotPermitted(format!(
            "this token's policy does not allow requests from {}",
            peer.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string())
        )));
    }
    Ok(())
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
        let session = state.sessions.get(secret).await?;
        super::trace::record_accessor(&session.accessor());
        Ok(SessionCaller(session))
    }
}
