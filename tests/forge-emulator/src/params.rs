//! Query strings and token-endpoint bodies (form or JSON) as ordered pairs.

use axum::http::{header, HeaderMap};
use base64::Engine;

/// Request parameters in arrival order; the first occurrence of a name wins.
#[derive(Debug, Default, Clone)]
pub(crate) struct Params(pub Vec<(String, String)>);

impl Params {
    /// Parses `a=1&b=2` (never fails: bad percent-escapes decode lossily).
    pub fn from_query(query: &str) -> Params {
        Params(
            url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// A form body, or a JSON object when the content type says JSON; `None` when unreadable.
    pub fn from_body(headers: &HeaderMap, body: &[u8]) -> Option<Params> {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("json"));
        if !json {
            return Some(Params(
                url::form_urlencoded::parse(body).into_owned().collect(),
            ));
        }
        let serde_json::Value::Object(map) = serde_json::from_slice(body).ok()? else {
            return None;
        };
        let pairs = map
            .into_iter()
            .filter_map(|(k, v)| match v {
                serde_json::Value::String(s) => Some((k, s)),
                serde_json::Value::Number(n) => Some((k, n.to_string())),
                serde_json::Value::Bool(b) => Some((k, b.to_string())),
                _ => None,
            })
            .collect();
        Some(Params(pairs))
    }

    /// The first non-empty value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// These pairs with `name` set to `value` (appended when absent).
    pub fn with(&self, name: &str, value: &str) -> Params {
        let mut pairs: Vec<_> = self.0.iter().filter(|(k, _)| k != name).cloned().collect();
        pairs.push((name.to_owned(), value.to_owned()));
        Params(pairs)
    }

    /// Re-encodes as a query string.
    pub fn encode(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.0)
            .finish()
    }
}

/// Client id and secret from HTTP Basic, else from the parameters.
pub(crate) fn client_credentials(
    headers: &HeaderMap,
    params: &Params,
) -> (Option<String>, Option<String>) {
    if let Some((id, secret)) = basic(headers) {
        return (Some(id), Some(secret));
    }
    (
        params.get("client_id").map(str::to_owned),
        params.get("client_secret").map(str::to_owned),
    )
}

/// Decodes `Authorization: Basic base64(id:secret)`.
pub(crate) fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// The token after `Authorization: <scheme> `, for any of `schemes` (case-insensitive).
pub(crate) fn authorization_token(headers: &HeaderMap, schemes: &[&str]) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme)) && !token.is_empty())
        .then(|| token.to_owned())
}

/// Splits a scope parameter on spaces, commas and `+`.
pub(crate) fn scopes(raw: Option<&str>) -> Vec<String> {
    raw.unwrap_or("")
        .split([' ', ',', '+'])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}
