//! Grants say how a secret may be used: what the host lends a forge adapter
//! for one call (the token, the OAuth client secret) and what a manifest
//! grants with `use = [...]` travel only in `${SECRET:…}` at egress;
//! `secrets.reveal` on them is refused and logged.

use std::collections::HashMap;

use keyward::runtime::{Account, BaseUrl, OAuthApp, PluginError, ReturnedError, TokenRef};

use crate::harness::{reference, Sandbox};

const PLUGIN: &str = "hostile-forge";
const TOKEN: &str = "FORGE_TOKEN";
const TOKEN_VALUE: &[u8] = b"fjt_lent-not-given-0123456789";

fn base(attack: &str) -> BaseUrl {
    BaseUrl::parse(&format!("http://127.0.0.1:9/{attack}")).expect("base URL")
}

fn denied(result: Result<impl std::fmt::Debug, PluginError>) -> String {
    match result {
        Err(PluginError::Returned {
            error: ReturnedError::Denied(why),
            ..
        }) => why,
        other => panic!("expected a denial, got {other:?}"),
    }
}

/// Asserts the log holds a denied `reveal` of `name` by the plugin and no
/// reveal of it that succeeded.
async fn refusal_logged(sandbox: &Sandbox, name: &str) {
    let rows = sandbox.rows_of(PLUGIN).await;
    assert!(
        rows.iter()
            .any(|r| r.action == "reveal" && r.outcome == "denied" && r.name == name),
        "{rows:?}"
    );
    assert!(
        !rows
            .iter()
            .any(|r| r.action == "reveal" && r.outcome == "ok"),
        "{rows:?}"
    );
}

#[tokio::test]
async fn a_forge_adapter_cannot_reveal_the_token_it_was_lent() {
    let (sandbox, result) = reveal_under("").await;
    let why = denied(result);
    assert!(why.contains("outbound requests only"), "{why}");
    refusal_logged(&sandbox, "token").await;
}

#[tokio::test]
async fn a_forge_adapter_cannot_reveal_the_oauth_client_secret() {
    let sandbox = Sandbox::new(&[PLUGIN], |_, m| m, HashMap::new()).await;
    sandbox.secret(TOKEN, TOKEN_VALUE).await;
    sandbox
        .secret(
            "plugin:hostile-forge/client-secret",
            b"client-secret-never-seen",
        )
        .await;
    let app = OAuthApp {
        client_id: "app".into(),
        client_secret: Some(reference("plugin:hostile-forge/client-secret")),
        redirect_uri: "http://127.0.0.1:9/callback".into(),
    };
    let result = sandbox
        .rt
        .forge_revoke(
            &sandbox.vault,
            PLUGIN,
            &base("revoke"),
            &app,
            TokenRef::Stored(reference(TOKEN)),
        )
        .await;
    denied(result);
    refusal_logged(&sandbox, "client-secret").await;
}

/// `whoami` of the `reveal-token` attack with `grants` (a manifest table
/// body) added, lending `plugin:hostile-forge/token`.
async fn reveal_under(grants: &'static str) -> (Sandbox, Result<Account, PluginError>) {
    let lent = "plugin:hostile-forge/token";
    let edit = move |_: &str, m: String| format!("{m}\n[grants]\n{grants}\n");
    let sandbox = Sandbox::new(&[PLUGIN], edit, HashMap::new()).await;
    sandbox.secret(lent, TOKEN_VALUE).await;
    let result = sandbox
        .rt
        .forge_whoami(
            &sandbox.vault,
            PLUGIN,
            &base("reveal-token"),
            &reference(lent),
        )
        .await;
    (sandbox, result)
}

#[tokio::test]
async fn a_use_grant_in_a_manifest_does_not_reveal() {
    let (sandbox, result) = reveal_under("use = [\"plugin:hostile-forge/*\"]").await;
    denied(result);
    refusal_logged(&sandbox, "token").await;
    // The same reference under a reveal grant is handed over: the refusal
    // above is the grant's kind at work, not a broken fixture.
    let (_, result) = reveal_under("secrets = [\"plugin:hostile-forge/*\"]").await;
    assert_eq!(
        result.expect("a reveal grant reveals").login.as_bytes(),
        TOKEN_VALUE
    );
}
