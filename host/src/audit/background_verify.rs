//! `serve`'s background verify: the access log's chain checked as it grows,
//! a walk over the rows appended since the last one every few seconds, so
//! an edit, a gap or a cut-off tail is noticed while the server runs, not
//! only when an operator runs `audit verify`. The verified head and any
//! break are in `/metrics` and on the dashboard's access-log page.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::chain::{Head, VerifyReport};
use super::checkpoint::Checkpoint;
use crate::vault::Vault;

/// Seconds between two walks unless `serve --audit-verify-every` says.
pub const DEFAULT_EVERY_SECONDS: u64 = 10;

/// Verifies the log every `every`, each time from the last row found good.
/// The first walk starts after `start` (a checked checkpoint: the rows up
/// to it are trusted, as with `audit verify --since-checkpoint`), or from
/// the first row — on a long log a walk of the whole chain in the
/// background, a page of 2,000 rows at a time.
pub fn spawn(
    vault: Vault,
    start: Option<Checkpoint>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let stats = vault.log_stats();
        let mut from = start.as_ref().map_or_else(Head::start, Checkpoint::head);
        stats.verified_seq.store(from.seq, Ordering::Relaxed);
        let mut broken: Option<i64> = None;
        let mut failing = false;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (report, good) = match vault.verify_walk(&from).await {
                Ok(done) => {
                    failing = false;
                    done
                }
                Err(error) => {
                    if !failing {
                        tracing::warn!(%error, "the background verify of the access log could not read it; retrying");
                    }
                    failing = true;
                    continue;
                }
            };
            from = good;
            stats.verified_seq.store(from.seq, Ordering::Relaxed);
            match report {
                VerifyReport::Intact { .. } => {
                    stats.broken_at.store(0, Ordering::Relaxed);
                    if let Some(seq) = broken.take() {
                        tracing::info!(
                            was_broken_at = seq,
                            "the access log's chain verifies again"
                        );
                    }
                }
                VerifyReport::Broken { seq, problem } => {
                    stats.broken_at.store(seq, Ordering::Relaxed);
                    if broken != Some(seq) {
                        tracing::error!(seq, %problem, "the access log's chain is broken (background verify)");
                        broken = Some(seq);
                    }
                }
            }
        }
    })
}
