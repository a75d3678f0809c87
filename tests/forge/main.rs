//! Forges end to end: a real Keyward server with the built-in forge plugins
//! (built from source) against the emulated Forgejo, GitHub and GitLab of
//! tests/forge-emulator. Operator sign-in, the active-forge router with its
//! one-refresh rule (also across two hosts on PostgreSQL), agent types whose
//! rotated token reaches the next dispatch, and a drop-in forge plugin.

#[path = "../support/mod.rs"]
mod support;

/// The emulated forge of a lower-case name (`forgejo`, `github`, `gitlab`).
macro_rules! flavor {
    (forgejo) => {
        forge_emulator::Flavor::Forgejo
    };
    (github) => {
        forge_emulator::Flavor::Github
    };
    (gitlab) => {
        forge_emulator::Flavor::Gitlab
    };
}

/// One test per named forge of `check(Flavor)`, in a module named after the
/// check: `per_forge!(signs_in: forgejo, github);` runs
/// `signs_in::forgejo` and `signs_in::github`.
macro_rules! per_forge {
    ($check:ident: $($forge:ident),+) => {
        mod $check {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $forge() {
                    super::$check(flavor!($forge)).await;
                }
            )+
        }
    };
}

#[path = "../plugins/fixtures.rs"]
#[allow(dead_code)]
mod fixtures;

mod agents;
mod refresh;
mod signin;
mod tokens;

use std::time::Duration;

use forge_emulator::{Emulator, Flavor};
use keyward::audit::Access;
use keyward::auth::{Role, Tokens};
use keyward::forge::{ForgeApps, Forges};
use keyward::names::{Scope, SecretName};
use keyward::runtime::{Options, Runtime};
use keyward::vault::Vault;
use reqwest::{Client, StatusCode};
use serde_json::Value;
use support::{TestDb, TestKey};

/// The plugin name of each emulated forge.
pub fn plugin_of(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::Forgejo => "forgejo",
        Flavor::Github => "github",
        Flavor::Gitlab => "gitlab",
    }
}

/// The reference of a forge's client secret in the store.
pub fn client_secret_ref(forge: &str) -> String {
    format!("forge:{forge}/OAUTH_CLIENT_SECRET")
}

/// One Keyward host: a store, a runtime with the built-in plugins (and a
/// drop-in folder), forges configured for the given emulators, served on
/// 127.0.0.1.
pub struct Host {
    pub base: String,
    pub client: Client,
    pub vault: Vault,
    pub rt: Runtime,
    pub forges: Forges,
    pub operator: String,
    pub resolver: String,
    pub plugins: tempfile::TempDir,
}

/// Forge `name` (a plugin) configured against `emulator`.
pub struct ForgeSetup<'a> {
    pub name: &'a str,
    pub emulator: &'a Emulator,
    pub operators: &'a [&'a str],
}

pub fn access() -> Access {
    Access::new("test:forge", "forge test").expect("access")
}

impl Host {
    /// A host over `db` with one forge, `name` (a plugin) against
    /// `emulator`, signing in `operators`: what most tests need.
    pub async fn one_forge(
        db: &TestDb,
        name: &str,
        emulator: &Emulator,
        operators: &[&str],
    ) -> Host {
        let setup = ForgeSetup {
            name,
            emulator,
            operators,
        };
        Host::start(db, &TestKey::new(), &[setup]).await
    }

    /// A host over `db` (a fresh vault opened with `key`).
    pub async fn start(db: &TestDb, key: &TestKey, setups: &[ForgeSetup<'_>]) -> Host {
        let vault = db.open(key).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let base = format!("http://{addr}");
        let mut toml = String::new();
        for s in setups {
            let secret = client_secret_ref(s.name);
            let (scope, name) = secret.split_once('/').expect("scoped");
            // Several hosts share one database: the first one stores it.
            let _ = vault
                .create(
                    &Scope::parse(scope).expect("scope"),
                    &SecretName::parse(name).expect("name"),
                    Emulator::CLIENT_SECRET.as_bytes(),
                    "OAuth client secret",
                    &access(),
                )
                .await;
            let redirect = format!("{base}/auth/{}/callback", s.name);
            // Every host's redirect URI is registered; the emulator holds
            // one, so hosts sharing an emulator use the first host's.
            if s.emulator.requests().is_empty() {
                s.emulator.set_redirect_uri(&redirect);
            }
            let operators: Vec<String> = s.operators.iter().map(|o| format!("{o:?}")).collect();
            toml.push_str(&format!(
                "[forge.{}]\nclient_id = {:?}\nclient_secret = {:?}\nbase_url = {:?}\noperators = [{}]\n\n",
                s.name,
                Emulator::CLIENT_ID,
                secret,
                s.emulator.base_url(),
                operators.join(", ")
            ));
        }
        let apps = ForgeApps::parse(&toml, &base).expect("forges config parses");
        let plugins = tempfile::tempdir().expect("temp dir");
        let rt = Runtime::start(Options {
            plugins_dir: Some(plugins.path().to_path_buf()),
            cache_dir: Some(fixtures::root().join("target").join("plugin-test-cache")),
            builtins: true,
            hosts: Default::default(),
        })
        .expect("runtime starts");
        let forges = Forges::new(vault.clone(), Some(rt.clone()), apps);
        let tokens = Tokens::new(vault.db().clone());
        let (_, op) = tokens.create("ops", Role::Operator).await.expect("token");
        let (_, res) = tokens.create("agent", Role::Resolver).await.expect("token");
        let app = keyward::http::router_with(
            vault.clone(),
            Some(rt.clone()),
            Some(forges.clone()),
            Default::default(),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Host {
            base,
            client: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            vault,
            rt,
            forges,
            operator: op.expose().to_owned(),
            resolver: res.expose().to_owned(),
            plugins,
        }
    }

    /// A JSON call with a bearer token.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let resp = req.send().await.expect("send");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json, headers)
    }

    /// [`call`](Host::call) with the operator's token.
    pub async fn as_operator(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        self.call(method, path, &self.operator, body).await
    }

    /// `POST /agent-types/{name}/{call}` (`token` or `dispatch`) as the
    /// resolver: the status and the body.
    pub async fn for_agent(&self, name: &str, call: &str, body: Value) -> (StatusCode, Value) {
        let path = format!("/agent-types/{name}/{call}");
        let (status, body, _) = self
            .call(reqwest::Method::POST, &path, &self.resolver, Some(body))
            .await;
        (status, body)
    }

    /// `POST /agent-types` as the operator: the status and the body.
    pub async fn new_agent_type(&self, body: Value) -> (StatusCode, Value) {
        let (status, body, _) = self
            .as_operator(reqwest::Method::POST, "/agent-types", Some(body))
            .await;
        (status, body)
    }

    /// `GET /auth/{forge}/login`, as a browser starting a sign-in.
    pub async fn login(&self, forge: &str) -> reqwest::Response {
        self.client
            .get(format!("{}/auth/{forge}/login", self.base))
            .send()
            .await
            .expect("login")
    }

    /// The whole browser round trip of a sign-in with `forge`: Keyward's
    /// login route, the forge's authorize page (which approves for the
    /// browser's user), the callback. Answers the callback's status and
    /// the session cookie it set.
    pub async fn sign_in(&self, forge: &str) -> (StatusCode, Option<String>, String) {
        let resp = self.login(forge).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "login redirects");
        let browser = set_cookie(&resp);
        let authorize = location(&resp);
        let resp = self.client.get(&authorize).send().await.expect("authorize");
        assert!(
            resp.status().is_redirection(),
            "the forge approves with a redirect: {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
        let callback = location(&resp);
        assert!(
            callback.starts_with(&format!("{}/auth/{forge}/callback?", self.base)),
            "{callback}"
        );
        self.follow_callback_from(&callback, browser.as_deref())
            .await
    }

    /// GET on a callback URL from a browser without cookies: status,
    /// session cookie, body.
    pub async fn follow_callback(&self, url: &str) -> (StatusCode, Option<String>, String) {
        self.follow_callback_from(url, None).await
    }

    /// GET on a callback URL from a browser holding `cookie` (the pre-auth
    /// cookie its login set): status, session cookie, body.
    pub async fn follow_callback_from(
        &self,
        url: &str,
        cookie: Option<&str>,
    ) -> (StatusCode, Option<String>, String) {
        let mut req = self.client.get(url);
        if let Some(c) = cookie {
            req = req.header(reqwest::header::COOKIE, c);
        }
        let resp = req.send().await.expect("callback");
        let status = resp.status();
        let cookie = resp
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .find(|c| c.contains("session"))
            .map(str::to_owned);
        (status, cookie, resp.text().await.unwrap_or_default())
    }

    /// `GET /me` with a cookie.
    pub async fn me(&self, cookie: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.client.get(format!("{}/me", self.base));
        if let Some(c) = cookie {
            req = req.header(reqwest::header::COOKIE, c);
        }
        let resp = req.send().await.expect("me");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// The first cookie a response sets (`name=value`), if any.
pub fn set_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

/// The `Location` of a redirect, absolute.
pub fn location(resp: &reqwest::Response) -> String {
    let loc = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .expect("a Location header")
        .to_owned();
    resp.url().join(&loc).expect("a URL").to_string()
}

/// An emulator with the operator `alice` (and `eve`, who is no operator),
/// the browser signed in as `who`.
pub async fn emulator(flavor: Flavor, who: &str) -> Emulator {
    let emu = Emulator::start(flavor).await;
    emu.add_user("alice", 1001);
    emu.add_user("eve", 1002);
    emu.add_user("bot", 1003);
    emu.sign_in_browser_as(who);
    emu
}
