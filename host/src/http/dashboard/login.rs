//! Signing in with a one-time link, and signing out.

use axum::extract::{Form, Path, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::{html_response, page, page_response, see_other, PageError, Submitted};
use crate::auth::AuthError;
use crate::http::AppState;

fn link_refused() -> Response {
    page_response(
        StatusCode::UNAUTHORIZED,
        "Sign-in link not valid",
        html! {
            p role="alert" {
                "This sign-in link is unknown, already used or expired (links last 15 minutes and work once). "
                "Ask for a new one."
            }
            p { a href="/login" { "How to sign in" } }
        },
    )
}

/// `GET /login`: how to sign in: a button per configured forge.
pub async fn login_page(State(state): State<AppState>) -> Response {
    let forges: Vec<String> = state
        .forges
        .as_ref()
        .map(|f| f.apps().iter().map(|a| a.forge.clone()).collect())
        .unwrap_or_default();
    html_response(
        StatusCode::OK,
        page(
            "Sign in",
            None,
            html! {
                @if forges.is_empty() {
                    p {
                        "No forge is configured for signing in (see "
                        code { "KEYWARD_FORGES_FILE" } " in docs/forges.md). "
                        code { "keyward --dev serve" } " prints a one-time link instead."
                    }
                } @else {
                    ul {
                        @for forge in &forges {
                            li { a href={ "/auth/" (super::q(forge)) "/login" } { "Sign in with " (forge) } }
                        }
                    }
                    p { "Or use a one-time link that " code { "keyward --dev serve" } " prints." }
                }
                p { "Programs use API tokens instead; see " a href="/api" { "the API" } "." }
            },
        ),
    )
}

/// `GET /login/{link}`: a button that signs in. The GET itself changes
/// nothing, so a link preview or prefetch cannot use the link up.
pub async fn login_confirm(
    State(state): State<AppState>,
    Path(link): Path<String>,
) -> Result<Response, PageError> {
    let link = Zeroizing::new(link);
    if !state.sessions.link_usable(&link).await? {
        return Ok(link_refused());
    }
    Ok(html_response(
        StatusCode::OK,
        page(
            "Sign in",
            None,
            html! {
                p { "This one-time link signs you in to Keyward as an operator." }
                form method="post" action="/login" {
                    input type="hidden" name="link" value=(link.as_str());
                    button type="submit" autofocus { "Sign in" }
                }
            },
        ),
    ))
}

/// The sign-in form.
#[derive(Deserialize)]
pub struct LoginForm {
    link: Zeroizing<String>,
}

/// `POST /login` (form: `link`): uses the link up, sets the session cookie
/// and goes to the secrets page.
pub async fn login_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    super::same_origin(&headers)?;
    let Ok(Form(form)) = form else {
        return Ok(link_refused());
    };
    let (session, secret) = match state.sessions.redeem(&form.link).await {
        Ok(started) => started,
        Err(AuthError::Invalid) => return Ok(link_refused()),
        Err(e) => return Err(e.into()),
    };
    tracing::info!(subject = %session.subject, "operator signed in with a one-time link");
    let mut r = see_other("/settings/secrets");
    r.headers_mut()
        .insert(SET_COOKIE, state.web.start(secret.expose()));
    Ok(r)
}

/// No fields but the CSRF token.
#[derive(Deserialize)]
pub struct Empty {}

/// `POST /logout`: ends the session on every host and clears the cookie.
pub async fn logout(
    State(state): State<AppState>,
    Submitted { session, .. }: Submitted<Empty>,
) -> Result<Response, PageError> {
    state.sessions.end(&session).await?;
    tracing::info!(subject = %session.subject, "operator signed out");
    let mut r = see_other("/login");
    r.headers_mut().insert(SET_COOKIE, state.web.clear());
    Ok(r)
}
