//! `/settings/agent-types/{name}`: one agent type — set or rotate its
//! token and its instances' override tokens (write-only), remove an
//! override, run a test dispatch, make an API token bound to it. The only
//! use of a token here is the dispatch, which goes through the resolver
//! and is logged with the session and its reason.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::agents::{access, forges, token_for_href, token_state, type_href};
use super::{csrf_field, html_response, notice, page, problem, see_other, when, PageError};
use super::{SignedIn, Submitted};
use crate::auth::Session;
use crate::forge::agents::AgentTypeView;
use crate::forge::ForgeError;
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::runtime::{Account, PluginError};

/// Why the dashboard's dispatch reads the token (the access log's reason).
const DISPATCH_REASON: &str = "dashboard test dispatch";

/// The page of the token secret: its metadata and access log.
fn secret_href(reference: &str) -> Option<String> {
    let (scope, name) = reference.split_once('/')?;
    Some(format!(
        "/settings/secrets/{name}?scope={}",
        super::q(scope)
    ))
}

fn details(t: &AgentTypeView) -> Markup {
    html! {
        dl class="meta" {
            dt { "Forge plugin" } dd { code { (t.forge) } }
            dt { "Base URL" } dd { code { (t.base_url) } }
            dt { "Description" } dd { (t.description) }
            dt { "Token" }
            dd {
                (token_state(&t.token))
                @if let Some(href) = t.token.as_deref().and_then(secret_href) {
                    " — " a href=(href) { "its access log" }
                }
            }
            dt { "Created" } dd { (when(t.created_at)) }
            dt { "Changed" } dd { (when(t.updated_at)) }
        }
    }
}

/// The write-only token field every token form has.
fn value_field(id: &str, label: &str) -> Markup {
    let help = format!("{id}-help");
    html! {
        label for=(id) { (label) }
        input id=(id) name="value" type="password" required autocomplete="off" aria-describedby=(help);
        p id=(help) class="help" { "Write-only: sealed, never shown again; the next dispatch uses it." }
    }
}

fn token_forms(session: &Session, t: &AgentTypeView) -> Markup {
    let action = format!("{}/token", type_href(&t.name));
    html! {
        section aria-labelledby="token" {
            h2 id="token" { "Token" }
            form method="post" action=(action) class="stack" {
                (csrf_field(session))
                (value_field("type-token", if t.token.is_some() { "New token (rotate)" } else { "Token" }))
                button type="submit" { @if t.token.is_some() { "Rotate token" } @else { "Set token" } }
            }
        }
        section aria-labelledby="instances" {
            h2 id="instances" { "Instance overrides" }
            p class="help" { "An instance with its own token uses it instead of the type's." }
            @if t.instances.is_empty() {
                p { "No instance has its own token." }
            } @else {
                table {
                    caption class="sr-only" { "Instances with their own token" }
                    thead { tr { th scope="col" { "Instance" } th scope="col" { "Token" } th scope="col" { "Actions" } } }
                    tbody {
                        @for i in &t.instances {
                            tr {
                                td { code { (i.id) } }
                                td { (token_state(&i.token)) }
                                td {
                                    a href=(token_for_href(&t.name, Some(&i.id))) { "Make a token for this instance" }
                                    form method="post" action=(format!("{}/instances/{}/delete", type_href(&t.name), super::q(&i.id))) class="inline" {
                                        (csrf_field(session))
                                        button type="submit" class="danger" aria-label=(format!("Remove the override of instance {}", i.id)) { "Remove override" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form method="post" action=(action) class="stack" {
                (csrf_field(session))
                label for="override-instance" { "Instance" }
                input id="override-instance" name="instance" required maxlength="128" autocomplete="off" spellcheck="false";
                (value_field("override-token", "Its token"))
                button type="submit" { "Set instance token" }
            }
        }
    }
}

fn dispatch_form(session: &Session, t: &AgentTypeView) -> Markup {
    html! {
        section aria-labelledby="dispatch" {
            h2 id="dispatch" { "Test dispatch" }
            p class="help" {
                "Asks the forge who the token belongs to (whoami), through the plugin, as a dispatch does. "
                "The token is read through the resolver and logged with you as the caller."
            }
            form method="post" action=(format!("{}/dispatch", type_href(&t.name))) class="inline" {
                (csrf_field(session))
                label for="dispatch-instance" { "Instance (optional)" }
                input id="dispatch-instance" name="instance" maxlength="128" autocomplete="off" spellcheck="false"
                    list="dispatch-instances";
                datalist id="dispatch-instances" { @for i in &t.instances { option value=(i.id) {} } }
                button type="submit" { "Test dispatch" }
            }
        }
    }
}

fn tokens_for(t: &AgentTypeView) -> Markup {
    html! {
        section aria-labelledby="for-agent" {
            h2 id="for-agent" { "API tokens for this agent" }
            p {
                a href=(token_for_href(&t.name, None)) { "Make a token for this agent" }
                " — a resolver token bound to " code { (t.name) } ": the server resolves its requests along this agent's chain "
                "and serves it only this type's forge token."
            }
            p { a class="danger" href=(format!("{}/delete", type_href(&t.name))) { "Delete this agent type…" } }
        }
    }
}

/// The type's page with `top` (a notice, an error, a dispatch's answer)
/// first; 404 if there is no such type.
async fn type_view(
    state: &AppState,
    session: &Session,
    name: &str,
    status: StatusCode,
    top: Markup,
) -> Result<Response, PageError> {
    let t = forges(state)?.agent_type(name).await?;
    let body = html! {
        (top)
        (details(&t))
        (dispatch_form(session, &t))
        (token_forms(session, &t))
        (tokens_for(&t))
    };
    let title = format!("Agent type {}", t.name);
    Ok(html_response(status, page(&title, Some(session), body)))
}

/// The page's query.
#[derive(Deserialize)]
pub struct TypeQuery {
    notice: Option<String>,
}

/// `GET /settings/agent-types/{name}`.
pub async fn agent_type_page(
    SignedIn(session): SignedIn,
    State(state): State<AppState>,
    Path(name): Path<String>,
    params: Result<Query<TypeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let key = params.ok().and_then(|Query(p)| p.notice);
    type_view(
        &state,
        &session,
        &name,
        StatusCode::OK,
        notice(key.as_deref()),
    )
    .await
}

/// The token forms.
#[derive(Deserialize)]
pub struct TokenForm {
    value: Zeroizing<String>,
    /// Empty: the type's own token.
    #[serde(default)]
    instance: String,
}

/// `POST /settings/agent-types/{name}/token`: sets or rotates the type's
/// token, or an instance's override (a new version of the secret).
pub async fn agent_type_token(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Submitted { session, form }: Submitted<TokenForm>,
) -> Result<Response, PageError> {
    let instance = Some(form.instance.trim()).filter(|i| !i.is_empty());
    let set = async {
        if form.value.is_empty() {
            return Err(ApiError::Invalid("give the token a value".into()));
        }
        let access = access(&session, "set agent type token")?;
        forges(&state)?
            .set_agent_token(&name, instance, form.value.as_bytes(), &access)
            .await?;
        Ok(())
    }
    .await;
    if let Err(e) = set {
        let (status, message) = problem(&e);
        let top = html! { p role="alert" id="type-error" { "Not saved: " (message) } };
        return type_view(&state, &session, &name, status, top).await;
    }
    tracing::info!(by = %session.accessor(), %name, instance = ?instance, "agent type token set in the dashboard");
    Ok(see_other(&format!("{}?notice=token-set", type_href(&name))))
}

/// `POST /settings/agent-types/{name}/instances/{id}/delete`: the instance
/// uses the type's token again (its secret stays in the store).
pub async fn instance_delete(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    Submitted { session, .. }: Submitted<super::login::Empty>,
) -> Result<Response, PageError> {
    forges(&state)?.delete_instance(&name, &id).await?;
    tracing::info!(by = %session.accessor(), %name, instance = %id, "instance override removed in the dashboard");
    Ok(see_other(&format!(
        "{}?notice=override-removed",
        type_href(&name)
    )))
}

/// The dispatch form.
#[derive(Deserialize)]
pub struct DispatchForm {
    #[serde(default)]
    instance: String,
}

fn account(a: &Account) -> Markup {
    html! {
        div class="once" role="status" id="dispatch-result" {
            p { "The forge answered: the token belongs to " strong { (a.login) } "." }
            dl class="meta" {
                dt { "Login" } dd { (a.login) }
                dt { "Account id" } dd { code { (a.id) } }
                @if let Some(n) = &a.name { dt { "Name" } dd { (n) } }
                @if let Some(e) = &a.email { dt { "E-mail" } dd { (e) } }
                dt { "Scopes" }
                dd { @if a.scopes.is_empty() { "not reported" } @else { (a.scopes.join(", ")) } }
                dt { "Token expires" }
                dd {
                    @match a.expires_at {
                        Some(s) => (when(s.saturating_mul(1000))),
                        None => "not reported",
                    }
                }
            }
        }
    }
}

/// What the operator is told when a dispatch fails. A plugin's error is
/// about the forge (and redacted of the token by the runtime), so it is
/// shown whatever its status; other server faults are the log's.
fn dispatch_problem(e: ForgeError) -> (StatusCode, String) {
    let shown = matches!(&e, ForgeError::Plugin(p) if !matches!(p, PluginError::Internal(_)));
    if shown {
        tracing::warn!(error = %e, "dashboard test dispatch failed");
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_GATEWAY);
        return (status, e.to_string());
    }
    problem(&ApiError::from(e))
}

/// `POST /settings/agent-types/{name}/dispatch`: a whoami with the type's
/// (or the instance's) token; the page says who the forge says it is, or
/// the forge's error, with the error's status.
pub async fn agent_type_dispatch(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Submitted { session, form }: Submitted<DispatchForm>,
) -> Result<Response, PageError> {
    let instance = Some(form.instance.trim()).filter(|i| !i.is_empty());
    let caller = crate::audit::Access::new(session.accessor(), DISPATCH_REASON)?;
    let answer = forges(&state)?.dispatch(&name, instance, &caller).await;
    let (status, top) = match answer {
        Ok(a) => (StatusCode::OK, account(&a)),
        // The type itself is unknown: the usual 404 page.
        Err(e @ ForgeError::UnknownAgentType(_)) => return Err(e.into()),
        Err(e) => {
            let (status, message) = dispatch_problem(e);
            let top = html! {
                div role="alert" id="dispatch-result" {
                    p { "The test dispatch failed (" (status.as_u16()) "): " (message) }
                }
            };
            (status, top)
        }
    };
    type_view(&state, &session, &name, status, top).await
}
