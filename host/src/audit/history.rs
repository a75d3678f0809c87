//! Reading the access log by filter: a secret's history and the whole
//! log's search (the dashboard's access-log page), newest first.

use super::chain::{log_row, LogRow, COLUMNS};
use super::history_tail::Tail;
use crate::store::{Backend, Db, ReadConn};

/// Which rows of the log to read: every field that is set must match.
#[derive(Clone, Debug, Default)]
pub struct HistoryQuery {
    /// Only rows with `seq` below this (the page before), if set.
    pub before: Option<i64>,
    /// Only this accessor.
    pub accessor: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this outcome.
    pub outcome: Option<String>,
    /// Only this scope.
    pub scope: Option<String>,
    /// Only this name.
    pub name: Option<String>,
    /// Only rows at or after this Unix ms.
    pub since: Option<i64>,
    /// Only rows before this Unix ms.
    pub until: Option<i64>,
}

/// Log rows a history request reads at most, whatever its filters: the
/// bound on one request's cost, so no caller can make the server walk the
/// whole log. A page that hits it says where to go on (`next_before`).
pub const SCAN_BUDGET: i64 = 10_000;

/// One page of a history or search, newest first.
#[derive(Clone, Debug, Default)]
pub struct LogPage {
    /// The matching rows, newest first.
    pub rows: Vec<LogRow>,
    /// Where older matches may be: ask again with `before` set to this.
    /// `None` when the log (or the secret's or accessor's history) has no
    /// older rows. It is set both when the page is full and when a filter
    /// the index does not hold (action, outcome, time) stopped the scan at
    /// [`SCAN_BUDGET`] rows.
    pub next_before: Option<i64>,
}

/// Rows about `scope`/`name`, newest first, at most `limit`.
pub async fn history(
    db: &Db,
    tail: &Tail,
    scope: &str,
    name: &str,
    query: &HistoryQuery,
    limit: i64,
) -> Result<LogPage, sqlx::Error> {
    let query = HistoryQuery {
        scope: Some(scope.to_owned()),
        name: Some(name.to_owned()),
        ..query.clone()
    };
    search(db, tail, &query, limit).await
}

/// Rows matching `query`, newest first, at most `limit` (at most
/// [`SCAN_BUDGET`] rows read).
///
/// The log has no index but `seq`; the history index (the tables
/// kept by [`super::log_index`]: `access_log_by_secret` and its siblings) covers rows up to its mark. Rows after the
/// mark (the follower's lag: normally under a second of traffic) come from
/// the host's shared [`Tail`] (each read from the database once, however
/// many requests ask), or, if more than its cap are after the mark, from
/// the log itself, newest first. Below it, a filter on a secret (`scope` and
/// `name`, with or without `accessor`) or on an accessor alone is an index
/// range; anything else (action, outcome, time) is checked on the rows the
/// index or the log gives, at most [`SCAN_BUDGET`] of them.
///
/// All its reads are on one pool connection (see [`ReadConn`]), taken
/// after the tail's lock.
pub async fn search(
    db: &Db,
    tail: &Tail,
    query: &HistoryQuery,
    limit: i64,
) -> Result<LogPage, sqlx::Error> {
    let backend = db.backend;
    let locked = tail.lock().await;
    let mut conn = db.read_connection().await?;
    let db = &mut conn;
    let (head, indexed, archived) = head_and_marks(db, backend).await?;
    let mut before = query.before.unwrap_or(i64::MAX).min(head.saturating_add(1));
    // Up to the archive mark there is nothing left to read: as good as
    // indexed (an index behind the mark has nothing to give there).
    let indexed = indexed.min(head).max(archived);
    let mut budget = SCAN_BUDGET;
    let mut rows = Vec::new();

    // The newest rows, not indexed yet, from the shared tail.
    let found = match locked {
        Some(locked) if before > indexed + 1 => {
            locked
                .matches(db, indexed, head, query, before, limit)
                .await?
        }
        // Given back now: the reads below must not hold other requests.
        other => {
            drop(other);
            None
        }
    };
    if let Some(found) = found {
        rows = found.rows;
        if rows.len() as i64 == limit {
            let next_before = rows.last().map(|r| r.seq);
            return Ok(LogPage { rows, next_before });
        }
        // Everything after `found.from` was looked at (it may be past our
        // `indexed` if another request saw the mark move since).
        before = before.min(found.from.max(indexed) + 1);
    } else if before > indexed + 1 {
        // More after the mark than the tail holds: the log itself,
        // `low < seq < before`, at most `budget` rows of it.
        let low = indexed.max(before - budget - 1);
        rows = scan(db, tail, query, low, before, limit).await?;
        budget -= before - 1 - low;
        if rows.len() as i64 == limit {
            let next_before = rows.last().map(|r| r.seq);
            return Ok(LogPage { rows, next_before });
        }
        if low > indexed {
            // The budget ran out before the index's mark.
            return Ok(LogPage {
                rows,
                next_before: Some(low + 1),
            });
        }
        before = indexed + 1;
    }
    // Rows up to the archive mark are in archive files, not here: the
    // history ends there instead of paging down through seqs that are gone.
    if before <= archived + 1 {
        return Ok(LogPage {
            rows,
            next_before: None,
        });
    }

    // The indexed rows.
    let wanted = limit - rows.len() as i64;
    let budget = budget.max(wanted);
    let keyed = match (&query.scope, &query.name, &query.accessor) {
        (Some(scope), Some(name), accessor) => Some(Keys::Secret {
            scope,
            name,
            accessor: accessor.as_deref(),
        }),
        (None, None, Some(accessor)) => Some(Keys::Accessor(accessor)),
        _ => None,
    };
    let (page, scanned_to) = match keyed {
        Some(keys) => by_keys(db, backend, tail, query, &keys, before, wanted, budget).await?,
        None => {
            let low = before.saturating_sub(budget + 1).max(archived);
            let page = scan(db, tail, query, low, before, wanted).await?;
            (page, (low > archived).then_some(low + 1))
        }
    };
    rows.extend(page);
    let next_before = if rows.len() as i64 == limit {
        rows.last().map(|r| r.seq)
    } else {
        scanned_to
    };
    Ok(LogPage { rows, next_before })
}

/// The log's last seq (the head: no row is above it), the history index's
/// mark and the archive mark (0: nothing archived), in one query.
async fn head_and_marks(
    db: &mut ReadConn,
    backend: Backend,
) -> Result<(i64, i64, i64), sqlx::Error> {
    use sqlx::Row;
    let sql = format!(
        "SELECT (SELECT seq FROM audit_head WHERE id = 1) AS head, \
         (SELECT seq FROM {} WHERE id = 1) AS mark, \
         COALESCE((SELECT seq FROM audit_archive WHERE id = 1), 0) AS archived",
        super::log_index::tables(backend).mark
    );
    let row = sqlx::query(&sql).fetch_one(db).await?;
    Ok((
        row.try_get("head")?,
        row.try_get("mark")?,
        row.try_get("archived")?,
    ))
}

/// Which index range a query is.
enum Keys<'q> {
    Secret {
        scope: &'q str,
        name: &'q str,
        accessor: Option<&'q str>,
    },
    Accessor(&'q str),
}

/// Rows below `before` whose keys match, newest first, at most `limit`,
/// reading at most `budget` keys; and, if the budget stopped the read, the
/// `before` to go on from.
#[allow(clippy::too_many_arguments)]
async fn by_keys(
    db: &mut ReadConn,
    backend: Backend,
    tail: &Tail,
    query: &HistoryQuery,
    keys: &Keys<'_>,
    before: i64,
    limit: i64,
    budget: i64,
) -> Result<(Vec<LogRow>, Option<i64>), sqlx::Error> {
    let tables = super::log_index::tables(backend);
    let (table, key_filter, key_values): (&str, &str, Vec<&str>) = match keys {
        Keys::Secret {
            scope,
            name,
            accessor: None,
        } => (
            tables.by_secret,
            "scope = $2 AND name = $3",
            vec![scope, name],
        ),
        Keys::Secret {
            scope,
            name,
            accessor: Some(accessor),
        } => (
            tables.by_secret_accessor,
            "scope = $2 AND name = $3 AND accessor = $4",
            vec![scope, name, accessor],
        ),
        Keys::Accessor(accessor) => (tables.by_accessor, "accessor = $2", vec![accessor]),
    };
    // What the keys hold is already matched; the rest is checked on rows.
    let rest = HistoryQuery {
        scope: None,
        name: None,
        accessor: None,
        ..query.clone()
    };
    let n = 1 + key_values.len();
    // Without other filters every key is a match: read only as many.
    let unfiltered = rest.action.is_none()
        && rest.outcome.is_none()
        && rest.since.is_none()
        && rest.until.is_none();
    let budget = if unfiltered { limit } else { budget };
    let candidates = format!(
        "SELECT seq FROM {table} WHERE {key_filter} AND seq < $1 ORDER BY seq DESC LIMIT ${}",
        n + 1
    );
    let (conditions, texts, times) = conditions(&rest, n + 1);
    // A join from the (LIMITed, so never flattened) candidate keys, not
    // `seq IN (…)`: PostgreSQL, its statistics fresh from a bulk load, may
    // plan the `IN` as a backward walk of the whole log that checks each
    // row against the keys (measured: p99 404–878 ms at 2 M rows); the
    // join is a lookup per key whatever the statistics say.
    let columns = COLUMNS
        .split(", ")
        .map(|c| format!("l.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    // On PostgreSQL the lookup is a LATERAL subquery with a LIMIT, which
    // the planner cannot turn into a hash join over a scan of the whole log
    // (it did for a filter it estimated to match nothing, `outcome =
    // 'denied'`: p99 440 ms at 2.5 M rows). SQLite has no LATERAL, and
    // joins by nested loops anyway.
    let limit_param = n + 2 + texts.len() + times.len();
    let sql = match backend {
        Backend::Sqlite => format!(
            "SELECT {columns} FROM ({candidates}) AS k JOIN secret_access_log AS l ON l.seq = k.seq \
             WHERE TRUE{conditions} ORDER BY l.seq DESC LIMIT ${limit_param}"
        ),
        Backend::Postgres => format!(
            "SELECT {columns} FROM ({candidates}) AS k CROSS JOIN LATERAL \
             (SELECT * FROM secret_access_log WHERE seq = k.seq{conditions} LIMIT 1) AS l \
             ORDER BY l.seq DESC LIMIT ${limit_param}"
        ),
    };
    let mut q = sqlx::query(&sql).bind(before);
    for value in &key_values {
        q = q.bind(*value);
    }
    q = q.bind(budget);
    for value in &texts {
        q = q.bind(value.to_owned());
    }
    for value in &times {
        q = q.bind(*value);
    }
    let rows: Vec<LogRow> = q
        .bind(limit)
        .fetch_all(&mut *db)
        .await?
        .iter()
        .map(log_row)
        .collect::<Result<_, _>>()?;
    // Each candidate key's row is looked at (the filter is on the row).
    let looked_at = if texts.is_empty() && times.is_empty() {
        rows.len() as i64
    } else {
        budget
    };
    tail.count(looked_at);
    if rows.len() as i64 == limit || (texts.is_empty() && times.is_empty()) {
        // Every key was a match: the budget cannot have cut the page short.
        return Ok((rows, None));
    }
    // Fewer matches than asked: did the budget stop the read of keys?
    let sql = format!("SELECT COUNT(*) AS n, MIN(seq) AS low FROM ({candidates}) AS read_keys");
    let mut q = sqlx::query(&sql).bind(before);
    for value in &key_values {
        q = q.bind(*value);
    }
    use sqlx::Row;
    let row = q.bind(budget).fetch_one(db).await?;
    let read: i64 = row.try_get("n")?;
    let low: Option<i64> = row.try_get("low")?;
    Ok((rows, (read == budget).then_some(low).flatten()))
}

/// The log's rows with `low < seq < before` matching `query`, newest first,
/// at most `limit`.
async fn scan(
    db: &mut ReadConn,
    tail: &Tail,
    query: &HistoryQuery,
    low: i64,
    before: i64,
    limit: i64,
) -> Result<Vec<LogRow>, sqlx::Error> {
    let (conditions, texts, times) = conditions(query, 2);
    let sql = format!(
        "SELECT {COLUMNS} FROM secret_access_log WHERE seq < $1 AND seq > $2{conditions} \
         ORDER BY seq DESC LIMIT ${}",
        3 + texts.len() + times.len()
    );
    let mut q = sqlx::query(&sql).bind(before).bind(low);
    for value in &texts {
        q = q.bind(value.to_owned());
    }
    for value in &times {
        q = q.bind(*value);
    }
    let rows: Vec<LogRow> = q
        .bind(limit)
        .fetch_all(&mut *db)
        .await?
        .iter()
        .map(log_row)
        .collect::<Result<_, _>>()?;
    // Walked from `before` down to the last row returned, or to `low`.
    let walked = match rows.last() {
        Some(last) if rows.len() as i64 == limit => before - last.seq,
        _ => before - 1 - low,
    };
    tail.count(walked);
    Ok(rows)
}

/// `query`'s filters as ` AND column = $n…` (numbered after `after`), with
/// their text and time values in that order.
fn conditions(query: &HistoryQuery, after: usize) -> (String, Vec<String>, Vec<i64>) {
    let mut sql = String::new();
    let mut n = after;
    let mut texts = Vec::new();
    for (column, value) in [
        ("accessor", &query.accessor),
        ("action", &query.action),
        ("outcome", &query.outcome),
        ("scope", &query.scope),
        ("name", &query.name),
    ] {
        if let Some(value) = value {
            n += 1;
            sql.push_str(&format!(" AND {column} = ${n}"));
            texts.push(value.clone());
        }
    }
    let mut times = Vec::new();
    for (condition, value) in [("at >=", query.since), ("at <", query.until)] {
        if let Some(value) = value {
            n += 1;
            sql.push_str(&format!(" AND {condition} ${n}"));
            times.push(value);
        }
    }
    (sql, texts, times)
}
