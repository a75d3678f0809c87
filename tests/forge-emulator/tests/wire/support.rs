//! Shared helpers: a client that never follows redirects, a ready emulator, the code flow.

use forge_emulator::{pkce_s256, Emulator, Flavor};
use reqwest::header::{ACCEPT, LOCATION, USER_AGENT};
use serde_json::Value;

pub const REDIRECT: &str = "http://127.0.0.1:9/callback";
pub const VERIFIER: &str = "dBjftJeZ4CVP-mJ0kzrJDAqCDJBQ7kg8LGFRmMT7SQ4-verifier";
pub const ALL: [Flavor; 3] = [Flavor::Forgejo, Flavor::Github, Flavor::Gitlab];

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// An emulator with user alice (id 7), the redirect URI registered and the browser signed in.
pub async fn ready(flavor: Flavor) -> Emulator {
    let emu = Emulator::start(flavor).await;
    emu.set_redirect_uri(REDIRECT);
    emu.add_user("alice", 7);
    emu.sign_in_browser_as("alice");
    emu
}

pub fn scope(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::Forgejo => "read:user read:repository",
        Flavor::Github => "repo read:user",
        Flavor::Gitlab => "read_user api",
    }
}

/// The authorize query with `overrides` replacing (or, with "", removing) defaults.
pub fn authorize_query(emu: &Emulator, overrides: &[(&str, &str)]) -> String {
    let challenge = pkce_s256(VERIFIER);
    let mut pairs = vec![
        ("client_id", Emulator::CLIENT_ID.to_owned()),
        ("redirect_uri", REDIRECT.to_owned()),
        ("response_type", "code".to_owned()),
        ("state", "st-123".to_owned()),
        ("scope", scope(emu.flavor()).to_owned()),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256".to_owned()),
    ];
    for (k, v) in overrides {
        pairs.retain(|(name, _)| name != k);
        if !v.is_empty() {
            pairs.push((k, (*v).to_owned()));
        }
    }
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// GET authorize; returns (status, Location query pairs).
pub async fn authorize(
    emu: &Emulator,
    overrides: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, String) {
    let url = format!(
        "{}?{}",
        emu.authorize_url(),
        authorize_query(emu, overrides)
    );
    let r = client().get(url).send().await.expect("authorize");
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let pairs = url::Url::parse(&location)
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default();
    (status, pairs, location)
}

pub fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A fresh code from the signed-in browser.
pub async fn code(emu: &Emulator) -> String {
    let (status, pairs, _) = authorize(emu, &[]).await;
    assert_eq!(status, 302);
    assert_eq!(get(&pairs, "state"), Some("st-123"));
    get(&pairs, "code").expect("code").to_owned()
}

/// POSTs a form to the token endpoint (with `Accept: application/json`); returns (status, body).
pub async fn token(emu: &Emulator, pairs: &[(&str, &str)]) -> (u16, Value) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let r = client()
        .post(emu.token_url())
        .header(ACCEPT, "application/json")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("token");
    let status = r.status().as_u16();
    let bytes = r.bytes().await.expect("token body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The standard code exchange.
pub async fn exchange(emu: &Emulator, code: &str) -> (u16, Value) {
    token(
        emu,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", Emulator::CLIENT_ID),
            ("client_secret", Emulator::CLIENT_SECRET),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
}

/// A refresh with the standard client credentials.
pub async fn refresh(emu: &Emulator, refresh_token: &str) -> (u16, Value) {
    token(
        emu,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("redirect_uri", REDIRECT),
            ("client_id", Emulator::CLIENT_ID),
            ("client_secret", Emulator::CLIENT_SECRET),
        ],
    )
    .await
}

/// GET `{api}{path}` with a bearer token (and a User-Agent).
pub async fn api_get(emu: &Emulator, path: &str, token: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", emu.api_url()))
        .bearer_auth(token)
        .header(USER_AGENT, "keyward-test")
        .send()
        .await
        .expect("api")
}

pub fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_default()
}
