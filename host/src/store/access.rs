//! The handles on the pool: [`Reader`] and [`ReadConn`] for reads,
//! [`Writer`] and [`WriteTx`] for writes. Only [`super::Db`] makes them, and the writing
//! two hold the [`WriteTurn`] for their whole life — so "every pool write
//! takes a turn" is a property of the types, not a rule to remember.

use std::ops::{Deref, DerefMut};

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use sqlx::any::{AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Describe, Either, Execute, Executor, Transaction};

use super::WriteTurn;

/// Runs reads on the pool; a statement that is not a read is refused
/// before it reaches the database (a `sqlx::Error::Protocol`).
///
/// It is an [`Executor`], so `query(..).fetch_one(db.reader())` reads as
/// with a pool; `execute` on it is always refused.
#[derive(Clone, Copy, Debug)]
pub struct Reader<'p>(&'p AnyPool);

impl<'p> Reader<'p> {
    pub(super) fn new(pool: &'p AnyPool) -> Self {
        Reader(pool)
    }
}

/// Whether `sql` only reads: a `SELECT`, a `WITH` that modifies
/// nothing, or a setting read (`SHOW x`, `PRAGMA x`). A lock (`FOR
/// UPDATE`) is a write's business, so it is refused too. Deliberately
/// strict: a false "no" is a loud bug in a test, a false "yes" a silent
/// starvation.
fn reads_only(sql: &str) -> bool {
    // Keywords inside string literals ('delete' as a value) do not count.
    let mut in_literal = false;
    let lower: String = sql
        .trim_start()
        .chars()
        .filter(|&c| {
            if c == '\'' {
                in_literal = !in_literal;
                return false;
            }
            !in_literal
        })
        .collect::<String>()
        .to_ascii_lowercase();
    let words = || {
        lower
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
    };
    let first = words().next().unwrap_or("");
    match first {
        // A setting read (PostgreSQL's SHOW, SQLite's PRAGMA without an
        // argument); `PRAGMA x = …` and `PRAGMA f(…)` may change things.
        "show" => !lower.contains('='),
        "pragma" => !lower.contains('=') && !lower.contains('('),
        "select" | "with" => !words().any(|w| {
            matches!(
                w,
                "insert" | "update" | "delete" | "replace" | "create" | "drop" | "alter" | "pragma"
            )
        }),
        _ => false,
    }
}

fn refused(sql: &str) -> sqlx::Error {
    let what = crate::text::clip(sql.trim(), 60);
    sqlx::Error::Protocol(format!(
        "store::Reader and ReadConn run reads only; a write must go through Db::writer or \
         Db::begin_write (refused: {what})"
    ))
}

impl<'p> Executor<'p> for Reader<'p> {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Any>,
    {
        if !reads_only(query.sql()) {
            let error = refused(query.sql());
            return futures_util::stream::once(async move { Err(error) }).boxed();
        }
        self.0.fetch_many(query)
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Any>,
    {
        if !reads_only(query.sql()) {
            let error = refused(query.sql());
            return async move { Err(error) }.boxed();
        }
        self.0.fetch_optional(query)
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement<'q>, sqlx::Error>>
    where
        'p: 'e,
    {
        if !reads_only(sql) {
            let error = refused(sql);
            return async move { Err(error) }.boxed();
        }
        self.0.prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<Any>, sqlx::Error>>
    where
        'p: 'e,
    {
        self.0.describe(sql)
    }
}

/// One pool connection for a series of reads, refusing anything else as
/// [`Reader`] does. Pass `&mut conn` where a query wants an executor.
///
/// Why not [`Reader`] for a series: each pooled query takes a connection
/// and gives it back, and sqlx pings the server on both (a round trip
/// each), so three reads are nine round trips; on one connection they are
/// five. A request that polls (history) costs a busy server that much less.
#[derive(Debug)]
pub struct ReadConn(PoolConnection<Any>);

impl ReadConn {
    pub(super) fn new(conn: PoolConnection<Any>) -> Self {
        ReadConn(conn)
    }
}

impl<'c> Executor<'c> for &'c mut ReadConn {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        if !reads_only(query.sql()) {
            let error = refused(query.sql());
            return futures_util::stream::once(async move { Err(error) }).boxed();
        }
        (&mut *self.0).fetch_many(query)
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        if !reads_only(query.sql()) {
            let error = refused(query.sql());
            return async move { Err(error) }.boxed();
        }
        (&mut *self.0).fetch_optional(query)
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement<'q>, sqlx::Error>>
    where
        'c: 'e,
    {
        if !reads_only(sql) {
            let error = refused(sql);
            return async move { Err(error) }.boxed();
        }
        (&mut *self.0).prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<Any>, sqlx::Error>>
    where
        'c: 'e,
    {
        (&mut *self.0).describe(sql)
    }
}

/// A pool connection that may write, with the write turn held until it is
/// dropped. Derefs to the connection: pass `&mut writer` where a store
/// function takes `&mut AnyConnection`.
#[must_use = "the turn is held while the writer lives"]
pub struct Writer {
    conn: PoolConnection<Any>,
    // Dropped after the connection is returned (fields drop in order).
    _turn: WriteTurn,
}

impl Writer {
    pub(super) fn new(conn: PoolConnection<Any>, turn: WriteTurn) -> Self {
        Writer { conn, _turn: turn }
    }
}

impl Deref for Writer {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.conn
    }
}

impl DerefMut for Writer {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }
}

/// A transaction that may write, with the write turn held until it is
/// committed, rolled back or dropped (a drop rolls back).
#[must_use = "a transaction that is dropped is rolled back"]
pub struct WriteTx {
    tx: Transaction<'static, Any>,
    _turn: WriteTurn,
}

impl WriteTx {
    pub(super) fn new(tx: Transaction<'static, Any>, turn: WriteTurn) -> Self {
        WriteTx { tx, _turn: turn }
    }

    /// Commits; the turn ends with it.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    /// Rolls back; the turn ends with it.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl Deref for WriteTx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

#[cfg(test)]
mod tests {
    use super::reads_only;

    #[test]
    fn only_reads_pass() {
        for sql in [
            "SELECT 1",
            "  select seq FROM access_log WHERE seq > $1",
            "WITH t AS (SELECT 1) SELECT * FROM t",
            "SELECT updated_at FROM secret", // a column name is not a keyword
            "SELECT seq FROM access_log WHERE action = 'delete'",
            "SHOW synchronous_commit",
            "PRAGMA synchronous",
        ] {
            assert!(reads_only(sql), "{sql}");
        }
        for sql in [
            "UPDATE api_token SET last_used_at = 1",
            "INSERT INTO secret VALUES (1)",
            "DELETE FROM session",
            "WITH x AS (DELETE FROM session RETURNING 1) SELECT * FROM x",
            "SELECT * FROM audit_head FOR UPDATE",
            "PRAGMA wal_checkpoint(TRUNCATE)",
            "PRAGMA synchronous = OFF",
            "SET synchronous_commit = off",
            "BEGIN",
            "",
        ] {
            assert!(!reads_only(sql), "{sql}");
        }
    }
}
