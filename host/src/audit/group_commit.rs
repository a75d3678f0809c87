//! Group commit: every read of a secret goes through one task that takes all
//! requests waiting at that moment, reads their rows, opens them, appends one
//! access-log row per lookup and commits — one transaction and one fsync for
//! the whole group. Only after that commit does any caller get plaintext.
//!
//! There is no artificial delay: while one group commits, the next one
//! gathers, so groups grow exactly as fast as load does.
//!
//! The task keeps one connection of its own, so its prepared statements stay
//! cached. On SQLite that connection does not checkpoint the WAL itself (a
//! checkpoint fsyncs the database file and would stall a commit); a passive
//! checkpoint runs beside it once a second instead.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use sqlx::{AnyConnection, AnyPool, Connection, Executor};
use tokio::sync::{mpsc, oneshot};

use super::chain::{self, ChainKey};
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
    let mut writer: Option<AnyConnection> = None;
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
                    checkpoint(&db.pool, &checkpointing);
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
            Some(conn) => Ok(conn),
            None => open_writer(&db).await,
        };
        let result = match result {
            Ok(mut conn) => {
                let done = commit(&mut conn, db.backend, &keyring, &chain, &mut cache, &jobs).await;
                if done.is_ok() {
                    writer = Some(conn);
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

/// Starts a passive WAL checkpoint beside the writer unless one is running.
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

async fn commit(
    conn: &mut AnyConnection,
    backend: Backend,
    keyring: &Keyring,
    chain_key: &ChainKey,
    cache: &mut RowCache,
    jobs: &[Job],
) -> Result<(Answers, u64), sqlx::Error> {
    let mut tx = conn.begin().await?;
    let (head, generation) = chain::lock_head(&mut tx).await?;

    let names: BTreeSet<&str> = jobs
        .iter()
        .filter_map(|job| match job {
            Job::Lookup(job) => Some(job.lookups.iter().map(|l| l.name.as_str())),
            Job::Record(_) => None,
        })
        .flatten()
        .collect();
    let names: Vec<&str> = names.into_iter().collect();
    cache.load(&mut tx, backend, generation, &names).await?;

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
    chain::append(&mut tx, backend, chain_key, head, now_ms(), &entries).await?;
    tx.commit().await?;
    Ok((answers, entries.len() as u64))
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
