//! The adapters against emulators built from the forges' own example
//! payloads (#25): every kind of GitLab token an agent holds dispatches
//! with its scopes and expiry, every documented GitHub rate-limit shape
//! reaches the caller as a 429 with `Retry-After`, and the account's
//! e-mail is part of `dispatch` and `/me`.

use forge_emulator::{Emulator, Flavor, GitlabToken};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::support::TestDb;
use super::{emulator, plugin_of, Host};

/// 2027-06-30T00:00:00Z: GitLab tokens expire at midnight UTC at the start
/// of their expiry date.
const JUNE_30_2027: i64 = 1_814_313_600;

async fn host_for(flavor: Flavor, emu: &Emulator, db: &TestDb) -> Host {
    Host::one_forge(db, plugin_of(flavor), emu, &["alice"]).await
}

/// Creates agent type `name` on `emu` with `token`, then dispatches it.
async fn dispatch_with(
    host: &Host,
    emu: &Emulator,
    forge: &str,
    name: &str,
    token: &str,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let (status, body) = host
        .new_agent_type(
            json!({"name": name, "forge": forge, "base_url": emu.base_url(), "token": token}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    host.call(
        Method::POST,
        &format!("/agent-types/{name}/dispatch"),
        &host.resolver,
        Some(json!({"reason": "issue 25"})),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_personal_project_and_group_tokens_dispatch_with_scopes_and_expiry() {
    let emu = emulator(Flavor::Gitlab, "alice").await;
    let db = TestDb::sqlite().await;
    let host = host_for(Flavor::Gitlab, &emu, &db).await;
    for (i, kind) in GitlabToken::ALL.into_iter().enumerate() {
        let issued = emu.gitlab_access_token(
            "bot",
            kind,
            &["read_api", "read_repository"],
            Some("2027-06-30"),
        );
        assert!(issued.token.starts_with("glpat-"));
        let (status, body, _) =
            dispatch_with(&host, &emu, "gitlab", &format!("agent-{i}"), &issued.token).await;
        assert_eq!(status, StatusCode::OK, "{kind:?}: {body}");
        let account = &body["account"];
        assert_eq!(account["login"], issued.login.as_str(), "{kind:?}");
        assert_eq!(account["id"], issued.user_id.to_string(), "{kind:?}");
        assert_eq!(
            account["scopes"],
            json!(["read_api", "read_repository"]),
            "{kind:?}"
        );
        assert_eq!(account["expires_at"], JUNE_30_2027, "{kind:?}");
        assert!(
            account["email"]
                .as_str()
                .is_some_and(|e| e.starts_with(&issued.login)),
            "{kind:?}: {account}"
        );
        assert!(!body.to_string().contains(&issued.token), "never the token");
    }
    // The token's record is read where GitLab keeps it.
    assert!(emu
        .requests()
        .iter()
        .any(|r| r.path == "/api/v4/personal_access_tokens/self"));
    // A token without an expiry date: none reported, still fine.
    let issued = emu.gitlab_access_token("bot", GitlabToken::Personal, &["api"], None);
    let (status, body, _) = dispatch_with(&host, &emu, "gitlab", "no-expiry", &issued.token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["account"]["expires_at"], Value::Null);
    assert_eq!(body["account"]["scopes"], json!(["api"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gitlab_oauth_token_still_reads_its_scopes_and_expiry_from_token_info() {
    let emu = emulator(Flavor::Gitlab, "alice").await;
    let db = TestDb::sqlite().await;
    let host = host_for(Flavor::Gitlab, &emu, &db).await;
    let (status, cookie, page) = host.sign_in("gitlab").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let (status, me) = host.me(cookie.as_deref()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["account_login"], "alice");
    assert_eq!(me["account_email"], "alice@example.test", "{me}");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let expires = me["expires_at"].as_i64().expect("an expiry in ms");
    assert!((now_ms..=now_ms + 7_201_000).contains(&expires), "{me}");

    let oauth = emu
        .live_access_tokens("alice")
        .pop()
        .expect("an OAuth token");
    let (status, body, _) = dispatch_with(&host, &emu, "gitlab", "oauth-agent", &oauth).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let account = &body["account"];
    assert_eq!(account["login"], "alice");
    assert_eq!(account["email"], "alice@example.test");
    assert_eq!(
        account["scopes"],
        json!(["read_user", "read_api"]),
        "{account}"
    );
    let at = account["expires_at"].as_i64().expect("an expiry");
    assert!(
        (now_ms / 1000..=now_ms / 1000 + 7201).contains(&at),
        "{account}"
    );
    // Token info answered; the access-token record was not needed.
    let paths: Vec<String> = emu.requests().into_iter().map(|r| r.path).collect();
    assert!(paths.iter().any(|p| p == "/oauth/token/info"));
    assert!(!paths
        .iter()
        .any(|p| p == "/api/v4/personal_access_tokens/self"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_github_rate_limit_shape_is_a_429_with_retry_after() {
    let emu = emulator(Flavor::Github, "alice").await;
    let db = TestDb::sqlite().await;
    let host = host_for(Flavor::Github, &emu, &db).await;
    let token = emu.personal_token("bot");
    let (status, body, _) = dispatch_with(&host, &emu, "github", "gh", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (shape, code, wait, expected) in super::support::GITHUB_RATE_LIMITS {
        emu.github_limit_next(shape, code, wait);
        let (status, body, headers) = host
            .call(
                Method::POST,
                "/agent-types/gh/dispatch",
                &host.resolver,
                Some(json!({"reason": "rate limits"})),
            )
            .await;
        let what = format!("{shape:?} {code}");
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{what}: {body}");
        assert_eq!(body["error"]["code"], "rate_limited", "{what}");
        let retry: u64 = headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{what}: a Retry-After"));
        assert!(expected.contains(&retry), "{what}: {retry}");
    }
    let (status, _) = host
        .for_agent("gh", "dispatch", json!({"reason": "after"}))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_email_is_part_of_dispatch_and_me_on_every_forge() {
    for flavor in [Flavor::Forgejo, Flavor::Github, Flavor::Gitlab] {
        let forge = plugin_of(flavor);
        let emu = emulator(flavor, "alice").await;
        let db = TestDb::sqlite().await;
        let host = host_for(flavor, &emu, &db).await;
        let (status, cookie, page) = host.sign_in(forge).await;
        assert_eq!(status, StatusCode::OK, "{forge}: {page}");
        let (_, me) = host.me(cookie.as_deref()).await;
        assert_eq!(me["account_email"], "alice@example.test", "{forge}: {me}");
        let token = emu.personal_token("bot");
        let (status, body, _) = dispatch_with(&host, &emu, forge, "mail", &token).await;
        assert_eq!(status, StatusCode::OK, "{forge}: {body}");
        assert_eq!(
            body["account"]["email"], "bot@example.test",
            "{forge}: {body}"
        );
    }
}
