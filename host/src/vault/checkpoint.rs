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
        Ok(chain::verify_after(self.db.reader(), &self.chain, &checkpoint.head()).await?)
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
    /// The first row an incremental verify checked (`audit verify
    /// --since-checkpoint`): the rows before it were trusted to the
    /// checkpoint. Absent for a whole-chain verify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_from: Option<i64>,
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

    /// Verifies the rows after `from` (trusted as it is), returning the
    /// verdict and the last row found good: one step of `serve`'s
    /// background verify.
    pub async fn verify_walk(
        &self,
        from: &chain::Head,
    ) -> Result<(VerifyReport, chain::Head), VaultError> {
        Ok(chain::verify_walk(self.db.reader(), &self.chain, from, &mut |_| {}).await?)
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
        let from = since.map_or_else(chain::Head::start, Checkpoint::head);
        let report =
            chain::verify_reporting(self.db.reader(), &self.chain, &from, progress).await?;
        let rows = match report {
            VerifyReport::Intact { rows } => rows,
            VerifyReport::Broken { seq, problem } => {
                return Ok(LogVerdict {
                    intact: false,
                    rows: None,
                    verified_from: since.map(|c| c.seq() + 1),
                    broken_at: Some(seq),
                    problem: Some(problem),
                    checkpoints: Vec::new(),
                })
            }
        };
        let checkpoints: Vec<&Checkpoint> = since.into_iter().chain(checkpoints).collect();
        let mut verdicts = Vec::with_capacity(checkpoints.len());
        for checkpoint in checkpoints {
            let (verdict, log_ends) = match self.anchor(rows, checkpoint).await? {
                Anchor::Reached => (Reach::Reached, None),
                Anchor::CutOff { log_ends } => (Reach::CutOff, Some(log_ends)),
                Anchor::Diverged => (Reach::Diverged, None),
            };
            verdicts.push(CheckpointVerdict {
                seq: checkpoint.seq(),
                made_at: checkpoint.time_ms(),
                verdict,
                log_ends,
            });
        }
        Ok(LogVerdict {
            intact: verdicts.iter().all(|v| v.verdict == Reach::Reached),
            rows: Some(rows),
            verified_from: since.map(|c| c.seq() + 1),
            broken_at: None,
            problem: None,
            checkpoints: verdicts,
        })
    }
}
