//! Group commit: every read of a secret goes through one writer that takes
//! all requests waiting at that moment, reads their rows, opens them,
//! appends one access-log row per lookup and commits — one transaction and
//! one fsync for the whole group. Only after that commit does any caller get
//! plaintext.
//!
//! There is no artificial delay: while one group commits, the next one
//! gathers, so groups grow exactly as fast as load does.
//!
//! On SQLite the writer is a thread of its own with its own connection
//! (`sqlite_writer`); on PostgreSQL it is a task with a connection of its
//! own (`postgres_writer`), so its prepared statements stay cached.
//! Either way the head is locked and `secrets_generation` read at the start
//! of each group, in the transaction that appends.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::chain::ChainKey;
use super::entry::{Access, AccessEntry, Action, Outcome};
use super::history_tail::Tail;
use super::row_cache::RowCache;
use super::{postgres_writer, sqlite_writer, AuditError};
use crate::crypto::{secret_aad, Keyring, SecretBytes};
use crate::names::{Scope, SecretName};
use crate::store::Db;

/// Most jobs taken into one transaction.
pub(super) const MAX_GROUP: usize = 256;
/// The longest a caller waits for its answer from the writer (queueing
/// included) before it gives up with [`AuditError::TimedOut`] (503): the
/// bound on how long a render can hang on the log, whatever the database
/// does. Far above a group's time under load (milliseconds).
pub const LOG_WAIT: Duration = Duration::from_secs(2);
/// The longest one PostgreSQL group may take (its statements and commit);
/// past it the connection is dropped and the group answered 503.
pub(super) const GROUP_TIMEOUT: Duration = Duration::from_millis(1500);
/// While the database cannot be reached, the writer tries to connect again
/// at most this often; groups in between are refused at once.
pub const RECONNECT_EVERY: Duration = Duration::from_millis(100);
/// Jobs that may wait before callers feel back-pressure.
const QUEUE: usize = 8192;

/// One secret to find: a name and the scopes to try, most specific first.
#[derive(Clone, Debug)]
pub struct Lookup {
    /// The name.
    pub name: SecretName,
    /// Candidate scopes in resolution order (never empty).
    pub scopes: Vec<Scope>,
}

/// What a lookup found.
pub enum Resolved {
    /// Found and opened; the access-log row is committed.
    Found {
        /// The scope it was found in.
        scope: Scope,
        /// The plaintext.
        value: SecretBytes,
    },
    /// Not in any candidate scope.
    Missing,
    /// Found but the stored value did not open.
    Unreadable {
        /// The scope it was found in.
        scope: Scope,
    },
    /// Found, not returned because another lookup of the request failed.
    Withheld,
}

pub(super) struct LookupJob {
    access: Access,
    action: Action,
    lookups: Vec<Lookup>,
    all_or_nothing: bool,
    reply: oneshot::Sender<Result<Vec<Resolved>, AuditError>>,
}

pub(super) struct RecordJob {
    entries: Vec<AccessEntry>,
    reply: oneshot::Sender<Result<(), AuditError>>,
}

pub(super) enum Job {
    Lookup(LookupJob),
    Record(RecordJob),
}

/// Counters for metrics and benchmarks.
#[derive(Default)]
pub struct Stats {
    /// Transactions committed.
    pub groups: AtomicU64,
    /// Access-log rows written.
    pub rows: AtomicU64,
    /// Groups by rows written, per [`BATCH_BUCKETS`] upper bound (the last
    /// counts the rest): how well commits are shared.
    pub batches: [AtomicU64; BATCH_BUCKETS.len() + 1],
    /// Secret values handed out (revealed and logged).
    pub revealed: AtomicU64,
    /// PostgreSQL groups whose conditional append found the head moved by
    /// another writer (or a secret changed) and was tried again: how much
    /// the hosts on one database contend for the chain.
    pub head_conflicts: AtomicU64,
    /// The last log row the history index covers, as this host's follower
    /// last saw it (`audit::log_index`; 0 until it has run).
    pub indexed_seq: std::sync::atomic::AtomicI64,
    /// The last row `serve`'s background verify found good (0 until it
    /// has run, or the row of the checkpoint it started from).
    pub verified_seq: std::sync::atomic::AtomicI64,
    /// The row where the background verify found the chain broken (0:
    /// intact as far as it has walked).
    pub broken_at: std::sync::atomic::AtomicI64,
    /// Refusals written to the log (a caller asked for what it may not).
    pub denied: AtomicU64,
    /// Seconds from a group's start (its transaction, or the connection it
    /// opened first) to its commit, for groups that wrote rows.
    pub commit_seconds: crate::metrics::Histogram,
}

/// Upper bounds of the batch-size buckets of [`Stats::batches`].
pub const BATCH_BUCKETS: [u64; 8] = [1, 2, 4, 8, 16, 32, 64, 128];

impl Stats {
    pub(super) fn record_group(&self, rows: u64, took: std::time::Duration) {
        self.commit_seconds.observe(took.as_secs_f64());
        self.groups.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(rows, Ordering::Relaxed);
        let bucket = BATCH_BUCKETS
            .iter()
            .position(|&bound| rows <= bound)
            .unwrap_or(BATCH_BUCKETS.len());
        self.batches[bucket].fetch_add(1, Ordering::Relaxed);
    }
}

/// Handle to the group-commit writer. Cheap to clone.
#[derive(Clone)]
pub struct GroupCommit {
    jobs: flume::Sender<Job>,
    stats: Arc<Stats>,
}

impl GroupCommit {
    /// Starts the writer: on SQLite a thread of its own on the store's file,
    /// on PostgreSQL a task on the current tokio runtime.
    /// Each group's rows, once committed, are handed to `tail` (so history
    /// need not read this host's rows back from the database).
    pub fn start(
        db: &Db,
        keyring: Arc<Keyring>,
        chain: Arc<ChainKey>,
        tail: Arc<Tail>,
    ) -> Result<Self, AuditError> {
        let (jobs, rx) = flume::bounded(QUEUE);
        let stats = Arc::new(Stats::default());
        match db.sqlite_file() {
            Some(path) => {
                sqlite_writer::spawn(path.to_owned(), rx, keyring, chain, stats.clone(), tail)
                    .map_err(AuditError::Start)?;
            }
            None => {
                tokio::spawn(postgres_writer::run(
                    rx,
                    db.clone(),
                    keyring,
                    chain,
                    stats.clone(),
                    tail,
                ));
            }
        }
        Ok(GroupCommit { jobs, stats })
    }

    /// Resolves `lookups` and logs each one. With `all_or_nothing`, a request
    /// with any miss returns no value at all (found ones are logged `withheld`).
    pub async fn lookup(
        &self,
        access: &Access,
        action: Action,
        lookups: Vec<Lookup>,
        all_or_nothing: bool,
    ) -> Result<Vec<Resolved>, AuditError> {
        let (reply, answer) = oneshot::channel();
        let job = Job::Lookup(LookupJob {
            access: access.clone(),
            action,
            lookups,
            all_or_nothing,
            reply,
        });
        bounded(async {
            self.jobs
                .send_async(job)
                .await
                .map_err(|_| AuditError::Closed)?;
            answer.await.map_err(|_| AuditError::Closed)?
        })
        .await
    }

    /// Appends entries that involve no read (e.g. a denied request).
    pub async fn record(&self, entries: Vec<AccessEntry>) -> Result<(), AuditError> {
        let (reply, answer) = oneshot::channel();
        bounded(async {
            self.jobs
                .send_async(Job::Record(RecordJob { entries, reply }))
                .await
                .map_err(|_| AuditError::Closed)?;
            answer.await.map_err(|_| AuditError::Closed)?
        })
        .await
    }

    /// Whether the log can take entries now: an empty group through the
    /// writer (it opens a transaction and locks the head, writing nothing),
    /// for readiness checks.
    pub async fn probe(&self) -> Result<(), AuditError> {
        self.record(Vec::new()).await
    }

    /// Counters since start.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

/// A caller's wait for the writer, bounded by [`LOG_WAIT`].
async fn bounded<T>(
    wait: impl std::future::Future<Output = Result<T, AuditError>>,
) -> Result<T, AuditError> {
    tokio::time::timeout(LOG_WAIT, wait)
        .await
        .unwrap_or(Err(AuditError::TimedOut))
}

/// Answers every job of a group with the error `failed` makes.
pub(super) fn fail_all(jobs: Vec<Job>, failed: impl Fn() -> AuditError) {
    for job in jobs {
        match job {
            Job::Lookup(job) => {
                let _ = job.reply.send(Err(failed()));
            }
            Job::Record(job) => {
                let _ = job.reply.send(Err(failed()));
            }
        }
    }
}

/// After a group's commit: counts it and answers its jobs, or, if it failed,
/// forgets what the group cached and answers every job with the failure.
pub(super) fn finish_group<E: std::fmt::Display>(
    group: Vec<Job>,
    started: std::time::Instant,
    result: Result<(Answers, Appended), E>,
    stats: &Stats,
    cache: &mut RowCache,
    tail: &Tail,
) {
    match result {
        Ok((answers, appended)) => {
            // An empty group (a readiness probe) wrote nothing: no commit
            // worth counting.
            let rows = appended.entries.len() as u64;
            if rows > 0 {
                stats.record_group(rows, started.elapsed());
                // Before the answers: whoever asks for a history after
                // their reveal finds its row here, not in the database.
                tail.committed(appended);
            }
            answer(group, Ok(answers));
        }
        Err(error) => {
            // Nor trust what the failed group cached.
            cache.clear();
            answer(group, Err(error.to_string()));
        }
    }
}

/// What a committed group appended: the first row's seq, the rows' time
/// and their entries (seqs `first`, `first + 1`, … in order).
pub(crate) struct Appended {
    pub first: i64,
    pub at: i64,
    pub entries: Vec<AccessEntry>,
}

/// Sends every job of a group its answer: the values on success, the
/// failure to all of them otherwise (then nothing was written and no value
/// leaves the writer: dropping the answers wipes them).
fn answer(jobs: Vec<Job>, result: Result<Answers, String>) {
    match result {
        Ok(answers) => {
            for (job, answer) in jobs.into_iter().zip(answers) {
                match (job, answer) {
                    (Job::Lookup(job), Some(resolved)) => {
                        let _ = job.reply.send(Ok(resolved));
                    }
                    (Job::Record(job), _) => {
                        let _ = job.reply.send(Ok(()));
                    }
                    (Job::Lookup(job), None) => {
                        let _ = job.reply.send(Err(AuditError::Closed));
                    }
                }
            }
        }
        Err(message) => {
            tracing::error!(error = %message, jobs = jobs.len(), "access-log group commit failed; no value returned");
            fail_all(jobs, || AuditError::Write(message.clone()));
        }
    }
}

/// Takes every job already waiting, up to [`MAX_GROUP`].
pub(super) fn drain(rx: &flume::Receiver<Job>, group: &mut Vec<Job>) {
    while group.len() < MAX_GROUP {
        match rx.try_recv() {
            Ok(job) => group.push(job),
            Err(_) => break,
        }
    }
}

/// How many times the writer lets the callers of the last group catch up.
pub(super) const STRAGGLER_TURNS: usize = 8;

/// [`gather_stragglers`] for a writer on a thread of its own: the turns are
/// the thread's (`sched_yield`), which lets the runtime's workers run the
/// handlers that are about to ask.
pub(super) fn gather_stragglers_blocking(
    rx: &flume::Receiver<Job>,
    group: &mut Vec<Job>,
    last_size: usize,
) {
    drain(rx, group);
    for _ in 0..STRAGGLER_TURNS {
        if group.len() >= last_size.min(MAX_GROUP) {
            return;
        }
        std::thread::yield_now();
        drain(rx, group);
    }
}

/// What each job of a group gets: a lookup its results, a record `None`.
pub(super) type Answers = Vec<Option<Vec<Resolved>>>;

/// Every name the group's lookups ask for, once each.
pub(super) fn group_names(jobs: &[Job]) -> Vec<&str> {
    let names: BTreeSet<&str> = jobs
        .iter()
        .filter_map(|job| match job {
            Job::Lookup(job) => Some(job.lookups.iter().map(|l| l.name.as_str())),
            Job::Record(_) => None,
        })
        .flatten()
        .collect();
    names.into_iter().collect()
}

/// Resolves every lookup of the group against the (loaded) row cache and
/// collects the group's access-log entries.
pub(super) fn resolve_group(
    jobs: &[Job],
    cache: &RowCache,
    keyring: &Keyring,
) -> (Answers, Vec<AccessEntry>) {
    let mut entries = Vec::new();
    let mut answers = Vec::with_capacity(jobs.len());
    for job in jobs {
        match job {
            Job::Lookup(job) => {
                let resolved = resolve(job, cache, keyring, &mut entries);
                answers.push(Some(resolved));
            }
            Job::Record(job) => {
                entries.extend(job.entries.iter().cloned());
                answers.push(None);
            }
        }
    }
    (answers, entries)
}

fn resolve(
    job: &LookupJob,
    rows: &RowCache,
    keyring: &Keyring,
    entries: &mut Vec<AccessEntry>,
) -> Vec<Resolved> {
    let mut resolved: Vec<Resolved> = job
        .lookups
        .iter()
        .map(|lookup| {
            let found = lookup.scopes.iter().find_map(|scope| {
                rows.get(scope.as_str(), lookup.name.as_str())
                    .map(|row| (scope, row))
            });
            match found {
                None => Resolved::Missing,
                Some((scope, row)) => {
                    let aad = secret_aad(scope.as_str(), lookup.name.as_str(), row.meta.version);
                    match keyring.open(&row.sealed, &aad) {
                        Ok(value) => Resolved::Found {
                            scope: scope.clone(),
                            value,
                        },
                        Err(_) => Resolved::Unreadable {
                            scope: scope.clone(),
                        },
                    }
                }
            }
        })
        .collect();

    let incomplete = resolved
        .iter()
        .any(|r| !matches!(r, Resolved::Found { .. }));
    for (lookup, result) in job.lookups.iter().zip(resolved.iter_mut()) {
        let (outcome, scope) = match result {
            Resolved::Found { scope, .. } if job.all_or_nothing && incomplete => {
                let scope = scope.as_str().to_owned();
                // Dropping the value wipes it: it is never handed out.
                *result = Resolved::Withheld;
                (Outcome::Withheld, scope)
            }
            Resolved::Found { scope, .. } => (Outcome::Ok, scope.as_str().to_owned()),
            Resolved::Unreadable { scope } => (Outcome::Error, scope.as_str().to_owned()),
            Resolved::Missing | Resolved::Withheld => (
                Outcome::Missing,
                lookup
                    .scopes
                    .first()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
            ),
        };
        let mut entry = AccessEntry::new(
            &job.access,
            job.action,
            outcome,
            &scope,
            lookup.name.as_str(),
        );
        if lookup.scopes.len() > 1 {
            let searched: Vec<&str> = lookup.scopes.iter().map(Scope::as_str).collect();
            entry = entry.with_detail(format!("searched {}", searched.join(", ")));
        }
        entries.push(entry);
    }
    resolved
}
