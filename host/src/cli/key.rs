//! `keyward key generate|rotate`.

use std::process::ExitCode;

use anyhow::bail;
use clap::Subcommand;

use super::{accessor, open_vault_with, Cli};
use crate::audit::Access;
use crate::crypto::MasterKey;
use crate::vault::NewKey;

/// Master-key commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print a fresh random master key (base64 of 32 bytes) and exit.
    Generate,
    /// Adopt KEYWARD_MASTER_KEY as the key this store rotates to, while the
    /// store's key is in KEYWARD_MASTER_KEY_PREVIOUS. Until a new key is
    /// adopted, every command refuses it (exit 78), so a mistyped key never
    /// seals anything; once one is adopted, any other new key is refused.
    Adopt {
        /// Adopt this key in place of a different one adopted earlier
        /// (values sealed under that one then need it as a previous key).
        #[arg(long)]
        replace: bool,
    },
    /// Re-seal every stored value under KEYWARD_MASTER_KEY, opening the old
    /// ones with KEYWARD_MASTER_KEY_PREVIOUS (adopting the new key first if
    /// it is not yet). Safe to stop and run again.
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
    let max_rows = match command {
        Command::Generate => return generate(),
        Command::Adopt { replace } => return adopt(cli, *replace).await,
        Command::Rotate { max_rows } => max_rows,
    };
    let vault = open_vault_with(cli, NewKey::Adopt { replace: false }).await?;
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

async fn adopt(cli: &Cli, replace: bool) -> anyhow::Result<ExitCode> {
    let vault = open_vault_with(cli, NewKey::Adopt { replace }).await?;
    let current = vault.keyring().current_id().to_string();
    let canary =
        crate::store::keyring::get(vault.db().reader(), crate::store::keyring::CANARY).await?;
    if canary.is_none_or(|c| c.key_id == current) {
        println!("key {current} is already this store's key: nothing to adopt");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "key {} adopted: hosts may now start with it as KEYWARD_MASTER_KEY (the old key in \
         KEYWARD_MASTER_KEY_PREVIOUS); run `keyward key rotate` to re-seal under it",
        vault.keyring().current_id()
    );
    Ok(ExitCode::SUCCESS)
}
