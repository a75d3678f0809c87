//! The whole authorization-code + PKCE flow on each forge, refresh, scopes.

use crate::support::*;
use forge_emulator::{Emulator, Flavor};

#[tokio::test]
async fn code_pkce_flow_then_whoami_on_every_forge() {
    for flavor in ALL {
        let emu = ready(flavor).await;
        emu.set_access_token_lifetime(Some(3600));
        let code = code(&emu).await;
        let (status, reply) = exchange(&emu, &code).await;
        assert_eq!(status, 200, "{flavor:?} {reply}");
        let access = str_of(&reply, "access_token").to_owned();
        assert!(str_of(&reply, "token_type").eq_ignore_ascii_case("bearer"));
        assert_eq!(reply["expires_in"], 3600);
        assert!(reply["refresh_token"].is_string());
        match flavor {
            Flavor::Forgejo => assert!(reply.get("scope").is_none()),
            Flavor::Github => {
                assert!(access.starts_with("ghu_"));
                assert_eq!(str_of(&reply, "scope"), "repo,read:user");
            }
            Flavor::Gitlab => assert!(reply["created_at"].as_u64().is_some()),
        }
        let me = api_get(&emu, "/user", &access).await;
        assert_eq!(me.status(), 200, "{flavor:?}");
        let body: serde_json::Value =
            serde_json::from_slice(&me.bytes().await.expect("body")).expect("json");
        assert_eq!(body["id"], 7);
        let login = if flavor == Flavor::Gitlab {
            "username"
        } else {
            "login"
        };
        assert_eq!(str_of(&body, login), "alice");
        assert_eq!(emu.live_access_tokens("alice"), vec![access.clone()]);
        let last = emu.requests().into_iter().last().expect("recorded");
        assert_eq!(
            last.authorization.as_deref(),
            Some(format!("Bearer {access}").as_str())
        );
    }
}

#[tokio::test]
async fn github_oauth_app_token_has_no_refresh_and_scope_header() {
    let emu = ready(Flavor::Github).await;
    let (status, reply) = exchange(&emu, &code(&emu).await).await;
    assert_eq!(status, 200);
    let access = str_of(&reply, "access_token");
    assert!(access.starts_with("gho_"));
    assert!(reply.get("refresh_token").is_none() && reply.get("expires_in").is_none());
    let me = api_get(&emu, "/user", access).await;
    assert_eq!(me.headers()["x-oauth-scopes"], "repo, read:user");
    assert!(me
        .headers()
        .get("github-authentication-token-expiration")
        .is_none());
    assert_eq!(me.headers()["x-ratelimit-limit"], "5000");
}

#[tokio::test]
async fn github_expiring_token_carries_expiration_header() {
    let emu = ready(Flavor::Github).await;
    emu.set_access_token_lifetime(Some(28800));
    let (_, reply) = exchange(&emu, &code(&emu).await).await;
    let me = api_get(&emu, "/user", str_of(&reply, "access_token")).await;
    let exp = me.headers()["github-authentication-token-expiration"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(exp.ends_with(" UTC") && exp.len() == 23, "{exp}");
}

#[tokio::test]
async fn github_reply_is_form_encoded_without_accept_json() {
    let emu = ready(Flavor::Github).await;
    let code = code(&emu).await;
    let body = format!(
        "client_id={}&client_secret={}&code={code}&code_verifier={VERIFIER}",
        Emulator::CLIENT_ID,
        Emulator::CLIENT_SECRET
    );
    let r = client()
        .post(emu.token_url())
        .body(body)
        .send()
        .await
        .expect("token");
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("application/x-www-form-urlencoded"));
    let text = r.text().await.expect("text");
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect();
    assert!(get(&pairs, "access_token").is_some_and(|t| t.starts_with("gho_")));
    assert_eq!(get(&pairs, "scope"), Some("repo,read:user"));
    assert_eq!(get(&pairs, "token_type"), Some("bearer"));
}

#[tokio::test]
async fn refresh_rotates_and_old_refresh_is_single_use() {
    for flavor in ALL {
        let emu = ready(flavor).await;
        emu.set_access_token_lifetime(Some(60));
        let (_, first) = exchange(&emu, &code(&emu).await).await;
        let old = str_of(&first, "refresh_token").to_owned();
        let (status, second) = refresh(&emu, &old).await;
        assert_eq!(status, 200, "{flavor:?} {second}");
        assert_ne!(
            str_of(&second, "access_token"),
            str_of(&first, "access_token")
        );
        assert_ne!(str_of(&second, "refresh_token"), old);
        let (status, again) = refresh(&emu, &old).await;
        let expected = match flavor {
            Flavor::Forgejo => (400, "unauthorized_client"),
            Flavor::Github => (200, "bad_refresh_token"),
            Flavor::Gitlab => (400, "invalid_grant"),
        };
        assert_eq!((status, str_of(&again, "error")), expected, "{flavor:?}");
        assert_eq!(emu.refresh_requests(), 2);
        let new_access = str_of(&second, "access_token").to_owned();
        assert!(emu.live_access_tokens("alice").contains(&new_access));
        if flavor == Flavor::Gitlab {
            assert_eq!(emu.live_access_tokens("alice"), vec![new_access]);
        }
    }
}

#[tokio::test]
async fn forgejo_accepts_json_body_and_basic_auth() {
    let emu = ready(Flavor::Forgejo).await;
    let code = code(&emu).await;
    let body = serde_json::json!({"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": VERIFIER});
    let r = client()
        .post(emu.token_url())
        .basic_auth(Emulator::CLIENT_ID, Some(Emulator::CLIENT_SECRET))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("token");
    assert_eq!(r.status(), 200);
    let reply: serde_json::Value =
        serde_json::from_slice(&r.bytes().await.expect("b")).expect("json");
    let token = str_of(&reply, "access_token");
    let r = client()
        .get(format!("{}/user", emu.api_url()))
        .header("authorization", format!("token {token}"))
        .send()
        .await
        .expect("me");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn gitlab_token_info_reflects_scopes() {
    let emu = ready(Flavor::Gitlab).await;
    let (_, reply) = exchange(&emu, &code(&emu).await).await;
    // doc/api/oauth2.md's authorization-code reply has no `scope`.
    assert!(reply.get("scope").is_none(), "{reply}");
    assert_eq!(str_of(&reply, "token_type"), "bearer");
    let access = str_of(&reply, "access_token");
    let r = client()
        .get(format!("{}/oauth/token/info", emu.base_url()))
        .bearer_auth(access)
        .send()
        .await
        .expect("info");
    assert_eq!(r.status(), 200);
    let info: serde_json::Value =
        serde_json::from_slice(&r.bytes().await.expect("b")).expect("json");
    assert_eq!(info["resource_owner_id"], 7);
    assert_eq!(info["scope"], serde_json::json!(["read_user", "api"]));
    assert_eq!(info["application"]["uid"], Emulator::CLIENT_ID);
    assert!(info["expires_in"].as_u64().is_some_and(|e| e <= 7200));
    let r = client()
        .get(format!("{}/oauth/token/info", emu.base_url()))
        .bearer_auth("nope")
        .send()
        .await
        .expect("info");
    assert_eq!(r.status(), 401);
    let r = client()
        .get(format!("{}/api/v4/user", emu.base_url()))
        .header("private-token", emu.personal_token("alice"))
        .send()
        .await
        .expect("me");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn expired_tokens_answer_401_and_pats_survive() {
    for flavor in ALL {
        let emu = ready(flavor).await;
        let (_, reply) = exchange(&emu, &code(&emu).await).await;
        let pat = emu.personal_token("alice");
        emu.expire_all_access_tokens();
        assert_eq!(
            api_get(&emu, "/user", str_of(&reply, "access_token"))
                .await
                .status(),
            401,
            "{flavor:?}"
        );
        assert!(emu.live_access_tokens("alice").is_empty());
        assert_eq!(
            api_get(&emu, "/user", &pat).await.status(),
            200,
            "{flavor:?}"
        );
    }
}

#[tokio::test]
async fn unsigned_browser_is_sent_to_login() {
    let emu = Emulator::start(Flavor::Gitlab).await;
    emu.set_redirect_uri(REDIRECT);
    let (status, _, location) = authorize(&emu, &[]).await;
    assert_eq!(status, 302);
    assert_eq!(location, format!("{}/users/sign_in", emu.base_url()));
}

#[tokio::test]
async fn token_endpoint_delay_applies() {
    let emu = ready(Flavor::Forgejo).await;
    emu.set_token_endpoint_delay(std::time::Duration::from_millis(300));
    let code = code(&emu).await;
    let started = std::time::Instant::now();
    let (status, _) = exchange(&emu, &code).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
}
