//! The dashboard: server-rendered pages (maud) for operators signed in with
//! a session cookie. No script and no third-party asset: one vendored
//! stylesheet. Values go in through password inputs and never come back;
//! a stored value is shown only as `••••`.
//!
//! Every page goes through [`SignedIn`] and every form through
//! [`Submitted`], which also checks the form's CSRF token and that the
//! request came from this origin: a route cannot forget either.
//!
//! (Over 500 lines: the shared page frame, cookie policy and form
//! extractors every page module uses; the pages themselves are in files of
//! their own.)

mod agent_type;
mod agents;
mod deletion;
mod log;
mod login;
mod plugins;
mod secrets;
mod token_form;
mod tokens;
mod versions;

pub use agent_type::{agent_type_dispatch, agent_type_page, agent_type_token, instance_delete};
pub use agents::{
    agent_type_create, agent_type_delete, agent_type_delete_confirm, agent_types_page,
};
pub use deletion::{
    secret_delete, secret_delete_confirm, secret_destroy, secret_destroy_confirm, secret_undelete,
};
pub use log::{log_page, log_verify};
pub use login::{login_confirm, login_page, login_submit, logout};
pub use plugins::{plugins_page, plugins_reload};
pub use secrets::{
    secret_create, secret_describe, secret_page, secret_replace, secret_rotate, secrets_page,
};
pub use tokens::{token_create, token_revoke, token_rotate, tokens_page};
pub use versions::{rollback as secret_rollback, rollback_confirm as secret_rollback_confirm};

use axum::extract::{Form, FromRequest, FromRequestParts, Request};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, HOST, LOCATION, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::error::ApiError;
use super::AppState;
use crate::auth::{AuthError, Session};

/// How the dashboard sets its cookie.
#[derive(Clone, Copy, Debug, Default)]
pub struct CookiePolicy {
    /// Add `Secure` and use the `__Host-` name: the public URL is https
    /// (`KEYWARD_PUBLIC_URL`), so the browser must never send it in clear.
    pub secure: bool,
}

impl CookiePolicy {
    /// The cookie's name.
    pub fn name(self) -> &'static str {
        if self.secure {
            "__Host-keyward_session"
        } else {
            "keyward_session"
        }
    }

    fn set(self, value: &str, max_age_s: i64) -> HeaderValue {
        self.cookie(self.name(), "Strict", value, max_age_s)
    }

    fn cookie(self, name: &str, same_site: &str, value: &str, max_age_s: i64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let cookie = format!(
            "{name}={value}; Path=/; HttpOnly; SameSite={same_site}; Max-Age={max_age_s}{secure}"
        );
        // The value is base64url (or empty): always a valid header value.
        HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// The pre-auth cookie's name: it binds a forge sign-in to the browser
    /// that started it.
    pub fn pre_auth_name(self) -> &'static str {
        if self.secure {
            "__Host-keyward_signin"
        } else {
            "keyward_signin"
        }
    }

    /// `Set-Cookie` of the pre-auth cookie, for as long as a sign-in may
    /// take. `SameSite=Lax`, not `Strict`: the callback is a top-level
    /// navigation from the forge's site, on which a Strict cookie is not
    /// sent.
    pub fn pre_auth(self, nonce: &str) -> HeaderValue {
        let ttl_s = crate::forge::oauth::PENDING_TTL_MS / 1000;
        self.cookie(self.pre_auth_name(), "Lax", nonce, ttl_s)
    }

    /// `Set-Cookie` that removes the pre-auth cookie.
    pub fn clear_pre_auth(self) -> HeaderValue {
        self.cookie(self.pre_auth_name(), "Lax", "", 0)
    }

    /// `Set-Cookie` that starts a session.
    pub fn start(self, secret: &str) -> HeaderValue {
        self.set(secret, crate::auth::session::SESSION_TTL_MS / 1000)
    }

    /// `Set-Cookie` that removes it.
    pub fn clear(self) -> HeaderValue {
        self.set("", 0)
    }
}

/// What a page or form can fail with: an HTML page with the status of the
/// API's error (the same codes as [`ApiError`]).
pub enum PageError {
    /// No live session: a page redirects to `/login`; a form gets 401.
    SignIn {
        /// Whether the request was a GET (redirect) or a form (401 page).
        page: bool,
    },
    /// Anything else, with the API's status and message.
    Failed(ApiError),
}

/// Every error a handler meets becomes the API's error, then a page.
macro_rules! page_error_from {
    ($($from:ty),*) => {$(
        impl From<$from> for PageError {
            fn from(e: $from) -> Self {
                PageError::Failed(ApiError::from(e))
            }
        }
    )*};
}

page_error_from!(
    ApiError,
    AuthError,
    crate::vault::VaultError,
    crate::names::NameError,
    crate::audit::AccessError,
    crate::forge::ForgeError
);

/// What an operator is told about a failure, and its status: the API's
/// status and message, except that a server fault is logged in full and
/// answered briefly, as the API does.
pub fn problem(e: &ApiError) -> (StatusCode, String) {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::error!(error = %e, "dashboard request failed");
        // A part of the service that is not running is the operator's to
        // know about; a failure inside one is the log's.
        let missing = matches!(
            e,
            ApiError::Unavailable(_) | ApiError::Forge(crate::forge::ForgeError::NoRuntime)
        );
        let brief = if missing {
            e.to_string()
        } else {
            "The store is unavailable or failed; see the server log and try again.".to_owned()
        };
        return (status, brief);
    }
    (status, e.to_string())
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::SignIn { page: true } => see_other("/login"),
            PageError::SignIn { page: false } => page_response(
                StatusCode::UNAUTHORIZED,
                "Signed out",
                html! {
                    p role="alert" { "Your session has ended. " a href="/login" { "Sign in again" } "." }
                },
            ),
            PageError::Failed(e) => {
                let (status, message) = problem(&e);
                page_response(
                    status,
                    "Not done",
                    html! {
                        p role="alert" { (message) }
                        p { a href="/settings/secrets" { "Back to secrets" } }
                    },
                )
            }
        }
    }
}

/// A signed-in operator (from the session cookie; bearer tokens do not
/// sign in to the dashboard).
pub struct SignedIn(pub Session);

pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

async fn session_of(parts: &Parts, state: &AppState) -> Result<Session, PageError> {
    let page = parts.method == Method::GET || parts.method == Method::HEAD;
    let secret = cookie(&parts.headers, state.web.name()).ok_or(PageError::SignIn { page })?;
    match state.sessions.get(secret).await {
        Ok(session) => {
            super::trace::record_accessor(&session.accessor());
            Ok(session)
        }
        Err(AuthError::Invalid) => Err(PageError::SignIn { page }),
        Err(e) => Err(e.into()),
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        session_of(parts, state).await.map(SignedIn)
    }
}

/// Refuses a form a browser says came from another origin. The CSRF token
/// is the real check; this one costs nothing and also covers the sign-in
/// form, which has no session yet. Clients that send neither header (curl)
/// are left to the token.
pub fn same_origin(headers: &HeaderMap) -> Result<(), AuthError> {
    let site = headers.get("sec-fetch-site").map(HeaderValue::as_bytes);
    if site.is_some_and(|s| !matches!(s, b"same-origin" | b"none")) {
        return Err(AuthError::Csrf);
    }
    if let Some(origin) = headers.get(ORIGIN) {
        // A privacy-minded browser may send `Origin: null` for its own
        // forms; that is trusted only when it also says same-origin.
        if origin.as_bytes() == b"null" && site == Some(b"same-origin") {
            return Ok(());
        }
        let host = headers.get(HOST).and_then(|h| h.to_str().ok());
        let origin_host = origin.to_str().ok().and_then(|o| {
            o.strip_prefix("https://")
                .or_else(|| o.strip_prefix("http://"))
        });
        if host.is_none() || origin_host != host {
            return Err(AuthError::Csrf);
        }
    }
    Ok(())
}

/// A form of type `T` from a signed-in operator, its CSRF token checked.
pub struct Submitted<T> {
    /// Who sent it.
    pub session: Session,
    /// The fields.
    pub form: T,
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for Submitted<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, PageError> {
        let (parts, body) = req.into_parts();
        let session = session_of(&parts, state).await?;
        same_origin(&parts.headers)?;
        let bytes =
            axum::body::Bytes::from_request(Request::from_parts(parts.clone(), body), state)
                .await
                .map_err(|e| ApiError::Body {
                    status: e.status().as_u16(),
                    message: format!("cannot read the form: {}", e.body_text()),
                })?;
        // The CSRF token is checked before any field is looked at, so a
        // forged form learns nothing, not even which field it got wrong.
        let csrf = url::form_urlencoded::parse(&bytes)
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        session.check_csrf(&csrf)?;
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        let Form(form) = Form::<T>::from_request(req, state).await.map_err(|e| {
            ApiError::Invalid(format!(
                "the form is not what this page sends: {}",
                e.body_text()
            ))
        })?;
        Ok(Submitted { session, form })
    }
}

/// A form's fields as sent, repeated keys kept: a group of checkboxes
/// sends one pair per box ticked, which a struct of fields cannot take.
/// (No `Debug`: forms that carry a value use a struct with a zeroizing
/// field instead.)
#[derive(Deserialize)]
#[serde(transparent)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// The first value of `key`.
    pub fn one(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A 303 to `to` (after a form: the browser then GETs the page).
pub fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

/// Percent-encodes a query value.
pub fn q(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Unix milliseconds as `2026-11-23 10:04:05 UTC`.
pub fn when(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replacen('T', " ", 1)
        .replace('Z', " UTC")
}

/// A whole page: the layout, the navigation (when signed in) and `body`.
pub fn page(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Keyward" }
                link rel="stylesheet" href="/static/keyward.css";
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header {
                    span class="brand" { "Keyward" }
                    @if let Some(s) = session {
                        nav aria-label="Main" {
                            ul {
                                li { a href="/settings/secrets" { "Secrets" } }
                                li { a href="/settings/tokens" { "API tokens" } }
                                li { a href="/settings/agent-types" { "Agent types" } }
                                li { a href="/settings/plugins" { "Plugins" } }
                                li { a href="/settings/access-log" { "Access log" } }
                                li { a href="/api" { "API" } }
                            }
                        }
                        form method="post" action="/logout" class="inline" {
                            (csrf_field(s))
                            span class="who" { "Signed in as " (s.subject) " " }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The hidden CSRF field every form carries.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf()); }
}

/// A notice after a redirect, from a fixed list (nothing from the query is
/// echoed but a known key).
pub fn notice(key: Option<&str>) -> Markup {
    let text = match key {
        Some("created") => "Secret added.",
        Some("described") => "Description saved.",
        Some("replaced") => "Value replaced; the version went up.",
        Some("rotated") => "Re-sealed under the current master key.",
        Some("deleted") => {
            "Secret deleted. It can be undeleted below until its date; its access log stays."
        }
        Some("undeleted") => "Secret undeleted, with its value and versions.",
        Some("destroyed") => "Secret destroyed with every version. Its access log stays.",
        Some("rolled-back") => "Rolled back: the earlier value is the new version.",
        Some("revoked") => "Token revoked.",
        Some("reloaded") => "Plugins reloaded.",
        Some("agent-created") => "Agent type added.",
        Some("agent-deleted") => "Agent type deleted. Its token secrets stay in the store.",
        Some("token-set") => "Token saved; the next dispatch uses it.",
        Some("override-removed") => {
            "Instance override removed; the instance uses its type's token."
        }
        _ => return html! {},
    };
    html! { p class="notice" role="status" { (text) } }
}

/// `page` as a response with `status`, never cached, never framed.
pub fn page_response(status: StatusCode, title: &str, body: Markup) -> Response {
    html_response(status, page(title, None, body))
}

/// An HTML response with the dashboard's headers.
pub fn html_response(status: StatusCode, markup: Markup) -> Response {
    let mut r = (status, markup.into_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    // A sign-in link is in the URL: no Referer may carry it to another
    // origin. (`no-referrer` would also make Chromium send `Origin: null`
    // with the dashboard's own forms.)
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    r
}

/// `GET /static/keyward.css`: the one vendored asset.
pub async fn stylesheet() -> Response {
    let mut r = include_str!("keyward.css").into_response();
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

/// `GET /`: the dashboard.
pub async fn root() -> Response {
    see_other("/settings/secrets")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_secure_exactly_when_the_public_url_is_https() {
        let plain = CookiePolicy { secure: false }.start("abc");
        let plain = plain.to_str().expect("ascii");
        assert!(plain.starts_with("keyward_session=abc;"), "{plain}");
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        assert!(!plain.contains("Secure"));
        let tls = CookiePolicy { secure: true }.start("abc");
        let tls = tls.to_str().expect("ascii");
        // `__Host-` makes the browser insist on Secure, Path=/ and no Domain.
        assert!(tls.starts_with("__Host-keyward_session=abc;"), "{tls}");
        assert!(tls.contains("; Secure") && tls.contains("Path=/") && !tls.contains("Domain"));
        let pre = CookiePolicy { secure: false }.pre_auth("n0nce");
        let pre = pre.to_str().expect("ascii");
        assert!(pre.starts_with("keyward_signin=n0nce;"), "{pre}");
        assert!(
            pre.contains("HttpOnly") && pre.contains("SameSite=Lax") && !pre.contains("Secure")
        );
        let pre = CookiePolicy { secure: true }.pre_auth("n0nce");
        let pre = pre.to_str().expect("ascii");
        assert!(
            pre.starts_with("__Host-keyward_signin=") && pre.contains("; Secure"),
            "{pre}"
        );
        assert!(CookiePolicy { secure: true }
            .clear()
            .to_str()
            .expect("ascii")
            .contains("Max-Age=0"));
    }

    #[test]
    fn forms_from_elsewhere_are_refused() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        let ok = [
            headers(&[]),
            headers(&[("host", "k:8080"), ("origin", "http://k:8080")]),
            headers(&[
                ("host", "k"),
                ("origin", "https://k"),
                ("sec-fetch-site", "same-origin"),
            ]),
        ];
        for h in &ok {
            assert!(same_origin(h).is_ok(), "{h:?}");
        }
        let bad = [
            headers(&[("host", "k:8080"), ("origin", "http://evil:8080")]),
            headers(&[("host", "k:8080"), ("origin", "http://k:8081")]),
            headers(&[("host", "k"), ("origin", "null")]),
            headers(&[
                ("host", "k"),
                ("origin", "null"),
                ("sec-fetch-site", "none"),
            ]),
            headers(&[
                ("host", "k"),
                ("origin", "http://e"),
                ("sec-fetch-site", "same-origin"),
            ]),
            headers(&[("origin", "http://k")]),
            headers(&[("sec-fetch-site", "cross-site")]),
            headers(&[("sec-fetch-site", "same-site")]),
        ];
        for h in &bad {
            assert!(same_origin(h).is_err(), "{h:?}");
        }
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1; keyward_session=xyz"));
        h.append(COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, "keyward_session"), Some("xyz"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "keyward"), None);
    }
}
