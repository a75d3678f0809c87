//! Reading the access log by filter: a secret's history and the whole
//! log's search (the dashboard's access-log page), newest first.

use super::chain::{log_row, LogRow, COLUMNS};
use crate::store::Reader;

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

/// Rows about `scope`/`name`, newest first, at most `limit`.
pub async fn history(
    db: Reader<'_>,
    scope: &str,
    name: &str,
    query: &HistoryQuery,
    limit: i64,
) -> Result<Vec<LogRow>, sqlx::Error> {
    let query = HistoryQuery {
        scope: Some(scope.to_owned()),
        name: Some(name.to_owned()),
        ..query.clone()
    };
    search(db, &query, limit).await
}

/// Rows matching `query`, newest first, at most `limit`. The log has no
/// index but `seq` (see the schema): this walks back from the newest row
/// (or from `before`) until it has `limit` matches, which is what a page
/// of recent rows needs; a filter that matches nothing recent reads far.
pub async fn search(
    db: Reader<'_>,
    query: &HistoryQuery,
    limit: i64,
) -> Result<Vec<LogRow>, sqlx::Error> {
    let mut sql = format!("SELECT {COLUMNS} FROM secret_access_log WHERE seq < $1");
    let texts = [
        ("accessor", &query.accessor),
        ("action", &query.action),
        ("outcome", &query.outcome),
        ("scope", &query.scope),
        ("name", &query.name),
    ];
    let mut n = 1;
    for (column, value) in texts {
        if value.is_some() {
            n += 1;
            sql.push_str(&format!(" AND {column} = ${n}"));
        }
    }
    for (condition, value) in [("at >=", query.since), ("at <", query.until)] {
        if value.is_some() {
            n += 1;
            sql.push_str(&format!(" AND {condition} ${n}"));
        }
    }
    sql.push_str(&format!(" ORDER BY seq DESC LIMIT ${}", n + 1));
    let mut q = sqlx::query(&sql).bind(query.before.unwrap_or(i64::MAX));
    for (_, value) in texts {
        if let Some(value) = value {
            q = q.bind(value.clone());
        }
    }
    for value in [query.since, query.until].into_iter().flatten() {
        q = q.bind(value);
    }
    q.bind(limit)
        .fetch_all(db)
        .await?
        .iter()
        .map(log_row)
        .collect()
}
