//! Archive files of the access log: the oldest rows, moved out of the
//! database by `keyward audit archive`, in a file that still verifies on its
//! own and joins the live log as one chain (docs/access-log.md).
//!
//! A gzip stream of JSON lines:
//!
//! ```text
//! {"format":"keyward-audit-archive","version":1,"log":HEX16,"first":A,"last":B,"start":CHECKPOINT}
//! {"seq":A,…,"mac":HEX32}            one line per row, as `audit tail --json`
//! …
//! {"seq":B,…}
//! CHECKPOINT                         signed: row B and its MAC
//! ```
//!
//! `start` is a signed checkpoint of the row before the first (row A−1 and
//! its MAC; row 0 and 32 zero bytes for the log's start), the last line one
//! of row B. Both are signed with the checkpoint key, so a verifier with the
//! master key needs nothing else to check the file: the rows chain from
//! `start`'s MAC to the end checkpoint's, an edited, dropped or inserted row
//! breaks that, and neither end can be moved without the key. Archives of
//! consecutive runs meet exactly (one's end is the next one's start), and
//! the last one meets the live log at its archive mark.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use serde_json::Value;

use super::chain::{ChainKey, Head, LogRow};
use super::checkpoint::{CheckpointError, CheckpointKey, SignedCheckpoint};
use crate::crypto::ct_eq;

/// The `format` field of an archive's first line.
pub const FORMAT: &str = "keyward-audit-archive";
/// The one version this build writes and reads.
pub const VERSION: u64 = 1;
/// Longest line accepted when reading an archive (a row is at most a few
/// KiB): a hostile file cannot make the reader hold more than this.
const MAX_LINE: u64 = 64 * 1024;

/// Why an archive file could not be written or read as one.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The file system said no.
    #[error("archive {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// Not an archive of this format, or not gzip, or cut short.
    #[error("{} is not a Keyward access-log archive: {why}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The archive was not made: the log is broken, or another archive
    /// ran at the same time. Nothing was deleted.
    #[error("archive refused: {0}")]
    Refused(String),
    /// An archive of another store's log, or of a newer format.
    #[error("archive {}: {source}", path.display())]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// Why its checkpoint was refused.
        source: CheckpointError,
    },
}

/// What checking one archive file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileVerdict {
    /// Every row chains from the signed start to the signed end.
    Intact(Span),
    /// The first row (or end) that does not.
    Broken {
        /// Where.
        seq: i64,
        /// What is wrong there.
        problem: String,
    },
}

/// The rows an intact archive holds: from the row after `start` to `end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The row before the first (its signed checkpoint).
    pub start: Head,
    /// The last row.
    pub end: Head,
    /// When the end checkpoint was signed (Unix ms): when it was archived.
    pub made_ms: i64,
}

/// Writes an archive, row by row. The file is `PATH.partial` until
/// [`Writer::finish`] puts it in place, so a crash never leaves a
/// truncated file under the archive's name.
pub struct Writer {
    out: GzEncoder<BufWriter<File>>,
    partial: PathBuf,
    path: PathBuf,
}

impl Writer {
    /// Starts an archive of rows `start.seq + 1 ..= last` at `path`, which
    /// must not exist (an archive is never overwritten).
    pub fn create(
        path: &Path,
        keys: &CheckpointKey,
        start: &Head,
        last: i64,
        now_ms: i64,
    ) -> Result<Writer, ArchiveError> {
        let io = |source| ArchiveError::Io {
            path: path.to_owned(),
            source,
        };
        if path.exists() {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the file exists; an archive is never overwritten",
            )));
        }
        let partial = partial_path(path);
        let file = create_private(&partial).map_err(io)?;
        let out = GzEncoder::new(BufWriter::new(file), flate2::Compression::fast());
        let mut writer = Writer {
            out,
            partial,
            path: path.to_owned(),
        };
        let start_line = keys.sign(start.seq, mac32(&start.mac), now_ms).to_line();
        let start: Value = serde_json::from_str(&start_line).expect("a checkpoint line is JSON");
        let header = serde_json::json!({
            "format": FORMAT,
            "version": VERSION,
            "log": keys.log_id().to_string(),
            "first": start["seq"].as_i64().unwrap_or_default() + 1,
            "last": last,
            "start": start,
        });
        writer.line(&header.to_string())?;
        Ok(writer)
    }

    /// Appends one row.
    pub fn push(&mut self, row: &LogRow) -> Result<(), ArchiveError> {
        let line = serde_json::to_string(row).expect("a log row serialises");
        self.line(&line)
    }

    /// Ends the archive with a signed checkpoint of its last row, flushes
    /// it to the disk and moves it to its name (refusing to replace a file
    /// that appeared meanwhile). Returns the SHA-256 of the file.
    pub fn finish(
        mut self,
        keys: &CheckpointKey,
        end: &Head,
        now_ms: i64,
    ) -> Result<String, ArchiveError> {
        let line = keys.sign(end.seq, mac32(&end.mac), now_ms).to_line();
        self.line(&line)?;
        let partial = self.partial.clone();
        let io = |source| ArchiveError::Io {
            path: partial.clone(),
            source,
        };
        let file = self
            .out
            .finish()
            .map_err(io)?
            .into_inner()
            .map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        drop(file);
        // A hard link fails if the name is taken: never a silent replace.
        std::fs::hard_link(&partial, &self.path).map_err(|source| ArchiveError::Io {
            path: self.path.clone(),
            source,
        })?;
        std::fs::remove_file(&partial).map_err(io)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        sha256_file(&self.path)
    }

    /// Gives up: removes the partial file.
    pub fn abandon(self) {
        let _ = std::fs::remove_file(&self.partial);
    }

    fn line(&mut self, text: &str) -> Result<(), ArchiveError> {
        self.out
            .write_all(text.as_bytes())
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|source| ArchiveError::Io {
                path: self.partial.clone(),
                source,
            })
    }
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

fn create_private(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// A head's MAC as the 32 bytes a checkpoint signs (zeros if it is not 32
/// bytes long: such a head is damaged, and its checkpoint will not match).
pub(crate) fn mac32(mac: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    if mac.len() == 32 {
        out.copy_from_slice(mac);
    }
    out
}

/// The SHA-256 of a file, hex (logged with the archive row, so the file
/// can be matched with the row that recorded it).
pub fn sha256_file(path: &Path) -> Result<String, ArchiveError> {
    use sha2::Digest;
    let io = |source| ArchiveError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Checks one archive file: its two signed checkpoints, and every row's
/// place and MAC in the chain between them. `seen` is told every row's seq
/// and MAC (to check other checkpoints against the archived rows).
///
/// A file that is not an archive, or another store's, is an error; a file
/// that is one but whose rows or ends do not check is a [`FileVerdict::Broken`].
pub fn verify_file(
    path: &Path,
    chain: &ChainKey,
    keys: &CheckpointKey,
    seen: &mut dyn FnMut(i64, &[u8]),
) -> Result<FileVerdict, ArchiveError> {
    let malformed = |why: String| ArchiveError::Malformed {
        path: path.to_owned(),
        why,
    };
    let file = File::open(path).map_err(|source| ArchiveError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut lines = Lines {
        reader: BufReader::new(MultiGzDecoder::new(BufReader::new(file))),
        path,
        number: 0,
    };
    let header = lines
        .next()?
        .ok_or_else(|| malformed("it is empty".into()))?;
    let header: Value = serde_json::from_str(&header)
        .map_err(|_| malformed("its first line is not a JSON archive header".into()))?;
    if header.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(malformed(format!(
            "its first line's \"format\" is not \"{FORMAT}\""
        )));
    }
    match header.get("version").and_then(Value::as_u64) {
        Some(VERSION) => {}
        Some(v) => {
            return Err(malformed(format!(
                "archive format version {v}; this keyward reads version {VERSION}"
            )))
        }
        None => return Err(malformed("\"version\" is missing".into())),
    }
    let start = header
        .get("start")
        .ok_or_else(|| malformed("\"start\" is missing".into()))?;
    let checked = |signed: Result<SignedCheckpoint, CheckpointError>| {
        signed.and_then(|s| keys.check(&s).map(|c| (s, c)))
    };
    let start = match checked(SignedCheckpoint::parse(&start.to_string())) {
        Ok((_, c)) => c,
        Err(CheckpointError::BadSignature) => {
            let seq = header.get("first").and_then(Value::as_i64).unwrap_or(0);
            return Ok(FileVerdict::Broken {
                seq,
                problem: "the archive's start checkpoint does not match its signature: the file was modified".into(),
            });
        }
        Err(source) => {
            return Err(ArchiveError::Checkpoint {
                path: path.to_owned(),
                source,
            })
        }
    };
    let mut prev = start.mac().to_vec();
    let mut expected = start.seq() + 1;
    let mut pending: Option<String> = None;
    while let Some(line) = lines.next()? {
        // The last line is the end checkpoint: a line is a row only once
        // another line follows it.
        let Some(row_line) = pending.replace(line) else {
            continue;
        };
        let row: LogRow = match serde_json::from_str(&row_line) {
            Ok(row) => row,
            Err(_) => {
                return Ok(FileVerdict::Broken {
                    seq: expected,
                    problem: format!("line {} is not an access-log row", lines.number - 1),
                })
            }
        };
        if row.seq != expected {
            return Ok(FileVerdict::Broken {
                seq: expected,
                problem: format!(
                    "row {expected} is missing from the archive (the next row is {}): rows were deleted or renumbered",
                    row.seq
                ),
            });
        }
        if !ct_eq(&chain.row_mac(&prev, &row), &row.mac) {
            return Ok(FileVerdict::Broken {
                seq: row.seq,
                problem: "MAC mismatch in the archive: the row was edited, moved or inserted"
                    .into(),
            });
        }
        seen(row.seq, &row.mac);
        prev = row.mac;
        expected += 1;
    }
    let last = expected - 1;
    let Some(end_line) = pending else {
        return Ok(FileVerdict::Broken {
            seq: expected,
            problem: "the archive ends without its end checkpoint: it was cut short".into(),
        });
    };
    let end = match checked(SignedCheckpoint::parse(&end_line)) {
        Ok((_, end)) => end,
        Err(CheckpointError::Malformed(_)) => {
            return Ok(FileVerdict::Broken {
                seq: expected,
                problem: "the archive's last line is not its end checkpoint: it was cut short or rows were added".into(),
            })
        }
        Err(CheckpointError::BadSignature) => {
            return Ok(FileVerdict::Broken {
                seq: last,
                problem: "the archive's end checkpoint does not match its signature: the file was modified".into(),
            })
        }
        Err(source) => {
            return Err(ArchiveError::Checkpoint {
                path: path.to_owned(),
                source,
            })
        }
    };
    if end.seq() != last || !ct_eq(end.mac(), &prev) {
        return Ok(FileVerdict::Broken {
            seq: last.min(end.seq()) + 1,
            problem: format!(
                "the archive's rows end at row {last} but its signed end is row {}: rows were removed or replaced",
                end.seq()
            ),
        });
    }
    Ok(FileVerdict::Intact(Span {
        start: start.head(),
        end: end.head(),
        made_ms: end.time_ms(),
    }))
}

struct Lines<'a, R> {
    reader: R,
    path: &'a Path,
    number: u64,
}

impl<R: BufRead> Lines<'_, R> {
    /// The next line without its newline; `None` at the end.
    fn next(&mut self) -> Result<Option<String>, ArchiveError> {
        let mut buf = Vec::new();
        let read = (&mut self.reader)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| ArchiveError::Malformed {
                path: self.path.to_owned(),
                why: format!("it does not decompress ({e})"),
            })?;
        if read == 0 {
            return Ok(None);
        }
        self.number += 1;
        if buf.len() as u64 > MAX_LINE {
            return Err(ArchiveError::Malformed {
                path: self.path.to_owned(),
                why: format!("line {} is longer than {MAX_LINE} bytes", self.number),
            });
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        String::from_utf8(buf)
            .map(Some)
            .map_err(|_| ArchiveError::Malformed {
                path: self.path.to_owned(),
                why: format!("line {} is not UTF-8", self.number),
            })
    }
}

/// Where a chain of archives (and then the live log) must go on from.
pub fn continues(previous: &Head, next_start: &Head) -> bool {
    previous.seq == next_start.seq && ct_eq(&previous.mac, &next_start.mac)
}
