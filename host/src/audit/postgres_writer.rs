//! The PostgreSQL access-log writer: a task that takes one group after
//! another on a connection of its own, outside the pool (see
//! `group_commit` for what a group is, `sqlite_writer` for SQLite's).

use std::sync::Arc;
use std::time::Instant;

use sqlx::{AnyConnection, Connection};

use super::chain::{self, ChainKey};
use super::group_commit::{
    drain, fail_all, finish_group, group_names, resolve_group, Answers, Job, Stats, GROUP_TIMEOUT,
    MAX_GROUP, RECONNECT_EVERY, STRAGGLER_TURNS,
};
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
) {
    let mut conn: Option<AnyConnection> = None;
    let mut unreachable: Option<(Instant, String)> = None;
    let mut last_size = 0;
    let mut cache = RowCache::default();
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
            commit_postgres(&mut c, &keyring, &chain, &mut cache, &group),
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
        }
        finish_group(group, started, result, &stats, &mut cache);
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

async fn commit_postgres(
    conn: &mut AnyConnection,
    keyring: &Keyring,
    chain_key: &ChainKey,
    cache: &mut RowCache,
    jobs: &[Job],
) -> Result<(Answers, u64), sqlx::Error> {
    let mut tx = conn.begin().await?;
    let (head, generation) = chain::lock_head(&mut tx).await?;
    cache
        .load(&mut tx, Backend::Postgres, generation, &group_names(jobs))
        .await?;
    let (answers, entries) = resolve_group(jobs, cache, keyring);
    chain::append(
        &mut tx,
        Backend::Postgres,
        chain_key,
        head,
        now_ms(),
        &entries,
    )
    .await?;
    tx.commit().await?;
    Ok((answers, entries.len() as u64))
}
