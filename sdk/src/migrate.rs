//! Migrators: the [`Migrator`] trait, its export macro, and helpers for the
//! common case of a legacy store on disk (the run's one preopened folder).
//!
//! The host drives a run: it calls `discover`, then `read` for batches of
//! items, writes each value with its ledger row, and only then calls
//! `retire`. A migrator therefore never decides when something is safe to
//! remove; it only has to make `retire` idempotent (a unit already retired
//! answers `Ok`). Each call is a fresh instance, so every call gets the run's
//! [`RunConfig`] again and nothing may be remembered between calls.

use std::path::{Component, Path, PathBuf};

pub use crate::bindings::migrator::exports::keyward::plugin::migration::{
    ApiKey, Binding, Discovery, InstanceBinding, Item, MigratorInfo, Problem, RunConfig,
};
use crate::Error;

/// What a migrator does. Only [`Migrator::info`] is required; a migrator
/// that finds nothing is a valid (if useless) one.
pub trait Migrator {
    /// Describes the migrator.
    fn info() -> MigratorInfo;

    /// Finds the legacy items still to migrate (retired ones are not found
    /// again) and the entries that cannot be migrated, with reasons.
    fn discover(_run: &RunConfig) -> Result<Discovery, Error> {
        Ok(Discovery {
            items: Vec::new(),
            problems: Vec::new(),
        })
    }

    /// The value of one item. The error is a reason for people, never a
    /// secret value.
    fn read(_run: &RunConfig, id: &str) -> Result<Vec<u8>, String> {
        Err(format!("{id}: this migrator reads nothing"))
    }

    /// Retires one unit; must answer `Ok` for a unit already retired.
    fn retire(_run: &RunConfig, _unit: &str) -> Result<(), String> {
        Ok(())
    }

    /// Moves inside Keyward's store: `(old, new)` reference pairs for the
    /// `existing` references the host lists.
    fn plan_renames(
        _run: &RunConfig,
        _existing: &[String],
    ) -> Result<Vec<(String, String)>, Error> {
        Ok(Vec::new())
    }
}

/// Exports a [`Migrator`] as the plugin's `migration` interface:
/// `keyward_plugin_sdk::export_migrator!(MyMigrator);`. The batched calls
/// of the interface (`read`, `retire`) become one trait call per item.
#[macro_export]
macro_rules! export_migrator {
    ($migrator:ty) => {
        const _: () = {
            struct KeywardMigratorShim;

            impl $crate::bindings::migrator::exports::keyward::plugin::migration::Guest
                for KeywardMigratorShim
            {
                fn info() -> $crate::migrate::MigratorInfo {
                    <$migrator as $crate::migrate::Migrator>::info()
                }

                fn discover(
                    run: $crate::migrate::RunConfig,
                ) -> ::core::result::Result<$crate::migrate::Discovery, $crate::Error> {
                    <$migrator as $crate::migrate::Migrator>::discover(&run)
                }

                fn read(
                    run: $crate::migrate::RunConfig,
                    ids: ::std::vec::Vec<::std::string::String>,
                ) -> ::std::vec::Vec<
                    ::core::result::Result<::std::vec::Vec<u8>, ::std::string::String>,
                > {
                    ids.iter()
                        .map(|id| <$migrator as $crate::migrate::Migrator>::read(&run, id))
                        .collect()
                }

                fn retire(
                    run: $crate::migrate::RunConfig,
                    units: ::std::vec::Vec<::std::string::String>,
                ) -> ::std::vec::Vec<::core::result::Result<(), ::std::string::String>> {
                    units
                        .iter()
                        .map(|u| <$migrator as $crate::migrate::Migrator>::retire(&run, u))
                        .collect()
                }

                fn plan_renames(
                    run: $crate::migrate::RunConfig,
                    existing: ::std::vec::Vec<::std::string::String>,
                ) -> ::core::result::Result<
                    ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                    $crate::Error,
                > {
                    <$migrator as $crate::migrate::Migrator>::plan_renames(&run, &existing)
                }
            }

            $crate::bindings::migrator::export_migrator_guest!(
                KeywardMigratorShim with_types_in $crate::bindings::migrator
            );
        };
    };
}

/// The value of option `key`, if given (the last one wins).
pub fn option<'a>(run: &'a RunConfig, key: &str) -> Option<&'a str> {
    run.options
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The run's preopened source folder, or an `invalid` error saying the run
/// needs `--source DIR`.
pub fn source_dir(run: &RunConfig) -> Result<PathBuf, Error> {
    match run.source.as_deref() {
        Some(dir) if dir.starts_with('/') => Ok(PathBuf::from(dir)),
        Some(other) => Err(Error::Invalid(format!(
            "this migrator reads a folder; --source {other:?} is not one"
        ))),
        None => Err(Error::Invalid(
            "this migrator reads a folder: give it with --source DIR".into(),
        )),
    }
}

/// A relative path inside the source, as an item id: no `..`, no root, no
/// empty segment, so an id cannot name anything outside the folder even if
/// the host passed a forged one.
pub fn inside(source: &Path, relative: &str) -> Result<PathBuf, String> {
    let rel = Path::new(relative);
    let clean = !relative.is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
    if !clean {
        return Err(format!("{relative:?}: not a path inside the source folder"));
    }
    Ok(source.join(rel))
}

/// Reads a legacy file of at most `max` bytes, with a reason for every way
/// it can be unusable: missing, a symlink out of the source folder (the
/// sandbox refuses to follow it), unreadable, empty or too large.
pub fn read_file(path: &Path, shown: &str, max: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let outside =
        || format!("{shown}: a symlink that leads outside the source folder (or nowhere)");
    let meta =
        std::fs::symlink_metadata(path).map_err(|e| format!("{shown}: {}", io_reason(&e)))?;
    let link = meta.file_type().is_symlink();
    // Checked before opening: opening a FIFO would wait for a writer. A
    // symlink's target is checked through it (the sandbox refuses one that
    // leads out of the source folder).
    let target = if link {
        std::fs::metadata(path).map_err(|_| outside())?
    } else {
        meta
    };
    if !target.is_file() {
        return Err(format!("{shown}: not a regular file"));
    }
    if target.len() > max {
        return Err(format!(
            "{shown}: {} bytes, more than the {max} this migrator accepts",
            target.len()
        ));
    }
    let file = std::fs::File::open(path).map_err(|e| {
        if link {
            outside()
        } else {
            format!("{shown}: {}", io_reason(&e))
        }
    })?;
    // Bounded even if the file grew since it was looked at.
    let mut bytes = Vec::with_capacity(target.len() as usize + 1);
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{shown}: {}", io_reason(&e)))?;
    if bytes.len() as u64 > max {
        return Err(format!(
            "{shown}: more than the {max} bytes this migrator accepts"
        ));
    }
    if bytes.is_empty() {
        return Err(format!("{shown}: empty"));
    }
    Ok(bytes)
}

/// A token from a token file: the text without surrounding whitespace
/// (editors add a final newline), refused when it is not printable text.
pub fn token_text(bytes: &[u8], shown: &str) -> Result<Vec<u8>, String> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| format!("{shown}: not text (binary content)"))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("{shown}: holds only whitespace"));
    }
    if token.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "{shown}: not a token (control characters or inner whitespace)"
        ));
    }
    Ok(token.as_bytes().to_vec())
}

/// Renames `from` to `to`, idempotently and durably: done already (only
/// `to` exists) is `Ok`; neither existing is an error, since the legacy
/// item would be lost track of. Either way the renamed file and its
/// folder are synced before `Ok` (see [`sync_renamed`]).
pub fn rename_retired(from: &Path, to: &Path, shown: &str) -> Result<(), String> {
    let reason = |e: std::io::Error| format!("{shown}: {}", io_reason(&e));
    match std::fs::symlink_metadata(from) {
        Ok(_) => {
            std::fs::rename(from, to).map_err(reason)?;
            sync_renamed(from, to).map_err(reason)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::fs::symlink_metadata(to).is_ok() {
                // Renamed by an earlier call that may have stopped before
                // its sync: sync again.
                sync_renamed(from, to).map_err(reason)
            } else {
                Err(format!("{shown}: gone, and no {} either", to.display()))
            }
        }
        Err(e) => Err(reason(e)),
    }
}

/// Retires the legacy file at `path` the usual way: renames it to
/// [`retired_path`] (`.<name>.migrated.bak` beside it), durably and
/// idempotently (see [`rename_retired`]). `shown` names it in errors.
///
/// ```no_run
/// # use keyward_plugin_sdk::migrate::{retire_file, RunConfig};
/// # fn retire(run: &RunConfig, unit: &str) -> Result<(), String> {
/// let path = std::path::Path::new("/source").join(unit);
/// retire_file(&path, unit)
/// # }
/// ```
pub fn retire_file(path: &Path, shown: &str) -> Result<(), String> {
    let bak = retired_path(path).ok_or_else(|| format!("{shown}: not a path to a file"))?;
    rename_retired(path, &bak, shown)
}

/// Makes a rename durable: syncs the file now at `to`, its folder, and the
/// folder `from` was in if another. The host marks a unit retired right
/// after `retire` answers, so without this a power loss could leave the
/// ledger saying "retired" over a disk where the rename never happened.
pub fn sync_renamed(from: &Path, to: &Path) -> std::io::Result<()> {
    sync_file(to)?;
    let (old_dir, new_dir) = (parent(from), parent(to));
    sync_dir(new_dir)?;
    if old_dir != new_dir {
        sync_dir(old_dir)?;
    }
    Ok(())
}

/// Replaces the contents of `path` with `bytes`, atomically and durably:
/// a temp file `<path>.keyward-tmp` is written and synced, renamed over
/// `path`, and the folder synced. A crash leaves the old file or the new
/// one, never half of either. The new file has the sandbox's default mode;
/// the host gives it the mode and owner of the file it replaced.
pub fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".keyward-tmp");
    let tmp = path.with_file_name(name);
    let written = (|| {
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        // Before any byte is written: the file holds secrets. Best effort:
        // WASI has no modes to set (the host restores them after retire).
        if let Ok(old) = std::fs::metadata(path) {
            let _ = std::fs::set_permissions(&tmp, old.permissions());
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        sync_dir(parent(path))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Syncs the file at `path` (its data and metadata).
pub fn sync_file(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

/// Syncs a folder, so the names in it (a rename, a new file) survive a
/// power loss.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// The folder holding `path` (`.` for a bare name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Largest value Keyward stores for one secret: 64 KiB.
pub const MAX_VALUE: usize = 64 * 1024;

/// Longest secret name, scope kind and scope id (README § "Names and limits").
const MAX_NAME: usize = 128;
const MAX_KIND: usize = 32;

/// Whether `name` is a secret name: `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most
/// 128 bytes. Scope ids (`agent_type:<id>`) follow the same grammar.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NAME
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Whether `scope` is `global` or `<kind>:<id>` (kind `[a-z][a-z0-9_]*` of
/// at most 32 bytes, id as [`valid_name`]).
pub fn valid_scope(scope: &str) -> bool {
    if scope == "global" {
        return true;
    }
    let Some((kind, id)) = scope.split_once(':') else {
        return false;
    };
    let k = kind.as_bytes();
    !k.is_empty()
        && k.len() <= MAX_KIND
        && k[0].is_ascii_lowercase()
        && k.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
        && valid_name(id)
}

/// Whether `reference` is `NAME` or `SCOPE/NAME`.
pub fn valid_reference(reference: &str) -> bool {
    match reference.split_once('/') {
        None => valid_name(reference),
        Some((scope, name)) => valid_scope(scope) && valid_name(name),
    }
}

/// Whether `target` is a full `SCOPE/NAME` reference, as a migrated
/// secret's target must be (a bare `NAME` would leave the scope to chance).
pub fn valid_target(target: &str) -> bool {
    target.contains('/') && valid_reference(target)
}

/// Where a retired legacy file goes: `.<file name>.migrated.bak` in the same
/// folder (hidden, so a second discovery does not find it). `None` for a
/// path without a file name.
pub fn retired_path(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    Some(path.with_file_name(format!(".{name}.migrated.bak")))
}

/// Splits off the items whose target more than one item of `items` has:
/// writing them would let one legacy entry silently overwrite another, so
/// each becomes a problem naming the others' ids instead. Order is kept.
pub fn refuse_duplicate_targets(items: Vec<Item>) -> (Vec<Item>, Vec<Problem>) {
    let mut ids: std::collections::HashMap<&str, Vec<&str>> = std::collections::HashMap::new();
    for item in &items {
        ids.entry(item.target.as_str())
            .or_default()
            .push(item.id.as_str());
    }
    let clashing: std::collections::HashMap<String, String> = ids
        .into_iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|(target, ids)| (target.to_owned(), ids.join(", ")))
        .collect();
    let mut kept = Vec::with_capacity(items.len());
    let mut problems = Vec::new();
    for item in items {
        match clashing.get(&item.target) {
            Some(all) => problems.push(Problem {
                reason: format!(
                    "target {} is claimed by more than one entry ({all}); none of them is migrated",
                    item.target
                ),
                id: item.id,
            }),
            None => kept.push(item),
        }
    }
    (kept, problems)
}

/// Longest text [`quoted`] shows before cutting it.
pub const MAX_QUOTED: usize = 64;

/// `text` as a problem's reason shows it: as it is when it is a plain name
/// ([`valid_name`], at most [`MAX_QUOTED`] bytes), else in Rust string
/// syntax (control characters escaped, so legacy junk cannot forge lines in
/// an operator's terminal) cut to [`MAX_QUOTED`] characters, with `…` when
/// cut.
pub fn quoted(text: &str) -> String {
    if valid_name(text) && text.len() <= MAX_QUOTED {
        return text.to_owned();
    }
    let cut: String = text.chars().take(MAX_QUOTED).collect();
    let mut out = format!("{cut:?}");
    if cut.len() < text.len() {
        out.push('…');
    }
    out
}

/// A [`Problem`]: the entry `id` cannot be migrated, because `reason`.
pub fn problem(id: &str, reason: impl Into<String>) -> Problem {
    Problem {
        id: id.to_owned(),
        reason: reason.into(),
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "not found".into(),
        std::io::ErrorKind::PermissionDenied => "not readable (permission denied)".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_leave_the_source() {
        let src = Path::new("/source");
        assert!(inside(src, "tokens/coder").is_ok());
        for bad in ["", "../etc/passwd", "/etc/passwd", "tokens/../../x", "./x"] {
            assert!(inside(src, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn token_text_trims_and_refuses_garbage() {
        assert_eq!(token_text(b"abc\n", "t").expect("ok"), b"abc");
        assert!(token_text(b"\xff\xfe", "t").is_err());
        assert!(token_text(b" \n", "t").is_err());
        assert!(token_text(b"a b", "t").is_err());
        assert!(token_text(b"a\x07b", "t").is_err());
    }

    #[test]
    fn names_scopes_and_targets_follow_the_grammar() {
        assert!(valid_name("FORGE_TOKEN") && valid_name("a.b-c_9"));
        assert!(!valid_name("") && !valid_name("_x") && !valid_name("a b"));
        assert!(!valid_name(&"a".repeat(129)) && valid_name(&"a".repeat(128)));
        assert!(valid_scope("global") && valid_scope("agent_type:coder"));
        assert!(!valid_scope("Agent:x") && !valid_scope("a:") && !valid_scope("x"));
        assert!(!valid_scope(&format!("{}:x", "a".repeat(33))));
        assert!(valid_target("workload:github/BEARER_TOKEN"));
        assert!(!valid_target("BEARER_TOKEN") && valid_reference("BEARER_TOKEN"));
        assert!(!valid_target("global/a/b") && !valid_target("global/"));
    }

    #[test]
    fn renames_and_rewrites_are_synced_and_idempotent() {
        let dir = std::env::temp_dir().join(format!("kw-sdk-sync-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let (file, bak) = (dir.join("coder"), dir.join(".coder.migrated.bak"));
        std::fs::write(&file, "tok").expect("write");
        rename_retired(&file, &bak, "coder").expect("retire");
        rename_retired(&file, &bak, "coder").expect("retire again");
        assert!(!file.exists() && bak.exists());
        replace_file(&bak, b"new").expect("replace");
        assert_eq!(std::fs::read(&bak).expect("read"), b"new");
        assert!(!dir.join(".coder.migrated.bak.keyward-tmp").exists());
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn quoted_shows_plain_names_as_they_are_and_escapes_the_rest() {
        assert_eq!(quoted("coder"), "coder");
        assert_eq!(quoted("a b"), "\"a b\"");
        assert_eq!(quoted("x\u{1b}[2J"), "\"x\\u{1b}[2J\"");
        let long = "y".repeat(100);
        assert_eq!(quoted(&long), format!("\"{}\"…", "y".repeat(64)));
        assert_eq!(problem("a", "why").reason, "why");
    }

    #[test]
    fn retire_file_renames_to_the_hidden_bak_once() {
        let dir = crate::testing::TempDir::new("sdk-retire");
        dir.write("tokens/coder", "tok");
        let file = dir.path().join("tokens/coder");
        retire_file(&file, "coder").expect("retire");
        retire_file(&file, "coder").expect("retire again");
        assert!(!dir.exists("tokens/coder") && dir.exists("tokens/.coder.migrated.bak"));
        assert!(retire_file(&dir.path().join("tokens/gone"), "gone").is_err());
    }

    #[test]
    fn retired_files_are_hidden_beside_the_original() {
        assert_eq!(
            retired_path(Path::new("/source/tokens/coder")),
            Some(PathBuf::from("/source/tokens/.coder.migrated.bak"))
        );
        assert_eq!(retired_path(Path::new("/")), None);
    }

    #[test]
    fn duplicate_targets_become_problems() {
        let item = |id: &str, target: &str| Item {
            id: id.into(),
            target: target.into(),
            description: String::new(),
            binding: Binding::None,
            unit: id.into(),
        };
        let (kept, problems) = refuse_duplicate_targets(vec![
            item("a", "global/X"),
            item("b", "global/Y"),
            item("c", "global/X"),
        ]);
        assert_eq!(
            kept.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
        assert_eq!(problems.len(), 2);
        assert!(
            problems[0].reason.contains("a, c"),
            "{}",
            problems[0].reason
        );
    }

    #[test]
    fn options_last_one_wins() {
        let run = RunConfig {
            source: None,
            options: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
        };
        assert_eq!(option(&run, "a"), Some("2"));
        assert_eq!(option(&run, "b"), None);
        assert!(source_dir(&run).is_err());
    }
}
