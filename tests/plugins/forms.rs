//! Secrets expanded into a form body are encoded for it: a client secret or
//! refresh token holding `&`, `=`, `+`, `%` or a space reaches the forge as
//! it is stored, not as a broken or extra form field.

use std::collections::HashMap;

use keyward::names::SecretRef;
use keyward::runtime::{Journal, OAuthApp, TokenRef};

use crate::{access, server, Host};

#[tokio::test]
async fn a_refresh_sends_form_unsafe_secrets_intact() {
    let host = Host::build(&[], true, HashMap::new()).await;
    let client_secret = SecretRef::parse("forge:forgejo/OAUTH_CLIENT_SECRET").expect("ref");
    host.vault
        .create(
            client_secret.scope.as_ref().expect("scoped"),
            &client_secret.name,
            server::FORM_CLIENT_SECRET.as_bytes(),
            "client secret with form-unsafe characters",
            &access(),
        )
        .await
        .expect("create");
    let app = OAuthApp {
        client_id: "keyward-test".into(),
        client_secret: Some(client_secret),
        redirect_uri: "http://127.0.0.1/cb".into(),
    };
    let refresh = keyward::crypto::SecretBytes::new(server::FORM_REFRESH_TOKEN.as_bytes().to_vec());
    let tokens = host
        .rt
        .forge_refresh(
            &host.vault,
            "forgejo",
            &host.base_url(),
            &app,
            TokenRef::Bound(
                SecretRef::parse("operator_oauth:forgejo/REFRESH_TOKEN").expect("ref"),
                refresh,
            ),
            Journal::Keep {
                forge: "forgejo".into(),
                generation: 1,
                attempt: "forms-test".into(),
            },
        )
        .await
        .expect("the forge accepted the refresh: both values arrived intact");
    assert_eq!(tokens.access_token.expose(), b"fresh-access");
}
