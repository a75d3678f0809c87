//! {{name}}: a Keyward migrator (world `migrator`).
//!
//! Run with `keyward migrate plan|run {{name}} --source DIR`: every file
//! `NAME` directly in DIR becomes the secret `<scope>/NAME` (option
//! `scope`, default `global`), and once it is written the file is renamed
//! to `.NAME.migrated.bak` beside it. The host drives the run (discover,
//! read, write, then retire) and every call is a fresh instance, so nothing
//! is remembered between calls. Change `discover`, `read` and `retire` for
//! your legacy store.

use keyward_plugin_sdk::migrate::{
    self, Binding, Discovery, Item, Migrator, MigratorInfo, RunConfig,
};
use keyward_plugin_sdk::Error;

/// Largest file read: the host stores at most 64 KiB per secret.
const MAX_FILE_BYTES: u64 = migrate::MAX_VALUE as u64;

struct Plugin;

/// The scope secrets go to: option `scope`, else `global`.
fn scope(run: &RunConfig) -> Result<String, Error> {
    let scope = migrate::option(run, "scope").unwrap_or("global");
    if migrate::valid_scope(scope) {
        Ok(scope.to_owned())
    } else {
        Err(Error::Invalid(format!(
            "option scope={}: not a scope (global or KIND:ID)",
            migrate::quoted(scope)
        )))
    }
}

impl Migrator for Plugin {
    fn info() -> MigratorInfo {
        MigratorInfo {
            name: "{{name}}".into(),
            description: "Files of a folder: NAME → <scope>/NAME".into(),
        }
    }

    fn discover(run: &RunConfig) -> Result<Discovery, Error> {
        let source = migrate::source_dir(run)?;
        let scope = scope(run)?;
        let listing = std::fs::read_dir(&source)
            .map_err(|e| Error::Invalid(format!("the source folder: {e}")))?;
        let mut names: Vec<String> = listing
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            // Hidden files: retired `.NAME.migrated.bak`, editor leftovers.
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        let (mut items, mut problems) = (Vec::new(), Vec::new());
        for name in names {
            if !migrate::valid_name(&name) {
                let shown = migrate::quoted(&name);
                problems.push(migrate::problem(&name, format!("{shown}: not a secret name")));
                continue;
            }
            items.push(Item {
                target: format!("{scope}/{name}"),
                description: format!("migrated from the file {name}"),
                binding: Binding::None,
                unit: name.clone(),
                id: name,
            });
        }
        Ok(Discovery { items, problems })
    }

    fn read(run: &RunConfig, id: &str) -> Result<Vec<u8>, String> {
        let source = migrate::source_dir(run).map_err(|e| e.message().to_owned())?;
        let bytes = migrate::read_file(&migrate::inside(&source, id)?, id, MAX_FILE_BYTES)?;
        migrate::token_text(&bytes, id)
    }

    fn retire(run: &RunConfig, unit: &str) -> Result<(), String> {
        let source = migrate::source_dir(run).map_err(|e| e.message().to_owned())?;
        migrate::retire_file(&migrate::inside(&source, unit)?, unit)
    }
}

keyward_plugin_sdk::export_migrator!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_plugin_sdk::testing::TempDir;

    #[test]
    fn files_become_secrets_and_are_retired_once() {
        let dir = TempDir::new("{{name}}");
        dir.write("API_TOKEN", "tok\n");
        dir.write("bad name", "x");
        let run = dir.run(&[("scope", "workload:web")]);
        let found = Plugin::discover(&run).expect("discover");
        assert_eq!(found.items.len(), 1);
        assert_eq!(found.items[0].target, "workload:web/API_TOKEN");
        assert_eq!(found.problems[0].id, "bad name");
        assert_eq!(Plugin::read(&run, "API_TOKEN").expect("read"), b"tok");
        Plugin::retire(&run, "API_TOKEN").expect("retire");
        Plugin::retire(&run, "API_TOKEN").expect("retire again");
        assert!(dir.exists(".API_TOKEN.migrated.bak"));
    }
}
