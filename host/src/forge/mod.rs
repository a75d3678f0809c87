//! Forges: operators sign in with a forge's OAuth (`oauth`), the host keeps
//! their tokens sealed in `operator_oauth_tokens` with one active forge
//! that every operator forge call goes through (`router`), and agent types
//! get their forge token through the resolver (`agents`). The forge's wire
//! protocol lives in its plugin; this module owns state and order.

pub mod agents;
pub mod config;
pub mod oauth;
pub mod router;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use self::config::{ForgeApp, ForgeApps};
pub use self::oauth::{BrowserNonce, LoginDone, LoginStart};
use crate::auth::Sessions;
use crate::runtime::{PluginError, Runtime};
use crate::vault::{Vault, VaultError};

/// Errors of the forge layer, each with its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// No OAuth app is configured for this forge. (404)
    #[error("no forge {0:?} is configured (see KEYWARD_FORGES_FILE in docs/forges.md)")]
    UnknownForge(String),
    /// No operator has signed in with a forge yet, so there is no active
    /// forge to call (the router's `NoActiveForgeError`). (412)
    #[error(
        "no active forge: an operator must sign in with a forge first (GET /auth/{{forge}}/login)"
    )]
    NoActiveForge,
    /// The sign-in's `state` is unknown, used, expired or for another
    /// forge, or the forge's answer lacks a code. (400)
    #[error("this sign-in is not valid (used, expired or not started here): start again")]
    BadCallback,
    /// The callback did not come with the pre-auth cookie of the browser
    /// that started this sign-in (another browser, or the cookie expired);
    /// the sign-in stays for its own browser. (400)
    #[error(
        "this sign-in was started in another browser (or its cookie expired): start again from this browser"
    )]
    OtherBrowser,
    /// The forge account is not on the forge's operator allow-list, or its
    /// login is pinned to another account id (renamed or recycled). (403)
    #[error("the account {0:?} is not an operator of this Keyward")]
    NotAnOperator(String),
    /// The forge said no to the sign-in (the user denied access, …). (403)
    #[error("the forge refused the sign-in: {0}")]
    Refused(String),
    /// The access token expired and there is no refresh token: an operator
    /// must sign in again. (424)
    #[error("the {0} token expired and cannot be refreshed: sign in again")]
    Expired(String),
    /// Another host is refreshing this token and did not finish in time. (503)
    #[error("the {0} token is being refreshed elsewhere; retry shortly")]
    RefreshBusy(String),
    /// No agent type of this name. (404)
    #[error("no agent type {0:?}")]
    UnknownAgentType(String),
    /// No instance of this id. (404)
    #[error("no instance {0:?} of this agent type")]
    UnknownInstance(String),
    /// An agent type of this name exists. (409)
    #[error("agent type {0:?} exists")]
    AgentTypeExists(String),
    /// The agent type has no token yet. (409)
    #[error("agent type {0:?} has no token: set one with PUT /agent-types/{0}/token")]
    NoToken(String),
    /// Bad input. (400/422)
    #[error("{0}")]
    Invalid(String),
    /// The server runs no plugin runtime. (503)
    #[error("this server runs no plugin runtime")]
    NoRuntime,
    /// The plugin call failed. (its own status)
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The store failed. (its own status)
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// A sealed token did not open (tampered, or an unknown key). (500)
    #[error("a stored forge token could not be opened")]
    Unreadable,
    /// The instance id is taken by another agent type. (409)
    #[error("instance {0:?} belongs to another agent type")]
    InstanceTaken(String),
    /// A concurrent request created the same row first (a unique
    /// constraint said no). (409)
    #[error("another request created or changed the same entry at the same time; try again")]
    Race,
    /// The database failed. (503)
    #[error("database error: {0}")]
    Sql(sqlx::Error),
}

impl From<sqlx::Error> for ForgeError {
    fn from(e: sqlx::Error) -> Self {
        if crate::store::is_unique_violation(&e) {
            ForgeError::Race
        } else {
            ForgeError::Sql(e)
        }
    }
}

impl ForgeError {
    /// The HTTP status for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            ForgeError::UnknownForge(_)
            | ForgeError::UnknownAgentType(_)
            | ForgeError::UnknownInstance(_) => 404,
            ForgeError::NoActiveForge => 412,
            ForgeError::BadCallback | ForgeError::OtherBrowser | ForgeError::Invalid(_) => 400,
            ForgeError::NotAnOperator(_) | ForgeError::Refused(_) => 403,
            ForgeError::Expired(_) => 424,
            ForgeError::AgentTypeExists(_)
            | ForgeError::NoToken(_)
            | ForgeError::InstanceTaken(_)
            | ForgeError::Race => 409,
            ForgeError::RefreshBusy(_) | ForgeError::NoRuntime | ForgeError::Sql(_) => 503,
            ForgeError::Plugin(e) => e.http_status(),
            ForgeError::Vault(e) => e.http_status(),
            ForgeError::Unreadable => 500,
        }
    }
}

/// The forge service: configuration, the plugin runtime, the store.
/// Cheap to clone.
#[derive(Clone)]
pub struct Forges {
    inner: Arc<Inner>,
}

struct Inner {
    vault: Vault,
    runtime: Option<Runtime>,
    apps: ForgeApps,
    sessions: Sessions,
    /// This process's name in refresh leases.
    holder: String,
    /// One refresh at a time per forge within this process; the lease row
    /// does the same across hosts.
    refreshing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Forges {
    /// The service over `vault`, with `runtime` for plugin calls.
    pub fn new(vault: Vault, runtime: Option<Runtime>, apps: ForgeApps) -> Forges {
        let mut id = [0u8; 8];
        crate::crypto::fill_random(&mut id);
        Forges {
            inner: Arc::new(Inner {
                sessions: Sessions::new(vault.db().clone()),
                vault,
                runtime,
                apps,
                holder: format!("host-{}", hex::encode(id)),
                refreshing: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The configured apps.
    pub fn apps(&self) -> &ForgeApps {
        &self.inner.apps
    }

    fn runtime(&self) -> Result<&Runtime, ForgeError> {
        self.inner.runtime.as_ref().ok_or(ForgeError::NoRuntime)
    }

    fn app(&self, forge: &str) -> Result<&ForgeApp, ForgeError> {
        self.inner
            .apps
            .get(forge)
            .ok_or_else(|| ForgeError::UnknownForge(forge.chars().take(64).collect()))
    }

    fn vault(&self) -> &Vault {
        &self.inner.vault
    }

    fn refresh_lock(&self, forge: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.inner
            .refreshing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(forge.to_owned())
            .or_default()
            .clone()
    }
}
