//! The Forgejo (and Gitea) wire protocol, as functions, and [`Adapter`],
//! the whole forge adapter built from them: the built-in `forgejo` adapter
//! is that adapter with its own `info` and default scopes, and any
//! Forgejo-compatible forge (Codeberg, a Gitea instance under another name)
//! is a few lines.
//!
//! ```no_run
//! use keyward_plugin_sdk::{forgejo, ForgeInfo};
//!
//! struct Codeberg;
//!
//! impl forgejo::Site for Codeberg {
//!     fn info() -> ForgeInfo {
//!         ForgeInfo::new("codeberg", "Codeberg", "https://codeberg.org")
//!     }
//! }
//!
//! // Sign-in, refresh, whoami and the repository list: Forgejo's.
//! keyward_plugin_sdk::export_forge!(forgejo::Adapter<Codeberg>);
//! # fn main() {}
//! ```
//!
//! An adapter that differs in more than its description implements
//! [`ForgeAdapter`] itself and calls the functions here (with
//! [`OAUTH`] as its [`oauth`](ForgeAdapter::oauth)) where Forgejo's way fits.
//!
//! Wire facts: authorize at `{base}/login/oauth/authorize`, tokens at
//! `{base}/login/oauth/access_token` (form body, client credentials in it;
//! errors are HTTP 400 `{"error"}`, a reused refresh token is
//! `unauthorized_client`), API at `{base}/api/v1` with `Authorization:
//! token X`, repositories paged by `page`/`limit` (at most 50) with `Link`
//! and `X-Total-Count`. No OAuth revoke endpoint, and no scopes reported.

use std::marker::PhantomData;

use serde::Deserialize;

use crate::http::{Request, Response};
use crate::oauth::OauthFlow;
use crate::{
    secret_ref, wire, Account, ForgeAdapter, ForgeError, ForgeInfo, OauthApp, RepositoryPage,
};

/// Repositories per page: Forgejo's maximum.
pub const PAGE_SIZE: u64 = 50;

/// Forgejo's OAuth flow: authorize at `{base}/login/oauth/authorize`, tokens
/// at `{base}/login/oauth/access_token`, no default scopes. A refresh token
/// used twice is `unauthorized_client`, which means "sign in again".
/// An adapter returns it from
/// [`ForgeAdapter::oauth`](crate::ForgeAdapter::oauth), with its own
/// [`default_scopes`](OauthFlow::default_scopes) if it wants some.
pub const OAUTH: OauthFlow = OauthFlow::new("/login/oauth/authorize", "/login/oauth/access_token")
    .grant_errors(&["unauthorized_client"]);

/// The fields of `GET /api/v1/user` read here.
#[derive(Deserialize)]
struct User {
    id: i64,
    login: String,
    full_name: Option<String>,
    email: Option<String>,
}

/// `GET /api/v1/user` as an account (no scopes: Forgejo does not say).
pub fn parse_user(response: &Response) -> Result<Account, ForgeError> {
    let user: User = response.parse()?;
    Ok(Account::from_user(
        user.id,
        user.login,
        user.full_name,
        user.email,
    ))
}

fn get(base_url: &str, path_and_query: &str, token: &str) -> Request {
    Request::get(format!("{}{path_and_query}", wire::web_root(base_url)))
        // Lower-case `token` is Forgejo's own scheme; the host puts the
        // value in, so the plugin never holds it.
        .header("authorization", format!("token {}", secret_ref(token)))
        .header("accept", "application/json")
}

/// Who the token behind `token` (a reference) belongs to.
pub fn whoami(label: &str, base_url: &str, token: &str) -> Result<Account, ForgeError> {
    get(base_url, "/api/v1/user", token).send_and_read(label, parse_user)
}

/// One page of `GET /api/v1/user/repos`: the next page from `Link`
/// `rel="next"` (its `page` parameter, as text), the total from
/// `X-Total-Count`.
pub fn parse_repositories(response: &Response) -> Result<RepositoryPage, ForgeError> {
    wire::link_paged_repositories(response, Some("x-total-count"))
}

/// One page of the repositories the token's account can see, by cursor.
pub fn list_repositories(
    label: &str,
    base_url: &str,
    token: &str,
    cursor: Option<&str>,
) -> Result<RepositoryPage, ForgeError> {
    repository_page(label, base_url, token, wire::page_cursor(cursor, label)?)
}

/// Page `page` (1 is the first) of the repositories the token's account
/// can see.
pub fn repository_page(
    label: &str,
    base_url: &str,
    token: &str,
    page: u64,
) -> Result<RepositoryPage, ForgeError> {
    get(
        base_url,
        &format!("/api/v1/user/repos?page={page}&limit={PAGE_SIZE}"),
        token,
    )
    .send_and_read(label, parse_repositories)
}

/// Forgejo has no revoke endpoint: always `unsupported`.
pub fn revoke(label: &str) -> Result<(), ForgeError> {
    Err(ForgeError::Unsupported(format!(
        "{label}: Forgejo has no OAuth revoke endpoint; revoke the token in the user's settings \
         (Settings → Applications)"
    )))
}

/// A Forgejo-compatible forge, as [`Adapter`] needs it: its description
/// and, if it differs from [`OAUTH`], its OAuth flow.
pub trait Site {
    /// Describes the adapter (see [`ForgeAdapter::info`]); its `kind`
    /// prefixes every error message.
    fn info() -> ForgeInfo;

    /// The site's OAuth flow: [`OAUTH`] unless changed (e.g. with
    /// `default_scopes`).
    fn oauth() -> OauthFlow {
        OAUTH
    }
}

/// The forge adapter of a Forgejo-compatible [`Site`]: OAuth by the site's
/// flow, and [`whoami`], [`list_repositories`] and [`revoke`] of this
/// module. Export it with
/// `keyward_plugin_sdk::export_forge!(forgejo::Adapter<MySite>);`.
pub struct Adapter<S>(PhantomData<S>);

impl<S: Site> ForgeAdapter for Adapter<S> {
    fn info() -> ForgeInfo {
        S::info()
    }

    fn oauth() -> Option<OauthFlow> {
        Some(S::oauth())
    }

    fn whoami(base_url: String, token: String) -> Result<Account, ForgeError> {
        whoami(&S::info().kind, &base_url, &token)
    }

    fn repository_page(
        base_url: String,
        token: String,
        page: u64,
    ) -> Result<RepositoryPage, ForgeError> {
        repository_page(&S::info().kind, &base_url, &token, page)
    }

    fn revoke(_base_url: String, _app: OauthApp, _token: String) -> Result<(), ForgeError> {
        revoke(&S::info().kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{oauth, Repository};

    fn app() -> OauthApp {
        OauthApp {
            client_id: "cid".into(),
            client_secret: Some("plugin:forgejo/secret".into()),
            redirect_uri: "https://k.example/cb".into(),
        }
    }

    #[test]
    fn the_authorize_url_is_forgejos() {
        assert_eq!(
            OAUTH.authorize_url(
                "https://codeberg.org/",
                &app(),
                "s",
                "c",
                vec!["read:user".into()]
            ),
            "https://codeberg.org/login/oauth/authorize?response_type=code&client_id=cid\
             &redirect_uri=https%3A%2F%2Fk.example%2Fcb&state=s&scope=read%3Auser\
             &code_challenge=c&code_challenge_method=S256"
        );
    }

    #[test]
    fn token_forms_carry_references_not_values() {
        assert_eq!(
            oauth::code_grant(&app(), "co de", "ver").into_body(),
            "grant_type=authorization_code&code=co%20de&redirect_uri=https%3A%2F%2Fk.example%2Fcb\
             &code_verifier=ver&client_id=cid&client_secret=${SECRET:plugin:forgejo/secret}"
        );
        assert_eq!(
            OAUTH
                .refresh_form(&app(), "operator:alice/forgejo-refresh")
                .into_body(),
            "grant_type=refresh_token&refresh_token=${SECRET:operator:alice/forgejo-refresh}\
             &client_id=cid&client_secret=${SECRET:plugin:forgejo/secret}"
        );
    }

    #[test]
    fn a_reused_refresh_token_is_an_invalid_grant() {
        let r = Response::for_test(
            "POST /login/oauth/access_token",
            400,
            &[],
            br#"{"error":"unauthorized_client","error_description":"token was already used"}"#,
        );
        assert!(matches!(
            r.token_set(OAUTH.token_rules),
            Err(ForgeError::InvalidGrant(_))
        ));
    }

    #[test]
    fn users_parse_with_empty_fields_as_none() {
        let r = Response::for_test(
            "GET /api/v1/user",
            200,
            &[],
            br#"{"id":3,"login":"alice","username":"alice","full_name":"","email":" ","is_admin":false}"#,
        );
        let a = parse_user(&r).expect("parses");
        assert_eq!(a, Account::new("3", "alice"));
        for junk in [
            &b"{}"[..],
            b"[]",
            b"{\"id\":\"x\",\"login\":\"a\"}",
            b"\xff\xfe",
            b"",
        ] {
            let r = Response::for_test("GET /api/v1/user", 200, &[], junk);
            assert!(matches!(parse_user(&r), Err(ForgeError::Upstream(_))));
        }
        let huge = Response::for_test(
            "GET /api/v1/user",
            200,
            &[],
            br#"{"id":99999999999999999999999,"login":"a"}"#,
        );
        assert!(matches!(parse_user(&huge), Err(ForgeError::Upstream(_))));
    }

    #[test]
    fn repository_pages_follow_link_and_total() {
        let body = br#"[{"id":1,"owner":{"login":"a"},"name":"r","full_name":"a/r","private":true,"fork":false,"html_url":"https://f/a/r","clone_url":"https://f/a/r.git","ssh_url":"git@f:a/r.git","default_branch":"main","archived":false},
                        {"id":2,"full_name":"a/empty","html_url":"https://f/a/empty","clone_url":"https://f/a/empty.git","default_branch":""}]"#;
        let r = Response::for_test(
            "GET /api/v1/user/repos",
            200,
            &[
                (
                    "link",
                    r#"<https://f/api/v1/user/repos?limit=50&page=2>; rel="next",<https://f/api/v1/user/repos?limit=50&page=3>; rel="last""#,
                ),
                ("x-total-count", "120"),
            ],
            body,
        );
        let page = parse_repositories(&r).expect("parses");
        assert_eq!(page.next.as_deref(), Some("2"));
        assert_eq!(page.total, Some(120));
        assert_eq!(page.repositories.len(), 2);
        assert_eq!(
            page.repositories[0],
            Repository {
                id: "1".into(),
                full_name: "a/r".into(),
                private: true,
                archived: false,
                default_branch: Some("main".into()),
                web_url: "https://f/a/r".into(),
                clone_url: "https://f/a/r.git".into(),
            }
        );
        assert_eq!(page.repositories[1].default_branch, None);

        let last = Response::for_test(
            "GET /api/v1/user/repos",
            200,
            &[("link", "garbage"), ("x-total-count", "many")],
            b"[]",
        );
        let page = parse_repositories(&last).expect("parses");
        assert_eq!((page.next, page.total), (None, None));
        let junk = Response::for_test("GET /api/v1/user/repos", 200, &[], br#"{"message":"x"}"#);
        assert!(matches!(
            parse_repositories(&junk),
            Err(ForgeError::Upstream(_))
        ));
    }

    #[test]
    fn revoke_is_unsupported() {
        assert!(
            matches!(revoke("forgejo"), Err(ForgeError::Unsupported(m)) if m.starts_with("forgejo: "))
        );
    }
}
