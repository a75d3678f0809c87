//! Forge adapter for Forgejo and Gitea (Codeberg by default).
//!
//! The wire protocol lives in the SDK (`keyward_plugin_sdk::forgejo`) so
//! that any Forgejo-compatible forge can reuse it; see there for the wire
//! facts. Forgejo has no OAuth revoke endpoint and reports no scopes.

use keyward_plugin_sdk::{
    forgejo, oauth, Account, ForgeAdapter, ForgeError, ForgeInfo, OauthApp, RepositoryPage,
    TokenSet,
};

/// The prefix of every error message.
const LABEL: &str = "forgejo";

struct Forgejo;

impl ForgeAdapter for Forgejo {
    fn info() -> ForgeInfo {
        ForgeInfo {
            kind: "forgejo".into(),
            display_name: "Forgejo".into(),
            default_base_url: "https://codeberg.org".into(),
        }
    }

    fn authorize_url(
        base_url: String,
        app: OauthApp,
        state: String,
        code_challenge: String,
        scopes: Vec<String>,
    ) -> Result<String, ForgeError> {
        // Enough for whoami and the repository list.
        let scopes = oauth::scopes_or(scopes, &["read:user", "read:repository"]);
        Ok(forgejo::authorize_url(
            &base_url,
            &app,
            &state,
            &code_challenge,
            &scopes,
        ))
    }

    fn exchange_code(
        base_url: String,
        app: OauthApp,
        code: String,
        code_verifier: String,
    ) -> Result<TokenSet, ForgeError> {
        forgejo::exchange_code(LABEL, &base_url, &app, &code, &code_verifier)
    }

    fn refresh(
        base_url: String,
        app: OauthApp,
        refresh_token: String,
    ) -> Result<TokenSet, ForgeError> {
        forgejo::refresh(LABEL, &base_url, &app, &refresh_token)
    }

    fn whoami(base_url: String, token: String) -> Result<Account, ForgeError> {
        forgejo::whoami(LABEL, &base_url, &token)
    }

    fn list_repositories(
        base_url: String,
        token: String,
        cursor: Option<String>,
    ) -> Result<RepositoryPage, ForgeError> {
        forgejo::list_repositories(LABEL, &base_url, &token, cursor.as_deref())
    }

    fn revoke(_base_url: String, _app: OauthApp, _token: String) -> Result<(), ForgeError> {
        forgejo::revoke(LABEL)
    }
}

keyward_plugin_sdk::export_forge!(Forgejo);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_scopes_apply_when_none_are_asked() {
        let app = OauthApp {
            client_id: "c".into(),
            client_secret: None,
            redirect_uri: "https://k/cb".into(),
        };
        let url = Forgejo::authorize_url("https://f".into(), app, "s".into(), "x".into(), vec![])
            .expect("url");
        assert!(
            url.contains("&scope=read%3Auser%20read%3Arepository&"),
            "{url}"
        );
    }
}
