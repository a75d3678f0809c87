//! Commands about `keyward` itself: its version, shell completions and
//! manual pages. None opens the store or needs a key.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args as ClapArgs, CommandFactory as _};

use super::{Cli, Output};

/// The git commit this binary was built from (`unknown` outside a checkout).
pub const COMMIT: &str = env!("KEYWARD_GIT_COMMIT");

/// `keyward --version` and the first line of `keyward version`.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("KEYWARD_GIT_COMMIT"),
    ")"
);

/// Arguments of `keyward version`: only the global `--output` (text:
/// `keyward VERSION (commit COMMIT)`; json: `{"version", "commit"}`).
#[derive(ClapArgs, Debug)]
pub struct VersionArgs {}

/// Arguments of `keyward completions`.
#[derive(ClapArgs, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Arguments of `keyward man`.
#[derive(ClapArgs, Debug)]
pub struct ManArgs {
    /// Write one page per command (`keyward.1`, `keyward-secret.1`,
    /// `keyward-secret-set.1`, …) into this folder (created if missing)
    /// instead of printing `keyward.1` to stdout.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// `keyward version`.
pub fn version(output: Output) -> anyhow::Result<ExitCode> {
    let line = match output {
        Output::Text => format!("keyward {LONG_VERSION}"),
        Output::Json => serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "commit": COMMIT,
        })
        .to_string(),
    };
    writeln!(std::io::stdout(), "{line}").context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// `keyward completions SHELL`: the completion script on stdout.
pub fn completions(args: &CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "keyward", &mut out);
    std::io::stdout()
        .write_all(&out)
        .context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// `keyward man [--dir DIR]`.
pub fn man(args: &ManArgs) -> anyhow::Result<ExitCode> {
    let cmd = Cli::command();
    match &args.dir {
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .context("cannot render the manual page")?;
            std::io::stdout()
                .write_all(&out)
                .context("cannot write to stdout")?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("cannot write the manual pages into {}", dir.display()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
