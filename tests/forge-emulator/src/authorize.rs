//! The authorize endpoint: the signed-in "browser" approves at once and is sent back with a code.

use std::time::Instant;

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::params::{scopes, Params};
use crate::state::{lock, Challenge, Code, Shared};
use crate::{Emulator, Flavor};

/// `GET …/authorize`.
pub(crate) async fn authorize(State(shared): State<Shared>, RawQuery(query): RawQuery) -> Response {
    let q = Params::from_query(query.as_deref().unwrap_or(""));
    let mut state = lock(&shared);
    let flavor = state.flavor;
    if q.get("client_id") != Some(Emulator::CLIENT_ID) {
        return page(StatusCode::BAD_REQUEST, "Client ID not registered");
    }
    let Some(registered) = state.redirect_uri.clone() else {
        return page(
            StatusCode::BAD_REQUEST,
            "The application has no registered redirect URI",
        );
    };
    let redirect = match (q.get("redirect_uri"), flavor) {
        (Some(uri), _) if uri == registered => registered.clone(),
        // GitHub uses the registered callback when none is given.
        (None, Flavor::Github) => registered.clone(),
        // GitHub reports a mismatch by redirecting to the registered callback.
        (Some(_), Flavor::Github) => {
            return back(
                &registered,
                &[
                    ("error", "redirect_uri_mismatch"),
                    ("error_description", "The redirect_uri MUST match the registered callback URL for this application."),
                    ("error_uri", "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#redirect-uri-mismatch"),
                ],
                q.get("state"),
            )
        }
        _ => return page(StatusCode::BAD_REQUEST, "Invalid redirect URI"),
    };
    let st = q.get("state");
    let fail = |error: &str, description: &str| {
        back(
            &redirect,
            &[("error", error), ("error_description", description)],
            st,
        )
    };
    if flavor != Flavor::Github && q.get("response_type") != Some("code") {
        return fail(
            "unsupported_response_type",
            "Only code response type is supported.",
        );
    }
    if st.is_none() {
        return fail("invalid_request", "state is required");
    }
    let challenge = match (q.get("code_challenge"), q.get("code_challenge_method")) {
        (None, _) if flavor == Flavor::Github => None,
        (None, _) => {
            return fail(
                "invalid_request",
                "PKCE is required: code_challenge missing",
            )
        }
        (Some(value), method) => {
            let method = method.unwrap_or(if flavor == Flavor::Github {
                "S256"
            } else {
                "plain"
            });
            let allowed = match flavor {
                Flavor::Github => method == "S256",
                _ => method == "S256" || method == "plain",
            };
            if !allowed || value.len() < 43 || value.len() > 128 {
                return fail("invalid_request", "unsupported or malformed code_challenge");
            }
            Some(Challenge {
                value: value.to_owned(),
                method: method.to_owned(),
            })
        }
    };
    let signed_in = state
        .browser
        .clone()
        .filter(|login| state.users.contains_key(login));
    let Some(login) = signed_in else {
        let to = match flavor {
            Flavor::Forgejo => "/user/login",
            Flavor::Github => "/login",
            Flavor::Gitlab => "/users/sign_in",
        };
        return redirect_to(&format!("{}{to}", state.base));
    };
    let code = state.random_hex(20);
    state.codes.insert(
        code.clone(),
        Code {
            login,
            client_id: Emulator::CLIENT_ID.to_owned(),
            redirect_uri: redirect.clone(),
            challenge,
            scopes: scopes(q.get("scope")),
            issued: Instant::now(),
            used: false,
        },
    );
    back(&redirect, &[("code", &code)], st)
}

fn back(redirect: &str, pairs: &[(&str, &str)], state: Option<&str>) -> Response {
    let Ok(mut url) = url::Url::parse(redirect) else {
        return page(StatusCode::BAD_REQUEST, "Invalid redirect URI");
    };
    {
        let mut query = url.query_pairs_mut();
        query.extend_pairs(pairs);
        if let Some(state) = state {
            query.append_pair("state", state);
        }
    }
    redirect_to(url.as_str())
}

fn redirect_to(location: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, location.to_owned())]).into_response()
}

fn page(status: StatusCode, message: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html><html><body><h1>{}</h1><p>{message}</p></body></html>",
        status.as_u16()
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}
