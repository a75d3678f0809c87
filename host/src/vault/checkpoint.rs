//! Signed checkpoints of the access log's head, and checking the log
//! against them (see `audit::checkpoint`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Vault, VaultError};
use crate::audit::anchor::{self, Anchor};
use crate::audit::chain::{self, VerifyReport};
use crate::audit::checkpoint::{Checkpoint, CheckpointError, SignedCheckpoint};
use crate::store::now_ms;

impl Vault {
    /// A signed checkpoint of the access log's head as it is now. Reads no
    /// value and writes nothing, so it is not itself logged.
    pub async fn checkpoint(&self) -> Result<SignedCheckpoint, VaultError> {
        let head = chain::head(self.db.reader()).await?;
        let mac: [u8; 32] = head.mac.as_slice().try_into().map_err(|_| {
            VaultError::Db(sqlx::Error::Decode(
                format!(
                    "audit_head.mac is {} bytes, not 32: the head row is damaged",
                    head.mac.len()
                )
                .into(),
            ))
        })?;
        Ok(self.checkpoints.sign(head.seq, mac, now_ms()))
    }

    /// `signed`, if it is a checkpoint of this store's log with a valid
    /// signature.
    pub fn check_checkpoint(
        &self,
        signed: &SignedCheckpoint,
    ) -> Result<Checkpoint, CheckpointError> {
        self.checkpoints.check(signed)
    }

    /// How the log stands against `checkpoint`, given that
    /// [`Vault::verify_log`] found the chain intact up to row `verified_to`.
    pub async fn anchor(
        &self,
        verified_to: i64,
        checkpoint: &Checkpoint,
    ) -> Result<Anchor, VaultError> {
        Ok(anchor::check(self.db.reader(), verified_to, checkpoint).await?)
    }

    /// Verifies only the rows after `checkpoint`, trusting it for what came
    /// before: the incremental verify a signed checkpoint makes possible.
    pub async fn verify_log_since(
        &self,
        checkpoint: &Checkpoint,
    ) -> Result<VerifyReport, VaultError> {
        Ok(chain::verify_after(&self.db, &self.chain, &checkpoint.head()).await?)
    }
}

/// The verdict on the access log and on each checkpoint it was checked
/// against: what `POST /access-log/verify` answers and `keyward audit
/// verify --output json` prints.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq)]
pub struct LogVerdict {
    /// The chain verifies and reaches every checkpoint.
    pub intact: bool,
    /// Rows verified (absent when the chain is broken): the last row's seq.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<i64>,
    /// The first row verified in the database when it is not row 1: the
    /// rows before it were trusted to a checkpoint (`audit verify
    /// --since-checkpoint`) or to the archive mark. Absent when the walk
    /// started at row 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_from: Option<i64>,
    /// The archive mark: rows up to it were moved to archive files and are
    /// no longer in the database (absent if nothing was archived).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived_to: Option<i64>,
    /// The archive files verified with the live log (`audit verify
    /// --archive`), in chain order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub archives: Vec<ArchiveVerdict>,
    /// The first row whose MAC or link is wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broken_at: Option<i64>,
    /// What is wrong with that row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// One verdict per checkpoint, in the order given (none when the chain
    /// itself is broken).
    #[serde(default)]
    pub checkpoints: Vec<CheckpointVerdict>,
}

/// One archive file that verified: the rows it holds.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq)]
pub struct ArchiveVerdict {
    /// The file, as given.
    pub file: String,
    /// Its first row.
    pub first: i64,
    /// Its last row.
    pub last: i64,
}

/// How the log stands against one checkpoint.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq)]
pub struct CheckpointVerdict {
    /// The row the checkpoint recorded as the head.
    pub seq: i64,
    /// When it was made, Unix ms.
    pub made_at: i64,
    pub verdict: Reach,
    /// For `cut_off`: the last row the log has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_ends: Option<i64>,
}

/// [`Anchor`] on the wire.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Reach {
    /// The log holds the checkpoint's row with its MAC.
    Reached,
    /// The log ends before the checkpoint's row: its tail was cut off.
    CutOff,
    /// The log's row at that seq has another MAC: cut back and rewritten.
    Diverged,
    /// The row was archived (it is before the archive mark) and no archive
    /// holding it was given: it can be checked with `audit verify --archive`.
    Archived,
}

impl Vault {
    /// Verifies the whole chain, then the log against each of
    /// `checkpoints` (already checked with [`Vault::check_checkpoint`]).
    pub async fn verify_against(
        &self,
        checkpoints: &[Checkpoint],
    ) -> Result<LogVerdict, VaultError> {
        self.verify_since(None, checkpoints, &mut |_| {}).await
    }

    /// Verifies the rows after `from` (trusted as it is; after the archive
    /// mark if that is further on), returning the verdict and the last row
    /// found good: one step of `serve`'s background verify.
    pub async fn verify_walk(
        &self,
        from: &chain::Head,
    ) -> Result<(VerifyReport, chain::Head), VaultError> {
        let from = match self.live_start(from.clone()).await? {
            Ok(from) => from,
            Err(broken) => return Ok((broken, from.clone())),
        };
        Ok(chain::verify_walk(&self.db, &self.chain, &from, &mut |_| {}).await?)
    }

    /// [`Vault::verify_against`], verifying the chain only after `since`
    /// (a checkpoint already checked with [`Vault::check_checkpoint`],
    /// trusted for the rows up to it, and itself one of the checkpoints the
    /// log must still reach), and telling `progress` after every page.
    pub async fn verify_since(
        &self,
        since: Option<&Checkpoint>,
        checkpoints: &[Checkpoint],
        progress: &mut (dyn FnMut(chain::VerifyProgress) + Send),
    ) -> Result<LogVerdict, VaultError> {
        self.verify_live(since, checkpoints, None, progress).await
    }

    /// The live log's part of every verify: the chain from `since` (or
    /// the start), but never from before the archive mark, whose rows are
    /// no longer in the database; then each checkpoint. A checkpoint of an
    /// archived row is checked against `archived` (the rows of the archives
    /// given, already verified), or else reported [`Reach::Archived`].
    pub(super) async fn verify_live(
        &self,
        since: Option<&Checkpoint>,
        checkpoints: &[Checkpoint],
        archived: Option<&super::archive::ArchivedRows>,
        progress: &mut (dyn FnMut(chain::VerifyProgress) + Send),
    ) -> Result<LogVerdict, VaultError> {
        let wanted = since.map_or_else(chain::Head::start, Checkpoint::head);
        let mark = self.archive_mark().await?;
        let from = match mark.start_after(wanted) {
            Ok(from) => from,
            Err(VerifyReport::Broken { seq, problem }) => {
                return Ok(LogVerdict::broken(None, seq, problem))
            }
            Err(VerifyReport::Intact { .. }) => unreachable!("start_after only breaks"),
        };
        let mark = match mark {
            super::archive::Mark::Archived(mark) => Some(mark),
            super::archive::Mark::None | super::archive::Mark::Forged { .. } => None,
        };
        let verified_from = (from.seq > 0).then_some(from.seq + 1);
        let report = chain::verify_reporting(&self.db, &self.chain, &from, progress).await?;
        let rows = match report {
            VerifyReport::Intact { rows } => rows,
            VerifyReport::Broken { seq, problem } => {
                return Ok(LogVerdict::broken(verified_from, seq, problem))
            }
        };
        let checkpoints: Vec<&Checkpoint> = since.into_iter().chain(checkpoints).collect();
        let mut verdicts = Vec::with_capacity(checkpoints.len());
        for checkpoint in checkpoints {
            let archived_mac = match &mark {
                Some(mark) if checkpoint.seq() == mark.seq() => Some(Some(mark.mac().to_vec())),
                Some(mark) if checkpoint.seq() < mark.seq() => {
                    Some(archived.and_then(|a| a.mac_of(checkpoint.seq())))
                }
                _ => None,
            };
            let (verdict, log_ends) = match archived_mac {
                Some(Some(mac)) if crate::crypto::ct_eq(&mac, checkpoint.mac()) => {
                    (Reach::Reached, None)
                }
                Some(Some(_)) => (Reach::Diverged, None),
                Some(None) => (Reach::Archived, None),
                None => match self.anchor(rows, checkpoint).await? {
                    Anchor::Reached => (Reach::Reached, None),
                    Anchor::CutOff { log_ends } => (Reach::CutOff, Some(log_ends)),
                    Anchor::Diverged => (Reach::Diverged, None),
                },
            };
            verdicts.push(CheckpointVerdict {
                seq: checkpoint.seq(),
                made_at: checkpoint.time_ms(),
                verdict,
                log_ends,
            });
        }
        Ok(LogVerdict {
            intact: verdicts
                .iter()
                .all(|v| matches!(v.verdict, Reach::Reached | Reach::Archived)),
            rows: Some(rows),
            verified_from,
            archived_to: mark.map(|m| m.seq()),
            archives: Vec::new(),
            broken_at: None,
            problem: None,
            checkpoints: verdicts,
        })
    }
}

impl LogVerdict {
    pub(super) fn broken(verified_from: Option<i64>, seq: i64, problem: String) -> LogVerdict {
        LogVerdict {
            intact: false,
            rows: None,
            verified_from,
            archived_to: None,
            archives: Vec::new(),
            broken_at: Some(seq),
            problem: Some(problem),
            checkpoints: Vec::new(),
        }
    }
}
