//! Boot migrations: the "first boot after deploy" case. `keyward serve
//! --migrations FILE` (or `KEYWARD_BOOT_MIGRATIONS`) runs each migration in
//! the file before it starts listening. A migration that finished before
//! is a no-op, so every later boot costs one query per entry; hosts that
//! share a PostgreSQL store run each one once between them (the lease).
//!
//! ```toml
//! [[migration]]
//! plugin = "token-dir"
//! source = "/var/lib/agents/tokens"   # a folder or an http(s) URL
//! allow_operator_keys = false         # optional; true lets it create
//!                                     # operator API keys
//! [migration.options]                 # optional; `*_ref` values are
//! # key = "value"                     # secret references granted to it;
//! # target_scopes = "workload:*"      # where in-store moves may go
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{parse_option, parse_source, MigrateError, Quiet, Request};
use crate::runtime::{MigrationSource, Runtime};
use crate::vault::Vault;

/// The environment variable naming the boot migrations file.
pub const BOOT_MIGRATIONS_VAR: &str = "KEYWARD_BOOT_MIGRATIONS";

/// The file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    migration: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    plugin: String,
    source: Option<String>,
    #[serde(default)]
    options: BTreeMap<String, String>,
    /// `--allow-operator-keys` of a boot entry.
    #[serde(default)]
    allow_operator_keys: bool,
}

/// One configured boot migration, checked.
#[derive(Debug, Clone)]
pub struct BootMigration {
    /// The run to make.
    pub request: Request,
}

/// Reads and checks the boot migrations file: every problem names the
/// file and the entry.
pub fn load(path: &Path) -> Result<Vec<BootMigration>, MigrateError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| MigrateError::Invalid(format!("{}: {e}", path.display())))?;
    let file: File = toml::from_str(&text)
        .map_err(|e| MigrateError::Invalid(format!("{}: {e}", path.display())))?;
    let mut out = Vec::new();
    for (n, entry) in file.migration.into_iter().enumerate() {
        let at = |e: MigrateError| {
            MigrateError::Invalid(format!("{}: migration {}: {e}", path.display(), n + 1))
        };
        let (mut source, shown) = match &entry.source {
            Some(text) => {
                let (s, shown) = parse_source(text).map_err(at)?;
                (s, Some(shown))
            }
            None => (MigrationSource::default(), None),
        };
        for (k, v) in &entry.options {
            let (k, v, grant) = parse_option(&format!("{k}={v}")).map_err(at)?;
            source.options.push((k, v));
            source.secrets.extend(grant);
        }
        let mut request = Request::new(&entry.plugin, source, "host:boot-migration");
        request.shown_source = shown;
        request.allow_operator_keys = entry.allow_operator_keys;
        // Checked now, so a bad target_scopes stops the server at start.
        super::allow::Allowance::new(&request.source.options, request.allow_operator_keys)
            .map_err(at)?;
        out.push(BootMigration { request });
    }
    Ok(out)
}

/// Runs every boot migration, logging each outcome. A failed migration is
/// logged and the host starts anyway: the legacy items stay where they are
/// (nothing is retired that was not written) and the next boot tries again.
pub async fn run_all(vault: &Vault, runtime: &Runtime, migrations: &[BootMigration]) {
    for m in migrations {
        let plugin = &m.request.plugin;
        match super::run(vault, runtime, &m.request, &Quiet).await {
            Ok(report) if report.already.is_some() => {
                tracing::info!(%plugin, "boot migration already done");
            }
            Ok(report) => {
                let (migrated, skipped, failed) = report.counts();
                for item in &report.items {
                    if let super::Status::Failed(reason)
                    | super::Status::WrittenNotRetired(reason) = &item.status
                    {
                        tracing::warn!(%plugin, item = %item.id, %reason, "boot migration item not finished");
                    }
                }
                tracing::info!(%plugin, migrated, skipped, failed, "boot migration ran");
            }
            Err(e) => tracing::error!(%plugin, error = %e, "boot migration failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Vec<BootMigration>, MigrateError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("boot.toml");
        std::fs::write(&path, text).expect("write");
        load(&path)
    }

    #[test]
    fn operator_keys_and_target_scopes_come_from_the_entry() {
        let m = load_text(
            "[[migration]]\nplugin = \"account-credentials\"\nallow_operator_keys = true\n\
             [migration.options]\ntarget_scopes = \"account:*\"\n",
        )
        .expect("loads");
        assert!(m[0].request.allow_operator_keys);
        let m = load_text("[[migration]]\nplugin = \"key-prefix\"\n").expect("loads");
        assert!(!m[0].request.allow_operator_keys, "off unless asked for");
        let err = load_text(
            "[[migration]]\nplugin = \"key-prefix\"\n[migration.options]\n\
             target_scopes = \"plugin:*\"\n",
        )
        .expect_err("a plugin scope is refused at start");
        assert!(err.to_string().contains("migration 1"), "{err}");
    }
}
