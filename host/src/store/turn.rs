//! The write turn: how pool writes and the access-log writer share
//! SQLite's one write lock fairly.

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use super::create_private_file;

/// Pool writes of this process that are waiting for, or holding, SQLite's
/// write lock (see [`write_turn`]), and the process's writers file.
///
/// Process-wide rather than per store: the store functions get a pool, not
/// a [`Db`], and a process serves one store. Where a process has several
/// (tests), a write to one only makes the others' access-log writers defer
/// for as long as it lasts, and only the first store's writers file is
/// used.
static TURNS_HELD: Mutex<usize> = Mutex::new(0);
pub(super) static WRITERS_FILE: OnceLock<std::fs::File> = OnceLock::new();

/// Held by a pool write for as long as it may want SQLite's write lock (a
/// statement, or a whole transaction): while any is held, in this process or
/// another one on the same file, the access-log writer
/// (`audit::sqlite_writer`) waits between two groups before it takes the
/// lock again.
///
/// Why: that writer takes the lock back-to-back under load, and SQLite's
/// busy handler makes a waiting connection sleep 1, 2, 5, … 100 ms between
/// tries, so a pool write could lose every try for seconds (measured: an
/// operator's `POST /secrets` during a render load took up to 2.3 s, and
/// `keyward secret set` beside it up to 2.8 s).
///
/// Other processes see turns through the store's writers file
/// (`<db>-writers`, see [`open_writers_file`]): while a process holds any turn it holds a shared
/// `flock` on it, which the writer probes with a non-blocking exclusive one.
/// On PostgreSQL there is no such file and nobody reads the counter.
#[must_use = "the turn lasts as long as it is held"]
pub struct WriteTurn(());

/// Takes a [`WriteTurn`]: only [`super::Db`]'s writers do.
pub(crate) fn write_turn() -> WriteTurn {
    let mut held = TURNS_HELD.lock().unwrap_or_else(|e| e.into_inner());
    if *held == 0 {
        if let Some(file) = WRITERS_FILE.get() {
            // Blocks only while a writer probes (a few microseconds). A
            // failure costs fairness towards other processes, nothing else.
            if let Err(error) = file.lock_shared() {
                tracing::debug!(%error, "cannot announce a write on the writers file");
            }
        }
    }
    *held += 1;
    WriteTurn(())
}

impl Drop for WriteTurn {
    fn drop(&mut self) {
        let mut held = TURNS_HELD.lock().unwrap_or_else(|e| e.into_inner());
        *held = held.saturating_sub(1);
        if *held == 0 {
            if let Some(file) = WRITERS_FILE.get() {
                let _ = file.unlock();
            }
        }
    }
}

/// Whether a pool write of this process holds a [`WriteTurn`].
pub(crate) fn pool_writers_waiting() -> bool {
    *TURNS_HELD.lock().unwrap_or_else(|e| e.into_inner()) > 0
}

/// Opens the writers file of the SQLite database at `db`: `<db>-writers`,
/// empty, mode 0600; only its `flock`s carry meaning (see [`WriteTurn`]).
pub(crate) fn open_writers_file(db: &Path) -> std::io::Result<std::fs::File> {
    let mut name = db.as_os_str().to_owned();
    name.push("-writers");
    // Truncating is harmless: the file never holds anything.
    create_private_file(Path::new(&name))
}
