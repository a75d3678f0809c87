//! Conveniences on the WIT `error` variant, which is both what host calls
//! fail with and what a plugin returns.

use crate::Error;

impl Error {
    /// The human-readable text, whatever the kind: for messages that quote a
    /// host error without its Rust-ish `Debug` spelling.
    pub fn message(&self) -> &str {
        match self {
            Error::Denied(m)
            | Error::NotFound(m)
            | Error::Invalid(m)
            | Error::Limit(m)
            | Error::Upstream(m) => m,
        }
    }

    /// The same kind of error with `what: ` in front of its text, so that the
    /// host (and the operator reading its log) can tell which plugin step
    /// failed, e.g. `forgejo: GET /api/v1/user → 401: …`.
    ///
    /// The kind is kept because the host treats kinds differently (a
    /// `denied` is audited, an `upstream` is not).
    #[must_use]
    pub fn context(self, what: &str) -> Self {
        let prefix = |m: String| format!("{what}: {m}");
        match self {
            Error::Denied(m) => Error::Denied(prefix(m)),
            Error::NotFound(m) => Error::NotFound(prefix(m)),
            Error::Invalid(m) => Error::Invalid(prefix(m)),
            Error::Limit(m) => Error::Limit(prefix(m)),
            Error::Upstream(m) => Error::Upstream(prefix(m)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_prefixes_the_text_and_keeps_the_kind() {
        let e = Error::Denied("secret a/b".into()).context("github");
        assert_eq!(e, Error::Denied("github: secret a/b".into()));
        assert_eq!(e.message(), "github: secret a/b");
    }
}
