//! The open database: its pool, which only this file can touch, and the
//! ways to use it — a [`Reader`] or a [`ReadConn`], a [`Writer`] or a [`WriteTx`].
//!
//! Why the pool is private: on SQLite every write must hold a
//! [`WriteTurn`](super::turn) or it starves beside a busy access-log writer.
//! With the pool out of reach, a write without a turn does not compile
//! outside this file ([`Reader`] refuses anything but a read).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Connection, Executor};

use super::access::{ReadConn, Reader, WriteTx, Writer};
use super::turn::{open_writers_file, write_turn, WRITERS_FILE};
use super::{
    backend_of, create_private_dir, redact_url, restrict_to_owner, sqlite_path, Backend,
    StoreError, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS,
};

/// An open database: the pool plus which backend it talks to.
///
/// The pool is private, so a write that skips the write turn does not
/// compile outside this file:
///
/// ```compile_fail
/// async fn write_without_a_turn(db: &keyward::store::Db) {
///     sqlx::query("DELETE FROM operator_session").execute(&db.pool).await.unwrap();
/// }
/// ```
///
/// while the same write through a [`Writer`] does (the twin that shows the
/// failure above is the privacy, not a typo):
///
/// ```no_run
/// async fn write_with_a_turn(db: &keyward::store::Db) {
///     let mut w = db.writer().await.unwrap();
///     sqlx::query("DELETE FROM operator_session").execute(&mut *w).await.unwrap();
/// }
/// ```
#[derive(Clone)]
pub struct Db {
    /// The connection pool, reached only through [`Db::reader`],
    /// [`Db::writer`] and [`Db::begin_write`].
    pool: AnyPool,
    /// The backend behind the pool.
    pub backend: Backend,
    /// The URL as given (may hold a password: never print it).
    raw_url: String,
    /// The URL with any password removed.
    shown_url: String,
    /// Set while the access-log writer cannot reach the database (shared
    /// by every clone): request-path reads then wait briefly, not for the
    /// pool's whole acquire timeout (see [`Db::bounded`]).
    unreachable: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Db {
    /// Connects without migrating (see [`Db::migrate`]). An SQLite file and its
    /// folder are created on first use.
    pub async fn connect(url: &str) -> Result<Db, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = backend_of(url)?;
        let shown = redact_url(url);
        let pool_url = match backend {
            Backend::Sqlite => {
                let path = sqlite_path(url);
                if let Some(dir) = Path::new(path)
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                {
                    create_private_dir(dir).map_err(|source| StoreError::CreateDir {
                        path: dir.display().to_string(),
                        source,
                    })?;
                }
                let is_new = !Path::new(path).exists();
                // WAL must be set once on the file before the pool opens it.
                let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                    .map_err(|source| StoreError::Connect {
                        url: shown.clone(),
                        source,
                    })?
                    .create_if_missing(true)
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
                let conn = sqlx::sqlite::SqliteConnection::connect_with(&options)
                    .await
                    .map_err(|source| StoreError::Connect {
                        url: shown.clone(),
                        source,
                    })?;
                conn.close().await?;
                // Values are sealed, but names, descriptions and the access
                // log are not: keep the file (and, since SQLite copies the
                // database's mode, its -wal and -shm files) private.
                if is_new {
                    restrict_to_owner(Path::new(path)).map_err(|source| StoreError::CreateDir {
                        path: path.to_owned(),
                        source,
                    })?;
                }
                // This process's pool writes announce themselves on it (see
                // `WriteTurn`); without it they are only fair within the process.
                match open_writers_file(Path::new(path)) {
                    Ok(file) => {
                        let _ = WRITERS_FILE.set(file);
                    }
                    Err(error) => tracing::warn!(
                        %error,
                        "cannot open the writers file beside the database; writes from \
                         this process may wait long for a busy server's access log"
                    ),
                }
                url.to_owned()
            }
            Backend::Postgres => {
                probe_postgres(url, &shown).await?;
                url.to_owned()
            }
        };
        let options = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 8,
                Backend::Postgres => 16,
            })
            .acquire_timeout(match backend {
                // A local file: a connection is only ever waited for while
                // the others are busy.
                Backend::Sqlite => SQLITE_ACQUIRE_TIMEOUT,
                // A server that is gone must give a prompt 503, not a
                // request parked in the pool's connect back-off.
                Backend::Postgres => POSTGRES_ACQUIRE_TIMEOUT,
            });
        let index_file = match backend {
            Backend::Sqlite => Some(log_index_file(Path::new(sqlite_path(url)))),
            Backend::Postgres => None,
        };
        if let Some(file) = &index_file {
            create_index_file(file, &shown).await?;
        }
        let options = match backend {
            // synchronous=FULL: a WAL commit is fsync'd before COMMIT returns,
            // which is what "durably logged before the plaintext" rests on.
            // secure_delete: a removed value (a destroyed version or secret)
            // is overwritten with zeros, not left in a free page.
            // The history index is attached from a file of its own (see
            // `log_index_file`); it is derived data, so its commits need not
            // wait for an fsync (`NORMAL`: a crash may lose its last
            // batches, which are indexed again). A 16 MiB page cache for it
            // (the default is 2 MiB): its batches touch many pages.
            Backend::Sqlite => {
                let setup = format!(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                     PRAGMA busy_timeout = 15000; PRAGMA foreign_keys = ON; \
                     PRAGMA secure_delete = ON; \
                     ATTACH DATABASE '{}' AS log_index; PRAGMA log_index.synchronous = NORMAL; \
                     PRAGMA log_index.cache_size = -16384;",
                    index_file
                        .as_deref()
                        .map(|f| f.display().to_string())
                        .unwrap_or_default()
                        .replace('\'', "''")
                );
                let setup: std::sync::Arc<str> = setup.into();
                options.after_connect(move |conn, _meta| {
                    let setup = setup.clone();
                    Box::pin(async move {
                        conn.execute(&*setup).await?;
                        Ok(())
                    })
                })
            }
            // A server configured with synchronous_commit = off would
            // acknowledge a commit before its WAL is flushed; insist per session.
            Backend::Postgres => options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("SET synchronous_commit = on").await?;
                    Ok(())
                })
            }),
        };
        let pool = options
            .connect(&pool_url)
            .await
            .map_err(|source| StoreError::Connect {
                url: shown.clone(),
                source,
            })?;
        Ok(Db {
            pool,
            backend,
            raw_url: pool_url,
            shown_url: shown,
            unreachable: Default::default(),
        })
    }

    /// Reads: a handle that runs `SELECT`s on the pool and refuses
    /// anything else.
    pub fn reader(&self) -> Reader<'_> {
        Reader::new(&self.pool)
    }

    /// One pool connection for a series of reads (see [`ReadConn`]).
    pub async fn read_connection(&self) -> Result<ReadConn, sqlx::Error> {
        Ok(ReadConn::new(self.bounded(self.pool.acquire()).await?))
    }

    /// A pool connection for writes, holding the write turn for as long as
    /// it lives (statements run one by one, each committed on its own).
    pub async fn writer(&self) -> Result<Writer, sqlx::Error> {
        let turn = write_turn();
        let conn = self.bounded(self.pool.acquire()).await?;
        Ok(Writer::new(conn, turn))
    }

    /// A transaction for writes, holding the write turn until it is
    /// committed or dropped (rolled back).
    pub async fn begin_write(&self) -> Result<WriteTx, sqlx::Error> {
        let turn = write_turn();
        let tx = self.bounded(self.pool.begin()).await?;
        Ok(WriteTx::new(tx, turn))
    }

    /// A pool connection for the access log's history index only, without
    /// a write turn: on SQLite the index is a file of its own (attached as
    /// `log_index`), so writing it never takes the database's write lock
    /// and must not make the access-log writer wait for a turn either.
    pub(crate) async fn index_connection(
        &self,
    ) -> Result<sqlx::pool::PoolConnection<sqlx::Any>, sqlx::Error> {
        self.bounded(self.pool.acquire()).await
    }

    /// Applies pending schema migrations; running it again changes nothing.
    /// On PostgreSQL, concurrent starts serialise on sqlx's advisory lock.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let url = self.raw_url.as_str();
        match self.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::sqlite::SqliteConnection::connect(url).await?;
                SQLITE_MIGRATIONS.run(&mut conn).await?;
                conn.close().await?;
                // The history index's file has no migrations of its own: its
                // tables are made if missing (a deleted file is rebuilt).
                self.pool.execute(SQLITE_LOG_INDEX_SCHEMA).await?;
            }
            Backend::Postgres => {
                let mut conn = sqlx::postgres::PgConnection::connect(url).await?;
                POSTGRES_MIGRATIONS.run(&mut conn).await?;
                conn.close().await?;
            }
        }
        Ok(())
    }

    /// True when the schema has been created (the keyring table exists).
    pub async fn is_initialised(&self) -> Result<bool, StoreError> {
        let sql = match self.backend {
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'keyring'"
            }
            Backend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = 'keyring'"
            }
        };
        let count: i64 = sqlx::query_scalar(sql).fetch_one(self.reader()).await?;
        Ok(count > 0)
    }

    /// The SQLite file behind the pool (`None` on PostgreSQL), for the
    /// access-log writer's own connection.
    pub fn sqlite_file(&self) -> Option<&Path> {
        match self.backend {
            Backend::Sqlite => Some(Path::new(sqlite_path(&self.raw_url))),
            Backend::Postgres => None,
        }
    }

    /// On PostgreSQL, a connection of the native driver, outside the pool
    /// (`None` on SQLite), for reads of many rows: `audit verify` streams
    /// the log through it, decoding rows without the generic driver's
    /// per-value conversion. Gives up like [`Db::connect_own`].
    pub(crate) async fn connect_postgres(
        &self,
    ) -> Option<Result<sqlx::postgres::PgConnection, sqlx::Error>> {
        use sqlx::Connection as _;
        if self.backend != Backend::Postgres {
            return None;
        }
        Some(within_connect_timeout(sqlx::postgres::PgConnection::connect(&self.raw_url)).await)
    }

    /// A connection of its own, outside the pool, with the settings every
    /// connection of the store has (the access-log writer's): connecting
    /// gives up after [`POSTGRES_CONNECT_TIMEOUT`] on PostgreSQL, so a
    /// server that is gone is noticed at once rather than after the pool's
    /// back-off.
    pub(crate) async fn connect_own(&self) -> Result<sqlx::AnyConnection, sqlx::Error> {
        use sqlx::Connection as _;
        let connect = async {
            let mut conn = sqlx::AnyConnection::connect(&self.raw_url).await?;
            if self.backend == Backend::Postgres {
                conn.execute("SET synchronous_commit = on").await?;
            }
            Ok(conn)
        };
        within_connect_timeout(connect).await
    }

    /// Records whether the database can be reached (the access-log writer
    /// says so after each try).
    pub fn set_reachable(&self, reachable: bool) {
        self.unreachable
            .store(!reachable, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the database was last found unreachable.
    pub fn seems_unreachable(&self) -> bool {
        self.unreachable.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs a request-path database call; while the database is known to
    /// be unreachable, gives up after [`DOWN_WAIT`] (a timeout error)
    /// rather than the pool's acquire timeout, so the request's 503 is
    /// prompt — and a call that succeeds shows the database is back.
    pub async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        if !self.seems_unreachable() {
            return call.await;
        }
        match tokio::time::timeout(DOWN_WAIT, call).await {
            Ok(done) => done,
            Err(_) => Err(sqlx::Error::PoolTimedOut),
        }
    }

    /// The URL with any password removed, for messages.
    pub fn display_url(&self) -> &str {
        &self.shown_url
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The longest a request waits for an SQLite connection of the pool.
pub const SQLITE_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a request waits for a PostgreSQL connection of the pool,
/// including connecting to a server that does not answer (then: 503).
pub const POSTGRES_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a request-path call waits for a database known to be
/// unreachable (see [`Db::bounded`]).
pub const DOWN_WAIT: Duration = Duration::from_millis(200);
/// The longest the access-log writer's own PostgreSQL connect may take.
pub const POSTGRES_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// How long the first PostgreSQL connection may take before it is reported.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// One connection before the pool is built, so that a refused connection, a
/// rejected password or a missing database is reported at once with its
/// cause: the pool would retry until its acquire timeout (30 s) and then
/// say only "pool timed out".
async fn probe_postgres(url: &str, shown: &str) -> Result<(), StoreError> {
    let options =
        sqlx::postgres::PgConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl {
            url: shown.to_owned(),
            why: e.to_string(),
        })?;
    match tokio::time::timeout(
        PROBE_TIMEOUT,
        sqlx::postgres::PgConnection::connect_with(&options),
    )
    .await
    {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(source)) => Err(StoreError::Connect {
            url: shown.to_owned(),
            source,
        }),
        Err(_) => Err(StoreError::ConnectTimeout {
            url: shown.to_owned(),
            secs: PROBE_TIMEOUT.as_secs(),
        }),
    }
}

/// Creates the history index's file if missing (in WAL mode, private like
/// the database: names and accessors are in it). The pool's connections
/// attach it, and an `ATTACH` may not create a file.
async fn create_index_file(file: &Path, shown: &str) -> Result<(), StoreError> {
    let is_new = !file.exists();
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(file)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
    let conn = sqlx::sqlite::SqliteConnection::connect_with(&options)
        .await
        .map_err(|source| StoreError::Connect {
            url: format!("{shown} (its history index {})", file.display()),
            source,
        })?;
    conn.close().await?;
    if is_new {
        restrict_to_owner(file).map_err(|source| StoreError::CreateDir {
            path: file.display().to_string(),
            source,
        })?;
    }
    Ok(())
}

/// The file the SQLite history index lives in, beside the database.
pub fn log_index_file(database: &Path) -> std::path::PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push("-log-index");
    std::path::PathBuf::from(name)
}

/// The history index's tables on SQLite (PostgreSQL's are in its migration
/// 0011, which says what they are for). `WITHOUT ROWID`: each is one B-tree
/// keyed as it is read.
const SQLITE_LOG_INDEX_SCHEMA: &str = "\
    CREATE TABLE IF NOT EXISTS log_index.access_log_by_secret ( \
        scope TEXT NOT NULL, name TEXT NOT NULL, seq INTEGER NOT NULL, \
        PRIMARY KEY (scope, name, seq)) WITHOUT ROWID; \
    CREATE TABLE IF NOT EXISTS log_index.access_log_by_secret_accessor ( \
        scope TEXT NOT NULL, name TEXT NOT NULL, accessor TEXT NOT NULL, seq INTEGER NOT NULL, \
        PRIMARY KEY (scope, name, accessor, seq)) WITHOUT ROWID; \
    CREATE TABLE IF NOT EXISTS log_index.access_log_by_accessor ( \
        accessor TEXT NOT NULL, seq INTEGER NOT NULL, \
        PRIMARY KEY (accessor, seq)) WITHOUT ROWID; \
    CREATE TABLE IF NOT EXISTS log_index.access_log_indexed ( \
        id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL); \
    INSERT OR IGNORE INTO log_index.access_log_indexed (id, seq) VALUES (1, 0);";

/// `connect`, given up after [`POSTGRES_CONNECT_TIMEOUT`].
async fn within_connect_timeout<T>(
    connect: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    match tokio::time::timeout(POSTGRES_CONNECT_TIMEOUT, connect).await {
        Ok(done) => done,
        Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "no connection to the database within {} ms",
                POSTGRES_CONNECT_TIMEOUT.as_millis()
            ),
        ))),
    }
}
