//! Forge adapter for Forgejo and Gitea (Codeberg by default).
//!
//! The wire protocol, and the adapter built from it, live in the SDK
//! (`keyward_plugin_sdk::forgejo`) so that any Forgejo-compatible forge can
//! reuse them; see there for the wire facts. This crate is its description
//! and default scopes. Forgejo has no OAuth revoke endpoint and reports no
//! scopes.

use keyward_plugin_sdk::oauth::OauthFlow;
use keyward_plugin_sdk::{forgejo, ForgeInfo};

struct Forgejo;

impl forgejo::Site for Forgejo {
    fn info() -> ForgeInfo {
        ForgeInfo::new("forgejo", "Forgejo", "https://codeberg.org")
    }

    fn oauth() -> OauthFlow {
        // Enough for whoami and the repository list.
        forgejo::OAUTH.default_scopes(&["read:user", "read:repository"])
    }
}

keyward_plugin_sdk::export_forge!(forgejo::Adapter<Forgejo>);

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_plugin_sdk::{ForgeAdapter, OauthApp};

    #[test]
    fn default_scopes_apply_when_none_are_asked() {
        let app = OauthApp {
            client_id: "c".into(),
            client_secret: None,
            redirect_uri: "https://k/cb".into(),
        };
        let url = forgejo::Adapter::<Forgejo>::authorize_url(
            "https://f".into(),
            app,
            "s".into(),
            "x".into(),
            vec![],
        )
        .expect("url");
        assert!(
            url.contains("&scope=read%3Auser%20read%3Arepository&"),
            "{url}"
        );
    }
}
