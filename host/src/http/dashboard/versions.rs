//! A secret's versions in the dashboard: the list on the secret's page,
//! and a rollback behind a confirmation that asks why.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;

use super::secrets::{action_href, back_to, query, secret_href, target, ScopeOnly};
use super::{csrf_field, html_response, page, when, PageError, SignedIn, Submitted};
use crate::audit::Access;
use crate::auth::Session;
use crate::http::secrets::QueryResult;
use crate::http::AppState;
use crate::names::{Scope, SecretName};
use crate::store::versions::{State as VersionState, VersionMeta};

/// The versions section of a secret's page: who wrote each and when, what
/// is left of it, and a way back to each kept one. Never a value.
pub(super) fn section(scope: &Scope, name: &SecretName, versions: &[VersionMeta]) -> Markup {
    html! {
        section aria-labelledby="versions" {
            h2 id="versions" { "Versions" }
            table {
                caption class="sr-only" { "Versions, newest first" }
                thead { tr {
                    th scope="col" { "Version" } th scope="col" { "State" }
                    th scope="col" { "Written" } th scope="col" { "By" }
                    th scope="col" { "Key" } th scope="col" { span class="sr-only" { "Actions" } }
                } }
                tbody {
                    @for v in versions {
                        tr {
                            td { (v.version) }
                            td { (state_text(v.state)) }
                            td { (when(v.written_at)) }
                            td { code { (v.written_by) } }
                            td { code { (v.key_id) } }
                            td {
                                @if v.state == VersionState::Kept {
                                    a href=(format!("{}&to={}", action_href(scope, name, "rollback"), v.version)) {
                                        "Roll back to this…"
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn state_text(state: VersionState) -> &'static str {
    match state {
        VersionState::Current => "current",
        VersionState::Kept => "kept",
        VersionState::Destroyed => "destroyed",
    }
}

/// `?scope=&to=` of the rollback confirmation.
#[derive(Deserialize)]
pub struct RollbackQuery {
    scope: Option<String>,
    to: i64,
}

/// `GET /settings/secrets/{name}/rollback?scope=&to=N`: the confirmation,
/// with the reason it asks for.
pub async fn rollback_confirm(
    SignedIn(session): SignedIn,
    State(state): State<AppState>,
    Path(name): Path<String>,
    params: QueryResult<RollbackQuery>,
) -> Result<Response, PageError> {
    let params = query(params)?;
    let (scope, name) = target(&name, params.scope.as_deref())?;
    let versions = state.vault.versions(&scope, &name).await?;
    // 404 here, not after the operator confirmed.
    let Some(chosen) = versions
        .iter()
        .find(|v| v.version == params.to && v.state == VersionState::Kept)
    else {
        return Err(crate::vault::VaultError::VersionUnavailable {
            scope: scope.to_string(),
            name: name.to_string(),
            version: params.to,
            why: "not a kept earlier version",
        }
        .into());
    };
    let next = versions.first().map_or(1, |v| v.version + 1);
    Ok(html_response(
        StatusCode::OK,
        page(
            "Roll back",
            Some(&session),
            confirm_form(&session, &scope, &name, chosen, next),
        ),
    ))
}

fn confirm_form(
    session: &Session,
    scope: &Scope,
    name: &SecretName,
    chosen: &VersionMeta,
    next: i64,
) -> Markup {
    html! {
        p role="alert" {
            "Give " strong { (name) } " in scope " code { (scope) } " the value of version "
            (chosen.version) " (written " (when(chosen.written_at)) " by " code { (chosen.written_by) }
            ")? It becomes version " (next) "; the value it has now is kept, so this can be undone."
        }
        form method="post" action=(action_href(scope, name, "rollback")) class="stack" {
            (csrf_field(session))
            input type="hidden" name="to" value=(chosen.version);
            label for="reason" { "Why (recorded in the access log)" }
            input id="reason" name="reason" required maxlength="512" autocomplete="off" autofocus;
            div {
                button type="submit" class="danger" { "Roll back" }
                " "
                a href=(secret_href(scope, name)) { "Cancel" }
            }
        }
    }
}

/// The rollback form.
#[derive(Deserialize)]
pub struct RollbackForm {
    to: i64,
    reason: String,
}

/// `POST /settings/secrets/{name}/rollback?scope=`: a logged read of the
/// version and a logged write of it as the new version, with the reason.
pub async fn rollback(
    State(state): State<AppState>,
    Path(name): Path<String>,
    params: QueryResult<ScopeOnly>,
    Submitted { session, form }: Submitted<RollbackForm>,
) -> Result<Response, PageError> {
    let (scope, name) = target(&name, query(params)?.scope.as_deref())?;
    let access = Access::new(session.accessor(), form.reason.trim())?;
    state
        .vault
        .rollback(&scope, &name, form.to, &access)
        .await?;
    Ok(back_to(&scope, &name, "rolled-back"))
}
