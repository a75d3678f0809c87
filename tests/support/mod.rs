//! Shared helpers for the integration tests: a fresh database per test on
//! either backend, and a stable master key per test.
#![allow(dead_code)]

pub mod kw;
pub mod log_capture;
pub mod own_postgres;

use std::path::PathBuf;

use keyward::config::Config;
use keyward::crypto::MasterKey;
use keyward::store::Backend;
use keyward::vault::Vault;
use sqlx::Connection;

/// Fails the calling test unless this build has the migration fault hook
/// (`--features fault-injection`): without it such a test would find no
/// kill point, so it says how to run it instead.
pub fn require_fault_hook() {
    if !cfg!(feature = "fault-injection") {
        panic!(
            "this test needs the migration fault hook: run it with \
             `cargo test -p keyward --features fault-injection` (scripts/test does)"
        );
    }
}

/// Every way GitHub rate-limits, each with both statuses it uses: (shape,
/// status, the wait the forge gives, the `Retry-After` Keyward must
/// answer). GitHub: with no wait named, "wait for at least one minute".
pub const GITHUB_RATE_LIMITS: [(
    forge_emulator::GithubLimit,
    u16,
    u64,
    std::ops::RangeInclusive<u64>,
); 6] = {
    use forge_emulator::GithubLimit::{Primary, SecondaryMessageOnly, SecondaryRetryAfter};
    [
        (Primary, 403, 120, 118..=120),
        (Primary, 429, 120, 118..=120),
        (SecondaryRetryAfter, 403, 30, 30..=30),
        (SecondaryRetryAfter, 429, 30, 30..=30),
        (SecondaryMessageOnly, 403, 0, 60..=60),
        (SecondaryMessageOnly, 429, 0, 60..=60),
    ]
};

/// Set by scripts/test (scripts/postgres) to a superuser URL of a throw-away server.
pub const PG_URL_VAR: &str = "KEYWARD_TEST_POSTGRES_URL";

/// A fresh, empty database for one test.
pub struct TestDb {
    /// The database URL.
    pub url: String,
    /// Which backend.
    pub backend: Backend,
    /// For SQLite: the folder holding the file (removed on drop).
    pub dir: tempfile::TempDir,
    /// For PostgreSQL: the database name.
    pub pg_name: Option<String>,
}

impl TestDb {
    /// A new SQLite file in a temporary folder.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/keyward.db", dir.path().display());
        TestDb {
            url,
            backend: Backend::Sqlite,
            dir,
            pg_name: None,
        }
    }

    /// A new database on the test PostgreSQL server. Fails (never skips) when
    /// the server is not there: run the suite with scripts/test.
    pub async fn postgres() -> TestDb {
        let admin = std::env::var(PG_URL_VAR).unwrap_or_else(|_| {
            panic!(
                "{PG_URL_VAR} is not set: run the tests with scripts/test, which starts PostgreSQL"
            )
        });
        let name = format!("kw_{}", hex::encode(random_bytes::<8>()));
        let mut conn = sqlx::postgres::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL at {admin}: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        conn.close().await.ok();
        let base = admin.rsplit_once('/').expect("URL with a database").0;
        TestDb {
            url: format!("{base}/{name}"),
            backend: Backend::Postgres,
            dir: tempfile::tempdir().expect("temp dir"),
            pg_name: Some(name),
        }
    }

    /// A config for this database with `key` (and `previous` keys).
    pub fn config(&self, key: &TestKey, previous: &[&TestKey]) -> Config {
        Config {
            database_url: self.url.clone(),
            master_key: key.key(),
            previous_keys: previous.iter().map(|k| k.key()).collect(),
            dev_key_file: None,
            max_versions: keyward::vault::DEFAULT_MAX_VERSIONS as u32,
            delete_retention: keyward::vault::DEFAULT_RETENTION,
        }
    }

    /// Opens the vault with `key`, panicking on failure.
    pub async fn open(&self, key: &TestKey) -> Vault {
        Vault::open(&self.config(key, &[]))
            .await
            .expect("vault opens")
    }

    /// Runs one raw SQL statement (for tampering like an attacker with DB access).
    pub async fn exec(&self, sql: &str) {
        self.try_exec(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Drops the access log's append-only triggers, as the database's owner
    /// can (the chain, and checkpoints, are what must still catch tampering).
    pub async fn drop_append_only_guard(&self) {
        match self.backend {
            Backend::Sqlite => {
                self.exec(
                    "DROP TRIGGER secret_access_log_no_update; \
                     DROP TRIGGER secret_access_log_no_delete",
                )
                .await
            }
            Backend::Postgres => {
                self.exec("ALTER TABLE secret_access_log DISABLE TRIGGER USER")
                    .await
            }
        }
    }

    /// Runs one raw SQL statement, returning the error.
    pub async fn try_exec(&self, sql: &str) -> Result<(), sqlx::Error> {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.url).await?;
        sqlx::raw_sql(sql).execute(&mut conn).await?;
        conn.close().await?;
        Ok(())
    }

    /// Every byte the database holds, as the operating system or a backup sees it:
    /// the SQLite files, or a `pg_dump` of the database.
    pub fn raw_bytes(&self) -> Vec<u8> {
        match self.backend {
            Backend::Sqlite => {
                let mut all = Vec::new();
                for entry in std::fs::read_dir(self.dir.path()).expect("read dir") {
                    let path = entry.expect("entry").path();
                    if path.is_file() {
                        all.extend(std::fs::read(&path).expect("read db file"));
                    }
                }
                assert!(!all.is_empty(), "the SQLite files exist");
                all
            }
            Backend::Postgres => {
                let bin = std::env::var("KEYWARD_TEST_PG_BIN")
                    .map(PathBuf::from)
                    .unwrap_or_default();
                let pg_dump = if bin.as_os_str().is_empty() {
                    PathBuf::from("pg_dump")
                } else {
                    bin.join("pg_dump")
                };
                let out = std::process::Command::new(pg_dump)
                    .arg("--dbname")
                    .arg(&self.url)
                    .output()
                    .expect("run pg_dump");
                assert!(
                    out.status.success(),
                    "pg_dump: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert!(!out.stdout.is_empty());
                out.stdout
            }
        }
    }
}

/// A master key that can be handed out many times (MasterKey is not Clone).
pub struct TestKey(String);

impl TestKey {
    /// A fresh random key.
    pub fn new() -> TestKey {
        TestKey(MasterKey::generate().to_base64().to_string())
    }

    /// The same key as `text` (another process's copy).
    pub fn from_base64(text: &str) -> TestKey {
        TestKey(text.to_owned())
    }

    /// The key.
    pub fn key(&self) -> MasterKey {
        MasterKey::from_base64("test key", &self.0).expect("valid")
    }

    /// Its base64 text (for a child process's environment).
    pub fn base64(&self) -> &str {
        &self.0
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).expect("random");
    b
}

/// True if `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Defines each listed `async fn name(db: TestDb)` as a test on SQLite and
/// one on PostgreSQL, so the same suite runs against both backends.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::TestDb::sqlite().await).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::TestDb::postgres().await).await
                }
            )*
        }
    };
}
