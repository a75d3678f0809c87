//! Checkpoint files: `audit checkpoint --out FILE` and the ones `serve`
//! writes every `--audit-checkpoint-every` seconds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::audit::checkpoint::SignedCheckpoint;
use crate::vault::Vault;

/// Replaces `path` with `checkpoint` (one line) atomically: a reader, or a
/// shipper that copies the file off the host, sees the old checkpoint or the
/// new one, never a torn write, even across a crash.
pub(super) fn write(path: &Path, checkpoint: &SignedCheckpoint) -> std::io::Result<()> {
    let mut line = checkpoint.to_line();
    line.push('\n');
    crate::store::replace_file(path, line.as_bytes())
}

/// Writes a checkpoint to `path` now and every `every` after, for as long
/// as the server runs. A failure (database down, disk full, folder gone) is
/// logged and retried at the next tick: anchoring the log must never stop
/// or slow the serving of secrets.
pub(super) fn spawn_periodic(
    vault: Vault,
    path: PathBuf,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tracing::info!(path = %path.display(), every_s = every.as_secs(), "writing access-log checkpoints");
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(error) = write_one(&vault, &path).await {
                tracing::warn!(
                    path = %path.display(),
                    error = %format!("{error:#}"),
                    "cannot write the access-log checkpoint; serving goes on"
                );
            }
        }
    })
}

async fn write_one(vault: &Vault, path: &Path) -> anyhow::Result<()> {
    let checkpoint = vault.checkpoint().await?;
    let path = path.to_owned();
    let seq = checkpoint.seq();
    tokio::task::spawn_blocking(move || write(&path, &checkpoint)).await??;
    tracing::debug!(seq, "access-log checkpoint written");
    Ok(())
}
