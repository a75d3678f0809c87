//! The store suite: every test here runs once on SQLite and once on a real
//! PostgreSQL server (see `on_both_backends!`).

#[path = "../support/mod.rs"]
mod support;

mod access_log;
mod agents;
mod cas;
mod crud;
mod deletion;
mod forge;
mod handles;
mod keyring;
mod migrate;
mod oauth;
mod sealing;
mod sessions;
mod templates;
mod tokens;
mod versions;

use keyward::audit::Access;
use keyward::names::{Scope, SecretName, SecretRef};

pub fn access() -> Access {
    Access::new("test:suite", "integration test").expect("valid access")
}

pub fn name(text: &str) -> SecretName {
    SecretName::parse(text).expect("valid name")
}

pub fn scope(text: &str) -> Scope {
    Scope::parse(text).expect("valid scope")
}

pub fn reference(text: &str) -> SecretRef {
    SecretRef::parse(text).expect("valid reference")
}

/// Reveals `text` (`NAME` or `SCOPE/NAME`) with no context, as the test suite.
pub async fn reveal(
    vault: &keyward::vault::Vault,
    text: &str,
) -> Result<(Scope, keyward::crypto::SecretBytes), keyward::vault::VaultError> {
    vault
        .reveal(
            &reference(text),
            &Default::default(),
            &access(),
            keyward::audit::Action::Reveal,
        )
        .await
}

/// Rows of the access log as (action, outcome, scope, name) for assertions.
pub async fn log_summary(vault: &keyward::vault::Vault) -> Vec<(String, String, String, String)> {
    vault
        .log_tail(10_000)
        .await
        .expect("tail")
        .into_iter()
        .map(|r| (r.action, r.outcome, r.scope, r.name))
        .collect()
}
