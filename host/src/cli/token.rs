//! `keyward token create|list|revoke`: API tokens for the HTTP service.

use std::io::Write;
use std::process::ExitCode;

use clap::Subcommand;

use super::{open_vault, Cli};
use crate::auth::{Role, Tokens};

/// Token commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a token and print it once (stdout, nothing else on it). Only
    /// its SHA-256 is stored: it cannot be shown again.
    Create {
        /// What it is for (1–64 of letters, digits, space, . _ -).
        #[arg(long)]
        name: String,
        /// operator (everything) or resolver (render and read metadata).
        #[arg(long)]
        role: String,
    },
    /// List tokens (never the tokens themselves): id, name, role, created,
    /// last used, revoked.
    List {
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id (the 16 hex digits after `kw_`).
    Revoke {
        /// The token's id.
        id: String,
    },
}

pub(super) async fn run(cli: &Cli, command: &Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Create { name, role } => {
            let role = Role::parse(role)?;
            crate::auth::token::check_name(name)?;
            let vault = open_vault(cli).await?;
            let (row, token) = Tokens::new(vault.db().clone()).create(name, role).await?;
            eprintln!(
                "created {} token {:?} (id {}). It is shown once; store it now.",
                row.role, row.name, row.id
            );
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", token.expose())?;
            out.flush()?;
        }
        Command::List { json } => {
            let vault = open_vault(cli).await?;
            let rows = Tokens::new(vault.db().clone()).list().await?;
            let mut out = std::io::stdout().lock();
            if *json {
                for row in &rows {
                    writeln!(out, "{}", serde_json::to_string(row)?)?;
                }
            } else {
                let when =
                    |ms: Option<i64>| ms.map_or_else(|| "-".to_owned(), super::audit::format_ms);
                writeln!(
                    out,
                    "{:<16} {:<8} {:<24} {:<24} {:<24} NAME",
                    "ID", "ROLE", "CREATED", "LAST USED", "REVOKED"
                )?;
                for row in &rows {
                    writeln!(
                        out,
                        "{:<16} {:<8} {:<24} {:<24} {:<24} {}",
                        row.id,
                        row.role,
                        super::audit::format_ms(row.created_at),
                        when(row.last_used_at),
                        when(row.revoked_at),
                        row.name
                    )?;
                }
            }
        }
        Command::Revoke { id } => {
            let vault = open_vault(cli).await?;
            Tokens::new(vault.db().clone()).revoke(id).await?;
            println!("revoked token {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
