//! The `keyward` command line. `main.rs` only calls [`run`].

mod agent;
mod audit;
mod audit_export;
mod audit_retention;
mod checkpoint_file;
mod config_file;
mod key;
mod meta;
mod migrate;
mod notify;
mod plugin;
mod remote;
mod render;
mod run;
mod secret;
mod secret_io;
mod serve;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Config};
use crate::vault::{Vault, VaultError};

/// Exit codes (documented in README.md).
pub mod exit {
    /// Something failed; the message says what.
    pub const FAILURE: u8 = 1;
    /// The command line was malformed (clap's own code).
    pub const USAGE: u8 = 2;
    /// Secrets referenced by a template or a `get` do not exist.
    pub const MISSING: u8 = 3;
    /// `audit verify` found a broken chain.
    pub const AUDIT_BROKEN: u8 = 4;
    /// The master key is missing, malformed or does not open the store (EX_CONFIG).
    pub const CONFIG: u8 = 78;
}

/// Keyward: a sealed secret store with a hash-chained access log.
#[derive(Parser, Debug)]
#[command(name = "keyward", version, long_version = meta::LONG_VERSION, about, long_about = None)]
pub struct Cli {
    /// Development mode: without KEYWARD_MASTER_KEY, use (and create) a local
    /// key file in the data folder. Never use it in production.
    #[arg(long, global = true)]
    pub dev: bool,

    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB
    /// [default: sqlite://<data dir>/keyward.db]
    #[arg(
        long,
        global = true,
        env = "KEYWARD_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// Data folder for the default SQLite file and the --dev key file
    /// [default: ./keyward-data]
    #[arg(long, global = true, env = "KEYWARD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Drop-in plugins folder: NAME.wasm + NAME.toml pairs, watched while
    /// serving [default: none; only built-in plugins]
    #[arg(long, global = true, env = "KEYWARD_PLUGINS_DIR")]
    pub plugins_dir: Option<PathBuf>,

    /// Open the store here even when KEYWARD_ADDR is set.
    #[arg(long, global = true)]
    pub local: bool,

    /// Configuration file (TOML; docs/operations.md, "Configuration
    /// file"): fills in what neither a flag nor the environment says.
    #[arg(long, global = true, env = "KEYWARD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log format on stderr: text (for people) or json (one object per
    /// line, for log shippers). KEYWARD_LOG sets the filter.
    #[arg(
        long,
        global = true,
        env = "KEYWARD_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,

    /// How commands that print data print it on stdout: text (for people)
    /// or json (for scripts; docs/operations.md, "JSON output"). A
    /// command's `--json` is the same as `--output json`.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Whether data goes out as JSON: `--output json`, or a command's own
    /// `--json` (`flag`).
    pub(crate) fn json(&self, flag: bool) -> bool {
        flag || self.output == Output::Json
    }
}

/// How a command prints its data (`--output`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Lines for people.
    Text,
    /// JSON: one document, or one object per line where a command says so.
    Json,
}

/// How log lines are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event (colours on a terminal).
    Text,
    /// One JSON object per event: `timestamp`, `level`, `target`, the
    /// event's fields, and `span`/`spans` with the fields of the spans it
    /// is in (a request's method, route, request_id, accessor).
    Json,
}

/// How the CLI chooses between the store and a server (shown by --help).
const MODES: &str = "\
Local or remote:
  Without KEYWARD_ADDR the CLI opens the store itself: it needs the master
  key (KEYWARD_MASTER_KEY) and the database.
  With KEYWARD_ADDR=http(s)://HOST:PORT and KEYWARD_TOKEN=<an API token>
  set, these commands call that server instead, and need neither:
    secret set|get|list|rm|rotate, render, run, audit tail|verify,
    token create|list|rotate|revoke, agent-type …, plugin list|reload,
    migrate list.
  The server checks the token's role and policy and logs every read under
  the token's name. serve, key, plugin check, version, completions
  and man always work here.
  audit checkpoint and migrate plan|run work on the store directly: with
  KEYWARD_ADDR set they refuse unless --local is given, so that a store
  is never touched by surprise. --local ignores KEYWARD_ADDR.";

/// Top-level commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP API (docs/http-api.md) and the plugin runtime.
    Serve(serve::Args),
    /// Generate or rotate the master key.
    #[command(subcommand)]
    Key(key::Command),
    /// Create, read, list, delete and re-seal secrets.
    #[command(subcommand)]
    Secret(secret::Command),
    /// Render a ${SECRET:NAME} template from stdin to stdout (or --out FILE).
    Render(render::Args),
    /// Run a command with secrets in its environment: each --env
    /// NAME=TEMPLATE is rendered (one access-log row per secret), then CMD
    /// replaces keyward, so its exit code is the run's. Nothing is written
    /// to disk.
    Run(run::Args),
    /// Read and verify the access log; sign checkpoints of its end.
    #[command(subcommand)]
    Audit(audit::Command),
    /// List, check and reload WebAssembly plugins; start a new one (new)
    /// and fill in its manifest's hash (manifest).
    #[command(subcommand)]
    Plugin(plugin::Command),
    /// Create, list and revoke API tokens for the HTTP service.
    #[command(subcommand)]
    Token(token::Command),
    /// Agent types: their forge plugin, base URL and token (rotated without
    /// restarts), getAgentToken and dispatch.
    #[command(subcommand)]
    AgentType(agent::Command),
    /// Import legacy stores (token folders, agents.json, credential files,
    /// bare keys, OpenBao/Vault KV) with migrator plugins: crash-safe and
    /// one-shot.
    #[command(subcommand)]
    Migrate(migrate::Command),
    /// Print the version and the git commit it was built from.
    Version(meta::VersionArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish,
    /// powershell) to stdout; e.g. `keyward completions bash >
    /// /etc/bash_completion.d/keyward`.
    Completions(meta::CompletionsArgs),
    /// Print the manual page (roff) to stdout, or write one page per
    /// command into --dir.
    Man(meta::ManArgs),
    /// The configuration: `config check` validates it and prints the
    /// effective settings, with where each came from.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `keyward config …`.
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate the settings `serve` would run with (flags, environment,
    /// --config file, defaults) and print them with their source; URL
    /// passwords and the master key are masked. Exit 78 if one is invalid.
    Check(config_file::CheckArgs),
}

/// The mode `--help` reports, from the environment (`--local` is not
/// parsed yet when help is printed, so it is mentioned, not applied).
fn mode_in_effect() -> String {
    match std::env::var(remote::ADDR_VAR) {
        Ok(addr) if !addr.is_empty() => format!(
            "remote — KEYWARD_ADDR={}{} (--local overrides it)",
            crate::store::redact_url(&addr),
            if std::env::var(remote::TOKEN_VAR).is_ok_and(|t| !t.trim().is_empty()) {
                ", with KEYWARD_TOKEN"
            } else {
                ", but KEYWARD_TOKEN is not set"
            }
        ),
        _ => "local — KEYWARD_ADDR is not set".to_owned(),
    }
}

/// Parses the command line, runs it, and maps failures to exit codes.
pub fn run() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The file fills the environment in before clap reads it (flag > env
    // > file > default), while this is the only thread.
    let loaded = match config_file::load(&args) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("keyward: {error}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    // --help ends with the modes and the one in effect now.
    let matches = Cli::command()
        .after_help(format!("{MODES}\n\nNow: {}", mode_in_effect()))
        .get_matches_from(args);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    init_tracing(matches!(cli.command, Command::Serve(_)), cli.log_format);
    if let Command::Config(ConfigCommand::Check(args)) = &cli.command {
        return finish(config_file::check(&loaded, &matches, args, cli.output));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("keyward: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    finish(runtime.block_on(dispatch(cli)))
}

/// The exit code of a command's result, its error printed.
fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("keyward: {error:#}");
            ExitCode::from(exit_code_of(&error))
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Key(key::Command::Generate) => key::generate(),
        Command::Serve(args) => serve::run(&cli, args).await,
        Command::Key(command) => key::run(&cli, command).await,
        Command::Secret(command) => secret::run(&cli, command).await,
        Command::Render(args) => render::run(&cli, args).await,
        Command::Run(args) => run::run(&cli, args).await,
        Command::Audit(command) => audit::run(&cli, command).await,
        Command::Plugin(command) => plugin::run(&cli, command).await,
        Command::Token(command) => token::run(&cli, command).await,
        Command::AgentType(command) => agent::run(&cli, command).await,
        Command::Migrate(command) => migrate::run(&cli, command).await,
        Command::Version(_) => meta::version(cli.output),
        Command::Completions(args) => meta::completions(args),
        Command::Man(args) => meta::man(args),
        // Answered by `run`, which has the parsed matches it reports on.
        Command::Config(_) => Err(anyhow::anyhow!("config check runs before the store opens")),
    }
}

/// Opens the store as the global flags and environment say, warning loudly
/// when a development key is in use.
pub(crate) async fn open_vault(cli: &Cli) -> anyhow::Result<Vault> {
    open_vault_with(cli, crate::vault::NewKey::Refuse).await
}

/// [`open_vault`], treating a current key new to the store as `new_key` says.
pub(crate) async fn open_vault_with(
    cli: &Cli,
    new_key: crate::vault::NewKey,
) -> anyhow::Result<Vault> {
    let data_dir = config::data_dir(cli.data_dir.as_deref());
    let url = config::database_url(cli.database_url.as_deref(), &data_dir);
    let config = Config::from_env(url, &data_dir, cli.dev)?;
    if let Some(dev) = &config.dev_key_file {
        let made = if dev.created { "GENERATED" } else { "USING" };
        eprintln!(
            "\n!!! WARNING: DEVELOPMENT MODE — {made} A LOCAL MASTER KEY FILE: {}\n\
             !!! Anyone who can read that file can decrypt every secret in this store.\n\
             !!! For production set KEYWARD_MASTER_KEY (see docs/credentials.md) and drop --dev.\n",
            dev.path.display()
        );
    }
    Ok(Vault::open_with(&config, new_key).await?)
}

/// `cli:<user>` — who is at the terminal, for the access log.
pub(crate) fn accessor() -> String {
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".to_owned());
    // Bounded in bytes, not characters: the access log takes at most 128.
    let mut clean = String::new();
    for c in user.chars().filter(|c| !c.is_control()) {
        if clean.len() + c.len_utf8() > 100 {
            break;
        }
        clean.push(c);
    }
    format!("cli:{clean}")
}

fn exit_code_of(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(remote) = cause.downcast_ref::<remote::RemoteError>() {
            return match remote {
                e if e.is_missing() => exit::MISSING,
                remote::RemoteError::NoToken
                | remote::RemoteError::BadAddr(_)
                | remote::RemoteError::BadToken
                | remote::RemoteError::LocalOnly(_) => exit::CONFIG,
                _ => exit::FAILURE,
            };
        }
        if cause.downcast_ref::<crate::crypto::KeyError>().is_some()
            || cause.downcast_ref::<config::ConfigError>().is_some()
            || cause
                .downcast_ref::<config_file::ConfigFileError>()
                .is_some()
        {
            return exit::CONFIG;
        }
        let vault = cause.downcast_ref::<VaultError>().or_else(|| match cause
            .downcast_ref::<crate::template::RenderError>(
        ) {
            Some(crate::template::RenderError::Vault(v)) => Some(v),
            _ => None,
        });
        if let Some(vault) = vault {
            return match vault {
                VaultError::Key(_)
                | VaultError::WrongKey { .. }
                | VaultError::KeyNotAdopted { .. }
                | VaultError::OtherKeyAdopted { .. } => exit::CONFIG,
                VaultError::Missing(_) => exit::MISSING,
                _ => exit::FAILURE,
            };
        }
    }
    exit::FAILURE
}

fn init_tracing(serving: bool, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let default = if serving { "info" } else { "warn" };
    let filter = EnvFilter::try_from_env("KEYWARD_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_ansi(false)
            .try_init(),
    };
}
