//! Helpers for a plugin's unit tests, which run natively
//! (`cargo test`, not on `wasm32-wasip2`): a scratch source folder and the
//! [`RunConfig`] a migration run over it would hand the plugin.
//!
//! ```
//! use keyward_plugin_sdk::testing::TempDir;
//!
//! let dir = TempDir::new("my-migrator");
//! dir.write("tokens/coder", "tok\n");
//! let run = dir.run(&[("prefix", "X_")]);
//! assert_eq!(run.source.as_deref(), dir.path().to_str());
//! assert_eq!(dir.text("tokens/coder"), "tok\n");
//! ```

use std::path::{Path, PathBuf};

use crate::migrate::RunConfig;

/// A fresh folder under the system temp dir, removed on drop. Its name
/// holds the process id, the tag and a counter, so tests running in
/// parallel never share one.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `<temp>/keyward-<tag>-<pid>-<n>`, emptied if it was left
    /// over. Panics if it cannot: this is for tests.
    pub fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("keyward-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating a temp dir");
        TempDir(dir)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `bytes` to `rel` inside the folder, creating its folders.
    pub fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) {
        let path = self.0.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("creating a folder in the temp dir");
        }
        std::fs::write(path, bytes).expect("writing into the temp dir");
    }

    /// The text of `rel` inside the folder.
    pub fn text(&self, rel: &str) -> String {
        std::fs::read_to_string(self.0.join(rel)).expect("reading from the temp dir")
    }

    /// Whether `rel` exists inside the folder (a dangling symlink counts).
    pub fn exists(&self, rel: &str) -> bool {
        std::fs::symlink_metadata(self.0.join(rel)).is_ok()
    }

    /// The run configuration of a migration over this folder, with
    /// `options` as `--option KEY=VALUE` pairs.
    pub fn run(&self, options: &[(&str, &str)]) -> RunConfig {
        RunConfig {
            source: Some(self.0.to_str().expect("a UTF-8 temp dir").to_owned()),
            options: options
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
