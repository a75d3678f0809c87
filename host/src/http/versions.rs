//! A secret's versions over HTTP: the list, a logged read of one, and a
//! rollback (operators only: a token that may read a secret's value now
//! may not read the values it had before).

use axum::extract::{Path, State};
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::auth::Operator;
use super::body::Body;
use super::error::ApiError;
use super::secrets::{
    name_of, query, scope_of, with_etag, QueryResult, RevealRequest, Revealed, ScopeQuery,
};
use super::AppState;
use crate::audit::Access;

/// `GET /secrets/{name}/versions[?scope=S]` (operator): every version's
/// metadata (number, written when and by whom, key id, state), newest
/// first; never a value.
pub async fn versions(
    Operator(_caller): Operator,
    State(state): State<AppState>,
    Path(name): Path<String>,
    q: QueryResult<ScopeQuery>,
) -> Result<Json<Vec<crate::store::versions::VersionMeta>>, ApiError> {
    let (scope, name) = (scope_of(query(q)?.scope.as_deref())?, name_of(&name)?);
    Ok(Json(state.vault.versions(&scope, &name).await?))
}

/// `POST /secrets/{name}/versions/{version}/reveal[?scope=S]` (operator):
/// one version's value, base64, logged as a reveal of that version with
/// the reason; 404 for a destroyed or unknown version. Operators only:
/// a token that may read a secret's value now may not read the values it
/// had before.
pub async fn reveal_version(
    Operator(caller): Operator,
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    q: QueryResult<ScopeQuery>,
    Body(req): Body<RevealRequest>,
) -> Result<Json<Revealed>, ApiError> {
    use base64::Engine as _;
    let (scope, name) = (scope_of(query(q)?.scope.as_deref())?, name_of(&name)?);
    let version = version_of(&version)?;
    let access = Access::new(caller.accessor(), req.reason.as_str())?;
    let value = state
        .vault
        .reveal_version(&scope, &name, version, &access)
        .await?;
    Ok(Json(Revealed {
        scope: scope.to_string(),
        name: name.to_string(),
        value_base64: Zeroizing::new(
            base64::engine::general_purpose::STANDARD.encode(value.expose()),
        ),
    }))
}

/// A version number from a path: 1 or more.
fn version_of(text: &str) -> Result<i64, ApiError> {
    match text.parse::<i64>() {
        Ok(v) if v >= 1 && !text.starts_with('+') => Ok(v),
        _ => Err(ApiError::Invalid(format!(
            "version {:?}: a version is a number from 1",
            crate::text::clip(text, 32)
        ))),
    }
}

/// `POST /secrets/{name}/rollback` body.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    to: i64,
    reason: String,
}

/// `POST /secrets/{name}/rollback[?scope=S]` (operator): kept version `to`
/// becomes the value again, as a new version; logged as a reveal of `to`
/// and a replace, both with the reason. → 200 with the metadata and the
/// new version's `ETag`; 404 for a destroyed, unknown or current version.
pub async fn rollback(
    Operator(caller): Operator,
    State(state): State<AppState>,
    Path(name): Path<String>,
    q: QueryResult<ScopeQuery>,
    Body(req): Body<Rollback>,
) -> Result<Response, ApiError> {
    let (scope, name) = (scope_of(query(q)?.scope.as_deref())?, name_of(&name)?);
    let access = Access::new(caller.accessor(), req.reason.as_str())?;
    state.vault.rollback(&scope, &name, req.to, &access).await?;
    let meta = state.vault.meta(&scope, &name).await?;
    Ok(with_etag(&meta))
}
