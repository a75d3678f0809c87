//! `keyward.toml`: every setting that is an environment variable or a flag,
//! in one file (`--config FILE` or `KEYWARD_CONFIG`). The file only fills
//! in what the environment does not say: a flag beats the environment,
//! the environment beats the file, the file beats the default.
//!
//! The file is read before the command line is parsed, and each setting it
//! holds is put in the process's environment under its variable's name when
//! that variable is not set; clap's own `env` handling then gives the
//! precedence above. The master key is never read from the file.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The variable naming the file.
pub const CONFIG_VAR: &str = "KEYWARD_CONFIG";

/// The largest file read (a typo'd path to a big file is refused quickly).
const MAX_FILE_BYTES: u64 = 64 << 10;

/// Each key of the file and the variable it stands for.
pub const KEYS: [(&str, &str); 17] = [
    ("database_url", "KEYWARD_DATABASE_URL"),
    ("data_dir", "KEYWARD_DATA_DIR"),
    ("plugins_dir", "KEYWARD_PLUGINS_DIR"),
    ("log", "KEYWARD_LOG"),
    ("log_format", "KEYWARD_LOG_FORMAT"),
    ("egress_allow", "KEYWARD_EGRESS_ALLOW"),
    ("listen", "KEYWARD_LISTEN"),
    ("public_url", "KEYWARD_PUBLIC_URL"),
    ("forges_file", "KEYWARD_FORGES_FILE"),
    ("boot_migrations", "KEYWARD_BOOT_MIGRATIONS"),
    ("audit_checkpoint", "KEYWARD_AUDIT_CHECKPOINT"),
    ("audit_checkpoint_every", "KEYWARD_AUDIT_CHECKPOINT_EVERY"),
    ("audit_verify_every", "KEYWARD_AUDIT_VERIFY_EVERY"),
    ("audit_retain", "KEYWARD_AUDIT_RETAIN"),
    ("audit_archive_dir", "KEYWARD_AUDIT_ARCHIVE_DIR"),
    ("max_versions", "KEYWARD_MAX_VERSIONS"),
    ("delete_retention", "KEYWARD_DELETE_RETENTION"),
];

/// Keys refused with a reason rather than as unknown.
const REFUSED: [(&str, &str); 3] = [
    ("master_key", "the master key stays out of files that are read at every start: set KEYWARD_MASTER_KEY in the service's environment file (docs/credentials.md)"),
    ("master_key_previous", "earlier master keys stay out of the file: set KEYWARD_MASTER_KEY_PREVIOUS in the environment"),
    ("token", "an API token stays out of the file: set KEYWARD_TOKEN in the environment"),
];

/// Why the file was refused (exit 78).
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct ConfigFileError {
    /// The file.
    pub path: String,
    /// What is wrong, for the operator.
    pub problem: String,
}

/// Where each setting of the file went.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The file read, if any.
    pub path: Option<PathBuf>,
    /// Variables the file set (the environment did not).
    pub applied: Vec<&'static str>,
}

/// The file named by `--config FILE` / `--config=FILE` on the command line,
/// else by `KEYWARD_CONFIG`.
pub fn named(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        if arg == "--" {
            break;
        }
        if arg == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(path) = arg.to_str().and_then(|a| a.strip_prefix("--config=")) {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os(CONFIG_VAR)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// Reads `path` into (variable, value) pairs, refusing unknown keys, keys
/// that must not be in a file, and values of the wrong type.
pub fn parse(path: &Path) -> Result<Vec<(&'static str, String)>, ConfigFileError> {
    let fail = |problem: String| ConfigFileError {
        path: path.display().to_string(),
        problem,
    };
    let size = std::fs::metadata(path)
        .map_err(|e| fail(format!("cannot read the configuration file: {e}")))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(fail(format!(
            "the configuration file is {size} bytes; at most {MAX_FILE_BYTES} are read"
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| fail(format!("cannot read the configuration file: {e}")))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| fail(format!("not valid TOML: {}", e.message())))?;
    let mut out = Vec::new();
    for (key, value) in &table {
        if let Some((_, why)) = REFUSED.iter().find(|(k, _)| k == key) {
            return Err(fail(format!("`{key}` is not read from a file: {why}")));
        }
        let Some((_, var)) = KEYS.iter().find(|(k, _)| k == key) else {
            let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
            return Err(fail(format!(
                "unknown key `{}` (known: {})",
                crate::text::clip(key, 64),
                known.join(", ")
            )));
        };
        // The numbers; everything else is a string.
        let number = match key.as_str() {
            "audit_checkpoint_every" | "audit_verify_every" => Some("a whole number of seconds"),
            "max_versions" => Some("a whole number of versions"),
            _ => None,
        };
        let text = match (value, number) {
            (toml::Value::Integer(n), Some(_)) => n.to_string(),
            (toml::Value::String(s), None) => s.clone(),
            (other, what) => {
                return Err(fail(format!(
                    "`{key}` must be {} (found {})",
                    what.unwrap_or("a string"),
                    other.type_str()
                )))
            }
        };
        if text.contains('\0') {
            return Err(fail(format!("`{key}` holds a NUL character")));
        }
        out.push((*var, text));
    }
    Ok(out)
}

/// Reads the file named on the command line or in `KEYWARD_CONFIG`, if
/// any, and sets each of its settings whose variable the environment
/// lacks. Called once, before any thread is started.
pub fn load(args: &[OsString]) -> Result<Loaded, ConfigFileError> {
    let Some(path) = named(args) else {
        return Ok(Loaded::default());
    };
    let mut applied = Vec::new();
    for (var, value) in parse(&path)? {
        if std::env::var_os(var).is_none_or(|v| v.is_empty()) {
            // Before any other thread exists (cli::run calls this first).
            std::env::set_var(var, value);
            applied.push(var);
        }
    }
    Ok(Loaded {
        path: Some(path),
        applied,
    })
}

/// Where a setting's value came from, for `keyward config check`.
pub fn source_of(
    loaded: &Loaded,
    var: &str,
    clap: Option<clap::parser::ValueSource>,
) -> &'static str {
    use clap::parser::ValueSource;
    match clap {
        Some(ValueSource::CommandLine) => "flag",
        Some(ValueSource::EnvVariable) | None if loaded.applied.contains(&var) => "file",
        Some(ValueSource::EnvVariable) => "env",
        Some(ValueSource::DefaultValue) => "default",
        _ if std::env::var_os(var).is_some_and(|v| !v.is_empty()) => "env",
        _ => "default",
    }
}

/// Arguments of `keyward config check`: only the global `--output` (text:
/// one `key = value  # source` line per setting; json: `{"file",
/// "settings": {key: {"value", "source"}}}`).
#[derive(clap::Args, Debug)]
pub struct CheckArgs {}

/// `keyward config check`: validates the settings `keyward serve` would
/// run with (file, environment and the global flags given) and prints them
/// with where each came from. Passwords in URLs are masked; the master key
/// is shown as set or not, never its value. Exit 78 if any is invalid.
pub fn check(
    loaded: &Loaded,
    matches: &clap::ArgMatches,
    _args: &CheckArgs,
    output: super::Output,
) -> anyhow::Result<std::process::ExitCode> {
    use clap::CommandFactory as _;
    let mut rows: BTreeMap<&'static str, (String, &'static str)> = BTreeMap::new();
    let raw = |m: &clap::ArgMatches, id: &str| {
        m.get_raw(id)
            .and_then(|mut v| v.next())
            .map(|v| v.to_string_lossy().into_owned())
    };
    let var_of = |key: &str| KEYS.iter().find(|(k, _)| *k == key).map_or("", |(_, v)| *v);
    // The global flags, as this command line gave them.
    for (key, id) in [
        ("database_url", "database_url"),
        ("data_dir", "data_dir"),
        ("plugins_dir", "plugins_dir"),
        ("log_format", "log_format"),
    ] {
        let source = source_of(loaded, var_of(key), matches.value_source(id));
        let value = match (key, raw(matches, id)) {
            ("database_url", Some(url)) => crate::store::redact_url(&url),
            ("database_url", None) => {
                let dir = crate::config::data_dir(None);
                crate::config::database_url(None, &dir)
            }
            ("data_dir", None) => crate::config::DEFAULT_DATA_DIR.to_owned(),
            (_, Some(v)) => v,
            (_, None) => String::new(),
        };
        rows.insert(key, (value, source));
    }
    // The settings only the environment (or the file) gives.
    let filter = std::env::var("KEYWARD_LOG").unwrap_or_default();
    if !filter.is_empty() {
        tracing_subscriber::EnvFilter::try_new(&filter).map_err(|e| ConfigFileError {
            path: "KEYWARD_LOG".into(),
            problem: format!("not a log filter: {e}"),
        })?;
    }
    rows.insert(
        "log",
        (
            if filter.is_empty() {
                "info".to_owned()
            } else {
                filter
            },
            source_of(loaded, "KEYWARD_LOG", None),
        ),
    );
    crate::runtime::addresses::Policy::from_env().map_err(|problem| ConfigFileError {
        path: "KEYWARD_EGRESS_ALLOW".into(),
        problem,
    })?;
    rows.insert(
        "egress_allow",
        (
            std::env::var(crate::runtime::addresses::EGRESS_ALLOW_VAR).unwrap_or_default(),
            source_of(loaded, "KEYWARD_EGRESS_ALLOW", None),
        ),
    );
    let kept = crate::config::max_versions_from_env()?;
    rows.insert(
        "max_versions",
        (
            kept.to_string(),
            source_of(loaded, crate::config::MAX_VERSIONS_VAR, None),
        ),
    );
    let retention = crate::config::delete_retention_from_env()?;
    rows.insert(
        "delete_retention",
        (
            crate::vault::describe_duration(retention),
            source_of(loaded, crate::config::DELETE_RETENTION_VAR, None),
        ),
    );
    // `serve`'s own settings, parsed as `keyward serve` would parse them.
    let serve = super::Cli::command()
        .try_get_matches_from(["keyward", "serve"])
        .map_err(|e| ConfigFileError {
            path: "keyward serve".into(),
            problem: e.to_string().trim().to_owned(),
        })?;
    let serve = serve
        .subcommand_matches("serve")
        .ok_or_else(|| anyhow::anyhow!("keyward serve has no arguments"))?;
    for (key, id) in [
        ("listen", "listen"),
        ("public_url", "public_url"),
        ("forges_file", "forges"),
        ("boot_migrations", "migrations"),
        ("audit_checkpoint", "audit_checkpoint"),
        ("audit_checkpoint_every", "audit_checkpoint_every"),
        ("audit_verify_every", "audit_verify_every"),
        ("audit_retain", "audit_retain"),
        ("audit_archive_dir", "audit_archive_dir"),
    ] {
        let source = source_of(loaded, var_of(key), serve.value_source(id));
        rows.insert(key, (raw(serve, id).unwrap_or_default(), source));
    }
    // The key: whether it is there and well formed, never what it is.
    let key = std::env::var(crate::crypto::MASTER_KEY_VAR).unwrap_or_default();
    let key_state = if key.trim().is_empty() {
        "not set".to_owned()
    } else {
        crate::crypto::MasterKey::from_base64(crate::crypto::MASTER_KEY_VAR, &key)?;
        "set (masked)".to_owned()
    };
    let key_source = if key.trim().is_empty() {
        "default"
    } else {
        "env"
    };
    rows.insert("master_key", (key_state, key_source));

    let mut out = String::new();
    match output {
        super::Output::Text => {
            use std::fmt::Write as _;
            let file = loaded
                .path
                .as_ref()
                .map_or_else(|| "none".to_owned(), |p| p.display().to_string());
            let _ = writeln!(out, "# configuration file: {file}");
            for (key, (value, source)) in &rows {
                let _ = writeln!(
                    out,
                    "{key} = {}  # {source}",
                    toml::Value::from(value.as_str())
                );
            }
        }
        super::Output::Json => {
            let map: serde_json::Map<String, serde_json::Value> = rows
                .iter()
                .map(|(k, (v, s))| {
                    (
                        (*k).to_owned(),
                        serde_json::json!({"value": v, "source": s}),
                    )
                })
                .collect();
            out = serde_json::json!({
                "file": loaded.path.as_ref().map(|p| p.display().to_string()),
                "settings": map,
            })
            .to_string();
            out.push('\n');
        }
    }
    use std::io::Write as _;
    std::io::stdout()
        .write_all(out.as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot write to stdout: {e}"))?;
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("keyward.toml");
        std::fs::write(&path, text).expect("write");
        (dir, path)
    }

    #[test]
    fn the_file_is_named_by_the_flag_first() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            named(&args(&["keyward", "--config", "a.toml", "serve"])),
            Some(PathBuf::from("a.toml"))
        );
        assert_eq!(
            named(&args(&["keyward", "serve", "--config=b.toml"])),
            Some(PathBuf::from("b.toml"))
        );
        assert_eq!(
            named(&args(&["keyward", "run", "--", "x", "--config", "c"]))
                .filter(|p| p == Path::new("c")),
            None
        );
    }

    #[test]
    fn settings_map_to_their_variables_and_mistakes_are_named() {
        let (_d, path) = file("listen = \"0.0.0.0:9\"\naudit_checkpoint_every = 30\n");
        assert_eq!(
            parse(&path).expect("parses"),
            [
                ("KEYWARD_AUDIT_CHECKPOINT_EVERY", "30".to_owned()),
                ("KEYWARD_LISTEN", "0.0.0.0:9".to_owned())
            ]
        );
        for (text, says) in [
            ("lissen = \"x\"", "unknown key `lissen`"),
            ("master_key = \"x\"", "KEYWARD_MASTER_KEY"),
            ("listen = 8080", "`listen` must be a string (found integer)"),
            (
                "audit_checkpoint_every = \"soon\"",
                "whole number of seconds",
            ),
            ("listen = ", "not valid TOML"),
            ("[serve]\nlisten = \"x\"", "unknown key `serve`"),
        ] {
            let (_d, path) = file(text);
            let error = parse(&path).expect_err(text).to_string();
            assert!(error.contains(says), "{text}: {error}");
        }
        let missing = parse(Path::new("/nonexistent/keyward.toml")).expect_err("missing");
        assert!(missing.to_string().contains("cannot read"), "{missing}");
    }
}
