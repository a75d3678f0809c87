//! The CLI as a client of a running `keyward serve`. With `KEYWARD_ADDR`
//! (and `KEYWARD_TOKEN`) set, the commands that have an HTTP form call the
//! server with that token instead of opening the store: the machine the
//! CLI runs on needs neither the master key nor the database, and every
//! read is logged by the server under the token's name. Without
//! `KEYWARD_ADDR`, or with `--local`, the CLI opens the store as always.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use zeroize::Zeroizing;

use super::Cli;

/// The server's address, e.g. `http://127.0.0.1:8200`.
pub const ADDR_VAR: &str = "KEYWARD_ADDR";
/// The API token the CLI calls the server with.
pub const TOKEN_VAR: &str = "KEYWARD_TOKEN";

/// How long one call may take. Generous: `audit verify` reads the whole
/// log on the server.
const CALL_TIMEOUT: Duration = Duration::from_secs(600);
/// How long reaching the server may take before the CLI gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call to the server failed. Exit codes in [`super::exit_code_of`].
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// `KEYWARD_ADDR` without `KEYWARD_TOKEN`.
    #[error("{ADDR_VAR} is set but {TOKEN_VAR} is not: the CLI calls the server with an API token (`keyward token create`); unset {ADDR_VAR} or pass --local to open the store here instead")]
    NoToken,
    /// `KEYWARD_ADDR` is not an http(s) URL.
    #[error("{ADDR_VAR}={0:?} is not an http:// or https:// address")]
    BadAddr(String),
    /// `KEYWARD_TOKEN` cannot go in a header.
    #[error("{TOKEN_VAR} holds characters an HTTP header cannot carry")]
    BadToken,
    /// The server could not be reached, or the call timed out.
    #[error("cannot reach the Keyward server at {addr}: {problem}")]
    Unreachable {
        /// `KEYWARD_ADDR`.
        addr: String,
        /// What went wrong.
        problem: String,
    },
    /// The server answered with an error.
    #[error("the server refused: {message} (HTTP {status}, {code})")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The API's error code (`missing_secrets`, `forbidden`, …).
        code: String,
        /// The API's message.
        message: String,
    },
    /// The answer is not what this CLI expects (another program, another
    /// version).
    #[error("the server's answer is not what this CLI expects: {0}")]
    BadAnswer(String),
    /// The command has no HTTP form.
    #[error("`{0}` works on the store directly and has no remote form: run it where the store is, without {ADDR_VAR} (or with --local)")]
    LocalOnly(&'static str),
}

impl RemoteError {
    /// Whether the server said a secret does not exist.
    pub fn is_missing(&self) -> bool {
        matches!(self, RemoteError::Refused { code, .. } if code == "missing_secrets")
    }
}

/// A server to call.
pub struct Remote {
    /// `KEYWARD_ADDR` for messages (without a password).
    shown: String,
    base: String,
    token: Zeroizing<String>,
    http: reqwest::Client,
}

impl Remote {
    /// The server `KEYWARD_ADDR` names, unless `--local` was given or it is
    /// unset (then the CLI works on the store itself).
    pub fn from_cli(cli: &Cli) -> Result<Option<Remote>, RemoteError> {
        if cli.local {
            return Ok(None);
        }
        let Some(addr) = std::env::var(ADDR_VAR).ok().filter(|a| !a.is_empty()) else {
            return Ok(None);
        };
        let token = Zeroizing::new(
            std::env::var(TOKEN_VAR)
                .ok()
                .filter(|t| !t.trim().is_empty())
                .ok_or(RemoteError::NoToken)?,
        );
        Remote::new(&addr, token).map(Some)
    }

    /// A client for `addr` calling with `token`.
    pub fn new(addr: &str, token: Zeroizing<String>) -> Result<Remote, RemoteError> {
        // Messages show the address without any password it may hold.
        let shown = crate::store::redact_url(addr);
        let url = url::Url::parse(addr).map_err(|_| RemoteError::BadAddr(shown.clone()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(RemoteError::BadAddr(shown));
        }
        if reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.trim())).is_err() {
            return Err(RemoteError::BadToken);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            // A redirect could carry the token to another origin.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| RemoteError::Unreachable {
                addr: shown.clone(),
                problem: e.to_string(),
            })?;
        Ok(Remote {
            shown,
            base: addr.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    /// `GET path?query`.
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, RemoteError> {
        self.call(Method::GET, path, query, None).await
    }

    /// `POST path?query` with a JSON body.
    pub async fn post(
        &self,
        path: &str,
        query: &[(&str, String)],
        body: &Value,
    ) -> Result<Value, RemoteError> {
        self.call(Method::POST, path, query, Some(body)).await
    }

    /// `POST path?query` without a body.
    pub async fn post_empty(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Value, RemoteError> {
        self.call(Method::POST, path, query, None).await
    }

    /// `PUT path?query` with a JSON body.
    pub async fn put(
        &self,
        path: &str,
        query: &[(&str, String)],
        body: &Value,
    ) -> Result<Value, RemoteError> {
        self.call(Method::PUT, path, query, Some(body)).await
    }

    /// `DELETE path?query`.
    pub async fn delete(&self, path: &str, query: &[(&str, String)]) -> Result<(), RemoteError> {
        self.call(Method::DELETE, path, query, None).await.map(drop)
    }

    /// One call: the answer's JSON (null for 204), or the server's error.
    /// The body of an answer may hold a secret (a reveal, a render, a new
    /// token): it is read into a buffer that is zeroed once parsed.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, RemoteError> {
        let unreachable = |e: reqwest::Error| RemoteError::Unreachable {
            addr: self.shown.clone(),
            problem: e.without_url().to_string(),
        };
        let mut url = url::Url::parse(&format!("{}{path}", self.base))
            .map_err(|_| RemoteError::BadAddr(self.shown.clone()))?;
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(self.token.trim());
        if let Some(body) = body {
            // The body may hold a secret (a value being set): its buffer is
            // handed to the client, which drops it once sent.
            let bytes =
                serde_json::to_vec(body).map_err(|e| RemoteError::BadAnswer(e.to_string()))?;
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes);
        }
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let bytes = Zeroizing::new(response.bytes().await.map_err(unreachable)?.to_vec());
        if status == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
        if status.is_success() {
            return parsed.ok_or_else(|| {
                RemoteError::BadAnswer(format!("HTTP {status} without a JSON body"))
            });
        }
        let error = parsed.as_ref().and_then(|v| v.get("error"));
        let field = |key: &str| {
            error
                .and_then(|e| e.get(key))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Err(RemoteError::Refused {
            status: status.as_u16(),
            code: field("code").unwrap_or_else(|| "unknown".into()),
            message: field("message")
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("no message").to_owned()),
        })
    }
}

/// The string at `key` of an answer, or a [`RemoteError::BadAnswer`].
pub fn str_at<'a>(answer: &'a Value, key: &str) -> Result<&'a str, RemoteError> {
    answer
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| RemoteError::BadAnswer(format!("no {key:?} in the answer")))
}

/// The array at `key` of an answer, or a [`RemoteError::BadAnswer`].
pub fn array_at<'a>(answer: &'a Value, key: &str) -> Result<&'a Vec<Value>, RemoteError> {
    answer
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| RemoteError::BadAnswer(format!("no {key:?} list in the answer")))
}

/// A path segment, percent-encoded (names are checked by the server; this
/// only keeps a hostile one from changing the path).
pub fn segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// A typed answer, or a [`RemoteError::BadAnswer`].
pub fn typed<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, RemoteError> {
    serde_json::from_value(value).map_err(|e| RemoteError::BadAnswer(e.to_string()))
}

/// Typed rows from an answer, or a [`RemoteError::BadAnswer`].
pub fn rows<T: serde::de::DeserializeOwned>(value: &Value) -> Result<Vec<T>, RemoteError> {
    serde_json::from_value(value.clone()).map_err(|e| RemoteError::BadAnswer(e.to_string()))
}
