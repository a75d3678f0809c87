//! `keyward key generate|rotate`.

use std::process::ExitCode;

use anyhow::bail;
use clap::Subcommand;

use super::{accessor, open_vault, Cli};
use crate::audit::Access;
use crate::crypto::MasterKey;

/// Master-key commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print a fresh random master key (base64 of 32 bytes) and exit.
    Generate,
    /// Re-seal every stored value under KEYWARD_MASTER_KEY, opening the old
    /// ones with KEYWARD_MASTER_KEY_PREVIOUS. Safe to stop and run again.
    Rotate {
        /// Stop after re-sealing this many secrets (run again to continue).
        #[arg(long, value_name = "N")]
        max_rows: Option<u64>,
    },
}

pub(super) fn generate() -> anyhow::Result<ExitCode> {
    println!("{}", MasterKey::generate().to_base64().as_str());
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn run(cli: &Cli, command: &Command) -> anyhow::Result<ExitCode> {
    let Command::Rotate { max_rows } = command else {
        return generate();
    };
    let vault = open_vault(cli).await?;
    let access = Access::new(accessor(), "master key rotation")?;
    let report = vault.rotate_master(&access, *max_rows).await?;
    println!(
        "re-sealed {} secrets under key {}; {} still sealed by earlier keys",
        report.resealed,
        vault.keyring().current_id(),
        report.remaining
    );
    for failed in &report.failed {
        eprintln!("keyward: could not open {failed}: add that key to KEYWARD_MASTER_KEY_PREVIOUS");
    }
    if !report.failed.is_empty() {
        bail!("{} secrets could not be re-sealed", report.failed.len());
    }
    if report.complete() {
        println!(
            "rotation complete: KEYWARD_MASTER_KEY_PREVIOUS is no longer needed for this store"
        );
    } else {
        println!("rotation incomplete: run `keyward key rotate` again to continue");
    }
    Ok(ExitCode::SUCCESS)
}
