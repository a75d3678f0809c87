//! Forge adapter for Forgejo and Gitea (Codeberg by default).
//!
//! Wire facts: `GET {base}/api/v1/user` with `Authorization: token X` answers
//! `{id, login, full_name, email, …}`; errors are `{"message", "url"}`.

use keyward_plugin_sdk::http::{Request, Response};
use keyward_plugin_sdk::{secret_ref, Account, Error, ForgeAdapter, ForgeInfo};
use serde::Deserialize;

/// The fields of `GET /api/v1/user` this adapter reads.
#[derive(Deserialize)]
struct User {
    id: i64,
    login: String,
    full_name: Option<String>,
    email: Option<String>,
}

impl From<User> for Account {
    fn from(user: User) -> Self {
        Account {
            id: user.id.to_string(),
            login: user.login,
            // Forgejo sends "" for an unset name or a hidden e-mail address.
            name: user.full_name.filter(|s| !s.trim().is_empty()),
            email: user.email.filter(|s| !s.trim().is_empty()),
        }
    }
}

struct Forgejo;

impl ForgeAdapter for Forgejo {
    fn info() -> ForgeInfo {
        ForgeInfo {
            kind: "forgejo".into(),
            display_name: "Forgejo".into(),
            default_base_url: "https://codeberg.org".into(),
        }
    }

    fn whoami(base_url: String, token: String) -> Result<Account, Error> {
        let base = base_url.trim_end_matches('/');
        Request::get(format!("{base}/api/v1/user"))
            // Lower-case `token` is Forgejo's own scheme; the host puts the
            // value in, so this plugin never holds it.
            .header("authorization", format!("token {}", secret_ref(&token)))
            .header("accept", "application/json")
            .send()
            .and_then(Response::error_for_status)
            .and_then(|response| response.json::<User>())
            .map(Account::from)
            .map_err(|e| e.context("forgejo"))
    }
}

keyward_plugin_sdk::export_forge!(Forgejo);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_name_and_email_are_none() {
        let user: User = serde_json::from_str(
            r#"{"id":3,"login":"alice","username":"alice","full_name":"","email":"","is_admin":false}"#,
        )
        .expect("parses");
        let account = Account::from(user);
        assert_eq!(account.id, "3");
        assert_eq!(account.login, "alice");
        assert_eq!((account.name, account.email), (None, None));
    }
}
