//! Group commit: every read of a secret goes through one task that takes all
//! requests waiting at that moment, reads their rows, opens them, appends one
//! access-log row per lookup and commits — one transaction and one fsync for
//! the whole group. Only after that commit does any caller get plaintext.
//!
//! There is no artificial delay: while one group commits, the next one
//! gathers, so groups grow exactly as fast as load does.
//!
//! The task keeps one connection of its own, so its prepared statements stay
//! cached. On SQLite each statement is a round trip to that connection's
//! thread, so a group is sent as few multi-statement batches as it can be:
//! in steady state one (`BEGIN IMMEDIATE`, insert, head update, `COMMIT`),
//! optimistically chained after the head this task committed last and
//! checked against it under the write lock; if another writer moved the
//! head or changed a secret in between, nothing is written and the group
//! runs again the long way (head locked and read first, rows re-read).
//!
//! On SQLite the connection does not checkpoint the WAL inside a commit
//! (automatic checkpoints are off: one would stall that group's answer); it
//! runs a passive checkpoint itself between groups once a second. Between
//! groups nothing else appends, so the checkpoint catches up completely and
//! the next commit starts the WAL from its beginning again: the file stops
//! growing under steady load, and a commit overwrites blocks the file
//! already has, whose fsync costs a third of one that extends it.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use sqlx::{AnyConnection, AnyPool, Connection, Executor};
use tokio::sync::{mpsc, oneshot};

use super::chain::{self, ChainKey, Head};
use super::entry::{Access, AccessEntry, Action, Outcome};
use super::row_cache::RowCache;
use super::AuditError;
use crate::crypto::{secret_aad, Keyring, SecretBytes};
use crate::names::{Scope, SecretName};
use crate::store::{now_ms, Backend, Db};

/// Most jobs taken into one transaction.
const MAX_GROUP: usize = 256;
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

struct LookupJob {
    access: Access,
    action: Action,
    lookups: Vec<Lookup>,
    all_or_nothing: bool,
    reply: oneshot::Sender<Result<Vec<Resolved>, AuditError>>,
}

struct RecordJob {
    entries: Vec<AccessEntry>,
    reply: oneshot::Sender<Result<(), AuditError>>,
}

enum Job {
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
    /// Refusals written to the log (a caller asked for what it may not).
    pub denied: AtomicU64,
}

/// Upper bounds of the batch-size buckets of [`Stats::batches`].
pub const BATCH_BUCKETS: [u64; 8] = [1, 2, 4, 8, 16, 32, 64, 128];

impl Stats {
    fn record_group(&self, rows: u64) {
        self.groups.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(rows, Ordering::Relaxed);
        let bucket = BATCH_BUCKETS
            .iter()
            .position(|&bound| rows <= bound)
            .unwrap_or(BATCH_BUCKETS.len());
        self.batches[bucket].fetch_add(1, Ordering::Relaxed);
    }
}

/// Handle to the group-commit task. Cheap to clone.
#[derive(Clone)]
pub struct GroupCommit {
    jobs: mpsc::Sender<Job>,
    stats: Arc<Stats>,
}

impl GroupCommit {
    /// Starts the task on the current tokio runtime.
    pub fn start(db: &Db, keyring: Arc<Keyring>, chain: Arc<ChainKey>) -> Self {
        let (jobs, rx) = mpsc::channel(QUEUE);
        let stats = Arc::new(Stats::default());
        tokio::spawn(run(rx, db.clone(), keyring, chain, stats.clone()));
        GroupCommit { jobs, stats }
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
        self.jobs.send(job).await.map_err(|_| AuditError::Closed)?;
        answer.await.map_err(|_| AuditError::Closed)?
    }

    /// Appends entries that involve no read (e.g. a denied request).
    pub async fn record(&self, entries: Vec<AccessEntry>) -> Result<(), AuditError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Record(RecordJob { entries, reply }))
            .await
            .map_err(|_| AuditError::Closed)?;
        answer.await.map_err(|_| AuditError::Closed)?
    }

    /// Counters since start.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

async fn run(
    mut rx: mpsc::Receiver<Job>,
    db: Db,
    keyring: Arc<Keyring>,
    chain: Arc<ChainKey>,
    stats: Arc<Stats>,
) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    let mut writer: Option<Writer> = None;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let checkpointing = Arc::new(AtomicBool::new(false));
    let mut last_size = 0;
    let mut cache = RowCache::default();
    loop {
        tokio::select! {
            received = rx.recv_many(&mut group, MAX_GROUP) => {
                if received == 0 {
                    break;
                }
            }
            _ = ticker.tick() => {
                if db.backend == Backend::Sqlite {
                    match writer.as_mut() {
                        Some(writer) => checkpoint_between_groups(&mut writer.conn).await,
                        None => checkpoint(&db.pool, &checkpointing),
                    }
                }
                continue;
            }
        }
        gather_stragglers(&mut rx, &mut group, last_size).await;
        last_size = group.len();
        let jobs = std::mem::take(&mut group);
        // The writer's connection is put back only after a good group: a
        // failed one is dropped, and the next group starts on a fresh one.
        let result = match writer.take() {
            Some(w) => Ok(w),
            None => open_writer(&db)
                .await
                .map(|conn| Writer { conn, last: None }),
        };
        let result = match result {
            Ok(mut w) => {
                let done = commit(&mut w, db.backend, &keyring, &chain, &mut cache, &jobs).await;
                if done.is_ok() {
                    writer = Some(w);
                }
                done
            }
            Err(error) => Err(error),
        };
        match result {
            Ok((answers, rows)) => {
                stats.record_group(rows);
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
            Err(error) => {
                tracing::error!(%error, jobs = jobs.len(), "access-log group commit failed; no value returned");
                // Nor trust what the failed group cached.
                cache.clear();
                let message = error.to_string();
                for job in jobs {
                    let failed = || AuditError::Write(message.clone());
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
        }
        group = Vec::with_capacity(MAX_GROUP);
    }
}

/// Under steady load the callers of the last group ask again right after
/// their answer; if fewer than that are waiting, give them a few scheduler
/// turns (not a timer: nothing waits when nobody is about to ask) so that they
/// share this commit's fsync rather than wait for the next one.
async fn gather_stragglers(rx: &mut mpsc::Receiver<Job>, group: &mut Vec<Job>, last_size: usize) {
    const TURNS: usize = 8;
    for _ in 0..TURNS {
        if group.len() >= last_size.min(MAX_GROUP) {
            return;
        }
        tokio::task::yield_now().await;
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
    }
}

/// Takes a connection out of the pool for the writer's exclusive use.
async fn open_writer(db: &Db) -> Result<AnyConnection, sqlx::Error> {
    let mut conn = db.pool.acquire().await?.detach();
    if db.backend == Backend::Sqlite {
        // Statement journals of large groups stay in memory instead of a temp file.
        conn.execute("PRAGMA wal_autocheckpoint = 0; PRAGMA temp_store = MEMORY")
            .await?;
    }
    Ok(conn)
}

/// A passive WAL checkpoint on the writer's own connection, between groups
/// (see the module documentation). A failure only means the WAL keeps
/// growing until the next one.
async fn checkpoint_between_groups(conn: &mut AnyConnection) {
    if let Err(error) = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").await {
        tracing::debug!(%error, "WAL checkpoint skipped");
    }
}

/// Starts a passive WAL checkpoint beside the writer unless one is running
/// (when there is no writer's connection to run it on).
fn checkpoint(pool: &AnyPool, running: &Arc<AtomicBool>) {
    if running.swap(true, Ordering::AcqRel) {
        return;
    }
    let (pool, running) = (pool.clone(), running.clone());
    tokio::spawn(async move {
        if let Err(error) = pool.execute("PRAGMA wal_checkpoint(PASSIVE)").await {
            tracing::debug!(%error, "WAL checkpoint skipped");
        }
        running.store(false, Ordering::Release);
    });
}

type Answers = Vec<Option<Vec<Resolved>>>;

/// The group-commit task's connection, and what it committed last.
struct Writer {
    conn: AnyConnection,
    /// The head and `secrets_generation` after this connection's last
    /// commit (SQLite): what the next group optimistically builds on.
    last: Option<(Head, i64)>,
}

async fn commit(
    writer: &mut Writer,
    backend: Backend,
    keyring: &Keyring,
    chain_key: &ChainKey,
    cache: &mut RowCache,
    jobs: &[Job],
) -> Result<(Answers, u64), sqlx::Error> {
    match backend {
        Backend::Sqlite => {
            let done = commit_sqlite(writer, keyring, chain_key, cache, jobs).await;
            if done.is_err() {
                // Best effort: after a failure the connection is dropped
                // (closing it rolls back too).
                let _ = writer.conn.execute("ROLLBACK").await;
            }
            done
        }
        Backend::Postgres => {
            let mut tx = writer.conn.begin().await?;
            let (head, generation) = chain::lock_head(&mut tx).await?;
            cache
                .load(&mut tx, backend, generation, &group_names(jobs))
                .await?;
            let (answers, entries) = resolve_group(jobs, cache, keyring);
            chain::append(&mut tx, backend, chain_key, head, now_ms(), &entries).await?;
            tx.commit().await?;
            Ok((answers, entries.len() as u64))
        }
    }
}

/// SQLite: one round trip when the head is still the one this connection
/// committed last and every row is cached; otherwise two (three with rows
/// to read): `BEGIN IMMEDIATE` and the head, then insert, head and `COMMIT`.
async fn commit_sqlite(
    writer: &mut Writer,
    keyring: &Keyring,
    chain_key: &ChainKey,
    cache: &mut RowCache,
    jobs: &[Job],
) -> Result<(Answers, u64), sqlx::Error> {
    let names = group_names(jobs);
    if let Some((head, generation)) = writer.last.take() {
        if cache.covers(generation, &names) {
            let (answers, entries) = resolve_group(jobs, cache, keyring);
            let appended = chain::append_after_sqlite(
                &mut writer.conn,
                chain_key,
                &head,
                generation,
                now_ms(),
                &entries,
            )
            .await?;
            if let Some(head) = appended {
                writer.last = Some((head, generation));
                return Ok((answers, entries.len() as u64));
            }
            // Another writer moved the head or changed a secret: nothing
            // was written. The answers are dropped (their values wiped) and
            // the group runs again on what the store holds now.
        }
    }
    let (head, generation) = chain::begin_and_lock_head_sqlite(&mut writer.conn).await?;
    cache
        .load(&mut writer.conn, Backend::Sqlite, generation, &names)
        .await?;
    let (answers, entries) = resolve_group(jobs, cache, keyring);
    let head =
        chain::append_and_commit_sqlite(&mut writer.conn, chain_key, head, now_ms(), &entries)
            .await?;
    writer.last = Some((head, generation));
    Ok((answers, entries.len() as u64))
}

/// Every name the group's lookups ask for, once each.
fn group_names(jobs: &[Job]) -> Vec<&str> {
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
fn resolve_group(jobs: &[Job], cache: &RowCache, keyring: &Keyring) -> (Answers, Vec<AccessEntry>) {
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
