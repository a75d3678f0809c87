//! GitHub (Enterprise layout): `/login/oauth/*` and `/api/v3`.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::authorize::authorize;
use crate::clock::{github_expiration, iso, unix_now};
use crate::fixture;
use crate::oauth::{self, Failure};
use crate::paging::{Listing, Rel::*, Window};
use crate::params::{authorization_token, basic, Params};
use crate::state::{lock, Access, GithubLimit, Shared, State as Emu};
use crate::Emulator;

/// `GET /api/v3/user/repos`.
const REPOS: Listing = Listing::new("/api/v3/user/repos", repo, &[Prev, Next, Last, First], ", ");

const DOCS: &str = "https://docs.github.com/rest";
/// The primary rate limit GitHub grants a user token.
const LIMIT: u64 = 5000;

/// GitHub's routes.
pub(crate) fn router() -> Router<Shared> {
    Router::new()
        .route("/login/oauth/authorize", get(authorize))
        .route("/login/oauth/access_token", post(token))
        .route("/api/v3/user", get(whoami))
        .route("/api/v3/user/repos", get(repos))
        .route("/api/v3/applications/{client_id}/token", delete(revoke))
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

/// JSON with `Accept: application/json`, else a form-encoded body; always 200, errors included.
fn reply(headers: &HeaderMap, fields: &[(&str, String)]) -> Response {
    if wants_json(headers) {
        let map: serde_json::Map<String, Value> = fields
            .iter()
            .map(|(k, v)| {
                let value = v
                    .parse::<u64>()
                    .ok()
                    .filter(|_| k.ends_with("expires_in"))
                    .map_or_else(|| Value::from(v.as_str()), Value::from);
                ((*k).to_owned(), value)
            })
            .collect();
        return Json(Value::Object(map)).into_response();
    }
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    (
        [(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn token(
    State(shared): State<Shared>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    // GitHub also takes the parameters in the query string.
    let query = query.as_deref().unwrap_or("");
    let result = oauth::token_request(&shared, &headers, &body, Some(query)).await;
    match result {
        Ok(g) => {
            let mut fields = vec![("access_token", g.access_token)];
            if let (Some(e), Some(r)) = (g.expires_in, g.refresh_token) {
                fields.push(("expires_in", e.to_string()));
                fields.push(("refresh_token", r));
                fields.push(("refresh_token_expires_in", "15897600".to_owned()));
            }
            fields.push(("scope", g.scopes.join(",")));
            fields.push(("token_type", "bearer".to_owned()));
            reply(&headers, &fields)
        }
        Err(f) => {
            let (code, anchor) = match f {
                Failure::Malformed
                | Failure::Missing(_)
                | Failure::BadCode
                | Failure::BadVerifier => ("bad_verification_code", "bad-verification-code"),
                Failure::UnknownClient | Failure::BadSecret => (
                    "incorrect_client_credentials",
                    "incorrect-client-credentials",
                ),
                Failure::RedirectMismatch => ("redirect_uri_mismatch", "redirect-uri-mismatch"),
                Failure::BadRefresh => ("bad_refresh_token", "bad-refresh-token"),
                Failure::UnsupportedGrant => ("unsupported_grant_type", "unsupported-grant-type"),
            };
            let uri = format!("https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#{anchor}");
            reply(
                &headers,
                &[
                    ("error", code.to_owned()),
                    ("error_description", f.description()),
                    ("error_uri", uri),
                ],
            )
        }
    }
}

/// The API error shape.
pub(crate) fn api_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"message": message, "documentation_url": DOCS, "status": status.as_u16().to_string()}))).into_response()
}

fn authenticate<'a>(state: &'a Emu, headers: &HeaderMap) -> Result<&'a Access, Response> {
    let token = authorization_token(headers, &["bearer", "token"])
        .ok_or_else(|| api_error(StatusCode::UNAUTHORIZED, "Requires authentication"))?;
    state
        .check_access(&token)
        .map_err(|_| api_error(StatusCode::UNAUTHORIZED, "Bad credentials"))
}

/// `X-OAuth-Scopes` and, for expiring tokens, the expiration header.
fn token_headers(response: &mut Response, access: &Access) {
    let scopes = if access.personal {
        "repo, user".to_owned()
    } else {
        access.scopes.join(", ")
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&scopes) {
        h.insert("x-oauth-scopes", v);
    }
    h.insert("x-accepted-oauth-scopes", HeaderValue::from_static(""));
    if let Some(Ok(v)) = access
        .expires_at
        .map(|at| HeaderValue::from_str(&github_expiration(at)))
    {
        h.insert("github-authentication-token-expiration", v);
    }
}

async fn whoami(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let state = lock(&shared);
    let access = match authenticate(&state, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let login = access.login.as_str();
    let id = state.user_id(login);
    let (email, name) = (
        format!("{login}@example.test"),
        format!("{login} (emulated)"),
    );
    let api = format!("{}/api/v3", state.base);
    let mut user = fixture::load("github/user");
    user.substitute(&[
        ("octocat@github.com", &email),
        ("monalisa octocat", &name),
        ("octocat", login),
        ("https://api.github.com", &api),
        ("https://github.com", &state.base),
    ]);
    user.body["id"] = id.into();
    user.body["node_id"] = format!("U_emu{id}").into();
    let mut response = user.into_response();
    token_headers(&mut response, access);
    response
}

async fn repos(
    State(shared): State<Shared>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let state = lock(&shared);
    let access = match authenticate(&state, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let q = Params::from_query(query.as_deref().unwrap_or(""));
    let count = state.repo_count(&access.login);
    let w = Window::lenient(q.get("page"), q.get("per_page"), 30, 100, count);
    let (items, link) = REPOS.page(&state, &access.login, &q, &w);
    let mut response = Json(items).into_response();
    token_headers(&mut response, access);
    if let (false, Ok(v)) = (link.is_empty(), HeaderValue::from_str(&link)) {
        response.headers_mut().insert(header::LINK, v);
    }
    response
}

fn repo(base: &str, login: &str, owner_id: u64, i: usize) -> Value {
    let name = format!("repo-{i:03}");
    let private = i % 2 == 1;
    json!({
        "id": owner_id * 1000 + i as u64 + 1,
        "node_id": format!("R_emu{owner_id}_{i}"),
        "name": name,
        "full_name": format!("{login}/{name}"),
        "owner": {"login": login, "id": owner_id, "type": "User"},
        "private": private,
        "visibility": if private { "private" } else { "public" },
        "fork": false,
        "archived": false,
        "disabled": false,
        "html_url": format!("{base}/{login}/{name}"),
        "url": format!("{base}/api/v3/repos/{login}/{name}"),
        "clone_url": format!("{base}/{login}/{name}.git"),
        "default_branch": "main",
        "permissions": {"admin": true, "maintain": true, "push": true, "triage": true, "pull": true},
        "created_at": iso(1_704_067_200),
        "pushed_at": iso(1_704_067_200 + i as u64 * 60),
        "updated_at": iso(1_704_067_200 + i as u64 * 60),
    })
}

async fn revoke(
    State(shared): State<Shared>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorized = basic(&headers).is_some_and(|(id, secret)| {
        id == client_id && id == Emulator::CLIENT_ID && secret == Emulator::CLIENT_SECRET
    });
    if !authorized {
        return api_error(StatusCode::UNAUTHORIZED, "Bad credentials");
    }
    let token = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
        v.get("access_token")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let Some(token) = token else {
        return api_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid request.\n\n\"access_token\" wasn't supplied.",
        );
    };
    let mut state = lock(&shared);
    match state.access.get(&token) {
        Some(a) if !a.personal => {
            state.access.remove(&token);
            state.revoked.push(token);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => api_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// The primary-limit headers GitHub puts on every API reply.
pub(crate) fn add_rate_headers(response: &mut Response, used: u64) {
    let h = response.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(LIMIT));
    h.insert(
        "x-ratelimit-remaining",
        HeaderValue::from(LIMIT.saturating_sub(used)),
    );
    h.insert("x-ratelimit-used", HeaderValue::from(used.min(LIMIT)));
    h.insert("x-ratelimit-reset", HeaderValue::from(unix_now() + 3600));
    h.insert("x-ratelimit-resource", HeaderValue::from_static("core"));
}

/// GitHub's answer while rate limited, in one of its documented shapes
/// (fixtures `github/rate-limit-*`), with status 403 or 429: the primary
/// limit (no requests left, wait until `x-ratelimit-reset`), or a secondary
/// limit, with `retry-after` or with only its message.
pub(crate) fn rate_limited(shape: GithubLimit, status: u16, wait: u64) -> Response {
    let mut f = match shape {
        GithubLimit::Primary => {
            let mut f = fixture::load("github/rate-limit-primary");
            f.header("x-ratelimit-reset", unix_now() + wait);
            f
        }
        GithubLimit::SecondaryRetryAfter | GithubLimit::SecondaryMessageOnly => {
            let mut f = fixture::load("github/rate-limit-secondary");
            f.header("x-ratelimit-reset", unix_now() + 3600);
            if shape == GithubLimit::SecondaryRetryAfter {
                f.header("retry-after", wait);
            }
            f
        }
    };
    f.status = if status == 429 { 429 } else { 403 };
    f.into_response()
}

/// GitHub's edge refusal of an API request without `User-Agent`.
pub(crate) fn no_user_agent() -> Response {
    let body = "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes.\n";
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}
