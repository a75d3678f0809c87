//! Modes and owners of legacy files across a retire. The sandbox has no
//! chmod and no chown: a file a migrator writes (a rewrite renamed over the
//! original, a copy kept as `.<name>.migrated.bak`) gets the host's default
//! mode (0644 under the usual umask) and the host's owner, so a 0600 token
//! file would come out of a migration readable by everyone. Before a run's
//! retire calls the host notes the mode and owner of every regular file in
//! the source folder; after them, a file that replaced one of those (same
//! name, another inode), and a new `.<name>.migrated.bak` beside one, get
//! the original's mode and owner, synced, before the unit is marked retired.
//!
//! Only files this process made are touched: owned by its user, one link,
//! and the inode found at the path is the one opened (a symlink or a
//! hard link planted in the folder is left alone), so a hostile folder
//! cannot turn the host's chmod/chown on a file elsewhere.

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Deepest folder level looked at (`tokens/<agent>`, `<sub>/<file>`).
const MAX_DEPTH: usize = 3;

/// Most entries looked at: a bigger folder is not walked past this.
const MAX_ENTRIES: usize = 200_000;

/// What a file was before the retire calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Was {
    dev: u64,
    ino: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// The regular files of a source folder, before retiring.
pub(super) struct Snapshot {
    root: PathBuf,
    files: HashMap<PathBuf, Was>,
}

impl Snapshot {
    /// Notes every regular file under `root` (symlinks not followed).
    pub(super) fn take(root: &Path) -> Snapshot {
        let mut files = HashMap::new();
        for (path, meta) in walk(root) {
            files.insert(
                path,
                Was {
                    dev: meta.dev(),
                    ino: meta.ino(),
                    mode: meta.mode() & 0o7777,
                    uid: meta.uid(),
                    gid: meta.gid(),
                },
            );
        }
        Snapshot {
            root: root.to_path_buf(),
            files,
        }
    }

    /// Gives every file that replaced a noted one (or is a new retired copy
    /// of one) the noted mode and owner. Problems are logged, never fatal:
    /// the values are in the store by now.
    pub(super) fn restore(&self) {
        let me = rustix::process::geteuid().as_raw();
        for (path, meta) in walk(&self.root) {
            let original = match self.files.get(&path) {
                Some(was) => *was,
                None => match retired_of(&path).and_then(|o| self.files.get(&o)) {
                    Some(was) => *was,
                    None => continue,
                },
            };
            let same_inode = meta.dev() == original.dev && meta.ino() == original.ino;
            let ours = meta.uid() == me && meta.nlink() == 1;
            let differs = meta.mode() & 0o7777 != original.mode
                || meta.uid() != original.uid
                || meta.gid() != original.gid;
            if same_inode || !ours || !differs {
                continue;
            }
            if let Err(e) = fix(&path, &meta, original) {
                tracing::warn!(
                    file = %path.display(),
                    error = %e,
                    "migration: cannot give a rewritten legacy file its original mode and owner"
                );
            }
        }
    }
}

/// Sets `was`'s mode and owner on the file at `path`, if it is still the
/// inode `seen`.
fn fix(path: &Path, seen: &std::fs::Metadata, was: Was) -> std::io::Result<()> {
    let file = std::fs::File::open(path)?;
    let opened = file.metadata()?;
    // Opening follows a symlink: the inode opened must be the one seen.
    if opened.dev() != seen.dev() || opened.ino() != seen.ino() || !opened.is_file() {
        return Ok(());
    }
    // Owner first: chown clears set-id bits, the mode then sets them.
    if opened.uid() != was.uid || opened.gid() != was.gid {
        std::os::unix::fs::fchown(&file, Some(was.uid), Some(was.gid))?;
    }
    file.set_permissions(std::fs::Permissions::from_mode(was.mode))?;
    file.sync_all()
}

/// `dir/X` for `dir/.X.migrated.bak`.
fn retired_of(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let original = name.strip_prefix('.')?.strip_suffix(".migrated.bak")?;
    (!original.is_empty()).then(|| path.with_file_name(original))
}

/// Regular files under `root`, at most [`MAX_DEPTH`] levels down, symlinks
/// not followed.
fn walk(root: &Path) -> Vec<(PathBuf, std::fs::Metadata)> {
    let mut out = Vec::new();
    let mut dirs = vec![(root.to_path_buf(), 0usize)];
    let mut seen = 0usize;
    while let Some((dir, depth)) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > MAX_ENTRIES {
                return out;
            }
            let Ok(meta) = entry.metadata() else { continue };
            let kind = meta.file_type();
            if kind.is_file() {
                out.push((entry.path(), meta));
            } else if kind.is_dir() && depth + 1 < MAX_DEPTH {
                dirs.push((entry.path(), depth + 1));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_file_gets_its_mode_back_and_a_planted_link_does_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("prod.env");
        std::fs::write(&file, "A=1\n").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let outside = dir.path().join("elsewhere");
        std::fs::create_dir(&outside).expect("mkdir");
        let victim = outside.join("victim");
        std::fs::write(&victim, "x").expect("write");
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let snap = Snapshot::take(dir.path());
        // A copy kept as .bak (made while the original is there, as
        // key-prefix does where hard links fail), then a rewrite: new
        // inodes, the sandbox's default mode.
        let bak = dir.path().join(".prod.env.migrated.bak");
        std::fs::write(&bak, "A=1\n").expect("write");
        std::fs::set_permissions(&bak, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let tmp = dir.path().join("prod.env.tmp");
        std::fs::write(&tmp, "").expect("write");
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        std::fs::rename(&tmp, &file).expect("rename");
        // A symlink planted in the name of a noted file.
        let moved = dir.path().join("elsewhere").join("victim");
        let link_name = dir.path().join("link.env");
        std::os::unix::fs::symlink(&moved, &link_name).expect("symlink");
        snap.restore();
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&bak), 0o600);
        assert_eq!(mode(&victim), 0o644, "a symlink is not followed");
        assert_eq!(retired_of(&bak), Some(file.clone()));
        assert_eq!(retired_of(&file), None);
    }
}
