//! The access log's history index (`access_log_key`), kept by a follower
//! off the commit path: the access-log writer never touches it, and a task
//! of `serve` copies the keys of newly committed rows in large batches (see
//! `migrations/*/0011_access_log_index.sql` for why).

use sqlx::Row;

use crate::store::{Db, Reader};

/// Log rows indexed per transaction at most: large enough that a busy log
/// costs the index a few commits a second, small enough that the write
/// turn it holds (which the SQLite access-log writer waits for) stays short.
pub const BATCH: i64 = 5_000;

/// How often the follower looks for new rows once it has caught up.
pub const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// The last log row the index covers (0: none).
pub async fn indexed_seq(db: Reader<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT seq FROM access_log_indexed WHERE id = 1")
        .fetch_one(db)
        .await?
        .try_get("seq")
}

/// Indexes up to [`BATCH`] log rows after the last indexed one, in one
/// transaction, and returns how many (0: the index has caught up).
///
/// The keys are copied by the database itself (`INSERT … SELECT`): no row
/// travels to the host. Several hosts may run this at once: the first
/// statement locks the mark (a PostgreSQL row lock, SQLite's write lock),
/// so they take turns and each batch is indexed once.
pub async fn index_batch(db: &Db) -> Result<u64, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let from: i64 =
        sqlx::query("UPDATE access_log_indexed SET seq = seq WHERE id = 1 RETURNING seq")
            .fetch_one(&mut *tx)
            .await?
            .try_get("seq")?;
    let copied = sqlx::query(
        "INSERT INTO access_log_key (seq, scope, name, accessor) \
         SELECT seq, scope, name, accessor FROM secret_access_log \
         WHERE seq > $1 AND seq <= $2",
    )
    .bind(from)
    .bind(from.saturating_add(BATCH))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if copied == 0 {
        tx.rollback().await?;
        return Ok(0);
    }
    // The highest key, not `from + copied`: a log with a gap (which
    // `audit verify` reports) must not make the next batch copy a row twice.
    sqlx::query(
        "UPDATE access_log_indexed SET seq = (SELECT MAX(seq) FROM access_log_key) WHERE id = 1",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(copied)
}

/// Keeps the index caught up for as long as the server runs: batch after
/// batch while there is a backlog, then every [`FOLLOW_EVERY`]. A failure
/// (the database away, a full disk) is retried on the next tick; history
/// stays correct meanwhile, only slower (the rows after the mark are read
/// from the log).
pub fn spawn_follower(db: Db) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            match index_batch(&db).await {
                Ok(n) if n as i64 == BATCH => {
                    failing = false;
                    // A backlog: the next batch at once, but let renders in.
                    tokio::task::yield_now().await;
                    continue;
                }
                Ok(_) => failing = false,
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
