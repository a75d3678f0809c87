//! A small HTTP client over the host's `outbound::fetch`.
//!
//! The host, not the plugin, makes the connection: it checks the origin
//! against the plugin's grants, expands `${SECRET:…}` (see
//! [`secret_ref`](crate::secret_ref)) in header values and the body, caps the
//! response size and does not follow redirects across origins. This module
//! only saves every plugin from hand-building WIT records and from parsing
//! forge error bodies.
//!
//! ```no_run
//! use keyward_plugin_sdk::{http::Request, secret_ref, Error};
//!
//! #[derive(serde::Deserialize)]
//! struct User {
//!     login: String,
//! }
//!
//! fn login(base: &str, token: &str) -> Result<String, Error> {
//!     let user: User = Request::get(format!("{base}/api/v1/user"))
//!         .header("authorization", format!("token {}", secret_ref(token)))
//!         .send()?
//!         .error_for_status()?
//!         .json()?;
//!     Ok(user.login)
//! }
//! ```

use serde::{de::DeserializeOwned, Serialize};

use crate::oauth::{self, TokenRules};
use crate::{outbound, wire, Error, ForgeError, TokenSet};

/// Longest piece of a non-JSON error body quoted in an error: enough for a
/// proxy's one-line reason, not a whole HTML page.
const MAX_QUOTED_BODY: usize = 200;

/// An HTTP request being built; nothing leaves the plugin until
/// [`send`](Request::send).
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    /// A builder step that failed (a body that would not serialize). Kept
    /// until `send` so that the builder chains without `?` at every step.
    error: Option<Error>,
}

impl Request {
    /// A request with any method the host accepts (`GET`, `POST`, `PUT`,
    /// `PATCH`, `DELETE`, `HEAD`); the host rejects others as `invalid`.
    pub fn new(method: &str, url: impl Into<String>) -> Self {
        Request {
            method: method.to_ascii_uppercase(),
            url: url.into(),
            headers: Vec::new(),
            body: None,
            error: None,
        }
    }

    /// A `GET` request for `url`, which must be absolute (`https://…`).
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    /// A `POST` request for `url`, which must be absolute (`https://…`).
    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }

    /// Adds a header. The value may hold `${SECRET:reference}` (see
    /// [`secret_ref`](crate::secret_ref)); the host expands it on the way
    /// out, so the plugin never holds the secret.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body to `value` as JSON and, unless a `content-type` header
    /// was given, says so in one.
    #[must_use]
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => {
                if !self
                    .headers
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
                {
                    self.headers
                        .push(("content-type".into(), "application/json".into()));
                }
                self.body = Some(body);
            }
            Err(e) => {
                self.error = Some(Error::Invalid(format!(
                    "{}: the request body does not serialize as JSON: {e}",
                    request_line(&self.method, &self.url)
                )));
            }
        }
        self
    }

    /// Sets the body to raw bytes (set a `content-type` header yourself).
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Sends the request through the host and waits for the whole response.
    ///
    /// Fails with the host's error (`denied` for an ungranted origin,
    /// `limit` for too many calls or too large a response, `upstream` when
    /// the connection fails). A non-2xx status is *not* an error here; use
    /// [`Response::error_for_status`]. Only works inside a plugin: natively
    /// the host import is missing and this panics.
    pub fn send(self) -> Result<Response, Error> {
        let (request, line) = self.into_wit()?;
        let response = outbound::fetch(&request)?;
        Ok(Response {
            status: response.status,
            headers: response.headers,
            body: response.body,
            request_line: line,
        })
    }

    /// [`send`](Request::send) for a forge call: the host's `upstream`
    /// (connection refused, timeout, TLS) is the forge's
    /// [`ForgeError::Transport`]; any other host error stays
    /// [`ForgeError::Host`].
    pub fn send_forge(self) -> Result<Response, ForgeError> {
        self.send().map_err(|e| match e {
            Error::Upstream(m) => ForgeError::Transport(m),
            other => ForgeError::Host(other),
        })
    }

    /// A whole forge call: [`send_forge`](Request::send_forge), then
    /// [`Response::check`], then `read` on the 2xx answer, every error
    /// prefixed with `label` (the adapter's kind, see
    /// [`ForgeError::context`]).
    pub fn send_and_read<T>(
        self,
        label: &str,
        read: impl FnOnce(&Response) -> Result<T, ForgeError>,
    ) -> Result<T, ForgeError> {
        self.send_forge()
            .and_then(Response::check)
            .and_then(|r| read(&r))
            .map_err(|e| e.context(label))
    }

    /// Adds `authorization: Bearer ${SECRET:reference}`: the host puts in
    /// the token behind `reference` as the request leaves.
    #[must_use]
    pub fn bearer(self, reference: &str) -> Self {
        self.header(
            "authorization",
            format!("Bearer {}", crate::secret_ref(reference)),
        )
    }

    /// Sets a form body (see [`oauth::Form`]) and its content type.
    #[must_use]
    pub fn form(self, form: oauth::Form) -> Self {
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(form.into_body())
    }

    /// The WIT record for this request, and its request line for errors.
    fn into_wit(self) -> Result<(outbound::Request, String), Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let line = request_line(&self.method, &self.url);
        let request = outbound::Request {
            method: self.method,
            url: self.url,
            headers: self.headers,
            body: self.body,
        };
        Ok((request, line))
    }
}

/// A complete HTTP response, as the host handed it over.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lower case, from the host) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body, at most the plugin's `response_bytes` limit.
    pub body: Vec<u8>,
    /// `METHOD /path` of the request, to say which call an error is about.
    request_line: String,
}

impl Response {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of header `name`, compared case-insensitively as HTTP
    /// requires.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 text; `upstream` error if it is not.
    pub fn text(&self) -> Result<&str, Error> {
        std::str::from_utf8(&self.body).map_err(|e| {
            Error::Upstream(format!(
                "{} → {}: the body is not UTF-8: {e}",
                self.request_line, self.status
            ))
        })
    }

    /// The body parsed as JSON into `T`. Does not look at the status: call
    /// [`error_for_status`](Response::error_for_status) first, or a forge's
    /// error body becomes a confusing "missing field" error.
    ///
    /// A body that does not parse is the remote end's fault, so it is an
    /// `upstream` error naming the request.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::Upstream(format!(
                "{} → {}: the body is not the expected JSON: {e}",
                self.request_line, self.status
            ))
        })
    }

    /// `self` if the status is 2xx; otherwise an `upstream` error such as
    /// `GET /api/v1/user → 401: Bad credentials`, quoting the message of the
    /// error body (`{"message"}` on Forgejo, GitHub and GitLab,
    /// `{"error","error_description"}` on OAuth endpoints) when there is one.
    pub fn error_for_status(self) -> Result<Self, Error> {
        if self.is_success() {
            return Ok(self);
        }
        let head = format!("{} → {}", self.request_line, self.status);
        Err(Error::Upstream(match error_message(&self.body) {
            Some(message) => format!("{head}: {message}"),
            None => head,
        }))
    }
}

impl Response {
    /// `self` if the status is 2xx; otherwise the [`ForgeError`] for the
    /// status (see [`wire::status_error`]), quoting the forge's message.
    pub fn check(self) -> Result<Self, ForgeError> {
        if self.is_success() {
            return Ok(self);
        }
        let head = format!("{} → {}", self.request_line, self.status);
        let message = error_message(&self.body);
        Err(wire::status_error(
            self.status,
            &self.headers,
            &head,
            message.as_deref(),
            wire::now(),
        ))
    }

    /// [`json`](Response::json) for a forge call: a body that does not
    /// parse is [`ForgeError::Upstream`].
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ForgeError> {
        self.json()
            .map_err(|e| ForgeError::Upstream(e.message().to_owned()))
    }

    /// The body as a token endpoint's reply (see
    /// [`oauth::parse_token_reply`]), whatever the status.
    pub fn token_set(&self, rules: TokenRules<'_>) -> Result<TokenSet, ForgeError> {
        oauth::parse_token_reply(
            &self.request_line,
            self.status,
            &self.headers,
            &self.body,
            rules,
            wire::now(),
        )
    }

    /// The `rel="next"` target of the `Link` header, if any.
    pub fn next_link(&self) -> Option<String> {
        self.header("link").and_then(wire::next_link)
    }
}

impl Response {
    /// A response built by hand, as the host would hand it over for
    /// `request_line` (e.g. `GET /api/v1/user`): for unit tests of an
    /// adapter's parsers, which run natively without a host.
    pub fn for_test(
        request_line: &str,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Self {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.to_vec(),
            request_line: request_line.to_owned(),
        }
    }
}

/// The human part of an error body: the JSON fields forges use, else the
/// first line of a short text body.
fn error_message(body: &[u8]) -> Option<String> {
    if let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(body) {
        let text = |key: &str| {
            fields
                .get(key)
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
        };
        return match (
            fields.get("message"),
            text("error"),
            text("error_description"),
        ) {
            (Some(serde_json::Value::String(m)), _, _) if !m.is_empty() => Some(m.clone()),
            // GitLab validation errors: `{"message": {"field": ["reason"]}}`.
            (Some(m @ (serde_json::Value::Object(_) | serde_json::Value::Array(_))), _, _) => {
                Some(m.to_string())
            }
            (_, Some(error), Some(description)) => Some(format!("{error}: {description}")),
            (_, Some(error), None) => Some(error.to_owned()),
            _ => None,
        };
    }
    let line = std::str::from_utf8(body)
        .ok()?
        .trim()
        .lines()
        .next()?
        .trim();
    if line.is_empty() {
        return None;
    }
    let mut quoted: String = line.chars().take(MAX_QUOTED_BODY).collect();
    if quoted.len() < line.len() {
        quoted.push('…');
    }
    Some(quoted)
}

/// `METHOD /path` for `url`: the path says which call failed, while the
/// query (which may carry parameters a log should not keep) is left out.
fn request_line(method: &str, url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
    let path = path.split(['?', '#']).next().unwrap_or("/");
    format!("{method} {path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> Response {
        Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
            request_line: "GET /api/v1/user".into(),
        }
    }

    #[test]
    fn the_request_line_has_the_path_without_the_query() {
        assert_eq!(
            request_line("GET", "https://h.example/api/v1/user?x=1#f"),
            "GET /api/v1/user"
        );
        assert_eq!(request_line("GET", "https://h.example"), "GET /");
        assert_eq!(
            request_line("POST", "http://127.0.0.1:8080/a/b"),
            "POST /a/b"
        );
    }

    #[test]
    fn a_request_becomes_the_wit_record() {
        let (req, line) = Request::get("https://h.example/u")
            .header(
                "authorization",
                format!("token {}", crate::secret_ref("a/b")),
            )
            .into_wit()
            .expect("no builder error");
        assert_eq!(line, "GET /u");
        assert_eq!(req.method, "GET");
        assert_eq!(req.url, "https://h.example/u");
        assert_eq!(
            req.headers,
            [("authorization".to_owned(), "token ${SECRET:a/b}".to_owned())]
        );
        assert_eq!(req.body, None);
    }

    #[test]
    fn json_sets_the_body_and_a_content_type_once() {
        let (req, _) = Request::post("https://h.example/x")
            .json(&serde_json::json!({"a": 1}))
            .into_wit()
            .expect("serializes");
        assert_eq!(req.body.as_deref(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(
            req.headers,
            [("content-type".to_owned(), "application/json".to_owned())]
        );

        let (req, _) = Request::post("https://h.example/x")
            .header("Content-Type", "application/vnd.x+json")
            .json(&1)
            .into_wit()
            .expect("serializes");
        assert_eq!(req.headers.len(), 1);
    }

    #[test]
    fn a_body_that_does_not_serialize_fails_at_send() {
        let mut map = std::collections::HashMap::new();
        map.insert(vec![1u8], 1); // JSON object keys must be strings
        let err = Request::post("https://h.example/x")
            .json(&map)
            .into_wit()
            .expect_err("non-string keys");
        assert!(matches!(err, Error::Invalid(m) if m.starts_with("POST /x: ")));
    }

    #[test]
    fn check_maps_statuses_to_forge_errors() {
        let r = |status, headers: &[(&str, &str)], body: &str| {
            Response::for_test("GET /user", status, headers, body.as_bytes()).check()
        };
        assert!(r(200, &[], "").is_ok());
        assert_eq!(
            r(401, &[], r#"{"message":"Bad credentials"}"#).err(),
            Some(ForgeError::Unauthorized(
                "GET /user → 401: Bad credentials".into()
            ))
        );
        assert!(matches!(
            r(403, &[("x-ratelimit-remaining", "0")], "{}"),
            Err(ForgeError::RateLimited(_))
        ));
        assert!(matches!(
            r(404, &[], "\u{ff}"),
            Err(ForgeError::NotFound(_))
        ));
        assert!(matches!(
            Response::for_test("GET /user", 500, &[], &[0xff, 0xfe]).check(),
            Err(ForgeError::Upstream(m)) if m == "GET /user → 500"
        ));
        let bad: Result<u64, _> = Response::for_test("GET /user", 200, &[], b"{").parse();
        assert!(matches!(bad, Err(ForgeError::Upstream(_))));
        let link = Response::for_test(
            "GET /r",
            200,
            &[("link", r#"<https://f/r?page=2>; rel="next""#)],
            b"[]",
        );
        assert_eq!(link.next_link().as_deref(), Some("https://f/r?page=2"));
    }

    #[test]
    fn form_bodies_get_their_content_type() {
        let (req, _) = Request::post("https://h.example/t")
            .form(crate::oauth::Form::new().text("a", "b c"))
            .into_wit()
            .expect("builds");
        assert_eq!(req.body.as_deref(), Some(&b"a=b%20c"[..]));
        assert_eq!(
            req.headers,
            [(
                "content-type".to_owned(),
                "application/x-www-form-urlencoded".to_owned()
            )]
        );
    }

    #[test]
    fn headers_are_found_case_insensitively() {
        let r = response(200, "{}");
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(r.header("x-missing"), None);
    }

    #[test]
    fn error_for_status_quotes_the_forge_message() {
        let err = response(
            401,
            r#"{"message":"Bad credentials","documentation_url":"…"}"#,
        )
        .error_for_status()
        .expect_err("401");
        assert_eq!(
            err,
            Error::Upstream("GET /api/v1/user → 401: Bad credentials".into())
        );

        let err = response(
            401,
            r#"{"error":"invalid_token","error_description":"Token was revoked."}"#,
        )
        .error_for_status()
        .expect_err("401");
        assert_eq!(
            err.message(),
            "GET /api/v1/user → 401: invalid_token: Token was revoked."
        );

        let err = response(400, r#"{"message":{"name":["is too long"]}}"#)
            .error_for_status()
            .expect_err("400");
        assert_eq!(
            err.message(),
            r#"GET /api/v1/user → 400: {"name":["is too long"]}"#
        );

        let err = response(502, "<html>Bad gateway</html>\nmore")
            .error_for_status()
            .expect_err("502");
        assert_eq!(
            err.message(),
            "GET /api/v1/user → 502: <html>Bad gateway</html>"
        );

        let err = response(500, "").error_for_status().expect_err("500");
        assert_eq!(err.message(), "GET /api/v1/user → 500");
    }

    #[test]
    fn long_text_bodies_are_cut() {
        let body = "x".repeat(1000);
        let err = response(500, &body).error_for_status().expect_err("500");
        assert_eq!(err.message().chars().filter(|c| *c == 'x').count(), 200);
        assert!(err.message().ends_with('…'));
    }

    #[test]
    fn json_parses_or_names_the_request() {
        #[derive(serde::Deserialize)]
        struct User {
            id: u64,
        }
        let user: User = response(200, r#"{"id":7}"#).json().expect("parses");
        assert_eq!(user.id, 7);
        let err = response(200, "[]")
            .json::<User>()
            .err()
            .expect("an array is no User");
        assert!(matches!(err, Error::Upstream(m) if m.starts_with("GET /api/v1/user → 200: ")));
    }
}
