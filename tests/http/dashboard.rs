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
                ("can", "metadata"),
                ("resolve", "*/*"),
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
    let listing = who.get(&api, "/settings/secrets?notice=deleted").await;
    for page in [&gone, &listing] {
        for value in [first, second] {
            assert!(!page.body.contains(value));
        }
    }
    // The deleted secret is listed with Undelete, which brings it back.
    assert!(listing.body.contains("Deleted secrets"), "{}", listing.body);
    assert!(
        listing.body.contains("Undelete DASH_KEY"),
        "{}",
        listing.body
    );
    let a = who
        .post(&api, &format!("{base}/undelete{scope}"), &[])
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert!(reveal().await.is_ok(), "undeleted");
    let again = who
        .post(&api, &format!("{base}/undelete{scope}"), &[])
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    // Destroy, after its own confirmation: gone from both lists for good.
    let a = who.post(&api, &format!("{base}/delete{scope}"), &[]).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let confirm = who.get(&api, &format!("{base}/destroy{scope}")).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(
        confirm.body.contains("Destroy for good"),
        "{}",
        confirm.body
    );
    let a = who.post(&api, &format!("{base}/destroy{scope}"), &[]).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let listing = who.get(&api, "/settings/secrets?notice=destroyed").await;
    assert!(
        !listing.body.contains("Deleted secrets"),
        "{}",
        listing.body
    );
    assert!(
        listing.body.contains("Secret destroyed"),
        "{}",
        listing.body
    );
    let a = who
        .post(&api, &format!("{base}/undelete{scope}"), &[])
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
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
        ("/settings/secrets/NOPE/undelete", vec![], 404),
        ("/settings/secrets/NOPE/destroy", vec![], 404),
        ("/settings/secrets/GITHUB_TOKEN/undelete", vec![], 409),
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

/// The API tokens, newest first, as the store lists them.
async fn token_rows(api: &Api) -> Vec<keyward::store::tokens::TokenRow> {
    keyward::auth::Tokens::new(api.vault.db().clone())
        .list()
        .await
        .expect("list")
}

/// The `kw_…` value a page shows once.
fn shown_token(body: &str) -> String {
    body.split("value=\"kw_")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .map(|t| format!("kw_{t}"))
        .unwrap_or_else(|| panic!("a token on the page: {body}"))
}

/// An agent type made in the dashboard (no plugin runtime here, so with
/// a base URL), with `token` as its forge token.
async fn add_agent_type(api: &Api, who: &Operator, name: &str, token: &str) {
    let a = who
        .post(
            api,
            "/settings/agent-types",
            &[
                ("name", name),
                ("forge", "forgejo"),
                ("base_url", "https://forge.example"),
                ("description", "made in the dashboard"),
                ("token", token),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(
        a.location.as_deref(),
        Some(format!("/settings/agent-types/{name}?notice=agent-created").as_str())
    );
}

#[tokio::test]
async fn tokens_made_in_the_form_carry_the_policy_and_the_list_shows_it() {
    let api = Api::start(super::TestDb::sqlite().await).await;
    let who = sign_in(&api).await;
    add_agent_type(&api, &who, "coder", "forge-token-CODER-51ab").await;

    // From the agent's page: the form comes bound to it, and narrow.
    let form = who
        .get(&api, "/settings/tokens?agent_type=coder&instance=i-1")
        .await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    assert!(
        form.body.contains("<option value=\"coder\" selected>"),
        "{}",
        form.body
    );
    assert!(form.body.contains("name=\"instance\""));
    assert!(form.body.contains("value=\"i-1\""), "{}", form.body);
    assert!(
        form.body.contains("name=\"can\" value=\"render\" checked")
            && !form
                .body
                .contains("name=\"can\" value=\"metadata\" checked"),
        "only render is ticked: {}",
        form.body
    );

    // Bound to coder/i-1, render and agent-token.
    let made = who
        .post(
            &api,
            "/settings/tokens",
            &[
                ("name", "coder i-1"),
                ("role", "resolver"),
                ("ttl_days", "7"),
                ("agent_type", "coder"),
                ("instance", "i-1"),
                ("can", "render"),
                ("can", "agent-token"),
            ],
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let bound = shown_token(&made.body);
    // From given networks only. (This test's server passes no peer
    // addresses, so it is not used: tests/http/policies covers networks.)
    let made = who
        .post(
            &api,
            "/settings/tokens",
            &[
                ("name", "netted"),
                ("role", "resolver"),
                ("can", "render"),
                ("resolve", "global/*"),
                ("networks", "127.0.0.0/8\n::1/128"),
            ],
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let rows = token_rows(&api).await;
    let row = rows.iter().find(|r| r.name == "coder i-1").expect("made");
    let policy: Value =
        serde_json::from_str(row.policy.as_deref().expect("a policy")).expect("json");
    assert_eq!(
        policy["agent"],
        serde_json::json!({"agent_type": "coder", "instance": "i-1"})
    );
    assert_eq!(
        policy["capabilities"],
        serde_json::json!(["render", "agent-token"])
    );
    assert!(policy.get("networks").is_none(), "any network: {policy}");
    let netted = rows.iter().find(|r| r.name == "netted").expect("made");
    let netted: Value =
        serde_json::from_str(netted.policy.as_deref().expect("a policy")).expect("json");
    assert_eq!(
        netted["networks"],
        serde_json::json!(["127.0.0.0/8", "::1/128"])
    );
    assert!(netted.get("agent").is_none());
    let week = 7 * 86_400_000;
    assert!(row
        .expires_at
        .is_some_and(|at| (at - row.created_at - week).abs() < 5_000));
    // It renders along its agent's chain and may not list secrets.
    let (status, body, raw) = api
        .call(
            Method::POST,
            "/render",
            Some(&bound),
            Some(
                serde_json::json!({"template": "${SECRET:GITHUB_TOKEN}", "reason": "policy test"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    assert_eq!(body["text"].as_str(), Some(VALUE), "{raw}");
    let (status, _, raw) = api.call(Method::GET, "/secrets", Some(&bound), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no metadata: {raw}");

    // Narrow, unbound: metadata of global/GITHUB_* only.
    let made = who
        .post(
            &api,
            "/settings/tokens",
            &[
                ("name", "lister"),
                ("role", "resolver"),
                ("ttl_days", ""),
                ("can", "metadata"),
                ("resolve", "  global/GITHUB_*  \r\n\r\n"),
            ],
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let lister = shown_token(&made.body);
    let (status, body, raw) = api.call(Method::GET, "/secrets", Some(&lister), None).await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    assert!(raw.contains("GITHUB_TOKEN"), "{body}");
    assert!(!raw.contains("FORGE_TOKEN"), "outside its pattern: {raw}");

    // The list says what each may do, when it expires, when it was used.
    let list = who.get(&api, "/settings/tokens").await;
    assert_eq!(list.status, StatusCode::OK);
    for (token, shown) in [(&bound, "coder i-1"), (&lister, "lister")] {
        assert!(!list.body.contains(token.as_str()), "shown once only");
        assert!(list.body.contains(shown));
    }
    for words in [
        "Bound to",
        "agent type <strong>coder</strong>",
        "instance <strong>i-1</strong>",
        "render, agent-token",
        "<code>instance:i-1/*</code>, <code>agent_type:coder/*</code>, <code>global/*</code>",
        "<code>127.0.0.0/8</code>, <code>::1/128</code>",
        "<code>global/GITHUB_*</code>",
        "any network",
        "everything a resolver may do (no policy)",
        "every change",
        "Last used",
        "Expires",
    ] {
        assert!(list.body.contains(words), "{words:?} in {}", list.body);
    }
    // Last use: the bound token's (just now) is shown as a time; the
    // fixture's tokens were never used.
    let rows = token_rows(&api).await;
    let used = rows
        .iter()
        .find(|r| r.name == "coder i-1")
        .and_then(|r| r.last_used_at)
        .expect("recorded");
    assert!(
        list.body.contains(&keyward::http::dashboard::when(used)),
        "{}",
        list.body
    );
    assert!(list.body.contains("<td>never</td>"), "{}", list.body);
}

#[tokio::test]
async fn hostile_token_forms_are_shown_again_with_why_and_create_nothing() {
    let api = Api::start(super::TestDb::sqlite().await).await;
    let who = sign_in(&api).await;
    add_agent_type(&api, &who, "coder", "forge-token-HOSTILE-77cd").await;
    let before = token_rows(&api).await.len();
    // Leaked: the cases hold `'static` field lists.
    let huge: &'static str = format!("global/{}", "X".repeat(200_000)).leak();
    let many: &'static str = (0..65)
        .map(|n| format!("global/N{n}\n"))
        .collect::<String>()
        .leak();
    let resolver = |extra: &[(&'static str, &'static str)]| {
        let mut f = vec![("name", "hostile"), ("role", "resolver")];
        f.extend_from_slice(extra);
        f
    };
    let cases: Vec<(Fields, &str)> = vec![
        (
            resolver(&[
                ("can", "render"),
                ("resolve", "*/*"),
                ("networks", "10.0.0.0/33"),
            ]),
            "invalid network",
        ),
        (
            resolver(&[
                ("can", "render"),
                ("resolve", "*/*"),
                ("networks", "not-a-cidr"),
            ]),
            "invalid network",
        ),
        (
            resolver(&[("can", "render"), ("resolve", "no-slash")]),
            "invalid pattern",
        ),
        (
            resolver(&[("can", "render"), ("resolve", "global/${SECRET:x}")]),
            "invalid pattern",
        ),
        (
            resolver(&[("can", "render"), ("agent_type", "ghost")]),
            "no agent type",
        ),
        (
            resolver(&[("can", "render"), ("agent_type", "<b>x</b>")]),
            "no agent type",
        ),
        (
            resolver(&[("can", "render"), ("instance", "i-1"), ("resolve", "*/*")]),
            "instance",
        ),
        (resolver(&[("can", "render")]), "what it may resolve"),
        (resolver(&[("resolve", "*/*")]), "at least one capability"),
        (
            resolver(&[("can", "root"), ("resolve", "*/*")]),
            "unknown capability",
        ),
        (
            vec![
                ("name", "op"),
                ("role", "operator"),
                ("agent_type", "coder"),
            ],
            "only resolver tokens",
        ),
        (
            vec![
                ("name", "op"),
                ("role", "operator"),
                ("networks", "10.0.0.0/8"),
            ],
            "only resolver tokens",
        ),
        (
            resolver(&[("can", "render"), ("resolve", huge)]),
            "far too long",
        ),
        (
            resolver(&[("can", "render"), ("resolve", many)]),
            "at most 64",
        ),
        (
            vec![
                ("name", "<b>x</b>"),
                ("role", "resolver"),
                ("can", "render"),
                ("resolve", "*/*"),
            ],
            "invalid token name",
        ),
        (
            resolver(&[("can", "render"), ("resolve", "*/*"), ("ttl_days", "soon")]),
            "lifetime",
        ),
    ];
    for (fields, says) in &cases {
        let a = who.post(&api, "/settings/tokens", fields).await;
        let short: Vec<_> = fields
            .iter()
            .map(|(k, v)| (k, &v[..v.len().min(40)]))
            .collect();
        assert_eq!(
            a.status,
            StatusCode::BAD_REQUEST,
            "{short:?}: {}",
            &a.body[..a.body.len().min(2000)]
        );
        assert!(a.body.contains("role=\"alert\""), "{short:?}");
        assert!(
            a.body.contains(says),
            "{short:?} should say {says:?}: {}",
            &a.body[..a.body.len().min(4000)]
        );
        // The form is there again, filled in, and nothing hostile echoed raw.
        assert!(a.body.contains("action=\"/settings/tokens\""), "{short:?}");
        assert!(!a.body.contains("<b>x</b>"), "escaped: {short:?}");
        assert!(
            !a.body.contains(&huge[..1000]),
            "the huge field is not echoed"
        );
        assert!(!a.body.contains("value=\"kw_"), "no token shown: {short:?}");
    }
    // Typed values come back, so a typo costs one correction.
    let a = who
        .post(
            &api,
            "/settings/tokens",
            &resolver(&[
                ("can", "access-log"),
                ("resolve", "global/KEEP_*\nbad"),
                ("networks", "10.9.0.0/16"),
            ]),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    for kept in [
        "value=\"hostile\"",
        "global/KEEP_*\nbad",
        "10.9.0.0/16",
        "value=\"access-log\" checked",
    ] {
        assert!(a.body.contains(kept), "{kept:?} kept: {}", a.body);
    }
    // Without the CSRF field, or another session's: 403, nothing made.
    let ok_fields = resolver(&[("can", "render"), ("resolve", "*/*")]);
    let other = sign_in(&api).await;
    for csrf in [None, Some(other.csrf.as_str()), Some("")] {
        let mut fields = ok_fields.clone();
        if let Some(c) = csrf {
            fields.insert(0, ("csrf", c));
        }
        let a = send(
            &api,
            Method::POST,
            "/settings/tokens",
            Some(&who.cookie),
            Some(&fields),
            &[],
        )
        .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{csrf:?}: {}", a.body);
    }
    // A body over the limit is refused before it is read.
    let body = format!(
        "csrf={}&name=big&role=resolver&can=render&resolve={}",
        who.csrf,
        "x".repeat(keyward::http::MAX_BODY + 10)
    );
    let raw = plain()
        .post(format!("{}/settings/tokens", api.base))
        .header(COOKIE, &who.cookie)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("send");
    assert!(raw.status().is_client_error(), "{}", raw.status());
    assert_eq!(token_rows(&api).await.len(), before, "nothing was created");
    // The same form, valid, works: the refusals above were the input's.
    let a = who.post(&api, "/settings/tokens", &ok_fields).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(token_rows(&api).await.len(), before + 1);
}

#[tokio::test]
async fn agent_types_are_managed_in_the_dashboard_and_no_page_shows_a_token() {
    let api = Api::start(super::TestDb::sqlite().await).await;
    let who = sign_in(&api).await;
    let (type_token, rotated, instance_token) = (
        "forge-token-TYPE-0a1b",
        "forge-token-ROTATED-2c3d",
        "forge-token-INSTANCE-4e5f",
    );
    let mut pages = vec![who.get(&api, "/settings/agent-types").await];
    assert!(
        pages[0].body.contains("No agent types yet."),
        "{}",
        pages[0].body
    );
    assert!(
        pages[0].body.contains("href=\"/settings/agent-types\""),
        "the nav links here"
    );
    assert!(
        pages[0]
            .body
            .contains("id=\"type-token\" name=\"token\" type=\"password\" autocomplete=\"off\""),
        "{}",
        pages[0].body
    );
    add_agent_type(&api, &who, "coder", type_token).await;
    let page = who
        .get(&api, "/settings/agent-types/coder?notice=agent-created")
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Agent type added."));
    assert!(page.body.contains("https://forge.example"));
    assert!(
        page.body
            .contains("href=\"/settings/tokens?agent_type=coder#new-token\""),
        "make a token for this agent: {}",
        page.body
    );
    pages.push(page);
    // Rotate the type's token, then give an instance its own.
    for fields in [
        vec![("value", rotated)],
        vec![("value", instance_token), ("instance", "i-7")],
    ] {
        let a = who
            .post(&api, "/settings/agent-types/coder/token", &fields)
            .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        assert_eq!(
            a.location.as_deref(),
            Some("/settings/agent-types/coder?notice=token-set")
        );
        pages.push(
            who.get(&api, a.location.as_deref().expect("location"))
                .await,
        );
    }
    let forges = keyward::forge::Forges::new(api.vault.clone(), None, Default::default());
    let access = keyward::audit::Access::new("test:dashboard", "check").expect("access");
    let value = |instance: Option<&'static str>| {
        let (forges, access) = (forges.clone(), access.clone());
        async move {
            let v = forges
                .agent_token("coder", instance, &access)
                .await
                .expect("token");
            String::from_utf8(v.expose().to_vec()).expect("utf-8")
        }
    };
    assert_eq!(value(None).await, rotated);
    assert_eq!(value(Some("i-7")).await, instance_token);
    let detail = pages.last().expect("page");
    assert!(detail.body.contains("<code>i-7</code>"), "{}", detail.body);
    assert!(
        detail
            .body
            .contains("href=\"/settings/tokens?agent_type=coder&amp;instance=i-7#new-token\""),
        "{}",
        detail.body
    );
    pages.push(who.get(&api, "/settings/agent-types").await);
    // Without a plugin runtime the test dispatch says so, clearly.
    let a = who
        .post(&api, "/settings/agent-types/coder/dispatch", &[])
        .await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.body);
    assert!(
        a.body.contains("The test dispatch failed (503)"),
        "{}",
        a.body
    );
    assert!(a.body.contains("runs no plugin runtime"), "{}", a.body);
    pages.push(a);
    // Remove the override: the instance uses the type's token again.
    let a = who
        .post(
            &api,
            "/settings/agent-types/coder/instances/i-7/delete",
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    pages.push(
        who.get(&api, a.location.as_deref().expect("location"))
            .await,
    );
    assert_eq!(value(Some("i-7")).await, rotated);
    for p in &pages {
        for v in [type_token, rotated, instance_token] {
            assert!(!p.body.contains(v), "a page holds a token: {}", p.body);
        }
    }
    // No page read a token: the only reveals are this test's own.
    let log = api
        .vault
        .history(
            &keyward::names::Scope::parse("agent_type:coder").expect("scope"),
            &keyward::names::SecretName::parse("FORGE_TOKEN").expect("name"),
            &Default::default(),
            100,
        )
        .await
        .expect("history");
    for row in &log.rows {
        assert!(
            row.action != "reveal" || row.accessor == "test:dashboard",
            "{} {} {}",
            row.accessor,
            row.action,
            row.reason
        );
    }
    // Delete, after the confirmation page.
    let confirm = who.get(&api, "/settings/agent-types/coder/delete").await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("Delete for good"));
    let a = who
        .post(&api, "/settings/agent-types/coder/delete", &[])
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(
        a.location.as_deref(),
        Some("/settings/agent-types?notice=agent-deleted")
    );
    assert_eq!(
        who.get(&api, "/settings/agent-types/coder").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn hostile_agent_type_forms_are_refused_and_change_nothing() {
    let api = Api::start(super::TestDb::sqlite().await).await;
    let who = sign_in(&api).await;
    add_agent_type(&api, &who, "coder", "forge-token-KEEP-9f9f").await;
    let long: &'static str = "d".repeat(5000).leak();
    let huge: &'static str = "n".repeat(100_000).leak();
    let add = |extra: &[(&'static str, &'static str)]| {
        let mut f = vec![("forge", "forgejo"), ("base_url", "https://forge.example")];
        f.extend_from_slice(extra);
        f
    };
    let cases: Vec<(&str, Fields, u16)> = vec![
        ("/settings/agent-types", add(&[("name", "a/b")]), 400),
        ("/settings/agent-types", add(&[("name", "")]), 400),
        ("/settings/agent-types", add(&[("name", "<b>x</b>")]), 400),
        ("/settings/agent-types", add(&[("name", huge)]), 400),
        ("/settings/agent-types", add(&[("name", "coder")]), 409),
        (
            "/settings/agent-types",
            add(&[("name", "ok"), ("description", long)]),
            422,
        ),
        (
            "/settings/agent-types",
            vec![
                ("name", "ok"),
                ("forge", "Not A Plugin"),
                ("base_url", "https://forge.example"),
            ],
            400,
        ),
        (
            "/settings/agent-types",
            vec![
                ("name", "ok"),
                ("forge", "forgejo"),
                ("base_url", "ftp://forge.example"),
            ],
            400,
        ),
        // No base URL needs the plugin's default: no runtime here.
        (
            "/settings/agent-types",
            vec![("name", "ok"), ("forge", "forgejo")],
            503,
        ),
        ("/settings/agent-types", vec![("forge", "forgejo")], 400),
        (
            "/settings/agent-types/coder/token",
            vec![("value", "")],
            400,
        ),
        ("/settings/agent-types/coder/token", vec![], 400),
        (
            "/settings/agent-types/coder/token",
            vec![("value", "v"), ("instance", "bad id!")],
            400,
        ),
        (
            "/settings/agent-types/ghost/token",
            vec![("value", "v")],
            404,
        ),
        (
            "/settings/agent-types/coder/instances/i-404/delete",
            vec![],
            404,
        ),
        ("/settings/agent-types/ghost/dispatch", vec![], 404),
        ("/settings/agent-types/ghost/delete", vec![], 404),
    ];
    for (path, fields, want) in &cases {
        let a = who.post(&api, path, fields).await;
        let short: Vec<_> = fields
            .iter()
            .map(|(k, v)| (k, &v[..v.len().min(40)]))
            .collect();
        assert_eq!(
            a.status.as_u16(),
            *want,
            "{path} {short:?}: {}",
            &a.body[..a.body.len().min(3000)]
        );
        assert!(a.body.contains("role=\"alert\""), "{path} {short:?}");
        assert!(!a.body.contains("<b>x</b>"), "escaped");
        assert!(!a.body.contains(&huge[..1000]), "not echoed whole");
        assert!(!a.body.contains("forge-token-KEEP-9f9f"));
    }
    // The refused add form comes back filled in, but never with the token.
    let a = who
        .post(
            &api,
            "/settings/agent-types",
            &add(&[
                ("name", "a/b"),
                ("description", "kept"),
                ("token", "typed-TOKEN-aa11"),
            ]),
        )
        .await;
    assert!(
        a.body.contains("value=\"kept\"") && a.body.contains("value=\"a/b\""),
        "{}",
        a.body
    );
    assert!(!a.body.contains("typed-TOKEN-aa11"), "{}", a.body);
    // Missing CSRF.
    let a = send(
        &api,
        Method::POST,
        "/settings/agent-types",
        Some(&who.cookie),
        Some(&add(&[("name", "sneaky")])),
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    // Hostile paths.
    for path in [
        "/settings/agent-types/..%2F..%2Fetc",
        "/settings/agent-types/%3Cscript%3E",
        "/settings/agent-types/coder?notice=%3Cscript%3E",
        "/settings/tokens?agent_type=%3Cscript%3E&instance=%22%3E",
    ] {
        let a = who.get(&api, path).await;
        assert!(!a.status.is_server_error(), "{path}: {}", a.status);
        assert!(!a.body.contains("<script>"), "{path}: {}", a.body);
    }
    let forges = keyward::forge::Forges::new(api.vault.clone(), None, Default::default());
    let types = forges.agent_types().await.expect("types");
    assert_eq!(types.len(), 1, "only coder");
    assert!(types[0].instances.is_empty());
    let access = keyward::audit::Access::new("test:hostile", "check").expect("access");
    let v = forges
        .agent_token("coder", None, &access)
        .await
        .expect("token");
    assert_eq!(
        v.expose(),
        b"forge-token-KEEP-9f9f",
        "the token is untouched"
    );
}

/// Two operators edit one secret: the form of the one who saves second
/// was rendered from an older version, so saving it is a clear conflict
/// and the first operator's change stands.
#[tokio::test]
async fn a_form_from_an_older_version_is_a_conflict_not_an_overwrite() {
    let api = Api::start(super::TestDb::sqlite().await).await;
    let (alice, bob) = (sign_in(&api).await, sign_in(&api).await);
    let page = "/settings/secrets/GITHUB_TOKEN?scope=global";
    let seen = alice.get(&api, page).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert!(
        seen.body.contains(r#"name="version" value="1""#),
        "the forms carry the version shown: {}",
        seen.body
    );
    // Bob saves first, from his own page at version 1.
    let done = bob
        .post(
            &api,
            "/settings/secrets/GITHUB_TOKEN/replace?scope=global",
            &[("value", "bobs-value-123"), ("version", "1")],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    // Alice's forms still say version 1.
    for (action, field) in [
        ("replace", ("value", "alices-value")),
        ("describe", ("description", "alice's words")),
    ] {
        let refused = alice
            .post(
                &api,
                &format!("/settings/secrets/GITHUB_TOKEN/{action}?scope=global"),
                &[field, ("version", "1")],
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::CONFLICT,
            "{action}: {}",
            refused.body
        );
        assert!(refused.body.contains("is at version 2"), "{}", refused.body);
    }
    let body = serde_json::json!({"template": "${SECRET:GITHUB_TOKEN}", "reason": "check"});
    let (_, rendered, _) = api
        .call(Method::POST, "/render", Some(&api.resolver), Some(body))
        .await;
    assert_eq!(rendered["text"], "bobs-value-123");
    let meta = alice.get(&api, page).await;
    assert!(!meta.body.contains("alice&#39;s words") && !meta.body.contains("alice's words"));
}

/// The rollback pages refuse what is not a kept earlier version, a missing
/// reason and a missing CSRF token, and change nothing when they do.
#[tokio::test]
async fn hostile_rollback_forms_are_refused_and_change_nothing() {
    let api = Api::start(super::TestDb::sqlite().await).await;
    let op = sign_in(&api).await;
    let put = serde_json::json!({"value": "second-value-1234"});
    let (status, _, raw) = api
        .call(
            Method::PUT,
            "/secrets/GITHUB_TOKEN",
            Some(&api.operator),
            Some(put),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    let base = "/settings/secrets/GITHUB_TOKEN";
    let page = op.get(&api, &format!("{base}?scope=global")).await;
    assert!(page.body.contains("Roll back to this"), "{}", page.body);
    assert!(!page.body.contains("second-value-1234") && !page.body.contains(VALUE));
    for (to, want) in [
        ("2", StatusCode::NOT_FOUND),
        ("0", StatusCode::NOT_FOUND),
        ("9", StatusCode::NOT_FOUND),
        ("x", StatusCode::BAD_REQUEST),
    ] {
        let confirm = op
            .get(&api, &format!("{base}/rollback?scope=global&to={to}"))
            .await;
        assert_eq!(confirm.status, want, "to={to}: {}", confirm.body);
    }
    let confirm = op
        .get(&api, &format!("{base}/rollback?scope=global&to=1"))
        .await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(
        confirm.body.contains("It becomes version 3"),
        "{}",
        confirm.body
    );
    let post = format!("{base}/rollback?scope=global");
    for fields in [
        vec![("to", "1")],
        vec![("to", "1"), ("reason", "")],
        vec![("to", "2"), ("reason", "why")],
        vec![("to", "one"), ("reason", "why")],
    ] {
        let refused = op.post(&api, &post, &fields).await;
        assert!(
            refused.status.is_client_error(),
            "{fields:?}: {}",
            refused.status
        );
    }
    // No CSRF token: refused.
    let no_csrf = send(
        &api,
        Method::POST,
        &post,
        Some(&op.cookie),
        Some(&[("to", "1"), ("reason", "why")]),
        &[],
    )
    .await;
    assert!(no_csrf.status.is_client_error(), "{}", no_csrf.status);
    let (_, list, _) = api
        .call(Method::GET, "/secrets", Some(&api.operator), None)
        .await;
    assert_eq!(list[0]["version"], 2, "a refused rollback wrote");
    let done = op
        .post(&api, &post, &[("to", "1"), ("reason", "bad rotation")])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let (_, list, _) = api
        .call(Method::GET, "/secrets", Some(&api.operator), None)
        .await;
    assert_eq!(list[0]["version"], 3);
}

/// The whole access log: filters narrow it, bad filters are refused with a
/// page (not a 500), and the verify button reports an intact chain, then a
/// tampered one with 409.
#[tokio::test]
async fn the_access_log_page_filters_and_verifies() {
    let api = Api::start(super::TestDb::sqlite().await).await;
    let who = sign_in(&api).await;
    let (status, _, raw) = api
        .call(
            reqwest::Method::POST,
            "/render",
            Some(&api.resolver),
            Some(super::render_body()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    let all = who.get(&api, "/settings/access-log").await;
    assert_eq!(all.status, StatusCode::OK);
    assert!(
        all.body.contains("render") && all.body.contains("create"),
        "{}",
        all.body
    );
    let renders = who
        .get(
            &api,
            "/settings/access-log?action=render&outcome=ok&name=GITHUB_TOKEN&scope=global",
        )
        .await;
    assert!(renders.body.contains("render"), "{}", renders.body);
    assert!(!renders.body.contains(">create<"), "{}", renders.body);
    let none = who.get(&api, "/settings/access-log?accessor=nobody").await;
    assert!(none.body.contains("No rows match."), "{}", none.body);
    let today = who
        .get(&api, "/settings/access-log?from=2000-01-01&to=2999-12-31")
        .await;
    assert!(today.body.contains("render"), "{}", today.body);
    let past = who.get(&api, "/settings/access-log?to=2000-01-01").await;
    assert!(past.body.contains("No rows match."), "{}", past.body);
    for bad in [
        "/settings/access-log?from=yesterday",
        "/settings/access-log?to=2026-13-01",
        "/settings/access-log?bogus=1",
        "/settings/access-log?before=x",
    ] {
        let page = who.get(&api, bad).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{bad}: {}", page.body);
        assert!(page.body.contains("role=\"alert\""), "{bad}: {}", page.body);
    }
    let verified = who.post(&api, "/settings/access-log/verify", &[]).await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    assert!(verified.body.contains("chain intact"), "{}", verified.body);
    assert!(
        !verified.body.contains("archive files"),
        "{}",
        verified.body
    );
    // After an archive the count is of the rows after the mark, and the
    // page says where the rest went.
    let archives = tempfile::tempdir().expect("temp dir");
    let archived = api
        .vault
        .archive_before(
            i64::MAX,
            &|first, last| archives.path().join(format!("{first}-{last}.jsonl.gz")),
            &keyward::audit::Access::new("test:archive", "dashboard test").expect("access"),
        )
        .await
        .expect("archive")
        .expect("the lock is free");
    let verified = who.post(&api, "/settings/access-log/verify", &[]).await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    assert!(
        verified.body.contains(&format!(
            "The rows after row {}; rows up to it are in archive files",
            archived.last
        )),
        "{}",
        verified.body
    );

    let head = api.vault.log_head().await.expect("head").seq;
    api._db.drop_append_only_guard().await;
    api._db
        .exec(&format!(
            "UPDATE secret_access_log SET reason = 'forged' WHERE seq = {head}"
        ))
        .await;
    let broken = who.post(&api, "/settings/access-log/verify", &[]).await;
    assert_eq!(broken.status, StatusCode::CONFLICT, "{}", broken.body);
    assert!(
        broken.body.contains(&format!("BROKEN at row {head}")),
        "{}",
        broken.body
    );
}
