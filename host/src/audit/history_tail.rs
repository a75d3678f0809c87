//! The newest access-log rows — those the history index has not reached
//! yet — held in memory once per host, so history requests share one read
//! of them instead of each walking them in the database.
//!
//! Why: the index follower runs every 100 ms, so under load several
//! thousand rows are always after its mark. Walking them per request made
//! eight clients polling a missing secret's history cost renders 16 % on
//! PostgreSQL (docs/benchmarks.md), and any caller could make it happen
//! with names of its choice. Here each new row is read from the database
//! once — only the columns a filter can name — whoever asks and whatever
//! for; a request filters the rows in memory and then reads only the
//! rows it returns, by `seq`.
//!
//! This host's access-log writer hands it each group it has committed
//! (the entries it already holds, moved, not copied), so while clients
//! poll, the rows renders write are not read back from the database: read
//! back, they were every row the host wrote, ~30,000 a second on
//! PostgreSQL, and cost renders several per cent (docs/benchmarks.md).
//! The database stays the truth: seqs are contiguous, so rows between the
//! writer's groups (other hosts', or appended outside the writer) and
//! after them up to the head are read from it, and a group not handed
//! over (a commit whose outcome the writer cannot know, or one dropped
//! from a full inbox) is simply read. Log rows never change once written
//! (triggers refuse it), so what was taken stays true; the rows before
//! the index's mark are dropped as the mark moves, and a head below what
//! was read (a restored database) starts it over.
//!
//! Bounded: it holds at most [`TAIL_CAP`] rows. When more rows than that
//! are after the mark (the follower stopped, or was never run, as for a
//! one-off CLI command on an old log), requests fall back to reading the
//! log itself within [`super::history::SCAN_BUDGET`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Mutex, MutexGuard};

use super::chain::{log_row, LogRow, COLUMNS};
use super::group_commit::Appended;
use super::history::HistoryQuery;
use crate::store::ReadConn;

/// Rows after the index's mark held at most: twice the most measured
/// behind a busy log (8,542 on PostgreSQL, 13,374 on SQLite at 50 million
/// rows), about 3 MB.
pub const TAIL_CAP: i64 = 20_000;

/// How long a request waits for another's refresh before reading the log
/// itself (a refresh of `TAIL_CAP` rows takes well under this).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Rows read by `seq` per query when a page is fetched.
const FETCH_CHUNK: usize = 500;

/// One tail row: the columns history filters on.
struct TailRow {
    seq: i64,
    at: i64,
    accessor: Box<str>,
    action: Box<str>,
    outcome: Box<str>,
    scope: Box<str>,
    name: Box<str>,
}

impl TailRow {
    fn matches(&self, query: &HistoryQuery) -> bool {
        matches(
            query,
            self.at,
            [
                &self.accessor,
                &self.action,
                &self.outcome,
                &self.scope,
                &self.name,
            ],
        )
    }
}

/// Whether a row with this time and these accessor, action, outcome,
/// scope and name matches `query` (what `history::conditions` says in SQL).
fn matches(query: &HistoryQuery, at: i64, columns: [&str; 5]) -> bool {
    let [accessor, action, outcome, scope, name] = columns;
    let same = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
    same(&query.accessor, accessor)
        && same(&query.action, action)
        && same(&query.outcome, outcome)
        && same(&query.scope, scope)
        && same(&query.name, name)
        && query.since.is_none_or(|since| at >= since)
        && query.until.is_none_or(|until| at < until)
}

/// The rows `from < seq <= to`, oldest first.
#[derive(Default)]
struct State {
    from: i64,
    to: i64,
    rows: VecDeque<TailRow>,
}

/// The shared tail of one host (one per [`crate::vault::Vault`] and its
/// clones), and how many log rows history has read from the database.
#[derive(Default)]
pub struct Tail {
    state: Mutex<State>,
    /// Groups this host's access-log writer committed, not yet taken in.
    inbox: std::sync::Mutex<Inbox>,
    rows_read: AtomicU64,
}

/// The writer's committed groups, oldest first, at most [`TAIL_CAP`] rows
/// (older groups are dropped: rows that far back are read from the
/// database if they are still wanted).
#[derive(Default)]
struct Inbox {
    groups: VecDeque<Appended>,
    rows: usize,
}

/// What the tail holds for one request.
pub(super) struct Found {
    /// The matching rows, newest first, at most the limit asked for.
    pub rows: Vec<LogRow>,
    /// Every row after this one was looked at (rows up to it are the
    /// index's to answer).
    pub from: i64,
}

impl Tail {
    /// Log rows history and search requests have read from the database
    /// (the tail's reads, the rows fetched for pages, the rows walked by
    /// scans): what they cost the database.
    pub fn rows_read(&self) -> u64 {
        self.rows_read.load(Ordering::Relaxed)
    }

    pub(super) fn count(&self, rows: i64) {
        self.rows_read
            .fetch_add(u64::try_from(rows).unwrap_or(0), Ordering::Relaxed);
    }

    /// Takes in a group this host's writer has just committed. Called on the
    /// writer's path: a move and a push under a lock held only as long.
    pub(crate) fn committed(&self, group: Appended) {
        let mut inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
        inbox.rows += group.entries.len();
        inbox.groups.push_back(group);
        while inbox.rows > TAIL_CAP as usize {
            match inbox.groups.pop_front() {
                Some(old) => inbox.rows -= old.entries.len(),
                None => break,
            }
        }
    }

    /// The groups taken in since the last call, oldest first.
    fn take_committed(&self) -> VecDeque<Appended> {
        let mut inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
        inbox.rows = 0;
        std::mem::take(&mut inbox.groups)
    }

    /// The tail, once no other request is refreshing it; `None` after
    /// `LOCK_WAIT` (the caller then reads the log itself, within its
    /// budget). Taken before the request's pool connection, so requests
    /// waiting here hold none: one stuck on a database that stopped
    /// answering queues no others behind it for long, nor the pool.
    pub(super) async fn lock(&self) -> Option<Locked<'_>> {
        let state = tokio::time::timeout(LOCK_WAIT, self.state.lock())
            .await
            .ok()?;
        Some(Locked { tail: self, state })
    }

    /// The log rows `seqs` (newest first), in that order.
    async fn fetch(&self, db: &mut ReadConn, seqs: &[i64]) -> Result<Vec<LogRow>, sqlx::Error> {
        let mut rows = Vec::with_capacity(seqs.len());
        for chunk in seqs.chunks(FETCH_CHUNK) {
            let marks = (1..=chunk.len())
                .map(|n| format!("${n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT {COLUMNS} FROM secret_access_log WHERE seq IN ({marks}) ORDER BY seq DESC"
            );
            let mut q = sqlx::query(&sql);
            for seq in chunk {
                q = q.bind(*seq);
            }
            for row in q.fetch_all(&mut *db).await? {
                rows.push(log_row(&row)?);
            }
        }
        self.count(rows.len() as i64);
        Ok(rows)
    }
}

/// The tail held by one request (see [`Tail::lock`]).
pub(super) struct Locked<'t> {
    tail: &'t Tail,
    state: MutexGuard<'t, State>,
}

impl Locked<'_> {
    /// The rows `indexed < seq < before` matching `query`, newest first,
    /// at most `limit`, brought up to `head` first; `None` if more than
    /// [`TAIL_CAP`] rows are after the mark. `indexed` and `head` must have
    /// been read while this lock was held.
    pub(super) async fn matches(
        self,
        db: &mut ReadConn,
        indexed: i64,
        head: i64,
        query: &HistoryQuery,
        before: i64,
        limit: i64,
    ) -> Result<Option<Found>, sqlx::Error> {
        let Locked { tail, mut state } = self;
        // The head was read under this lock, after whoever read the rows
        // we hold: below them, the database went back (restored to an
        // older log); a mark past all we hold, nobody asked while the
        // follower went on. Either way, start over from the mark.
        if head < state.to {
            // What the writer handed over before may be rows the database
            // no longer has: read it all from the database again.
            drop(tail.take_committed());
        }
        if head < state.to || indexed > state.to {
            *state = State {
                from: indexed,
                to: indexed,
                rows: VecDeque::new(),
            };
        }
        // Marks only move forward: drop the rows the index now answers.
        if indexed > state.from {
            while state.rows.front().is_some_and(|r| r.seq <= indexed) {
                state.rows.pop_front();
            }
            state.from = indexed;
        }
        if head - state.from > TAIL_CAP {
            // Free the memory too: the follower is far behind.
            *state = State::default();
            return Ok(None);
        }
        // This host's own rows come from its writer; only the rows between
        // (other hosts', or appended outside the writer) and after them,
        // up to the head, are read from the database.
        for group in tail.take_committed() {
            let last = group.first + group.entries.len() as i64 - 1;
            if last <= state.to {
                continue;
            }
            if group.first > state.to + 1 {
                let read = read_tail(db, state.to, group.first - 1).await?;
                tail.count(read.len() as i64);
                state.rows.extend(read);
                state.to = group.first - 1;
            }
            let skip = usize::try_from(state.to + 1 - group.first).unwrap_or(0);
            let at = group.at;
            for (seq, entry) in (group.first..).zip(group.entries).skip(skip) {
                state.rows.push_back(TailRow {
                    seq,
                    at,
                    accessor: entry.accessor.into_boxed_str(),
                    action: entry.action.as_str().into(),
                    outcome: entry.outcome.as_str().into(),
                    scope: entry.scope.into_boxed_str(),
                    name: entry.name.into_boxed_str(),
                });
            }
            state.to = last;
        }
        if head > state.to {
            let read = read_tail(db, state.to, head).await?;
            tail.count(read.len() as i64);
            state.rows.extend(read);
            state.to = head;
        }
        let seqs: Vec<i64> = state
            .rows
            .iter()
            .rev()
            .skip_while(|r| r.seq >= before)
            .filter(|r| r.matches(query))
            .take(usize::try_from(limit).unwrap_or(0))
            .map(|r| r.seq)
            .collect();
        let from = state.from;
        drop(state);
        let mut rows = tail.fetch(db, &seqs).await?;
        // Checked again on the rows themselves: after a database restored
        // to an older log and written again, a seq the tail holds may be
        // another row now; a page may then miss a row, never show a wrong one.
        rows.retain(|r| {
            matches(
                query,
                r.at,
                [&r.accessor, &r.action, &r.outcome, &r.scope, &r.name],
            )
        });
        Ok(Some(Found { rows, from }))
    }
}

/// The filter columns of the rows `after < seq <= to`, oldest first.
async fn read_tail(db: &mut ReadConn, after: i64, to: i64) -> Result<Vec<TailRow>, sqlx::Error> {
    use sqlx::Row;
    let rows = sqlx::query(
        "SELECT seq, at, accessor, action, outcome, scope, name FROM secret_access_log \
         WHERE seq > $1 AND seq <= $2 ORDER BY seq",
    )
    .bind(after)
    .bind(to)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|row| {
            let text = |column: &str| row.try_get::<String, _>(column).map(String::into_boxed_str);
            Ok(TailRow {
                seq: row.try_get("seq")?,
                at: row.try_get("at")?,
                accessor: text("accessor")?,
                action: text("action")?,
                outcome: text("outcome")?,
                scope: text("scope")?,
                name: text("name")?,
            })
        })
        .collect()
}
