//! `/settings/tokens`: API tokens — create (shown once), list, revoke.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;

use super::{
    csrf_field, html_response, notice, page, see_other, when, PageError, SignedIn, Submitted,
};
use crate::auth::{ApiToken, Role, Session};
use crate::http::AppState;
use crate::store::tokens::TokenRow;

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
                        th scope="col" { "Created" } th scope="col" { "Last used" } th scope="col" { "State" }
                    } }
                    tbody {
                        @for t in tokens {
                            tr {
                                td { (t.name) }
                                td { code { (t.id) } }
                                td { (t.role) }
                                td { (when(t.created_at)) }
                                td { (t.last_used_at.map(when).unwrap_or_else(|| "never".into())) }
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

fn create_form(session: &Session) -> Markup {
    html! {
        section aria-labelledby="new-token" {
            h2 id="new-token" { "Create a token" }
            form method="post" action="/settings/tokens" class="stack" {
                (csrf_field(session))
                label for="token-name" { "Name" }
                input id="token-name" name="name" required maxlength="64" autocomplete="off";
                fieldset {
                    legend { "Role" }
                    label { input type="radio" name="role" value="resolver" checked; " resolver — render templates, read metadata" }
                    label { input type="radio" name="role" value="operator"; " operator — every change" }
                }
                label for="token-ttl" { "Expires" }
                select id="token-ttl" name="ttl_days" {
                    option value="1" { "after 1 day" }
                    option value="30" { "after 30 days" }
                    option value="90" selected { "after 90 days" }
                    option value="365" { "after 1 year" }
                    option value="" { "never" }
                }
                button type="submit" { "Create token" }
            }
        }
    }
}

/// The page's query.
#[derive(Deserialize)]
pub struct TokensQuery {
    notice: Option<String>,
}

/// `GET /settings/tokens`.
pub async fn tokens_page(
    SignedIn(session): SignedIn,
    State(state): State<AppState>,
    params: Result<Query<TokensQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let notice_key = params.ok().and_then(|Query(p)| p.notice);
    let tokens = state.tokens.list().await?;
    let body = html! {
        (notice(notice_key.as_deref()))
        (create_form(&session))
        (token_list(&session, &tokens))
    };
    Ok(html_response(
        StatusCode::OK,
        page("API tokens", Some(&session), body),
    ))
}

/// The create form.
#[derive(Deserialize)]
pub struct NewTokenForm {
    name: String,
    role: String,
    /// Days until it expires; empty: never.
    #[serde(default)]
    ttl_days: String,
}

/// A form's day count: empty is none; anything else must be a whole number.
fn days(text: &str) -> Result<Option<std::time::Duration>, crate::auth::AuthError> {
    if text.is_empty() {
        return Ok(None);
    }
    let days: u64 = text.parse().map_err(|_| crate::auth::AuthError::BadTtl)?;
    Ok(Some(std::time::Duration::from_secs(
        days.checked_mul(86_400)
            .ok_or(crate::auth::AuthError::BadTtl)?,
    )))
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

/// `POST /settings/tokens`: creates a token and shows it this once (the
/// answer is a page, not a redirect, so it is never in a URL or history).
pub async fn token_create(
    State(state): State<AppState>,
    Submitted { session, form }: Submitted<NewTokenForm>,
) -> Result<Response, PageError> {
    let role = Role::parse(&form.role)?;
    let ttl = days(form.ttl_days.trim())?;
    let (row, token) = state
        .tokens
        .create_with(
            form.name.trim(),
            role,
            crate::auth::Grant { ttl, policy: None },
        )
        .await?;
    tracing::info!(by = %session.accessor(), id = %row.id, role = %row.role, "API token created in the dashboard");
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
    let tokens = state.tokens.list().await?;
    let body = html! {
        (shown_once(token, row, what))
        (create_form(session))
        (token_list(session, &tokens))
    };
    Ok(html_response(
        status,
        page("API tokens", Some(session), body),
    ))
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
