//! GitLab agent tokens through the real binary (#25): `keyward serve` with
//! its built-in GitLab plugin, against the emulator built from GitLab's own
//! example payloads. A personal, project and group access token each
//! dispatch with their scopes, expiry and e-mail — the path that used to
//! fail with 424 because `/oauth/token/info` refuses access tokens.

use forge_emulator::{Emulator, Flavor, GitlabToken};
use serde_json::{json, Value};

use crate::Kw;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_access_tokens_dispatch_through_the_binary() {
    let emu = Emulator::start(Flavor::Gitlab).await;
    emu.add_user("bot", 1003);
    let kw = Kw::new();
    let operator = kw.token("ops", "operator");
    let served = kw.serve("serve.log");
    let client = reqwest::Client::new();
    let call = |method: reqwest::Method, path: String, body: Value| {
        client
            .request(method, format!("http://{}{path}", served.addr))
            .bearer_auth(&operator)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    for (i, kind) in GitlabToken::ALL.into_iter().enumerate() {
        let issued = emu.gitlab_access_token("bot", kind, &["read_api"], Some("2027-06-30"));
        let name = format!("gl-{i}");
        let created = call(
            reqwest::Method::POST,
            "/agent-types".into(),
            json!({"name": name, "forge": "gitlab", "base_url": emu.base_url(), "token": issued.token}),
        )
        .await
        .expect("create");
        assert_eq!(created.status(), 201, "{kind:?}");
        let answer = call(
            reqwest::Method::POST,
            format!("/agent-types/{name}/dispatch"),
            json!({"reason": "binary test"}),
        )
        .await
        .expect("dispatch");
        let status = answer.status();
        let body: Value = serde_json::from_str(&answer.text().await.expect("body")).expect("json");
        assert_eq!(status, 200, "{kind:?}: {body}");
        let account = &body["account"];
        assert_eq!(account["login"], issued.login.as_str(), "{kind:?}");
        assert_eq!(account["scopes"], json!(["read_api"]), "{kind:?}");
        assert_eq!(
            account["expires_at"], 1_814_313_600,
            "{kind:?}: midnight UTC"
        );
        assert!(account["email"].is_string(), "{kind:?}: {body}");
        assert!(!body.to_string().contains(&issued.token));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_github_rate_limit_shape_is_a_429_through_the_binary() {
    let emu = Emulator::start(Flavor::Github).await;
    emu.add_user("bot", 1003);
    let kw = Kw::new();
    let operator = kw.token("ops", "operator");
    let served = kw.serve("serve.log");
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://{}{path}", served.addr);
    let created = client
        .post(url("/agent-types"))
        .bearer_auth(&operator)
        .header("content-type", "application/json")
        .body(
            json!({"name": "gh", "forge": "github", "base_url": emu.base_url(), "token": emu.personal_token("bot")})
                .to_string(),
        )
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    for (shape, code, wait, expected) in crate::support::GITHUB_RATE_LIMITS {
        emu.github_limit_next(shape, code, wait);
        let answer = client
            .post(url("/agent-types/gh/dispatch"))
            .bearer_auth(&operator)
            .header("content-type", "application/json")
            .body(json!({"reason": "rate limits"}).to_string())
            .send()
            .await
            .expect("dispatch");
        let what = format!("{shape:?} {code}");
        assert_eq!(answer.status(), 429, "{what}");
        let retry: u64 = answer
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{what}: a Retry-After"));
        assert!(expected.contains(&retry), "{what}: {retry}");
    }
}
