//! `keyward audit export --to FILE [--follow]`: the access log appended to a
//! file as JSON lines, for a log shipper or a SIEM to pick up, resuming
//! after the last row already exported so that a restart, a crash or the
//! operator's log rotation neither loses nor repeats a row.
//!
//! Where to resume is the larger of the last complete line's `seq` in FILE
//! and the number in `FILE.seq` (written after every batch): the file says
//! it when the process died between the two writes, the side file when the
//! file was rotated away (moved, or truncated in place) since.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::audit::chain::LogRow;

/// How much of the file's end is read to find its last line: far more than
/// a row takes.
const TAIL: u64 = 64 * 1024;

/// The open export file and the last row in it.
pub(super) struct Export {
    file: File,
    path: PathBuf,
    mark: PathBuf,
    /// The last row exported (0: none).
    pub last: i64,
}

impl Export {
    /// Opens (or creates, 0600) `path` and finds where to resume. A last
    /// line cut short by a crash is removed; a last line that is not an
    /// access-log row means the file is not an export: refused, so nothing
    /// is appended to a file of someone else's.
    pub fn open(path: &Path) -> anyhow::Result<Export> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot open the export file {}", path.display()))?;
        let len = file.metadata()?.len();
        let start = len.saturating_sub(TAIL);
        file.seek(SeekFrom::Start(start))?;
        let mut tail = Vec::new();
        file.read_to_end(&mut tail)?;
        // Cut a torn last line (no newline): its row is exported again.
        let complete = match tail.iter().rposition(|b| *b == b'\n') {
            Some(end) => end + 1,
            None if start == 0 => 0,
            None => anyhow::bail!(
                "{} does not look like an access-log export: no line ends in its last {TAIL} bytes",
                path.display()
            ),
        };
        if complete < tail.len() {
            file.set_len(start + complete as u64)?;
            file.sync_data()?;
            tracing::warn!(path = %path.display(), "removed a cut-off last line from the export file");
        }
        let last_line = tail[..complete]
            .strip_suffix(b"\n")
            .map(|lines| match lines.iter().rposition(|b| *b == b'\n') {
                Some(i) => &lines[i + 1..],
                None if start == 0 => lines,
                None => &[][..],
            })
            .unwrap_or_default();
        let in_file = if last_line.is_empty() {
            0
        } else {
            serde_json::from_slice::<LogRow>(last_line)
                .with_context(|| {
                    format!(
                        "{} does not look like an access-log export: its last line is not a row",
                        path.display()
                    )
                })?
                .seq
        };
        let mark = mark_path(path);
        let in_mark = match std::fs::read_to_string(&mark) {
            Ok(text) => text
                .trim()
                .parse::<i64>()
                .with_context(|| format!("{} does not hold a row number", mark.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", mark.display()));
            }
        };
        Ok(Export {
            file,
            path: path.to_owned(),
            mark,
            last: in_file.max(in_mark),
        })
    }

    /// Appends `rows` (all after [`Export::last`], in order), flushes them
    /// to the disk, then records the last one in the side file.
    pub fn append(&mut self, rows: &[LogRow]) -> anyhow::Result<()> {
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            return Ok(());
        };
        // Rows the export had not reached are gone from the log only if they
        // were archived meanwhile: going on would lose them without a word.
        if self.last > 0 && first.seq != self.last + 1 {
            anyhow::bail!(
                "rows {}–{} are no longer in the access log: they were archived (by `audit archive` \
                 or retention) before they were exported. Nothing was written. They are in the \
                 archive file that holds them (its lines between the first and the last are rows \
                 in this format): add them to {}, write {} to {}, and run the export again",
                self.last + 1,
                first.seq - 1,
                self.path.display(),
                first.seq - 1,
                self.mark.display()
            );
        }
        let mut lines = Vec::with_capacity(rows.len() * 256);
        for row in rows {
            serde_json::to_writer(&mut lines, row)?;
            lines.push(b'\n');
        }
        self.file
            .write_all(&lines)
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("cannot write to {}", self.path.display()))?;
        self.last = last.seq;
        let tmp = self.mark.with_extension("seq.tmp");
        std::fs::write(&tmp, format!("{}\n", self.last))
            .and_then(|()| std::fs::rename(&tmp, &self.mark))
            .with_context(|| format!("cannot write {}", self.mark.display()))?;
        Ok(())
    }
}

/// `FILE.seq`, beside the export.
fn mark_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".seq");
    PathBuf::from(name)
}
