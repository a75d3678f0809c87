//! Forgejo / Gitea: `/login/oauth/*` and `/api/v1`.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::authorize::authorize;
use crate::clock::iso;
use crate::fixture;
use crate::oauth::{self, Failure};
use crate::paging::{Listing, Rel::*, Window};
use crate::params::{authorization_token, Params};
use crate::state::{lock, Access, Shared, State as Emu};

/// `GET /api/v1/user/repos`.
const REPOS: Listing = Listing::new("/api/v1/user/repos", repo, &[Next, Last, First, Prev], ",");

/// Forgejo's routes.
pub(crate) fn router() -> Router<Shared> {
    Router::new()
        .route("/login/oauth/authorize", get(authorize))
        .route("/login/oauth/access_token", post(token))
        .route("/api/v1/user", get(whoami))
        .route("/api/v1/user/repos", get(repos))
}

async fn token(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let result = oauth::token_request(&shared, &headers, &body, None).await;
    match result {
        Ok(g) => {
            let mut reply = json!({"access_token": g.access_token, "token_type": "bearer"});
            if let Some(e) = g.expires_in {
                reply["expires_in"] = e.into();
            }
            if let Some(r) = g.refresh_token {
                reply["refresh_token"] = r.into();
            }
            Json(reply).into_response()
        }
        Err(f) => {
            // Gitea answers nearly every grant problem with unauthorized_client.
            let code = match f {
                Failure::Malformed | Failure::Missing(_) => "invalid_request",
                Failure::UnknownClient => "invalid_client",
                Failure::UnsupportedGrant => "unsupported_grant_type",
                _ => "unauthorized_client",
            };
            (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": code, "error_description": f.description()})),
            )
                .into_response()
        }
    }
}

/// The API error shape (fixture `forgejo/api-error`).
pub(crate) fn api_error(base: &str, status: StatusCode, message: &str) -> Response {
    let mut f = fixture::load("forgejo/api-error");
    f.status = status.as_u16();
    f.body["message"] = message.into();
    f.body["url"] = format!("{base}/api/swagger").into();
    f.into_response()
}

fn authenticate<'a>(
    state: &'a Emu,
    headers: &HeaderMap,
    scope: &str,
) -> Result<&'a Access, Response> {
    let Some(token) = authorization_token(headers, &["token", "bearer"]) else {
        return Err(api_error(
            &state.base,
            StatusCode::UNAUTHORIZED,
            "token is required",
        ));
    };
    // An unknown or expired token signs nobody in (services/auth/oauth2.go:
    // userIDFromToken answers 0), so reqToken refuses it like no token.
    let access = state
        .check_access(&token)
        .map_err(|_| api_error(&state.base, StatusCode::UNAUTHORIZED, "token is required"))?;
    let family = scope.split_once(':').map_or(scope, |(_, f)| f);
    let granted = access.scopes.is_empty()
        || access
            .scopes
            .iter()
            .any(|s| s == "all" || s == scope || *s == format!("write:{family}"));
    if !granted {
        let message = format!("token does not have at least one of required scope(s): [{scope}]");
        return Err(api_error(&state.base, StatusCode::FORBIDDEN, &message));
    }
    Ok(access)
}

async fn whoami(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let state = lock(&shared);
    let access = match authenticate(&state, &headers, "read:user") {
        Ok(a) => a,
        Err(r) => return r,
    };
    let login = access.login.as_str();
    let name = format!("{login} (emulated)");
    let mut user = fixture::load("forgejo/user");
    user.substitute(&[
        ("Forgejo User", &name),
        ("forgejo_user", login),
        ("http://localhost:3000", &state.base),
    ]);
    user.body["id"] = state.user_id(login).into();
    user.body["created"] = iso(1_704_067_200).into();
    user.body["last_login"] = iso(access.created_at).into();
    user.into_response()
}

async fn repos(
    State(shared): State<Shared>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let state = lock(&shared);
    let access = match authenticate(&state, &headers, "read:repository") {
        Ok(a) => a,
        Err(r) => return r,
    };
    let q = Params::from_query(query.as_deref().unwrap_or(""));
    let count = state.repo_count(&access.login);
    let w = Window::lenient(q.get("page"), q.get("limit"), 30, 50, count);
    let (items, link) = REPOS.page(&state, &access.login, &q, &w);
    let mut response = Json(items).into_response();
    let h = response.headers_mut();
    h.insert("x-total-count", HeaderValue::from(count));
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Link, X-Total-Count"),
    );
    if let Ok(v) = HeaderValue::from_str(&link) {
        if !link.is_empty() {
            h.insert(header::LINK, v);
        }
    }
    response
}

fn repo(base: &str, login: &str, owner_id: u64, i: usize) -> Value {
    let name = format!("repo-{i:03}");
    let host = base.trim_start_matches("http://");
    json!({
        "id": owner_id * 1000 + i as u64 + 1,
        "owner": {"id": owner_id, "login": login, "username": login},
        "name": name,
        "full_name": format!("{login}/{name}"),
        "description": "",
        "empty": false,
        "private": i % 2 == 1,
        "fork": false,
        "template": false,
        "mirror": false,
        "html_url": format!("{base}/{login}/{name}"),
        "clone_url": format!("{base}/{login}/{name}.git"),
        "ssh_url": format!("git@{host}:{login}/{name}.git"),
        "default_branch": "main",
        "archived": false,
        "permissions": {"admin": true, "push": true, "pull": true},
        "created_at": iso(1_704_067_200),
        "updated_at": iso(1_704_067_200 + i as u64 * 60),
    })
}

/// Forgejo's answer while rate limited.
pub(crate) fn rate_limited(base: &str, retry_after: u64) -> Response {
    let mut r = api_error(base, StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded");
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    r
}
