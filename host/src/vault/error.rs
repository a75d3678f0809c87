//! The library's error enum. Each variant names the HTTP status the API
//! answers it with, so the mapping lives beside the meaning.

use crate::audit::{AccessError, AuditError};
use crate::crypto::KeyError;
use crate::names::NameError;
use crate::resolve::ContextError;
use crate::store::StoreError;

/// Largest secret value accepted, in bytes.
pub const MAX_VALUE_LEN: usize = 64 * 1024;
/// Longest description accepted, in bytes.
pub const MAX_DESCRIPTION_LEN: usize = 1024;

/// Secrets that were referenced and not found: all of them, not just the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("missing secrets: {}", .missing.join(", "))]
pub struct MissingSecretError {
    /// Every missing reference, as written (`NAME` or `SCOPE/NAME`).
    pub missing: Vec<String>,
}

/// Everything that can go wrong in the vault.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The master key is missing or malformed. (Start-up only; 500 if ever seen by a request.)
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The master key does not open this store. (Start-up only.)
    #[error(
        "{var} does not open the store at {url}: it was sealed by key id {stored}, and the key given has id {given}. \
         Refusing to start so that nothing is written under a second key. Use the key this store was created with; \
         to rotate, set the old key in KEYWARD_MASTER_KEY_PREVIOUS and run `keyward key rotate`",
        var = crate::crypto::MASTER_KEY_VAR
    )]
    WrongKey {
        /// Where the store is.
        url: String,
        /// Key id recorded by the canary.
        stored: String,
        /// Key id of the key given.
        given: String,
    },
    /// The current key is new to the store (the store's key is only among
    /// the previous keys) and was never adopted. (Start-up only.)
    #[error(
        "{var} (key id {given}) is new to the store at {url}, whose key (id {stored}) is given \
         only in KEYWARD_MASTER_KEY_PREVIOUS. Refusing to start so that nothing is sealed under a \
         mistyped key. If {given} is the key you are rotating to, run `keyward key adopt` once \
         with this environment, then start again (docs/credentials.md)",
        var = crate::crypto::MASTER_KEY_VAR
    )]
    KeyNotAdopted {
        /// Where the store is.
        url: String,
        /// Key id recorded by the canary.
        stored: String,
        /// Key id of the key given.
        given: String,
    },
    /// Another new key was adopted for this store. (Start-up only.)
    #[error(
        "{var} (key id {given}) is not the key this store is rotating to: key id {adopted} was \
         adopted. Refusing to start so that nothing is sealed under a second new key. Use the \
         adopted key; to abandon it instead, run `keyward key adopt --replace` (values already \
         sealed under it then need it in KEYWARD_MASTER_KEY_PREVIOUS)",
        var = crate::crypto::MASTER_KEY_VAR
    )]
    OtherKeyAdopted {
        /// Key id of the adopted key.
        adopted: String,
        /// Key id of the key given.
        given: String,
    },
    /// The database could not be opened or migrated. (503)
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A name, scope or reference breaks the grammar. (422)
    #[error(transparent)]
    Name(#[from] NameError),
    /// An accessor or reason breaks the rules. (422)
    #[error(transparent)]
    Access(#[from] AccessError),
    /// A resolution context is malformed. (422)
    #[error(transparent)]
    Context(#[from] ContextError),
    /// No such secret. (404)
    #[error("no secret {scope}/{name}")]
    NotFound {
        /// Scope searched.
        scope: String,
        /// Name.
        name: String,
    },
    /// The secret exists already. (409)
    #[error("secret {scope}/{name} exists already")]
    Exists {
        /// Scope.
        scope: String,
        /// Name.
        name: String,
    },
    /// An undelete named a secret that is not deleted. (409)
    #[error("secret {scope}/{name} is not deleted")]
    NotDeleted {
        /// Scope.
        scope: String,
        /// Name.
        name: String,
    },
    /// An undelete came after the retention window: the purge is due to
    /// destroy the secret, and nothing can bring it back. (410)
    #[error(
        "secret {scope}/{name} was deleted more than {retention} ago: past the retention \
         window it cannot be undeleted"
    )]
    RetentionPassed {
        /// Scope.
        scope: String,
        /// Name.
        name: String,
        /// The window, e.g. `7d`.
        retention: String,
    },
    /// Someone else changed the secret meanwhile; retry. (409)
    #[error("secret {scope}/{name} changed while this request ran; try again")]
    Conflict {
        /// Scope.
        scope: String,
        /// Name.
        name: String,
    },
    /// A check-and-set named another version than the secret's current one
    /// (0: the secret was to be absent). (409, with `current_version`)
    #[error(
        "secret {scope}/{name} is at version {current}, not {expected}: someone changed it \
         since you read it; read it again and retry"
    )]
    VersionMismatch {
        /// Scope.
        scope: String,
        /// Name.
        name: String,
        /// The version the caller expected.
        expected: i64,
        /// The current version (0: there is no such secret).
        current: i64,
    },
    /// A version that is not there to read or roll back to: destroyed,
    /// never written, or (for a rollback) the current one. (404)
    #[error("version {version} of secret {scope}/{name} is {why}")]
    VersionUnavailable {
        /// Scope.
        scope: String,
        /// Name.
        name: String,
        /// The version asked for.
        version: i64,
        /// Why: "destroyed", "not a version of it", "the current one".
        why: &'static str,
    },
    /// The value is larger than [`MAX_VALUE_LEN`]. (413)
    #[error("the value is {len} bytes; the largest accepted is {MAX_VALUE_LEN} bytes")]
    ValueTooLarge {
        /// Size given.
        len: usize,
    },
    /// The value is empty. (422)
    #[error("the value is empty; a secret needs at least one byte")]
    EmptyValue,
    /// The description is too long or has control characters. (422)
    #[error("invalid description: at most {MAX_DESCRIPTION_LEN} bytes, no control characters")]
    Description,
    /// Secrets referenced but not found, every one of them named. (422)
    #[error(transparent)]
    Missing(#[from] MissingSecretError),
    /// A stored value did not open with any key of the keyring. (500)
    #[error("secret {0} could not be opened: its ciphertext was altered or it was sealed by a key not in the keyring")]
    Unreadable(String),
    /// The access log could not be written, so nothing was revealed. (503)
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The caller's policy lets it read none of the scopes these references
    /// resolve through; each is logged `denied`. (403)
    #[error("this token's policy does not allow reading {}", references.join(", "))]
    Denied {
        /// `scope/name` of each denied reference (its first scope for a
        /// bare name).
        references: Vec<String>,
    },
    /// A concurrent request created the same row first (a unique
    /// constraint said no). (409)
    #[error("another request created or changed the same {0} at the same time; try again")]
    Race(&'static str),
    /// An access-log archive could not be written, read or made
    /// (`keyward audit archive`, `audit verify --archive`: the CLI only,
    /// never an HTTP answer). (500)
    #[error(transparent)]
    Archive(#[from] crate::audit::archive::ArchiveError),
    /// Any other database failure. (500)
    #[error("database error: {0}")]
    Db(sqlx::Error),
}

impl From<sqlx::Error> for VaultError {
    fn from(e: sqlx::Error) -> Self {
        if crate::store::is_unique_violation(&e) {
            VaultError::Race("entry")
        } else {
            VaultError::Db(e)
        }
    }
}

impl VaultError {
    /// The HTTP status this error is answered with.
    pub fn http_status(&self) -> u16 {
        match self {
            VaultError::Name(_)
            | VaultError::Access(_)
            | VaultError::Context(_)
            | VaultError::EmptyValue
            | VaultError::Description
            | VaultError::Missing(_) => 422,
            VaultError::NotFound { .. } | VaultError::VersionUnavailable { .. } => 404,
            VaultError::Denied { .. } => 403,
            VaultError::Exists { .. }
            | VaultError::NotDeleted { .. }
            | VaultError::Conflict { .. }
            | VaultError::VersionMismatch { .. }
            | VaultError::Race(_) => 409,
            VaultError::RetentionPassed { .. } => 410,
            VaultError::ValueTooLarge { .. } => 413,
            VaultError::Store(_) | VaultError::Audit(_) => 503,
            VaultError::Key(_)
            | VaultError::WrongKey { .. }
            | VaultError::KeyNotAdopted { .. }
            | VaultError::OtherKeyAdopted { .. }
            | VaultError::Unreadable(_)
            | VaultError::Archive(_)
            | VaultError::Db(_) => 500,
        }
    }
}
