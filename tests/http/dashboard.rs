//! The dashboard over HTTP, without a browser: sign-in links, the session
//! cookie, CSRF and origin checks on every form, hostile form input, and
//! pages that never hold a stored value. (tests/browser drives the same
//! pages in Chromium.)

use keyward::auth::Sessions;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::{Client, Method, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Api, VALUE};

/// Form fields, in order.
type Fields<'a> = Vec<(&'a str, &'a str)>;

const BAD_BEARER: &str = "kw_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// A client that shows redirects instead of following them.
fn plain() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

/// A signed-in operator: the cookie header and the CSRF token.
struct Operator {
    cookie: String,
    csrf: String,
}

async fn sign_in(api: &Api) -> Operator {
    let (session, secret) = Sessions::new(api.vault.db().clone())
        .start("test")
        .await
        .expect("session");
    Operator {
        cookie: format!("keyward_session={}", secret.expose()),
        csrf: session.csrf().to_owned(),
    }
}

struct Answer {
    status: StatusCode,
    location: Option<String>,
    set_cookie: Option<String>,
    body: String,
}

/// Sends a form (or nothing) with optional cookie and extra headers.
async fn send(
    api: &Api,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    form: Option<&[(&str, &str)]>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = plain().request(method, format!("{}{path}", api.base));
    if let Some(c) = cookie {
        req = req.header(COOKIE, c);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(f) = form {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(f)
            .finish();
        req = req
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
    }
    let resp = req.send().await.expect("send");
    let header = |name| {
        resp.headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let (status, location, set_cookie) = (resp.status(), header(LOCATION), header(SET_COOKIE));
    Answer {
        status,
        location,
        set_cookie,
        body: resp.text().await.expect("body"),
    }
}

impl Operator {
    async fn get(&self, api: &Api, path: &str) -> Answer {
        send(api, Method::GET, path, Some(&self.cookie), None, &[]).await
    }

    async fn post(&self, api: &Api, path: &str, fields: &[(&str, &str)]) -> Answer {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        send(api, Method::POST, path, Some(&self.cookie), Some(&all), &[]).await
    }
}

/// The role matrix's check of one dashboard route (called from the matrix
/// in main.rs for every route whose role is `session`).
pub async fn check_session_route(api: &Api, method: &Method, path: &str, op: &Value) {
    assert!(
        op["security"][0]["session"].is_array(),
        "{method} {path} needs a session but does not say so"
    );
    let get = method == Method::GET;
    let form: Option<&[(&str, &str)]> = (!get).then_some(&[][..]);
    let bearer = |t: &str| format!("Bearer {t}");
    let (op_bearer, res_bearer) = (bearer(&api.operator), bearer(&api.resolver));
    let unknown = format!("keyward_session={}", "A".repeat(43));
    // Bearer tokens, even an operator's, do not sign in to the dashboard.
    let without: [(Option<&str>, Fields); 6] = [
        (None, vec![]),
        (None, vec![("authorization", &op_bearer)]),
        (None, vec![("authorization", &res_bearer)]),
        (None, vec![("authorization", BAD_BEARER)]),
        (Some(&unknown), vec![]),
        (Some("keyward_session=../../etc"), vec![]),
    ];
    for (cookie, headers) in &without {
        let a = send(api, method.clone(), path, *cookie, form, headers).await;
        if get {
            assert_eq!(
                a.status,
                StatusCode::SEE_OTHER,
                "{method} {path} {headers:?}: {}",
                a.body
            );
            assert_eq!(a.location.as_deref(), Some("/login"), "{method} {path}");
        } else {
            assert_eq!(
                a.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {headers:?}: {}",
                a.body
            );
        }
    }
    let who = sign_in(api).await;
    if get {
        let a = who.get(api, path).await;
        assert!(
            !matches!(a.status.as_u16(), 303 | 401 | 403) && !a.status.is_server_error(),
            "{method} {path} signed in: {} {}",
            a.status,
            a.body
        );
        return;
    }
    // A form without its CSRF token, with another session's, or from
    // another site is refused before anything happens.
    let other = sign_in(api).await;
    for (fields, headers) in [
        (vec![], vec![]),
        (vec![("csrf", "")], vec![]),
        (vec![("csrf", other.csrf.as_str())], vec![]),
        (
            vec![("csrf", who.csrf.as_str())],
            vec![("origin", "http://evil.example")],
        ),
        (
            vec![("csrf", who.csrf.as_str())],
            vec![("sec-fetch-site", "cross-site")],
        ),
    ] {
        let a = send(
            api,
            method.clone(),
            path,
            Some(&who.cookie),
            Some(&fields),
            &headers,
        )
        .await;
        assert_eq!(
            a.status,
            StatusCode::FORBIDDEN,
            "{method} {path} {fields:?} {headers:?}: {}",
            a.body
        );
    }
    let a = who.post(api, path, &[]).await;
    assert!(
        !matches!(a.status.as_u16(), 401 | 403) && !a.status.is_server_error(),
        "{method} {path} signed in: {} {}",
        a.status,
        a.body
    );
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[tokio::test]
async fn sign_in_links_work_once_and_sign_out_ends_the_session() {
    let api = Api::start(super::TestDb::sqlite().await).await;
    let sessions = Sessions::new(api.vault.db().clone());
    let link = sessions.link("dev").await.expect("link");
    let path = format!("/login/{}", link.expose());
    // Looking at the link (a preview, a prefetch) does not use it up.
    for _ in 0..2 {
        let a = send(&api, Method::GET, &path, None, None, &[]).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert!(a.body.contains("action=\"/login\""), "{}", a.body);
    }
    let form = [("link", link.expose())];
    let a = send(&api, Method::POST, "/login", None, Some(&form), &[]).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.location.as_deref(), Some("/settings/secrets"));
    let set = a.set_cookie.expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Secure"), "plain http: {set}");
    let cookie = set.split(';').next().expect("pair").to_owned();
    // The link signed in once; now it is spent, to a GET and a POST.
    let again = send(&api, Method::POST, "/login", None, Some(&form), &[]).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED, "{}", again.body);
    assert!(again.set_cookie.is_none());
    assert_eq!(
        send(&api, Method::GET, &path, None, None, &[]).await.status,
        StatusCode::UNAUTHORIZED
    );

    let page = send(
        &api,
        Method::GET,
        "/settings/secrets",
        Some(&cookie),
        None,
        &[],
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Signed in as dev"));
    // Sign out: the cookie is cleared and the session is gone server-side,
    // so a copy of the old cookie is worthless.
    let csrf = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a CSRF field")
        .to_owned();
    let out = send(
        &api,
        Method::POST,
        "/logout",
        Some(&cookie),
        Some(&[("csrf", &csrf)]),
        &[],
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.body);
    assert!(out.set_cookie.expect("cleared").contains("Max-Age=0"));
    let after = send(
        &api,
        Method::GET,
        "/settings/secrets",
        Some(&cookie),
        None,
        &[],
    )
    .await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert_eq!(after.location.as_deref(), Some("/login"));
}

#[tokio::test]
async fn expired_and_malformed_links_and_sessions_are_refused() {
    let api = Api::start(super::TestDb::sqlite().await).await;
    let known = "B".repeat(43);
    let past = keyward::store::now_ms() - 1000;
    api._db
        .exec(&format!(
            "INSERT INTO login_link (hash, subject, created_at, expires_at, used_at) \
             VALUES ('{}', 'dev', 0, {past}, NULL)",
            sha256_hex(&known)
        ))
        .await;
    api._db
        .exec(&format!(
            "INSERT INTO operator_session (id_hash, subject, created_at, expires_at) \
             VALUES ('{}', 'dev', 0, {past})",
            sha256_hex(&known)
        ))
        .await;
    let long = "C".repeat(5000);
    for link in [known.as_str(), "", "short", "%FF%FE", &long, "A%00A"] {
        let a = send(
            &api,
            Method::POST,
            "/login",
            None,
            Some(&[("link", link)]),
            &[],
        )
        .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{link:?}: {}", a.body);
        assert!(a.set_cookie.is_none());
        if !link.is_empty() {
            let g = send(
                &api,
                Method::GET,
                &format!("/login/{link}"),
                None,
                None,
                &[],
            )
            .await;
            assert!(g.status.is_client_error(), "{link:?}: {}", g.status);
        }
    }
    // A body that is not a form at all.
    let a = send(&api, Method::POST, "/login", None, None, &[]).await;
    assert!(a.status.is_client_error(), "{}", a.status);
    // A sign-in form posted from another site is refused even with a link.
    let link = Sessions::new(api.vault.db().clone())
        .link("dev")
        .await
        .expect("link");
    let a = send(
        &api,
        Method::POST,
        "/login",
        None,
        Some(&[("link", link.expose())]),
        &[("origin", "http://evil.example")],
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    // …and was not used up by that.
    let a = send(
        &api,
        Method::POST,
        "/login",
        None,
        Some(&[("link", link.expose())]),
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    // An expired session is no session.
    let expired = format!("keyward_session={known}");
    let a = send(
        &api,
        Method::GET,
        "/settings/tokens",
        Some(&expired),
        None,
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
}

/// Every page, after every kind of change, searched for every value ever
/// stored: none may appear.
#[tokio::test]
async fn the_dashboard_round_trip_never_shows_a_value() {
    let api = Api::start(super::TestDb::sqlite().await).await;
    let who = sign_in(&api).await;
    let (first, second) = ("dash-value-ONE-1f2e", "dash-value-TWO-9a8b");
    let mut pages = Vec::new();
    let a = who
        .post(
            &api,
            "/settings/secrets",
            &[
                ("name", "DASH_KEY"),
                ("scope", "agent_type:coder"),
                ("value", first),
                ("description", "<script>alert(1)</script>"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let detail = a.location.expect("to the secret's page");
    assert_eq!(
        detail,
        "/settings/secrets/DASH_KEY?scope=agent_type%3Acoder&notice=created"
    );
    pages.push(who.get(&api, &detail).await);
    let base = "/settings/secrets/DASH_KEY";
    let scope = "?scope=agent_type%3Acoder";
    for (action, fields) in [
        ("describe", vec![("description", "coder's key")]),
        ("replace", vec![("value", second)]),
        ("rotate", vec![]),
    ] {
        let a = who
            .post(&api, &format!("{base}/{action}{scope}"), &fields)
            .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{action}: {}", a.body);
        pages.push(
            who.get(&api, a.location.as_deref().expect("location"))
                .await,
        );
    }
    // Reads through the API so the log has reveal rows to page through.
    let access = keyward::audit::Access::new("test:reader", "paging").expect("access");
    let stored = keyward::names::SecretRef::parse("agent_type:coder/DASH_KEY").expect("ref");
    let ctx = keyward::resolve::Context::default();
    let reveal = || {
        api.vault
            .reveal(&stored, &ctx, &access, keyward::audit::Action::Reveal)
    };
    for _ in 0..30 {
        reveal().await.expect("reveal");
    }
    let log = who.get(&api, &format!("{base}{scope}")).await;
    let older = log
        .body
        .split("rel=\"next\"")
        .next()
        .and_then(|b| b.rsplit("href=\"").next())
        .and_then(|h| h.split('"').next())
        .expect("an older-entries link")
        .replace("&amp;", "&");
    assert!(older.contains("before="), "{older}");
    pages.push(log);
    let older = who.get(&api, &older).await;
    assert!(
        older.body.contains("session:test"),
        "the dashboard's changes are logged as the session: {}",
        older.body
    );
    pages.push(older);
    pages.push(
        who.get(
            &api,
            &format!("{base}{scope}&accessor=test%3Areader&action=reveal"),
        )
        .await,
    );
    pages.push(who.get(&api, "/settings/secrets").await);
    pages.push(who.get(&api, &format!("{base}/delete{scope}")).await);
    pages.push(who.get(&api, "/settings/tokens").await);
    for p in &pages {
        assert_eq!(p.status, StatusCode::OK, "{}", p.body);
        for value in [VALUE, first, second] {
            assert!(
                !p.body.contains(value),
                "a page holds a stored value: {}",
                p.body
            );
        }
        assert!(!p.body.contains("<script>"), "unescaped markup: {}", p.body);
    }
    assert!(pages.iter().any(|p| p.body.contains("••••")));
    // The replaced value is what renders; the dashboard changed it for real.
    let (_, got) = reveal().await.expect("reveal");
    assert_eq!(got.expose(), second.as_bytes());
    // Tokens: shown once on the answer to the form, never again.
    let made = who
        .post(
            &api,
            "/settings/tokens",
            &[
                ("name", "deploy bot"),
                ("role", "resolver"),
                ("ttl_days", "90"),
            ],
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let token = made
        .body
        .split("value=\"kw_")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .map(|t| format!("kw_{t}"))
        .expect("the new token on the page");
    let (status, _, _) = api.call(Method::GET, "/secrets", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "the token works");
    let list = who.get(&api, "/settings/tokens").await;
    assert!(!list.body.contains(&token));
    // Made with the form's default lifetime, it expires (in 90 days).
    assert!(list.body.contains("expires "), "{}", list.body);
    let id = &token[3..19];
    // Rotated with no grace: the page shows the new value once, the old
    // one is refused at once, the new one works.
    let a = who
        .post(
            &api,
            &format!("/settings/tokens/{id}/rotate"),
            &[("grace_minutes", "0")],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let rotated = a
        .body
        .split("value=\"kw_")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .map(|t| format!("kw_{t}"))
        .expect("the new value on the page");
    assert!(rotated.starts_with(&format!("kw_{id}_")) && rotated != token);
    let (status, _, _) = api.call(Method::GET, "/secrets", Some(&token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old value");
    let (status, _, _) = api
        .call(Method::GET, "/secrets", Some(&rotated), None)
        .await;
    assert_eq!(status, StatusCode::OK, "the new value");
    for grace in ["x", "-1", "20000"] {
        let a = who
            .post(
                &api,
                &format!("/settings/tokens/{id}/rotate"),
                &[("grace_minutes", grace)],
            )
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{grace}: {}", a.body);
    }
    let a = who
        .post(&api, &format!("/settings/tokens/{id}/revoke"), &[])
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let (status, _, _) = api
        .call(Method::GET, "/secrets", Some(&rotated), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked");
    // Delete, after the confirmation page.
    let a = who.post(&api, &format!("{base}/delete{scope}"), &[]).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert!(reveal().await.is_err());
    let gone = who.get(&api, &format!("{base}{scope}")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    for page in [
        &gone,
        &who.get(&api, "/settings/secrets?notice=deleted").await,
    ] {
        for value in [first, second] {
            assert!(!page.body.contains(value));
        }
    }
}

#[tokio::test]
async fn hostile_form_input_is_refused_and_writes_nothing() {
    let api = Api::start(super::TestDb::sqlite().await).await;
    let who = sign_in(&api).await;
    let before = api.vault.list(None).await.expect("list");
    let long_name = "N".repeat(129);
    let long_desc = "d".repeat(5000);
    let cases: Vec<(&str, Fields, u16)> = vec![
        (
            "/settings/secrets",
            vec![("name", "../etc/passwd"), ("value", "v")],
            422,
        ),
        ("/settings/secrets", vec![("name", ""), ("value", "v")], 422),
        (
            "/settings/secrets",
            vec![("name", &long_name), ("value", "v")],
            422,
        ),
        (
            "/settings/secrets",
            vec![("name", "<b>x</b>"), ("value", "v")],
            422,
        ),
        (
            "/settings/secrets",
            vec![("name", "OK_NAME"), ("scope", "Agent:x"), ("value", "v")],
            422,
        ),
        (
            "/settings/secrets",
            vec![("name", "OK_NAME"), ("value", "")],
            400,
        ),
        ("/settings/secrets", vec![("name", "OK_NAME")], 400),
        ("/settings/secrets", vec![("value", "v")], 400),
        (
            "/settings/secrets",
            vec![
                ("name", "OK_NAME"),
                ("value", "v"),
                ("description", &long_desc),
            ],
            422,
        ),
        (
            "/settings/secrets",
            vec![("name", "GITHUB_TOKEN"), ("value", "v")],
            409,
        ),
        ("/settings/secrets/NOPE/replace", vec![("value", "v")], 404),
        ("/settings/secrets/NOPE/rotate", vec![], 404),
        ("/settings/secrets/NOPE/delete", vec![], 404),
        (
            "/settings/secrets/GITHUB_TOKEN/describe?scope=bad%20scope",
            vec![("description", "x")],
            422,
        ),
        (
            "/settings/secrets/GITHUB_TOKEN/replace?scope=global&scope=x",
            vec![("value", "v")],
            400,
        ),
        (
            "/settings/tokens",
            vec![("name", "x"), ("role", "admin")],
            400,
        ),
        (
            "/settings/tokens",
            vec![("name", "semi;colon"), ("role", "resolver")],
            400,
        ),
        ("/settings/tokens/0000000000000000/revoke", vec![], 404),
    ];
    for (path, fields, want) in &cases {
        let a = who.post(&api, path, fields).await;
        assert_eq!(a.status.as_u16(), *want, "{path} {fields:?}: {}", a.body);
        assert!(
            a.body.contains("role=\"alert\""),
            "an error page: {}",
            a.body
        );
        assert!(!a.body.contains("<b>x</b>"), "escaped: {}", a.body);
    }
    // Bytes that are not UTF-8, and a body over the limit.
    let raw = plain()
        .post(format!("{}/settings/secrets", api.base))
        .header(COOKIE, &who.cookie)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("csrf={}&name=%FF%FE&value=v", who.csrf))
        .send()
        .await
        .expect("send");
    // Decoded lossily to U+FFFD, which no name may hold.
    assert_eq!(raw.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let huge = format!(
        "csrf={}&name=BIG&value={}",
        who.csrf,
        "v".repeat(keyward::http::MAX_BODY + 10)
    );
    let raw = plain()
        .post(format!("{}/settings/secrets", api.base))
        .header(COOKIE, &who.cookie)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(huge)
        .send()
        .await
        .expect("send");
    assert!(raw.status().is_client_error(), "{}", raw.status());
    // JSON where a form belongs.
    let raw = plain()
        .post(format!("{}/settings/secrets", api.base))
        .header(COOKIE, &who.cookie)
        .header(CONTENT_TYPE, "application/json")
        .body(format!(
            "{{\"csrf\":\"{}\",\"name\":\"J\",\"value\":\"v\"}}",
            who.csrf
        ))
        .send()
        .await
        .expect("send");
    assert!(raw.status().is_client_error(), "{}", raw.status());
    // Pages with hostile paths and queries.
    for path in [
        "/settings/secrets/..%2F..%2Fetc",
        "/settings/secrets/GITHUB_TOKEN?scope=%00",
        "/settings/secrets/GITHUB_TOKEN?before=-1",
        "/settings/secrets/GITHUB_TOKEN?before=abc",
        "/settings/secrets/NOPE",
        "/settings/secrets?notice=%3Cscript%3E",
    ] {
        let a = who.get(&api, path).await;
        assert!(!a.status.is_server_error(), "{path}: {}", a.status);
        assert!(!a.body.contains("<script>"), "{path}");
    }
    assert_eq!(
        api.vault.list(None).await.expect("list"),
        before,
        "nothing was written"
    );
    let access = keyward::audit::Access::new("test:hostile", "check").expect("access");
    let github = keyward::names::SecretRef::parse("GITHUB_TOKEN").expect("ref");
    let (_, value) = api
        .vault
        .reveal(
            &github,
            &Default::default(),
            &access,
            keyward::audit::Action::Reveal,
        )
        .await
        .expect("reveal");
    assert_eq!(value.expose(), VALUE.as_bytes(), "the secret is untouched");
}
