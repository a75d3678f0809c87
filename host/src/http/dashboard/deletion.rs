//! Deleting from the dashboard: the confirmation that says a delete can be
//! undone, the deleted secrets' list with Undelete and Destroy, and the
//! destroy's own confirmation (that one cannot be undone).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};

use super::secrets::{
    access, action_href, back_to, query, secret_href, target, NoFields, ScopeOnly,
};
use super::{csrf_field, html_response, page, q, see_other, when, PageError, SignedIn, Submitted};
use crate::auth::Session;
use crate::http::secrets::QueryResult;
use crate::http::AppState;
use crate::names::{Scope, SecretName};

fn delete_form(session: &Session, scope: &Scope, name: &SecretName, retention: &str) -> Markup {
    html! {
        p role="alert" {
            "Delete " strong { (name) } " in scope " code { (scope) } "? "
            "Programs that render it will get a missing-secret error at once. "
            "It can be undeleted from the secrets page for " (retention)
            "; then it is destroyed. The access log keeps its history."
        }
        form method="post" action=(action_href(scope, name, "delete")) class="inline" {
            (csrf_field(session))
            button type="submit" class="danger" autofocus { "Delete" }
            " "
            a href=(secret_href(scope, name)) { "Cancel" }
        }
    }
}

/// The soft-deleted secrets, each with Undelete and Destroy (two forms, so
/// neither is the other's default).
pub(super) fn deleted_section(
    session: &Session,
    deleted: &[crate::store::secrets::DeletedMeta],
) -> Markup {
    html! {
        section aria-labelledby="deleted" {
            h2 id="deleted" { "Deleted secrets" }
            p class="help" { "They render as missing. Undelete brings one back with its value and versions; past its date the server destroys it." }
            table {
                caption class="sr-only" { "Deleted secrets, by scope and name" }
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Scope" } th scope="col" { "Version" }
                    th scope="col" { "Deleted" } th scope="col" { "By" } th scope="col" { "Undeletable until" }
                    th scope="col" { span class="sr-only" { "Actions" } }
                } }
                tbody {
                    @for d in deleted {
                        @let (scope, name) = (&d.meta.scope, &d.meta.name);
                        tr {
                            td { (name) }
                            td { code { (scope) } }
                            td { (d.meta.version) }
                            td { (when(d.deleted_at)) }
                            td { (d.deleted_by) }
                            td { (when(d.undeletable_until)) }
                            td {
                                form method="post" class="inline"
                                    action=(format!("/settings/secrets/{name}/undelete?scope={}", q(scope))) {
                                    (csrf_field(session))
                                    button type="submit" aria-label=(format!("Undelete {name}")) { "Undelete" }
                                }
                                " "
                                a class="danger" href=(format!("/settings/secrets/{name}/destroy?scope={}", q(scope)))
                                    aria-label=(format!("Destroy {name} now…")) { "Destroy now…" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /settings/secrets/{name}/delete?scope=`: the confirmation.
pub async fn secret_delete_confirm(
    SignedIn(session): SignedIn,
    State(state): State<AppState>,
    Path(name): Path<String>,
    params: QueryResult<ScopeOnly>,
) -> Result<Response, PageError> {
    let (scope, name) = target(&name, query(params)?.scope.as_deref())?;
    // 404 here, not after the operator confirmed.
    state.vault.meta(&scope, &name).await?;
    let retention = crate::vault::describe_duration(state.vault.retention());
    Ok(html_response(
        StatusCode::OK,
        page(
            "Delete secret",
            Some(&session),
            delete_form(&session, &scope, &name, &retention),
        ),
    ))
}

/// `POST /settings/secrets/{name}/delete?scope=`.
pub async fn secret_delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
    params: QueryResult<ScopeOnly>,
    Submitted { session, .. }: Submitted<NoFields>,
) -> Result<Response, PageError> {
    let (scope, name) = target(&name, query(params)?.scope.as_deref())?;
    state
        .vault
        .delete(&scope, &name, &access(&session, "delete")?)
        .await?;
    Ok(see_other("/settings/secrets?notice=deleted"))
}

/// `POST /settings/secrets/{name}/undelete?scope=`: back with its value and
/// versions.
pub async fn secret_undelete(
    State(state): State<AppState>,
    Path(name): Path<String>,
    params: QueryResult<ScopeOnly>,
    Submitted { session, .. }: Submitted<NoFields>,
) -> Result<Response, PageError> {
    let (scope, name) = target(&name, query(params)?.scope.as_deref())?;
    state
        .vault
        .undelete(&scope, &name, &access(&session, "undelete")?)
        .await?;
    Ok(back_to(&scope, &name, "undeleted"))
}

/// `GET /settings/secrets/{name}/destroy?scope=`: the confirmation of a
/// destroy, which cannot be undone.
pub async fn secret_destroy_confirm(
    SignedIn(session): SignedIn,
    State(state): State<AppState>,
    Path(name): Path<String>,
    params: QueryResult<ScopeOnly>,
) -> Result<Response, PageError> {
    let (scope, name) = target(&name, query(params)?.scope.as_deref())?;
    let known = state
        .vault
        .deleted(Some(&scope))
        .await?
        .into_iter()
        .any(|d| d.meta.name == name.as_str());
    if !known {
        state.vault.meta(&scope, &name).await?;
    }
    let action = format!(
        "/settings/secrets/{name}/destroy?scope={}",
        q(scope.as_str())
    );
    let body = html! {
        p role="alert" {
            "Destroy " strong { (name) } " in scope " code { (scope) } " and every version of it? "
            "Its ciphertext is removed now and cannot be brought back. The access log keeps its history."
        }
        form method="post" action=(action) class="inline" {
            (csrf_field(&session))
            button type="submit" class="danger" autofocus { "Destroy for good" }
            " "
            a href="/settings/secrets#deleted" { "Cancel" }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        page("Destroy secret", Some(&session), body),
    ))
}

/// `POST /settings/secrets/{name}/destroy?scope=`.
pub async fn secret_destroy(
    State(state): State<AppState>,
    Path(name): Path<String>,
    params: QueryResult<ScopeOnly>,
    Submitted { session, .. }: Submitted<NoFields>,
) -> Result<Response, PageError> {
    let (scope, name) = target(&name, query(params)?.scope.as_deref())?;
    state
        .vault
        .destroy(&scope, &name, &access(&session, "destroy")?)
        .await?;
    Ok(see_other("/settings/secrets?notice=destroyed"))
}
