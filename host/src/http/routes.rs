//! Route handlers. Each takes its caller ([`Resolver`] or [`Operator`])
//! first: the role check happens before anything else is read.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::auth::{Operator, Resolver};
use super::body::Body;
use super::error::ApiError;
use super::AppState;
use crate::audit::Access;
use crate::auth::Role;
use crate::names::Scope;
use crate::resolve::Context;
use crate::store::secrets::SecretMeta;
use crate::store::tokens::TokenRow;

/// `GET /healthz`: 200 `{"status":"ok"}` when the database answers, 503
/// otherwise. No credentials: load balancers call it.
pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match sqlx::query("SELECT 1")
        .execute(&state.vault.db().pool)
        .await
    {
        Ok(_) => (StatusCode::OK, Json(json!({"status": "ok"}))),
        Err(error) => {
            tracing::warn!(%error, "health check: database unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    json!({"error": {"code": "unavailable", "message": "the database is not answering"}}),
                ),
            )
        }
    }
}

/// Anything not routed: 404 in the API's shape.
pub async fn not_found() -> (StatusCode, Json<Value>) {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": {"code": "not_found", "message": "no such route"}})),
    )
}

/// `GET /secrets` query.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    scope: Option<String>,
}

/// `GET /secrets[?scope=S]` (resolver): metadata of every secret, never a
/// value.
pub async fn list_secrets(
    Resolver(_caller): Resolver,
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<SecretMeta>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::Invalid(e.body_text()))?;
    let scope = query
        .scope
        .as_deref()
        .map(Scope::parse)
        .transpose()
        .map_err(|e| ApiError::Vault(e.into()))?;
    Ok(Json(state.vault.list(scope.as_ref()).await?))
}

/// `POST /render` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderRequest {
    template: String,
    #[serde(default)]
    context: BTreeMap<String, String>,
    reason: String,
}

/// `POST /render` answer.
#[derive(Serialize)]
pub struct Rendered {
    text: String,
}

/// `POST /render` (resolver): the template with every placeholder
/// substituted; each read logged with the caller's token as accessor and
/// the given reason. 422 names every missing secret.
pub async fn render(
    Resolver(caller): Resolver,
    State(state): State<AppState>,
    Body(req): Body<RenderRequest>,
) -> Result<Json<Rendered>, ApiError> {
    let mut ctx = Context::default();
    for (key, value) in &req.context {
        ctx.set(key, value).map_err(|e| ApiError::Vault(e.into()))?;
    }
    let access = Access::new(caller.accessor(), req.reason.as_str())
        .map_err(|e| ApiError::Vault(e.into()))?;
    let rendered = crate::template::render(&state.vault, &req.template, &ctx, &access).await?;
    // JSON carries text: a value that is not UTF-8 cannot be substituted
    // into it faithfully, so it is refused rather than mangled.
    let text = String::from_utf8(rendered.to_vec()).map_err(|_| {
        ApiError::Invalid("the rendered text is not UTF-8 (a secret holds binary data)".into())
    })?;
    Ok(Json(Rendered { text }))
}

/// `POST /tokens` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
    role: String,
}

/// `POST /tokens` (operator): 201 with the token, shown this once.
pub async fn create_token(
    Operator(caller): Operator,
    State(state): State<AppState>,
    Body(req): Body<NewToken>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let role = Role::parse(&req.role)?;
    let (row, token) = state.tokens.create(&req.name, role).await?;
    tracing::info!(by = %caller.accessor(), id = %row.id, role = %row.role, "API token created");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": row.id,
            "name": row.name,
            "role": row.role,
            "created_at": row.created_at,
            "token": token.expose(),
        })),
    ))
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
