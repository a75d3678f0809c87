//! GitLab: `/oauth/*` (Doorkeeper) and `/api/v4`.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::authorize::authorize;
use crate::clock::{http_date, iso, unix_now};
use crate::fixture;
use crate::gitlab_tokens;
use crate::oauth::{self, Failure};
use crate::paging::{Listing, Rel::*, Window};
use crate::params::{authorization_token, client_credentials, Params};
use crate::state::{lock, Access, Shared, State as Emu, TokenProblem};
use crate::Emulator;

/// `GET /api/v4/projects`.
const PROJECTS: Listing = Listing::new(
    "/api/v4/projects",
    project,
    &[Prev, Next, AlwaysFirst, AlwaysLast],
    ", ",
);

/// GitLab's routes.
pub(crate) fn router() -> Router<Shared> {
    Router::new()
        .route("/oauth/authorize", get(authorize))
        .route("/oauth/token", post(token))
        .route("/oauth/token/info", get(gitlab_tokens::token_info))
        .route("/oauth/revoke", post(revoke))
        .route("/api/v4/user", get(whoami))
        .route(
            "/api/v4/personal_access_tokens/self",
            get(gitlab_tokens::personal_access_token_self),
        )
        .route("/api/v4/projects", get(projects))
}

pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

async fn token(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let result = oauth::token_request(&shared, &headers, &body, None).await;
    match result {
        Ok(g) => {
            let mut reply = fixture::load("gitlab/oauth-token");
            reply.body["access_token"] = g.access_token.into();
            reply.body["created_at"] = g.created_at.into();
            // Doorkeeper leaves out what a grant does not have.
            if let Some(fields) = reply.body.as_object_mut() {
                match g.expires_in {
                    Some(e) => drop(fields.insert("expires_in".into(), e.into())),
                    None => drop(fields.remove("expires_in")),
                }
                match g.refresh_token {
                    Some(r) => drop(fields.insert("refresh_token".into(), r.into())),
                    None => drop(fields.remove("refresh_token")),
                }
            }
            reply.into_response()
        }
        Err(f) => {
            let (status, code) = match f {
                Failure::UnknownClient | Failure::BadSecret => {
                    (StatusCode::UNAUTHORIZED, "invalid_client")
                }
                Failure::Malformed | Failure::Missing(_) => {
                    (StatusCode::BAD_REQUEST, "invalid_request")
                }
                Failure::UnsupportedGrant => (StatusCode::BAD_REQUEST, "unsupported_grant_type"),
                _ => (StatusCode::BAD_REQUEST, "invalid_grant"),
            };
            oauth_error(status, code, &f.description())
        }
    }
}

async fn revoke(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let params = Params::from_body(&headers, &body).unwrap_or_default();
    let (id, secret) = client_credentials(&headers, &params);
    if id.as_deref() != Some(Emulator::CLIENT_ID)
        || secret.as_deref() != Some(Emulator::CLIENT_SECRET)
    {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.");
    }
    let Some(token) = params.get("token") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: token.",
        );
    };
    let mut state = lock(&shared);
    let known_access = state.access.get(token).is_some_and(|a| !a.personal);
    if known_access {
        state.access.remove(token);
        state.revoked.push(token.to_owned());
    } else if let Some(r) = state.refresh.remove(token) {
        state.access.remove(&r.access);
        state.revoked.push(token.to_owned());
    }
    // RFC 7009: unknown tokens are answered like known ones.
    Json(json!({})).into_response()
}

/// The API's 401 / 403 bodies.
pub(crate) fn authenticate<'a>(
    state: &'a Emu,
    headers: &HeaderMap,
) -> Result<&'a Access, Response> {
    let token = headers
        .get("private-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| authorization_token(headers, &["bearer"]));
    let unauthorized = || fixture::load("gitlab/api-error").into_response();
    let token = token.ok_or_else(unauthorized)?;
    match state.check_access(&token) {
        Ok(a) => {
            let ok = a.personal
                || a.scopes.is_empty()
                || a.scopes
                    .iter()
                    .any(|s| s == "api" || s == "read_api" || s == "read_user");
            if ok {
                Ok(a)
            } else {
                Err((
                    StatusCode::FORBIDDEN,
                    Json(json!({"error": "insufficient_scope", "error_description": "The request requires higher privileges than provided by the access token.", "scope": "api read_api read_user"})),
                )
                    .into_response())
            }
        }
        Err(TokenProblem::Expired) => Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "Token is expired. You can either do re-authorization or token refresh.",
        )),
        Err(TokenProblem::Unknown) => Err(unauthorized()),
    }
}

async fn whoami(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let state = lock(&shared);
    let access = match authenticate(&state, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let login = access.login.as_str();
    let bot = state.bots.contains(login);
    let host = state.base.trim_start_matches("http://");
    // GitLab gives a bot user a no-reply address.
    let email = if bot {
        format!("{login}@noreply.{host}")
    } else {
        format!("{login}@example.test")
    };
    let name = format!("{login} (emulated)");
    let mut user = fixture::load("gitlab/user");
    user.substitute(&[
        ("john@example.com", &email),
        ("john_smith", login),
        ("John Smith", &name),
        ("http://localhost:3000", &state.base),
    ]);
    user.body["id"] = state.user_id(login).into();
    user.body["bot"] = bot.into();
    user.into_response()
}

fn strict(value: Option<&str>, name: &str) -> Result<Option<usize>, Response> {
    match value {
        None => Ok(None),
        Some(v) => v.parse::<usize>().map(Some).map_err(|_| {
            (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("{name} is invalid")})),
            )
                .into_response()
        }),
    }
}

async fn projects(
    State(shared): State<Shared>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let state = lock(&shared);
    let access = match authenticate(&state, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let login = access.login.clone();
    let q = Params::from_query(query.as_deref().unwrap_or(""));
    let (page, per_page) = match (
        strict(q.get("page"), "page"),
        strict(q.get("per_page"), "per_page"),
    ) {
        (Ok(p), Ok(s)) => (p, s),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let count = state.repo_count(&login);
    let w = Window {
        page: page.unwrap_or(1).max(1),
        per_page: per_page.unwrap_or(20).clamp(1, 100),
        total: count,
    };
    let (items, link) = PROJECTS.page(&state, &login, &q, &w);
    let opt = |n: Option<usize>| n.map(|n| n.to_string()).unwrap_or_default();
    let mut response = Json(items).into_response();
    let h = response.headers_mut();
    let pairs = [
        ("x-next-page", opt(w.next())),
        ("x-page", w.page.to_string()),
        ("x-per-page", w.per_page.to_string()),
        ("x-prev-page", opt(w.prev())),
        ("x-total", count.to_string()),
        ("x-total-pages", w.last().to_string()),
        ("link", link),
    ];
    for (name, value) in pairs {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    response
}

fn project(base: &str, login: &str, owner_id: u64, i: usize) -> Value {
    let name = format!("repo-{i:03}");
    let host = base.trim_start_matches("http://");
    json!({
        "id": owner_id * 1000 + i as u64 + 1,
        "name": name,
        "path": name,
        "path_with_namespace": format!("{login}/{name}"),
        "namespace": {"path": login, "kind": "user"},
        "visibility": if i % 2 == 1 { "private" } else { "public" },
        "default_branch": "main",
        "web_url": format!("{base}/{login}/{name}"),
        "http_url_to_repo": format!("{base}/{login}/{name}.git"),
        "ssh_url_to_repo": format!("git@{host}:{login}/{name}.git"),
        "archived": false,
        "created_at": iso(1_704_067_200),
        "last_activity_at": iso(1_704_067_200 + i as u64 * 60),
    })
}

/// GitLab's Rack::Attack answer while throttled.
pub(crate) fn rate_limited(retry_after: u64) -> Response {
    let reset = unix_now() + retry_after;
    let mut r = (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::CONTENT_TYPE, "text/plain")],
        "Retry later\n",
    )
        .into_response();
    let h = r.headers_mut();
    h.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    h.insert(
        "ratelimit-name",
        HeaderValue::from_static("throttle_authenticated_api"),
    );
    h.insert("ratelimit-limit", HeaderValue::from(2000u64));
    h.insert("ratelimit-observed", HeaderValue::from(2001u64));
    h.insert("ratelimit-remaining", HeaderValue::from(0u64));
    h.insert("ratelimit-reset", HeaderValue::from(reset));
    if let Ok(v) = HeaderValue::from_str(&http_date(reset)) {
        h.insert("ratelimit-resettime", v);
    }
    r
}
