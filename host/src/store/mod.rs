//! Database access: one pool, two backends (SQLite embedded, PostgreSQL
//! shared), one file per table family.
//!
//! Queries are written once with `$N` placeholders, which both backends accept,
//! and run through sqlx's `Any` driver; only connection set-up and migrations
//! differ per backend.

mod access;
pub mod agents;
mod db;
pub mod forge;
pub mod keyring;
pub mod migrate;
pub mod secrets;
pub mod sessions;
pub mod tokens;
mod turn;
pub mod versions;

pub use access::{ReadConn, Reader, WriteTx, Writer};
pub use db::{
    log_index_file, Db, DOWN_WAIT, POSTGRES_ACQUIRE_TIMEOUT, POSTGRES_CONNECT_TIMEOUT,
    SQLITE_ACQUIRE_TIMEOUT,
};
#[cfg(test)]
pub(crate) use turn::write_turn;
pub use turn::WriteTurn;
pub(crate) use turn::{open_writers_file, pool_writers_waiting};

use std::path::Path;

use sqlx::migrate::Migrator;

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

/// Milliseconds since the Unix epoch, the timestamp format of every table.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The sealed value in a row's `nonce`, `ciphertext` and `tag` columns. A
/// part of the wrong type (a manual edit) or a destroyed version's NULL
/// reads as empty, so the value fails to open on its own instead of making
/// a whole group of lookups fail.
pub(crate) fn sealed_of(row: &sqlx::any::AnyRow, key_id: String) -> crate::crypto::Sealed {
    use sqlx::Row;
    crate::crypto::Sealed {
        key_id,
        nonce: row.try_get("nonce").unwrap_or_default(),
        ciphertext: row.try_get("ciphertext").unwrap_or_default(),
        tag: row.try_get("tag").unwrap_or_default(),
    }
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
