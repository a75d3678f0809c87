//! An echoing origin cannot hand an expanded value back: whatever form the
//! server puts the token in (as is, base64 at any alignment, hex, URL- or
//! JSON-escaped, split over many chunks, in a header, in an error body cut
//! at the clip length), the plugin, its errors and the host's log never see
//! a form of it the host could know; and the plugin cannot ask for a
//! compressed or partial answer, while a server that compresses anyway is
//! refused.

use std::collections::HashMap;
use std::io::Write;

use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use keyward::runtime::{Account, BaseUrl, PluginError, ReturnedError};

use crate::harness::{captured_log, reference, Sandbox};

const PLUGIN: &str = "hostile-forge";
const TOKEN: &str = "ECHO_TOKEN";
/// Characters that every escaping changes, and non-ASCII.
const VALUE: &str = "Zx9/+Q=\"\u{e9}&? tok-3nd\\";

async fn echo(Path(kind): Path<String>, headers: HeaderMap) -> Response {
    let seen = headers
        .get("authorization")
        .map(|v| v.as_bytes().to_vec())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&seen).into_owned();
    let b64 = base64::engine::general_purpose::STANDARD;
    match kind.as_str() {
        "echo-raw" => seen.into_response(),
        "echo-base64" => b64.encode(&seen).into_response(),
        "echo-base64-1" => b64
            .encode([b"x".as_slice(), &seen].concat())
            .into_response(),
        "echo-base64-2" => b64
            .encode([b"xy".as_slice(), &seen].concat())
            .into_response(),
        "echo-base64url" => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(&seen)
            .into_response(),
        "echo-hex" => hex::encode(&seen).into_response(),
        "echo-url" => url::form_urlencoded::byte_serialize(&seen)
            .collect::<String>()
            .into_response(),
        "echo-json" => serde_json::json!({ "auth": text })
            .to_string()
            .into_response(),
        "echo-header" => ([("x-echo", seen)], "see the header").into_response(),
        "echo-split" => {
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                seen.iter().map(|b| Ok(vec![*b])).collect();
            Body::from_stream(futures_util::stream::iter(chunks)).into_response()
        }
        "echo-error" => (StatusCode::INTERNAL_SERVER_ERROR, seen).into_response(),
        "echo-error-long" => {
            let mut body = vec![b'.'; 1020];
            body.extend_from_slice(&seen);
            (StatusCode::INTERNAL_SERVER_ERROR, body).into_response()
        }
        "echo-gzip" | "ask-gzip" => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&seen).expect("gzip");
            ([("content-encoding", "gzip")], gz.finish().expect("gzip")).into_response()
        }
        _ => (StatusCode::NOT_FOUND, "no such echo").into_response(),
    }
}

async fn server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = Router::new().route("/{kind}", get(echo));
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    format!("http://{addr}")
}

async fn sandbox() -> (Sandbox, String) {
    let sandbox = Sandbox::new(&[PLUGIN], |_, m| m, HashMap::new()).await;
    sandbox.secret(TOKEN, VALUE.as_bytes()).await;
    (sandbox, server().await)
}

async fn whoami(sandbox: &Sandbox, base: &str, attack: &str) -> Result<Account, PluginError> {
    let url = BaseUrl::parse(&format!("{base}/{attack}")).expect("base URL");
    sandbox
        .rt
        .forge_whoami(&sandbox.vault, PLUGIN, &url, &reference(TOKEN))
        .await
}

/// No run of 6 bytes of the value, in any form the host could compute,
/// occurs in `seen`, decoded every way the echo server encodes.
fn assert_no_form(seen: &[u8], what: &str) {
    let mut decodings: Vec<Vec<u8>> = vec![seen.to_vec()];
    for piece in String::from_utf8_lossy(seen).split("[REDACTED]") {
        let piece = piece.trim();
        for engine in [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            for skip in 0..4 {
                let part: String = piece.chars().filter(char::is_ascii).skip(skip).collect();
                let whole = part.len() / 4 * 4;
                if let Ok(d) = engine.decode(part[..whole].trim_end_matches('=')) {
                    decodings.push(d);
                }
            }
        }
        let bytes = piece.as_bytes();
        if let Ok(d) = hex::decode(&bytes[..bytes.len() / 2 * 2]) {
            decodings.push(d);
        }
        decodings.push(
            url::form_urlencoded::parse(format!("a={piece}").as_bytes())
                .map(|(_, v)| v.into_owned())
                .collect::<String>()
                .into_bytes(),
        );
        if let Ok(serde_json::Value::Object(o)) = serde_json::from_str(piece) {
            decodings.extend(
                o.values()
                    .filter_map(|v| v.as_str())
                    .map(|s| s.as_bytes().to_vec()),
            );
        }
    }
    let value = VALUE.as_bytes();
    for d in &decodings {
        for window in value.windows(6) {
            assert!(
                !d.windows(6).any(|w| w == window),
                "{what}: part of the token came back: {}",
                String::from_utf8_lossy(d)
            );
        }
    }
}

/// Neither the host's log nor anything else printed holds the value.
fn assert_log_clean() {
    let log = captured_log();
    assert!(!log.contains(VALUE), "the token reached the host's log");
}

#[tokio::test]
async fn an_echoing_server_cannot_hand_back_an_expanded_token_in_any_encoding() {
    let (sandbox, base) = sandbox().await;
    for attack in [
        "echo-raw",
        "echo-base64",
        "echo-base64-1",
        "echo-base64-2",
        "echo-base64url",
        "echo-hex",
        "echo-url",
        "echo-json",
        "echo-header",
        "echo-split",
    ] {
        let account = whoami(&sandbox, &base, attack)
            .await
            .unwrap_or_else(|e| panic!("{attack}: {e}"));
        let body = hex::decode(&account.login).expect("the fixture hands the body back as hex");
        assert_no_form(&body, attack);
        assert_no_form(account.name.unwrap_or_default().as_bytes(), attack);
        assert!(
            String::from_utf8_lossy(&body).contains("[REDACTED]") || attack == "echo-header",
            "{attack}: the echo was not redacted but also did not leak?"
        );
    }
    // An error answer's body becomes the plugin's error message.
    for attack in ["echo-error", "echo-error-long"] {
        let err = whoami(&sandbox, &base, attack).await.expect_err("an error");
        assert_no_form(err.to_string().as_bytes(), attack);
    }
    assert_log_clean();
}

#[tokio::test]
async fn an_error_message_cannot_carry_a_value_past_the_clip() {
    // Revealed (so the plugin holds it) and returned across the clip: the
    // host must redact the whole message before cutting it.
    let reveal = |_: &str, m: String| format!("{m}\n[grants]\nsecrets = [\"{TOKEN}\"]\n");
    let sandbox = Sandbox::new(&[PLUGIN], reveal, HashMap::new()).await;
    sandbox.secret(TOKEN, VALUE.as_bytes()).await;
    let err = whoami(&sandbox, "http://127.0.0.1:9", "error-at-clip")
        .await
        .expect_err("an error");
    assert!(
        matches!(
            err,
            PluginError::Returned {
                error: ReturnedError::Upstream(_),
                ..
            }
        ),
        "{err}"
    );
    assert_no_form(err.to_string().as_bytes(), "error-at-clip");
    assert_log_clean();
}

#[tokio::test]
async fn a_plugin_cannot_ask_for_a_compressed_or_partial_answer() {
    let (sandbox, base) = sandbox().await;
    for attack in ["ask-gzip", "ask-range"] {
        let err = whoami(&sandbox, &base, attack).await.expect_err("refused");
        assert!(
            matches!(err, PluginError::Returned { error: ReturnedError::Invalid(ref m), .. } if m.contains("set by the host")),
            "{attack}: {err}"
        );
    }
}

#[tokio::test]
async fn a_server_that_compresses_anyway_is_refused() {
    let (sandbox, base) = sandbox().await;
    let err = whoami(&sandbox, &base, "echo-gzip")
        .await
        .expect_err("refused");
    assert!(
        matches!(err, PluginError::Returned { error: ReturnedError::Upstream(ref m), .. } if m.contains("Content-Encoding")),
        "{err}"
    );
}
