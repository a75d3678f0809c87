//! Whoami rules, rate limits, pagination, revoke.

use crate::support::*;
use forge_emulator::{Emulator, Flavor};
use reqwest::header::USER_AGENT;

#[tokio::test]
async fn github_requires_a_user_agent() {
    let emu = ready(Flavor::Github).await;
    let pat = emu.personal_token("alice");
    let r = client()
        .get(format!("{}/user", emu.api_url()))
        .bearer_auth(&pat)
        .send()
        .await
        .expect("me");
    assert_eq!(r.status(), 403);
    assert!(r.text().await.expect("t").contains("User-Agent"));
    let r = client()
        .get(format!("{}/user", emu.api_url()))
        .header("authorization", format!("token {pat}"))
        .header(USER_AGENT, "x")
        .send()
        .await
        .expect("me");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-oauth-scopes"], "repo, user");
}

#[tokio::test]
async fn api_errors_have_each_forges_shape() {
    for flavor in ALL {
        let emu = ready(flavor).await;
        let r = api_get(&emu, "/user", "bogus").await;
        assert_eq!(r.status(), 401);
        let body: serde_json::Value =
            serde_json::from_slice(&r.bytes().await.expect("b")).expect("json");
        assert!(body["message"].is_string(), "{flavor:?} {body}");
        if flavor == Flavor::Forgejo {
            assert!(body["url"].is_string());
        }
    }
}

#[tokio::test]
async fn forgejo_checks_scopes() {
    let emu = ready(Flavor::Forgejo).await;
    let (_, pairs, _) = authorize(&emu, &[("scope", "read:user")]).await;
    let (_, reply) = exchange(&emu, get(&pairs, "code").expect("code")).await;
    let token = str_of(&reply, "access_token");
    assert_eq!(api_get(&emu, "/user", token).await.status(), 200);
    let r = api_get(&emu, "/user/repos", token).await;
    assert_eq!(r.status(), 403);
    let body: serde_json::Value =
        serde_json::from_slice(&r.bytes().await.expect("b")).expect("json");
    assert!(str_of(&body, "message")
        .starts_with("token does not have at least one of required scope(s)"));
}

#[tokio::test]
async fn rate_limits_then_recovers() {
    for flavor in ALL {
        let emu = ready(flavor).await;
        let pat = emu.personal_token("alice");
        emu.rate_limit_next(2, 17);
        for _ in 0..2 {
            let r = api_get(&emu, "/user", &pat).await;
            let h = r.headers();
            match flavor {
                Flavor::Forgejo => {
                    assert_eq!(r.status(), 429);
                    assert_eq!(h["retry-after"], "17");
                }
                Flavor::Github => {
                    // The primary limit: no retry-after, the reset says when.
                    assert_eq!(r.status(), 403);
                    assert_eq!(h["x-ratelimit-remaining"], "0");
                    assert!(!h.contains_key("retry-after"));
                    let reset: u64 = h["x-ratelimit-reset"]
                        .to_str()
                        .expect("a")
                        .parse()
                        .expect("n");
                    assert!(reset > 1_700_000_000);
                }
                Flavor::Gitlab => {
                    assert_eq!(r.status(), 429);
                    assert_eq!(h["retry-after"], "17");
                    assert_eq!(h["ratelimit-remaining"], "0");
                    assert!(h["ratelimit-resettime"]
                        .to_str()
                        .expect("a")
                        .ends_with(" GMT"));
                }
            }
        }
        assert_eq!(
            api_get(&emu, "/user", &pat).await.status(),
            200,
            "{flavor:?}"
        );
    }
    let emu = ready(Flavor::Github).await;
    emu.set_rate_limit_status(429);
    emu.rate_limit_next(1, 1);
    assert_eq!(
        api_get(&emu, "/user", &emu.personal_token("alice"))
            .await
            .status(),
        429
    );
}

#[tokio::test]
async fn github_secondary_limits_come_in_both_documented_shapes() {
    use forge_emulator::GithubLimit;
    let emu = ready(Flavor::Github).await;
    let pat = emu.personal_token("alice");
    for (shape, status) in [
        (GithubLimit::SecondaryRetryAfter, 403),
        (GithubLimit::SecondaryMessageOnly, 403),
        (GithubLimit::SecondaryMessageOnly, 429),
    ] {
        emu.set_github_limit(shape);
        emu.set_rate_limit_status(status);
        emu.rate_limit_next(1, 30);
        let r = api_get(&emu, "/user", &pat).await;
        assert_eq!(r.status(), status);
        let h = r.headers().clone();
        assert_ne!(h["x-ratelimit-remaining"], "0", "requests are left");
        assert_eq!(
            h.get("retry-after")
                .map(|v| v.to_str().expect("a").to_owned()),
            (shape == GithubLimit::SecondaryRetryAfter).then(|| "30".to_owned())
        );
        let body: serde_json::Value =
            serde_json::from_slice(&r.bytes().await.expect("b")).expect("json");
        assert!(str_of(&body, "message").contains("secondary rate limit"));
    }
}

#[tokio::test]
async fn gitlab_describes_each_token_where_gitlab_does() {
    use forge_emulator::GitlabToken;
    let emu = ready(Flavor::Gitlab).await;
    let info = |token: String| {
        let emu = &emu;
        async move {
            client()
                .get(format!("{}/oauth/token/info", emu.base_url()))
                .bearer_auth(token)
                .send()
                .await
                .expect("info")
        }
    };
    for kind in [
        GitlabToken::Personal,
        GitlabToken::Project,
        GitlabToken::Group,
    ] {
        let t = emu.gitlab_access_token("alice", kind, &["read_api"], Some("2027-06-30"));
        // Doorkeeper knows only OAuth tokens.
        let r = info(t.token.clone()).await;
        assert_eq!(r.status(), 401, "{kind:?}");
        let body: serde_json::Value =
            serde_json::from_slice(&r.bytes().await.expect("b")).expect("json");
        assert_eq!(str_of(&body, "error"), "invalid_token");
        let r = api_get(&emu, "/user", &t.token).await;
        let me: serde_json::Value =
            serde_json::from_slice(&r.bytes().await.expect("b")).expect("json");
        assert_eq!(str_of(&me, "username"), t.login);
        assert_eq!(me["bot"], kind != GitlabToken::Personal);
        let r = api_get(&emu, "/personal_access_tokens/self", &t.token).await;
        assert_eq!(r.status(), 200);
        let pat: serde_json::Value =
            serde_json::from_slice(&r.bytes().await.expect("b")).expect("json");
        assert_eq!(pat["scopes"], serde_json::json!(["read_api"]));
        assert_eq!(pat["expires_at"], "2027-06-30");
        assert_eq!(pat["user_id"], t.user_id);
    }
}

fn next_link(link: &str) -> Option<String> {
    link.split(',')
        .find(|p| p.contains("rel=\"next\""))
        .map(|p| {
            let p = p.trim();
            p[1..p.find('>').expect(">")].to_owned()
        })
}

#[tokio::test]
async fn pagination_walks_to_the_end() {
    for (flavor, path, size, default) in [
        (Flavor::Forgejo, "/user/repos?limit=", 50, 30),
        (Flavor::Github, "/user/repos?per_page=", 100, 30),
        (
            Flavor::Gitlab,
            "/projects?membership=true&per_page=",
            100,
            20,
        ),
    ] {
        let emu = ready(flavor).await;
        emu.add_repos("alice", 123);
        let pat = emu.personal_token("alice");
        // Oversized page sizes are clamped to the forge's maximum.
        let mut url = format!("{}{path}1000", emu.api_url());
        let mut names = Vec::new();
        let mut pages = 0;
        loop {
            let r = client()
                .get(&url)
                .bearer_auth(&pat)
                .header(USER_AGENT, "t")
                .send()
                .await
                .expect("page");
            assert_eq!(r.status(), 200, "{flavor:?} {url}");
            let h = r.headers().clone();
            let items: Vec<serde_json::Value> =
                serde_json::from_slice(&r.bytes().await.expect("b")).expect("json");
            pages += 1;
            assert!(items.len() <= size);
            names.extend(items.iter().map(|i| str_of(i, "name").to_owned()));
            match flavor {
                Flavor::Forgejo => assert_eq!(h["x-total-count"], "123"),
                Flavor::Github => assert!(h.get("x-total-count").is_none()),
                Flavor::Gitlab => {
                    assert_eq!(h["x-total"], "123");
                    assert_eq!(h["x-per-page"], "100");
                    assert_eq!(h["x-total-pages"], "2");
                }
            }
            let link = h
                .get("link")
                .map(|v| v.to_str().expect("a").to_owned())
                .unwrap_or_default();
            match next_link(&link) {
                Some(next) => {
                    assert!(next.starts_with(&emu.base_url()), "{next}");
                    url = next;
                }
                None => {
                    if flavor == Flavor::Gitlab {
                        assert_eq!(h["x-next-page"], "");
                        assert_eq!(h["x-prev-page"], "1");
                    }
                    break;
                }
            }
        }
        assert_eq!(pages, 123usize.div_ceil(size), "{flavor:?}");
        let expected: Vec<String> = (0..123).map(|i| format!("repo-{i:03}")).collect();
        assert_eq!(names, expected, "{flavor:?}");
        // The default page size.
        let first = api_get(&emu, path.split_once('?').map_or(path, |(p, _)| p), &pat).await;
        let items: Vec<serde_json::Value> =
            serde_json::from_slice(&first.bytes().await.expect("b")).expect("json");
        assert_eq!(items.len(), default, "{flavor:?}");
    }
}

#[tokio::test]
async fn github_revoke() {
    let emu = ready(Flavor::Github).await;
    let (_, reply) = exchange(&emu, &code(&emu).await).await;
    let access = str_of(&reply, "access_token").to_owned();
    let url = format!(
        "{}/applications/{}/token",
        emu.api_url(),
        Emulator::CLIENT_ID
    );
    let body = serde_json::json!({"access_token": access}).to_string();
    let send = |user: &'static str, secret: &'static str, body: String| {
        client()
            .delete(&url)
            .basic_auth(user, Some(secret))
            .header(USER_AGENT, "t")
            .body(body)
            .send()
    };
    assert_eq!(
        send(Emulator::CLIENT_ID, "wrong", body.clone())
            .await
            .expect("r")
            .status(),
        401
    );
    assert_eq!(
        send(Emulator::CLIENT_ID, Emulator::CLIENT_SECRET, body.clone())
            .await
            .expect("r")
            .status(),
        204
    );
    assert_eq!(emu.revoked(), vec![access.clone()]);
    assert_eq!(api_get(&emu, "/user", &access).await.status(), 401);
    assert_eq!(
        send(Emulator::CLIENT_ID, Emulator::CLIENT_SECRET, body)
            .await
            .expect("r")
            .status(),
        404
    );
    assert_eq!(
        send(
            Emulator::CLIENT_ID,
            Emulator::CLIENT_SECRET,
            "garbage".into()
        )
        .await
        .expect("r")
        .status(),
        422
    );
}

#[tokio::test]
async fn gitlab_revoke_and_forgejo_has_none() {
    let emu = ready(Flavor::Gitlab).await;
    let (_, reply) = exchange(&emu, &code(&emu).await).await;
    let access = str_of(&reply, "access_token").to_owned();
    let form = |secret: &str| {
        format!(
            "client_id={}&client_secret={secret}&token={access}",
            Emulator::CLIENT_ID
        )
    };
    let url = format!("{}/oauth/revoke", emu.base_url());
    let r = client()
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form("bad"))
        .send()
        .await
        .expect("r");
    assert_eq!(r.status(), 401);
    let r = client()
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(Emulator::CLIENT_SECRET))
        .send()
        .await
        .expect("r");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("t"), "{}");
    assert_eq!(emu.revoked(), vec![access.clone()]);
    assert_eq!(api_get(&emu, "/user", &access).await.status(), 401);

    let emu = ready(Flavor::Forgejo).await;
    let r = client()
        .post(format!("{}/login/oauth/revoke", emu.base_url()))
        .send()
        .await
        .expect("r");
    assert_eq!(r.status(), 404);
}
