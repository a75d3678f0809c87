//! examples/python-plugin, built from source with componentize-py by its
//! own build script, loaded and called like any plugin.

use std::process::Command;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use keyward::names::SecretName;
use sha2::Sha256;

use crate::{access, fixtures, reference, server, Host, TOKEN_REF};

const SIGNING_REF: &str = "plugin:example-signed/signing-key";
const SIGNING_KEY: &str = "signing-key-for-the-example-forge";

fn expected_signature() -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SIGNING_KEY.as_bytes()).expect("any key length");
    mac.update(b"GET /api/v1/user");
    hex::encode(mac.finalize().into_bytes())
}

/// The "signed forge": whoami needs the token and a valid signature.
async fn signed_forge() -> String {
    async fn user(headers: HeaderMap) -> Response {
        let get = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        if get("authorization") != format!("token {}", server::TOKEN) {
            return (StatusCode::UNAUTHORIZED, "bad token").into_response();
        }
        if get("x-signature") != expected_signature() {
            return (StatusCode::FORBIDDEN, "bad signature").into_response();
        }
        Json(
            serde_json::json!({"id": 7, "login": "py", "full_name": "", "email": "py@example.org"}),
        )
        .into_response()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, Router::new().route("/api/v1/user", get(user)))
            .await
            .ok();
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_python_plugin_reveals_a_granted_secret_and_calls_out() {
    let root = fixtures::root();
    let status = Command::new(root.join("examples/python-plugin/build"))
        .status()
        .expect("run examples/python-plugin/build");
    assert!(status.success(), "building the Python plugin failed");
    let built = root.join("target/python-plugin");
    let host = Host::with(&[]).await;
    for ext in ["wasm", "toml"] {
        std::fs::copy(
            built.join(format!("example-signed.{ext}")),
            host.plugins.path().join(format!("example-signed.{ext}")),
        )
        .expect("copy the built plugin");
    }
    let registry = host.rt.reload().await;
    assert!(
        registry.plugins.contains_key("example-signed"),
        "{:?}",
        registry
            .refused
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    );
    let signing = reference(SIGNING_REF);
    host.vault
        .create(
            signing.scope.as_ref().expect("scoped"),
            &SecretName::parse("signing-key").expect("name"),
            SIGNING_KEY.as_bytes(),
            "example signing key",
            &access(),
        )
        .await
        .expect("create");
    let base = signed_forge().await;
    let info = host
        .rt
        .forge_info(&host.vault, "example-signed")
        .await
        .expect("info");
    assert_eq!(info.kind, "example-signed");
    let account = host
        .rt
        .forge_whoami(
            &host.vault,
            "example-signed",
            &keyward::runtime::BaseUrl::parse(&base).expect("base URL"),
            &reference(TOKEN_REF),
        )
        .await
        .expect("whoami through Python");
    assert_eq!((account.id.as_str(), account.login.as_str()), ("7", "py"));
    assert_eq!(account.name, None, "an empty name is None");
    let rows = host.log_of("example-signed").await;
    let seen: Vec<_> = rows
        .iter()
        .map(|r| (r.action.as_str(), r.outcome.as_str(), r.name.as_str()))
        .collect();
    assert!(seen.contains(&("reveal", "ok", "signing-key")), "{seen:?}");
    assert!(seen.contains(&("egress", "ok", TOKEN_REF)), "{seen:?}");
}
