//! OAuth 2 pieces the forge adapters share: a forge's whole
//! authorization-code flow as data ([`OauthFlow`], what
//! [`ForgeAdapter::oauth`](crate::ForgeAdapter::oauth) returns), authorize
//! URLs (PKCE S256), form-encoded token requests with the client secret as a
//! reference, and token replies (success or error, whatever the status) as a
//! [`TokenSet`] or a [`ForgeError`].
//!
//! ```
//! use keyward_plugin_sdk::oauth::OauthFlow;
//! use keyward_plugin_sdk::OauthApp;
//!
//! // GitLab's flow: its own paths, default scopes and token rules.
//! const GITLAB: OauthFlow = OauthFlow::new("/oauth/authorize", "/oauth/token")
//!     .default_scopes(&["read_user", "read_api"])
//!     .expiry_from_created_at()
//!     .refresh_repeats_redirect_uri();
//!
//! let app = OauthApp {
//!     client_id: "cid".into(),
//!     client_secret: None,
//!     redirect_uri: "https://keyward.example/cb".into(),
//! };
//! let url = GITLAB.authorize_url("https://gitlab.com/", &app, "st", "ch", vec![]);
//! assert!(url.starts_with("https://gitlab.com/oauth/authorize?response_type=code&client_id=cid"));
//! assert!(url.contains("&scope=read_user%20read_api&"));
//! ```

use serde::Deserialize;

use crate::{secret_ref, wire, ForgeError, OauthApp, TokenSet};

/// Percent-encodes `text` for a query or form value: everything but the
/// RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`) becomes `%XX`.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `endpoint?k=v&…` with every key and value percent-encoded. An endpoint
/// that already has a query gets `&`.
pub fn url_with_query(endpoint: &str, params: &[(&str, &str)]) -> String {
    let mut url = endpoint.to_owned();
    for (i, (k, v)) in params.iter().enumerate() {
        url.push(if i == 0 && !endpoint.contains('?') {
            '?'
        } else {
            '&'
        });
        url.push_str(&percent_encode(k));
        url.push('=');
        url.push_str(&percent_encode(v));
    }
    url
}

/// The authorize URL of the authorization-code flow with PKCE S256:
/// `response_type=code`, `client_id`, `redirect_uri`, `state`, `scope`
/// (joined with spaces, left out when empty), `code_challenge` and
/// `code_challenge_method=S256`.
pub fn authorize_url(
    endpoint: &str,
    app: &OauthApp,
    state: &str,
    code_challenge: &str,
    scopes: &[String],
) -> String {
    let scope = scopes.join(" ");
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", app.client_id.as_str()),
        ("redirect_uri", app.redirect_uri.as_str()),
        ("state", state),
    ];
    if !scope.is_empty() {
        params.push(("scope", scope.as_str()));
    }
    params.push(("code_challenge", code_challenge));
    params.push(("code_challenge_method", "S256"));
    url_with_query(endpoint, &params)
}

/// `scopes`, or the adapter's `defaults` when the host asked for none:
/// every adapter's rule for [`ForgeAdapter::authorize_url`](crate::ForgeAdapter::authorize_url)
/// ([`OauthFlow::authorize_url`] applies it).
pub fn scopes_or(scopes: Vec<String>, defaults: &[&str]) -> Vec<String> {
    if scopes.is_empty() {
        defaults.iter().map(|s| (*s).to_owned()).collect()
    } else {
        scopes
    }
}

/// The form of an authorization-code grant with PKCE (RFC 6749 §4.1.3,
/// RFC 7636 §4.5): `grant_type=authorization_code`, `code`,
/// `redirect_uri`, `code_verifier` and the client's credentials.
pub fn code_grant(app: &OauthApp, code: &str, code_verifier: &str) -> Form {
    Form::new()
        .text("grant_type", "authorization_code")
        .text("code", code)
        .text("redirect_uri", &app.redirect_uri)
        .text("code_verifier", code_verifier)
        .client(app)
}

/// The form of a refresh grant (RFC 6749 §6): `grant_type=refresh_token`,
/// the refresh token behind `refresh_token` (a reference the host expands
/// at egress) and the client's credentials.
pub fn refresh_grant(app: &OauthApp, refresh_token: &str) -> Form {
    Form::new()
        .text("grant_type", "refresh_token")
        .secret("refresh_token", refresh_token)
        .client(app)
}

/// Posts `form` to the token endpoint `url`, asking for JSON, and reads
/// the answer by `rules` (errors prefixed with `label`).
pub fn request_tokens(
    label: &str,
    url: String,
    form: Form,
    rules: TokenRules<'_>,
) -> Result<TokenSet, ForgeError> {
    crate::http::Request::post(url)
        .header("accept", "application/json")
        // GitHub refuses API calls without one; harmless elsewhere.
        .header("user-agent", "keyward")
        .form(form)
        .send_forge()
        .and_then(|r| r.token_set(rules))
        .map_err(|e| e.context(label))
}

/// A forge's OAuth 2 authorization-code flow with PKCE S256, as data: where
/// its endpoints are, what it asks for by default and how its token
/// endpoint answers. An adapter whose
/// [`ForgeAdapter::oauth`](crate::ForgeAdapter::oauth) returns one gets
/// `authorize_url`, `exchange_code` and `refresh` from the trait.
///
/// Start from [`OauthFlow::new`] and change what differs, in a `const`:
/// `OauthFlow::new(authorize, token).default_scopes(&["read:user"])`.
#[derive(Debug, Clone, Copy)]
pub struct OauthFlow {
    /// The authorize endpoint's path below the OAuth root, e.g.
    /// `/login/oauth/authorize`.
    pub authorize_path: &'static str,
    /// The token endpoint's path below the OAuth root, e.g.
    /// `/login/oauth/access_token`.
    pub token_path: &'static str,
    /// The scopes asked for when the host asks for none ([`scopes_or`]);
    /// empty: none at all (no `scope` parameter).
    pub default_scopes: &'static [&'static str],
    /// How the token endpoint words its answers.
    pub token_rules: TokenRules<'static>,
    /// Whether a refresh grant repeats the original grant's `redirect_uri`
    /// (GitLab insists on it).
    pub refresh_repeats_redirect_uri: bool,
    /// The OAuth root for the forge's base URL; [`OauthFlow::new`] sets the
    /// base URL without its trailing `/`.
    pub root: fn(&str) -> String,
}

/// `base_url` without its trailing `/`: the OAuth root of most forges.
fn trimmed_root(base_url: &str) -> String {
    crate::wire::web_root(base_url).to_owned()
}

impl OauthFlow {
    /// A flow with endpoints at `{base}{authorize_path}` and
    /// `{base}{token_path}`, no default scopes, the standard token rules and
    /// a refresh grant without `redirect_uri`.
    pub const fn new(authorize_path: &'static str, token_path: &'static str) -> Self {
        OauthFlow {
            authorize_path,
            token_path,
            default_scopes: &[],
            token_rules: TokenRules {
                grant_errors: &[],
                created_at: false,
            },
            refresh_repeats_redirect_uri: false,
            root: trimmed_root,
        }
    }

    /// The same flow asking for `scopes` when the host asks for none.
    #[must_use]
    pub const fn default_scopes(self, scopes: &'static [&'static str]) -> Self {
        OauthFlow {
            default_scopes: scopes,
            ..self
        }
    }

    /// The same flow with `codes` as "sign in again" token errors besides
    /// `invalid_grant` ([`TokenRules::grant_errors`]).
    #[must_use]
    pub const fn grant_errors(self, codes: &'static [&'static str]) -> Self {
        OauthFlow {
            token_rules: TokenRules {
                grant_errors: codes,
                ..self.token_rules
            },
            ..self
        }
    }

    /// The same flow counting `expires_in` from the reply's `created_at`
    /// ([`TokenRules::created_at`], GitLab).
    #[must_use]
    pub const fn expiry_from_created_at(self) -> Self {
        OauthFlow {
            token_rules: TokenRules {
                created_at: true,
                ..self.token_rules
            },
            ..self
        }
    }

    /// The same flow repeating the original `redirect_uri` in a refresh
    /// grant (GitLab).
    #[must_use]
    pub const fn refresh_repeats_redirect_uri(self) -> Self {
        OauthFlow {
            refresh_repeats_redirect_uri: true,
            ..self
        }
    }

    /// The same flow with its endpoints below `root(base_url)` instead of
    /// the base URL (GitHub: github.com's for the API host).
    #[must_use]
    pub const fn root(self, root: fn(&str) -> String) -> Self {
        OauthFlow { root, ..self }
    }

    /// The authorize URL ([`authorize_url`]) at the forge `base_url`, for
    /// `scopes` or, when empty, the flow's defaults.
    pub fn authorize_url(
        &self,
        base_url: &str,
        app: &OauthApp,
        state: &str,
        code_challenge: &str,
        scopes: Vec<String>,
    ) -> String {
        let scopes = scopes_or(scopes, self.default_scopes);
        let endpoint = format!("{}{}", (self.root)(base_url), self.authorize_path);
        authorize_url(&endpoint, app, state, code_challenge, &scopes)
    }

    /// The form of a refresh grant ([`refresh_grant`]), with the
    /// `redirect_uri` last when the flow repeats it.
    pub fn refresh_form(&self, app: &OauthApp, refresh_token: &str) -> Form {
        let form = refresh_grant(app, refresh_token);
        if self.refresh_repeats_redirect_uri {
            form.text("redirect_uri", &app.redirect_uri)
        } else {
            form
        }
    }

    /// Posts `form` to the token endpoint ([`request_tokens`]).
    fn tokens(&self, label: &str, base_url: &str, form: Form) -> Result<TokenSet, ForgeError> {
        let url = format!("{}{}", (self.root)(base_url), self.token_path);
        request_tokens(label, url, form, self.token_rules)
    }

    /// Trades an authorization `code` (with the PKCE `code_verifier`) for
    /// tokens; errors are prefixed with `label`.
    pub fn exchange_code(
        &self,
        label: &str,
        base_url: &str,
        app: &OauthApp,
        code: &str,
        code_verifier: &str,
    ) -> Result<TokenSet, ForgeError> {
        self.tokens(label, base_url, code_grant(app, code, code_verifier))
    }

    /// Trades the refresh token behind `refresh_token` (a reference) for new
    /// tokens; errors are prefixed with `label`.
    pub fn refresh(
        &self,
        label: &str,
        base_url: &str,
        app: &OauthApp,
        refresh_token: &str,
    ) -> Result<TokenSet, ForgeError> {
        self.tokens(label, base_url, self.refresh_form(app, refresh_token))
    }
}

/// An `application/x-www-form-urlencoded` body being built.
///
/// Values are percent-encoded, except a secret reference
/// ([`Form::secret`]), which goes in as `${SECRET:<reference>}` for the
/// host to expand at egress. The host percent-encodes the value it puts
/// into a body sent as `application/x-www-form-urlencoded` (which
/// [`Request::form`](crate::http::Request::form) sets), so any secret
/// arrives intact.
#[derive(Debug, Clone, Default)]
pub struct Form {
    body: String,
}

impl Form {
    /// An empty form.
    pub fn new() -> Self {
        Form::default()
    }

    fn key(&mut self, name: &str) {
        if !self.body.is_empty() {
            self.body.push('&');
        }
        self.body.push_str(&percent_encode(name));
        self.body.push('=');
    }

    /// Adds `name=value`, both encoded.
    #[must_use]
    pub fn text(mut self, name: &str, value: &str) -> Self {
        self.key(name);
        self.body.push_str(&percent_encode(value));
        self
    }

    /// Adds `name=${SECRET:reference}`: the host puts the secret in.
    #[must_use]
    pub fn secret(mut self, name: &str, reference: &str) -> Self {
        self.key(name);
        self.body.push_str(&secret_ref(reference));
        self
    }

    /// Adds `client_id` and, for a confidential client, `client_secret` (as
    /// a reference).
    #[must_use]
    pub fn client(self, app: &OauthApp) -> Self {
        let form = self.text("client_id", &app.client_id);
        match &app.client_secret {
            Some(reference) => form.secret("client_secret", reference),
            None => form,
        }
    }

    /// The encoded body.
    pub fn into_body(self) -> String {
        self.body
    }
}

/// How a forge's token endpoint words things, for [`parse_token_reply`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenRules<'a> {
    /// Error codes that mean "sign in again" beyond the standard
    /// `invalid_grant` (GitHub: `bad_verification_code`,
    /// `bad_refresh_token`; Forgejo: `unauthorized_client` for a reused
    /// refresh token).
    pub grant_errors: &'a [&'a str],
    /// Whether `expires_in` counts from the reply's `created_at` (GitLab)
    /// rather than from now.
    pub created_at: bool,
}

/// A token reply's fields; everything optional so that an error reply
/// (any status) and a success share one parse.
#[derive(Deserialize)]
struct Reply {
    access_token: Option<String>,
    token_type: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<serde_json::Value>,
    created_at: Option<serde_json::Value>,
    scope: Option<serde_json::Value>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The longest expiry believed (ten years): a bigger `expires_in` is junk
/// and reads as "no expiry given".
const MAX_EXPIRES_IN: i64 = 10 * 365 * 86_400;

/// A token endpoint's answer as a [`TokenSet`], or why not.
///
/// An `error` field is an error whatever the status (GitHub answers HTTP
/// 200 with one): `invalid_grant` and `rules.grant_errors` are
/// `invalid-grant`, `invalid_client` and other codes `upstream` (a
/// configuration problem, not the operator's sign-in). A 2xx without an
/// access token, a token type other than bearer, or a body that is not JSON
/// is `upstream`; a non-2xx without an `error` maps by status.
pub fn parse_token_reply(
    what: &str,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    rules: TokenRules<'_>,
    now: i64,
) -> Result<TokenSet, ForgeError> {
    let head = format!("{what} → {status}");
    let reply: Option<Reply> = serde_json::from_slice(body).ok();
    let Some(reply) = reply else {
        return Err(if (200..300).contains(&status) {
            ForgeError::Upstream(format!("{head}: the token reply is not JSON"))
        } else {
            wire::status_error(status, headers, &head, None, now)
        });
    };
    if let Some(code) = reply.error.as_deref().filter(|c| !c.is_empty()) {
        let code: String = code.chars().take(64).collect();
        let text = match reply.error_description.as_deref() {
            Some(d) if !d.is_empty() => {
                format!(
                    "{head}: {code}: {}",
                    d.chars().take(200).collect::<String>()
                )
            }
            _ => format!("{head}: {code}"),
        };
        return Err(
            if code == "invalid_grant" || rules.grant_errors.contains(&code.as_str()) {
                ForgeError::InvalidGrant(text)
            } else if status == 429 {
                wire::status_error(status, headers, &head, Some(&code), now)
            } else {
                ForgeError::Upstream(text)
            },
        );
    }
    if !(200..300).contains(&status) {
        return Err(wire::status_error(status, headers, &head, None, now));
    }
    let access_token = reply
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ForgeError::Upstream(format!("{head}: no access_token in the reply")))?;
    if let Some(kind) = reply.token_type.as_deref() {
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(ForgeError::Upstream(format!(
                "{head}: token_type {:?} is not bearer",
                kind.chars().take(32).collect::<String>()
            )));
        }
    }
    let expires_in = reply.expires_in.as_ref().and_then(seconds);
    let start = if rules.created_at {
        reply.created_at.as_ref().and_then(seconds).unwrap_or(now)
    } else {
        now
    };
    let expires_at = expires_in
        .filter(|s| (0..=MAX_EXPIRES_IN).contains(s))
        .and_then(|s| start.checked_add(s));
    let scopes = match reply.scope {
        Some(serde_json::Value::String(s)) => wire::split_scopes(&s),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str())
            .flat_map(wire::split_scopes)
            .collect(),
        _ => Vec::new(),
    };
    Ok(TokenSet {
        access_token,
        refresh_token: reply.refresh_token.filter(|t| !t.is_empty()),
        expires_at,
        scopes,
    })
}

/// A JSON number or numeric string as whole seconds; junk (fractions,
/// negative beyond i64, text) is `None`.
fn seconds(value: &serde_json::Value) -> Option<i64> {
    match value {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(secret: Option<&str>) -> OauthApp {
        OauthApp {
            client_id: "my id".into(),
            client_secret: secret.map(str::to_owned),
            redirect_uri: "https://keyward.example/forge/callback?x=1&y=2".into(),
        }
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved() {
        assert_eq!(percent_encode("aZ09-._~"), "aZ09-._~");
        assert_eq!(percent_encode("a b&c=d/é+"), "a%20b%26c%3Dd%2F%C3%A9%2B");
        assert_eq!(percent_encode(""), "");
    }

    #[test]
    fn authorize_urls_encode_every_parameter() {
        let url = authorize_url(
            "https://f.example/login/oauth/authorize",
            &app(None),
            "st&ate",
            "abc-_",
            &["read:user".into(), "repo".into()],
        );
        assert_eq!(
            url,
            "https://f.example/login/oauth/authorize?response_type=code&client_id=my%20id\
             &redirect_uri=https%3A%2F%2Fkeyward.example%2Fforge%2Fcallback%3Fx%3D1%26y%3D2\
             &state=st%26ate&scope=read%3Auser%20repo&code_challenge=abc-_&code_challenge_method=S256"
        );
        let url = authorize_url("https://f/a?tenant=1", &app(None), "s", "c", &[]);
        assert!(url.starts_with("https://f/a?tenant=1&response_type=code"));
        assert!(!url.contains("scope="));
    }

    #[test]
    fn flows_put_their_endpoints_below_their_root() {
        let plain = OauthFlow::new("/login/oauth/authorize", "/login/oauth/access_token");
        let url = plain.authorize_url("https://f.example//", &app(None), "s", "c", vec![]);
        assert_eq!(
            url,
            "https://f.example/login/oauth/authorize?response_type=code&client_id=my%20id\
             &redirect_uri=https%3A%2F%2Fkeyward.example%2Fforge%2Fcallback%3Fx%3D1%26y%3D2\
             &state=s&code_challenge=c&code_challenge_method=S256"
        );
        fn api_host_to_web(base: &str) -> String {
            base.replace("api.", "")
        }
        let flow = plain
            .default_scopes(&["read:user", "repo"])
            .root(api_host_to_web);
        let url = flow.authorize_url("https://api.f.example", &app(None), "s", "c", vec![]);
        assert!(
            url.starts_with("https://f.example/login/oauth/authorize?")
                && url.contains("&scope=read%3Auser%20repo&"),
            "{url}"
        );
        // Scopes asked for replace the defaults.
        let url = flow.authorize_url("https://f.example", &app(None), "s", "c", vec!["x".into()]);
        assert!(url.contains("&scope=x&"), "{url}");
    }

    #[test]
    fn refresh_forms_repeat_the_redirect_uri_only_when_the_flow_says() {
        let app = app(Some("plugin:gitlab/secret"));
        let plain = OauthFlow::new("/oauth/authorize", "/oauth/token");
        assert_eq!(
            plain.refresh_form(&app, "r").into_body(),
            refresh_grant(&app, "r").into_body()
        );
        let gitlab = plain.refresh_repeats_redirect_uri();
        assert_eq!(
            gitlab.refresh_form(&app, "r").into_body(),
            "grant_type=refresh_token&refresh_token=${SECRET:r}&client_id=my%20id\
             &client_secret=${SECRET:plugin:gitlab/secret}\
             &redirect_uri=https%3A%2F%2Fkeyward.example%2Fforge%2Fcallback%3Fx%3D1%26y%3D2"
        );
    }

    #[test]
    fn forms_encode_values_but_not_secret_references() {
        let body = Form::new()
            .text("grant_type", "authorization_code")
            .text("code", "a+b/c")
            .client(&app(Some("plugin:forgejo/client-secret")))
            .into_body();
        assert_eq!(
            body,
            "grant_type=authorization_code&code=a%2Bb%2Fc&client_id=my%20id\
             &client_secret=${SECRET:plugin:forgejo/client-secret}"
        );
        assert_eq!(
            Form::new().client(&app(None)).into_body(),
            "client_id=my%20id"
        );
    }

    fn parse(status: u16, body: &str, rules: TokenRules<'_>) -> Result<TokenSet, ForgeError> {
        parse_token_reply("POST /token", status, &[], body.as_bytes(), rules, 1_000)
    }

    #[test]
    fn successful_replies_become_token_sets() {
        let t = parse(
            200,
            r#"{"access_token":"a","token_type":"Bearer","expires_in":3600,"refresh_token":"r"}"#,
            TokenRules::default(),
        )
        .expect("ok");
        assert_eq!(
            t,
            TokenSet {
                access_token: "a".into(),
                refresh_token: Some("r".into()),
                expires_at: Some(4_600),
                scopes: vec![]
            }
        );
        // GitHub OAuth App: comma-separated scope, no expiry, no refresh.
        let t = parse(
            200,
            r#"{"access_token":"gho_x","scope":"repo,gist","token_type":"bearer"}"#,
            TokenRules::default(),
        )
        .expect("ok");
        assert_eq!(t.scopes, ["repo", "gist"]);
        assert_eq!((t.refresh_token, t.expires_at), (None, None));
        // GitLab: expiry from created_at.
        let gitlab = TokenRules {
            created_at: true,
            ..TokenRules::default()
        };
        let t = parse(
            200,
            r#"{"access_token":"a","token_type":"bearer","expires_in":7200,"refresh_token":"r","created_at":1607635748,"scope":"api read_user"}"#,
            gitlab,
        )
        .expect("ok");
        assert_eq!(t.expires_at, Some(1_607_642_948));
        assert_eq!(t.scopes, ["api", "read_user"]);
        // No token_type at all is accepted; an empty refresh token is none.
        let t = parse(
            201,
            r#"{"access_token":"a","refresh_token":"","scope":["a","b"]}"#,
            gitlab,
        )
        .expect("ok");
        assert_eq!((t.refresh_token, t.expires_at), (None, None));
        assert_eq!(t.scopes, ["a", "b"]);
    }

    #[test]
    fn junk_expiry_is_no_expiry() {
        for expires in [
            "-5",
            "1e30",
            "99999999999999999999999",
            "\"soon\"",
            "1.5",
            "null",
            "[]",
        ] {
            let t = parse(
                200,
                &format!(r#"{{"access_token":"a","expires_in":{expires}}}"#),
                TokenRules::default(),
            )
            .expect("still a token");
            assert_eq!(t.expires_at, None, "{expires}");
        }
        let t = parse(
            200,
            r#"{"access_token":"a","expires_in":"60"}"#,
            TokenRules::default(),
        )
        .expect("ok");
        assert_eq!(t.expires_at, Some(1_060));
        // created_at near i64::MAX does not overflow.
        let t = parse(
            200,
            r#"{"access_token":"a","expires_in":60,"created_at":9223372036854775800}"#,
            TokenRules {
                created_at: true,
                ..TokenRules::default()
            },
        )
        .expect("ok");
        assert_eq!(t.expires_at, None);
    }

    #[test]
    fn error_replies_map_whatever_the_status() {
        let github = TokenRules {
            grant_errors: &["bad_verification_code", "bad_refresh_token"],
            ..TokenRules::default()
        };
        assert_eq!(
            parse(
                200,
                r#"{"error":"bad_verification_code","error_description":"The code passed is incorrect or expired.","error_uri":"x"}"#,
                github
            ),
            Err(ForgeError::InvalidGrant(
                "POST /token → 200: bad_verification_code: The code passed is incorrect or expired."
                    .into()
            ))
        );
        assert!(matches!(
            parse(200, r#"{"error":"incorrect_client_credentials"}"#, github),
            Err(ForgeError::Upstream(m)) if m == "POST /token → 200: incorrect_client_credentials"
        ));
        // GitLab: 401 for client problems, 400 otherwise.
        assert!(matches!(
            parse(
                401,
                r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#,
                TokenRules::default()
            ),
            Err(ForgeError::Upstream(_))
        ));
        assert!(matches!(
            parse(
                400,
                r#"{"error":"invalid_grant","error_description":"The provided authorization grant is invalid"}"#,
                TokenRules::default()
            ),
            Err(ForgeError::InvalidGrant(_))
        ));
        // Forgejo: a reused refresh token.
        let forgejo = TokenRules {
            grant_errors: &["unauthorized_client"],
            ..TokenRules::default()
        };
        assert!(matches!(
            parse(
                400,
                r#"{"error":"unauthorized_client","error_description":"token was already used"}"#,
                forgejo
            ),
            Err(ForgeError::InvalidGrant(_))
        ));
        // An error wins over a token in the same reply.
        assert!(matches!(
            parse(
                200,
                r#"{"access_token":"a","error":"invalid_grant"}"#,
                forgejo
            ),
            Err(ForgeError::InvalidGrant(_))
        ));
    }

    #[test]
    fn hostile_replies_are_upstream_errors() {
        let rules = TokenRules::default();
        for (status, body) in [
            (200, "not json"),
            (200, "[]"),
            (200, "{}"),
            (200, r#"{"access_token":""}"#),
            (200, r#"{"access_token":17}"#),
            (200, r#"{"access_token":"a","token_type":"mac"}"#),
            (500, "<html>oops</html>"),
            (400, "{}"),
        ] {
            assert!(
                matches!(parse(status, body, rules), Err(ForgeError::Upstream(_))),
                "{status} {body}"
            );
        }
        let err = parse_token_reply("POST /t", 200, &[], &[0xff, 0xfe, b'{'], rules, 0)
            .expect_err("not UTF-8");
        assert!(matches!(err, ForgeError::Upstream(_)));
        assert!(matches!(
            parse(401, "", rules),
            Err(ForgeError::Unauthorized(_))
        ));
        assert!(matches!(
            parse(429, "", rules),
            Err(ForgeError::RateLimited(_))
        ));
        // A huge description is cut.
        let long = format!(
            r#"{{"error":"x","error_description":"{}"}}"#,
            "d".repeat(10_000)
        );
        let err = parse(400, &long, rules).expect_err("error");
        assert!(err.message().len() < 400);
    }
}
