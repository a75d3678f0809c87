//! Retention of the access log: its oldest rows moved to an archive file
//! (`audit::archive`) and deleted from the database, with the chain kept
//! verifiable across the cut.
//!
//! The cut is the **archive mark** (`audit_archive`, migration 0012): the
//! last archived row's seq and MAC, signed like a checkpoint. The database
//! lets rows be deleted only up to it, it only moves forward, and every
//! verify of the live log starts from it — after checking its signature, so
//! whoever can write the database cannot move it to hide rows.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlx::Row;

use super::{Vault, VaultError};
use crate::audit::archive::{ArchiveError, Writer};
use crate::audit::chain::{self, Head, VerifyReport};
use crate::audit::checkpoint::Checkpoint;
use crate::audit::{Access, AccessEntry, Action, Outcome};
use crate::store::{now_ms, Backend};

/// The accessor of the archive rows `serve`'s retention writes.
pub const RETENTION_ACCESSOR: &str = "keyward:retention";

/// Rows deleted per transaction after an archive, so the write lock is
/// never held for long.
const DELETE_BATCH: i64 = 10_000;

/// Any constant every host agrees on: PostgreSQL's advisory lock that lets
/// one host archive at a time.
const ARCHIVE_LOCK: i64 = 0x6b65_7977_6172_6368; // "keywarch"

/// Where the archive mark stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mark {
    /// Nothing was ever archived: the live log starts at row 1.
    None,
    /// Rows up to the checkpoint's were archived; its signature checks.
    Archived(Checkpoint),
    /// The mark's signature does not check: it was written by something
    /// without the master key (to hide rows behind it).
    Forged {
        /// The row it claims.
        seq: i64,
    },
}

/// What one archive run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    /// The first row archived.
    pub first: i64,
    /// The last row archived (the new mark).
    pub last: i64,
    /// The file written.
    pub path: PathBuf,
    /// Its SHA-256, hex.
    pub sha256: String,
}

impl Mark {
    /// Where a walk of the live log that would start after `from` must
    /// start: after the mark if that is further on (the rows up to it are
    /// gone from the database, and were checked when archived), or a broken
    /// verdict if the mark is forged.
    pub(crate) fn start_after(&self, from: Head) -> Result<Head, VerifyReport> {
        match self {
            Mark::Archived(mark) if mark.seq() > from.seq => Ok(mark.head()),
            Mark::None | Mark::Archived(_) => Ok(from),
            Mark::Forged { seq } => Err(VerifyReport::Broken {
                seq: *seq,
                problem: format!(
                    "the archive mark (row {seq}) does not match its signature: it was written \
                     without the master key, to hide the rows before it"
                ),
            }),
        }
    }
}

impl Vault {
    /// The archive mark, its signature checked.
    pub async fn archive_mark(&self) -> Result<Mark, VaultError> {
        let row = sqlx::query("SELECT seq, mac, time_ms, sig FROM audit_archive WHERE id = 1")
            .fetch_optional(self.db.reader())
            .await?;
        let Some(row) = row else {
            return Ok(Mark::None);
        };
        let seq: i64 = row.try_get("seq")?;
        let mac: Vec<u8> = row.try_get("mac")?;
        let sig: Vec<u8> = row.try_get("sig")?;
        Ok(
            match self
                .checkpoints
                .check_stored(seq, &mac, row.try_get("time_ms")?, &sig)
            {
                Ok(checkpoint) => Mark::Archived(checkpoint),
                Err(_) => Mark::Forged { seq },
            },
        )
    }

    /// Where a walk of the live log that would start after `from` must
    /// start ([`Mark::start_after`]), the mark read now.
    pub(crate) async fn live_start(
        &self,
        from: Head,
    ) -> Result<Result<Head, VerifyReport>, VaultError> {
        Ok(self.archive_mark().await?.start_after(from))
    }

    /// Archives every row older than `before_ms` (Unix ms) that is still in
    /// the database to a new file, `to(first, last)`, then deletes them:
    ///
    /// 1. the rows are written to `to` (never replacing a file), their chain
    ///    checked on the way — a broken log is refused, not archived;
    /// 2. one transaction moves the mark and appends the `archive` row;
    /// 3. the archived rows and their history-index keys are deleted in
    ///    batches (a run cut short here is finished by the next one).
    ///
    /// `Ok(None)` when no row is old enough. On PostgreSQL one host archives
    /// at a time: another that tries meanwhile gets `Ok(None)`.
    pub async fn archive_before(
        &self,
        before_ms: i64,
        to: &(dyn Fn(i64, i64) -> PathBuf + Sync),
        access: &Access,
    ) -> Result<Option<Archived>, VaultError> {
        let lock = self.archive_lock().await?;
        let Some(mut lock) = lock else {
            return Ok(None);
        };
        let result = self.archive_locked(before_ms, to, access).await;
        lock.release().await;
        result
    }

    async fn archive_locked(
        &self,
        before_ms: i64,
        to: &(dyn Fn(i64, i64) -> PathBuf + Sync),
        access: &Access,
    ) -> Result<Option<Archived>, VaultError> {
        let start = match self.live_start(Head::start()).await? {
            Ok(start) => start,
            Err(VerifyReport::Broken { problem, .. }) => return Err(refused(problem)),
            Err(VerifyReport::Intact { .. }) => unreachable!("live_start only breaks"),
        };
        // Finish the deletions of a run that was cut short.
        self.delete_archived(start.seq).await?;
        let head = chain::head(self.db.reader()).await?;
        let newer = sqlx::query(
            "SELECT seq FROM secret_access_log WHERE seq > $1 AND at >= $2 ORDER BY seq LIMIT 1",
        )
        .bind(start.seq)
        .bind(before_ms)
        .fetch_optional(self.db.reader())
        .await?;
        let last = match newer {
            Some(row) => row.try_get::<i64, _>("seq")? - 1,
            None => head.seq,
        };
        if last <= start.seq {
            return Ok(None);
        }
        let first = start.seq + 1;
        let to = to(first, last);
        let to = to.as_path();
        let (end, sha256) = self.write_archive(to, &start, last).await?;
        if let Err(error) = self
            .move_mark(&start, &end, first, to, &sha256, access)
            .await
        {
            // Not recorded: the file must not pass for an archive of rows
            // that are still in the database.
            let _ = std::fs::remove_file(to);
            return Err(error);
        }
        self.delete_archived(end.seq).await?;
        Ok(Some(Archived {
            first,
            last: end.seq,
            path: to.to_owned(),
            sha256,
        }))
    }

    /// Writes rows `start.seq + 1 ..= last` to `to`, checking their chain
    /// from `start`. Returns the last row's head and the file's SHA-256.
    async fn write_archive(
        &self,
        to: &Path,
        start: &Head,
        last: i64,
    ) -> Result<(Head, String), VaultError> {
        let now = now_ms();
        let mut writer = Writer::create(to, &self.checkpoints, start, last, now)?;
        let mut prev = start.clone();
        // Read beside the writing, as a verify reads (chain::Pages).
        let mut pages = chain::Pages::open(&self.db, prev.seq, last).await;
        loop {
            let page = match pages.next().await {
                Ok(Some(page)) => page,
                Ok(None) => break,
                Err(error) => {
                    writer.abandon();
                    return Err(error.into());
                }
            };
            for row in &page {
                let problem = if row.seq != prev.seq + 1 {
                    Some(format!("row {} is missing", prev.seq + 1))
                } else if !crate::crypto::ct_eq(&self.chain.row_mac(&prev.mac, row), &row.mac) {
                    Some(format!("row {} does not match its MAC", row.seq))
                } else {
                    None
                };
                if let Some(problem) = problem {
                    writer.abandon();
                    return Err(refused(format!(
                        "{problem}: the log is broken, and a broken log is not archived (run `keyward audit verify`)"
                    )));
                }
                prev = Head {
                    seq: row.seq,
                    mac: row.mac.clone(),
                };
            }
            // Compressing is CPU work: off the async threads.
            let rows = page;
            writer = tokio::task::spawn_blocking(move || {
                for row in &rows {
                    if let Err(error) = writer.push(row) {
                        writer.abandon();
                        return Err(error);
                    }
                }
                Ok(writer)
            })
            .await
            .map_err(|e| refused(format!("the archive writer failed: {e}")))??;
        }
        if prev.seq != last {
            writer.abandon();
            return Err(refused(format!(
                "the log ends at row {} before row {last}: rows were removed (run `keyward audit verify`)",
                prev.seq
            )));
        }
        let keys = std::sync::Arc::clone(&self.checkpoints);
        let end = prev.clone();
        let sha = tokio::task::spawn_blocking(move || writer.finish(&keys, &end, now))
            .await
            .map_err(|e| refused(format!("the archive writer failed: {e}")))??;
        Ok((prev, sha))
    }

    /// One transaction: the mark moves from `start` to `end` (if no other
    /// archive moved it meanwhile) and the `archive` row is appended.
    async fn move_mark(
        &self,
        start: &Head,
        end: &Head,
        first: i64,
        to: &Path,
        sha256: &str,
        access: &Access,
    ) -> Result<(), VaultError> {
        let (mut tx, head) = self.begin_logged().await?;
        let current: Option<i64> = sqlx::query_scalar("SELECT seq FROM audit_archive WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await?;
        if current.unwrap_or(0) != start.seq {
            return Err(refused(format!(
                "another archive moved the mark to row {} meanwhile",
                current.unwrap_or(0)
            )));
        }
        let mark = self
            .checkpoints
            .sign(end.seq, crate::audit::archive::mac32(&end.mac), now_ms());
        sqlx::query(
            "INSERT INTO audit_archive (id, seq, mac, time_ms, sig) VALUES (1, $1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, mac = excluded.mac, \
             time_ms = excluded.time_ms, sig = excluded.sig",
        )
        .bind(end.seq)
        .bind(end.mac.clone())
        .bind(mark.time_ms())
        .bind(mark.sig().to_vec())
        .execute(&mut *tx)
        .await?;
        let entry = AccessEntry::new(access, Action::Archive, Outcome::Ok, "log", "access-log")
            .with_detail(format!(
                "rows {first}–{} to {} (sha256 {sha256})",
                end.seq,
                to.display()
            ));
        self.commit_logged(tx, head, &[entry]).await
    }

    /// Deletes the rows up to `mark` still in the database, and their
    /// history-index keys, a batch per transaction.
    async fn delete_archived(&self, mark: i64) -> Result<(), VaultError> {
        if mark == 0 {
            return Ok(());
        }
        let mut deleted = 0u64;
        loop {
            let lowest: Option<i64> = sqlx::query_scalar(
                "SELECT seq FROM secret_access_log WHERE seq <= $1 ORDER BY seq LIMIT 1",
            )
            .bind(mark)
            .fetch_optional(self.db.reader())
            .await?;
            let Some(lowest) = lowest else {
                break;
            };
            let upto = (lowest + DELETE_BATCH - 1).min(mark);
            let mut tx = self.db.begin_write().await?;
            deleted += sqlx::query("DELETE FROM secret_access_log WHERE seq >= $1 AND seq <= $2")
                .bind(lowest)
                .bind(upto)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
        }
        if deleted == 0 {
            return Ok(());
        }
        // The index is derived data in a file (or tables) of its own; its
        // keys for deleted rows would only point at nothing. (A walk of the
        // index tables, so only after rows were deleted.)
        // On the connection the index follower uses (on SQLite the index's
        // own file: no write turn of the database), closed after a failure
        // for the follower's reason (audit::log_index).
        let tables = crate::audit::log_index::tables(self.db.backend);
        let mut conn = self.db.index_connection().await?;
        for table in [
            tables.by_secret,
            tables.by_secret_accessor,
            tables.by_accessor,
        ] {
            let deleted = sqlx::query(&format!("DELETE FROM {table} WHERE seq <= $1"))
                .bind(mark)
                .execute(&mut *conn)
                .await;
            if let Err(error) = deleted {
                let _ = conn.close().await;
                return Err(error.into());
            }
        }
        Ok(())
    }

    /// On PostgreSQL, the advisory lock that lets one host archive at a
    /// time, held on a connection of its own for the whole run; `None` if
    /// another host holds it. On SQLite there is one host.
    async fn archive_lock(&self) -> Result<Option<ArchiveLock>, VaultError> {
        if self.db.backend != Backend::Postgres {
            return Ok(Some(ArchiveLock(None)));
        }
        let mut conn = self.db.connect_own().await?;
        let ours: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(ARCHIVE_LOCK)
            .fetch_one(&mut conn)
            .await?;
        Ok(ours.then_some(ArchiveLock(Some(conn))))
    }
}

/// PostgreSQL's archive lock (released when its connection closes, so a
/// crashed host never keeps it).
struct ArchiveLock(Option<sqlx::AnyConnection>);

impl ArchiveLock {
    async fn release(&mut self) {
        if let Some(conn) = self.0.take() {
            use sqlx::Connection as _;
            let _ = conn.close().await;
        }
    }
}

fn refused(why: String) -> VaultError {
    VaultError::Archive(ArchiveError::Refused(why))
}

/// The rows of the archives given to `audit verify --archive`, verified:
/// where they end, and the MACs of the rows checkpoints asked about.
pub struct ArchivedRows {
    macs: std::collections::HashMap<i64, Vec<u8>>,
}

impl ArchivedRows {
    /// The MAC of archived row `seq`, if a checkpoint asked for it and an
    /// archive held it.
    pub fn mac_of(&self, seq: i64) -> Option<Vec<u8>> {
        self.macs.get(&seq).cloned()
    }
}

impl Vault {
    /// Verifies archive files (`keyward audit archive`'s) and then the live
    /// log as one chain: each file on its own (its two signed ends, every
    /// row between), the files meeting end to start in chain order, the
    /// last one ending exactly at the live log's archive mark, then the
    /// live log from there and `checkpoints` (also those of archived rows).
    pub async fn verify_with_archives(
        &self,
        files: &[PathBuf],
        checkpoints: &[Checkpoint],
        progress: &mut (dyn FnMut(chain::VerifyProgress) + Send),
    ) -> Result<super::LogVerdict, VaultError> {
        use crate::audit::archive::{continues, verify_file, FileVerdict, Span};
        let wanted: std::collections::HashSet<i64> =
            checkpoints.iter().map(Checkpoint::seq).collect();
        let mut spans: Vec<(Span, PathBuf)> = Vec::with_capacity(files.len());
        let mut macs = std::collections::HashMap::new();
        for file in files {
            let (chain, keys) = (Arc::clone(&self.chain), Arc::clone(&self.checkpoints));
            let (path, wanted) = (file.clone(), wanted.clone());
            let (verdict, found) = tokio::task::spawn_blocking(move || {
                let mut found = Vec::new();
                let mut seen = |seq: i64, mac: &[u8]| {
                    if wanted.contains(&seq) {
                        found.push((seq, mac.to_vec()));
                    }
                };
                verify_file(&path, &chain, &keys, &mut seen).map(|v| (v, found))
            })
            .await
            .map_err(|e| refused(format!("the archive reader failed: {e}")))??;
            match verdict {
                FileVerdict::Intact(span) => spans.push((span, file.clone())),
                FileVerdict::Broken { seq, problem } => {
                    return Ok(super::LogVerdict::broken(
                        None,
                        seq,
                        format!("archive {}: {problem}", file.display()),
                    ))
                }
            }
            macs.extend(found);
        }
        spans.sort_by_key(|(span, _)| span.start.seq);
        for pair in spans.windows(2) {
            let ((before, before_file), (after, after_file)) = (&pair[0], &pair[1]);
            if !continues(&before.end, &after.start) {
                let problem = if after.start.seq > before.end.seq {
                    format!(
                        "archive {} ends at row {} but the next one given, {}, starts after row {}: \
                         the archive of rows {}–{} is missing",
                        before_file.display(),
                        before.end.seq,
                        after_file.display(),
                        after.start.seq,
                        before.end.seq + 1,
                        after.start.seq
                    )
                } else {
                    format!(
                        "archives {} and {} overlap or do not meet at row {} (its MAC differs): \
                         they are not of one chain",
                        before_file.display(),
                        after_file.display(),
                        after.start.seq
                    )
                };
                return Ok(super::LogVerdict::broken(
                    None,
                    before.end.seq.min(after.start.seq) + 1,
                    problem,
                ));
            }
        }
        let Some((last, last_file)) = spans.last() else {
            return self.verify_live(None, checkpoints, None, progress).await;
        };
        let meets = match self.archive_mark().await? {
            Mark::Archived(mark) => {
                if mark.seq() == last.end.seq && crate::crypto::ct_eq(mark.mac(), &last.end.mac) {
                    Ok(())
                } else if mark.seq() > last.end.seq {
                    Err((
                        last.end.seq + 1,
                        format!(
                            "the archives end at row {} but the live log starts after row {} (its archive \
                             mark): rows {}–{} are archived in a file not given",
                            last.end.seq,
                            mark.seq(),
                            last.end.seq + 1,
                            mark.seq()
                        ),
                    ))
                } else {
                    Err((
                        mark.seq() + 1,
                        format!(
                            "archive {} ends at row {}, which is not the live log's archive mark (row {}): \
                             it is not the archive the live log goes on from",
                            last_file.display(),
                            last.end.seq,
                            mark.seq()
                        ),
                    ))
                }
            }
            Mark::None => Err((
                1,
                format!(
                    "archive {} ends at row {} but nothing of this log was archived: it is not \
                     the archive the live log goes on from",
                    last_file.display(),
                    last.end.seq
                ),
            )),
            Mark::Forged { seq } => Err((
                seq,
                format!("the archive mark (row {seq}) does not match its signature"),
            )),
        };
        if let Err((seq, problem)) = meets {
            return Ok(super::LogVerdict::broken(None, seq, problem));
        }
        let archived = ArchivedRows { macs };
        let mut verdict = self
            .verify_live(None, checkpoints, Some(&archived), progress)
            .await?;
        let first = spans.first().map_or(1, |(span, _)| span.start.seq + 1);
        verdict.verified_from = (first > 1).then_some(first);
        verdict.archives = spans
            .iter()
            .map(|(span, file)| super::ArchiveVerdict {
                file: file.display().to_string(),
                first: span.start.seq + 1,
                last: span.end.seq,
            })
            .collect();
        Ok(verdict)
    }
}
