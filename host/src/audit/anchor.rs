//! Checking the log against a trusted checkpoint: does it still hold the
//! row the checkpoint recorded, with the same MAC?

use sqlx::Row;

use crate::store::Reader;

use super::checkpoint::Checkpoint;

/// How the log stands against one checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Anchor {
    /// The log holds the checkpoint's row with its MAC: everything up to
    /// that row is what was there when the checkpoint was made.
    Reached,
    /// The log ends before the checkpoint's row: its tail was cut off (and,
    /// if the chain verifies, the head rewritten to match).
    CutOff {
        /// The last row the log has.
        log_ends: i64,
    },
    /// The log has a row with that seq but another MAC: it was cut back and
    /// written again, or replaced by another history.
    Diverged,
}

/// Checks `checkpoint` against the log, whose chain was verified up to row
/// `verified_to` (see [`super::chain::verify`]).
pub async fn check(
    db: Reader<'_>,
    verified_to: i64,
    checkpoint: &Checkpoint,
) -> Result<Anchor, sqlx::Error> {
    if checkpoint.seq() > verified_to {
        return Ok(Anchor::CutOff {
            log_ends: verified_to,
        });
    }
    // Row 0 is no row: it is where the chain starts.
    let mac = if checkpoint.seq() == 0 {
        Some(super::chain::Head::start().mac)
    } else {
        sqlx::query("SELECT mac FROM secret_access_log WHERE seq = $1")
            .bind(checkpoint.seq())
            .fetch_optional(db)
            .await?
            .map(|row| row.try_get::<Vec<u8>, _>("mac"))
            .transpose()?
    };
    Ok(match mac {
        None => Anchor::CutOff {
            log_ends: checkpoint.seq() - 1,
        },
        Some(mac) if crate::crypto::ct_eq(&mac, checkpoint.mac()) => Anchor::Reached,
        Some(_) => Anchor::Diverged,
    })
}
