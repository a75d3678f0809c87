//! `keyward run --env NAME=TEMPLATE … -- CMD ARGS…`: renders each template,
//! then replaces this process with CMD, the rendered values added to its
//! environment. Values live only in this process's memory and CMD's
//! environment: nothing is written to disk.

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Args as ClapArgs;
use zeroize::Zeroizing;

use super::remote::{Remote, RemoteError};
use super::{accessor, open_vault, Cli};
use crate::audit::Access;
use crate::resolve::Context;
use crate::template::{self, MAX_TEMPLATE_LEN};

/// The most variables one run may set (a bound on the work a file can ask for).
const MAX_VARS: usize = 1000;

/// Arguments of `keyward run`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// A variable to set: NAME=TEMPLATE, where TEMPLATE may hold
    /// ${SECRET:NAME} placeholders (repeatable).
    #[arg(long = "env", value_name = "NAME=TEMPLATE")]
    env: Vec<String>,
    /// A file of NAME=TEMPLATE lines (blank lines and lines starting with #
    /// are skipped; the template is the rest of the line, as written).
    #[arg(long, value_name = "FILE")]
    env_file: Vec<std::path::PathBuf>,
    /// Why the secrets are needed (recorded in the access log for each one).
    #[arg(long, default_value = "keyward run")]
    reason: String,
    /// Resolution context for bare names: instance=ID and/or agent_type=ID.
    #[arg(long, value_name = "KEY=VALUE")]
    context: Vec<String>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// One variable to set.
struct Var {
    name: String,
    template: String,
}

/// A POSIX-portable variable name: a letter or `_`, then letters, digits, `_`.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128
}

/// `NAME=TEMPLATE` as a variable; `origin` says where it came from.
fn parse_var(spec: &str, origin: &str) -> anyhow::Result<Var> {
    let Some((name, template)) = spec.split_once('=') else {
        bail!("{origin}: expected NAME=TEMPLATE, got no `=`");
    };
    if !valid_name(name) {
        bail!(
            "{origin}: {:?} is not a variable name (a letter or _, then letters, digits or _)",
            name.chars().take(64).collect::<String>()
        );
    }
    if template.len() > MAX_TEMPLATE_LEN {
        bail!("{origin}: the template of {name} is over {MAX_TEMPLATE_LEN} bytes");
    }
    Ok(Var {
        name: name.to_owned(),
        template: template.to_owned(),
    })
}

/// Every variable the command line and the files ask for, in order; a name
/// given twice is refused (which one was meant is not ours to guess).
fn collect(args: &Args) -> anyhow::Result<Vec<Var>> {
    let mut vars = Vec::new();
    for spec in &args.env {
        vars.push(parse_var(spec, "--env")?);
    }
    for path in &args.env_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the env file {}", path.display()))?;
        for (n, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let origin = format!("{}:{}", path.display(), n + 1);
            vars.push(parse_var(trimmed, &origin)?);
        }
    }
    if vars.len() > MAX_VARS {
        bail!("{} variables asked for; at most {MAX_VARS}", vars.len());
    }
    let mut seen = std::collections::HashSet::new();
    for var in &vars {
        if !seen.insert(var.name.as_str()) {
            bail!("{} is given more than once", var.name);
        }
    }
    Ok(vars)
}

pub(super) async fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let ctx = Context::from_pairs(args.context.iter().map(String::as_str))?;
    let access = Access::new(accessor(), args.reason.as_str())?;
    let vars = collect(args)?;
    // Malformed templates are refused before the store is even opened.
    for var in &vars {
        template::parse(&var.template).with_context(|| format!("the template of {}", var.name))?;
    }
    let texts: Vec<&str> = vars.iter().map(|v| v.template.as_str()).collect();
    // One lookup for every template: a missing secret anywhere fails the
    // run before CMD starts, with every missing one named.
    let rendered: Vec<Zeroizing<Vec<u8>>> = match Remote::from_cli(cli)? {
        Some(remote) => render_remote(&remote, &vars, args).await?,
        None => {
            let vault = open_vault(cli).await?;
            let rendered = template::render_many(&vault, &texts, &ctx, &access, None).await?;
            vault.db().close().await;
            rendered
        }
    };
    let mut command = std::process::Command::new(&args.command[0]);
    command.args(&args.command[1..]);
    for (var, rendered) in vars.iter().zip(&rendered) {
        if rendered.contains(&0) {
            bail!(
                "the value of {} holds a NUL byte, which an environment variable cannot",
                var.name
            );
        }
        command.env(&var.name, os_string(rendered));
    }
    drop(rendered);
    Ok(exec(command, &args.command[0]))
}

/// Every template rendered by the server in one request (one lookup, all
/// or nothing, held to the token's policy), in the order of `vars`.
async fn render_remote(
    remote: &Remote,
    vars: &[Var],
    args: &Args,
) -> anyhow::Result<Vec<Zeroizing<Vec<u8>>>> {
    let templates: serde_json::Map<String, serde_json::Value> = vars
        .iter()
        .map(|v| (v.name.clone(), v.template.clone().into()))
        .collect();
    let mut answer = remote
        .post(
            "/render",
            &[],
            &serde_json::json!({
                "templates": templates,
                "reason": args.reason,
                "context": super::render::context_map(&args.context)?,
            }),
        )
        .await?;
    let texts = answer
        .get_mut("texts")
        .and_then(serde_json::Value::as_object_mut)
        .ok_or_else(|| RemoteError::BadAnswer("no \"texts\" in the answer".into()))?;
    vars.iter()
        .map(
            |var| match texts.get_mut(&var.name).map(serde_json::Value::take) {
                Some(serde_json::Value::String(text)) => Ok(Zeroizing::new(text.into_bytes())),
                _ => Err(
                    RemoteError::BadAnswer(format!("no text for {} in the answer", var.name))
                        .into(),
                ),
            },
        )
        .collect()
}

#[cfg(unix)]
fn os_string(bytes: &[u8]) -> OsString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(bytes).to_owned()
}

#[cfg(not(unix))]
fn os_string(bytes: &[u8]) -> OsString {
    OsString::from(String::from_utf8_lossy(bytes).into_owned())
}

/// Replaces this process with `command` (so its exit code is the run's);
/// answers only if that failed: 127 when there is no such command, 126
/// when it cannot be run, as shells do.
#[cfg(unix)]
fn exec(mut command: std::process::Command, name: &std::ffi::OsStr) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let error = command.exec();
    eprintln!("keyward: cannot run {}: {error}", name.to_string_lossy());
    ExitCode::from(if error.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    })
}

/// Elsewhere: runs `command` as a child and passes its exit code on.
#[cfg(not(unix))]
fn exec(mut command: std::process::Command, name: &std::ffi::OsStr) -> ExitCode {
    match command.status() {
        Ok(status) => ExitCode::from(status.code().unwrap_or(1).clamp(0, 255) as u8),
        Err(error) => {
            eprintln!("keyward: cannot run {}: {error}", name.to_string_lossy());
            ExitCode::from(127)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_names() {
        for ok in ["A", "_x", "GITHUB_TOKEN", "a1"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "1A", "A-B", "A B", "É", &"A".repeat(129)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn specs() {
        let v = parse_var("T=token ${SECRET:X}=y", "--env").expect("parses");
        assert_eq!(
            (v.name.as_str(), v.template.as_str()),
            ("T", "token ${SECRET:X}=y")
        );
        assert!(parse_var("no-equals", "--env").is_err());
        assert!(parse_var("=x", "--env").is_err());
    }
}
