//! The hash chain over the access log.
//!
//! `mac[n] = HMAC-SHA256(chain_key, mac[n-1] ‖ seq ‖ at ‖ fields…)` with
//! `mac[0]` = 32 zero bytes. The chain key is derived from the log secret,
//! which is sealed under the master key, so nobody without the master key can
//! recompute a MAC; the `audit_head` row holds the last seq and MAC and is
//! locked by every writer, so appends from several processes serialise.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::{AnyConnection, Row};

use crate::store::Reader;
use zeroize::Zeroizing;

use super::entry::AccessEntry;
use crate::crypto::ct_eq;
use crate::store::Backend;

type HmacSha256 = Hmac<Sha256>;

/// Rows per page when verifying or reading.
const PAGE: i64 = 2000;

/// The key the chain is MACed with. No `Debug`; wiped on drop.
pub struct ChainKey(Zeroizing<[u8; 32]>);

impl ChainKey {
    /// Derives the chain key from the (unsealed) log secret.
    pub fn from_log_secret(log_secret: &[u8]) -> Self {
        ChainKey(crate::crypto::derive_subkey(
            log_secret,
            b"keyward/v1/audit-chain",
        ))
    }

    fn mac(&self, prev: &[u8], seq: i64, at: i64, fields: [&str; 7]) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(self.0.as_ref()).expect("HMAC takes any key size");
        mac.update(prev);
        mac.update(&seq.to_be_bytes());
        mac.update(&at.to_be_bytes());
        for field in fields {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field.as_bytes());
        }
        mac.finalize().into_bytes().into()
    }

    /// The MAC `row` must have when it follows a row whose MAC is `prev`.
    pub(crate) fn row_mac(&self, prev: &[u8], row: &LogRow) -> [u8; 32] {
        let fields = [
            row.accessor.as_str(),
            row.reason.as_str(),
            row.action.as_str(),
            row.outcome.as_str(),
            row.scope.as_str(),
            row.name.as_str(),
            row.detail.as_str(),
        ];
        self.mac(prev, row.seq, row.at, fields)
    }
}

/// The last appended row's seq and MAC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// Sequence number of the last row (0 for an empty log).
    pub seq: i64,
    /// Its MAC (32 zero bytes for an empty log).
    pub mac: Vec<u8>,
}

impl Head {
    /// The head of an empty log, where every chain starts.
    pub fn start() -> Head {
        Head {
            seq: 0,
            mac: vec![0u8; 32],
        }
    }
}

/// Locks the chain head for the rest of the transaction and reads it, with
/// the current `secrets_generation` (see the migration).
///
/// The lock is taken with a write so that it is the first statement of the
/// transaction: SQLite then takes its write lock up front (no deferred
/// read-to-write upgrade that could fail with SQLITE_BUSY) and PostgreSQL
/// row-locks the head until commit.
pub async fn lock_head(conn: &mut AnyConnection) -> Result<(Head, i64), sqlx::Error> {
    let row = sqlx::query(
        "UPDATE audit_head SET touched_at = $1 WHERE id = 1 RETURNING seq, mac, secrets_generation",
    )
    .bind(crate::store::now_ms())
    .fetch_one(&mut *conn)
    .await?;
    let head = Head {
        seq: row.try_get("seq")?,
        mac: row.try_get("mac")?,
    };
    Ok((head, row.try_get("secrets_generation")?))
}

async fn read_head<'c, E>(conn: E) -> Result<Head, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let row = sqlx::query("SELECT seq, mac FROM audit_head WHERE id = 1")
        .fetch_one(conn)
        .await?;
    Ok(Head {
        seq: row.try_get("seq")?,
        mac: row.try_get("mac")?,
    })
}

/// Appends `entries` after `head` (which the caller has locked) and moves the
/// head. Returns the new head. All in the caller's transaction.
///
/// The rows travel as one JSON array bound to one parameter: a single
/// statement of one fixed shape whatever the group size, instead of ten
/// binds per row (which is where a large group's time went).
pub async fn append(
    conn: &mut AnyConnection,
    backend: Backend,
    key: &ChainKey,
    head: Head,
    at: i64,
    entries: &[AccessEntry],
) -> Result<Head, sqlx::Error> {
    if entries.is_empty() {
        return Ok(head);
    }
    let (rows, head) = chained(key, head, at, entries);
    match backend {
        Backend::Sqlite => {
            sqlx::query(INSERT_SQLITE)
                .bind(rows)
                .execute(&mut *conn)
                .await?;
            sqlx::query("UPDATE audit_head SET seq = $1, mac = $2 WHERE id = 1")
                .bind(head.seq)
                .bind(head.mac.clone())
                .execute(&mut *conn)
                .await?;
        }
        // One round trip for both: the rows and the head's move in one
        // statement (a data-modifying CTE runs whether or not the outer
        // statement reads it).
        Backend::Postgres => {
            sqlx::query(APPEND_POSTGRES)
                .bind(rows)
                .bind(head.seq)
                .bind(head.mac.clone())
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(head)
}

/// Appends `entries` after `head` in one statement of its own (its own
/// transaction: the connection must not be in one), **only if** the log's
/// head is still `head` and `secrets_generation` still `generation` when the
/// statement runs; otherwise writes nothing and returns `None`.
///
/// This is the PostgreSQL writer's one-round-trip commit: the head row is
/// locked only for the statement and its commit, not across the round trips
/// of a transaction. The check is made on the newest version of the head
/// row (an `UPDATE`'s `WHERE` is re-evaluated after waiting for another
/// writer's lock), so a group chained after a head another writer has moved
/// is never written, and a group resolved against rows of an older
/// generation is never acknowledged.
pub async fn append_if_head(
    conn: &mut AnyConnection,
    key: &ChainKey,
    head: &Head,
    generation: i64,
    at: i64,
    entries: &[AccessEntry],
) -> Result<Option<Head>, sqlx::Error> {
    let (rows, new_head) = chained(key, head.clone(), at, entries);
    let row = sqlx::query(APPEND_IF_HEAD_POSTGRES)
        .bind(rows)
        .bind(new_head.seq)
        .bind(new_head.mac.clone())
        .bind(at)
        .bind(head.seq)
        .bind(head.mac.clone())
        .bind(generation)
        .fetch_one(&mut *conn)
        .await?;
    let moved: i64 = row.try_get("moved")?;
    Ok((moved == 1).then_some(new_head))
}

/// [`append_if_head`]'s statement: the head moves from `$5`/`$6` (at
/// generation `$7`) to `$2`/`$3`, and the rows in `$1` are inserted only if
/// it did (`moved` says whether).
const APPEND_IF_HEAD_POSTGRES: &str = "WITH moved AS ( \
     UPDATE audit_head SET seq = $2, mac = $3, touched_at = $4 \
     WHERE id = 1 AND seq = $5 AND mac = $6 AND secrets_generation = $7 \
     RETURNING id), \
     appended AS ( \
     INSERT INTO secret_access_log \
     (seq, at, accessor, reason, action, outcome, scope, name, detail, mac) \
     SELECT (e->>0)::bigint, (e->>1)::bigint, e->>2, e->>3, e->>4, e->>5, \
            e->>6, e->>7, e->>8, decode(e->>9, 'hex') \
     FROM jsonb_array_elements($1::jsonb) AS e \
     WHERE EXISTS (SELECT 1 FROM moved)) \
     SELECT count(*) AS moved FROM moved";

/// The PostgreSQL append of a group: its rows, all in `$1` (a JSON array),
/// and the head moved to `$2`/`$3`, in one statement.
const APPEND_POSTGRES: &str = "WITH appended AS ( \
     INSERT INTO secret_access_log \
     (seq, at, accessor, reason, action, outcome, scope, name, detail, mac) \
     SELECT (e->>0)::bigint, (e->>1)::bigint, e->>2, e->>3, e->>4, e->>5, \
            e->>6, e->>7, e->>8, decode(e->>9, 'hex') \
     FROM jsonb_array_elements($1::jsonb) AS e) \
     UPDATE audit_head SET seq = $2, mac = $3 WHERE id = 1";

/// The SQLite insert of a group's rows, all in `$1` (a JSON array), for
/// appends on a pool connection (the group commit has its own writer:
/// `sqlite_writer`).
const INSERT_SQLITE: &str = "INSERT INTO secret_access_log \
     (seq, at, accessor, reason, action, outcome, scope, name, detail, mac) \
     SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, \
            value->>6, value->>7, value->>8, unhex(value->>9) \
     FROM json_each($1)";

/// One access-log row as stored: its place in the chain, its text columns
/// in table order (`accessor` … `detail`) and its MAC.
pub(crate) struct ChainedRow<'a> {
    pub(crate) seq: i64,
    pub(crate) fields: [&'a str; 7],
    pub(crate) mac: [u8; 32],
}

/// The rows of `entries` chained after `head`, all stamped `at`, and the new
/// head: the one place the chain is extended, whatever writes the rows.
pub(crate) fn chain_rows<'a>(
    key: &ChainKey,
    head: Head,
    at: i64,
    entries: &'a [AccessEntry],
) -> (Vec<ChainedRow<'a>>, Head) {
    let mut seq = head.seq;
    let mut prev = head.mac;
    let mut rows = Vec::with_capacity(entries.len());
    for entry in entries {
        seq += 1;
        let fields = fields(entry);
        let mac = key.mac(&prev, seq, at, fields);
        prev = mac.to_vec();
        rows.push(ChainedRow { seq, fields, mac });
    }
    (rows, Head { seq, mac: prev })
}

/// The rows of `entries` after `head` as one JSON array (the insert's one
/// parameter), and the new head.
fn chained(key: &ChainKey, head: Head, at: i64, entries: &[AccessEntry]) -> (String, Head) {
    let (rows, head) = chain_rows(key, head, at, entries);
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            let mut columns = Vec::with_capacity(10);
            columns.push(serde_json::json!(row.seq));
            columns.push(serde_json::json!(at));
            columns.extend(row.fields.iter().map(|field| serde_json::json!(field)));
            columns.push(serde_json::json!(hex::encode(row.mac)));
            serde_json::Value::Array(columns)
        })
        .collect();
    (serde_json::Value::Array(rows).to_string(), head)
}

fn fields(entry: &AccessEntry) -> [&str; 7] {
    [
        &entry.accessor,
        &entry.reason,
        entry.action.as_str(),
        entry.outcome.as_str(),
        &entry.scope,
        &entry.name,
        &entry.detail,
    ]
}

/// A stored access-log row.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct LogRow {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// Unix milliseconds.
    pub at: i64,
    /// Who.
    pub accessor: String,
    /// Why.
    pub reason: String,
    /// What was done.
    pub action: String,
    /// How it ended.
    pub outcome: String,
    /// Which scope.
    pub scope: String,
    /// Which secret.
    pub name: String,
    /// Extra context.
    pub detail: String,
    /// The chain MAC (hex in JSON).
    #[serde(serialize_with = "hex_bytes", deserialize_with = "from_hex")]
    #[schemars(with = "String")]
    pub mac: Vec<u8>,
}

fn from_hex<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(d)?;
    hex::decode(text).map_err(serde::de::Error::custom)
}

fn hex_bytes<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}

pub(super) const COLUMNS: &str =
    "seq, at, accessor, reason, action, outcome, scope, name, detail, mac";

pub(super) fn log_row(row: &sqlx::any::AnyRow) -> Result<LogRow, sqlx::Error> {
    Ok(LogRow {
        seq: row.try_get("seq")?,
        at: row.try_get("at")?,
        accessor: row.try_get("accessor")?,
        reason: row.try_get("reason")?,
        action: row.try_get("action")?,
        outcome: row.try_get("outcome")?,
        scope: row.try_get("scope")?,
        name: row.try_get("name")?,
        detail: row.try_get("detail")?,
        mac: row.try_get("mac")?,
    })
}

/// The newest `limit` rows, oldest first.
pub async fn tail(db: Reader<'_>, limit: i64) -> Result<Vec<LogRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM secret_access_log ORDER BY seq DESC LIMIT $1");
    let mut rows = sqlx::query(&sql)
        .bind(limit)
        .fetch_all(db)
        .await?
        .iter()
        .map(log_row)
        .collect::<Result<Vec<_>, _>>()?;
    rows.reverse();
    Ok(rows)
}

pub use super::history::{history, search, HistoryQuery, LogPage, SCAN_BUDGET};

/// Rows after `seq`, oldest first, at most `limit`.
pub async fn after(db: Reader<'_>, seq: i64, limit: i64) -> Result<Vec<LogRow>, sqlx::Error> {
    let sql =
        format!("SELECT {COLUMNS} FROM secret_access_log WHERE seq > $1 ORDER BY seq LIMIT $2");
    sqlx::query(&sql)
        .bind(seq)
        .bind(limit)
        .fetch_all(db)
        .await?
        .iter()
        .map(log_row)
        .collect()
}

/// What `keyward audit verify` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyReport {
    /// Every row's MAC matches and the head agrees with the last row.
    Intact {
        /// Rows checked.
        rows: i64,
    },
    /// The first row (by seq) where the chain breaks.
    Broken {
        /// The seq of the first bad row.
        seq: i64,
        /// What is wrong there.
        problem: String,
    },
}

/// Walks the log up to the head as it is when the walk starts (rows appended
/// meanwhile are left for the next run) and recomputes every MAC.
pub async fn verify(db: &crate::store::Db, key: &ChainKey) -> Result<VerifyReport, sqlx::Error> {
    verify_after(db, key, &Head::start()).await
}

/// [`verify`] from the row after `from`, which is trusted as it is (the
/// head a signed checkpoint records): an incremental verify reads only the
/// rows that are new. `Intact { rows }` is still the last row's seq.
pub async fn verify_after(
    db: &crate::store::Db,
    key: &ChainKey,
    from: &Head,
) -> Result<VerifyReport, sqlx::Error> {
    verify_reporting(db, key, from, &mut |_| {}).await
}

/// How far a verify has got: called after every page of rows.
#[derive(Clone, Copy, Debug)]
pub struct VerifyProgress {
    /// The last row verified.
    pub seq: i64,
    /// The row the walk started after (0, or a checkpoint's).
    pub from: i64,
    /// The head the walk goes to.
    pub to: i64,
}

/// [`verify_after`], telling `progress` after every page.
pub async fn verify_reporting(
    db: &crate::store::Db,
    key: &ChainKey,
    from: &Head,
    progress: &mut (dyn FnMut(VerifyProgress) + Send),
) -> Result<VerifyReport, sqlx::Error> {
    Ok(verify_walk(db, key, from, progress).await?.0)
}

/// [`verify_reporting`], also returning the last row found good (its seq
/// and MAC): where the next incremental walk can start (`serve`'s
/// background verifier).
pub async fn verify_walk(
    db: &crate::store::Db,
    key: &ChainKey,
    from: &Head,
    progress: &mut (dyn FnMut(VerifyProgress) + Send),
) -> Result<(VerifyReport, Head), sqlx::Error> {
    let head = read_head(db.reader()).await?;
    if head.seq < from.seq {
        let problem = format!(
            "the chain head records row {} but the trusted starting point is row {}: rows were removed from the end",
            head.seq, from.seq
        );
        let report = VerifyReport::Broken {
            seq: head.seq + 1,
            problem,
        };
        return Ok((report, from.clone()));
    }
    let mut expected = from.seq + 1;
    let mut prev = from.mac.clone();
    let good = |expected: i64, prev: &[u8]| Head {
        seq: expected - 1,
        mac: prev.to_vec(),
    };
    let mut pages = Pages::open(db, from.seq, head.seq).await;
    while let Some(page) = pages.next().await? {
        for row in &page {
            if row.seq != expected {
                let report = VerifyReport::Broken {
                    seq: expected,
                    problem: format!(
                        "row {expected} is missing (the next row is {}): rows were deleted or renumbered",
                        row.seq
                    ),
                };
                return Ok((report, good(expected, &prev)));
            }
            let mac = key.row_mac(&prev, row);
            if !ct_eq(&mac, &row.mac) {
                let report = VerifyReport::Broken {
                    seq: row.seq,
                    problem: "MAC mismatch: the row was edited, moved or inserted".into(),
                };
                return Ok((report, good(expected, &prev)));
            }
            prev.clone_from(&row.mac);
            expected += 1;
        }
        progress(VerifyProgress {
            seq: expected - 1,
            from: from.seq,
            to: head.seq,
        });
    }
    let rows = expected - 1;
    if head.seq != rows || !ct_eq(&head.mac, &prev) {
        let report = VerifyReport::Broken {
            seq: rows + 1,
            problem: format!(
                "the chain head records row {} but the log ends at row {rows}: rows were removed from the end",
                head.seq
            ),
        };
        return Ok((report, good(expected, &prev)));
    }
    Ok((VerifyReport::Intact { rows }, good(expected, &prev)))
}

/// A [`LogRow`] from a row of [`COLUMNS`], in that order, whatever the
/// driver: `$get` is its getter by column index (`?` on each).
macro_rules! log_row_by_index {
    ($row:expr, $get:ident) => {
        LogRow {
            seq: $row.$get(0)?,
            at: $row.$get(1)?,
            accessor: $row.$get(2)?,
            reason: $row.$get(3)?,
            action: $row.$get(4)?,
            outcome: $row.$get(5)?,
            scope: $row.$get(6)?,
            name: $row.$get(7)?,
            detail: $row.$get(8)?,
            mac: $row.$get(9)?,
        }
    };
}

/// The rows a verify walks, a page at a time, oldest first.
///
/// They are read beside the verify, not by it: on SQLite by a thread of its
/// own straight from the file (rusqlite, one statement), on PostgreSQL by a
/// task streaming one statement over a connection of the native driver;
/// pages come over a short queue, so one page is checked while the next is
/// read, and rows skip the pool's generic driver, whose per-value decoding
/// was most of a verify's time (measured: docs/benchmarks.md). If that
/// connection cannot be had, pages of the pool.
pub(crate) enum Pages<'a> {
    Pool {
        db: Reader<'a>,
        after: i64,
        last: i64,
        done: bool,
    },
    Queue(flume::Receiver<Result<Vec<LogRow>, sqlx::Error>>),
}

impl<'a> Pages<'a> {
    /// Rows `after + 1 ..= last`.
    pub(crate) async fn open(db: &'a crate::store::Db, after: i64, last: i64) -> Pages<'a> {
        if let Some(path) = db.sqlite_file() {
            return Pages::Queue(read_file_pages(path.to_owned(), after, last));
        }
        if let Some(Ok(conn)) = db.connect_postgres().await {
            return Pages::Queue(stream_postgres_pages(conn, after, last));
        }
        Pages::Pool {
            db: db.reader(),
            after,
            last,
            done: false,
        }
    }

    /// The next page; `None` after the last.
    pub(crate) async fn next(&mut self) -> Result<Option<Vec<LogRow>>, sqlx::Error> {
        match self {
            Pages::Pool {
                db,
                after,
                last,
                done,
            } => {
                if *done {
                    return Ok(None);
                }
                let page = page_up_to(*db, *after, *last).await?;
                *done = (page.len() as i64) < PAGE;
                match page.last() {
                    Some(row) => *after = row.seq,
                    None => return Ok(None),
                }
                Ok(Some(page))
            }
            Pages::Queue(pages) => pages.recv_async().await.ok().transpose(),
        }
    }
}

/// Reads rows `after + 1 ..= last` of the SQLite file at `path` on a thread
/// of its own, [`PAGE`] rows a message. The thread stops at the end, at an
/// error (sent as the last message), or when the receiver is dropped.
fn read_file_pages(
    path: std::path::PathBuf,
    after: i64,
    last: i64,
) -> flume::Receiver<Result<Vec<LogRow>, sqlx::Error>> {
    let (send, receive) = flume::bounded(4);
    let spawned = std::thread::Builder::new()
        .name("keyward-verify-read".into())
        .spawn(move || {
            let read = || -> rusqlite::Result<()> {
                use rusqlite::OpenFlags;
                let conn = rusqlite::Connection::open_with_flags(
                    &path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                conn.busy_timeout(std::time::Duration::from_secs(5))?;
                let sql = format!(
                    "SELECT {COLUMNS} FROM secret_access_log WHERE seq > ?1 AND seq <= ?2 ORDER BY seq"
                );
                let mut statement = conn.prepare(&sql)?;
                let mut rows = statement.query(rusqlite::params![after, last])?;
                let mut page = Vec::with_capacity(PAGE as usize);
                while let Some(row) = rows.next()? {
                    page.push(log_row_by_index!(row, get));
                    if page.len() as i64 == PAGE {
                        let full = std::mem::replace(&mut page, Vec::with_capacity(PAGE as usize));
                        if send.send(Ok(full)).is_err() {
                            return Ok(());
                        }
                    }
                }
                if !page.is_empty() {
                    let _ = send.send(Ok(page));
                }
                Ok(())
            };
            if let Err(error) = read() {
                let _ = send.send(Err(sqlx::Error::Protocol(format!(
                    "reading the access log from {}: {error}",
                    path.display()
                ))));
            }
        });
    if let Err(error) = spawned {
        let (send, receive) = flume::bounded(1);
        let _ = send.send(Err(sqlx::Error::Io(error)));
        return receive;
    }
    receive
}

/// Streams rows `after + 1 ..= last` of the log over `conn` (PostgreSQL's
/// native driver) from a task of its own, [`PAGE`] rows a message; an error
/// is the last message. The task stops when the receiver is dropped.
fn stream_postgres_pages(
    mut conn: sqlx::postgres::PgConnection,
    after: i64,
    last: i64,
) -> flume::Receiver<Result<Vec<LogRow>, sqlx::Error>> {
    let (send, receive) = flume::bounded(4);
    tokio::spawn(async move {
        use futures_util::TryStreamExt as _;
        use sqlx::Connection as _;
        let sql = format!(
            "SELECT {COLUMNS} FROM secret_access_log WHERE seq > $1 AND seq <= $2 ORDER BY seq"
        );
        let read = async {
            let mut rows = sqlx::query(&sql).bind(after).bind(last).fetch(&mut conn);
            let mut page = Vec::with_capacity(PAGE as usize);
            while let Some(row) = rows.try_next().await? {
                page.push(log_row_by_index!(row, try_get));
                if page.len() as i64 == PAGE {
                    let full = std::mem::replace(&mut page, Vec::with_capacity(PAGE as usize));
                    if send.send_async(Ok(full)).await.is_err() {
                        return Ok(());
                    }
                }
            }
            if !page.is_empty() {
                let _ = send.send_async(Ok(page)).await;
            }
            Ok::<(), sqlx::Error>(())
        };
        if let Err(error) = read.await {
            let _ = send.send_async(Err(error)).await;
        }
        let _ = conn.close().await;
    });
    receive
}

pub(crate) async fn page_up_to(
    db: Reader<'_>,
    after: i64,
    last: i64,
) -> Result<Vec<LogRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM secret_access_log WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3"
    );
    sqlx::query(&sql)
        .bind(after)
        .bind(last)
        .bind(PAGE)
        .fetch_all(db)
        .await?
        .iter()
        .map(log_row)
        .collect()
}

/// The current head (for `keyward audit tail` and monitoring).
pub async fn head(db: Reader<'_>) -> Result<Head, sqlx::Error> {
    read_head(db).await
}
