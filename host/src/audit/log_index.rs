//! The access log's history index (`access_log_key`), kept by a follower
//! off the commit path: the access-log writer never touches it, and a task
//! of `serve` copies the keys of newly committed rows in large batches (see
//! `migrations/*/0011_access_log_index.sql` for why).

use std::sync::atomic::Ordering;

use sqlx::Row;

use crate::store::{Backend, Db, Reader};

/// Log rows indexed per transaction at most. Large, because the cost of a
/// batch is in the index pages it dirties, not its rows: with thousands of
/// distinct secrets every key of a small batch lands on a page of its own,
/// and a batch of 50,000 rows indexes about four times as many rows a
/// second as one of 5,000 (measured, docs/benchmarks.md). The follower takes
/// whatever is pending up to this, so it catches up faster the further
/// behind it is. (On SQLite the index is a file of its own: a long batch
/// holds that file's write lock, never the database's.)
pub const BATCH: i64 = 50_000;

/// How often the follower looks for new rows once it has caught up. Short,
/// because history requests read the rows after the mark from the log
/// itself: at 250 ms the lag under load reached 18,272 rows on PostgreSQL,
/// at 100 ms 8,542, with renders on the full log within 3 % of the empty
/// log's (measured: docs/benchmarks.md). Back to back was worse.
pub const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// The index's tables as a statement names them: on SQLite they are in the
/// attached file `log_index` (see `store::log_index_file`).
pub(crate) struct Tables {
    pub by_secret: &'static str,
    pub by_secret_accessor: &'static str,
    pub by_accessor: &'static str,
    pub mark: &'static str,
}

pub(crate) fn tables(backend: Backend) -> Tables {
    match backend {
        Backend::Sqlite => Tables {
            by_secret: "log_index.access_log_by_secret",
            by_secret_accessor: "log_index.access_log_by_secret_accessor",
            by_accessor: "log_index.access_log_by_accessor",
            mark: "log_index.access_log_indexed",
        },
        Backend::Postgres => Tables {
            by_secret: "access_log_by_secret",
            by_secret_accessor: "access_log_by_secret_accessor",
            by_accessor: "access_log_by_accessor",
            mark: "access_log_indexed",
        },
    }
}

/// The last log row the index covers (0: none).
pub async fn indexed_seq(db: Reader<'_>, backend: Backend) -> Result<i64, sqlx::Error> {
    let sql = format!("SELECT seq FROM {} WHERE id = 1", tables(backend).mark);
    sqlx::query(&sql).fetch_one(db).await?.try_get("seq")
}

/// What one [`index_batch`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Indexed {
    /// Log rows indexed (0: the index had caught up).
    pub rows: u64,
    /// The last log row the index now covers.
    pub mark: i64,
}

/// Indexes up to [`BATCH`] log rows after the last indexed one, in one
/// transaction.
///
/// The keys are copied by the database itself (`INSERT … SELECT`): no row
/// travels to the host. Several hosts may run this at once: the first
/// statement locks the mark (a PostgreSQL row lock; on SQLite the index
/// file's write lock, never the database's), so they take turns and each
/// batch is indexed once. A mark beyond the log's head (the database was
/// restored from an older copy than its index) starts the index over.
pub async fn index_batch(db: &Db) -> Result<Indexed, sqlx::Error> {
    let mut conn = db.index_connection().await?;
    let result = index_batch_on(&mut conn, db.backend).await;
    if result.is_err() {
        // Not back into the pool: SQLite may leave a transaction open after
        // a failed COMMIT (SQLITE_FULL on a full disk), and a pooled
        // connection holding it would keep a snapshot of the database that
        // stops the access-log writer's checkpoint from giving the WAL's
        // space back. Closing the connection ends whatever is left.
        let _ = conn.close().await;
    }
    result
}

async fn index_batch_on(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
) -> Result<Indexed, sqlx::Error> {
    use sqlx::Connection as _;
    let t = tables(backend);
    let mut tx = conn.begin().await?;
    let from: i64 = sqlx::query(&format!(
        "UPDATE {} SET seq = seq WHERE id = 1 RETURNING seq",
        t.mark
    ))
    .fetch_one(&mut *tx)
    .await?
    .try_get("seq")?;
    let head: i64 = sqlx::query("SELECT seq FROM audit_head WHERE id = 1")
        .fetch_one(&mut *tx)
        .await?
        .try_get("seq")?;
    let from = if from > head {
        tracing::warn!(
            indexed = from,
            head,
            "the access log's history index is ahead of the log (a restored database?); rebuilding it"
        );
        for table in [t.by_secret, t.by_secret_accessor, t.by_accessor] {
            sqlx::query(&format!("DELETE FROM {table}"))
                .execute(&mut *tx)
                .await?;
        }
        0
    } else {
        from
    };
    let to = head.min(from.saturating_add(BATCH));
    if to <= from {
        tx.rollback().await?;
        return Ok(Indexed {
            rows: 0,
            mark: from,
        });
    }
    let range = "FROM secret_access_log WHERE seq > $1 AND seq <= $2";
    let mut copied = 0;
    for (table, columns) in [
        (t.by_secret, "scope, name, seq"),
        (t.by_secret_accessor, "scope, name, accessor, seq"),
        (t.by_accessor, "accessor, seq"),
    ] {
        copied = sqlx::query(&format!(
            "INSERT INTO {table} ({columns}) SELECT {columns} {range}"
        ))
        .bind(from)
        .bind(to)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    // Up to the head read above: every row up to it is committed (the head
    // moves in the same commit as its rows).
    sqlx::query(&format!("UPDATE {} SET seq = $1 WHERE id = 1", t.mark))
        .bind(to)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Indexed {
        rows: copied,
        mark: to,
    })
}

/// Keeps the index caught up for as long as the server runs: batch after
/// batch while there is a backlog, then every [`FOLLOW_EVERY`], publishing
/// the mark in the log's stats (`/metrics`). A failure (the database away, a full
/// disk) is retried on the next tick; history stays correct meanwhile, only
/// slower to read (the rows after the mark are read from the log, at most
/// a bounded number per request).
pub fn spawn_follower(vault: crate::vault::Vault) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (db, stats) = (vault.db(), vault.log_stats());
        let mut failing = false;
        loop {
            match index_batch(db).await {
                Ok(done) => {
                    failing = false;
                    stats.indexed_seq.store(done.mark, Ordering::Relaxed);
                    if done.rows as i64 >= BATCH {
                        // A backlog: the next batch at once, but let renders
                        // in. (Going on at once whenever rows keep coming
                        // shortened the lag a little and cost PostgreSQL
                        // renders 18 % more: docs/benchmarks.md.)
                        tokio::task::yield_now().await;
                        continue;
                    }
                }
                Err(error) => {
                    if !failing {
                        tracing::warn!(%error, "indexing the access log failed; retrying");
                    }
                    failing = true;
                }
            }
            tokio::time::sleep(FOLLOW_EVERY).await;
        }
    })
}
