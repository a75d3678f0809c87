//! `token-dir` (TOK-1): a folder of plaintext token files, one per agent
//! (`tokens/<agent>`, or the files directly in the source folder when it
//! has no `tokens/` subfolder). Each file becomes the secret
//! `agent_type:<agent>/FORGE_TOKEN`, linked as that agent type's token (or
//! as the override of the instance with that id, if one exists). Retiring
//! renames the file to `.<agent>.migrated.bak` beside it: kept for the
//! operator, never deleted, and not found again, so a re-run is a no-op.
//!
//! Option `dir` names the token folder inside the source (default
//! `tokens` if it exists, else the source itself).

use std::path::Path;

use keyward_plugin_sdk::migrate::{
    inside, option, read_file, retire_file, source_dir, token_text, valid_name, Binding, Discovery,
    Item, Migrator, MigratorInfo, Problem, RunConfig,
};
use keyward_plugin_sdk::Error;

/// Largest token file read (a token is far smaller; this is the store's
/// value limit).
const MAX_TOKEN_BYTES: u64 = 64 * 1024;

/// The secret name every agent type's token has.
const TOKEN_NAME: &str = "FORGE_TOKEN";

struct TokenDir;

/// The token folder, relative to the source (`""` for the source itself).
fn token_folder(run: &RunConfig, source: &Path) -> String {
    match option(run, "dir") {
        Some(dir) => dir.trim_matches('/').to_owned(),
        None if source.join("tokens").is_dir() => "tokens".to_owned(),
        None => String::new(),
    }
}

fn relative(folder: &str, file: &str) -> String {
    if folder.is_empty() {
        file.to_owned()
    } else {
        format!("{folder}/{file}")
    }
}

/// An agent name usable as a scope id (`agent_type:<agent>`).
fn valid_agent(name: &str) -> bool {
    valid_name(name)
}

/// Items and problems of the folder `dir` (a real path), with ids relative
/// to the source through `folder`.
fn scan(dir: &Path, folder: &str) -> Result<Discovery, Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::Invalid(format!(
            "cannot list the token folder {:?}: {e}",
            if folder.is_empty() { "." } else { folder }
        ))
    })?;
    let mut names = Vec::new();
    let mut problems = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| Error::Invalid(format!("cannot list the token folder: {e}")))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            problems.push(Problem {
                id: relative(folder, &entry.file_name().to_string_lossy()),
                reason: "the file name is not UTF-8".into(),
            });
            continue;
        };
        // Dotfiles: retired `.x.migrated.bak` files, editor leftovers.
        if name.starts_with('.') {
            continue;
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        names.push(name);
    }
    names.sort();
    let mut items = Vec::new();
    for name in names {
        let id = relative(folder, &name);
        if !valid_agent(&name) {
            problems.push(Problem {
                id,
                reason: "not an agent name (use A-Z a-z 0-9 _ . -, starting with a letter or digit, at most 128)".into(),
            });
            continue;
        }
        items.push(Item {
            id: id.clone(),
            target: format!("agent_type:{name}/{TOKEN_NAME}"),
            description: format!("token of agent {name}, from {id}"),
            binding: Binding::AgentTypeToken(name),
            unit: id,
        });
    }
    Ok(Discovery { items, problems })
}

impl Migrator for TokenDir {
    fn info() -> MigratorInfo {
        MigratorInfo {
            name: "token-dir".into(),
            description:
                "plaintext token files (tokens/<agent>) into agent_type:<agent>/FORGE_TOKEN".into(),
        }
    }

    fn discover(run: &RunConfig) -> Result<Discovery, Error> {
        let source = source_dir(run)?;
        let folder = token_folder(run, &source);
        let dir = if folder.is_empty() {
            source.clone()
        } else {
            inside(&source, &folder).map_err(Error::Invalid)?
        };
        scan(&dir, &folder)
    }

    fn read(run: &RunConfig, id: &str) -> Result<Vec<u8>, String> {
        let source = source_dir(run).map_err(|e| format!("{e:?}"))?;
        let path = inside(&source, id)?;
        let bytes = read_file(&path, id, MAX_TOKEN_BYTES)?;
        token_text(&bytes, id)
    }

    fn retire(run: &RunConfig, unit: &str) -> Result<(), String> {
        let source = source_dir(run).map_err(|e| format!("{e:?}"))?;
        let path = inside(&source, unit)?;
        retire_file(&path, unit)
    }
}

keyward_plugin_sdk::export_migrator!(TokenDir);

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_plugin_sdk::testing::TempDir;

    #[test]
    fn agent_names_follow_the_scope_grammar() {
        assert!(valid_agent("coder"));
        assert!(valid_agent("review-bot.2"));
        for bad in ["", "-x", "a b", "a/b", "ä", &"x".repeat(129)] {
            assert!(!valid_agent(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_folder_scan_maps_files_and_reports_the_rest() {
        let dir = TempDir::new("token-dir");
        dir.write("sub/x", "x");
        dir.write("coder", "tok\n");
        dir.write(".coder.migrated.bak", "old");
        dir.write("bad name", "x");
        let found = scan(dir.path(), "tokens").expect("scan");
        assert_eq!(found.items.len(), 1);
        assert_eq!(found.items[0].id, "tokens/coder");
        assert_eq!(found.items[0].target, "agent_type:coder/FORGE_TOKEN");
        assert_eq!(found.problems.len(), 1);
        assert_eq!(found.problems[0].id, "tokens/bad name");

        // Retiring is a rename, and doing it twice is fine.
        let file = dir.path().join("coder");
        retire_file(&file, "coder").expect("retire");
        retire_file(&file, "coder").expect("retire again");
        assert!(dir.exists(".coder.migrated.bak") && !dir.exists("coder"));
        assert!(scan(dir.path(), "tokens").expect("scan").items.is_empty());
    }
}
