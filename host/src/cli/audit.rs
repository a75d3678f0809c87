//! `keyward audit tail|verify|checkpoint`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Subcommand;

use super::remote::{self, Remote, RemoteError};
use super::{checkpoint_file, exit, open_vault, Cli};
use crate::audit::anchor::Anchor;
use crate::audit::chain::LogRow;
use crate::audit::checkpoint::{Checkpoint, SignedCheckpoint};
use crate::audit::VerifyReport;
use crate::vault::Vault;

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
        /// JSON lines instead of text.
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
        return run_remote(&remote, command).await;
    }
    let vault = open_vault(cli).await?;
    match command {
        Command::Tail {
            lines,
            follow,
            json,
        } => {
            let rows = vault.log_tail((*lines).clamp(0, 100_000)).await?;
            let mut last = print_rows(&rows, *json)?;
            if last == 0 {
                last = vault.log_head().await?.seq;
            }
            if *follow {
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let rows = vault.log_after(last, 1000).await?;
                    if let Some(seq) = rows.last().map(|r| r.seq) {
                        print_rows(&rows, *json)?;
                        last = seq;
                    }
                }
            }
        }
        Command::Verify { checkpoint } => return verify(&vault, checkpoint).await,
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
async fn run_remote(remote: &Remote, command: &Command) -> anyhow::Result<ExitCode> {
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
            print_rows(shown, *json)?;
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
                        print_rows(&rows, *json)?;
                        last = seq;
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { checkpoint } => {
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
            if let Some(seq) = answer["broken_at"].as_i64() {
                println!(
                    "BROKEN at row {seq}: {}",
                    answer["problem"].as_str().unwrap_or("(no reason given)")
                );
                return Ok(ExitCode::from(exit::AUDIT_BROKEN));
            }
            let rows = answer["rows"]
                .as_i64()
                .ok_or_else(|| RemoteError::BadAnswer("no rows in the answer".into()))?;
            let verdicts = remote::array_at(&answer, "checkpoints")?;
            let mut reached = Vec::new();
            for (path, verdict) in checkpoint.iter().zip(verdicts) {
                let path = path.display();
                let seq = verdict["seq"].as_i64().unwrap_or_default();
                let made = format_ms(verdict["made_at"].as_i64().unwrap_or_default());
                match verdict["verdict"].as_str() {
                    Some("reached") => reached.push(format!(
                        "OK: checkpoint {path} (row {seq}, made {made}) is in the log (now at row {rows})"
                    )),
                    Some("cut_off") => {
                        let ends = verdict["log_ends"].as_i64().unwrap_or_default();
                        println!(
                            "BROKEN at row {}: the log ends at row {ends} but checkpoint {path} (made {made}) \
                             records row {seq}: rows were cut off the end and the chain head rewritten to match",
                            ends + 1
                        );
                        return Ok(ExitCode::from(exit::AUDIT_BROKEN));
                    }
                    Some("diverged") => {
                        println!(
                            "BROKEN at row {seq}: row {seq} is not the row checkpoint {path} (made {made}) \
                             recorded (its MAC differs): the log was cut back and written again after the checkpoint"
                        );
                        return Ok(ExitCode::from(exit::AUDIT_BROKEN));
                    }
                    other => {
                        return Err(RemoteError::BadAnswer(format!("verdict {other:?}")).into())
                    }
                }
            }
            println!("OK: {rows} rows, chain intact (verified by the server)");
            for line in reached {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Checkpoint { .. } => Err(RemoteError::LocalOnly("audit checkpoint").into()),
    }
}

/// `audit verify [--checkpoint FILE]…`: every checkpoint is checked before
/// the log is read, so a refused one never looks like a verdict on the log.
async fn verify(vault: &Vault, files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let checkpoints = files
        .iter()
        .map(|path| Ok((path, read_checkpoint(vault, path)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let rows = match vault.verify_log().await? {
        VerifyReport::Intact { rows } => rows,
        VerifyReport::Broken { seq, problem } => {
            println!("BROKEN at row {seq}: {problem}");
            return Ok(ExitCode::from(exit::AUDIT_BROKEN));
        }
    };
    let mut reached = Vec::new();
    for (path, checkpoint) in &checkpoints {
        let (seq, made) = (checkpoint.seq(), format_ms(checkpoint.time_ms()));
        let path = path.display();
        let broken = match vault.anchor(rows, checkpoint).await? {
            Anchor::Reached => {
                reached.push(format!(
                    "OK: checkpoint {path} (row {seq}, made {made}) is in the log (now at row {rows})"
                ));
                continue;
            }
            Anchor::CutOff { log_ends } => format!(
                "BROKEN at row {}: the log ends at row {log_ends} but checkpoint {path} (made {made}) \
                 records row {seq}: rows were cut off the end and the chain head rewritten to match",
                log_ends + 1
            ),
            Anchor::Diverged => format!(
                "BROKEN at row {seq}: row {seq} is not the row checkpoint {path} (made {made}) \
                 recorded (its MAC differs): the log was cut back and written again after the checkpoint"
            ),
        };
        println!("{broken}");
        return Ok(ExitCode::from(exit::AUDIT_BROKEN));
    }
    println!("OK: {rows} rows, chain intact");
    for line in reached {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
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
