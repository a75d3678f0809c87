//! The outer layer: record every request, then apply the edge rules (User-Agent, rate limits).

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::state::{lock, Shared};
use crate::{forgejo, github, gitlab, Flavor, Recorded};

/// Bodies above this are refused (and recorded empty) rather than buffered.
const MAX_BODY: usize = 1 << 20;

/// Records the request, then answers it.
pub(crate) async fn layer(State(shared): State<Shared>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, MAX_BODY).await;
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let recorded = Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        authorization: header("authorization"),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: bytes.as_ref().map(|b| b.to_vec()).unwrap_or_default(),
    };
    let is_api = parts.uri.path().starts_with("/api/");
    let (flavor, base, limited, used) = {
        let mut state = lock(&shared);
        state.requests.push(recorded);
        let mut limited = None;
        if is_api {
            state.api_calls += 1;
            if state.rate_limited > 0 {
                state.rate_limited -= 1;
                limited = Some((
                    state.retry_after,
                    state.rate_limit_status,
                    state.github_limit,
                ));
            }
        }
        (state.flavor, state.base.clone(), limited, state.api_calls)
    };
    let Ok(bytes) = bytes else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n").into_response();
    };
    if flavor == Flavor::Github && is_api && header("user-agent").is_none() {
        return github::no_user_agent();
    }
    if let Some((retry_after, status, shape)) = limited {
        return match flavor {
            Flavor::Forgejo => forgejo::rate_limited(&base, retry_after),
            Flavor::Github => github::rate_limited(shape, status, retry_after),
            Flavor::Gitlab => gitlab::rate_limited(retry_after),
        };
    }
    let mut response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if flavor == Flavor::Github && is_api {
        github::add_rate_headers(&mut response, used);
    }
    response
}

/// Unknown routes: each forge's API 404 shape, plain text elsewhere.
pub(crate) async fn not_found(State(shared): State<Shared>, request: Request) -> Response {
    let (flavor, base) = {
        let state = lock(&shared);
        (state.flavor, state.base.clone())
    };
    if !request.uri().path().starts_with("/api/") {
        return (StatusCode::NOT_FOUND, "404 page not found\n").into_response();
    }
    match flavor {
        Flavor::Forgejo => forgejo::api_error(&base, StatusCode::NOT_FOUND, "not found"),
        Flavor::Github => github::api_error(StatusCode::NOT_FOUND, "Not Found"),
        Flavor::Gitlab => (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"error": "404 Not Found"})),
        )
            .into_response(),
    }
}
