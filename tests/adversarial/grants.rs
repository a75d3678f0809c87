//! Grants say how a secret may be used: what the host lends a forge adapter
//! for one call (the token, the OAuth client secret) and what a manifest
//! grants with `use = [...]` travel only in `${SECRET:…}` at egress;
//! `secrets.reveal` on them is refused and logged.

use std::collections::HashMap;

use keyward::runtime::{BaseUrl, OAuthApp, PluginError, ReturnedError, TokenRef};

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
    let sandbox = Sandbox::new(&[PLUGIN], |_, m| m, HashMap::new()).await;
    sandbox.secret(TOKEN, TOKEN_VALUE).await;
    let result = sandbox
        .rt
        .forge_whoami(
            &sandbox.vault,
            PLUGIN,
            &base("reveal-token"),
            &reference(TOKEN),
        )
        .await;
    let why = denied(result);
    assert!(why.contains("outbound requests only"), "{why}");
    refusal_logged(&sandbox, TOKEN).await;
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

#[tokio::test]
async fn a_use_grant_in_a_manifest_does_not_reveal() {
    let lent = "plugin:hostile-forge/token";
    let use_only =
        |_: &str, m: String| format!("{m}\n[grants]\nuse = [\"plugin:hostile-forge/*\"]\n");
    let sandbox = Sandbox::new(&[PLUGIN], use_only, HashMap::new()).await;
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
    denied(result);
    refusal_logged(&sandbox, "token").await;

    // The same reference under a reveal grant is handed over: the refusal
    // above is the grant's kind at work, not a broken fixture.
    let reveal =
        |_: &str, m: String| format!("{m}\n[grants]\nsecrets = [\"plugin:hostile-forge/*\"]\n");
    let sandbox = Sandbox::new(&[PLUGIN], reveal, HashMap::new()).await;
    sandbox.secret(lent, TOKEN_VALUE).await;
    let account = sandbox
        .rt
        .forge_whoami(
            &sandbox.vault,
            PLUGIN,
            &base("reveal-token"),
            &reference(lent),
        )
        .await
        .expect("a reveal grant reveals");
    assert_eq!(account.login.as_bytes(), TOKEN_VALUE);
}
