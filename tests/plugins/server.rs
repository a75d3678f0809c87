//! A local HTTP server standing in for a forge (Forgejo's whoami shape) plus
//! the hostile answers the fixtures need: a redirect to another origin, an
//! oversized body, and an endpoint that echoes a header back.

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};

/// The token the emulated forge accepts.
pub const TOKEN: &str = "fjt_0123456789abcdef-secret";

/// An OAuth client secret and refresh token with every character a form
/// body gives a meaning to: they arrive intact only if the host encodes
/// them when it expands them into an `application/x-www-form-urlencoded`
/// body.
pub const FORM_CLIENT_SECRET: &str = "s3c+r/e t&x=1%2F;#?";
/// See [`FORM_CLIENT_SECRET`].
pub const FORM_REFRESH_TOKEN: &str = "r&efresh=+ok 100%";

#[derive(Clone)]
struct Other(SocketAddr);

/// Starts the server on 127.0.0.1:0; a second listener on 127.0.0.2 plays
/// "another origin". Returns the base URL.
pub async fn start() -> String {
    let other = tokio::net::TcpListener::bind("127.0.0.2:0")
        .await
        .expect("bind 127.0.0.2");
    let other_addr = other.local_addr().expect("addr");
    tokio::spawn(async move {
        let app = Router::new().route("/", get(|| async { "the other origin" }));
        axum::serve(other, app).await.ok();
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = Router::new()
        .route("/api/v1/user", get(user))
        .route("/redirect", get(redirect))
        .route(
            "/same-origin-redirect",
            get(|| async { Redirect::to("/api/v1/user") }),
        )
        .route("/big", get(|| async { "x".repeat(64 * 1024) }))
        .route("/echo", get(echo))
        .route("/login/oauth/access_token", axum::routing::post(token))
        .with_state(Other(other_addr));
    tokio::spawn(async move {
        axum::serve(listener, app).await.ok();
    });
    format!("http://{addr}")
}

async fn user(headers: HeaderMap) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("token {TOKEN}") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"message": "user does not exist", "url": "http://forge/api/swagger"})),
        )
            .into_response();
    }
    Json(serde_json::json!({
        "id": 42, "login": "alice", "username": "alice", "full_name": "Alice Liddell",
        "email": "alice@example.org", "is_admin": false
    }))
    .into_response()
}

async fn redirect(State(Other(other)): State<Other>) -> Response {
    Redirect::temporary(&format!("http://{other}/")).into_response()
}

async fn echo(headers: HeaderMap) -> String {
    headers
        .get("x-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// Forgejo's token endpoint, for a refresh only: answers a token set when
/// the form's refresh token and client secret decode to the expected
/// values, else Forgejo's `unauthorized_client` error.
async fn token(body: String) -> Response {
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
    let field = |name: &str| form.get(name).map(String::as_str);
    if field("grant_type") == Some("refresh_token")
        && field("refresh_token") == Some(FORM_REFRESH_TOKEN)
        && field("client_secret") == Some(FORM_CLIENT_SECRET)
    {
        return Json(serde_json::json!({
            "access_token": "fresh-access",
            "token_type": "bearer",
            "expires_in": 3600,
            "refresh_token": "fresh-refresh",
        }))
        .into_response();
    }
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({
            "error": "unauthorized_client",
            "error_description": "client credentials or refresh token did not match",
        })),
    )
        .into_response()
}
