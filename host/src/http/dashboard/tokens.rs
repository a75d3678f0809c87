//! `/settings/tokens`: API tokens — create (shown once) with a policy,
//! list with each token's policy, expiry and last use, rotate, revoke.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;

use super::token_form::Draft;
use super::{
    csrf_field, html_response, notice, page, problem, see_other, when, Fields, PageError, SignedIn,
    Submitted,
};
use crate::auth::policy::Policy;
use crate::auth::{ApiToken, Session};
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::store::tokens::TokenRow;

/// What a token may do, in words: its role's preset, or its policy.
fn policy_summary(t: &TokenRow) -> Markup {
    let Some(stored) = &t.policy else {
        return html! {
            @if t.role == "operator" { "every change" } @else { "everything a resolver may do (no policy)" }
        };
    };
    match Policy::from_json(stored) {
        Ok(p) => {
            let caps: Vec<&str> = p.capabilities.iter().map(|c| c.as_str()).collect();
            html! {
                dl class="policy" {
                    @if let Some(agent) = &p.agent {
                        dt { "Bound to" }
                        dd {
                            "agent type " strong { (agent.agent_type) }
                            @if let Some(i) = &agent.instance { ", instance " strong { (i) } }
                        }
                    }
                    dt { "May" } dd { (caps.join(", ")) }
                    dt { "Resolves" }
                    dd { @for (n, r) in p.resolve.iter().enumerate() { @if n > 0 { ", " } code { (r) } } }
                    dt { "From" }
                    dd {
                        @if p.networks.is_empty() { "any network" }
                        @for (n, net) in p.networks.iter().enumerate() { @if n > 0 { ", " } code { (net) } }
                    }
                }
            }
        }
        // The token is refused (it never falls back to the preset); say so.
        Err(_) => html! { "unreadable stored policy: the token is refused" },
    }
}

fn token_list(session: &Session, tokens: &[TokenRow]) -> Markup {
    html! {
        section aria-labelledby="tokens" {
            h2 id="tokens" { "Tokens" }
            @if tokens.is_empty() {
                p { "No tokens yet." }
            } @else {
                table {
                    caption class="sr-only" { "API tokens, newest first" }
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "Id" } th scope="col" { "Role" }
                        th scope="col" { "Policy" } th scope="col" { "Created" } th scope="col" { "Last used" }
                        th scope="col" { "Expires" } th scope="col" { "State" }
                    } }
                    tbody {
                        @for t in tokens {
                            tr {
                                td { (t.name) }
                                td { code { (t.id) } }
                                td { (t.role) }
                                td { (policy_summary(t)) }
                                td { (when(t.created_at)) }
                                td { (t.last_used_at.map(when).unwrap_or_else(|| "never".into())) }
                                td { (t.expires_at.map(when).unwrap_or_else(|| "never".into())) }
                                td {
                                    @if let Some(at) = t.revoked_at {
                                        "revoked " (when(at))
                                    } @else if t.expired(crate::store::now_ms()) {
                                        "expired " (when(t.expires_at.unwrap_or_default()))
                                    } @else {
                                        @if let Some(at) = t.expires_at {
                                            "expires " (when(at)) " "
                                        }
                                        form method="post" action=(format!("/settings/tokens/{}/rotate", t.id)) class="inline" {
                                            (csrf_field(session))
                                            label class="sr-only" for=(format!("grace-{}", t.id)) { "Keep the old value for" }
                                            select id=(format!("grace-{}", t.id)) name="grace_minutes" {
                                                option value="0" { "old value: refused at once" }
                                                option value="10" { "old value: 10 more minutes" }
                                                option value="60" selected { "old value: 1 more hour" }
                                                option value="1440" { "old value: 1 more day" }
                                            }
                                            button type="submit" aria-label=(format!("Rotate token {}", t.name)) { "Rotate" }
                                        }
                                        form method="post" action=(format!("/settings/tokens/{}/revoke", t.id)) class="inline" {
                                            (csrf_field(session))
                                            button type="submit" class="danger" aria-label=(format!("Revoke token {}", t.name)) { "Revoke" }
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
}

/// The names of the agent types a token may be bound to.
async fn agent_type_names(state: &AppState) -> Result<Vec<String>, PageError> {
    let rows = crate::store::agents::list(state.vault.db().reader())
        .await
        .map_err(crate::forge::ForgeError::from)?;
    Ok(rows.into_iter().map(|r| r.name).collect())
}

/// The page: `top` (a notice, an error, a value shown once), the form as
/// `draft` holds it, the list.
async fn tokens_view(
    state: &AppState,
    session: &Session,
    status: StatusCode,
    top: Markup,
    draft: &Draft,
) -> Result<Response, PageError> {
    let tokens = state.tokens.list().await?;
    let agent_types = agent_type_names(state).await?;
    let body = html! {
        (top)
        (draft.form(session, &agent_types))
        (token_list(session, &tokens))
    };
    Ok(html_response(
        status,
        page("API tokens", Some(session), body),
    ))
}

/// The page's query: a notice after a redirect, or the binding an agent
/// type's page asks the form to start with.
#[derive(Deserialize)]
pub struct TokensQuery {
    notice: Option<String>,
    agent_type: Option<String>,
    instance: Option<String>,
}

/// `GET /settings/tokens?agent_type=&instance=`.
pub async fn tokens_page(
    SignedIn(session): SignedIn,
    State(state): State<AppState>,
    params: Result<Query<TokensQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let params = params.ok().map(|Query(p)| p);
    let param = |f: fn(&TokensQuery) -> &Option<String>| {
        params
            .as_ref()
            .and_then(|p| f(p).as_deref())
            .filter(|v| !v.is_empty())
    };
    let draft = Draft::fresh(param(|p| &p.agent_type), param(|p| &p.instance));
    let top = notice(param(|p| &p.notice));
    tokens_view(&state, &session, StatusCode::OK, top, &draft).await
}

/// `POST /settings/tokens`: creates a token and shows it this once (the
/// answer is a page, not a redirect, so it is never in a URL or history).
/// A refused form comes back filled in, with why, and nothing is created.
pub async fn token_create(
    State(state): State<AppState>,
    Submitted { session, form }: Submitted<Fields>,
) -> Result<Response, PageError> {
    let (draft, too_long) = Draft::sent(&form);
    let agent_types = agent_type_names(&state).await?;
    let checked = match too_long {
        Some(field) => Err(ApiError::Invalid(format!(
            "the {field} field is far too long; it was cleared"
        ))),
        None => draft.grant(&agent_types),
    };
    let made = match checked {
        Ok((role, grant)) => state
            .tokens
            .create_with(draft.name(), role, grant)
            .await
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    let (row, token) = match made {
        Ok(made) => made,
        Err(e) => {
            let (status, message) = problem(&e);
            let top = html! { p role="alert" id="token-error" { "Not created: " (message) } };
            return tokens_view(&state, &session, status, top, &draft).await;
        }
    };
    tracing::info!(by = %session.accessor(), id = %row.id, role = %row.role, policy = row.policy.is_some(), "API token created in the dashboard");
    showing_once(
        &state,
        &session,
        &token,
        &row,
        "created",
        StatusCode::CREATED,
    )
    .await
}

/// The rotate form.
#[derive(Deserialize)]
pub struct RotateForm {
    /// Minutes the old value stays accepted; empty or 0: none.
    #[serde(default)]
    grace_minutes: String,
}

/// The one showing of a token's value; `what` says what just happened
/// ("created", "rotated").
fn shown_once(token: &ApiToken, row: &TokenRow, what: &str) -> Markup {
    html! {
        div class="once" role="status" {
            p { "Token " strong { (row.name) } " (" (row.role) ") " (what) ". Copy it now: it is shown this once and cannot be recovered." }
            label for="new-token-value" { "Token" }
            input id="new-token-value" readonly value=(token.expose()) size="70" spellcheck="false" autocomplete="off";
        }
    }
}

/// The tokens page with a new value on it, this once: the answer to the
/// form itself, never a redirect, so the value is in no URL or history.
async fn showing_once(
    state: &AppState,
    session: &Session,
    token: &ApiToken,
    row: &TokenRow,
    what: &str,
    status: StatusCode,
) -> Result<Response, PageError> {
    let top = shown_once(token, row, what);
    tokens_view(state, session, status, top, &Draft::fresh(None, None)).await
}

/// `POST /settings/tokens/{id}/revoke`.
pub async fn token_revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Submitted { session, .. }: Submitted<super::login::Empty>,
) -> Result<Response, PageError> {
    state.tokens.revoke(&id).await?;
    tracing::info!(by = %session.accessor(), %id, "API token revoked in the dashboard");
    Ok(see_other("/settings/tokens?notice=revoked"))
}

/// `POST /settings/tokens/{id}/rotate`: a new value for the token, shown
/// this once (a page, never a redirect); the old one lasts the grace chosen.
pub async fn token_rotate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Submitted { session, form }: Submitted<RotateForm>,
) -> Result<Response, PageError> {
    let minutes = form.grace_minutes.trim();
    let minutes: u64 = if minutes.is_empty() {
        0
    } else {
        minutes
            .parse()
            .map_err(|_| crate::auth::AuthError::BadGrace)?
    };
    let grace = std::time::Duration::from_secs(minutes.saturating_mul(60));
    let (row, token, _) = state.tokens.rotate(&id, grace).await?;
    tracing::info!(by = %session.accessor(), %id, grace_minutes = minutes, "API token rotated in the dashboard");
    showing_once(&state, &session, &token, &row, "rotated", StatusCode::OK).await
}
