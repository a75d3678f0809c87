//! Everything an emulator remembers: accounts, codes, tokens, knobs, the request log.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::clock::unix_now;
use crate::{Flavor, Recorded};

/// The state every handler shares.
pub(crate) type Shared = Arc<Mutex<State>>;

/// Locks the state; a panicked test thread must not wedge the server.
pub(crate) fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A PKCE challenge as sent to the authorize endpoint.
#[derive(Clone)]
pub(crate) struct Challenge {
    pub value: String,
    pub method: String,
}

/// An authorization code waiting to be exchanged.
pub(crate) struct Code {
    pub login: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub challenge: Option<Challenge>,
    pub scopes: Vec<String>,
    pub issued: Instant,
    pub used: bool,
}

/// An access token (OAuth or personal).
pub(crate) struct Access {
    pub login: String,
    pub scopes: Vec<String>,
    pub created_at: u64,
    pub expires_at: Option<u64>,
    pub personal: bool,
    pub expired: bool,
    pub seq: u64,
    /// GitLab's record of a personal, project or group access token.
    pub pat: Option<PatRecord>,
}

/// What GitLab's `/personal_access_tokens/self` tells about a token.
#[derive(Clone)]
pub(crate) struct PatRecord {
    pub id: u64,
    pub name: String,
    /// The expiry date as GitLab gives it (`YYYY-MM-DD`), if any.
    pub expires_on: Option<String>,
}

/// The shape of GitHub's next rate-limit answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GithubLimit {
    /// Primary: `x-ratelimit-remaining: 0` and `x-ratelimit-reset` (now + the wait).
    Primary,
    /// Secondary with `retry-after` (the wait).
    SecondaryRetryAfter,
    /// Secondary with only its message: requests left, no `retry-after`.
    SecondaryMessageOnly,
}

/// A refresh token and what it was issued with.
pub(crate) struct Refresh {
    pub login: String,
    pub scopes: Vec<String>,
    pub redirect_uri: String,
    pub used: bool,
    pub access: String,
}

/// Why a presented access token is not accepted.
pub(crate) enum TokenProblem {
    Unknown,
    Expired,
}

/// A freshly issued token pair.
pub(crate) struct Grant {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: Option<u64>,
    pub scopes: Vec<String>,
    pub created_at: u64,
}

/// The emulator's whole memory.
pub(crate) struct State {
    pub flavor: Flavor,
    pub base: String,
    pub redirect_uri: Option<String>,
    pub users: BTreeMap<String, u64>,
    pub browser: Option<String>,
    pub lifetime: Option<u64>,
    pub codes: HashMap<String, Code>,
    pub access: HashMap<String, Access>,
    pub refresh: HashMap<String, Refresh>,
    pub repos: BTreeMap<String, usize>,
    pub rate_limited: usize,
    pub retry_after: u64,
    pub rate_limit_status: u16,
    pub github_limit: GithubLimit,
    pub bots: std::collections::BTreeSet<String>,
    pub token_delay: Duration,
    pub requests: Vec<Recorded>,
    pub refresh_requests: usize,
    pub revoked: Vec<String>,
    pub api_calls: u64,
    seq: u64,
}

impl State {
    /// A fresh emulator with each forge's default token lifetime.
    pub fn new(flavor: Flavor, base: String) -> Self {
        let lifetime = match flavor {
            Flavor::Forgejo => Some(3600),
            Flavor::Github => None,
            Flavor::Gitlab => Some(7200),
        };
        State {
            flavor,
            base,
            redirect_uri: None,
            users: BTreeMap::new(),
            browser: None,
            lifetime,
            codes: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            repos: BTreeMap::new(),
            rate_limited: 0,
            retry_after: 0,
            rate_limit_status: 403,
            github_limit: GithubLimit::Primary,
            bots: Default::default(),
            token_delay: Duration::ZERO,
            requests: Vec::new(),
            refresh_requests: 0,
            revoked: Vec::new(),
            api_calls: 0,
            seq: 0,
        }
    }

    /// Random hex of `bytes` bytes; falls back to a hash of a counter and the clock.
    pub fn random_hex(&mut self, bytes: usize) -> String {
        self.seq += 1;
        let mut buf = vec![0u8; bytes];
        if getrandom::getrandom(&mut buf).is_err() {
            let mut out = Vec::new();
            let mut round = 0u64;
            while out.len() < bytes {
                let mut h = Sha256::new();
                h.update(self.seq.to_le_bytes());
                h.update(round.to_le_bytes());
                h.update(format!("{:?}", Instant::now()).as_bytes());
                out.extend_from_slice(&h.finalize());
                round += 1;
            }
            out.truncate(bytes);
            buf = out;
        }
        hex::encode(buf)
    }

    fn new_access_token(&mut self, personal: bool) -> String {
        match (self.flavor, personal) {
            (Flavor::Github, true) => format!("ghp_{}", self.random_hex(18)),
            (Flavor::Github, false) if self.lifetime.is_some() => {
                format!("ghu_{}", self.random_hex(18))
            }
            (Flavor::Github, false) => format!("gho_{}", self.random_hex(18)),
            (Flavor::Gitlab, true) => format!("glpat-{}", self.random_hex(10)),
            (Flavor::Gitlab, false) => self.random_hex(32),
            (Flavor::Forgejo, true) => self.random_hex(20),
            (Flavor::Forgejo, false) => self.random_hex(32),
        }
    }

    /// Mints an access token for `login`.
    pub fn issue_access(&mut self, login: &str, scopes: Vec<String>, personal: bool) -> String {
        let token = self.new_access_token(personal);
        let created_at = unix_now();
        let expires_at = if personal {
            None
        } else {
            self.lifetime.map(|l| created_at + l)
        };
        let seq = self.seq;
        self.access.insert(
            token.clone(),
            Access {
                login: login.to_owned(),
                scopes,
                created_at,
                expires_at,
                personal,
                expired: false,
                seq,
                // GitLab keeps a record of every non-OAuth token.
                pat: (personal && self.flavor == Flavor::Gitlab).then(|| PatRecord {
                    id: seq,
                    name: "emulated token".to_owned(),
                    expires_on: None,
                }),
            },
        );
        token
    }

    /// Mints a GitLab personal, project or group access token for `login`
    /// with `scopes`, expiring at midnight UTC at the start of `expires_on`
    /// (`YYYY-MM-DD`, at `expires_at` Unix seconds), as GitLab's do.
    pub fn issue_gitlab_token(
        &mut self,
        login: &str,
        name: &str,
        scopes: Vec<String>,
        expires_on: Option<(String, u64)>,
    ) -> String {
        let token = self.issue_access(login, scopes, true);
        if let Some(access) = self.access.get_mut(&token) {
            access.expires_at = expires_on.as_ref().map(|(_, at)| *at);
            if let Some(pat) = access.pat.as_mut() {
                pat.name = name.to_owned();
                pat.expires_on = expires_on.map(|(day, _)| day);
            }
        }
        token
    }

    /// Issues an OAuth pair (a refresh token unless GitHub without expiry).
    pub fn issue_grant(&mut self, login: &str, scopes: Vec<String>, redirect_uri: &str) -> Grant {
        let access_token = self.issue_access(login, scopes.clone(), false);
        let created_at = unix_now();
        let wants_refresh = self.flavor != Flavor::Github || self.lifetime.is_some();
        let refresh_token = wants_refresh.then(|| {
            let token = match self.flavor {
                Flavor::Github => format!("ghr_{}", self.random_hex(38)),
                _ => self.random_hex(32),
            };
            self.refresh.insert(
                token.clone(),
                Refresh {
                    login: login.to_owned(),
                    scopes: scopes.clone(),
                    redirect_uri: redirect_uri.to_owned(),
                    used: false,
                    access: access_token.clone(),
                },
            );
            token
        });
        Grant {
            access_token,
            refresh_token,
            expires_in: self.lifetime,
            scopes,
            created_at,
        }
    }

    /// The live access token `token`, or why it is refused.
    pub fn check_access(&self, token: &str) -> Result<&Access, TokenProblem> {
        let access = self.access.get(token).ok_or(TokenProblem::Unknown)?;
        let timed_out = access.expires_at.is_some_and(|at| at <= unix_now());
        if access.expired || timed_out {
            return Err(TokenProblem::Expired);
        }
        Ok(access)
    }

    /// How many repositories `login` has (0 for a login never given any).
    pub fn repo_count(&self, login: &str) -> usize {
        self.repos.get(login).copied().unwrap_or(0)
    }

    /// The user id for `login` (0 for a login never added).
    pub fn user_id(&self, login: &str) -> u64 {
        self.users.get(login).copied().unwrap_or(0)
    }
}
