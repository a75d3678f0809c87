//! `keyward render`: a template on stdin, the rendered text on stdout.

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;

use super::{accessor, open_vault, Cli};
use crate::audit::Access;
use crate::resolve::Context;
use crate::template::{self, MAX_TEMPLATE_LEN};

/// Arguments of `keyward render`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Why the secrets are needed (recorded in the access log for each one).
    #[arg(long, default_value = "keyward render")]
    reason: String,
    /// Resolution context for bare names: instance=ID and/or agent_type=ID.
    /// Bare names resolve instance → agent_type → global.
    #[arg(long, value_name = "KEY=VALUE")]
    context: Vec<String>,
}

pub(super) async fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let ctx = Context::from_pairs(args.context.iter().map(String::as_str))?;
    let access = Access::new(accessor(), args.reason.as_str())?;
    let mut input = Vec::new();
    std::io::stdin()
        .lock()
        .take(MAX_TEMPLATE_LEN as u64 + 1)
        .read_to_end(&mut input)?;
    let text = String::from_utf8(input).context("the template on stdin is not UTF-8")?;
    // Malformed text is refused before the store is even opened.
    template::parse(&text)?;
    let vault = open_vault(cli).await?;
    let rendered = template::render(&vault, &text, &ctx, &access).await?;
    let mut out = std::io::stdout().lock();
    out.write_all(&rendered)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
