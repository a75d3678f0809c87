//! Emulated Forgejo, GitHub and GitLab servers for Keyward's tests: one registered OAuth
//! app, accounts, tokens and repositories, answering with each forge's wire shapes and quirks.

// Handlers' helpers return the ready `Response` as their error and hand it straight back.
#![allow(clippy::result_large_err)]

mod authorize;
mod clock;
mod fixture;
mod forgejo;
mod github;
mod gitlab;
mod gitlab_tokens;
mod oauth;
mod paging;
mod params;
mod pkce;
mod record;
mod state;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use pkce::s256 as pkce_s256;
pub use state::GithubLimit;
use state::{lock, Shared, State};

/// Which forge an emulator plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// Forgejo / Gitea: OAuth at `/login/oauth/*`, API at `/api/v1`.
    Forgejo,
    /// GitHub Enterprise layout: OAuth at `/login/oauth/*`, API at `/api/v3`.
    Github,
    /// GitLab: OAuth at `/oauth/*`, API at `/api/v4`.
    Gitlab,
}

/// The kinds of GitLab access token an agent may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitlabToken {
    /// A personal access token: the user's own.
    Personal,
    /// A project access token: a bot user that is a member of one project.
    Project,
    /// A group access token: a bot user that is a member of one group.
    Group,
}

impl GitlabToken {
    /// Every kind, personal first.
    pub const ALL: [GitlabToken; 3] = [
        GitlabToken::Personal,
        GitlabToken::Project,
        GitlabToken::Group,
    ];

    fn name(self) -> &'static str {
        match self {
            GitlabToken::Personal => "personal token",
            GitlabToken::Project => "project token",
            GitlabToken::Group => "group token",
        }
    }
}

/// A token the emulator minted and the account it belongs to.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The token.
    pub token: String,
    /// Its account's login (a bot's, for project and group tokens).
    pub login: String,
    /// Its account's id.
    pub user_id: u64,
}

/// One request as the emulator received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The raw query string ("" when none).
    pub query: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// Every header, lowercase names, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body (empty when it was over the 1 MiB limit).
    pub body: Vec<u8>,
}

/// A running emulated forge; the server stops when this is dropped.
pub struct Emulator {
    flavor: Flavor,
    base: String,
    state: Shared,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Emulator {
    /// The one registered OAuth app's client id.
    pub const CLIENT_ID: &'static str = "keyward-test-client";
    /// The one registered OAuth app's client secret.
    pub const CLIENT_SECRET: &'static str = "emulator-client-secret-5f3a";

    /// Binds 127.0.0.1:0 and serves `flavor` on the current tokio runtime.
    pub async fn start(flavor: Flavor) -> Emulator {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0 for the forge emulator");
        let addr = listener.local_addr().expect("the emulator's local address");
        let base = format!("http://{addr}");
        let state: Shared = Arc::new(Mutex::new(State::new(flavor, base.clone())));
        let routes = match flavor {
            Flavor::Forgejo => forgejo::router(),
            Flavor::Github => github::router(),
            Flavor::Gitlab => gitlab::router(),
        };
        let app: Router = routes
            .fallback(record::not_found)
            .layer(DefaultBodyLimit::disable())
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                record::layer,
            ))
            .with_state(state.clone());
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop.await;
                })
                .await;
        });
        Emulator {
            flavor,
            base,
            state,
            shutdown: Some(shutdown),
            task,
        }
    }

    /// The forge this emulator plays.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// `http://127.0.0.1:PORT`, the web root.
    pub fn base_url(&self) -> String {
        self.base.clone()
    }

    /// The API root: `{base}/api/v1`, `{base}/api/v3` or `{base}/api/v4`.
    pub fn api_url(&self) -> String {
        let v = match self.flavor {
            Flavor::Forgejo => "v1",
            Flavor::Github => "v3",
            Flavor::Gitlab => "v4",
        };
        format!("{}/api/{v}", self.base)
    }

    /// The authorize endpoint's URL.
    pub fn authorize_url(&self) -> String {
        match self.flavor {
            Flavor::Gitlab => format!("{}/oauth/authorize", self.base),
            _ => format!("{}/login/oauth/authorize", self.base),
        }
    }

    /// The token endpoint's URL.
    pub fn token_url(&self) -> String {
        match self.flavor {
            Flavor::Gitlab => format!("{}/oauth/token", self.base),
            _ => format!("{}/login/oauth/access_token", self.base),
        }
    }

    /// Sets the app's registered redirect URI (matched exactly).
    pub fn set_redirect_uri(&self, uri: &str) {
        lock(&self.state).redirect_uri = Some(uri.to_owned());
    }

    /// Adds an account.
    pub fn add_user(&self, login: &str, id: u64) {
        lock(&self.state).users.insert(login.to_owned(), id);
    }

    /// Signs the "browser" in as `login`: authorize then approves at once.
    pub fn sign_in_browser_as(&self, login: &str) {
        lock(&self.state).browser = Some(login.to_owned());
    }

    /// Lifetime of tokens issued from now on. `None`: no expiry (and no refresh token on GitHub).
    /// Defaults: Forgejo 3600, GitLab 7200, GitHub `None`.
    pub fn set_access_token_lifetime(&self, secs: Option<u64>) {
        lock(&self.state).lifetime = secs;
    }

    /// Mints a non-expiring personal access token for `login`.
    pub fn personal_token(&self, login: &str) -> String {
        let mut state = lock(&self.state);
        let scopes = match self.flavor {
            Flavor::Forgejo => vec!["all".to_owned()],
            Flavor::Github => vec!["repo".to_owned(), "user".to_owned()],
            Flavor::Gitlab => vec!["api".to_owned(), "read_user".to_owned()],
        };
        state.issue_access(login, scopes, true)
    }

    /// GitLab only: mints a `kind` access token (`glpat-…`) with `scopes`,
    /// expiring at midnight UTC at the start of `expires_on` (`YYYY-MM-DD`).
    /// A personal token belongs to `owner`; a project or group token to a
    /// new bot user (`project_<id>_bot_<hex>`, `group_<id>_bot_<hex>`, as
    /// GitLab names them).
    pub fn gitlab_access_token(
        &self,
        owner: &str,
        kind: GitlabToken,
        scopes: &[&str],
        expires_on: Option<&str>,
    ) -> IssuedToken {
        let mut state = lock(&self.state);
        let login = match kind {
            GitlabToken::Personal => owner.to_owned(),
            GitlabToken::Project => format!("project_42_bot_{}", state.random_hex(16)),
            GitlabToken::Group => format!("group_7_bot_{}", state.random_hex(16)),
        };
        if kind != GitlabToken::Personal {
            let id = 9000 + state.bots.len() as u64;
            state.users.insert(login.clone(), id);
            state.bots.insert(login.clone());
        }
        let expires_on = expires_on.map(|day| {
            let at = clock::date_start(day).expect("expires_on is YYYY-MM-DD");
            (day.to_owned(), at)
        });
        let scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
        let token = state.issue_gitlab_token(&login, kind.name(), scopes, expires_on);
        IssuedToken {
            user_id: state.user_id(&login),
            token,
            login,
        }
    }

    /// GitHub only: the shape of the rate-limit answers `rate_limit_next` asks for.
    pub fn set_github_limit(&self, shape: GithubLimit) {
        lock(&self.state).github_limit = shape;
    }

    /// Gives `login` `count` more repositories, named `repo-000`, `repo-001`, …
    pub fn add_repos(&self, login: &str, count: usize) {
        *lock(&self.state).repos.entry(login.to_owned()).or_default() += count;
    }

    /// Every OAuth access token issued so far now answers 401 (personal tokens keep working).
    pub fn expire_all_access_tokens(&self) {
        for access in lock(&self.state)
            .access
            .values_mut()
            .filter(|a| !a.personal)
        {
            access.expired = true;
        }
    }

    /// The next `n` API requests get the forge's rate-limit answer, saying
    /// to wait `retry_after_secs` (GitHub: per [`Emulator::set_github_limit`]).
    pub fn rate_limit_next(&self, n: usize, retry_after_secs: u64) {
        let mut state = lock(&self.state);
        state.rate_limited = n;
        state.retry_after = retry_after_secs;
    }

    /// GitHub only: the next API request is rate-limited in `shape`, with
    /// `status` (403 or 429), saying to wait `retry_after_secs`.
    pub fn github_limit_next(&self, shape: GithubLimit, status: u16, retry_after_secs: u64) {
        self.set_github_limit(shape);
        self.set_rate_limit_status(status);
        self.rate_limit_next(1, retry_after_secs);
    }

    /// GitHub only: answer rate-limited requests with 403 (default) or 429.
    pub fn set_rate_limit_status(&self, status: u16) {
        lock(&self.state).rate_limit_status = status;
    }

    /// Delays every token-endpoint answer by `d`.
    pub fn set_token_endpoint_delay(&self, d: Duration) {
        lock(&self.state).token_delay = d;
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.state).requests.clone()
    }

    /// How many `grant_type=refresh_token` requests arrived (successful or not).
    pub fn refresh_requests(&self) -> usize {
        lock(&self.state).refresh_requests
    }

    /// Tokens revoked through the revoke endpoint, in order.
    pub fn revoked(&self) -> Vec<String> {
        lock(&self.state).revoked.clone()
    }

    /// `login`'s OAuth access tokens that would still be accepted, oldest first.
    pub fn live_access_tokens(&self, login: &str) -> Vec<String> {
        let state = lock(&self.state);
        let mut live: Vec<_> = state
            .access
            .iter()
            .filter(|(t, a)| a.login == login && !a.personal && state.check_access(t).is_ok())
            .map(|(t, a)| (a.seq, t.clone()))
            .collect();
        live.sort();
        live.into_iter().map(|(_, t)| t).collect()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.abort();
    }
}

/// Sleeps for the configured token-endpoint delay (never holding the lock).
async fn token_delay(shared: &Shared) {
    let delay = lock(shared).token_delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}
