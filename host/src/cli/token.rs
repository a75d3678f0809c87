//! `keyward token create|list|revoke`: API tokens for the HTTP service.

use std::io::Write;
use std::process::ExitCode;

use clap::Subcommand;

use super::remote::{self, Remote, RemoteError};
use super::{open_vault, Cli};
use crate::auth::policy::{Policy, PolicyError, PolicySpec};
use crate::auth::{Grant, Role, Tokens};
use crate::store::tokens::TokenRow;

/// A resolver token's policy on the command line. Any of these flags gives
/// the token a policy instead of the resolver preset (everything).
#[derive(clap::Args, Debug)]
pub struct PolicyArgs {
    /// What it may do, comma-separated: render, agent-token, dispatch,
    /// metadata, access-log, metrics [default with a policy: render and
    /// metadata; bound to an agent, agent-token and dispatch as well].
    #[arg(long, value_name = "CAPABILITIES", value_delimiter = ',')]
    can: Vec<String>,
    /// A SCOPE/NAME pattern it may resolve, `*` matching anything
    /// (repeatable), e.g. `agent_type:coder/*`, `global/GITHUB_*`.
    #[arg(long, value_name = "PATTERN")]
    resolve: Vec<String>,
    /// A client network it may come from, ADDRESS/PREFIX (repeatable)
    /// [default: any].
    #[arg(long, value_name = "CIDR")]
    network: Vec<String>,
    /// Bind it to this agent type: the server resolves its requests as
    /// `instance → agent_type → global` for this agent whatever they say,
    /// and its getAgentToken and dispatch work for this type only.
    #[arg(long, value_name = "NAME")]
    agent_type: Option<String>,
    /// Bind it to this instance of --agent-type as well.
    #[arg(long, value_name = "ID", requires = "agent_type")]
    instance: Option<String>,
}

impl PolicyArgs {
    /// The policy these flags describe; none when no flag is given. The
    /// rules are [`PolicySpec`]'s, shared with the dashboard's form.
    fn policy(&self) -> anyhow::Result<Option<Policy>> {
        let spec = PolicySpec {
            can: (!self.can.is_empty()).then(|| self.can.clone()),
            resolve: self.resolve.clone(),
            networks: self.network.clone(),
            agent_type: self.agent_type.clone(),
            instance: self.instance.clone(),
        };
        match spec.build() {
            // Said in the flags' own words.
            Err(PolicyError::NothingToResolve) => anyhow::bail!(
                "a policy needs --resolve PATTERN (what it may resolve) or --agent-type"
            ),
            other => Ok(other?),
        }
    }
}

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
        /// Refuse the token after this long: a number and a unit, s, m, h
        /// or d (e.g. 90d, 12h); at most ten years [default: never]. An
        /// expired token is refused like a revoked one.
        #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
        ttl: Option<std::time::Duration>,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// List tokens (never the tokens themselves): id, name, role, created,
    /// last used, expires, revoked.
    List {
        /// JSON lines instead of a table (as --output json).
        #[arg(long)]
        json: bool,
    },
    /// Give a token a new value (same id, name, role and expiry) and print
    /// it once; the old value is refused once the grace period is over.
    Rotate {
        /// The token's id.
        id: String,
        /// How long the old value stays accepted, so its users can switch:
        /// a number and s, m, h or d; at most 7d [default: 0s, refused at
        /// once].
        #[arg(long, value_name = "DURATION", value_parser = parse_grace, default_value = "0s")]
        grace: std::time::Duration,
    },
    /// Revoke a token by its id (the 16 hex digits after `kw_`).
    Revoke {
        /// The token's id.
        id: String,
    },
}

pub(super) async fn run(cli: &Cli, command: &Command) -> anyhow::Result<ExitCode> {
    if let Some(remote) = Remote::from_cli(cli)? {
        return run_remote(cli, &remote, command).await;
    }
    match command {
        Command::Create {
            name,
            role,
            ttl,
            policy,
        } => {
            let role = Role::parse(role)?;
            crate::auth::token::check_name(name)?;
            let policy = policy.policy()?;
            let vault = open_vault(cli).await?;
            let grant = Grant { ttl: *ttl, policy };
            let (row, token) = Tokens::new(vault.db().clone())
                .create_with(name, role, grant)
                .await?;
            let expiry = row.expires_at.map_or_else(
                || "it does not expire".to_owned(),
                |at| format!("it expires {}", super::audit::format_ms(at)),
            );
            eprintln!(
                "created {} token {:?} (id {}); {expiry}. It is shown once; store it now.",
                row.role, row.name, row.id
            );
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", token.expose())?;
            out.flush()?;
        }
        Command::List { json } => {
            let vault = open_vault(cli).await?;
            let rows = Tokens::new(vault.db().clone()).list().await?;
            print_list(&rows, cli.json(*json))?;
        }
        Command::Rotate { id, grace } => {
            let vault = open_vault(cli).await?;
            let (row, token, until) = Tokens::new(vault.db().clone()).rotate(id, *grace).await?;
            let old = until.map_or_else(
                || "the old value is refused from now on".to_owned(),
                |at| {
                    format!(
                        "the old value is accepted until {}",
                        super::audit::format_ms(at)
                    )
                },
            );
            eprintln!(
                "rotated {} token {:?} (id {}); {old}. The new value is shown once; store it now.",
                row.role, row.name, row.id
            );
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", token.expose())?;
            out.flush()?;
        }
        Command::Revoke { id } => {
            let vault = open_vault(cli).await?;
            Tokens::new(vault.db().clone()).revoke(id).await?;
            println!("revoked token {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The token commands through a server (`KEYWARD_ADDR`, an operator token).
async fn run_remote(cli: &Cli, remote: &Remote, command: &Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Create {
            name,
            role,
            ttl,
            policy,
        } => {
            Role::parse(role)?;
            crate::auth::token::check_name(name)?;
            let policy = policy.policy()?;
            let mut answer = remote
                .post(
                    "/tokens",
                    &[],
                    &serde_json::json!({
                        "name": name,
                        "role": role,
                        "ttl_seconds": ttl.map(|t| t.as_secs()),
                        "policy": policy,
                    }),
                )
                .await?;
            let expiry = answer["expires_at"].as_i64().map_or_else(
                || "it does not expire".to_owned(),
                |at| format!("it expires {}", super::audit::format_ms(at)),
            );
            eprintln!(
                "created {} token {:?} (id {}); {expiry}. It is shown once; store it now.",
                answer["role"].as_str().unwrap_or(role),
                name,
                remote::str_at(&answer, "id")?
            );
            print_token(&mut answer)?;
        }
        Command::List { json } => {
            let rows: Vec<TokenRow> = remote::rows(&remote.get("/tokens", &[]).await?)?;
            print_list(&rows, cli.json(*json))?;
        }
        Command::Rotate { id, grace } => {
            let mut answer = remote
                .post(
                    &format!("/tokens/{}/rotate", remote::segment(id)),
                    &[],
                    &serde_json::json!({"grace_seconds": grace.as_secs()}),
                )
                .await?;
            let old = answer["previous_valid_until"].as_i64().map_or_else(
                || "the old value is refused from now on".to_owned(),
                |at| {
                    format!(
                        "the old value is accepted until {}",
                        super::audit::format_ms(at)
                    )
                },
            );
            eprintln!(
                "rotated {} token {:?} (id {id}); {old}. The new value is shown once; store it now.",
                answer["role"].as_str().unwrap_or("?"),
                answer["name"].as_str().unwrap_or("?"),
            );
            print_token(&mut answer)?;
        }
        Command::Revoke { id } => {
            remote
                .delete(&format!("/tokens/{}", remote::segment(id)), &[])
                .await?;
            println!("revoked token {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the `token` of a server's answer on stdout, then zeroes it there.
fn print_token(answer: &mut serde_json::Value) -> anyhow::Result<()> {
    let Some(serde_json::Value::String(token)) = answer.get_mut("token") else {
        return Err(RemoteError::BadAnswer("no token in the answer".into()).into());
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{token}")?;
    out.flush()?;
    zeroize::Zeroize::zeroize(token);
    Ok(())
}

fn print_list(rows: &[TokenRow], json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        for row in rows {
            writeln!(out, "{}", serde_json::to_string(row)?)?;
        }
        return Ok(());
    }
    let when = |ms: Option<i64>| ms.map_or_else(|| "-".to_owned(), super::audit::format_ms);
    writeln!(
        out,
        "{:<16} {:<8} {:<24} {:<24} {:<24} {:<24} NAME",
        "ID", "ROLE", "CREATED", "LAST USED", "EXPIRES", "REVOKED"
    )?;
    for row in rows {
        writeln!(
            out,
            "{:<16} {:<8} {:<24} {:<24} {:<24} {:<24} {}",
            row.id,
            row.role,
            super::audit::format_ms(row.created_at),
            when(row.last_used_at),
            when(row.expires_at),
            when(row.revoked_at),
            row.name
        )?;
    }
    Ok(())
}

/// A token's lifetime: more than zero, at most ten years.
fn parse_ttl(text: &str) -> Result<std::time::Duration, String> {
    let ttl = crate::text::parse_duration(text)?;
    if ttl.is_zero() || ttl > crate::auth::token::MAX_TTL {
        return Err(format!(
            "{text:?}: more than 0 seconds and at most ten years"
        ));
    }
    Ok(ttl)
}

/// A rotation's grace period: zero to seven days.
fn parse_grace(text: &str) -> Result<std::time::Duration, String> {
    let grace = crate::text::parse_duration(text)?;
    if grace > crate::auth::token::MAX_GRACE {
        return Err(format!("{text:?}: at most seven days"));
    }
    Ok(grace)
}

#[cfg(test)]
mod tests {
    use super::{parse_grace, parse_ttl};
    use std::time::Duration;

    #[test]
    fn lifetimes() {
        assert_eq!(parse_ttl("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_ttl("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_ttl("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_ttl("1s"), Ok(Duration::from_secs(1)));
        for bad in [
            "",
            "d",
            "0s",
            "-1d",
            "1.5h",
            "10y",
            "1 d",
            "99999999999999999999d",
            "4000d",
        ] {
            assert!(parse_ttl(bad).is_err(), "{bad:?}");
        }
        assert!(parse_ttl("1é").is_err() && parse_ttl("é").is_err());
        assert_eq!(parse_grace("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_grace("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(parse_grace("8d").is_err() && parse_grace("-1s").is_err());
    }
}
