//! Forge adapter for GitHub and GitHub Enterprise Server.
//!
//! The base URL is the web root (`https://github.com`, or
//! `https://HOST` for Enterprise): OAuth lives at `{base}/login/oauth/*`,
//! the REST API at `https://api.github.com` for github.com and at
//! `{base}/api/v3` otherwise.
//!
//! Wire facts: the token endpoint answers errors with HTTP 200 and an
//! `error` field (so every reply is parsed for one); whoami reads the
//! granted scopes from `X-OAuth-Scopes` and the expiry from
//! `GitHub-Authentication-Token-Expiration`; repositories page by
//! `per_page`/`page` with `Link` only (no total); revoking needs HTTP Basic
//! client authentication. Rate limits come as 403 or 429 in three shapes
//! (primary: `x-ratelimit-remaining: 0`; secondary: `retry-after`, or only
//! the message "You have exceeded a secondary rate limit"); the SDK's
//! `wire::status_error` maps each to `rate-limited` with a wait.

use keyward_plugin_sdk::http::{Request, Response};
use keyward_plugin_sdk::oauth::{self, OauthFlow};
use keyward_plugin_sdk::{
    secret_ref, wire, Account, ForgeAdapter, ForgeError, ForgeInfo, OauthApp, RepositoryPage,
};
use serde::{Deserialize, Serialize};

/// The prefix of every error message.
const LABEL: &str = "github";

/// Repositories per page: GitHub's maximum.
const PAGE_SIZE: u64 = 100;

/// GitHub's OAuth flow: at the web root (github.com's for the API host),
/// with GitHub's "sign in again" token errors.
const OAUTH: OauthFlow = OauthFlow::new("/login/oauth/authorize", "/login/oauth/access_token")
    .default_scopes(&["read:user", "repo"])
    .grant_errors(&["bad_verification_code", "bad_refresh_token"])
    .root(oauth_root);

/// The REST API root for a web root: `https://api.github.com` for
/// github.com (also when given as `www.github.com` or the API host itself),
/// `{base}/api/v3` for Enterprise Server.
fn api_root(base_url: &str) -> String {
    let base = wire::web_root(base_url);
    let host = base
        .split_once("://")
        .map_or(base, |(_, rest)| rest)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    match host.as_str() {
        "github.com" | "www.github.com" | "api.github.com" => "https://api.github.com".into(),
        _ => format!("{base}/api/v3"),
    }
}

/// The OAuth root: github.com's when given the API host.
fn oauth_root(base_url: &str) -> String {
    if api_root(base_url) == "https://api.github.com" {
        "https://github.com".into()
    } else {
        wire::web_root(base_url).to_owned()
    }
}

fn api(request: Request) -> Request {
    request
        .header("user-agent", "keyward")
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", "2022-11-28")
}

/// The fields of `GET /user` read here.
#[derive(Deserialize)]
struct User {
    id: i64,
    login: String,
    name: Option<String>,
    email: Option<String>,
}

/// `GET /user` as an account, with the scopes and expiry from its headers.
fn parse_user(response: &Response) -> Result<Account, ForgeError> {
    let user: User = response.parse()?;
    Ok(Account {
        scopes: response
            .header("x-oauth-scopes")
            .map(wire::split_scopes)
            .unwrap_or_default(),
        expires_at: response
            .header("github-authentication-token-expiration")
            .and_then(wire::parse_datetime),
        ..Account::from_user(user.id, user.login, user.name, user.email)
    })
}

/// One page of `GET /user/repos`: GitHub sends no total.
fn parse_repositories(response: &Response) -> Result<RepositoryPage, ForgeError> {
    wire::link_paged_repositories(response, None)
}

/// The body of `DELETE /applications/{client_id}/token`.
#[derive(Serialize)]
struct RevokeBody {
    access_token: String,
}

/// `${SECRET_BASIC:<client id>:<reference>}`: the host expands it to
/// base64(`client_id:secret`), since a plugin cannot base64 a placeholder.
fn basic_placeholder(client_id: &str, reference: &str) -> String {
    format!("${{SECRET_BASIC:{client_id}:{reference}}}")
}

struct GitHub;

impl ForgeAdapter for GitHub {
    fn info() -> ForgeInfo {
        ForgeInfo::new(LABEL, "GitHub", "https://github.com")
    }

    fn oauth() -> Option<OauthFlow> {
        Some(OAUTH)
    }

    fn whoami(base_url: String, token: String) -> Result<Account, ForgeError> {
        api(Request::get(format!("{}/user", api_root(&base_url))))
            .bearer(&token)
            .send_and_read(LABEL, parse_user)
    }

    fn repository_page(
        base_url: String,
        token: String,
        page: u64,
    ) -> Result<RepositoryPage, ForgeError> {
        api(Request::get(format!(
            "{}/user/repos?per_page={PAGE_SIZE}&page={page}",
            api_root(&base_url)
        )))
        .bearer(&token)
        .send_and_read(LABEL, parse_repositories)
    }

    fn revoke(base_url: String, app: OauthApp, token: String) -> Result<(), ForgeError> {
        let Some(secret) = app.client_secret.as_deref() else {
            return Err(ForgeError::Unsupported(
                "github: revoking needs the app's client secret (HTTP Basic)".into(),
            ));
        };
        let url = format!(
            "{}/applications/{}/token",
            api_root(&base_url),
            oauth::percent_encode(&app.client_id)
        );
        api(Request::new("DELETE", url))
            .header(
                "authorization",
                format!("Basic {}", basic_placeholder(&app.client_id, secret)),
            )
            .json(&RevokeBody {
                access_token: secret_ref(&token),
            })
            .send_and_read(LABEL, |_| Ok(()))
    }
}

keyward_plugin_sdk::export_forge!(GitHub);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_roots_for_github_and_enterprise() {
        assert_eq!(api_root("https://github.com"), "https://api.github.com");
        assert_eq!(api_root("https://GitHub.com/"), "https://api.github.com");
        assert_eq!(api_root("https://api.github.com"), "https://api.github.com");
        assert_eq!(api_root("https://ghe.corp"), "https://ghe.corp/api/v3");
        assert_eq!(
            api_root("http://127.0.0.1:8080/"),
            "http://127.0.0.1:8080/api/v3"
        );
        // Not fooled by a look-alike host.
        assert_eq!(
            api_root("https://github.com.evil.example"),
            "https://github.com.evil.example/api/v3"
        );
        assert_eq!(oauth_root("https://api.github.com"), "https://github.com");
        assert_eq!(oauth_root("https://ghe.corp/"), "https://ghe.corp");
    }

    #[test]
    fn whoami_reads_scopes_and_expiry_from_headers() {
        let r = Response::for_test(
            "GET /user",
            200,
            &[
                ("x-oauth-scopes", "repo, read:user"),
                (
                    "github-authentication-token-expiration",
                    "2026-12-02 18:00:00 UTC",
                ),
            ],
            br#"{"login":"octocat","id":1,"node_id":"MDQ6","name":null,"email":"","type":"User"}"#,
        );
        let a = parse_user(&r).expect("parses");
        assert_eq!((a.id.as_str(), a.login.as_str()), ("1", "octocat"));
        assert_eq!((a.name, a.email), (None, None));
        assert_eq!(a.scopes, ["repo", "read:user"]);
        assert_eq!(a.expires_at, Some(1_796_234_400));

        let r = Response::for_test(
            "GET /user",
            200,
            &[
                ("x-oauth-scopes", ""),
                ("github-authentication-token-expiration", "tomorrow"),
            ],
            br#"{"login":"o","id":2}"#,
        );
        let a = parse_user(&r).expect("parses");
        assert!(a.scopes.is_empty());
        assert_eq!(a.expires_at, None);
        for junk in [&b"null"[..], b"{\"login\":1,\"id\":2}", b"\xc3\x28"] {
            let r = Response::for_test("GET /user", 200, &[], junk);
            assert!(matches!(parse_user(&r), Err(ForgeError::Upstream(_))));
        }
    }

    #[test]
    fn repository_pages_follow_link_without_total() {
        let r = Response::for_test(
            "GET /user/repos",
            200,
            &[(
                "link",
                r#"<https://api.github.com/user/repos?per_page=100&page=2>; rel="next", <https://api.github.com/user/repos?per_page=100&page=4>; rel="last""#,
            )],
            br#"[{"id":1296269,"name":"Hello-World","full_name":"octocat/Hello-World","owner":{"login":"octocat"},"private":false,"visibility":"public","fork":false,"archived":true,"html_url":"https://github.com/octocat/Hello-World","clone_url":"https://github.com/octocat/Hello-World.git","default_branch":"master"}]"#,
        );
        let page = parse_repositories(&r).expect("parses");
        assert_eq!(page.next.as_deref(), Some("2"));
        assert_eq!(page.total, None);
        assert!(page.repositories[0].archived);
        assert_eq!(page.repositories[0].full_name, "octocat/Hello-World");
        let r = Response::for_test(
            "GET /user/repos",
            200,
            &[("link", r#"<https://x?page=zz>; rel="next""#)],
            b"[]",
        );
        assert_eq!(parse_repositories(&r).expect("parses").next, None);
    }

    #[test]
    fn rate_limits_and_token_errors_map() {
        let r = Response::for_test(
            "GET /user",
            403,
            &[("x-ratelimit-remaining", "0"), ("retry-after", "60")],
            br#"{"message":"API rate limit exceeded"}"#,
        );
        assert!(matches!(
            r.check(),
            Err(ForgeError::RateLimited(l)) if l.retry_after == Some(60)
        ));
        // github/docs content/rest/overview/resources-in-the-rest-api.md:
        // a secondary limit with only its message and requests left.
        for status in [403, 429] {
            let r = Response::for_test(
                "GET /user",
                status,
                &[("x-ratelimit-remaining", "4999"), ("x-ratelimit-reset", "99999999999")],
                br#"{"message":"You have exceeded a secondary rate limit and have been temporarily blocked from content creation. Please retry your request again later.","documentation_url":"https://docs.github.com/rest/overview/resources-in-the-rest-api#secondary-rate-limits"}"#,
            );
            assert!(matches!(
                r.check(),
                Err(ForgeError::RateLimited(l)) if l.retry_after == Some(60)
            ));
        }
        let r = Response::for_test(
            "POST /login/oauth/access_token",
            200,
            &[],
            br#"{"error":"bad_refresh_token","error_description":"The refresh token passed is incorrect or expired."}"#,
        );
        assert!(matches!(
            r.token_set(OAUTH.token_rules),
            Err(ForgeError::InvalidGrant(_))
        ));
    }

    #[test]
    fn basic_placeholder_names_client_and_reference() {
        assert_eq!(
            basic_placeholder("Iv1.abc", "plugin:github/client-secret"),
            "${SECRET_BASIC:Iv1.abc:plugin:github/client-secret}"
        );
    }
}
