//! The forges' own example payloads (`fixtures/<forge>/<name>.json`), which
//! the emulators answer with so that they agree with the forges rather than
//! with the adapters' authors. Each file names its official source
//! (`source.repository`, `source.path`) and says what the emulator had to
//! invent (`invented`); a handler only substitutes the account and the
//! token into the example.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

/// Every fixture, by `<forge>/<name>`; a file not listed here fails the test below.
const FILES: &[(&str, &str)] = &[
    (
        "forgejo/api-error",
        include_str!("../fixtures/forgejo/api-error.json"),
    ),
    (
        "forgejo/user",
        include_str!("../fixtures/forgejo/user.json"),
    ),
    (
        "github/rate-limit-primary",
        include_str!("../fixtures/github/rate-limit-primary.json"),
    ),
    (
        "github/rate-limit-secondary",
        include_str!("../fixtures/github/rate-limit-secondary.json"),
    ),
    ("github/user", include_str!("../fixtures/github/user.json")),
    (
        "gitlab/api-error",
        include_str!("../fixtures/gitlab/api-error.json"),
    ),
    (
        "gitlab/oauth-invalid-token",
        include_str!("../fixtures/gitlab/oauth-invalid-token.json"),
    ),
    (
        "gitlab/oauth-token",
        include_str!("../fixtures/gitlab/oauth-token.json"),
    ),
    (
        "gitlab/oauth-token-info",
        include_str!("../fixtures/gitlab/oauth-token-info.json"),
    ),
    (
        "gitlab/personal-access-token-self",
        include_str!("../fixtures/gitlab/personal-access-token-self.json"),
    ),
    ("gitlab/user", include_str!("../fixtures/gitlab/user.json")),
];

/// One example answer: status, headers, body.
pub(crate) struct Fixture {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

/// The fixture `name` (`github/user`). A missing or malformed file is the
/// emulator's own bug, so it panics (the unit test below catches it first).
pub(crate) fn load(name: &str) -> Fixture {
    let text = FILES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .unwrap_or_else(|| panic!("no fixture {name}"));
    let file: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let headers = file["headers"]
        .as_object()
        .map(|h| {
            h.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    Fixture {
        status: file["status"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or(200),
        headers,
        body: file["body"].clone(),
    }
}

impl Fixture {
    /// Sets header `name` (replacing the example's).
    pub fn header(&mut self, name: &str, value: impl ToString) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_string()));
    }

    /// Replaces each `from` with its `to` inside every string of the body:
    /// the example's account and origin become the emulated ones.
    pub fn substitute(&mut self, pairs: &[(&str, &str)]) {
        substitute(&mut self.body, pairs);
    }
}

fn substitute(value: &mut Value, pairs: &[(&str, &str)]) {
    match value {
        Value::String(s) => {
            for (from, to) in pairs {
                if s.contains(from) {
                    *s = s.replace(from, to);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| substitute(v, pairs)),
        Value::Object(map) => map.values_mut().for_each(|v| substitute(v, pairs)),
        _ => {}
    }
}

impl IntoResponse for Fixture {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        let mut r = (status, Json(self.body)).into_response();
        for (name, value) in self.headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                r.headers_mut().insert(n, v);
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixture_names_its_source_and_what_was_invented() {
        for (name, text) in FILES {
            let file: Value = serde_json::from_str(text).expect("JSON");
            for key in ["repository", "path"] {
                let v = file["source"][key].as_str().unwrap_or("");
                assert!(!v.trim().is_empty(), "{name}: source.{key}");
            }
            assert!(file["invented"].is_array(), "{name}: invented");
            assert!(file["body"].is_object(), "{name}: body");
            let _ = load(name);
        }
    }

    #[test]
    fn every_file_in_the_folder_is_listed() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let mut on_disk = Vec::new();
        for forge in std::fs::read_dir(&root).expect("fixtures/") {
            let forge = forge.expect("entry").path();
            for file in std::fs::read_dir(&forge).expect("a forge folder") {
                let path = file.expect("entry").path();
                let stem = path.file_stem().and_then(|s| s.to_str()).expect("name");
                let dir = forge.file_name().and_then(|s| s.to_str()).expect("dir");
                on_disk.push(format!("{dir}/{stem}"));
            }
        }
        on_disk.sort();
        let listed: Vec<String> = FILES.iter().map(|(n, _)| (*n).to_owned()).collect();
        assert_eq!(on_disk, listed);
    }

    #[test]
    fn substitution_reaches_nested_strings() {
        let mut f = load("github/user");
        f.substitute(&[("octocat", "alice")]);
        assert_eq!(f.body["login"], "alice");
        assert_eq!(
            f.body["repos_url"],
            "https://api.github.com/users/alice/repos"
        );
    }
}
