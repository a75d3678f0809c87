//! Database access: one pool, two backends (SQLite embedded, PostgreSQL
//! shared), one file per table family.
//!
//! Queries are written once with `$N` placeholders, which both backends accept,
//! and run through sqlx's `Any` driver; only connection set-up and migrations
//! differ per backend.

pub mod agents;
pub mod forge;
pub mod keyring;
pub mod migrate;
pub mod secrets;
pub mod sessions;
pub mod tokens;

use std::path::Path;
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Connection, Executor};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

/// Which database engine a URL selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file (WAL, `synchronous=FULL`).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported backend.
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    /// The SQLite file's folder could not be created.
    #[error("cannot create the database folder {path}: {source}")]
    CreateDir {
        /// The folder.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Connecting failed.
    #[error("cannot open the database at {url}: {source}")]
    Connect {
        /// The URL with any password removed.
        url: String,
        /// Why.
        source: sqlx::Error,
    },
    /// The URL cannot be read as a database URL.
    #[error(
        "the database URL {url} cannot be read ({why}): percent-encode any `/ ? # @ :` in \
         the user name or password (%2F %3F %23 %40 %3A)"
    )]
    BadUrl {
        /// The URL with any password removed.
        url: String,
        /// What the parser said.
        why: String,
    },
    /// The first connection did not finish in time.
    #[error("cannot open the database at {url}: no answer within {secs} s (is the server up and reachable from here?)")]
    ConnectTimeout {
        /// The URL with any password removed.
        url: String,
        /// How long it waited.
        secs: u64,
    },
    /// A migration failed.
    #[error("cannot migrate the database schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Any other database failure.
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
}

/// An open database: the pool plus which backend it talks to.
#[derive(Clone)]
pub struct Db {
    /// The connection pool shared by every module.
    pub pool: AnyPool,
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
        let options = match backend {
            // synchronous=FULL: a WAL commit is fsync'd before COMMIT returns,
            // which is what "durably logged before the plaintext" rests on.
            Backend::Sqlite => options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                         PRAGMA busy_timeout = 15000; PRAGMA foreign_keys = ON;",
                    )
                    .await?;
                    Ok(())
                })
            }),
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

    /// Applies pending schema migrations; running it again changes nothing.
    /// On PostgreSQL, concurrent starts serialise on sqlx's advisory lock.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let url = self.raw_url.as_str();
        match self.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::sqlite::SqliteConnection::connect(url).await?;
                SQLITE_MIGRATIONS.run(&mut conn).await?;
                conn.close().await?;
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
        let count: i64 = sqlx::query_scalar(sql).fetch_one(&self.pool).await?;
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

    /// A connection of its own, outside the pool, with the settings every
    /// connection of the store has (the access-log writer's): connecting
    /// gives up after [`POSTGRES_CONNECT_TIMEOUT`] on PostgreSQL, so a
    /// server that is gone is noticed at once rather than after the pool's
    /// back-off.
    pub async fn connect_own(&self) -> Result<sqlx::AnyConnection, sqlx::Error> {
        use sqlx::Connection as _;
        let connect = async {
            let mut conn = sqlx::AnyConnection::connect(&self.raw_url).await?;
            if self.backend == Backend::Postgres {
                conn.execute("SET synchronous_commit = on").await?;
            }
            Ok(conn)
        };
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

/// Creates `dir` (and parents) readable by the owner only.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    restrict_to_owner(dir)
}

/// Creates (or truncates) a file readable and writable by the owner only.
pub(crate) fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Replaces `path` with `bytes` atomically and durably: written to a
/// private temporary file beside it, fsync'd, renamed over it, and the
/// folder fsync'd, so a reader (or a crash) sees the old content or the new,
/// never a torn write.
pub(crate) fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    // Unique per writer: two writers in one process may replace one file at once.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}-{n}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = create_private_file(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_parent(path)
}

/// Makes a rename in `path`'s folder durable.
#[cfg(unix)]
fn sync_parent(path: &Path) -> std::io::Result<()> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    std::fs::File::open(parent.unwrap_or(Path::new(".")))?.sync_all()
}

#[cfg(not(unix))]
fn sync_parent(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn restrict_to_owner(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if path.is_dir() { 0o700 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn restrict_to_owner(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// The backend a URL selects.
pub fn backend_of(url: &str) -> Result<Backend, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else {
        Err(StoreError::UnsupportedUrl(redact_url(url)))
    }
}

fn sqlite_path(url: &str) -> &str {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    rest.split('?').next().unwrap_or(rest)
}

/// A URL with every password removed, so it can be printed: the one in the
/// user part and any query parameter whose name holds `password`
/// (`password=`, `sslpassword=`).
///
/// The user part is taken to end at the *last* `@` of the URL, not at the
/// first `/`, `?` or `#`: a password written without percent-encoding may
/// hold any of them (`postgres://u:pa/ss@host/db`), and a URL parser would
/// then read part of it as the host or path. An `@` elsewhere (in the query)
/// only hides more than needed.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    if scheme.eq_ignore_ascii_case("sqlite") {
        // A file path: an `@` in it is part of the name.
        return url.to_owned();
    }
    let (user, rest) = match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            (format!("{user}:***@"), host)
        }
        None => (String::new(), rest),
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (rest, None),
    };
    let mut shown = format!("{scheme}://{user}{before_query}");
    if let Some(query) = query {
        let (query, fragment) = match query.split_once('#') {
            Some((q, f)) => (q, Some(f)),
            None => (query, None),
        };
        let pairs = url::form_urlencoded::parse(query.as_bytes()).map(|(name, value)| {
            if name.to_ascii_lowercase().contains("password") {
                (name, "***".into())
            } else {
                (name, value)
            }
        });
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        shown.push('?');
        shown.push_str(&query);
        if let Some(fragment) = fragment {
            shown.push('#');
            shown.push_str(fragment);
        }
    }
    shown
}

/// Whether `e` is a unique-constraint violation: a concurrent request
/// created the same row first. Every layer answers it as a conflict (409),
/// never as a failure of the store.
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Pool writes of this process that are waiting for, or holding, SQLite's
/// write lock (see [`write_turn`]), and the process's writers file.
///
/// Process-wide rather than per store: the store functions get a pool, not
/// a [`Db`], and a process serves one store. Where a process has several
/// (tests), a write to one only makes the others' access-log writers defer
/// for as long as it lasts, and only the first store's writers file is
/// used.
static TURNS_HELD: Mutex<usize> = Mutex::new(0);
static WRITERS_FILE: OnceLock<std::fs::File> = OnceLock::new();

/// Held by a pool write for as long as it may want SQLite's write lock (a
/// statement, or a whole transaction): while any is held, in this process or
/// another one on the same file, the access-log writer
/// (`audit::sqlite_writer`) waits between two groups before it takes the
/// lock again.
///
/// Why: that writer takes the lock back-to-back under load, and SQLite's
/// busy handler makes a waiting connection sleep 1, 2, 5, … 100 ms between
/// tries, so a pool write could lose every try for seconds (measured: an
/// operator's `POST /secrets` during a render load took up to 2.3 s, and
/// `keyward secret set` beside it up to 2.8 s).
///
/// Other processes see turns through the store's writers file
/// (`<db>-writers`, see [`open_writers_file`]): while a process holds any turn it holds a shared
/// `flock` on it, which the writer probes with a non-blocking exclusive one.
/// On PostgreSQL there is no such file and nobody reads the counter.
#[must_use = "the turn lasts as long as it is held"]
pub struct WriteTurn(());

/// Takes a [`WriteTurn`].
pub fn write_turn() -> WriteTurn {
    let mut held = TURNS_HELD.lock().unwrap_or_else(|e| e.into_inner());
    if *held == 0 {
        if let Some(file) = WRITERS_FILE.get() {
            // Blocks only while a writer probes (a few microseconds). A
            // failure costs fairness towards other processes, nothing else.
            if let Err(error) = file.lock_shared() {
                tracing::debug!(%error, "cannot announce a write on the writers file");
            }
        }
    }
    *held += 1;
    WriteTurn(())
}

impl Drop for WriteTurn {
    fn drop(&mut self) {
        let mut held = TURNS_HELD.lock().unwrap_or_else(|e| e.into_inner());
        *held = held.saturating_sub(1);
        if *held == 0 {
            if let Some(file) = WRITERS_FILE.get() {
                let _ = file.unlock();
            }
        }
    }
}

/// Whether a pool write of this process holds a [`WriteTurn`].
pub(crate) fn pool_writers_waiting() -> bool {
    *TURNS_HELD.lock().unwrap_or_else(|e| e.into_inner()) > 0
}

/// Opens the writers file of the SQLite database at `db`: `<db>-writers`,
/// empty, mode 0600; only its `flock`s carry meaning (see [`WriteTurn`]).
pub(crate) fn open_writers_file(db: &Path) -> std::io::Result<std::fs::File> {
    let mut name = db.as_os_str().to_owned();
    name.push("-writers");
    // Truncating is harmless: the file never holds anything.
    create_private_file(Path::new(&name))
}

/// Milliseconds since the Unix epoch, the timestamp format of every table.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(backend_of("sqlite://x.db").ok(), Some(Backend::Sqlite));
        assert_eq!(
            backend_of("postgres://u@h/db").ok(),
            Some(Backend::Postgres)
        );
        assert!(backend_of("mysql://u@h/db").is_err());
        assert_eq!(sqlite_path("sqlite://./data/k.db?mode=rwc"), "./data/k.db");
        assert_eq!(
            redact_url("postgres://u:hunter2@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u:***@h/db");
    }

    #[test]
    fn passwords_are_hidden_wherever_and_however_written() {
        for (url, shown) in [
            ("postgres://u:pa/ss@h/db", "postgres://u:***@h/db"),
            ("postgres://u:p?w#d@h:5/db", "postgres://u:***@h:5/db"),
            ("postgresql://u:se@cret@h/db", "postgresql://u:***@h/db"),
            ("postgres://u:p%40ss@h/db", "postgres://u:***@h/db"),
            (
                "postgres://h/db?user=u&password=hunter2&sslmode=require",
                "postgres://h/db?user=u&password=***&sslmode=require",
            ),
            (
                "postgres://h/db?PassWord=x%26y&sslpassword=z#frag",
                "postgres://h/db?PassWord=***&sslpassword=***#frag",
            ),
            (
                "sqlite://./data/k.db?mode=rwc",
                "sqlite://./data/k.db?mode=rwc",
            ),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}
