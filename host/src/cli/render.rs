//! `keyward render`: a template on stdin, the rendered text on stdout.

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use zeroize::Zeroizing;

use super::remote::{Remote, RemoteError};
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
    /// Write the rendered text to FILE instead of stdout: atomically (a
    /// reader sees the old file or the whole new one) and readable by the
    /// owner only (mode 0600).
    #[arg(long, value_name = "FILE")]
    out: Option<std::path::PathBuf>,
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
    let rendered = match Remote::from_cli(cli)? {
        Some(remote) => {
            let mut answer = remote
                .post(
                    "/render",
                    &[],
                    &serde_json::json!({
                        "template": text,
                        "reason": args.reason,
                        "context": context_map(&args.context)?,
                    }),
                )
                .await?;
            let text = answer
                .get_mut("text")
                .map(serde_json::Value::take)
                .and_then(|v| match v {
                    serde_json::Value::String(s) => Some(s),
                    _ => None,
                })
                .ok_or_else(|| RemoteError::BadAnswer("no \"text\" in the answer".into()))?;
            Zeroizing::new(text.into_bytes())
        }
        None => {
            let vault = open_vault(cli).await?;
            template::render(&vault, &text, &ctx, &access).await?
        }
    };
    if let Some(path) = &args.out {
        write_private(path, &rendered)
            .with_context(|| format!("cannot write {}", path.display()))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&rendered)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `--context KEY=VALUE` pairs as the HTTP API takes them (checked by
/// [`Context::from_pairs`] first).
pub(super) fn context_map(
    pairs: &[String],
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let mut map = std::collections::BTreeMap::new();
    for pair in pairs {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--context {pair:?}: expected KEY=VALUE"))?;
        map.insert(key.to_owned(), value.to_owned());
    }
    Ok(map)
}

/// Writes `bytes` to `path` through a new mode-0600 file beside it, synced
/// and renamed over `path` (then the folder synced): a crash leaves the old
/// file or the new one, never a part, and at no moment can another user
/// read the rendered secrets.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the path names no file"))?;
    let mut nonce = [0u8; 8];
    crate::crypto::fill_random(&mut nonce);
    let temp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        hex::encode(nonce)
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&temp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(dir)?.sync_all()
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}
