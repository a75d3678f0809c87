//! Signed checkpoints of the access log's head, and checking the log
//! against them (see `audit::checkpoint`).

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
