//! The PostgreSQL access-log writer: a task that takes one group after
//! another on a connection of its own, outside the pool (see
//! `group_commit` for what a group is, `sqlite_writer` for SQLite's).

use std::sync::Arc;
use std::time::Instant;

use sqlx::{AnyConnection, Connection};

use std::sync::atomic::Ordering;

use super::chain::{self, ChainKey, Head};
use super::group_commit::{
    drain, fail_all, finish_group, group_names, resolve_group, Answers, Appended, Job, Stats,
    GROUP_TIMEOUT, MAX_GROUP, RECONNECT_EVERY, STRAGGLER_TURNS,
};
use super::history_tail::Tail;
use super::row_cache::RowCache;
use super::AuditError;
use crate::crypto::Keyring;
use crate::store::{now_ms, Backend, Db};

/// The PostgreSQL writer: one group after another on a connection of its
/// own, outside the pool.
///
/// Availability: a group that fails drops the connection; the next one
/// connects again at once (bounded by `POSTGRES_CONNECT_TIMEOUT`). While
/// the server cannot be reached, groups are refused without trying more
/// often than every [`RECONNECT_EVERY`], so every caller gets a prompt 503
/// and the first group after the server is back is served: recovery within
/// that interval of the database, with no back-off to sleep out.
pub(super) async fn run(
    rx: flume::Receiver<Job>,
    db: Db,
    keyring: Arc<Keyring>,
    chain: Arc<ChainKey>,
    stats: Arc<Stats>,
    tail: Arc<Tail>,
) {
    let mut conn: Option<AnyConnection> = None;
    let mut unreachable: Option<(Instant, String)> = None;
    let mut last_size = 0;
    let mut cache = RowCache::default();
    let mut state = ChainState::default();
    while let Ok(first) = rx.recv_async().await {
        let mut group = Vec::with_capacity(MAX_GROUP);
        group.push(first);
        gather_stragglers(&rx, &mut group, last_size).await;
        last_size = group.len();
        let mut c = match conn.take() {
            Some(c) => c,
            None => {
                if let Some((at, why)) = &unreachable {
                    if at.elapsed() < RECONNECT_EVERY {
                        refuse(group, why);
                        continue;
                    }
                }
                match db.connect_own().await {
                    Ok(c) => {
                        if unreachable.take().is_some() {
                            tracing::info!("the access log's database is reachable again");
                        }
                        db.set_reachable(true);
                        c
                    }
                    Err(error) => {
                        db.set_reachable(false);
                        let why = error.to_string();
                        if unreachable.is_none() {
                            tracing::error!(error = %why, "the access log's database cannot be reached; refusing reveals until it can");
                        }
                        refuse(group, &why);
                        unreachable = Some((Instant::now(), why));
                        continue;
                    }
                }
            }
        };
        // The connection is kept only after a good group: a failed one is
        // dropped (its transaction with it), and the next group connects
        // afresh.
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(
            GROUP_TIMEOUT,
            commit_postgres(
                &mut c, &keyring, &chain, &mut cache, &mut state, &stats, &group,
            ),
        )
        .await
        {
            Ok(done) => done,
            Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "the group did not commit within {} ms",
                    GROUP_TIMEOUT.as_millis()
                ),
            ))),
        };
        if result.is_ok() {
            conn = Some(c);
        } else {
            state = ChainState::default();
        }
        finish_group(group, started, result, &stats, &mut cache, &tail);
    }
}

/// Answers every job of a group that was not tried: the database cannot be
/// reached (nothing was written, no value leaves the writer).
fn refuse(jobs: Vec<Job>, why: &str) {
    fail_all(jobs, || AuditError::Unavailable(why.to_owned()));
}

/// Under steady load the callers of the last group ask again right after
/// their answer; if fewer than that are waiting, give them a few scheduler
/// turns (not a timer: nothing waits when nobody is about to ask) so that they
/// share this commit's fsync rather than wait for the next one.
async fn gather_stragglers(rx: &flume::Receiver<Job>, group: &mut Vec<Job>, last_size: usize) {
    drain(rx, group);
    for _ in 0..STRAGGLER_TURNS {
        if group.len() >= last_size.min(MAX_GROUP) {
            return;
        }
        tokio::task::yield_now().await;
        drain(rx, group);
    }
}

/// The head and generation this writer last committed against (or read):
/// the next group is chained after it without reading it first.
struct Known {
    head: Head,
    generation: i64,
}

/// What the writer keeps between groups about the chain.
#[derive(Default)]
struct ChainState {
    known: Option<Known>,
    /// Groups still to commit under the head's lock after a conflict.
    locked_left: u32,
    /// How many groups the last conflict sent to the lock; doubles while
    /// conflicts go on, up to [`MAX_LOCKED_RUN`], and resets on a success.
    locked_run: u32,
}

/// The most groups in a row committed under the lock before a conditional
/// append is tried again.
const MAX_LOCKED_RUN: u32 = 31;

/// Commits a group in as few round trips as the chain allows.
///
/// Alone on the database (the common case): one statement,
/// [`chain::append_if_head`], chained after the head this writer wrote last
/// and resolved against rows cached for the generation it saw then; it
/// writes only if both are still current. When another writer moved the
/// head or a secret changed, that statement wrote nothing, and the group is
/// committed the sure way: in a transaction holding the head's row lock
/// (four round trips). Several hosts busy on one database keep meeting
/// each other's heads, so after a conflict the next groups go straight to
/// the lock (1, 3, 7 … up to [`MAX_LOCKED_RUN`] of them) before a
/// conditional append is tried again: contention costs a wasted statement
/// now and then, not on every group.
async fn commit_postgres(
    conn: &mut AnyConnection,
    keyring: &Keyring,
    chain_key: &ChainKey,
    cache: &mut RowCache,
    state: &mut ChainState,
    stats: &Stats,
    jobs: &[Job],
) -> Result<(Answers, Appended), sqlx::Error> {
    let names = group_names(jobs);
    // Taken: after an error nothing is known.
    let known = state.known.take();
    match (known, state.locked_left) {
        (Some(Known { head, generation }), 0) => {
            // Rows missing from the cache are read now: if a secret changed
            // since `generation`, the append below writes nothing.
            cache
                .load(conn, Backend::Postgres, generation, &names)
                .await?;
            let (answers, entries) = resolve_group(jobs, cache, keyring);
            let (first, at) = (head.seq + 1, now_ms());
            let appended =
                chain::append_if_head(conn, chain_key, &head, generation, at, &entries).await?;
            if let Some(head) = appended {
                state.known = Some(Known { head, generation });
                state.locked_run = 0;
                return Ok((answers, Appended { first, at, entries }));
            }
            // Nothing was written; dropping the answers wipes their values.
            stats.head_conflicts.fetch_add(1, Ordering::Relaxed);
            state.locked_run = (state.locked_run * 2 + 1).min(MAX_LOCKED_RUN);
            state.locked_left = state.locked_run;
        }
        (_, 0) => {}
        (_, left) => state.locked_left = left - 1,
    }
    let mut tx = conn.begin().await?;
    let (head, generation) = chain::lock_head(&mut tx).await?;
    cache
        .load(&mut tx, Backend::Postgres, generation, &names)
        .await?;
    let (answers, entries) = resolve_group(jobs, cache, keyring);
    let (first, at) = (head.seq + 1, now_ms());
    let head = chain::append(&mut tx, Backend::Postgres, chain_key, head, at, &entries).await?;
    tx.commit().await?;
    state.known = Some(Known { head, generation });
    Ok((answers, Appended { first, at, entries }))
}
