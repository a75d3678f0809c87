//! Configuration from the environment (and the few flags that override it).

use std::path::{Path, PathBuf};

use crate::crypto::{KeyError, MasterKey, MASTER_KEY_PREVIOUS_VAR, MASTER_KEY_VAR};

/// Environment variable: database URL.
pub const DATABASE_URL_VAR: &str = "KEYWARD_DATABASE_URL";
/// Environment variable: data folder (default SQLite file, dev key file).
pub const DATA_DIR_VAR: &str = "KEYWARD_DATA_DIR";
/// Default data folder, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "keyward-data";
/// Name of the development key file inside the data folder.
pub const DEV_KEY_FILE: &str = "dev-master.key";

/// Everything needed to open the store.
pub struct Config {
    /// Where the database is.
    pub database_url: String,
    /// The current master key.
    pub master_key: MasterKey,
    /// Earlier keys, accepted only to open values during a rotation.
    pub previous_keys: Vec<MasterKey>,
    /// Set when `--dev` supplied the key from a local file.
    pub dev_key_file: Option<DevKey>,
    /// Versions kept per secret, the current one included; 0 keeps all
    /// (`KEYWARD_MAX_VERSIONS`, default 10).
    pub max_versions: u32,
    /// How long a deleted secret can be undeleted before the server's
    /// purge destroys it (`KEYWARD_DELETE_RETENTION`, default 7 days).
    pub delete_retention: std::time::Duration,
}

/// The variable that sets [`Config::max_versions`].
pub const MAX_VERSIONS_VAR: &str = "KEYWARD_MAX_VERSIONS";
/// The variable that sets [`Config::delete_retention`].
pub const DELETE_RETENTION_VAR: &str = "KEYWARD_DELETE_RETENTION";
/// Longest retention accepted: a year.
pub const MAX_DELETE_RETENTION: std::time::Duration = std::time::Duration::from_secs(365 * 86_400);

/// A development key read from (or just written to) a local file.
pub struct DevKey {
    /// The file.
    pub path: PathBuf,
    /// True if this run generated it.
    pub created: bool,
}

/// Why the configuration could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The master key (or a previous key) is missing or malformed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// `KEYWARD_EGRESS_ALLOW` is not a comma list of address blocks.
    #[error("{0}")]
    EgressAllow(String),
    /// `KEYWARD_MAX_VERSIONS` is not a whole number from 0 to 10000.
    #[error("KEYWARD_MAX_VERSIONS={0:?}: give the number of versions to keep per secret, 0 (all) to 10000")]
    MaxVersions(String),
    /// `KEYWARD_DELETE_RETENTION` is not a duration from 1s to 365d.
    #[error("KEYWARD_DELETE_RETENTION={0:?}: give how long a deleted secret can be undeleted, from 1s to 365d (e.g. 7d, 12h)")]
    DeleteRetention(String),
    /// The dev key file could not be read or written.
    #[error("cannot use the development key file {path}: {source}")]
    DevKeyFile {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The data folder: the flag, else `KEYWARD_DATA_DIR`, else `./keyward-data`.
pub fn data_dir(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| {
            std::env::var_os(DATA_DIR_VAR)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}

/// The database URL: the flag/variable if given, else an SQLite file in the data folder.
pub fn database_url(given: Option<&str>, data_dir: &Path) -> String {
    match given.filter(|u| !u.is_empty()) {
        Some(url) => url.to_owned(),
        None => format!("sqlite://{}", data_dir.join("keyward.db").display()),
    }
}

impl Config {
    /// Reads the keys from the environment. With `dev` and no
    /// `KEYWARD_MASTER_KEY`, a local key file in `data_dir` is used (and made
    /// on first use) — the caller must warn loudly about it.
    pub fn from_env(
        database_url: String,
        data_dir: &Path,
        dev: bool,
    ) -> Result<Config, ConfigError> {
        let given = std::env::var(MASTER_KEY_VAR).unwrap_or_default();
        let (master_key, dev_key_file) = if given.trim().is_empty() && dev {
            let (key, dev_key) = dev_key(data_dir)?;
            (key, Some(dev_key))
        } else {
            (MasterKey::from_base64(MASTER_KEY_VAR, &given)?, None)
        };
        let previous = std::env::var(MASTER_KEY_PREVIOUS_VAR).unwrap_or_default();
        let previous_keys = MasterKey::list_from_base64(MASTER_KEY_PREVIOUS_VAR, &previous)?;
        // Checked here so that a typo stops every command that could run a
        // plugin, instead of silently opening nothing.
        crate::runtime::addresses::Policy::from_env().map_err(ConfigError::EgressAllow)?;
        Ok(Config {
            database_url,
            master_key,
            previous_keys,
            dev_key_file,
            max_versions: max_versions_from_env()?,
            delete_retention: delete_retention_from_env()?,
        })
    }
}

/// `KEYWARD_MAX_VERSIONS`, or the default when unset.
pub fn max_versions_from_env() -> Result<u32, ConfigError> {
    let text = std::env::var(MAX_VERSIONS_VAR).unwrap_or_default();
    let text = text.trim();
    if text.is_empty() {
        return Ok(crate::vault::DEFAULT_MAX_VERSIONS as u32);
    }
    match text.parse::<u32>() {
        Ok(n) if n <= 10_000 && !text.starts_with('+') => Ok(n),
        _ => Err(ConfigError::MaxVersions(crate::text::clip(text, 32))),
    }
}

/// `KEYWARD_DELETE_RETENTION`, or the default (7 days) when unset.
pub fn delete_retention_from_env() -> Result<std::time::Duration, ConfigError> {
    let text = std::env::var(DELETE_RETENTION_VAR).unwrap_or_default();
    let text = text.trim();
    if text.is_empty() {
        return Ok(crate::vault::DEFAULT_RETENTION);
    }
    match crate::text::parse_duration(text) {
        Ok(d) if !d.is_zero() && d <= MAX_DELETE_RETENTION => Ok(d),
        _ => Err(ConfigError::DeleteRetention(crate::text::clip(text, 32))),
    }
}

fn dev_key(data_dir: &Path) -> Result<(MasterKey, DevKey), ConfigError> {
    let path = data_dir.join(DEV_KEY_FILE);
    let io_err = |source| ConfigError::DevKeyFile {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let key = MasterKey::from_base64("the development key file", &text)?;
            Ok((
                key,
                DevKey {
                    path,
                    created: false,
                },
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::store::create_private_dir(data_dir).map_err(io_err)?;
            let key = MasterKey::generate();
            write_private(&path, key.to_base64().as_bytes()).map_err(io_err)?;
            Ok((
                key,
                DevKey {
                    path,
                    created: true,
                },
            ))
        }
        Err(e) => Err(io_err(e)),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}
