//! Forge adapter for GitLab (gitlab.com by default, or a self-managed
//! instance).
//!
//! Wire facts: OAuth at `{base}/oauth/{authorize,token,revoke}` with the
//! client credentials in the form body; token errors are 401 for
//! `invalid_client`/`unauthorized_client` and 400 otherwise; the expiry is
//! `created_at + expires_in`; a refresh must repeat the original
//! `redirect_uri`. The API is at `{base}/api/v4` with `Authorization:
//! Bearer X`, which takes OAuth tokens and personal, project and group
//! access tokens alike. A token's scopes and expiry come from
//! `GET /oauth/token/info` for an OAuth token and from `GET
//! /api/v4/personal_access_tokens/self` for the others; each answers 401
//! to the other kind (the adapter holds only a reference, so it cannot
//! tell the kind by the `glpat-` prefix and asks both in turn). Projects
//! page with `X-Next-Page` (empty on the last page) and
//! `X-Total` (left out above 10,000).

use keyward_plugin_sdk::http::{Request, Response};
use keyward_plugin_sdk::log;
use keyward_plugin_sdk::oauth::{Form, OauthFlow};
use keyward_plugin_sdk::{
    wire, Account, ForgeAdapter, ForgeError, ForgeInfo, OauthApp, Repository, RepositoryPage,
};
use serde::Deserialize;

/// The prefix of every error message.
const LABEL: &str = "gitlab";

/// Projects per page: GitLab's maximum.
const PAGE_SIZE: u64 = 100;

/// GitLab's OAuth flow: the expiry counts from the reply's `created_at`,
/// and a refresh must repeat the original grant's redirect URI.
const OAUTH: OauthFlow = OauthFlow::new("/oauth/authorize", "/oauth/token")
    .default_scopes(&["read_user", "read_api"])
    .expiry_from_created_at()
    .refresh_repeats_redirect_uri();

/// `GET url` with the token behind the reference `token`, asking for JSON.
fn get(url: String, token: &str) -> Request {
    Request::get(url)
        .bearer(token)
        .header("accept", "application/json")
}

/// The fields of `GET /api/v4/user` read here.
#[derive(Deserialize)]
struct User {
    id: i64,
    username: String,
    name: Option<String>,
    email: Option<String>,
}

fn parse_user(response: &Response) -> Result<Account, ForgeError> {
    let user: User = response.parse()?;
    Ok(Account::from_user(
        user.id,
        user.username,
        user.name,
        user.email,
    ))
}

/// What a token may do and until when; both unknown when GitLab will not
/// say.
#[derive(Debug, Default, PartialEq, Eq)]
struct TokenDetails {
    scopes: Vec<String>,
    expires_at: Option<i64>,
}

/// The fields of `GET /oauth/token/info` read here.
#[derive(Deserialize)]
struct TokenInfo {
    #[serde(default)]
    scope: Vec<String>,
    expires_in: Option<i64>,
}

/// An OAuth token's scopes, and its expiry (`expires_in` counts from `now`).
fn parse_token_info(response: &Response, now: i64) -> Result<TokenDetails, ForgeError> {
    let info: TokenInfo = response.parse()?;
    let expires_at = info
        .expires_in
        .filter(|s| *s >= 0)
        .and_then(|s| now.checked_add(s));
    Ok(TokenDetails {
        scopes: info.scope,
        expires_at,
    })
}

/// The fields of `GET /api/v4/personal_access_tokens/self` read here.
#[derive(Deserialize)]
struct AccessTokenRecord {
    #[serde(default)]
    scopes: Vec<String>,
    expires_at: Option<String>,
}

/// A personal, project or group access token's scopes and expiry. GitLab
/// gives the expiry as a date; the token expires at midnight UTC at its
/// start (doc/user/profile/personal_access_tokens.md).
fn parse_access_token(response: &Response) -> Result<TokenDetails, ForgeError> {
    let record: AccessTokenRecord = response.parse()?;
    let expires_at = match record.expires_at.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(day) if day.len() == 10 => wire::parse_datetime(&format!("{day} 00:00:00 UTC")),
        Some(other) => wire::parse_datetime(other),
    };
    Ok(TokenDetails {
        scopes: record.scopes,
        expires_at,
    })
}

/// Whether an error of a token-details call means "not this kind of
/// token" (GitLab: 401 `invalid_token` from Doorkeeper for an access
/// token, 401/404 from the access-token API for an OAuth token; 403 for a
/// token whose scopes do not reach it), rather than a failure.
fn not_this_kind(error: &ForgeError) -> bool {
    matches!(
        error,
        ForgeError::Unauthorized(_) | ForgeError::Forbidden(_) | ForgeError::NotFound(_)
    )
}

/// The token's scopes and expiry: from Doorkeeper for an OAuth token, else
/// from the access-token API. `/user` has already accepted the token, so
/// a refusal from both only leaves the details unknown; a rate limit, a
/// server error or an unreachable forge still fails the call.
fn token_details(base: &str, token: &str) -> Result<TokenDetails, ForgeError> {
    let oauth = get(format!("{base}/oauth/token/info"), token)
        .send_forge()
        .and_then(Response::check)
        .and_then(|r| parse_token_info(&r, wire::now()));
    match oauth {
        Err(e) if not_this_kind(&e) => {}
        other => return other,
    }
    let record = get(format!("{base}/api/v4/personal_access_tokens/self"), token)
        .send_forge()
        .and_then(Response::check)
        .and_then(|r| parse_access_token(&r));
    match record {
        Err(e) if not_this_kind(&e) => {
            log::warn(&format!(
                "gitlab: the token's scopes and expiry are unknown: {}",
                e.message()
            ));
            Ok(TokenDetails::default())
        }
        other => other,
    }
}

#[derive(Deserialize)]
struct Project {
    id: i64,
    path_with_namespace: String,
    visibility: Option<String>,
    #[serde(default)]
    archived: bool,
    default_branch: Option<String>,
    web_url: String,
    http_url_to_repo: String,
}

fn parse_projects(response: &Response) -> Result<RepositoryPage, ForgeError> {
    let projects: Vec<Project> = response.parse()?;
    Ok(RepositoryPage {
        repositories: projects
            .into_iter()
            .map(|p| Repository {
                id: p.id.to_string(),
                full_name: p.path_with_namespace,
                // Unknown visibility counts as private: the safe reading.
                private: p.visibility.as_deref() != Some("public"),
                archived: p.archived,
                default_branch: p.default_branch.filter(|b| !b.is_empty()),
                web_url: p.web_url,
                clone_url: p.http_url_to_repo,
            })
            .collect(),
        next: response
            .header("x-next-page")
            .map(str::trim)
            .and_then(|p| p.parse::<u64>().ok())
            .filter(|p| *p > 0)
            .map(|p| p.to_string()),
        total: wire::count(response.header("x-total")),
    })
}

struct GitLab;

impl ForgeAdapter for GitLab {
    fn info() -> ForgeInfo {
        ForgeInfo::new(LABEL, "GitLab", "https://gitlab.com")
    }

    fn oauth() -> Option<OauthFlow> {
        Some(OAUTH)
    }

    fn whoami(base_url: String, token: String) -> Result<Account, ForgeError> {
        let base = wire::web_root(&base_url);
        let account =
            get(format!("{base}/api/v4/user"), &token).send_and_read(LABEL, parse_user)?;
        let details = token_details(base, &token).map_err(|e| e.context(LABEL))?;
        Ok(Account {
            scopes: details.scopes,
            expires_at: details.expires_at,
            ..account
        })
    }

    fn repository_page(
        base_url: String,
        token: String,
        page: u64,
    ) -> Result<RepositoryPage, ForgeError> {
        let url = format!(
            "{}/api/v4/projects?membership=true&per_page={PAGE_SIZE}&page={page}",
            wire::web_root(&base_url)
        );
        get(url, &token).send_and_read(LABEL, parse_projects)
    }

    fn revoke(base_url: String, app: OauthApp, token: String) -> Result<(), ForgeError> {
        let form = Form::new().client(&app).secret("token", &token);
        Request::post(format!("{}/oauth/revoke", wire::web_root(&base_url)))
            .header("accept", "application/json")
            .form(form)
            .send_and_read(LABEL, |_| Ok(()))
    }
}

keyward_plugin_sdk::export_forge!(GitLab);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_repeats_the_redirect_uri() {
        let app = OauthApp {
            client_id: "cid".into(),
            client_secret: Some("plugin:gitlab/secret".into()),
            redirect_uri: "https://k.example/cb".into(),
        };
        assert_eq!(
            OAUTH
                .refresh_form(&app, "operator:bob/gitlab-refresh")
                .into_body(),
            "grant_type=refresh_token&refresh_token=${SECRET:operator:bob/gitlab-refresh}\
             &client_id=cid&client_secret=${SECRET:plugin:gitlab/secret}\
             &redirect_uri=https%3A%2F%2Fk.example%2Fcb"
        );
    }

    #[test]
    fn username_is_the_login() {
        let r = Response::for_test(
            "GET /api/v4/user",
            200,
            &[],
            br#"{"id":42,"username":"bob","name":"Bob","state":"active","email":"bob@example.com","bot":false}"#,
        );
        let a = parse_user(&r).expect("parses");
        assert_eq!((a.id.as_str(), a.login.as_str()), ("42", "bob"));
        assert_eq!(a.name.as_deref(), Some("Bob"));
        assert_eq!(a.email.as_deref(), Some("bob@example.com"));
        let r = Response::for_test("GET /api/v4/user", 200, &[], br#"{"id":1,"login":"x"}"#);
        assert!(matches!(parse_user(&r), Err(ForgeError::Upstream(_))));
    }

    #[test]
    fn token_info_gives_scopes_and_expiry() {
        let r = Response::for_test(
            "GET /oauth/token/info",
            200,
            &[],
            br#"{"resource_owner_id":1,"scope":["api","read_user"],"expires_in":7000,"application":{"uid":"x"},"created_at":1}"#,
        );
        assert_eq!(
            parse_token_info(&r, 100).expect("parses"),
            TokenDetails {
                scopes: vec!["api".to_owned(), "read_user".to_owned()],
                expires_at: Some(7100)
            }
        );
        let r = Response::for_test(
            "GET /oauth/token/info",
            200,
            &[],
            br#"{"scope":[],"expires_in":null}"#,
        );
        assert_eq!(
            parse_token_info(&r, 0).expect("parses"),
            TokenDetails::default()
        );
        for junk in [
            &br#"{"scope":"api"}"#[..],
            br#"{"expires_in":1e99}"#,
            b"<html>",
        ] {
            let r = Response::for_test("GET /oauth/token/info", 200, &[], junk);
            assert!(matches!(
                parse_token_info(&r, 0),
                Err(ForgeError::Upstream(_))
            ));
        }
        let r = Response::for_test(
            "GET /oauth/token/info",
            200,
            &[],
            br#"{"expires_in":9223372036854775807}"#,
        );
        assert_eq!(parse_token_info(&r, 10).expect("parses").expires_at, None);
    }

    #[test]
    fn access_token_records_give_scopes_and_a_midnight_expiry() {
        // doc/api/personal_access_tokens.md's example, with an expiry date.
        let r = Response::for_test(
            "GET /api/v4/personal_access_tokens/self",
            200,
            &[],
            br#"{"id":4,"name":"Test Token","revoked":false,"created_at":"2020-07-23T14:31:47.729Z","description":"Test Token description","scopes":["api","read_repository"],"user_id":3,"last_used_at":"2021-10-06T17:58:37.550Z","active":true,"expires_at":"2027-06-30"}"#,
        );
        assert_eq!(
            parse_access_token(&r).expect("parses"),
            TokenDetails {
                scopes: vec!["api".to_owned(), "read_repository".to_owned()],
                expires_at: Some(1_814_313_600),
            }
        );
        let r = Response::for_test(
            "GET /api/v4/personal_access_tokens/self",
            200,
            &[],
            br#"{"id":4,"scopes":["api"],"expires_at":null}"#,
        );
        assert_eq!(parse_access_token(&r).expect("parses").expires_at, None);
        for junk in [
            &br#"{"scopes":"api"}"#[..],
            br#"{"expires_at":5}"#,
            b"<html>",
        ] {
            let r = Response::for_test("GET /x", 200, &[], junk);
            assert!(matches!(
                parse_access_token(&r),
                Err(ForgeError::Upstream(_))
            ));
        }
        let r = Response::for_test("GET /x", 200, &[], br#"{"expires_at":"soon"}"#);
        assert_eq!(parse_access_token(&r).expect("parses").expires_at, None);
    }

    #[test]
    fn only_refusals_mean_another_kind_of_token() {
        for e in [
            ForgeError::Unauthorized("401".into()),
            ForgeError::Forbidden("403".into()),
            ForgeError::NotFound("404".into()),
        ] {
            assert!(not_this_kind(&e), "{e:?}");
        }
        for e in [
            ForgeError::Upstream("500".into()),
            ForgeError::Transport("down".into()),
            ForgeError::RateLimited(keyward_plugin_sdk::RateLimit {
                retry_after: Some(1),
                message: "slow".into(),
            }),
        ] {
            assert!(!not_this_kind(&e), "{e:?}");
        }
    }

    #[test]
    fn projects_page_with_x_next_page() {
        let r = Response::for_test(
            "GET /api/v4/projects",
            200,
            &[("x-next-page", "2"), ("x-total", "250")],
            br#"[{"id":7,"name":"p","path_with_namespace":"grp/sub/p","visibility":"internal","default_branch":"main","web_url":"https://gl/grp/sub/p","http_url_to_repo":"https://gl/grp/sub/p.git","ssh_url_to_repo":"git@gl:grp/sub/p.git","archived":false,"last_activity_at":"2024-01-01T00:00:00Z"},
               {"id":8,"path_with_namespace":"me/pub","visibility":"public","web_url":"https://gl/me/pub","http_url_to_repo":"https://gl/me/pub.git","archived":true}]"#,
        );
        let page = parse_projects(&r).expect("parses");
        assert_eq!((page.next.as_deref(), page.total), (Some("2"), Some(250)));
        assert_eq!(
            page.repositories[0],
            Repository {
                id: "7".into(),
                full_name: "grp/sub/p".into(),
                private: true,
                archived: false,
                default_branch: Some("main".into()),
                web_url: "https://gl/grp/sub/p".into(),
                clone_url: "https://gl/grp/sub/p.git".into(),
            }
        );
        assert!(!page.repositories[1].private && page.repositories[1].archived);
        assert_eq!(page.repositories[1].default_branch, None);
        // The last page: empty X-Next-Page; above 10,000 no X-Total.
        for next in ["", " ", "0", "x", "-1"] {
            let r =
                Response::for_test("GET /api/v4/projects", 200, &[("x-next-page", next)], b"[]");
            let page = parse_projects(&r).expect("parses");
            assert_eq!((page.next, page.total), (None, None), "{next:?}");
        }
    }

    #[test]
    fn token_errors_by_status() {
        let r = Response::for_test(
            "POST /oauth/token",
            401,
            &[],
            br#"{"error":"invalid_client","error_description":"Client authentication failed due to unknown client."}"#,
        );
        assert!(matches!(
            r.token_set(OAUTH.token_rules),
            Err(ForgeError::Upstream(_))
        ));
        let r = Response::for_test(
            "POST /oauth/token",
            400,
            &[],
            br#"{"error":"invalid_grant","error_description":"The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client."}"#,
        );
        assert!(matches!(
            r.token_set(OAUTH.token_rules),
            Err(ForgeError::InvalidGrant(_))
        ));
        let r = Response::for_test(
            "POST /oauth/token",
            200,
            &[],
            br#"{"access_token":"a","token_type":"BEARER","expires_in":7200,"refresh_token":"r","created_at":1607635748}"#,
        );
        assert_eq!(
            r.token_set(OAUTH.token_rules).expect("ok").expires_at,
            Some(1_607_642_948)
        );
    }
}
