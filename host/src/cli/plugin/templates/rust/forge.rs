//! {{name}}: a Keyward forge adapter (world `forge-adapter`).
//!
//! The host calls `whoami` with the forge's base URL and a *reference* to
//! the token: the adapter writes `${SECRET:<reference>}` into its request
//! and the host expands it on the way out, so the token never enters the
//! plugin. This skeleton speaks Forgejo's `GET /api/v1/user`; change the
//! path and the fields for your forge. For operator sign-in, describe the
//! forge's OAuth flow in `oauth()` (`keyward_plugin_sdk::oauth::OauthFlow`:
//! its authorize and token paths, default scopes) and the SDK implements
//! `authorize_url`, `exchange_code` and `refresh`; implement
//! `list_repositories` and `revoke` when it needs them (they answer
//! `unsupported` until then).

use keyward_plugin_sdk::http::Request;
use keyward_plugin_sdk::{secret_ref, Account, ForgeAdapter, ForgeError, ForgeInfo};

/// The forge's answer to whoami, as far as it is read.
#[derive(serde::Deserialize)]
struct User {
    id: u64,
    login: String,
    #[serde(default)]
    full_name: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

struct Plugin;

impl ForgeAdapter for Plugin {
    fn info() -> ForgeInfo {
        ForgeInfo {
            kind: "{{name}}".into(),
            display_name: "{{name}}".into(),
            default_base_url: "https://forge.example".into(),
        }
    }

    fn whoami(base_url: String, token: String) -> Result<Account, ForgeError> {
        let url = format!("{}/api/v1/user", base_url.trim_end_matches('/'));
        let user: User = Request::get(url)
            .header("authorization", format!("token {}", secret_ref(&token)))
            .send_forge()? // a host refusal, or `transport`
            .check()? // 401 → unauthorized, 403 → forbidden, 429 → rate-limited, …
            .parse()?; // unreadable → upstream
        keyward_plugin_sdk::log::info(&format!("whoami: {}", user.login));
        let mut account = Account::new(user.id.to_string(), user.login);
        account.name = user.full_name.filter(|n| !n.is_empty());
        account.email = user.email.filter(|e| !e.is_empty());
        Ok(account)
    }
}

keyward_plugin_sdk::export_forge!(Plugin);
