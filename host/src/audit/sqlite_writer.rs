//! The group commit on SQLite: one OS thread that owns one SQLite
//! connection (rusqlite, on the same bundled SQLite sqlx links) and does a
//! whole group on it — lock the head, read any rows the cache lacks, open
//! the values, append the chained rows, commit — before any caller of the
//! group gets an answer.
//!
//! Why a thread of its own rather than the pool: through sqlx every
//! statement is a trip to the connection's worker thread and back (two
//! thread wake-ups), and rows have to travel as JSON to keep the number of
//! trips down. Here the statements run in the calling thread against
//! prepared statements, so a group costs its SQL, one fsync'd `COMMIT` and
//! one wake-up of this thread — which made it the cheap part of a render
//! (see docs/benchmarks.md). The head and `secrets_generation` are read
//! under the write lock at the start of every group (`BEGIN IMMEDIATE`), so
//! other processes and the pool's own writes (secret changes, mutation
//! entries) interleave safely: SQLite serialises the writers.
//!
//! The writer takes the write lock back-to-back under load. SQLite's own busy
//! handler makes a waiting connection sleep 1, 2, 5, … 100 ms between tries,
//! so a write through the pool could lose every try for seconds; pool writes
//! therefore hold a [`crate::store::WriteTurn`] — in this process a counter,
//! for other processes (the CLI beside a busy server) a shared `flock` on
//! the store's writers file — and the writer waits for the turns to end
//! before its next group (at most [`MAX_DEFERENCE`]). Its own connection
//! waits for the lock by trying every [`BUSY_POLL`] instead, so a group is
//! not held up by a back-off sleep after a pool write finished.
//!
//! The connection does not checkpoint the WAL inside a commit (automatic
//! checkpoints are off: one would stall that group's answer); this thread
//! runs a passive checkpoint itself between groups once a second, or after
//! a second without work. Between groups nothing else appends, so the
//! checkpoint catches up completely and the next commit starts the WAL from
//! its beginning: the file stops growing under steady load, and a commit
//! overwrites blocks the file already has, whose fsync costs a third of one
//! that extends it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OpenFlags, TransactionBehavior};

use super::chain::{self, ChainKey, Head};
use super::entry::AccessEntry;
use super::group_commit::{
    finish_group, gather_stragglers_blocking, group_names, resolve_group, Appended,
};
use super::group_commit::{Answers, Job, Stats, MAX_GROUP};
use super::history_tail::Tail;
use super::row_cache::RowCache;
use crate::crypto::{Keyring, Sealed};
use crate::store::now_ms;
use crate::store::secrets::{SecretMeta, SecretRow};

/// How often the WAL is checkpointed under load, and after how long
/// without work.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// The longest the writer waits for pool writes' turns to end before it
/// takes the lock anyway (a turn held across something slow must not stall
/// every reveal; SQLite still serialises the two).
const MAX_DEFERENCE: Duration = Duration::from_millis(50);

/// How often the writer's connection tries the write lock while another
/// connection holds it, and for how long in all (the pool's `busy_timeout`).
const BUSY_POLL: Duration = Duration::from_micros(100);
const BUSY_TIMEOUT: Duration = Duration::from_secs(15);

/// Starts the writer thread on the SQLite file at `path` (which exists and
/// is migrated). It ends when every sender of `jobs` is gone.
pub(super) fn spawn(
    path: PathBuf,
    jobs: flume::Receiver<Job>,
    keyring: Arc<Keyring>,
    chain: Arc<ChainKey>,
    stats: Arc<Stats>,
    tail: Arc<Tail>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("keyward-access-log".into())
        .spawn(move || {
            // Without it the writer defers to this process's writes only.
            let writers = crate::store::open_writers_file(&path)
                .map_err(|error| tracing::warn!(%error, "cannot open the writers file"))
                .ok();
            run(
                &path,
                writers.as_ref(),
                &jobs,
                &keyring,
                &chain,
                &stats,
                &tail,
            )
        })
        .map(drop)
}

fn run(
    path: &Path,
    writers: Option<&File>,
    jobs: &flume::Receiver<Job>,
    keyring: &Keyring,
    chain_key: &ChainKey,
    stats: &Stats,
    tail: &Tail,
) {
    let mut conn: Option<Connection> = None;
    let mut cache = RowCache::default();
    let mut last_size = 0;
    let mut last_checkpoint = Instant::now();
    let mut dirty = false;
    loop {
        let first = match jobs.recv_timeout(CHECKPOINT_EVERY) {
            Ok(job) => job,
            Err(flume::RecvTimeoutError::Timeout) => {
                if let (true, Some(conn)) = (dirty, conn.as_ref()) {
                    checkpoint(conn);
                    dirty = false;
                    last_checkpoint = Instant::now();
                }
                continue;
            }
            Err(flume::RecvTimeoutError::Disconnected) => break,
        };
        // Deferring first: what arrives meanwhile joins this group.
        defer_to_pool_writers(writers);
        let mut group = Vec::with_capacity(MAX_GROUP);
        group.push(first);
        gather_stragglers_blocking(jobs, &mut group, last_size);
        last_size = group.len();

        // The connection is kept only after a good group: a failed one is
        // dropped (closing it rolls back too), and a fresh one opened.
        let started = std::time::Instant::now();
        let result = match conn.take() {
            Some(c) => Ok(c),
            None => open(path),
        }
        .and_then(|mut c| {
            let done = commit(&mut c, keyring, chain_key, &mut cache, &group);
            if done.is_ok() {
                conn = Some(c);
            }
            done
        });
        let failed = result.is_err();
        finish_group(group, started, result, stats, &mut cache, tail);
        dirty = true;
        if failed {
            // A full disk: the WAL may be what filled it. Checkpoint it
            // back to nothing now, on a fresh connection, so that the moment
            // space is there again the next group has room — rather than
            // the WAL refilling the disk before a checkpoint ever runs.
            conn = open(path).ok();
            if let Some(c) = conn.as_ref() {
                truncate_wal(c);
                dirty = false;
                last_checkpoint = Instant::now();
            }
            continue;
        }

        if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            if let Some(conn) = conn.as_ref() {
                checkpoint(conn);
                dirty = false;
            }
            last_checkpoint = Instant::now();
        }
    }
}

/// Waits while a pool write of any process holds a turn (see the module
/// documentation), at most [`MAX_DEFERENCE`].
fn defer_to_pool_writers(writers: Option<&File>) {
    let waiting = || crate::store::pool_writers_waiting() || turn_elsewhere(writers);
    if !waiting() {
        return;
    }
    let since = Instant::now();
    while since.elapsed() < MAX_DEFERENCE && waiting() {
        std::thread::sleep(BUSY_POLL);
    }
}

/// Whether a process holds a shared lock on the writers file: an exclusive
/// lock that cannot be had at once says so (it is let go at once otherwise).
fn turn_elsewhere(writers: Option<&File>) -> bool {
    let Some(file) = writers else {
        return false;
    };
    match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(std::fs::TryLockError::Error(_)) => false,
    }
}

/// The writer connection's busy handler: try again every [`BUSY_POLL`] for
/// up to [`BUSY_TIMEOUT`] (`attempts` counts the tries so far).
fn poll_busy(attempts: i32) -> bool {
    let limit = BUSY_TIMEOUT.as_micros() / BUSY_POLL.as_micros();
    if u128::try_from(attempts).unwrap_or(0) >= limit {
        return false;
    }
    std::thread::sleep(BUSY_POLL);
    true
}

/// Opens the writer's connection with the settings every connection of the
/// store has, plus the writer's own.
fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_handler(Some(poll_busy))?;
    // WAL is set on the file when the store is created; asking again is a
    // no-op then, and makes sure of it otherwise. synchronous = FULL: the
    // WAL is fsync'd at every COMMIT, which is what "durably logged before
    // the plaintext" rests on. No automatic checkpoints (see the module
    // documentation); statement journals of large groups in memory.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!("the store's journal mode is {mode}, not WAL")),
        ));
    }
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
         PRAGMA wal_autocheckpoint = 0; PRAGMA temp_store = MEMORY;",
    )?;
    Ok(conn)
}

/// A passive WAL checkpoint between groups. A failure only means the WAL
/// keeps growing until the next one.
fn checkpoint(conn: &Connection) {
    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    if let Err(error) = done {
        tracing::debug!(%error, "WAL checkpoint skipped");
    }
}

/// A checkpoint that copies the whole WAL into the database and truncates
/// it to nothing, giving its disk space back (after a failed group). A
/// failure is logged: the next failed group tries again.
fn truncate_wal(conn: &Connection) {
    let done = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    if let Err(error) = done {
        tracing::warn!(%error, "cannot truncate the WAL after a failed access-log group");
    }
}

/// One group in one transaction. Dropping the transaction on an error rolls
/// it back: then nothing of the group was written and nobody gets a value.
fn commit(
    conn: &mut Connection,
    keyring: &Keyring,
    chain_key: &ChainKey,
    cache: &mut RowCache,
    jobs: &[Job],
) -> rusqlite::Result<(Answers, Appended)> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (head, generation) = tx
        .prepare_cached("SELECT seq, mac, secrets_generation FROM audit_head WHERE id = 1")?
        .query_row([], |row| {
            Ok((
                Head {
                    seq: row.get(0)?,
                    mac: row.get(1)?,
                },
                row.get::<_, i64>(2)?,
            ))
        })?;
    let names = group_names(jobs);
    let missing = cache.missing(generation, &names);
    if !missing.is_empty() {
        let rows = read_rows(&tx, &missing)?;
        cache.fill(&missing, rows);
    }
    let (answers, entries) = resolve_group(jobs, cache, keyring);
    let (first, at) = (head.seq + 1, now_ms());
    append(&tx, chain_key, head, at, &entries)?;
    tx.commit()?;
    Ok((answers, Appended { first, at, entries }))
}

/// Every live row of each of `names` (any scope): a soft-deleted secret
/// renders as missing.
fn read_rows(conn: &Connection, names: &[String]) -> rusqlite::Result<Vec<SecretRow>> {
    let mut statement = conn.prepare_cached(concat!(
        "SELECT ",
        crate::store::secrets::full_columns!(),
        " FROM secret WHERE name = ?1 AND deleted_at IS NULL"
    ))?;
    let mut rows = Vec::new();
    for name in names {
        let found = statement.query_map([name], |row| {
            let meta = SecretMeta {
                scope: row.get(1)?,
                name: row.get(2)?,
                description: row.get(3)?,
                version: row.get(4)?,
                key_id: row.get(5)?,
                created_at: row.get(6)?,
                updated_at: row.get(7)?,
                rotated_at: row.get(8)?,
            };
            Ok(SecretRow {
                id: row.get(0)?,
                // A sealed part of the wrong type (a manual edit) makes this
                // row unreadable — it must not make the whole group fail.
                sealed: Sealed {
                    key_id: meta.key_id.clone(),
                    nonce: row.get(9).unwrap_or_default(),
                    ciphertext: row.get(10).unwrap_or_default(),
                    tag: row.get(11).unwrap_or_default(),
                },
                written_by: row.get(12)?,
                deleted_at: row.get(13)?,
                deleted_by: row.get(14)?,
                max_versions: row.get(15)?,
                meta,
            })
        })?;
        for row in found {
            rows.push(row?);
        }
    }
    Ok(rows)
}

/// Appends the chained rows of `entries` after `head` and moves the head,
/// in the caller's transaction.
fn append(
    conn: &Connection,
    key: &ChainKey,
    head: Head,
    at: i64,
    entries: &[AccessEntry],
) -> rusqlite::Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO secret_access_log \
         (seq, at, accessor, reason, action, outcome, scope, name, detail, mac) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    let (rows, head) = chain::chain_rows(key, head, at, entries);
    for row in &rows {
        let [accessor, reason, action, outcome, scope, name, detail] = row.fields;
        insert.execute(params![
            row.seq,
            at,
            accessor,
            reason,
            action,
            outcome,
            scope,
            name,
            detail,
            &row.mac[..]
        ])?;
    }
    conn.prepare_cached("UPDATE audit_head SET seq = ?1, mac = ?2 WHERE id = 1")?
        .execute(params![head.seq, head.mac])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writer's own connection commits durably, whatever the pool does:
    /// WAL and `synchronous = FULL` (2).
    #[test]
    fn the_writer_connection_fsyncs_every_commit() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("k.db");
        Connection::open(&path)
            .expect("create")
            .close()
            .expect("close");
        let conn = open(&path).expect("open");
        let synchronous: i64 = conn
            .query_row("PRAGMA synchronous", [], |row| row.get(0))
            .expect("synchronous");
        assert_eq!(synchronous, 2);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .expect("journal mode");
        assert_eq!(mode, "wal");
        let autocheckpoint: i64 = conn
            .query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0))
            .expect("autocheckpoint");
        assert_eq!(autocheckpoint, 0);
    }

    /// Another process announcing a write holds a shared lock on the
    /// writers file; the writer's probe sees it, and sees it go.
    #[test]
    fn a_shared_lock_on_the_writers_file_is_a_turn_elsewhere() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("k.db");
        let probe = crate::store::open_writers_file(&db).expect("writer's handle");
        let other = crate::store::open_writers_file(&db).expect("another process's handle");
        assert!(!turn_elsewhere(Some(&probe)));
        other.lock_shared().expect("announce");
        assert!(turn_elsewhere(Some(&probe)));
        // The probe let its own attempt go: the announcer can still take
        // and drop more shared locks, and nothing is left held.
        other.unlock().expect("done");
        assert!(!turn_elsewhere(Some(&probe)));
        assert!(!turn_elsewhere(None));
    }

    /// A turn held in this process makes the writer wait, but only so long:
    /// a turn held across something slow must not stall every reveal.
    #[test]
    fn the_writer_defers_to_a_turn_for_a_bounded_time() {
        let turn = crate::store::write_turn();
        assert!(crate::store::pool_writers_waiting());
        let since = Instant::now();
        defer_to_pool_writers(None);
        assert!(since.elapsed() >= MAX_DEFERENCE);
        drop(turn);
    }

    #[test]
    fn a_missing_file_is_an_error_not_a_new_store() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(open(&dir.path().join("absent.db")).is_err());
    }
}
