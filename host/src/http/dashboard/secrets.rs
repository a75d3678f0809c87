//! `/settings/secrets`: list, add, describe, replace, rotate, and each
//! secret's access log (deleting is in `deletion.rs`). No page ever holds a stored value.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::{
    csrf_field, html_response, notice, page, q, see_other, when, PageError, SignedIn, Submitted,
};
use crate::audit::chain::HistoryQuery;
use crate::audit::Access;
use crate::auth::Session;
use crate::http::error::ApiError;
use crate::http::secrets::{name_of, scope_of, QueryResult};
use crate::http::AppState;
use crate::names::{Scope, SecretName};
use crate::vault::PutMode;

/// Access-log rows per page.
const LOG_PAGE: i64 = 25;
/// What every stored value looks like here.
const MASK: &str = "••••";

pub(super) fn access(session: &Session, what: &str) -> Result<Access, PageError> {
    Ok(Access::new(
        session.accessor(),
        format!("dashboard: {what}"),
    )?)
}

pub(super) fn query<T>(q: QueryResult<T>) -> Result<T, PageError> {
    Ok(crate::http::secrets::query(q)?)
}

/// The secret a page or form is about. An empty scope field means `global`
/// (a form sends the field even when left empty).
pub(super) fn target(name: &str, scope: Option<&str>) -> Result<(Scope, SecretName), PageError> {
    Ok((scope_of(scope.filter(|s| !s.is_empty()))?, name_of(name)?))
}

/// 303 back to the secret's page with a notice.
pub(super) fn back_to(scope: &Scope, name: &SecretName, notice: &str) -> Response {
    see_other(&format!("{}&notice={notice}", secret_href(scope, name)))
}

/// The page of one secret.
pub(super) fn secret_href(scope: &Scope, name: &SecretName) -> String {
    format!("/settings/secrets/{name}?scope={}", q(scope.as_str()))
}

pub(super) fn action_href(scope: &Scope, name: &SecretName, action: &str) -> String {
    format!(
        "/settings/secrets/{name}/{action}?scope={}",
        q(scope.as_str())
    )
}

/// The list page's query.
#[derive(Deserialize)]
pub struct ListQuery {
    notice: Option<String>,
}

/// `GET /settings/secrets`: every secret's metadata and the add form.
pub async fn secrets_page(
    SignedIn(session): SignedIn,
    State(state): State<AppState>,
    params: QueryResult<ListQuery>,
) -> Result<Response, PageError> {
    let params = query(params)?;
    let secrets = state.vault.list(None).await?;
    let deleted = state.vault.deleted(None).await?;
    let body = html! {
        (notice(params.notice.as_deref()))
        section aria-labelledby="stored" {
            h2 id="stored" { "Stored secrets" }
            @if secrets.is_empty() {
                p { "No secrets yet." }
            } @else {
                table {
                    caption class="sr-only" { "Secrets, by scope and name" }
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "Scope" } th scope="col" { "Value" }
                        th scope="col" { "Description" } th scope="col" { "Version" } th scope="col" { "Last rotated" }
                    } }
                    tbody {
                        @for s in &secrets {
                            tr {
                                td { a href=(format!("/settings/secrets/{}?scope={}", s.name, q(&s.scope))) { (s.name) } }
                                td { code { (s.scope) } }
                                td { span aria-label="value hidden" { (MASK) } }
                                td { (s.description) }
                                td { (s.version) }
                                td { (when(s.rotated_at)) }
                            }
                        }
                    }
                }
            }
        }
        @if !deleted.is_empty() {
            (super::deletion::deleted_section(&session, &deleted))
        }
        section aria-labelledby="add" {
            h2 id="add" { "Add a secret" }
            form method="post" action="/settings/secrets" class="stack" {
                (csrf_field(&session))
                label for="name" { "Name" }
                input id="name" name="name" required maxlength="128" pattern="[A-Za-z0-9][A-Za-z0-9_.\\-]*"
                    autocomplete="off" spellcheck="false" aria-describedby="name-help";
                p id="name-help" class="help" { "Letters, digits, " code { "_ . -" } ", starting with a letter or digit." }
                label for="scope" { "Scope" }
                input id="scope" name="scope" value="global" required autocomplete="off" spellcheck="false"
                    aria-describedby="scope-help";
                p id="scope-help" class="help" { code { "global" } " or " code { "kind:id" } ", e.g. " code { "agent_type:coder" } "." }
                label for="value" { "Value" }
                input id="value" name="value" type="password" required autocomplete="new-password"
                    aria-describedby="value-help";
                p id="value-help" class="help" { "Write-only: it is sealed and never shown again." }
                label for="description" { "Description" }
                input id="description" name="description" maxlength="1024" autocomplete="off";
                button type="submit" { "Add secret" }
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        page("Secrets", Some(&session), body),
    ))
}

/// The add form.
#[derive(Deserialize)]
pub struct NewSecretForm {
    name: String,
    #[serde(default)]
    scope: String,
    value: Zeroizing<String>,
    #[serde(default)]
    description: String,
}

/// `POST /settings/secrets`: adds a secret and shows its page.
pub async fn secret_create(
    State(state): State<AppState>,
    Submitted { session, form }: Submitted<NewSecretForm>,
) -> Result<Response, PageError> {
    let (scope, name) = target(form.name.trim(), Some(form.scope.trim()))?;
    if form.value.is_empty() {
        return Err(ApiError::Invalid("give the secret a value".into()).into());
    }
    state
        .vault
        .create(
            &scope,
            &name,
            form.value.as_bytes(),
            form.description.trim(),
            &access(&session, "create")?,
        )
        .await?;
    Ok(back_to(&scope, &name, "created"))
}

/// A secret page's query.
#[derive(Deserialize)]
pub struct SecretQuery {
    scope: Option<String>,
    notice: Option<String>,
    before: Option<i64>,
    accessor: Option<String>,
    action: Option<String>,
}

/// `GET /settings/secrets/{name}?scope=`: metadata, the forms that change
/// it, and its access log, newest first, paged.
pub async fn secret_page(
    SignedIn(session): SignedIn,
    State(state): State<AppState>,
    Path(name): Path<String>,
    params: QueryResult<SecretQuery>,
) -> Result<Response, PageError> {
    let params = query(params)?;
    let (scope, name) = target(&name, params.scope.as_deref())?;
    let meta = state.vault.meta(&scope, &name).await?;
    let nonempty = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
    let filter = HistoryQuery {
        before: params.before.filter(|b| *b > 0),
        accessor: nonempty(&params.accessor),
        action: nonempty(&params.action),
        ..HistoryQuery::default()
    };
    let found = state
        .vault
        .history(&scope, &name, &filter, LOG_PAGE)
        .await?;
    let versions = state.vault.versions(&scope, &name).await?;
    let (rows, older) = (found.rows, found.next_before);
    let filter_query = format!(
        "&accessor={}&action={}",
        q(filter.accessor.as_deref().unwrap_or("")),
        q(filter.action.as_deref().unwrap_or(""))
    );
    let body = html! {
        (notice(params.notice.as_deref()))
        dl class="meta" {
            dt { "Scope" } dd { code { (meta.scope) } }
            dt { "Value" } dd { span aria-label="value hidden" { (MASK) } }
            dt { "Description" } dd { (meta.description) }
            dt { "Version" } dd { (meta.version) }
            dt { "Sealed with key" } dd { code { (meta.key_id) } }
            dt { "Created" } dd { (when(meta.created_at)) }
            dt { "Last rotated" } dd { (when(meta.rotated_at)) }
        }
        section aria-labelledby="change" {
            h2 id="change" { "Change" }
            form method="post" action=(action_href(&scope, &name, "describe")) class="stack" {
                (csrf_field(&session))
                // The version this page shows: a change made meanwhile by
                // someone else is a conflict, not silently overwritten.
                input type="hidden" name="version" value=(meta.version);
                label for="description" { "Description" }
                input id="description" name="description" value=(meta.description) maxlength="1024" autocomplete="off";
                button type="submit" { "Save description" }
            }
            form method="post" action=(action_href(&scope, &name, "replace")) class="stack" {
                (csrf_field(&session))
                input type="hidden" name="version" value=(meta.version);
                label for="value" { "New value" }
                input id="value" name="value" type="password" required autocomplete="new-password"
                    aria-describedby="value-help";
                p id="value-help" class="help" { "Write-only. Replacing the value starts a new version." }
                button type="submit" { "Replace value" }
            }
            form method="post" action=(action_href(&scope, &name, "rotate")) class="inline" {
                (csrf_field(&session))
                button type="submit" { "Rotate (re-seal)" }
                span class="help" { " Re-seals the value under the current master key; the value stays the same." }
            }
            p { a class="danger" href=(action_href(&scope, &name, "delete")) { "Delete this secret…" } }
        }
        (super::versions::section(&scope, &name, &versions))
        section aria-labelledby="log" {
            h2 id="log" { "Access log" }
            form method="get" action=(format!("/settings/secrets/{name}")) class="inline filters" {
                input type="hidden" name="scope" value=(scope.as_str());
                label for="accessor" { "Accessor" }
                input id="accessor" name="accessor" value=(filter.accessor.as_deref().unwrap_or("")) autocomplete="off";
                label for="action" { "Action" }
                input id="action" name="action" value=(filter.action.as_deref().unwrap_or("")) autocomplete="off";
                button type="submit" { "Filter" }
            }
            @if rows.is_empty() {
                p { "No entries." }
            } @else {
                table {
                    caption class="sr-only" { "Access log, newest first" }
                    thead { tr {
                        th scope="col" { "#" } th scope="col" { "When" } th scope="col" { "Accessor" }
                        th scope="col" { "Action" } th scope="col" { "Outcome" } th scope="col" { "Reason" }
                    } }
                    tbody {
                        @for r in &rows {
                            tr {
                                td { (r.seq) } td { (when(r.at)) } td { code { (r.accessor) } }
                                td { (r.action) } td { (r.outcome) } td { (r.reason) }
                            }
                        }
                    }
                }
            }
            nav aria-label="Access log pages" class="pager" {
                @if filter.before.is_some() {
                    a href=(format!("{}{filter_query}", secret_href(&scope, &name))) { "Newest" }
                }
                @if let Some(before) = older {
                    a href=(format!("{}{filter_query}&before={before}", secret_href(&scope, &name))) rel="next" { "Older entries" }
                }
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        page(name.as_str(), Some(&session), body),
    ))
}

/// `?scope=` of the forms on one secret.
#[derive(Deserialize)]
pub struct ScopeOnly {
    pub(super) scope: Option<String>,
}

/// The description form.
#[derive(Deserialize)]
pub struct DescribeForm {
    #[serde(default)]
    description: String,
    /// The version the form was rendered from (check-and-set).
    version: Option<i64>,
}

/// `POST /settings/secrets/{name}/describe?scope=`.
pub async fn secret_describe(
    State(state): State<AppState>,
    Path(name): Path<String>,
    params: QueryResult<ScopeOnly>,
    Submitted { session, form }: Submitted<DescribeForm>,
) -> Result<Response, PageError> {
    let (scope, name) = target(&name, query(params)?.scope.as_deref())?;
    state
        .vault
        .describe_expecting(
            &scope,
            &name,
            form.description.trim(),
            &access(&session, "describe")?,
            form.version,
        )
        .await?;
    Ok(back_to(&scope, &name, "described"))
}

/// The replace form.
#[derive(Deserialize)]
pub struct ReplaceForm {
    value: Zeroizing<String>,
    /// The version the form was rendered from (check-and-set).
    version: Option<i64>,
}

/// `POST /settings/secrets/{name}/replace?scope=`: a new value, a new version.
pub async fn secret_replace(
    State(state): State<AppState>,
    Path(name): Path<String>,
    params: QueryResult<ScopeOnly>,
    Submitted { session, form }: Submitted<ReplaceForm>,
) -> Result<Response, PageError> {
    let (scope, name) = target(&name, query(params)?.scope.as_deref())?;
    if form.value.is_empty() {
        return Err(ApiError::Invalid("give the new value".into()).into());
    }
    state
        .vault
        .put_expecting(
            &scope,
            &name,
            form.value.as_bytes(),
            None,
            &access(&session, "replace value")?,
            PutMode::Replace,
            form.version,
        )
        .await?;
    Ok(back_to(&scope, &name, "replaced"))
}

/// No fields but the CSRF token.
#[derive(Deserialize)]
pub struct NoFields {}

/// `POST /settings/secrets/{name}/rotate?scope=`: re-seal.
pub async fn secret_rotate(
    State(state): State<AppState>,
    Path(name): Path<String>,
    params: QueryResult<ScopeOnly>,
    Submitted { session, .. }: Submitted<NoFields>,
) -> Result<Response, PageError> {
    let (scope, name) = target(&name, query(params)?.scope.as_deref())?;
    state
        .vault
        .reseal(&scope, &name, &access(&session, "rotate")?)
        .await?;
    Ok(back_to(&scope, &name, "rotated"))
}
