//! Forge adapter for GitLab (gitlab.com by default, or a self-managed
//! instance).
//!
//! Wire facts: `GET {base}/api/v4/user` with `Authorization: Bearer X`
//! answers `{id, username, name, email, …}`; errors are `{"message"}` or, for
//! OAuth token problems, `{"error", "error_description"}`.

use keyward_plugin_sdk::http::{Request, Response};
use keyward_plugin_sdk::{secret_ref, Account, Error, ForgeAdapter, ForgeInfo};
use serde::Deserialize;

/// The fields of `GET /api/v4/user` this adapter reads.
#[derive(Deserialize)]
struct User {
    id: i64,
    username: String,
    name: Option<String>,
    email: Option<String>,
}

impl From<User> for Account {
    fn from(user: User) -> Self {
        Account {
            id: user.id.to_string(),
            login: user.username,
            name: user.name.filter(|s| !s.trim().is_empty()),
            email: user.email.filter(|s| !s.trim().is_empty()),
        }
    }
}

struct GitLab;

impl ForgeAdapter for GitLab {
    fn info() -> ForgeInfo {
        ForgeInfo {
            kind: "gitlab".into(),
            display_name: "GitLab".into(),
            default_base_url: "https://gitlab.com".into(),
        }
    }

    fn whoami(base_url: String, token: String) -> Result<Account, Error> {
        let base = base_url.trim_end_matches('/');
        Request::get(format!("{base}/api/v4/user"))
            .header("authorization", format!("Bearer {}", secret_ref(&token)))
            .header("accept", "application/json")
            .send()
            .and_then(Response::error_for_status)
            .and_then(|response| response.json::<User>())
            .map(Account::from)
            .map_err(|e| e.context("gitlab"))
    }
}

keyward_plugin_sdk::export_forge!(GitLab);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_is_the_login() {
        let user: User = serde_json::from_str(
            r#"{"id":42,"username":"bob","name":"Bob","state":"active","email":"bob@example.com","bot":false}"#,
        )
        .expect("parses");
        let account = Account::from(user);
        assert_eq!((account.id.as_str(), account.login.as_str()), ("42", "bob"));
        assert_eq!(account.name.as_deref(), Some("Bob"));
        assert_eq!(account.email.as_deref(), Some("bob@example.com"));
    }
}
