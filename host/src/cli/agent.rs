//! `keyward agent-type add|list|show|rm|set-token|token|dispatch`: agent
//! types and their forge tokens, from the terminal.

use std::io::Write;
use std::process::ExitCode;

use clap::Subcommand;

use serde_json::json;

use super::remote::{self, segment, Remote, RemoteError};
use super::{open_vault, Cli};
use crate::audit::Access;
use crate::forge::agents::AgentTypeView;
use crate::forge::{ForgeApps, Forges};
use crate::runtime::Runtime;

/// Agent-type commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create an agent type that uses forge plugin FORGE. An existing
    /// secret `agent_type:NAME/FORGE_TOKEN` becomes its token.
    Add {
        /// Its name (A-Z a-z 0-9 _ . -; it becomes the scope `agent_type:NAME`).
        name: String,
        /// The forge plugin (`keyward plugin list`).
        #[arg(long)]
        forge: String,
        /// The forge's base URL [default: the plugin's own].
        #[arg(long)]
        base_url: Option<String>,
        /// What it is, for people.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List agent types (references to their tokens, never values).
    List {
        /// JSON lines instead of a table (as --output json).
        #[arg(long)]
        json: bool,
    },
    /// Delete an agent type and its instance overrides (the token secrets
    /// stay; delete them with `keyward secret rm`).
    Rm {
        /// The agent type.
        name: String,
    },
    /// Set or rotate the token (stdin, or --from-file) of an agent type, or
    /// of one instance with --instance.
    SetToken {
        /// The agent type.
        name: String,
        /// An instance id: override the token for that instance only.
        #[arg(long)]
        instance: Option<String>,
        /// Read the token from this file instead of stdin.
        #[arg(long)]
        from_file: Option<std::path::PathBuf>,
    },
    /// Print the token an agent type (or instance) uses now: getAgentToken,
    /// logged with your user and the reason.
    Token {
        /// The agent type.
        name: String,
        /// Why you read it (recorded in the access log).
        #[arg(long)]
        reason: String,
        /// An instance id.
        #[arg(long)]
        instance: Option<String>,
    },
    /// Ask the forge who the agent type's token belongs to (whoami through
    /// its plugin; the plugin never sees the token).
    Dispatch {
        /// The agent type.
        name: String,
        /// An instance id.
        #[arg(long)]
        instance: Option<String>,
    },
}

pub(super) async fn run(cli: &Cli, command: &Command) -> anyhow::Result<ExitCode> {
    if let Some(remote) = Remote::from_cli(cli)? {
        return run_remote(cli, &remote, command).await;
    }
    let vault = open_vault(cli).await?;
    // Only the commands that call a plugin start the runtime.
    let needs_runtime = matches!(
        command,
        Command::Add { base_url: None, .. } | Command::Dispatch { .. }
    );
    let runtime = if needs_runtime {
        let options = super::plugin::options(cli);
        Some(tokio::task::spawn_blocking(move || Runtime::start(options)).await??)
    } else {
        None
    };
    let forges = Forges::new(vault, runtime, ForgeApps::default());
    let mut out = std::io::stdout().lock();
    match command {
        Command::Add {
            name,
            forge,
            base_url,
            description,
        } => {
            let view = forges
                .create_agent_type(name, forge, base_url.as_deref(), description)
                .await?;
            print_created(&mut out, &view, cli.json(false))?;
        }
        Command::List { json } => print_list(&forges.agent_types().await?, cli.json(*json))?,
        Command::Rm { name } => {
            forges.delete_agent_type(name).await?;
            writeln!(out, "deleted agent type {name}")?;
        }
        Command::SetToken {
            name,
            instance,
            from_file,
        } => {
            let value = super::secret::read_value(from_file.as_deref(), false)?;
            let access = Access::new(super::accessor(), "set agent type token")?;
            let reference = forges
                .set_agent_token(name, instance.as_deref(), &value, &access)
                .await?;
            writeln!(out, "stored the token as {reference}")?;
        }
        Command::Token {
            name,
            reason,
            instance,
        } => {
            let access = Access::new(super::accessor(), reason.as_str())?;
            let value = forges
                .agent_token(name, instance.as_deref(), &access)
                .await?;
            out.write_all(value.expose())?;
            writeln!(out)?;
        }
        Command::Dispatch { name, instance } => {
            let access = Access::new(super::accessor(), "keyward agent dispatch")?;
            let account = forges.dispatch(name, instance.as_deref(), &access).await?;
            if cli.json(false) {
                writeln!(out, "{}", json!({ "account": account }))?;
            } else {
                writeln!(out, "{} (id {})", account.login, account.id)?;
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn print_created(out: &mut impl Write, view: &AgentTypeView, json: bool) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string(view)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "created agent type {} (forge {}, {}); token: {}",
        view.name,
        view.forge,
        view.base_url,
        view.token
            .as_deref()
            .unwrap_or("none yet: use `keyward agent-type set-token`")
    )?;
    Ok(())
}

fn print_list(all: &[AgentTypeView], json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        for view in all {
            writeln!(out, "{}", serde_json::to_string(view)?)?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "{:<24} {:<12} {:<40} TOKEN",
        "NAME", "FORGE", "BASE URL"
    )?;
    for v in all {
        writeln!(
            out,
            "{:<24} {:<12} {:<40} {}{}",
            v.name,
            v.forge,
            v.base_url,
            v.token.as_deref().unwrap_or("-"),
            if v.instances.is_empty() {
                String::new()
            } else {
                format!(" (+{} instance overrides)", v.instances.len())
            }
        )?;
    }
    Ok(())
}

/// The agent-type commands through a server (`KEYWARD_ADDR`).
async fn run_remote(cli: &Cli, remote: &Remote, command: &Command) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let path = |name: &str, rest: &str| format!("/agent-types/{}{rest}", segment(name));
    match command {
        Command::Add {
            name,
            forge,
            base_url,
            description,
        } => {
            let view: AgentTypeView = serde_json::from_value(
                remote
                    .post(
                        "/agent-types",
                        &[],
                        &json!({"name": name, "forge": forge, "base_url": base_url, "description": description}),
                    )
                    .await?,
            )
            .map_err(|e| RemoteError::BadAnswer(e.to_string()))?;
            print_created(&mut out, &view, cli.json(false))?;
        }
        Command::List { json } => {
            drop(out);
            let all: Vec<AgentTypeView> = remote::rows(&remote.get("/agent-types", &[]).await?)?;
            print_list(&all, cli.json(*json))?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Rm { name } => {
            remote.delete(&path(name, ""), &[]).await?;
            writeln!(out, "deleted agent type {name}")?;
        }
        Command::SetToken {
            name,
            instance,
            from_file,
        } => {
            let value = super::secret::read_value(from_file.as_deref(), false)?;
            let value = std::str::from_utf8(&value)
                .map_err(|_| anyhow::anyhow!("a forge token is text; this one is not UTF-8"))?;
            let mut body = json!({"value": value, "instance": instance});
            let answer = remote.put(&path(name, "/token"), &[], &body).await;
            if let Some(serde_json::Value::String(v)) = body.get_mut("value") {
                zeroize::Zeroize::zeroize(v);
            }
            writeln!(
                out,
                "stored the token as {}",
                remote::str_at(&answer?, "token")?
            )?;
        }
        Command::Token {
            name,
            reason,
            instance,
        } => {
            let mut answer = remote
                .post(
                    &path(name, "/token"),
                    &[],
                    &json!({"reason": reason, "instance": instance}),
                )
                .await?;
            let Some(serde_json::Value::String(token)) = answer.get_mut("token") else {
                return Err(RemoteError::BadAnswer("no token in the answer".into()).into());
            };
            writeln!(out, "{token}")?;
            zeroize::Zeroize::zeroize(token);
        }
        Command::Dispatch { name, instance } => {
            let answer = remote
                .post(
                    &path(name, "/dispatch"),
                    &[],
                    &json!({"reason": "keyward agent dispatch", "instance": instance}),
                )
                .await?;
            if cli.json(false) {
                writeln!(out, "{answer}")?;
                out.flush()?;
                return Ok(ExitCode::SUCCESS);
            }
            let account = &answer["account"];
            let id = match &account["id"] {
                serde_json::Value::String(id) => id.clone(),
                other => other.to_string(),
            };
            writeln!(
                out,
                "{} (id {id})",
                account["login"].as_str().unwrap_or("?")
            )?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
