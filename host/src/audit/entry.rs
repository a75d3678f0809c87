//! One access-log entry and the validated identity of whoever asks.

/// What was done to a secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// A value was read and returned (`secret get`, an API reveal).
    Reveal,
    /// A value was substituted into a `${SECRET:…}` template.
    Render,
    /// A secret was created.
    Create,
    /// A secret's value was replaced (new version).
    Replace,
    /// A secret's description changed.
    Describe,
    /// A secret was soft-deleted: renders and listings skip it, and it can
    /// be undeleted until the retention window passes.
    Delete,
    /// A soft-deleted secret was made live again.
    Undelete,
    /// A secret was re-sealed under the current master key.
    Reseal,
    /// Ciphertext was removed for good: a superseded version past the
    /// secret's number of kept versions (detail `version N …`), or a whole
    /// secret with every version, on request (`secret rm --destroy`) or by
    /// the purge of deletions past the retention window.
    Destroy,
    /// A plugin asked whether a secret exists (the value is not returned).
    Exists,
    /// A plugin's outbound request carried the secret, expanded by the host
    /// from `${SECRET:…}` at egress; the plugin never saw the value.
    Egress,
    /// A plugin's outbound request (logged only when refused: the scope
    /// column says `outbound`, the name column holds the origin).
    Fetch,
    /// A plugin's malformed host call (a bad reference, URL or header).
    /// Counted against its refusal budget; logged only in a `limit` row.
    Invalid,
    /// A plugin went past its per-call refusal budget: one row, outcome
    /// `denied`, and the call was stopped.
    Limit,
    /// A token's request refused by its policy before it named any secret
    /// (a capability it lacks, a network it may not come from): outcome
    /// `denied`, scope `route`, the name the method and route.
    Request,
    /// Access-log rows were moved to an archive file and deleted from the
    /// database (`keyward audit archive`, or `serve`'s retention): scope
    /// `log`, name `access-log`, the detail the rows, the file and its SHA-256.
    Archive,
}

impl Action {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Reveal => "reveal",
            Action::Render => "render",
            Action::Create => "create",
            Action::Replace => "replace",
            Action::Describe => "describe",
            Action::Delete => "delete",
            Action::Undelete => "undelete",
            Action::Reseal => "reseal",
            Action::Destroy => "destroy",
            Action::Exists => "exists",
            Action::Egress => "egress",
            Action::Fetch => "fetch",
            Action::Invalid => "invalid",
            Action::Limit => "limit",
            Action::Request => "request",
            Action::Archive => "archive",
        }
    }
}

/// Longest text a plugin can put into one column of the access log (a
/// name, an origin, a reason, a detail); longer text is cut (docs/access-log.md).
pub const MAX_LOGGED_TEXT: usize = 256;

pub use crate::text::clip;

/// How an access ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done; for reads, the plaintext was handed out after this row committed.
    Ok,
    /// No such secret in any scope searched.
    Missing,
    /// The caller was not allowed to read it.
    Denied,
    /// The stored value did not open (tampered, or sealed by an unknown key).
    Error,
    /// Found and not returned, because another secret of the same request was
    /// missing (a template renders completely or not at all).
    Withheld,
}

impl Outcome {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Missing => "missing",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
            Outcome::Withheld => "withheld",
        }
    }
}

/// Longest accessor accepted.
pub const MAX_ACCESSOR_LEN: usize = 128;
/// Longest reason accepted.
pub const MAX_REASON_LEN: usize = 512;

tokio::task_local! {
    /// The HTTP request the current task answers (set by http/trace.rs).
    static REQUEST: std::sync::Arc<str>;
}

/// Runs `work` as the answer to request `id`: every [`Access`] made inside
/// it carries the id into its rows' detail (`request <id>`), so a row can be
/// matched with the request's log line.
pub async fn in_request<F: std::future::Future>(id: std::sync::Arc<str>, work: F) -> F::Output {
    REQUEST.scope(id, work).await
}

/// A caller's identity and stated reason, validated so the log stays readable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    accessor: String,
    reason: String,
    /// The HTTP request made in, if any ([`in_request`]).
    request: Option<std::sync::Arc<str>>,
}

/// Why an accessor or reason was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// Empty, too long, or with control characters.
    #[error("invalid accessor: use 1-{MAX_ACCESSOR_LEN} printable characters")]
    Accessor,
    /// Empty, too long, or with control characters.
    #[error("invalid reason: give 1-{MAX_REASON_LEN} printable characters saying why the secret is needed")]
    Reason,
}

fn printable(text: &str, max: usize) -> bool {
    !text.trim().is_empty() && text.len() <= max && !text.chars().any(char::is_control)
}

impl Access {
    /// Validates an accessor (e.g. `cli:alice`, `token:deploy`) and a reason.
    pub fn new(
        accessor: impl Into<String>,
        reason: impl Into<String>,
    ) -> Result<Self, AccessError> {
        let (accessor, reason) = (accessor.into(), reason.into());
        if !printable(&accessor, MAX_ACCESSOR_LEN) {
            return Err(AccessError::Accessor);
        }
        if !printable(&reason, MAX_REASON_LEN) {
            return Err(AccessError::Reason);
        }
        let request = REQUEST.try_with(std::sync::Arc::clone).ok();
        Ok(Access {
            accessor,
            reason,
            request,
        })
    }

    /// Who asks.
    pub fn accessor(&self) -> &str {
        &self.accessor
    }

    /// Why.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The HTTP request this access is part of, if any.
    pub fn request(&self) -> Option<&str> {
        self.request.as_deref()
    }
}

/// One row to append (the chain assigns `seq`, `at` and `mac`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessEntry {
    /// Who.
    pub accessor: String,
    /// Why.
    pub reason: String,
    /// What was done.
    pub action: Action,
    /// How it ended.
    pub outcome: Outcome,
    /// The scope resolved, or for a miss the most specific scope searched.
    pub scope: String,
    /// The secret's name.
    pub name: String,
    /// Extra context (the scopes searched, the key ids of a re-seal, the
    /// HTTP request id); never a value.
    pub detail: String,
    /// The HTTP request id, kept at the end of `detail` by [`Self::with_detail`].
    pub request: Option<std::sync::Arc<str>>,
}

impl AccessEntry {
    /// An entry for `access` doing `action` on `scope`/`name`.
    pub fn new(access: &Access, action: Action, outcome: Outcome, scope: &str, name: &str) -> Self {
        AccessEntry {
            accessor: access.accessor.clone(),
            reason: access.reason.clone(),
            action,
            outcome,
            scope: scope.to_owned(),
            name: name.to_owned(),
            detail: String::new(),
            request: access.request.clone(),
        }
        .with_detail(String::new())
    }

    /// The same entry with `detail` set (followed by `request <id>` when it
    /// was made for an HTTP request).
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        self.detail = match &self.request {
            None => detail,
            Some(id) if detail.is_empty() => format!("request {id}"),
            Some(id) => format!("{detail}; request {id}"),
        };
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_validation() {
        assert!(Access::new("cli:alice", "deploy web").is_ok());
        assert_eq!(Access::new("", "x").err(), Some(AccessError::Accessor));
        assert_eq!(Access::new("a\nb", "x").err(), Some(AccessError::Accessor));
        assert_eq!(Access::new("a", " ").err(), Some(AccessError::Reason));
        assert_eq!(
            Access::new("a", "x\u{1b}[2J").err(),
            Some(AccessError::Reason)
        );
        assert_eq!(
            Access::new("a", "x".repeat(513)).err(),
            Some(AccessError::Reason)
        );
    }

    #[tokio::test]
    async fn a_request_id_ends_every_detail_made_for_it() {
        let outside = Access::new("a", "x").expect("access");
        assert_eq!(outside.request(), None);
        let entry = AccessEntry::new(&outside, Action::Render, Outcome::Ok, "global", "N");
        assert_eq!(
            entry.with_detail("searched global").detail,
            "searched global"
        );
        let inside = in_request("r-1".into(), async { Access::new("a", "x") })
            .await
            .expect("access");
        assert_eq!(inside.request(), Some("r-1"));
        let entry = AccessEntry::new(&inside, Action::Render, Outcome::Ok, "global", "N");
        assert_eq!(entry.detail, "request r-1");
        assert_eq!(
            entry.with_detail("version 2").detail,
            "version 2; request r-1"
        );
    }
}
