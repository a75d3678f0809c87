//! The operators' OAuth apps, one per forge plugin, from a TOML file
//! (`KEYWARD_FORGES_FILE` / `serve --forges FILE`):
//!
//! ```toml
//! [forge.forgejo]                       # the forge plugin's name
//! client_id = "6c2f…"
//! client_secret = "forge:forgejo/OAUTH_CLIENT_SECRET"   # a secret reference, never the value
//! base_url = "https://codeberg.org"     # default: the plugin's own default
//! redirect_uri = "https://keyward.example/auth/forgejo/callback"  # default: <public URL>/auth/<forge>/callback
//! operators = ["alice", "id:12345"]     # who may sign in: a login (case-insensitive, pinned
//!                                       # to its account id at first sign-in) or id:<account id>
//! scopes = ["read:user"]                # default: the adapter's own
//! ```
//!
//! The file names a secret reference for the client secret, so it holds
//! nothing secret itself. Anything unknown or malformed is refused at start
//! with a message naming the file, the forge and the field.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::names::SecretRef;
use crate::runtime::{manifest::valid_name, BaseUrl, OAuthApp};

/// The most operators one forge may list.
pub const MAX_OPERATORS: usize = 1000;

/// One forge's OAuth app and who may sign in with it.
#[derive(Clone, Debug)]
pub struct ForgeApp {
    /// The forge plugin's name (the table key).
    pub forge: String,
    /// The instance root; none: the plugin's default.
    pub base_url: Option<BaseUrl>,
    /// The OAuth app.
    pub app: OAuthApp,
    /// Allowed operator logins, lower-cased (each pinned to the account id
    /// of its first sign-in).
    pub operators: Vec<String>,
    /// Allowed operator account ids (`id:12345` entries): the forge's
    /// immutable ids, whatever the login is now.
    pub operator_ids: Vec<String>,
    /// Scopes to ask for; empty: the adapter's defaults.
    pub scopes: Vec<String>,
}

/// How an account is on the allow-list.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// An `id:` entry names its id.
    ById,
    /// A login entry names its login (lower-cased here), which must be
    /// pinned to its id.
    ByLogin(String),
    /// No entry names it.
    No,
}

impl ForgeApp {
    /// Which entry admits the account `login` with id `id` (forges treat
    /// logins case-insensitively; ids are compared as given).
    pub fn admits(&self, login: &str, id: &str) -> Admission {
        if self.operator_ids.iter().any(|i| i == id) {
            return Admission::ById;
        }
        let login = login.to_lowercase();
        if self.operators.contains(&login) {
            Admission::ByLogin(login)
        } else {
            Admission::No
        }
    }
}

/// Every configured forge, by plugin name.
#[derive(Clone, Debug, Default)]
pub struct ForgeApps {
    apps: BTreeMap<String, ForgeApp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    forge: BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    client_id: String,
    client_secret: Option<String>,
    base_url: Option<String>,
    redirect_uri: Option<String>,
    operators: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
}

impl ForgeApps {
    /// Parses the file's text. `public_url` is the server's origin, for
    /// default redirect URIs.
    pub fn parse(text: &str, public_url: &str) -> Result<ForgeApps, String> {
        let file: File = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        let mut apps = BTreeMap::new();
        for (forge, entry) in file.forge {
            let app = Self::entry(&forge, entry, public_url)
                .map_err(|why| format!("[forge.{}]: {why}", shown(&forge)))?;
            apps.insert(forge, app);
        }
        Ok(ForgeApps { apps })
    }

    fn entry(forge: &str, entry: Entry, public_url: &str) -> Result<ForgeApp, String> {
        if !valid_name(forge) {
            return Err("not a plugin name (a-z 0-9 -, starting with a letter)".into());
        }
        let client_id = entry.client_id.trim().to_owned();
        if client_id.is_empty() || client_id.len() > 256 || client_id.chars().any(char::is_control)
        {
            return Err("client_id: 1-256 printable characters".into());
        }
        let client_secret = match entry.client_secret {
            None => None,
            // The error does not quote the text: it may be the secret itself.
            Some(text) => Some(SecretRef::parse(&text).map_err(|_| {
                "client_secret must be a secret reference (SCOPE/NAME, e.g. \
                 forge:forgejo/OAUTH_CLIENT_SECRET), not a value"
                    .to_owned()
            })?),
        };
        let base_url = match entry.base_url {
            None => None,
            Some(text) => Some(
                BaseUrl::parse(text.trim_end_matches('/')).map_err(|e| format!("base_url: {e}"))?,
            ),
        };
        let redirect_uri = match entry.redirect_uri {
            Some(uri) => {
                let url = url::Url::parse(&uri).map_err(|e| format!("redirect_uri: {e}"))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err("redirect_uri: use an http(s) URL".into());
                }
                uri
            }
            None => format!("{}/auth/{forge}/callback", public_url.trim_end_matches('/')),
        };
        if entry.operators.len() > MAX_OPERATORS {
            return Err(format!("operators: at most {MAX_OPERATORS}"));
        }
        let (operators, operator_ids) = split_operators(entry.operators)?;
        if entry.scopes.iter().any(|s| {
            s.is_empty() || s.len() > 128 || s.chars().any(|c| c.is_whitespace() || c.is_control())
        }) {
            return Err("scopes: each is 1-128 characters without spaces".into());
        }
        Ok(ForgeApp {
            forge: forge.to_owned(),
            base_url,
            app: OAuthApp {
                client_id,
                client_secret,
                redirect_uri,
            },
            operators,
            operator_ids,
            scopes: entry.scopes,
        })
    }

    /// Reads and parses `path`; the error names the file.
    pub fn load(path: &std::path::Path, public_url: &str) -> anyhow::Result<ForgeApps> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("forges file {}: {e}", path.display()))?;
        ForgeApps::parse(&text, public_url)
            .map_err(|e| anyhow::anyhow!("forges file {}: {e}", path.display()))
    }

    /// The app of `forge`, if configured.
    pub fn get(&self, forge: &str) -> Option<&ForgeApp> {
        self.apps.get(forge)
    }

    /// Every configured forge.
    pub fn iter(&self) -> impl Iterator<Item = &ForgeApp> {
        self.apps.values()
    }

    /// Adds (or replaces) one app: for tests and embedders.
    pub fn insert(&mut self, app: ForgeApp) {
        self.apps.insert(app.forge.clone(), app);
    }
}

/// Splits the `operators` entries into logins (lower-cased) and `id:`
/// account ids (digits, as every built-in forge's ids are).
fn split_operators(entries: Vec<String>) -> Result<(Vec<String>, Vec<String>), String> {
    let (mut logins, mut ids) = (Vec::new(), Vec::new());
    for entry in entries {
        let entry = entry.trim();
        if let Some(id) = entry.strip_prefix("id:") {
            let id = id.trim();
            if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(
                    "operators: an id: entry is id:<the forge's numeric account id>".into(),
                );
            }
            ids.push(id.to_owned());
            continue;
        }
        let login = entry.to_lowercase();
        if login.is_empty() || login.len() > 255 || login.chars().any(char::is_control) {
            return Err("operators: each login is 1-255 printable characters".into());
        }
        logins.push(login);
    }
    Ok((logins, ids))
}

fn shown(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[forge.forgejo]
client_id = "abc"
client_secret = "forge:forgejo/OAUTH_CLIENT_SECRET"
base_url = "https://codeberg.org/"
operators = ["Alice", "bob", "id:12345"]
"#;

    #[test]
    fn a_good_file_parses_with_defaults() {
        let apps = ForgeApps::parse(GOOD, "http://127.0.0.1:8080").expect("parses");
        let app = apps.get("forgejo").expect("forgejo");
        assert_eq!(
            app.app.redirect_uri,
            "http://127.0.0.1:8080/auth/forgejo/callback"
        );
        assert_eq!(
            app.base_url.as_ref().map(BaseUrl::as_str),
            Some("https://codeberg.org")
        );
        assert_eq!(app.admits("ALICE", "1"), Admission::ByLogin("alice".into()));
        assert_eq!(app.admits("bob", "2"), Admission::ByLogin("bob".into()));
        assert_eq!(app.admits("eve", "3"), Admission::No);
        assert_eq!(app.admits("anyone", "12345"), Admission::ById);
        assert!(app.scopes.is_empty());
    }

    #[test]
    fn hostile_files_are_refused_with_the_field_named() {
        for (text, says) in [
            ("[forge.forgejo]\nclient_id = \"a\"\n", "operators"),
            ("[forge.x]\nclient_id=\"a\"\noperators=[]\nsurprise=1\n", "surprise"),
            ("[forge.Bad_Name]\nclient_id=\"a\"\noperators=[]\n", "plugin name"),
            ("[forge.x]\nclient_id=\"\"\noperators=[]\n", "client_id"),
            ("[forge.x]\nclient_id=\"a\"\nclient_secret=\"hunter2 is my secret\"\noperators=[]\n", "secret reference"),
            ("[forge.x]\nclient_id=\"a\"\nbase_url=\"ftp://x\"\noperators=[]\n", "base_url"),
            ("[forge.x]\nclient_id=\"a\"\nbase_url=\"http://example.com\"\noperators=[]\n", "base_url"),
            ("[forge.x]\nclient_id=\"a\"\nredirect_uri=\"javascript:alert(1)\"\noperators=[]\n", "redirect_uri"),
            ("[forge.x]\nclient_id=\"a\"\noperators=[\"\"]\n", "operators"),
            ("[forge.x]\nclient_id=\"a\"\noperators=[\"id:\"]\n", "id:"),
            ("[forge.x]\nclient_id=\"a\"\noperators=[\"id:abc\"]\n", "id:"),
            ("[forge.x]\nclient_id=\"a\"\noperators=[]\nscopes=[\"a b\"]\n", "scopes"),
            ("not toml at all [", ""),
            ("[forge.x]\nclient_id=5\noperators=[]\n", ""),
        ] {
            let err = ForgeApps::parse(text, "http://127.0.0.1").expect_err(text);
            assert!(err.contains(says), "{text:?} -> {err}");
            assert!(!err.contains("hunter2"), "the value is not echoed: {err}");
        }
    }

    #[test]
    fn an_empty_file_configures_nothing() {
        let apps = ForgeApps::parse("", "http://127.0.0.1").expect("parses");
        assert_eq!(apps.iter().count(), 0);
    }
}
