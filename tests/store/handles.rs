//! The pool's handles on both backends: a [`Reader`] and a [`ReadConn`]
//! refuse every write before it reaches the database (so "every write
//! holds the write turn" cannot be bypassed through them), a [`WriteTx`]
//! dropped without a commit writes nothing, and a [`Writer`] writes.
//!
//! [`Reader`]: keyward::store::Reader
//! [`ReadConn`]: keyward::store::ReadConn
//! [`Writer`]: keyward::store::Writer
//! [`WriteTx`]: keyward::store::WriteTx

use crate::support::{TestDb, TestKey};

crate::on_both_backends!(
    a_reader_refuses_writes_and_changes_nothing,
    a_write_transaction_dropped_uncommitted_writes_nothing,
);

async fn count(db: &keyward::store::Db) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM service_settings")
        .fetch_one(db.reader())
        .await
        .expect("count")
}

async fn a_reader_refuses_writes_and_changes_nothing(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let kdb = vault.db();
    let before = count(kdb).await;
    for sql in [
        "INSERT INTO service_settings (key, value, updated_at) VALUES ('x', 'y', 1)",
        "insert into setting (key, value, updated_at) values ('x', 'y', 1)",
        "  UPDATE service_settings SET value = 'z'",
        "DELETE FROM service_settings",
        "WITH gone AS (DELETE FROM service_settings RETURNING key) SELECT COUNT(*) FROM gone",
        "SELECT key FROM service_settings FOR UPDATE",
    ] {
        let refused = sqlx::query(sql).execute(kdb.reader()).await;
        let message = refused.expect_err(sql).to_string();
        assert!(message.contains("reads only"), "{sql}: {message}");
        let fetched = sqlx::query(sql).fetch_all(kdb.reader()).await;
        assert!(fetched.is_err(), "{sql} ran through fetch_all");
        // The same on one held read connection.
        let mut conn = kdb.read_connection().await.expect("read connection");
        let refused = sqlx::query(sql).execute(&mut conn).await;
        let message = refused.expect_err(sql).to_string();
        assert!(message.contains("reads only"), "{sql}: {message}");
        let fetched = sqlx::query(sql).fetch_all(&mut conn).await;
        assert!(
            fetched.is_err(),
            "{sql} ran through fetch_all on a connection"
        );
        let fetched = sqlx::query(sql).fetch_optional(&mut conn).await;
        assert!(
            fetched.is_err(),
            "{sql} ran through fetch_optional on a connection"
        );
        // Still usable for reads after a refusal.
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM service_settings")
            .fetch_one(&mut conn)
            .await
            .expect("a read after a refused write");
        assert_eq!(n, before);
    }
    assert_eq!(
        count(kdb).await,
        before,
        "a refused write changed the table"
    );

    let mut w = kdb.writer().await.expect("writer");
    sqlx::query("INSERT INTO service_settings (key, value, updated_at) VALUES ('x', 'y', 1)")
        .execute(&mut *w)
        .await
        .expect("a writer writes");
    drop(w);
    assert_eq!(count(kdb).await, before + 1);
}

async fn a_write_transaction_dropped_uncommitted_writes_nothing(db: TestDb) {
    let vault = db.open(&TestKey::new()).await;
    let kdb = vault.db();
    let before = count(kdb).await;
    {
        let mut tx = kdb.begin_write().await.expect("begin");
        sqlx::query("INSERT INTO service_settings (key, value, updated_at) VALUES ('a', 'b', 1)")
            .execute(&mut *tx)
            .await
            .expect("insert");
    }
    assert_eq!(count(kdb).await, before);
    let mut tx = kdb.begin_write().await.expect("begin");
    sqlx::query("INSERT INTO service_settings (key, value, updated_at) VALUES ('a', 'b', 1)")
        .execute(&mut *tx)
        .await
        .expect("insert");
    tx.commit().await.expect("commit");
    assert_eq!(count(kdb).await, before + 1);
}
