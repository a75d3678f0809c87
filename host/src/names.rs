//! Newtypes that parse on the way in, so an invalid scope or name never
//! travels further than the edge that received it.
//!
//! Grammar (documented in README.md § "Names and limits"):
//! - name:  `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 128 bytes;
//! - scope: `global`, or `<kind>:<id>` with kind `[a-z][a-z0-9_]*` (at most 32
//!   bytes) and id `[A-Za-z0-9][A-Za-z0-9_.-]*` (at most 128 bytes).

use std::fmt;

/// Longest secret name accepted.
pub const MAX_NAME_LEN: usize = 128;
/// A secret name's grammar as a regular expression (for the API document).
pub const NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$";
/// A scope's grammar as a regular expression (for the API document).
pub const SCOPE_PATTERN: &str = "^(global|[a-z][a-z0-9_]{0,31}:[A-Za-z0-9][A-Za-z0-9_.-]{0,127})$";
/// Longest scope kind accepted.
pub const MAX_KIND_LEN: usize = 32;
/// Longest scope id accepted.
pub const MAX_SCOPE_ID_LEN: usize = 128;

/// Why a name or scope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name breaks the grammar.
    #[error(
        "invalid secret name {0:?}: use 1-128 of A-Z a-z 0-9 _ . - starting with a letter or digit"
    )]
    Name(String),
    /// The scope breaks the grammar.
    #[error("invalid scope {0:?}: use `global` or `<kind>:<id>` (kind: a-z 0-9 _ up to 32, starting with a letter; id: A-Z a-z 0-9 _ . - up to 128)")]
    Scope(String),
    /// A reference (`[scope/]name`) breaks the grammar.
    #[error("invalid secret reference {0:?}: use NAME or SCOPE/NAME, e.g. GITHUB_TOKEN or agent_type:coder/GITHUB_TOKEN")]
    Reference(String),
}

fn is_ident(text: &str, max: usize) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= max
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn is_kind(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_KIND_LEN
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
}

/// A valid secret name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretName(String);

impl SecretName {
    /// Parses a name, refusing anything outside the grammar.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        if is_ident(text, MAX_NAME_LEN) {
            Ok(SecretName(text.to_owned()))
        } else {
            Err(NameError::Name(truncate(text)))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a secret lives: `global` or `<kind>:<id>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(String);

impl Scope {
    /// The global scope.
    pub fn global() -> Self {
        Scope("global".to_owned())
    }

    /// A scope of `kind` for `id`, both checked against the grammar.
    pub fn scoped(kind: &str, id: &str) -> Result<Self, NameError> {
        Self::parse(&format!("{kind}:{id}"))
    }

    /// Parses `global` or `<kind>:<id>`.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        if text == "global" {
            return Ok(Self::global());
        }
        match text.split_once(':') {
            Some((kind, id)) if is_kind(kind) && is_ident(id, MAX_SCOPE_ID_LEN) => {
                Ok(Scope(text.to_owned()))
            }
            _ => Err(NameError::Scope(truncate(text))),
        }
    }

    /// The scope as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A reference to a secret: a name, optionally pinned to one scope.
/// Written `NAME` or `SCOPE/NAME`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretRef {
    /// The pinned scope; `None` means "resolve through the context".
    pub scope: Option<Scope>,
    /// The secret's name.
    pub name: SecretName,
}

impl SecretRef {
    /// Parses `NAME` or `SCOPE/NAME`.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        let bad = || NameError::Reference(truncate(text));
        match text.split_once('/') {
            None => Ok(SecretRef {
                scope: None,
                name: SecretName::parse(text).map_err(|_| bad())?,
            }),
            Some((scope, name)) => Ok(SecretRef {
                scope: Some(Scope::parse(scope).map_err(|_| bad())?),
                name: SecretName::parse(name).map_err(|_| bad())?,
            }),
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.scope {
            Some(scope) => write!(f, "{scope}/{}", self.name),
            None => write!(f, "{}", self.name),
        }
    }
}

/// Echoing hostile input back in full would let one bad request flood a log.
fn truncate(text: &str) -> String {
    crate::text::clip(text, 80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["A", "GITHUB_TOKEN", "a.b-c_d", "9lives", &"x".repeat(128)] {
            assert!(SecretName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "_x",
            "-x",
            ".x",
            "a b",
            "a/b",
            "a:b",
            "a}",
            "é",
            "a\n",
            &"x".repeat(129),
        ] {
            assert!(SecretName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn scopes() {
        for ok in [
            "global",
            "agent_type:coder",
            "instance:i-42",
            "workloads:web.1",
        ] {
            assert_eq!(Scope::parse(ok).expect(ok).as_str(), ok);
        }
        for bad in [
            "",
            "Global",
            "agent_type",
            "agent_type:",
            ":x",
            "Agent:x",
            "a:b:c",
            "a:b/c",
            "1a:x",
            "a-b:x",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn references() {
        let r = SecretRef::parse("agent_type:coder/TOKEN").expect("valid");
        assert_eq!(
            r.scope.as_ref().map(Scope::as_str),
            Some("agent_type:coder")
        );
        assert_eq!(r.name.as_str(), "TOKEN");
        assert_eq!(r.to_string(), "agent_type:coder/TOKEN");
        assert_eq!(SecretRef::parse("TOKEN").expect("valid").scope, None);
        for bad in ["", "/X", "global/", "a/b/c", "nope/X", "global/X Y"] {
            assert!(SecretRef::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hostile_input_is_truncated_in_errors() {
        let long = "é".repeat(1000);
        let msg = SecretName::parse(&long).expect_err("refused").to_string();
        assert!(msg.len() < 300, "{}", msg.len());
    }
}
