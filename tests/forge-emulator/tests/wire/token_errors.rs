//! Authorize and token failures in each forge's shape and status.

use crate::support::*;
use forge_emulator::{Emulator, Flavor};

/// (status, error) each forge gives for one failure.
fn expect(
    flavor: Flavor,
    forgejo: &'static str,
    github: &'static str,
    gitlab: (u16, &'static str),
) -> (u16, &'static str) {
    match flavor {
        Flavor::Forgejo => (400, forgejo),
        Flavor::Github => (200, github),
        Flavor::Gitlab => gitlab,
    }
}

async fn with(emu: &Emulator, code: &str, replace: (&str, &str)) -> (u16, serde_json::Value) {
    let mut pairs = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("client_id", Emulator::CLIENT_ID),
        ("client_secret", Emulator::CLIENT_SECRET),
        ("code_verifier", VERIFIER),
    ];
    for p in pairs.iter_mut() {
        if p.0 == replace.0 {
            p.1 = replace.1;
        }
    }
    token(emu, &pairs).await
}

#[tokio::test]
async fn each_failure_has_the_forges_shape() {
    for flavor in ALL {
        let emu = ready(flavor).await;
        let cases = [
            (
                ("client_secret", "wrong"),
                expect(
                    flavor,
                    "unauthorized_client",
                    "incorrect_client_credentials",
                    (401, "invalid_client"),
                ),
            ),
            (
                ("client_id", "someone-else"),
                expect(
                    flavor,
                    "invalid_client",
                    "incorrect_client_credentials",
                    (401, "invalid_client"),
                ),
            ),
            (
                (
                    "code_verifier",
                    "not-the-verifier-not-the-verifier-not-the-verifier",
                ),
                expect(
                    flavor,
                    "unauthorized_client",
                    "bad_verification_code",
                    (400, "invalid_grant"),
                ),
            ),
            (
                ("redirect_uri", "http://127.0.0.1:9/other"),
                expect(
                    flavor,
                    "unauthorized_client",
                    "redirect_uri_mismatch",
                    (400, "invalid_grant"),
                ),
            ),
            (
                ("code", "made-up"),
                expect(
                    flavor,
                    "unauthorized_client",
                    "bad_verification_code",
                    (400, "invalid_grant"),
                ),
            ),
            (
                ("grant_type", "password"),
                expect(
                    flavor,
                    "unsupported_grant_type",
                    "unsupported_grant_type",
                    (400, "unsupported_grant_type"),
                ),
            ),
        ];
        for (replace, (status, error)) in cases {
            let code = code(&emu).await;
            let (got, body) = with(&emu, &code, replace).await;
            assert_eq!(
                (got, str_of(&body, "error")),
                (status, error),
                "{flavor:?} {replace:?}"
            );
            assert!(body["error_description"].is_string(), "{flavor:?} {body}");
            if flavor == Flavor::Github {
                assert!(str_of(&body, "error_uri").starts_with("https://docs.github.com/"));
            }
            // A failed attempt does not burn the code.
            assert_eq!(exchange(&emu, &code).await.0, 200, "{flavor:?} {replace:?}");
        }
    }
}

#[tokio::test]
async fn codes_are_single_use() {
    for flavor in ALL {
        let emu = ready(flavor).await;
        let code = code(&emu).await;
        assert_eq!(exchange(&emu, &code).await.0, 200);
        let (status, body) = exchange(&emu, &code).await;
        let expected = expect(
            flavor,
            "unauthorized_client",
            "bad_verification_code",
            (400, "invalid_grant"),
        );
        assert_eq!((status, str_of(&body, "error")), expected, "{flavor:?}");
    }
}

#[tokio::test]
async fn gitlab_refresh_needs_the_original_redirect_uri() {
    let emu = ready(Flavor::Gitlab).await;
    let (_, reply) = exchange(&emu, &code(&emu).await).await;
    let rt = str_of(&reply, "refresh_token");
    let (status, body) = token(
        &emu,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("redirect_uri", "http://x/"),
            ("client_id", Emulator::CLIENT_ID),
            ("client_secret", Emulator::CLIENT_SECRET),
        ],
    )
    .await;
    assert_eq!((status, str_of(&body, "error")), (400, "invalid_grant"));
    assert_eq!(refresh(&emu, rt).await.0, 200);
}

#[tokio::test]
async fn github_refresh_without_app_tokens_is_a_bad_refresh_token() {
    let emu = ready(Flavor::Github).await;
    let (status, body) = refresh(&emu, "ghr_nothing").await;
    assert_eq!((status, str_of(&body, "error")), (200, "bad_refresh_token"));
    assert_eq!(emu.refresh_requests(), 1);
}

#[tokio::test]
async fn authorize_errors_redirect_with_state() {
    for flavor in [Flavor::Forgejo, Flavor::Gitlab] {
        let emu = ready(flavor).await;
        let (status, pairs, _) = authorize(
            &emu,
            &[("code_challenge", ""), ("code_challenge_method", "")],
        )
        .await;
        assert_eq!(
            (status, get(&pairs, "error")),
            (302, Some("invalid_request")),
            "{flavor:?}"
        );
        assert_eq!(get(&pairs, "state"), Some("st-123"));
        assert!(get(&pairs, "error_description").is_some());
        let (_, pairs, _) = authorize(&emu, &[("response_type", "token")]).await;
        assert_eq!(get(&pairs, "error"), Some("unsupported_response_type"));
        let (_, pairs, _) = authorize(&emu, &[("state", "")]).await;
        assert_eq!(get(&pairs, "error"), Some("invalid_request"));
        let (status, _, location) =
            authorize(&emu, &[("redirect_uri", "http://evil.test/cb")]).await;
        assert_eq!((status, location.as_str()), (400, ""));
        let (status, _, _) = authorize(&emu, &[("client_id", "nobody")]).await;
        assert_eq!(status, 400);
    }
    let emu = ready(Flavor::Github).await;
    // GitHub: PKCE optional, and a wrong redirect_uri goes back to the registered one.
    let (status, pairs, _) = authorize(
        &emu,
        &[
            ("code_challenge", ""),
            ("code_challenge_method", ""),
            ("response_type", ""),
        ],
    )
    .await;
    assert_eq!(status, 302);
    let code = get(&pairs, "code").expect("code").to_owned();
    let (status, body) = token(
        &emu,
        &[
            ("client_id", Emulator::CLIENT_ID),
            ("client_secret", Emulator::CLIENT_SECRET),
            ("code", &code),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, pairs, location) =
        authorize(&emu, &[("redirect_uri", "http://evil.test/cb")]).await;
    assert_eq!(
        (status, get(&pairs, "error")),
        (302, Some("redirect_uri_mismatch"))
    );
    assert!(location.starts_with(REDIRECT));
}
