//! Operator sign-in with each forge, the allow-list, hostile callbacks,
//! switching forges, and the active-forge router with its refresh rule.

use forge_emulator::{Emulator, Flavor};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::support::{contains, TestDb, TestKey};
use super::{emulator, plugin_of, ForgeSetup, Host};

async fn signs_in_and_lists_repositories(flavor: Flavor) {
    let forge = plugin_of(flavor);
    let emu = emulator(flavor, "alice").await;
    emu.set_access_token_lifetime(Some(7200));
    emu.add_repos("alice", 7);
    let db = TestDb::sqlite().await;
    let host = Host::one_forge(&db, forge, &emu, &["ALICE"]).await;
    // Nothing is active before anyone signs in.
    let (status, body, _) = host.as_operator(Method::GET, "/forge/repos", None).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
    assert_eq!(body["error"]["code"], "no_active_forge");

    let (status, cookie, page) = host.sign_in(forge).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let cookie = cookie.expect("a session cookie");
    let (status, me) = host.me(Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["forge_type"], forge);
    assert_eq!(me["account_login"], "alice");
    assert_eq!(me["base_url"], emu.base_url());
    assert!(me["since"].as_i64().is_some());
    let (status, _) = host.me(None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The session opens the dashboard.
    let resp = host
        .client
        .get(format!("{}/settings/secrets", host.base))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .expect("dashboard");
    assert_eq!(resp.status(), StatusCode::OK);

    // The router pages through the operator's repositories.
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let path = match &cursor {
            Some(c) => format!("/forge/repos?cursor={c}"),
            None => "/forge/repos".to_owned(),
        };
        let (status, page, _) = host.as_operator(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for r in page["repositories"].as_array().expect("repositories") {
            names.push(r["full_name"].as_str().expect("name").to_owned());
        }
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 7, "{names:?}");
    // A query the route does not know is a 400 naming it, not ignored.
    for path in ["/forge/repos?page=2", "/forge/repos?cursor=a&cursor=b"] {
        let (status, body, _) = host.as_operator(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
    }
    // Resolvers may not list an operator's repositories.
    let (status, _, _) = host
        .call(Method::GET, "/forge/repos", &host.resolver, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Every API call carried the operator's token, which the plugin never
    // saw; the database holds it sealed only.
    let tokens = emu.live_access_tokens("alice");
    assert!(!tokens.is_empty());
    let api_calls: Vec<_> = emu
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/repos") || r.path.contains("/projects"))
        .collect();
    assert!(!api_calls.is_empty());
    for call in &api_calls {
        let auth = call.authorization.as_deref().unwrap_or("");
        assert!(tokens.iter().any(|t| auth.ends_with(t.as_str())), "{auth}");
    }
    let raw = db.raw_bytes();
    for t in &tokens {
        assert!(
            !contains(&raw, t.as_bytes()),
            "a token is in the database in clear"
        );
    }
    // The uses are in the access log, by the plugin, at egress.
    let rows = host.vault.log_tail(1000).await.expect("log");
    assert!(rows.iter().any(|r| r.accessor == format!("plugin:{forge}")
        && r.action == "egress"
        && r.scope == format!("operator_oauth:{forge}")
        && r.name == "ACCESS_TOKEN"));
}

per_forge!(signs_in_and_lists_repositories: forgejo, github, gitlab);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allow_listed_accounts_get_in_and_callbacks_work_once() {
    let emu = emulator(Flavor::Forgejo, "eve").await;
    let db = TestDb::sqlite().await;
    let host = Host::one_forge(&db, "forgejo", &emu, &["alice"]).await;
    let (status, cookie, page) = host.sign_in("forgejo").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(cookie.is_none());
    assert!(page.contains("eve"), "{page}");
    assert_eq!(
        host.forges
            .active_forge()
            .await
            .err()
            .map(|e| e.http_status()),
        Some(412),
        "a refused account activates nothing"
    );

    // alice gets in; her callback URL cannot be used a second time.
    emu.sign_in_browser_as("alice");
    let (callback, browser) = started_sign_in(&host, "forgejo").await;
    let (status, cookie, _) = host
        .follow_callback_from(&callback, browser.as_deref())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(cookie.is_some());
    let (status, cookie, _) = host
        .follow_callback_from(&callback, browser.as_deref())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a replayed callback");
    assert!(cookie.is_none());

    // Hostile callbacks: refused as client errors, nothing set.
    let huge = "A".repeat(10_000);
    for query in [
        String::new(),
        "code=x".to_owned(),
        "state=x".to_owned(),
        "code=x&state=not-a-state-we-issued".to_owned(),
        "code=x&code=y&state=z".to_owned(),
        format!("code={huge}&state={huge}"),
        "code=%00%ff&state=%00".to_owned(),
        "error=access_denied&error_description=The+user+said+no%0A%1b[31m".to_owned(),
        "error=<script>alert(1)</script>&state=x".to_owned(),
    ] {
        let url = format!("{}/auth/forgejo/callback?{query}", host.base);
        let (status, cookie, page) = host.follow_callback(&url).await;
        assert!(status.is_client_error(), "{query}: {status} {page}");
        assert!(cookie.is_none(), "{query}");
        assert!(!page.contains("<script>"), "escaped: {page}");
    }
    for path in [
        "/auth/nope/login",
        "/auth/..%2f/login",
        "/auth/nope/callback?code=a&state=b",
    ] {
        let resp = host
            .client
            .get(format!("{}{path}", host.base))
            .send()
            .await
            .expect("send");
        assert!(resp.status().is_client_error(), "{path}: {}", resp.status());
    }
}

/// Waits for every concurrent caller, each of which must get its page, then
/// checks that the forge saw exactly one refresh (`what`: among whom).
async fn all_got_a_page_after_one_refresh<T, E: std::fmt::Debug>(
    emu: &Emulator,
    calls: Vec<tokio::task::JoinHandle<Result<T, E>>>,
    what: &str,
) {
    for c in calls {
        c.await.expect("joined").expect("a caller got its page");
    }
    assert_eq!(emu.refresh_requests(), 1, "exactly one refresh {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_with_another_forge_switches_and_keeps_the_first() {
    let fj = emulator(Flavor::Forgejo, "alice").await;
    let gh = emulator(Flavor::Github, "alice").await;
    let db = TestDb::sqlite().await;
    let host = Host::start(
        &db,
        &TestKey::new(),
        &[
            ForgeSetup {
                name: "forgejo",
                emulator: &fj,
                operators: &["alice"],
            },
            ForgeSetup {
                name: "github",
                emulator: &gh,
                operators: &["alice"],
            },
        ],
    )
    .await;
    let (status, cookie, _) = host.sign_in("forgejo").await;
    assert_eq!(status, StatusCode::OK);
    let (_, me) = host.me(cookie.as_deref()).await;
    assert_eq!(me["forge_type"], "forgejo");
    let (status, cookie, _) = host.sign_in("github").await;
    assert_eq!(status, StatusCode::OK);
    let (_, me) = host.me(cookie.as_deref()).await;
    assert_eq!(me["forge_type"], "github");
    let rows = keyward::store::forge::list_tokens(host.vault.db().reader())
        .await
        .expect("rows");
    let mut kinds: Vec<_> = rows.iter().map(|r| r.forge_type.as_str()).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["forgejo", "github"],
        "the first forge's row is kept"
    );
    let (status, _, _) = host.as_operator(Method::GET, "/forge/repos", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(gh
        .requests()
        .iter()
        .any(|r| r.path.ends_with("/user/repos")));
}

/// `callers` concurrent router calls with an expiring token refresh it
/// exactly once.
async fn one_refresh_for_many_callers(flavor: Flavor) {
    let forge = plugin_of(flavor);
    let emu = emulator(flavor, "alice").await;
    // Shorter than the router's refresh margin: every token is "expiring".
    emu.set_access_token_lifetime(Some(30));
    emu.add_repos("alice", 1);
    let db = TestDb::sqlite().await;
    let host = Host::one_forge(&db, forge, &emu, &["alice"]).await;
    assert_eq!(host.sign_in(forge).await.0, StatusCode::OK);
    emu.set_token_endpoint_delay(std::time::Duration::from_millis(300));
    let mut calls = Vec::new();
    for _ in 0..8 {
        let forges = host.forges.clone();
        calls.push(tokio::spawn(async move { forges.repositories(None).await }));
    }
    all_got_a_page_after_one_refresh(&emu, calls, "for 8 callers").await;
}

per_forge!(one_refresh_for_many_callers: forgejo, github, gitlab);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_on_postgres_refresh_once() {
    let emu = emulator(Flavor::Forgejo, "alice").await;
    emu.set_access_token_lifetime(Some(30));
    emu.add_repos("alice", 1);
    let db = TestDb::postgres().await;
    let key = TestKey::new();
    let setup = [ForgeSetup {
        name: "forgejo",
        emulator: &emu,
        operators: &["alice"],
    }];
    let a = Host::start(&db, &key, &setup).await;
    assert_eq!(a.sign_in("forgejo").await.0, StatusCode::OK);
    let b = Host::start(&db, &key, &setup).await;
    emu.set_token_endpoint_delay(std::time::Duration::from_millis(500));
    let mut calls = Vec::new();
    for i in 0..12 {
        let forges = if i % 2 == 0 {
            a.forges.clone()
        } else {
            b.forges.clone()
        };
        calls.push(tokio::spawn(async move { forges.repositories(None).await }));
    }
    all_got_a_page_after_one_refresh(&emu, calls, "across two hosts").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_access_token_is_refreshed_and_a_refused_refresh_loses_nothing() {
    let emu = emulator(Flavor::Gitlab, "alice").await;
    emu.set_access_token_lifetime(Some(7200));
    emu.add_repos("alice", 2);
    let db = TestDb::sqlite().await;
    let host = Host::one_forge(&db, "gitlab", &emu, &["alice"]).await;
    assert_eq!(host.sign_in("gitlab").await.0, StatusCode::OK);
    // The forge stops taking the access token: the router refreshes once
    // and the call goes through.
    emu.expire_all_access_tokens();
    let (status, page, _) = host.as_operator(Method::GET, "/forge/repos", None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(emu.refresh_requests(), 1);

    // A wrong client secret: the forge refuses the refresh. The caller
    // hears so (a failed dependency), and the stored tokens stay.
    host.vault
        .put(
            &keyward::names::Scope::parse("forge:gitlab").expect("scope"),
            &keyward::names::SecretName::parse("OAUTH_CLIENT_SECRET").expect("name"),
            b"wrong-secret",
            None,
            &super::access(),
            keyward::vault::PutMode::Replace,
        )
        .await
        .expect("replace");
    let before = keyward::store::forge::get_token(host.vault.db().reader(), "gitlab")
        .await
        .expect("row")
        .expect("present");
    emu.expire_all_access_tokens();
    let (status, body, _) = host.as_operator(Method::GET, "/forge/repos", None).await;
    assert!(
        status == StatusCode::FAILED_DEPENDENCY || status == StatusCode::BAD_GATEWAY,
        "{status} {body}"
    );
    let after = keyward::store::forge::get_token(host.vault.db().reader(), "gitlab")
        .await
        .expect("row")
        .expect("still present");
    assert_eq!(before.access, after.access, "nothing lost");
    assert_eq!(before.refresh, after.refresh, "nothing lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forge_rate_limit_reaches_the_caller_with_retry_after() {
    for flavor in [Flavor::Forgejo, Flavor::Github, Flavor::Gitlab] {
        let forge = plugin_of(flavor);
        let emu = emulator(flavor, "alice").await;
        emu.add_repos("alice", 1);
        let db = TestDb::sqlite().await;
        let host = Host::one_forge(&db, forge, &emu, &["alice"]).await;
        assert_eq!(host.sign_in(forge).await.0, StatusCode::OK);
        emu.rate_limit_next(1, 7);
        let (status, body, headers) = host.as_operator(Method::GET, "/forge/repos", None).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{forge}: {body}");
        assert_eq!(body["error"]["code"], "rate_limited", "{forge}");
        let retry: u64 = headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("Retry-After");
        assert!((1..=7).contains(&retry), "{forge}: {retry}");
        // And the next call goes through.
        let (status, _, _) = host.as_operator(Method::GET, "/forge/repos", None).await;
        assert_eq!(status, StatusCode::OK, "{forge}");
        let _: Value = body;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_where_the_forge_has_it_and_unsupported_where_not() {
    use keyward::runtime::{BaseUrl, OAuthApp, TokenRef};
    for flavor in [Flavor::Github, Flavor::Gitlab, Flavor::Forgejo] {
        let forge = plugin_of(flavor);
        let emu = emulator(flavor, "alice").await;
        let db = TestDb::sqlite().await;
        let host = Host::one_forge(&db, forge, &emu, &["alice"]).await;
        assert_eq!(host.sign_in(forge).await.0, StatusCode::OK);
        let token = emu.live_access_tokens("alice").pop().expect("a token");
        let app = OAuthApp {
            client_id: forge_emulator::Emulator::CLIENT_ID.into(),
            client_secret: Some(
                keyward::names::SecretRef::parse(&super::client_secret_ref(forge)).expect("ref"),
            ),
            redirect_uri: format!("{}/auth/{forge}/callback", host.base),
        };
        let reference =
            keyward::names::SecretRef::parse(&format!("operator_oauth:{forge}/ACCESS_TOKEN"))
                .expect("ref");
        let result = host
            .rt
            .forge_revoke(
                &host.vault,
                forge,
                &BaseUrl::parse(&emu.base_url()).expect("base"),
                &app,
                TokenRef::Bound(
                    reference,
                    keyward::crypto::SecretBytes::new(token.clone().into_bytes()),
                ),
            )
            .await;
        match flavor {
            Flavor::Forgejo => {
                let err = result.expect_err("Forgejo has no revoke endpoint");
                assert_eq!(err.http_status(), 501, "{err}");
            }
            _ => {
                result.unwrap_or_else(|e| panic!("{forge}: {e}"));
                assert_eq!(emu.revoked(), std::slice::from_ref(&token), "{forge}");
                // The client secret travelled only as the host expanded it.
                let raw: Vec<u8> = emu.requests().iter().flat_map(|r| r.body.clone()).collect();
                assert!(
                    !String::from_utf8_lossy(&raw).contains("SECRET"),
                    "{forge}: unexpanded"
                );
            }
        }
    }
}

/// Starts a sign-in in one browser and has the forge approve it: the
/// callback URL and the pre-auth cookie that browser holds.
async fn started_sign_in(host: &Host, forge: &str) -> (String, Option<String>) {
    let resp = host.login(forge).await;
    let browser = super::set_cookie(&resp);
    let authorize = super::location(&resp);
    let resp = host.client.get(&authorize).send().await.expect("authorize");
    (super::location(&resp), browser)
}

/// A host on `db` whose one forge `forge` is `emu`, admitting `operators`.
async fn one_forge_host(db: &TestDb, forge: &str, emu: &Emulator, operators: &[&str]) -> Host {
    let setup = [ForgeSetup {
        name: forge,
        emulator: emu,
        operators,
    }];
    Host::start(db, &TestKey::new(), &setup).await
}

async fn a_callback_from_another_browser_is_refused(flavor: Flavor) {
    let forge = plugin_of(flavor);
    let emu = emulator(flavor, "alice").await;
    let db = TestDb::sqlite().await;
    let host = one_forge_host(&db, forge, &emu, &["alice"]).await;
    let (callback, browser) = started_sign_in(&host, forge).await;
    let browser = browser.expect("the login sets a pre-auth cookie");
    assert!(!browser.contains("session"), "{browser}");
    // The attacker's browser: no cookie, then its own sign-in's cookie.
    let (status, cookie, page) = host.follow_callback(&callback).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no cookie: {page}");
    assert!(cookie.is_none());
    let (_, other) = started_sign_in(&host, forge).await;
    let (status, cookie, page) = host.follow_callback_from(&callback, other.as_deref()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "another cookie: {page}");
    assert!(cookie.is_none());
    assert!(page.contains("browser"), "the page says why: {page}");
    assert!(
        host.forges.active_forge().await.is_err(),
        "nothing activated"
    );
    // The browser that started it still finishes it.
    let (status, cookie, page) = host.follow_callback_from(&callback, Some(&browser)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(cookie.is_some());
}

per_forge!(a_callback_from_another_browser_is_refused: forgejo, github);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recycled_login_is_refused_and_id_entries_survive_a_rename() {
    for flavor in [Flavor::Forgejo, Flavor::Gitlab] {
        let forge = plugin_of(flavor);
        let emu = emulator(flavor, "alice").await;
        let db = TestDb::sqlite().await;
        let host = one_forge_host(&db, forge, &emu, &["alice", "id:1003"]).await;
        // alice's first sign-in pins the login to her id (1001).
        assert_eq!(host.sign_in(forge).await.0, StatusCode::OK, "{forge}");
        // alice renames; someone else (id 2001) takes the login "alice".
        emu.add_user("alice", 2001);
        let (status, cookie, page) = host.sign_in(forge).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{forge}: {page}");
        assert!(cookie.is_none());
        // An `id:` entry admits the account whatever its login is now.
        emu.add_user("bot-renamed", 1003);
        emu.sign_in_browser_as("bot-renamed");
        let (status, _, page) = host.sign_in(forge).await;
        assert_eq!(status, StatusCode::OK, "{forge}: {page}");
        // eve (1002) is on no entry.
        emu.sign_in_browser_as("eve");
        assert_eq!(host.sign_in(forge).await.0, StatusCode::FORBIDDEN);
    }
}
