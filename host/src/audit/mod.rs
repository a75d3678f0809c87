//! The access log: what was read or changed, by whom, why, with what outcome.
//! Append-only, hash-chained (`chain`), and written in group commits
//! (`group_commit`) so that durability does not cost throughput. Signed
//! checkpoints of its head (`checkpoint`), kept off the host, anchor its end
//! (`anchor`).

pub mod anchor;
pub mod archive;
pub mod background_verify;
pub mod chain;
pub mod checkpoint;
pub mod entry;
pub mod group_commit;
mod history;
pub mod history_tail;
pub mod log_index;
mod postgres_writer;
mod row_cache;
mod sqlite_writer;

pub use chain::{ChainKey, LogRow, VerifyReport};
pub use entry::{
    clip, in_request, Access, AccessEntry, AccessError, Action, Outcome, MAX_LOGGED_TEXT,
};

/// Why the access log could not take an entry. When a reveal gets this, no
/// plaintext is returned.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The database refused the write (the transaction was rolled back).
    #[error("the access log could not be written, so nothing was revealed: {0}")]
    Write(String),
    /// The SQLite writer's thread could not be started (start-up only).
    #[error("cannot start the access-log writer thread: {0}")]
    Start(std::io::Error),
    /// The database behind the log cannot be reached now (nothing was
    /// written or revealed); the writer tries again at once when asked, at
    /// most every [`group_commit::RECONNECT_EVERY`].
    #[error("the access log's database cannot be reached, so nothing was revealed: {0}")]
    Unavailable(String),
    /// The writer did not answer within [`group_commit::LOG_WAIT`]: whether
    /// the rows were written is not known, and no value was returned.
    #[error("the access log did not answer within {} ms, so nothing was revealed", group_commit::LOG_WAIT.as_millis())]
    TimedOut,
    /// The group-commit writer has stopped (the host is shutting down).
    #[error("the access log is not accepting entries (shutting down)")]
    Closed,
}
