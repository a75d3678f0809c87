//! `keyward plugin list|check|reload|new|manifest`.

mod manifest;
mod new;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Subcommand;

use super::remote::{self, Remote};
use super::{exit, Cli};
use crate::config;
use crate::runtime::view::PluginList;
use crate::runtime::{self, Options, Runtime};

/// Plugin commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// List loaded plugins (name, kind, version, sha256, source, grants) and
    /// any that were refused, with why. Exits 1 if any was refused.
    List,
    /// Validate a component (and its manifest): world, imports, exports,
    /// hash. Exits non-zero with the reason on any problem.
    Check {
        /// The component, e.g. forgejo.wasm.
        wasm: PathBuf,
        /// Its manifest [default: the .toml beside the .wasm, if present].
        #[arg(long)]
        manifest: Option<PathBuf>,
    },
    /// Tell the running `keyward serve` (found by the pid file in the data
    /// folder) to reload its plugins now, instead of at its next folder scan.
    /// A pid file no live server holds (left by a killed one) is reported
    /// as stale, and nobody is signalled.
    Reload,
    /// Write a new plugin project into DIR (default ./NAME): the skeleton,
    /// a `build` script that makes dist/NAME.wasm + dist/NAME.toml, a
    /// manifest and a README. It builds outside Keyward's repository.
    New(new::NewArgs),
    /// Check that the manifest beside FILE.wasm (NAME.toml) carries the
    /// component's sha256, or fill it in with --write. Exits 1 on a missing
    /// or mismatched hash, a manifest that does not parse, or one whose
    /// name is not the component's file name.
    Manifest {
        /// The component, e.g. dist/my-forge.wasm.
        wasm: PathBuf,
        /// Its manifest [default: the .toml beside the .wasm].
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Write the sha256 into the manifest (in place, comments kept)
        /// instead of checking it.
        #[arg(long)]
        write: bool,
    },
}

/// The runtime options the global flags and environment describe.
pub(crate) fn options(cli: &Cli) -> Options {
    let data_dir = config::data_dir(cli.data_dir.as_deref());
    Options {
        plugins_dir: cli.plugins_dir.clone(),
        cache_dir: Some(data_dir.join("plugin-cache")),
        builtins: true,
        hosts: Default::default(),
    }
}

pub(super) async fn run(cli: &Cli, command: &Command) -> anyhow::Result<ExitCode> {
    // A file here is worked on here, whatever the mode.
    let remote = match command {
        Command::List | Command::Reload => Remote::from_cli(cli)?,
        Command::Check { .. } | Command::New(_) | Command::Manifest { .. } => None,
    };
    match (command, remote) {
        (Command::List, Some(remote)) => list_remote(cli, &remote).await,
        (Command::Reload, Some(remote)) => reload_remote(&remote).await,
        (Command::List, None) => list(cli).await,
        (Command::Check { wasm, manifest }, _) => check(wasm, manifest.as_ref(), cli.json(false)),
        (Command::Reload, None) => reload(cli),
        (Command::New(args), _) => new::run(args),
        (
            Command::Manifest {
                wasm,
                manifest,
                write,
            },
            _,
        ) => manifest::run(wasm, manifest.as_deref(), *write),
    }
}

async fn list(cli: &Cli) -> anyhow::Result<ExitCode> {
    let options = options(cli);
    let rt = tokio::task::spawn_blocking(move || Runtime::start(options)).await??;
    print_plugins(&PluginList::of(&rt.registry(), &[]), cli.json(false))
}

/// `plugin list` through a server: what its runtime loaded and refused.
async fn list_remote(cli: &Cli, remote: &Remote) -> anyhow::Result<ExitCode> {
    let list: PluginList = remote::typed(remote.get("/plugins", &[]).await?)?;
    print_plugins(&list, cli.json(false))
}

/// `plugin list`'s output, the same from this machine's runtime or a
/// server's; exit 1 if a file was refused.
fn print_plugins(list: &PluginList, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string(list)?);
    } else {
        if list.plugins.is_empty() {
            println!("no plugins loaded");
        }
        for p in &list.plugins {
            println!("{}", p.name);
            println!("  kind:     {} (world {})", p.kind, p.world);
            println!("  version:  {}", p.version);
            if !p.description.is_empty() {
                println!("  about:    {}", p.description);
            }
            println!("  sha256:   {}", p.sha256);
            println!("  source:   {}", p.source);
            println!("  reveal:   {}", none_if_empty(&p.grants.reveal));
            println!("  use:      {}", none_if_empty(&p.grants.uses));
            println!("  origins:  {}", none_if_empty(&p.grants.origins));
            let l = &p.limits;
            println!(
                "  limits:   memory {} MiB, wall time {} ms, response {} bytes, {} outbound calls, {} log bytes, {} refusals",
                l.memory_bytes >> 20,
                l.wall_time_ms,
                l.response_bytes,
                l.outbound_calls,
                l.log_bytes,
                l.refusals
            );
        }
        for refused in &list.refused {
            println!("REFUSED {}: {}", refused.file, refused.problem);
        }
    }
    Ok(if list.refused.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FAILURE)
    })
}

/// `plugin reload` through a server: `POST /plugins/reload`.
async fn reload_remote(remote: &Remote) -> anyhow::Result<ExitCode> {
    let answer = remote.post_empty("/plugins/reload", &[]).await?;
    let loaded: Vec<&str> = remote::array_at(&answer, "loaded")?
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    println!(
        "reloaded: {}",
        none_if_empty(&loaded.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    );
    let refused = remote::array_at(&answer, "refused")?;
    for r in refused {
        println!(
            "REFUSED {}: {}",
            r["file"].as_str().unwrap_or(""),
            r["problem"].as_str().unwrap_or("")
        );
    }
    Ok(if refused.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FAILURE)
    })
}

pub(super) fn none_if_empty(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items.join(", ")
    }
}

fn check(
    wasm: &std::path::Path,
    manifest: Option<&PathBuf>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let beside = wasm.with_extension("toml");
    let manifest = manifest
        .cloned()
        .or_else(|| beside.is_file().then_some(beside));
    let report = runtime::check(wasm, manifest.as_deref())?;
    if json {
        let manifest = report.manifest.as_ref().map(
            |m| serde_json::json!({"name": m.name, "version": m.version, "kind": m.kind.as_str()}),
        );
        let answer = serde_json::json!({
            "file": wasm.display().to_string(),
            "sha256": report.sha256,
            "worlds": report.worlds,
            "manifest": manifest,
            "imports": report.imports,
            "exports": report.exports,
        });
        println!("{answer}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}: ok", wasm.display());
    println!("  sha256:  {}", report.sha256);
    println!("  worlds:  {}", report.worlds.join(", "));
    if let Some(m) = &report.manifest {
        println!(
            "  manifest: {} {} (kind {})",
            m.name,
            m.version,
            m.kind.as_str()
        );
    }
    println!("  imports:");
    for i in &report.imports {
        println!("    {i}");
    }
    println!("  exports:");
    for e in &report.exports {
        println!("    {e}");
    }
    Ok(ExitCode::SUCCESS)
}

fn reload(cli: &Cli) -> anyhow::Result<ExitCode> {
    let pid_file = config::data_dir(cli.data_dir.as_deref()).join(super::serve::PID_FILE);
    let no_server = || {
        format!(
            "no running keyward serve found: cannot read {} (is the server running with the same --data-dir?)",
            pid_file.display()
        )
    };
    let file = std::fs::File::open(&pid_file).with_context(no_server)?;
    let text = std::io::read_to_string(&file).with_context(no_server)?;
    let pid: i32 = text
        .trim()
        .parse()
        .with_context(|| format!("{} does not hold a process id", pid_file.display()))?;
    let pid = rustix::process::Pid::from_raw(pid)
        .with_context(|| format!("{} does not hold a process id", pid_file.display()))?;
    // A live server holds an exclusive lock on its pid file; a lock we can
    // take means the server that wrote the file is gone and the pid may be
    // anyone's now.
    match file.try_lock_shared() {
        Ok(()) => bail!(
            "{} is stale: no keyward serve holds it (the server that wrote it was killed?), \
             so pid {} is not signalled. Start keyward serve, or delete the file",
            pid_file.display(),
            pid.as_raw_nonzero()
        ),
        Err(std::fs::TryLockError::WouldBlock) => {}
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e)
                .with_context(|| format!("cannot check the lock on {}", pid_file.display()))
        }
    }
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).with_context(|| {
        format!(
            "cannot signal process {} from {}: is keyward serve still running?",
            pid.as_raw_nonzero(),
            pid_file.display()
        )
    })?;
    println!(
        "asked keyward serve (pid {}) to reload its plugins; its log lists what loaded",
        pid.as_raw_nonzero()
    );
    Ok(ExitCode::SUCCESS)
}
