//! `keyward audit tail|verify`.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use clap::Subcommand;

use super::{exit, open_vault, Cli};
use crate::audit::chain::LogRow;
use crate::audit::VerifyReport;

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
    Verify,
}

pub(super) async fn run(cli: &Cli, command: &Command) -> anyhow::Result<ExitCode> {
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
        Command::Verify => match vault.verify_log().await? {
            VerifyReport::Intact { rows } => println!("OK: {rows} rows, chain intact"),
            VerifyReport::Broken { seq, problem } => {
                println!("BROKEN at row {seq}: {problem}");
                return Ok(ExitCode::from(exit::AUDIT_BROKEN));
            }
        },
    }
    Ok(ExitCode::SUCCESS)
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
