//! `keyward secret set|get|list|rm|rotate`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use zeroize::Zeroizing;

use super::remote::{self, segment, Remote, RemoteError};
pub(super) use super::secret_io::read_value;
use super::secret_io::{print_deleted, print_limit, print_list, print_removed, print_versions};
use super::{accessor, open_vault, Cli};
use crate::audit::{Access, Action};
use crate::names::{Scope, SecretName, SecretRef};
use crate::resolve::Context;
use crate::vault::{Put, PutMode};

/// Secret commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a secret, or replace its value (new version). The value is read
    /// from stdin or --from-file, never from the command line.
    Set {
        /// Secret name (A-Z a-z 0-9 _ . -, up to 128).
        name: String,
        /// `global` or `<kind>:<id>`, e.g. agent_type:coder.
        #[arg(long, default_value = "global")]
        scope: String,
        /// Description shown in listings.
        #[arg(long)]
        description: Option<String>,
        /// Read the value from this file instead of stdin.
        #[arg(long, value_name = "FILE")]
        from_file: Option<PathBuf>,
        /// Keep a trailing newline (by default one trailing \n or \r\n is dropped).
        #[arg(long)]
        keep_newline: bool,
        /// Fail if the secret exists instead of replacing its value.
        #[arg(long)]
        create_only: bool,
        /// Check-and-set: write only if the secret is still at version N
        /// (as `secret list` showed it; 0: only if it does not exist yet).
        /// Otherwise nothing is written and the current version is named.
        #[arg(long, value_name = "N", conflicts_with = "create_only")]
        cas: Option<u32>,
        /// Keep N versions of this secret from now on, the current one
        /// included (0: all), instead of the server's KEYWARD_MAX_VERSIONS;
        /// older kept versions are destroyed at once (logged).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=10_000))]
        max_versions: Option<u32>,
    },
    /// Print a secret's value to stdout. The read is logged with --reason.
    Get {
        /// Secret name.
        name: String,
        /// Scope to read from.
        #[arg(long, default_value = "global")]
        scope: String,
        /// Why you need it (recorded in the access log).
        #[arg(long)]
        reason: String,
        /// An earlier version (see `secret versions`), kept and not
        /// destroyed; the read is logged with its number.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        version: Option<u32>,
    },
    /// List a secret's versions: number, state (current, kept, destroyed),
    /// when and by whom written, key id. Never a value.
    Versions {
        /// Secret name.
        name: String,
        /// Scope.
        #[arg(long, default_value = "global")]
        scope: String,
        /// JSON lines instead of a table (as --output json).
        #[arg(long)]
        json: bool,
    },
    /// Make a kept earlier version the value again, as a new version. Logged
    /// as a read of that version and a write, both with --reason.
    Rollback {
        /// Secret name.
        name: String,
        /// Scope.
        #[arg(long, default_value = "global")]
        scope: String,
        /// The version whose value comes back.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        to: u32,
        /// Why (recorded in the access log with both rows).
        #[arg(long)]
        reason: String,
    },
    /// List secrets (metadata only, never values).
    List {
        /// Only this scope.
        #[arg(long)]
        scope: Option<String>,
        /// JSON lines instead of a table (as --output json).
        #[arg(long)]
        json: bool,
    },
    /// Delete a secret: it renders as missing at once and can be undeleted
    /// until KEYWARD_DELETE_RETENTION (default 7d) passes, then the server
    /// destroys it. With --destroy every version's ciphertext is removed
    /// now, for good.
    Rm {
        /// Secret name.
        name: String,
        /// Scope.
        #[arg(long, default_value = "global")]
        scope: String,
        /// Remove the secret and every version's ciphertext now (also for a
        /// secret already deleted); cannot be undone.
        #[arg(long)]
        destroy: bool,
    },
    /// Bring a deleted secret back, with its value and versions, within the
    /// retention window.
    Undelete {
        /// Secret name.
        name: String,
        /// Scope.
        #[arg(long, default_value = "global")]
        scope: String,
    },
    /// List deleted secrets: when, by whom, and until when each can be
    /// undeleted. Never a value.
    Deleted {
        /// Only this scope.
        #[arg(long)]
        scope: Option<String>,
        /// JSON lines instead of a table (as --output json).
        #[arg(long)]
        json: bool,
    },
    /// Re-seal a secret under the current master key with a fresh nonce.
    Rotate {
        /// Secret name.
        name: String,
        /// Scope.
        #[arg(long, default_value = "global")]
        scope: String,
    },
}

pub(super) async fn run(cli: &Cli, command: &Command) -> anyhow::Result<ExitCode> {
    if let Some(remote) = Remote::from_cli(cli)? {
        return run_remote(cli, &remote, command).await;
    }
    match command {
        Command::Set {
            name,
            scope,
            description,
            from_file,
            keep_newline,
            create_only,
            cas,
            max_versions,
        } => {
            let (scope, name) = (Scope::parse(scope)?, SecretName::parse(name)?);
            if let Some(d) = description {
                crate::vault::check_description(d)?;
            }
            let value = read_value(from_file.as_deref(), *keep_newline)?;
            let vault = open_vault(cli).await?;
            let access = Access::new(accessor(), "keyward secret set")?;
            let mode = if *create_only {
                PutMode::Create
            } else {
                PutMode::Upsert
            };
            let expect = cas.map(i64::from);
            match vault
                .put_expecting(
                    &scope,
                    &name,
                    &value,
                    description.as_deref(),
                    &access,
                    mode,
                    expect,
                )
                .await?
            {
                Put::Created(_) => println!("created {scope}/{name} (version 1)"),
                Put::Replaced(v) => println!("replaced {scope}/{name} (version {v})"),
            }
            if let Some(n) = max_versions {
                let destroyed = vault
                    .set_max_versions(&scope, &name, Some(*n), &access)
                    .await?;
                print_limit(*n, Some(destroyed.len()));
            }
        }
        Command::Get {
            name,
            scope,
            reason,
            version,
        } => {
            let reference = SecretRef {
                scope: Some(Scope::parse(scope)?),
                name: SecretName::parse(name)?,
            };
            let access = Access::new(accessor(), reason.as_str())?;
            let vault = open_vault(cli).await?;
            let value = match version {
                Some(v) => {
                    let scope = reference.scope.clone().unwrap_or_else(Scope::global);
                    vault
                        .reveal_version(&scope, &reference.name, i64::from(*v), &access)
                        .await?
                }
                None => {
                    vault
                        .reveal(&reference, &Context::default(), &access, Action::Reveal)
                        .await?
                        .1
                }
            };
            let mut out = std::io::stdout().lock();
            out.write_all(value.expose())?;
            if out.is_terminal() {
                out.write_all(b"\n")?;
            }
            out.flush()?;
        }
        Command::Versions { name, scope, json } => {
            let (scope, name) = (Scope::parse(scope)?, SecretName::parse(name)?);
            let vault = open_vault(cli).await?;
            print_versions(&vault.versions(&scope, &name).await?, cli.json(*json))?;
        }
        Command::Rollback {
            name,
            scope,
            to,
            reason,
        } => {
            let (scope, name) = (Scope::parse(scope)?, SecretName::parse(name)?);
            let access = Access::new(accessor(), reason.as_str())?;
            let vault = open_vault(cli).await?;
            let now = vault
                .rollback(&scope, &name, i64::from(*to), &access)
                .await?;
            println!("rolled {scope}/{name} back to the value of version {to} (now version {now})");
        }
        Command::List { scope, json } => {
            let scope = scope.as_deref().map(Scope::parse).transpose()?;
            let vault = open_vault(cli).await?;
            let rows = vault.list(scope.as_ref()).await?;
            print_list(&rows, cli.json(*json))?;
        }
        Command::Rm {
            name,
            scope,
            destroy,
        } => {
            let (scope, name) = (Scope::parse(scope)?, SecretName::parse(name)?);
            let vault = open_vault(cli).await?;
            if *destroy {
                let access = Access::new(accessor(), "keyward secret rm --destroy")?;
                vault.destroy(&scope, &name, &access).await?;
                print_removed(&scope, &name, true);
            } else {
                let access = Access::new(accessor(), "keyward secret rm")?;
                vault.delete(&scope, &name, &access).await?;
                print_removed(&scope, &name, false);
            }
        }
        Command::Undelete { name, scope } => {
            let (scope, name) = (Scope::parse(scope)?, SecretName::parse(name)?);
            let vault = open_vault(cli).await?;
            let access = Access::new(accessor(), "keyward secret undelete")?;
            let meta = vault.undelete(&scope, &name, &access).await?;
            println!("undeleted {scope}/{name} (version {})", meta.version);
        }
        Command::Deleted { scope, json } => {
            let scope = scope.as_deref().map(Scope::parse).transpose()?;
            let vault = open_vault(cli).await?;
            print_deleted(&vault.deleted(scope.as_ref()).await?, cli.json(*json))?;
        }
        Command::Rotate { name, scope } => {
            let (scope, name) = (Scope::parse(scope)?, SecretName::parse(name)?);
            let vault = open_vault(cli).await?;
            let access = Access::new(accessor(), "keyward secret rotate")?;
            let meta = vault.reseal(&scope, &name, &access).await?;
            println!(
                "re-sealed {scope}/{name} (version {}) under key {}",
                meta.version, meta.key_id
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The secret commands through a server (`KEYWARD_ADDR`).
async fn run_remote(cli: &Cli, remote: &Remote, command: &Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Set {
            name,
            scope,
            description,
            from_file,
            keep_newline,
            create_only,
            cas,
            max_versions,
        } => {
            // Checked here too, so a bad name fails before the value is read.
            Scope::parse(scope)?;
            SecretName::parse(name)?;
            let value = read_value(from_file.as_deref(), *keep_newline)?;
            let value = std::str::from_utf8(&value).map_err(|_| {
                anyhow::anyhow!(
                    "over HTTP a value must be UTF-8 text; set a binary value with --local where the store is"
                )
            })?;
            let path = format!("/secrets/{}", segment(name));
            let scope_q = [("scope", scope.clone())];
            let mut update = serde_json::json!({"value": value});
            if let Some(d) = description {
                update["description"] = d.as_str().into();
            }
            let mut create = serde_json::json!({
                "name": name, "scope": scope, "value": value,
                "description": description.as_deref().unwrap_or(""),
            });
            if let Some(n) = cas.filter(|n| *n > 0) {
                update["cas"] = n.into();
            }
            let created = if *create_only || *cas == Some(0) {
                remote.post("/secrets", &[], &create).await?
            } else if cas.is_some() {
                // A check-and-set replaces the version read, never creates.
                remote.put(&path, &scope_q, &update).await?
            } else {
                // Replace, or create if there is none; a create that loses
                // a race to another creator replaces after all.
                match remote.put(&path, &scope_q, &update).await {
                    Err(RemoteError::Refused { status: 404, .. }) => {
                        match remote.post("/secrets", &[], &create).await {
                            Err(RemoteError::Refused { status: 409, .. }) => {
                                remote.put(&path, &scope_q, &update).await?
                            }
                            other => other?,
                        }
                    }
                    other => other?,
                }
            };
            // The bodies held the value: zeroed, not just dropped.
            for body in [&mut update, &mut create] {
                if let Some(serde_json::Value::String(v)) = body.get_mut("value") {
                    zeroize::Zeroize::zeroize(v);
                }
            }
            let version = created.get("version").and_then(serde_json::Value::as_i64);
            let (scope, name) = (
                remote::str_at(&created, "scope")?,
                remote::str_at(&created, "name")?,
            );
            match version {
                Some(1) => println!("created {scope}/{name} (version 1)"),
                Some(v) => println!("replaced {scope}/{name} (version {v})"),
                None => {
                    return Err(RemoteError::BadAnswer("no version in the answer".into()).into())
                }
            }
            if let Some(n) = max_versions {
                remote
                    .put(&path, &scope_q, &serde_json::json!({ "max_versions": n }))
                    .await?;
                print_limit(*n, None);
            }
        }
        Command::Get {
            name,
            scope,
            reason,
            version,
        } => {
            use base64::Engine as _;
            let path = match version {
                Some(v) => format!("/secrets/{}/versions/{v}/reveal", segment(name)),
                None => format!("/secrets/{}/reveal", segment(name)),
            };
            let answer = remote
                .post(
                    &path,
                    &[("scope", scope.clone())],
                    &serde_json::json!({"reason": reason}),
                )
                .await?;
            let value = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(remote::str_at(&answer, "value_base64")?)
                    .map_err(|e| RemoteError::BadAnswer(e.to_string()))?,
            );
            // The answer's text held the value too.
            let mut answer = answer;
            if let Some(serde_json::Value::String(v)) = answer.get_mut("value_base64") {
                zeroize::Zeroize::zeroize(v);
            }
            let mut out = std::io::stdout().lock();
            out.write_all(&value)?;
            if out.is_terminal() {
                out.write_all(b"\n")?;
            }
            out.flush()?;
        }
        Command::Versions { name, scope, json } => {
            let path = format!("/secrets/{}/versions", segment(name));
            let rows = remote::rows(&remote.get(&path, &[("scope", scope.clone())]).await?)?;
            print_versions(&rows, cli.json(*json))?;
        }
        Command::Rollback {
            name,
            scope,
            to,
            reason,
        } => {
            let meta = remote
                .post(
                    &format!("/secrets/{}/rollback", segment(name)),
                    &[("scope", scope.clone())],
                    &serde_json::json!({"to": to, "reason": reason}),
                )
                .await?;
            let now = meta
                .get("version")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or_default();
            println!("rolled {scope}/{name} back to the value of version {to} (now version {now})");
        }
        Command::List { scope, json } => {
            let query: Vec<(&str, String)> = scope.iter().map(|s| ("scope", s.clone())).collect();
            let rows = remote::rows(&remote.get("/secrets", &query).await?)?;
            print_list(&rows, cli.json(*json))?;
        }
        Command::Rm {
            name,
            scope,
            destroy,
        } => {
            let mut query = vec![("scope", scope.clone())];
            if *destroy {
                query.push(("destroy", "true".into()));
            }
            remote
                .delete(&format!("/secrets/{}", segment(name)), &query)
                .await?;
            print_removed(scope, name, *destroy);
        }
        Command::Undelete { name, scope } => {
            let meta = remote
                .post_empty(
                    &format!("/secrets/{}/undelete", segment(name)),
                    &[("scope", scope.clone())],
                )
                .await?;
            println!(
                "undeleted {scope}/{name} (version {})",
                meta.get("version")
                    .and_then(serde_json::Value::as_i64)
                    .unwrap_or_default()
            );
        }
        Command::Deleted { scope, json } => {
            let query: Vec<(&str, String)> = scope.iter().map(|s| ("scope", s.clone())).collect();
            let rows = remote::rows(&remote.get("/deleted-secrets", &query).await?)?;
            print_deleted(&rows, cli.json(*json))?;
        }
        Command::Rotate { name, scope } => {
            let meta = remote
                .post_empty(
                    &format!("/secrets/{}/rotate", segment(name)),
                    &[("scope", scope.clone())],
                )
                .await?;
            println!(
                "re-sealed {scope}/{name} (version {}) under key {}",
                meta.get("version")
                    .and_then(serde_json::Value::as_i64)
                    .unwrap_or_default(),
                remote::str_at(&meta, "key_id")?
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
