//! `keyward audit tail|verify|export|checkpoint`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Subcommand;

use super::remote::{self, Remote, RemoteError};
use super::{checkpoint_file, exit, open_vault, Cli};
use crate::audit::chain::{LogRow, VerifyProgress};
use crate::audit::checkpoint::{Checkpoint, SignedCheckpoint};
use crate::vault::{LogVerdict, Reach, Vault};

/// Access-log commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the newest access-log rows.
    Tail {
        /// How many rows.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: i64,
        /// Keep printing new rows as they are appended.
        #[arg(short, long)]
        follow: bool,
        /// JSON lines instead of text (as --output json).
        #[arg(long)]
        json: bool,
    },
    /// Recompute the hash chain; print OK or the first bad row (exit 4).
    Verify {
        /// Also check that the log still reaches this signed checkpoint
        /// (made by `audit checkpoint`): its row is there with its MAC, so
        /// no tail was cut off. Repeatable. A checkpoint that is modified,
        /// unreadable or another store's is refused (exit 1).
        #[arg(long, value_name = "FILE")]
        checkpoint: Vec<PathBuf>,
        /// Verify only the rows after this signed checkpoint, trusting it
        /// for the rows up to it (which must still be in the log, with the
        /// MAC it recorded): a verify that costs what was appended since.
        /// Local only.
        #[arg(long, value_name = "FILE", conflicts_with = "archive")]
        since_checkpoint: Option<PathBuf>,
        /// Verify these archive files (made by `audit archive`) and the
        /// live log as one chain: each archive's signed ends and rows, the
        /// archives meeting end to start, the last one meeting the live
        /// log's archive mark. Repeatable, in any order. Local only.
        #[arg(long, value_name = "FILE", num_args = 1..)]
        archive: Vec<PathBuf>,
    },
    /// Move the log's rows older than a date to a new archive file (gzip
    /// JSON lines, both ends signed) and delete them from the database.
    /// The rows' chain is checked first (a broken log is not archived),
    /// the run is itself logged (an `archive` row), and `audit verify
    /// --archive FILE…` verifies the archives and the live log as one
    /// chain. Local only.
    Archive {
        /// Archive the rows written before this: a date (`2026-11-01`,
        /// midnight UTC), an RFC 3339 time, or an age (`90d`, `12h`).
        #[arg(long, value_name = "DATE|AGE", value_parser = parse_before)]
        before: i64,
        /// The archive file to write; it must not exist.
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// Append the log's rows to FILE as JSON lines (as `tail --json`), for
    /// a log shipper or a SIEM: resumes after the last row already there
    /// (or recorded in FILE.seq, which survives a rotation of FILE), so a
    /// restart neither loses nor repeats a row. Each batch is flushed to
    /// the disk before the next is read.
    Export {
        /// The file to append to (created 0600).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        /// Keep exporting new rows as they are appended (polled every
        /// 500 ms); without it, stop at the log's current end.
        #[arg(short, long)]
        follow: bool,
    },
    /// Print a signed checkpoint of the log's head (one JSON line), to keep
    /// outside the database for `audit verify --checkpoint`.
    Checkpoint {
        /// Write it to FILE (replaced atomically) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

pub(super) async fn run(cli: &Cli, command: &Command) -> anyhow::Result<ExitCode> {
    if let Some(remote) = Remote::from_cli(cli)? {
        return run_remote(cli, &remote, command).await;
    }
    let vault = open_vault(cli).await?;
    match command {
        Command::Tail {
            lines,
            follow,
            json,
        } => {
            let rows = vault.log_tail((*lines).clamp(0, 100_000)).await?;
            let mut last = print_rows(&rows, cli.json(*json))?;
            if last == 0 {
                last = vault.log_head().await?.seq;
            }
            if *follow {
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let rows = vault.log_after(last, 1000).await?;
                    if let Some(seq) = rows.last().map(|r| r.seq) {
                        print_rows(&rows, cli.json(*json))?;
                        last = seq;
                    }
                }
            }
        }
        Command::Verify {
            checkpoint,
            since_checkpoint,
            archive,
        } => {
            return verify(
                &vault,
                checkpoint,
                since_checkpoint.as_deref(),
                archive,
                cli.json(false),
            )
            .await
        }
        Command::Archive { before, to } => {
            let access = crate::audit::Access::new(super::accessor(), "keyward audit archive")?;
            match vault
                .archive_before(*before, &|_, _| to.clone(), &access)
                .await?
            {
                Some(done) => println!(
                    "archived rows {}–{} to {} (sha256 {}); deleted from the database",
                    done.first,
                    done.last,
                    done.path.display(),
                    done.sha256
                ),
                None => println!(
                    "nothing to archive: no row still in the database is older than {}",
                    format_ms(*before)
                ),
            }
        }
        Command::Export { to, follow } => {
            let mut export = super::audit_export::Export::open(to)?;
            loop {
                let rows = vault.log_after(export.last, EXPORT_BATCH).await?;
                if rows.is_empty() {
                    if !*follow {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                export.append(&rows)?;
            }
        }
        Command::Checkpoint { out } => {
            let checkpoint = vault.checkpoint().await?;
            match out {
                Some(path) => checkpoint_file::write(path, &checkpoint).with_context(|| {
                    format!("cannot write the checkpoint to {}", path.display())
                })?,
                None => println!("{}", checkpoint.to_line()),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The access-log commands through a server (`KEYWARD_ADDR`).
async fn run_remote(cli: &Cli, remote: &Remote, command: &Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Tail {
            lines,
            follow,
            json,
        } => {
            // Asked for at least one row, to learn where the log ends.
            let limit = (*lines).clamp(1, crate::http::MAX_LOG_ROWS);
            let answer = remote
                .get("/access-log", &[("limit", limit.to_string())])
                .await?;
            let rows: Vec<LogRow> = remote::rows(&answer["rows"])?;
            let shown = &rows[rows.len().saturating_sub((*lines).max(0) as usize)..];
            print_rows(shown, cli.json(*json))?;
            let mut last = answer["head_seq"]
                .as_i64()
                .ok_or_else(|| RemoteError::BadAnswer("no head_seq in the answer".into()))?;
            if let Some(seq) = rows.last().map(|r| r.seq) {
                last = last.max(seq);
            }
            if *follow {
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let answer = remote
                        .get("/access-log", &[("after", last.to_string())])
                        .await?;
                    let rows: Vec<LogRow> = remote::rows(&answer["rows"])?;
                    if let Some(seq) = rows.last().map(|r| r.seq) {
                        print_rows(&rows, cli.json(*json))?;
                        last = seq;
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify {
            since_checkpoint: Some(_),
            ..
        } => Err(RemoteError::LocalOnly("audit verify --since-checkpoint").into()),
        Command::Verify { archive, .. } if !archive.is_empty() => {
            Err(RemoteError::LocalOnly("audit verify --archive").into())
        }
        Command::Archive { .. } => Err(RemoteError::LocalOnly("audit archive").into()),
        Command::Verify {
            checkpoint,
            since_checkpoint: None,
            ..
        } => {
            let mut lines = Vec::with_capacity(checkpoint.len());
            for path in checkpoint {
                lines.push(
                    std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read checkpoint {}", path.display()))?,
                );
            }
            let answer = remote
                .post(
                    "/access-log/verify",
                    &[],
                    &serde_json::json!({"checkpoints": lines}),
                )
                .await?;
            let verdict: LogVerdict = remote::typed(answer)?;
            if verdict.checkpoints.len() != checkpoint.len() {
                return Err(RemoteError::BadAnswer(format!(
                    "{} checkpoint verdicts for {} checkpoints",
                    verdict.checkpoints.len(),
                    checkpoint.len()
                ))
                .into());
            }
            print_verdict(
                &verdict,
                checkpoint,
                cli.json(false),
                " (verified by the server)",
            )
        }
        Command::Checkpoint { .. } => Err(RemoteError::LocalOnly("audit checkpoint").into()),
        Command::Export { to, follow } => {
            let mut export = super::audit_export::Export::open(to)?;
            loop {
                let answer = remote
                    .get(
                        "/access-log",
                        &[
                            ("after", export.last.to_string()),
                            ("limit", EXPORT_BATCH.to_string()),
                        ],
                    )
                    .await?;
                let rows: Vec<LogRow> = remote::rows(&answer["rows"])?;
                if rows.is_empty() {
                    if !*follow {
                        return Ok(ExitCode::SUCCESS);
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                export.append(&rows)?;
            }
        }
    }
}

/// `audit verify [--checkpoint FILE]… [--since-checkpoint FILE]`: every
/// checkpoint is checked before the log is read, so a refused one never
/// looks like a verdict on the log. A walk that takes a while reports its
/// progress and speed on stderr (stdout keeps the one verdict).
async fn verify(
    vault: &Vault,
    files: &[PathBuf],
    since: Option<&Path>,
    archives: &[PathBuf],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let checkpoints = files
        .iter()
        .map(|path| read_checkpoint(vault, path))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let since_checkpoint = since.map(|path| read_checkpoint(vault, path)).transpose()?;
    let started = std::time::Instant::now();
    let mut last_report = started;
    let mut progress = |p: VerifyProgress| {
        if last_report.elapsed() >= PROGRESS_EVERY {
            last_report = std::time::Instant::now();
            let done = p.seq - p.from;
            eprintln!(
                "verified row {} of {} ({:.0} rows/s)",
                p.seq,
                p.to,
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
    };
    let verdict = if archives.is_empty() {
        vault
            .verify_since(since_checkpoint.as_ref(), &checkpoints, &mut progress)
            .await?
    } else {
        vault
            .verify_with_archives(archives, &checkpoints, &mut progress)
            .await?
    };
    let took = started.elapsed();
    if took >= PROGRESS_EVERY {
        if let Some(rows) = verdict.rows {
            let walked = rows - verdict.verified_from.map_or(0, |f| f - 1);
            eprintln!(
                "verified {walked} rows in {:.1} s ({:.0} rows/s)",
                took.as_secs_f64(),
                walked as f64 / took.as_secs_f64()
            );
        }
    }
    let mut files = files.to_vec();
    if let Some(path) = since {
        // The verdict lists the since-checkpoint first.
        files.insert(0, path.to_owned());
    }
    print_verdict(&verdict, &files, json, "")
}

/// `--before`: a date (midnight UTC), an RFC 3339 time, or an age before
/// now, as Unix ms.
fn parse_before(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(age) = crate::text::parse_duration(text) {
        return Ok(crate::store::now_ms().saturating_sub(age.as_millis() as i64));
    }
    let time = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_owned()
    };
    humantime::parse_rfc3339_weak(&time)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .ok_or_else(|| {
            format!("{text:?} is not a date (2026-11-01), an RFC 3339 time or an age (90d, 12h)")
        })
}

/// Rows read and appended per batch by `audit export`.
const EXPORT_BATCH: i64 = 1000;

/// A verify that runs longer than this reports progress on stderr.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// The verdict as text (the first broken finding, or OK lines) or as one
/// JSON object; exit 4 unless intact. `files` are the checkpoints' paths,
/// in the verdict's order.
fn print_verdict(
    verdict: &LogVerdict,
    files: &[PathBuf],
    json: bool,
    by: &str,
) -> anyhow::Result<ExitCode> {
    let code = if verdict.intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::AUDIT_BROKEN)
    };
    if json {
        println!("{}", serde_json::to_string(verdict)?);
        return Ok(code);
    }
    let Some(rows) = verdict.rows else {
        println!(
            "BROKEN at row {}: {}",
            verdict.broken_at.unwrap_or_default(),
            verdict.problem.as_deref().unwrap_or("(no reason given)")
        );
        return Ok(code);
    };
    let mut reached = Vec::new();
    for (path, v) in files.iter().zip(&verdict.checkpoints) {
        let (seq, made, path) = (v.seq, format_ms(v.made_at), path.display());
        match v.verdict {
            Reach::Reached => reached.push(format!(
                "OK: checkpoint {path} (row {seq}, made {made}) is in the log (now at row {rows})"
            )),
            Reach::CutOff => {
                let ends = v.log_ends.unwrap_or_default();
                println!(
                    "BROKEN at row {}: the log ends at row {ends} but checkpoint {path} (made {made}) \
                     records row {seq}: rows were cut off the end and the chain head rewritten to match",
                    ends + 1
                );
                return Ok(code);
            }
            Reach::Diverged => {
                println!(
                    "BROKEN at row {seq}: row {seq} is not the row checkpoint {path} (made {made}) \
                     recorded (its MAC differs): the log was cut back and written again after the checkpoint"
                );
                return Ok(code);
            }
            Reach::Archived => reached.push(format!(
                "OK: checkpoint {path} (row {seq}, made {made}) is before the archive mark: \
                 its row is archived (give the archive with --archive to check it)"
            )),
        }
    }
    if let Some(last) = verdict.archives.last() {
        let first = verdict.archives.first().map_or(1, |a| a.first);
        println!(
            "OK: rows {first}–{rows} verified as one chain: {} archive(s) to row {}, then the live log{by}",
            verdict.archives.len(),
            last.last
        );
        for archive in &verdict.archives {
            println!(
                "OK: archive {} holds rows {}–{}",
                archive.file, archive.first, archive.last
            );
        }
    } else {
        match (verdict.verified_from, verdict.archived_to) {
            (Some(from), Some(mark)) if from == mark + 1 => println!(
                "OK: rows {from}–{rows} verified after the archive mark at row {mark} \
                 (rows 1–{mark} are archived: check them with --archive), chain intact{by}"
            ),
            (Some(from), _) => println!(
                "OK: rows {from}–{rows} verified after the checkpoint at row {}, chain intact{by}",
                from - 1
            ),
            (None, _) => println!("OK: {rows} rows, chain intact{by}"),
        }
    }
    for line in reached {
        println!("{line}");
    }
    Ok(code)
}

fn read_checkpoint(vault: &Vault, path: &Path) -> anyhow::Result<Checkpoint> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read checkpoint {}", path.display()))?;
    SignedCheckpoint::parse(&text)
        .and_then(|signed| vault.check_checkpoint(&signed))
        .with_context(|| format!("checkpoint {} is refused", path.display()))
}

fn print_rows(rows: &[LogRow], json: bool) -> anyhow::Result<i64> {
    let mut out = std::io::stdout().lock();
    for row in rows {
        if json {
            writeln!(out, "{}", serde_json::to_string(row)?)?;
        } else {
            writeln!(
                out,
                "{:>6} {} {:<8} {:<8} {}/{} by {} — {}{}",
                row.seq,
                format_ms(row.at),
                row.action,
                row.outcome,
                row.scope,
                row.name,
                row.accessor,
                row.reason,
                if row.detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", row.detail)
                }
            )?;
        }
    }
    out.flush()?;
    Ok(rows.last().map_or(0, |r| r.seq))
}

/// RFC 3339 (UTC, milliseconds) for a Unix-milliseconds timestamp.
pub(super) fn format_ms(ms: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}
