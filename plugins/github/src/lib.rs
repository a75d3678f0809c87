//! Forge adapter for GitHub (api.github.com by default; GitHub Enterprise
//! Server at `https://HOST/api/v3`).
//!
//! Wire facts: `GET {base}/user` with `Authorization: Bearer X` answers
//! `{login, id, name, email, …}` (`name` and `email` may be null); GitHub
//! refuses requests without a `User-Agent`. Errors are `{"message", …}`.

use keyward_plugin_sdk::http::{Request, Response};
use keyward_plugin_sdk::{secret_ref, Account, Error, ForgeAdapter, ForgeInfo};
use serde::Deserialize;

/// The fields of `GET /user` this adapter reads.
#[derive(Deserialize)]
struct User {
    id: i64,
    login: String,
    name: Option<String>,
    email: Option<String>,
}

impl From<User> for Account {
    fn from(user: User) -> Self {
        Account {
            id: user.id.to_string(),
            login: user.login,
            name: user.name.filter(|s| !s.trim().is_empty()),
            email: user.email.filter(|s| !s.trim().is_empty()),
        }
    }
}

struct GitHub;

impl ForgeAdapter for GitHub {
    fn info() -> ForgeInfo {
        ForgeInfo {
            kind: "github".into(),
            display_name: "GitHub".into(),
            default_base_url: "https://api.github.com".into(),
        }
    }

    fn whoami(base_url: String, token: String) -> Result<Account, Error> {
        let base = base_url.trim_end_matches('/');
        Request::get(format!("{base}/user"))
            .header("authorization", format!("Bearer {}", secret_ref(&token)))
            .header("user-agent", "keyward")
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
            .send()
            .and_then(Response::error_for_status)
            .and_then(|response| response.json::<User>())
            .map(Account::from)
            .map_err(|e| e.context("github"))
    }
}

keyward_plugin_sdk::export_forge!(GitHub);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_name_and_email_are_none() {
        let user: User = serde_json::from_str(
            r#"{"login":"octocat","id":1,"node_id":"MDQ6","name":null,"email":null,"type":"User"}"#,
        )
        .expect("parses");
        let account = Account::from(user);
        assert_eq!(
            (account.id.as_str(), account.login.as_str()),
            ("1", "octocat")
        );
        assert_eq!((account.name, account.email), (None, None));
    }
}
