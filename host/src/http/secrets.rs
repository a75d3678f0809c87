//! `/secrets`: metadata for resolvers; every change for operators. Values
//! go in (write-only) and never come out of these routes.

use axum::extract::{Path, Query, State};
use axum::http::header::{ETAG, IF_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::auth::{Operator, Resolver};
use super::body::Body;
use super::error::ApiError;
use super::AppState;
use crate::audit::chain::{HistoryQuery, LogRow};
use crate::audit::Access;
use crate::auth::Caller;
use crate::names::{Scope, SecretName};
use crate::store::secrets::SecretMeta;
use crate::vault::PutMode;

/// Rows of one page of a secret's history, at most.
pub const MAX_PAGE: i64 = 500;
const DEFAULT_PAGE: i64 = 50;

/// A query string as axum hands it over, parsed or not.
pub(super) type QueryResult<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

/// The parsed query, or 400 naming what is wrong.
pub(super) fn query<T>(q: QueryResult<T>) -> Result<T, ApiError> {
    q.map(|Query(v)| v)
        .map_err(|e| ApiError::Invalid(e.body_text()))
}

/// `?scope=` as a scope (`global` when absent).
pub(super) fn scope_of(text: Option<&str>) -> Result<Scope, ApiError> {
    match text {
        Some(s) => Ok(Scope::parse(s)?),
        None => Ok(Scope::global()),
    }
}

/// A secret name from a path or body.
pub(super) fn name_of(text: &str) -> Result<SecretName, ApiError> {
    Ok(SecretName::parse(text)?)
}

fn access(caller: &Caller, what: &str) -> Result<Access, ApiError> {
    Ok(Access::new(caller.accessor(), format!("http: {what}"))?)
}

/// `?scope=` of the routes on one secret (default `global`).
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeQuery {
    #[schemars(regex(pattern = crate::names::SCOPE_PATTERN))]
    pub(super) scope: Option<String>,
}

/// `GET /secrets[?scope=S]` (resolver): metadata of every secret.
pub async fn list(
    Resolver(caller): Resolver,
    State(state): State<AppState>,
    q: QueryResult<ScopeQuery>,
) -> Result<Json<Vec<SecretMeta>>, ApiError> {
    let q = query(q)?;
    let scope = q.scope.as_deref().map(Scope::parse).transpose()?;
    let mut listed = state.vault.list(scope.as_ref()).await?;
    // A token held to a policy sees only what it may resolve.
    if let Some(policy) = &caller.policy {
        listed.retain(|m| {
            Scope::parse(&m.scope)
                .ok()
                .zip(SecretName::parse(&m.name).ok())
                .is_some_and(|(s, n)| policy.rule_for(&s, &n).is_some())
        });
    }
    Ok(Json(listed))
}

/// `POST /secrets` body.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSecret {
    #[schemars(regex(pattern = crate::names::NAME_PATTERN))]
    name: String,
    #[schemars(regex(pattern = crate::names::SCOPE_PATTERN))]
    scope: Option<String>,
    #[schemars(with = "String")]
    value: Zeroizing<String>,
    #[serde(default)]
    description: String,
}

/// `POST /secrets` (operator): 201 with the new secret's metadata; 409 if
/// it exists.
pub async fn create(
    Operator(caller): Operator,
    State(state): State<AppState>,
    Body(req): Body<NewSecret>,
) -> Result<(StatusCode, Json<SecretMeta>), ApiError> {
    let (scope, name) = (scope_of(req.scope.as_deref())?, name_of(&req.name)?);
    let access = access(&caller, "create")?;
    state
        .vault
        .create(
            &scope,
            &name,
            req.value.as_bytes(),
            &req.description,
            &access,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(state.vault.meta(&scope, &name).await?),
    ))
}

/// `POST /secrets/{name}/reveal` body.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevealRequest {
    pub(super) reason: String,
}

/// `POST /secrets/{name}/reveal` answer. The value is base64 so that any
/// bytes a secret holds come back exactly.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Revealed {
    pub(super) scope: String,
    pub(super) name: String,
    #[schemars(with = "String")]
    pub(super) value_base64: Zeroizing<String>,
}

/// `POST /secrets/{name}/reveal[?scope=S]` (resolver, `render`): one
/// secret's value, logged as a reveal with the caller's token and the
/// reason. A token held to a policy reads only what its patterns allow
/// (403 and a denied row otherwise), like a render; 422 if it is missing.
pub async fn reveal(
    Resolver(caller): Resolver,
    State(state): State<AppState>,
    Path(name): Path<String>,
    q: QueryResult<ScopeQuery>,
    Body(req): Body<RevealRequest>,
) -> Result<Json<Revealed>, ApiError> {
    use base64::Engine as _;
    let (scope, name) = (scope_of(query(q)?.scope.as_deref())?, name_of(&name)?);
    let access = Access::new(caller.accessor(), req.reason.as_str())?;
    let reference = crate::names::SecretRef {
        scope: Some(scope.clone()),
        name: name.clone(),
    };
    let ctx = crate::resolve::Context::default();
    let action = crate::audit::Action::Reveal;
    let mut values = match caller.policy.as_deref() {
        None => vec![
            state
                .vault
                .reveal(&reference, &ctx, &access, action)
                .await?
                .1,
        ],
        Some(policy) => {
            state
                .vault
                .reveal_all_within(
                    std::slice::from_ref(&reference),
                    &ctx,
                    &access,
                    action,
                    policy,
                )
                .await?
        }
    };
    let value = values
        .pop()
        .ok_or_else(|| ApiError::Invalid("the store answered no value".into()))?;
    Ok(Json(Revealed {
        scope: scope.to_string(),
        name: name.to_string(),
        value_base64: Zeroizing::new(
            base64::engine::general_purpose::STANDARD.encode(value.expose()),
        ),
    }))
}

/// `PUT /secrets/{name}` body: at least one of value, description and
/// max_versions.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Update {
    #[schemars(with = "Option<String>")]
    value: Option<Zeroizing<String>>,
    description: Option<String>,
    /// Check-and-set: the version the caller read (as `If-Match`).
    cas: Option<i64>,
    /// Versions this secret keeps, the current one included (0: all).
    max_versions: Option<i64>,
}

/// Most versions a secret can be told to keep (as `KEYWARD_MAX_VERSIONS`).
const MAX_MAX_VERSIONS: i64 = 10_000;

/// The version an `If-Match` header names: `"N"` (an entity tag, as the
/// `ETag` of the answer gives it) or a bare `N`. A weak tag (`W/"N"`), a
/// list or `*` is refused: the check is on one exact version.
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(IF_MATCH) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::Invalid(
            "If-Match: give the one version you read, as \"N\" (the ETag of the secret)".into(),
        )
    };
    let text = value.to_str().map_err(|_| bad())?.trim();
    let inner = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    match inner.parse::<i64>() {
        Ok(v) if v >= 0 && !inner.starts_with('+') => Ok(Some(v)),
        _ => Err(bad()),
    }
}

/// A secret's metadata as the answer, its version as the `ETag`.
pub(super) fn with_etag(meta: &SecretMeta) -> Response {
    let mut response = Json(meta).into_response();
    response.headers_mut().insert(ETAG, etag(meta.version));
    response
}

/// The `ETag` of a secret at `version`.
pub(super) fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits are a valid header")
}

/// `PUT /secrets/{name}[?scope=S]` (operator): a new value (a new version)
/// and/or a new description, in one change; 404 if there is no such
/// secret. With `If-Match: "N"` (or `cas: N`) it is a check-and-set: 409
/// `version_mismatch` with `current_version` unless the secret is at
/// version N. The answer carries the new version as its `ETag`.
pub async fn update(
    Operator(caller): Operator,
    State(state): State<AppState>,
    Path(name): Path<String>,
    q: QueryResult<ScopeQuery>,
    headers: HeaderMap,
    Body(req): Body<Update>,
) -> Result<Response, ApiError> {
    let (scope, name) = (scope_of(query(q)?.scope.as_deref())?, name_of(&name)?);
    if req.value.is_none() && req.description.is_none() && req.max_versions.is_none() {
        return Err(ApiError::Invalid(
            "nothing to change: give a value, a description, max_versions, or several".into(),
        ));
    }
    let max_versions = match req.max_versions {
        Some(n) if !(0..=MAX_MAX_VERSIONS).contains(&n) => {
            return Err(ApiError::Invalid(format!(
                "max_versions: 0 (keep all) to {MAX_MAX_VERSIONS}"
            )))
        }
        n => n.map(|n| n as u32),
    };
    let expect = match (if_match(&headers)?, req.cas) {
        (Some(h), Some(c)) if h != c => {
            return Err(ApiError::Invalid(format!(
                "If-Match names version {h} and cas version {c}: give one"
            )))
        }
        (_, Some(c)) if c < 0 => {
            return Err(ApiError::Invalid("cas: a version is 0 or more".into()))
        }
        (h, c) => h.or(c),
    };
    if let Some(d) = &req.description {
        crate::vault::check_description(d)?;
    }
    match &req.value {
        // The value and the description change together, or neither does.
        Some(value) => {
            state
                .vault
                .put_expecting(
                    &scope,
                    &name,
                    value.as_bytes(),
                    req.description.as_deref(),
                    &access(&caller, "replace value")?,
                    PutMode::Replace,
                    expect,
                )
                .await?;
        }
        None => {
            if let Some(description) = req.description.as_deref() {
                state
                    .vault
                    .describe_expecting(
                        &scope,
                        &name,
                        description,
                        &access(&caller, "describe")?,
                        expect,
                    )
                    .await?;
            }
        }
    }
    // After the checked change: a version mismatch above leaves the limit
    // as it was too.
    if let Some(n) = max_versions {
        state
            .vault
            .set_max_versions(&scope, &name, Some(n), &access(&caller, "max_versions")?)
            .await?;
    }
    let meta = state.vault.meta(&scope, &name).await?;
    Ok(with_etag(&meta))
}

/// `DELETE /secrets/{name}` query.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    #[schemars(regex(pattern = crate::names::SCOPE_PATTERN))]
    scope: Option<String>,
    /// Remove every version's ciphertext now instead of a soft delete.
    #[serde(default)]
    destroy: bool,
}

/// `DELETE /secrets/{name}[?scope=S][&destroy=true]` (operator): 204. A soft
/// delete: the secret renders as missing and can be undeleted until the
/// retention window passes. With `destroy=true` (a live or a deleted
/// secret) every version's ciphertext is removed at once, for good.
pub async fn delete(
    Operator(caller): Operator,
    State(state): State<AppState>,
    Path(name): Path<String>,
    q: QueryResult<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    let q = query(q)?;
    let (scope, name) = (scope_of(q.scope.as_deref())?, name_of(&name)?);
    if q.destroy {
        state
            .vault
            .destroy(&scope, &name, &access(&caller, "destroy")?)
            .await?;
    } else {
        state
            .vault
            .delete(&scope, &name, &access(&caller, "delete")?)
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /secrets/{name}/undelete[?scope=S]` (operator): the deleted secret
/// is live again with its value and versions; 409 `not_deleted` if it is
/// live, 410 `retention_passed` after the window.
pub async fn undelete(
    Operator(caller): Operator,
    State(state): State<AppState>,
    Path(name): Path<String>,
    q: QueryResult<ScopeQuery>,
) -> Result<Response, ApiError> {
    let (scope, name) = (scope_of(query(q)?.scope.as_deref())?, name_of(&name)?);
    let meta = state
        .vault
        .undelete(&scope, &name, &access(&caller, "undelete")?)
        .await?;
    Ok(with_etag(&meta))
}

/// `GET /deleted-secrets[?scope=S]` (operator): the soft-deleted secrets,
/// with when, by whom, and until when each can be undeleted.
pub async fn deleted(
    Operator(_caller): Operator,
    State(state): State<AppState>,
    q: QueryResult<ScopeQuery>,
) -> Result<Json<Vec<crate::store::secrets::DeletedMeta>>, ApiError> {
    let scope = query(q)?.scope.as_deref().map(Scope::parse).transpose()?;
    Ok(Json(state.vault.deleted(scope.as_ref()).await?))
}

/// `POST /secrets/{name}/rotate[?scope=S]` (operator): re-sealed under the
/// current master key with a fresh nonce; `rotated_at` moves.
pub async fn rotate(
    Operator(caller): Operator,
    State(state): State<AppState>,
    Path(name): Path<String>,
    q: QueryResult<ScopeQuery>,
) -> Result<Json<SecretMeta>, ApiError> {
    let (scope, name) = (scope_of(query(q)?.scope.as_deref())?, name_of(&name)?);
    let meta = state
        .vault
        .reseal(&scope, &name, &access(&caller, "rotate")?)
        .await?;
    Ok(Json(meta))
}

/// `GET /secrets/{name}/access-log` query.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    #[schemars(regex(pattern = crate::names::SCOPE_PATTERN))]
    scope: Option<String>,
    accessor: Option<String>,
    action: Option<String>,
    before: Option<i64>,
    limit: Option<i64>,
}

/// One page of a secret's history.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct HistoryPage {
    rows: Vec<LogRow>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_before: Option<i64>,
}

/// `GET /secrets/{name}/access-log[?scope&accessor&action&before&limit]`
/// (resolver): its access-log rows, newest first, `limit` (1–500, default
/// 50) per page. The secret need not exist any more: a deleted secret's
/// history is still there.
pub async fn history(
    Resolver(caller): Resolver,
    State(state): State<AppState>,
    Path(name): Path<String>,
    q: QueryResult<HistoryParams>,
) -> Result<Json<HistoryPage>, ApiError> {
    let q = query(q)?;
    let (scope, name) = (scope_of(q.scope.as_deref())?, name_of(&name)?);
    if let Some(policy) = &caller.policy {
        if policy.rule_for(&scope, &name).is_none() {
            return Err(crate::auth::AuthError::NotPermitted(format!(
                "this token's policy does not allow reading the history of {scope}/{name}"
            ))
            .into());
        }
    }
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::Invalid(format!("limit must be 1–{MAX_PAGE}")));
    }
    if q.before.is_some_and(|b| b < 1) {
        return Err(ApiError::Invalid("before must be a positive seq".into()));
    }
    let filter = HistoryQuery {
        before: q.before,
        accessor: q.accessor,
        action: q.action,
        ..HistoryQuery::default()
    };
    let page = state.vault.history(&scope, &name, &filter, limit).await?;
    Ok(Json(HistoryPage {
        rows: page.rows,
        next_before: page.next_before,
    }))
}
