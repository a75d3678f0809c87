//! `serve --audit-retain AGE --audit-archive-dir DIR`: the access log's rows
//! older than AGE moved to archive files on a schedule (`Vault::archive_before`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use crate::audit::Access;
use crate::vault::{Vault, RETENTION_ACCESSOR};

/// The longest wait between two retention runs.
const EVERY_AT_MOST: Duration = Duration::from_secs(3600);

/// The archive file for rows `first..=last` in `dir`: named by its rows, so
/// the files sort (and `audit verify --archive DIR/*.gz` takes them) in
/// chain order.
///
/// A file in `dir` that already starts at `first` is an orphan: a run that
/// was killed after placing its file and before recording it (the mark
/// would otherwise have moved past `first`). It is renamed `….orphaned`,
/// out of the way of `*.gz`, so the new archive can take its place.
pub(super) fn file_name(dir: &Path, first: i64, last: i64) -> PathBuf {
    let prefix = format!("access-log-{first:012}-");
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) && name.ends_with(".jsonl.gz") {
                let orphan = dir.join(format!("{name}.orphaned"));
                tracing::warn!(file = %entry.path().display(), "an archive file of a run that never finished; renamed .orphaned");
                let _ = std::fs::rename(entry.path(), orphan);
            }
        }
    }
    dir.join(format!("access-log-{first:012}-{last:012}.jsonl.gz"))
}

/// Creates `dir` (0700) if missing and starts the schedule: a run at once,
/// then every hour or every quarter of `age`, whichever is less. A failed
/// run (database down, disk full) is logged and tried again next time:
/// retention must never stop the serving of secrets.
pub(super) fn spawn(
    vault: Vault,
    age: Duration,
    dir: &Path,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    create_private_dir(dir)
        .with_context(|| format!("cannot create the archive folder {}", dir.display()))?;
    let every = (age / 4).clamp(Duration::from_secs(1), EVERY_AT_MOST);
    let dir = dir.to_owned();
    tracing::info!(dir = %dir.display(), retain = %crate::vault::describe_duration(age), "archiving access-log rows past retention");
    Ok(tokio::spawn(async move {
        let reason = format!(
            "older than the access log's retention ({})",
            crate::vault::describe_duration(age)
        );
        let access = Access::new(RETENTION_ACCESSOR, &reason).expect("a valid accessor and reason");
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let before = crate::store::now_ms().saturating_sub(age.as_millis() as i64);
            let name = |first, last| file_name(&dir, first, last);
            match vault.archive_before(before, &name, &access).await {
                Ok(Some(done)) => tracing::info!(
                    first = done.first,
                    last = done.last,
                    file = %done.path.display(),
                    "access-log rows archived"
                ),
                Ok(None) => {}
                Err(error) => tracing::warn!(
                    %error,
                    "cannot archive the access log's old rows now; serving goes on, retrying at the next run"
                ),
            }
        }
    }))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}
