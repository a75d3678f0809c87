//! `keyward migrate list|plan|run`: legacy-store migrations (docs/migrations.md).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Mutex;

use clap::{Args as ClapArgs, Subcommand};

use super::remote::{self, Remote, RemoteError};
use super::{exit, Cli};
use crate::migrate::{self, parse_option, parse_source, Progress, Report, Request, Status};
use crate::runtime::view::PluginList;
use crate::runtime::{MigrationSource, Runtime};
use crate::store::migrate as ledger;

/// Migration commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// List migrator plugins and each one's last finished run.
    List,
    /// Print what `run` would do (the same as `run --dry-run`).
    Plan(RunArgs),
    /// Migrate: write every legacy item into the store, then retire it.
    /// Exits 1 if any item failed (the rest is done; run it again after
    /// fixing them).
    Run(RunArgs),
}

/// What to migrate.
#[derive(ClapArgs, Debug)]
pub struct RunArgs {
    /// The migrator plugin (see `keyward migrate list`).
    pub plugin: String,
    /// The legacy store: a folder (granted to the plugin for this run only)
    /// or an http(s) URL (its origin granted for this run only).
    #[arg(long)]
    pub source: Option<String>,
    /// A plugin option, KEY=VALUE (repeatable). The value of a key ending
    /// in `_ref` is a secret reference the plugin may use for this run,
    /// e.g. token_ref=global/BAO_TOKEN. target_scopes=SCOPE,... (e.g.
    /// workload:*,registry:*) names the scopes the run may write into; an
    /// in-store move needs it, and plugin:* is never allowed.
    #[arg(long = "option", value_name = "KEY=VALUE")]
    pub options: Vec<String>,
    /// Print the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Run even though the same run (plugin build, source, options)
    /// finished before.
    #[arg(long)]
    pub again: bool,
    /// Let the plugin create API keys with the operator role (without it,
    /// a migrator creates resolver keys only; `migrate plan` lists every
    /// key and role a run would create).
    #[arg(long)]
    pub allow_operator_keys: bool,
    /// Items per transaction and per plugin call.
    #[arg(long, default_value_t = migrate::DEFAULT_BATCH as u64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub batch: u64,
}

pub(super) async fn run(cli: &Cli, command: &Command) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_cli(cli)?;
    match (command, remote) {
        (Command::List, Some(remote)) => list_remote(cli, &remote).await,
        // A run reads legacy files where it runs and writes the store
        // directly; over HTTP a path would name the server's disk.
        (Command::Plan(_), Some(_)) => Err(RemoteError::LocalOnly("migrate plan").into()),
        (Command::Run(_), Some(_)) => Err(RemoteError::LocalOnly("migrate run").into()),
        (command, None) => run_local(cli, command).await,
    }
}

async fn run_local(cli: &Cli, command: &Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::List => list(cli).await,
        Command::Plan(args) => migrate_run(cli, args, true).await,
        Command::Run(args) => migrate_run(cli, args, args.dry_run).await,
    }
}

async fn runtime(cli: &Cli) -> anyhow::Result<Runtime> {
    let options = super::plugin::options(cli);
    tokio::task::spawn_blocking(move || Runtime::start(options)).await?
}

async fn list(cli: &Cli) -> anyhow::Result<ExitCode> {
    let vault = super::open_vault(cli).await?;
    let rt = runtime(cli).await?;
    let runs = ledger::last_runs(vault.db().reader()).await?;
    print_migrators(&PluginList::of(&rt.registry(), &runs), cli.json(false))
}

/// `migrate list` through a server: its migrators and their last runs.
async fn list_remote(cli: &Cli, remote: &Remote) -> anyhow::Result<ExitCode> {
    let list: PluginList = remote::typed(remote.get("/plugins", &[]).await?)?;
    print_migrators(&list, cli.json(false))
}

/// `migrate list`'s output: a line per migrator, or (JSON) one object per
/// line, each a `GET /plugins` entry.
fn print_migrators(list: &PluginList, json: bool) -> anyhow::Result<ExitCode> {
    let mut any = false;
    for p in list.migrators() {
        any = true;
        if json {
            println!("{}", serde_json::to_string(p)?);
            continue;
        }
        let last = p.last_run.as_ref().map_or_else(
            || "never run".to_owned(),
            |r| {
                format!(
                    "last run {} ({} migrated, {} skipped)",
                    super::audit::format_ms(r.finished_at),
                    r.migrated,
                    r.skipped
                )
            },
        );
        println!(
            "{:<22} {:<8} {}  {}",
            p.name, p.version, last, p.description
        );
    }
    if !any && !json {
        println!("no migrator plugins loaded");
    }
    Ok(ExitCode::SUCCESS)
}

async fn migrate_run(cli: &Cli, args: &RunArgs, dry_run: bool) -> anyhow::Result<ExitCode> {
    let (mut source, shown) = match &args.source {
        Some(text) => {
            let (s, shown) = parse_source(text)?;
            (s, Some(shown))
        }
        None => (MigrationSource::default(), None),
    };
    for text in &args.options {
        let (k, v, grant) = parse_option(text)?;
        source.options.push((k, v));
        source.secrets.extend(grant);
    }
    let vault = super::open_vault(cli).await?;
    let rt = runtime(cli).await?;
    let mut request = Request::new(&args.plugin, source, &super::accessor());
    request.shown_source = shown;
    request.dry_run = dry_run;
    request.again = args.again;
    request.allow_operator_keys = args.allow_operator_keys;
    request.batch = usize::try_from(args.batch).unwrap_or(migrate::DEFAULT_BATCH);
    let progress = Bar::new();
    let report = migrate::run(&vault, &rt, &request, &progress).await?;
    print_report(&report, cli.json(false))?;
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FAILURE)
    })
}

/// An item's status as a word and its reason, if any.
fn status_of(status: &Status) -> (&'static str, Option<&str>) {
    match status {
        Status::WouldMigrate => ("would migrate", None),
        Status::WouldRetire => ("would retire", Some("written before")),
        Status::Migrated => ("migrated", None),
        Status::Retired => ("retired", Some("written before")),
        Status::WrittenNotRetired(r) => ("written", Some(r.as_str())),
        Status::Skipped(r) => ("skipped", Some(r.as_str())),
        Status::Failed(r) => ("FAILED", Some(r.as_str())),
    }
}

/// The report as one JSON object: the run, each item (`status` lower
/// case, `reason`, the API key it creates) and the counts.
fn report_json(report: &Report) -> serde_json::Value {
    let (migrated, skipped, failed) = report.counts();
    let items: Vec<serde_json::Value> = report
        .items
        .iter()
        .map(|i| {
            let (status, reason) = status_of(&i.status);
            serde_json::json!({
                "id": i.id,
                "target": i.target,
                "status": status.to_lowercase(),
                "reason": reason,
                "api_key": i.key.as_ref().map(|(name, role)| serde_json::json!({"name": name, "role": role})),
            })
        })
        .collect();
    serde_json::json!({
        "plugin": report.plugin,
        "sha256": report.sha256,
        "dry_run": report.dry_run,
        "already_finished_at": report.already.as_ref().map(|r| r.finished_at),
        "items": items,
        "migrated": migrated,
        "skipped": skipped,
        "failed": failed,
    })
}

fn print_report(report: &Report, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(&report_json(report))?);
        return Ok(());
    }
    if let Some(done) = &report.already {
        println!(
            "{}: this run finished before ({}, {} migrated); nothing to do (use --again to run it anyway)",
            report.plugin,
            super::audit::format_ms(done.finished_at),
            done.migrated
        );
        return Ok(());
    }
    let width = report
        .items
        .iter()
        .map(|i| i.id.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 48);
    if !report.items.is_empty() {
        println!("{:<width$}  {:<40}  STATUS", "ITEM", "TARGET");
    }
    for i in &report.items {
        let (status, why) = status_of(&i.status);
        let line = format!(
            "{:<width$}  {:<40}  {status}{}",
            shown(&i.id),
            shown(&i.target),
            why.map(|w| format!(": {}", shown(w))).unwrap_or_default()
        );
        println!("{line}");
    }
    let (migrated, skipped, failed) = report.counts();
    if report.dry_run {
        // Every API key the run would create, with its role: the one kind
        // of item that grants access rather than storing a value.
        for i in &report.items {
            if let Some((name, role)) = &i.key {
                let note = match &i.status {
                    Status::Failed(r) => format!(": refused: {}", shown(r)),
                    Status::Skipped(_) => ": exists already".into(),
                    _ => String::new(),
                };
                println!("api key {} ({}){note}", shown(name), shown(role));
            }
        }
        // `counts` puts planned items with the skipped ones; a plan tells
        // them apart.
        let to_do = report
            .items
            .iter()
            .filter(|i| matches!(i.status, Status::WouldMigrate | Status::WouldRetire))
            .count();
        println!(
            "{}: dry run: {to_do} to do, {} skipped, {failed} would fail; nothing was changed",
            report.plugin,
            skipped - to_do
        );
    } else {
        println!(
            "{}: {migrated} migrated, {skipped} skipped, {failed} failed",
            report.plugin
        );
    }
    Ok(())
}

/// Plugin-supplied text on the operator's terminal: control characters
/// escaped, so a hostile id cannot rewrite the screen.
fn shown(text: &str) -> String {
    crate::runtime::redact::escape_controls(text)
}

/// A progress bar on stderr when it is a terminal; nothing otherwise.
struct Bar {
    on: bool,
    state: Mutex<(String, usize, usize)>,
}

impl Bar {
    fn new() -> Bar {
        Bar {
            on: std::io::stderr().is_terminal(),
            state: Mutex::new((String::new(), 0, 0)),
        }
    }

    fn draw(&self, phase: &str, done: usize, total: usize) {
        const WIDTH: usize = 30;
        let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{phase:<7} [{}{}] {done}/{total}",
            "#".repeat(filled),
            " ".repeat(WIDTH - filled)
        );
        let _ = err.flush();
    }
}

impl Progress for Bar {
    fn phase(&self, name: &str, total: usize) {
        if !self.on {
            return;
        }
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !s.0.is_empty() {
            eprintln!();
        }
        *s = (name.to_owned(), 0, total);
        self.draw(name, 0, total);
    }

    fn advance(&self, n: usize) {
        if !self.on {
            return;
        }
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.1 = (s.1 + n).min(s.2);
        self.draw(&s.0, s.1, s.2);
    }

    fn done(&self) {
        if self.on {
            eprintln!();
        }
    }
}
