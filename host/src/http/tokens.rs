//! `/tokens` (operator): API tokens over HTTP.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use super::auth::Operator;
use super::body::Body;
use super::error::ApiError;
use super::AppState;
use crate::auth::Role;
use crate::store::tokens::TokenRow;

/// `POST /tokens` body.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
    role: String,
    /// Seconds until it expires (none: never).
    #[serde(default)]
    ttl_seconds: Option<u64>,
    /// A resolver token's policy (none: the resolver preset).
    #[serde(default)]
    policy: Option<crate::auth::policy::Policy>,
}

/// What `POST /tokens` answers: the token's row and, this once, the token.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct IssuedToken<'a> {
    pub id: &'a str,
    pub name: &'a str,
    /// `operator` or `resolver`.
    pub role: &'a str,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms; null: it does not expire.
    pub expires_at: Option<i64>,
    /// A resolver token's policy; null: the resolver preset.
    pub policy: Option<Value>,
    /// The token. Shown this once; only its hash is stored.
    pub token: &'a str,
}

/// What `POST /tokens/{id}/rotate` answers: the new value, this once.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct RotatedToken<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub role: &'a str,
    /// Unix ms; null: it does not expire.
    pub expires_at: Option<i64>,
    /// Until when the old value is still accepted (Unix ms); null: refused
    /// from now on.
    pub previous_valid_until: Option<i64>,
    /// The new token. Shown this once.
    pub token: &'a str,
}

/// `POST /tokens` (operator): 201 with the token, shown this once.
pub async fn create_token(
    Operator(caller): Operator,
    State(state): State<AppState>,
    Body(req): Body<NewToken>,
) -> Result<Response, ApiError> {
    let role = Role::parse(&req.role)?;
    let grant = crate::auth::Grant {
        ttl: req.ttl_seconds.map(std::time::Duration::from_secs),
        policy: req.policy,
    };
    let (row, token) = state.tokens.create_with(&req.name, role, grant).await?;
    tracing::info!(by = %caller.accessor(), id = %row.id, role = %row.role, "API token created");
    let answer = IssuedToken {
        id: &row.id,
        name: &row.name,
        role: &row.role,
        created_at: row.created_at,
        expires_at: row.expires_at,
        policy: row
            .policy
            .as_deref()
            .and_then(|p| serde_json::from_str::<Value>(p).ok()),
        token: token.expose(),
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `GET /tokens` (operator): every token, never the tokens themselves.
pub async fn list_tokens(
    Operator(_caller): Operator,
    State(state): State<AppState>,
) -> Result<Json<Vec<TokenRow>>, ApiError> {
    Ok(Json(state.tokens.list().await?))
}

/// `DELETE /tokens/{id}` (operator): 204; 404 if no active token has it.
pub async fn revoke_token(
    Operator(caller): Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.tokens.revoke(&id).await?;
    tracing::info!(by = %caller.accessor(), %id, "API token revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /tokens/{id}/rotate` body.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotate {
    /// Seconds the old value stays accepted (default 0: refused at once).
    #[serde(default)]
    grace_seconds: u64,
}

/// `POST /tokens/{id}/rotate` (operator): a new value for the token (same
/// id, name, role and expiry), shown this once; 404 if no active token has
/// the id.
pub async fn rotate_token(
    Operator(caller): Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Body(req): Body<Rotate>,
) -> Result<Response, ApiError> {
    let grace = std::time::Duration::from_secs(req.grace_seconds);
    let (row, token, previous_until) = state.tokens.rotate(&id, grace).await?;
    tracing::info!(by = %caller.accessor(), id = %row.id, grace_seconds = req.grace_seconds, "API token rotated");
    let answer = RotatedToken {
        id: &row.id,
        name: &row.name,
        role: &row.role,
        expires_at: row.expires_at,
        previous_valid_until: previous_until,
        token: token.expose(),
    };
    Ok(Json(answer).into_response())
}
