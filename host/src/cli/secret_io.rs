//! What `keyward secret` prints: tables for people, JSON lines for
//! scripts (`--json`), and the value it reads from stdin or a file.

use std::io::{IsTerminal, Read, Write};

use anyhow::{bail, Context};
use zeroize::Zeroizing;

use crate::vault::MAX_VALUE_LEN;

/// Reads the value, refusing more than the store accepts before buffering it all.
pub(super) fn read_value(
    from_file: Option<&std::path::Path>,
    keep_newline: bool,
) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let mut value = Zeroizing::new(Vec::new());
    let limit = MAX_VALUE_LEN as u64 + 3;
    match from_file {
        Some(path) => {
            let file = std::fs::File::open(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            file.take(limit).read_to_end(&mut value)?;
        }
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprintln!("reading the value from stdin; end with Ctrl-D");
            }
            stdin.lock().take(limit).read_to_end(&mut value)?;
        }
    }
    if !keep_newline {
        let len = value.len();
        if value.ends_with(b"\r\n") {
            value.truncate(len - 2);
        } else if value.ends_with(b"\n") {
            value.truncate(len - 1);
        }
    }
    if value.len() > MAX_VALUE_LEN {
        bail!("the value is larger than {MAX_VALUE_LEN} bytes, the largest a secret may be");
    }
    if value.is_empty() {
        bail!("the value is empty: pipe it on stdin or give --from-file");
    }
    Ok(value)
}

/// One JSON object per line, for scripts (`--json`).
pub(super) fn print_json_lines<T: serde::Serialize>(rows: &[T]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for row in rows {
        writeln!(out, "{}", serde_json::to_string(row)?)?;
    }
    Ok(())
}

pub(super) fn print_removed(
    scope: &dyn std::fmt::Display,
    name: &dyn std::fmt::Display,
    destroyed: bool,
) {
    if destroyed {
        println!("destroyed {scope}/{name} and every version of it");
    } else {
        println!(
            "deleted {scope}/{name}; `keyward secret undelete {name} --scope {scope}` brings it \
             back until the retention window (KEYWARD_DELETE_RETENTION) passes"
        );
    }
}

pub(super) fn print_limit(n: u32, destroyed: Option<usize>) {
    match (n, destroyed) {
        (0, _) => println!("keeps every version from now on"),
        (n, Some(d)) => println!("keeps {n} version(s) from now on; {d} older destroyed"),
        (n, None) => println!("keeps {n} version(s) from now on"),
    }
}

pub(super) fn print_deleted(
    rows: &[crate::store::secrets::DeletedMeta],
    json: bool,
) -> anyhow::Result<()> {
    if json {
        return print_json_lines(rows);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<24} {:<32} {:>7} {:<24} {:<24} BY",
        "SCOPE", "NAME", "VERSION", "DELETED", "UNDELETABLE UNTIL"
    )?;
    for row in rows {
        writeln!(
            out,
            "{:<24} {:<32} {:>7} {:<24} {:<24} {}",
            row.meta.scope,
            row.meta.name,
            row.meta.version,
            super::audit::format_ms(row.deleted_at),
            super::audit::format_ms(row.undeletable_until),
            row.deleted_by
        )?;
    }
    Ok(())
}

pub(super) fn print_versions(
    rows: &[crate::store::versions::VersionMeta],
    json: bool,
) -> anyhow::Result<()> {
    if json {
        return print_json_lines(rows);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:>7} {:<9} {:<24} {:<32} KEY",
        "VERSION", "STATE", "WRITTEN", "BY"
    )?;
    for row in rows {
        let state = match row.state {
            crate::store::versions::State::Current => "current",
            crate::store::versions::State::Kept => "kept",
            crate::store::versions::State::Destroyed => "destroyed",
        };
        writeln!(
            out,
            "{:>7} {:<9} {:<24} {:<32} {}",
            row.version,
            state,
            super::audit::format_ms(row.written_at),
            row.written_by,
            row.key_id
        )?;
    }
    Ok(())
}

pub(super) fn print_list(
    rows: &[crate::store::secrets::SecretMeta],
    json: bool,
) -> anyhow::Result<()> {
    if json {
        return print_json_lines(rows);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<24} {:<32} {:>7} {:<24} DESCRIPTION",
        "SCOPE", "NAME", "VERSION", "ROTATED"
    )?;
    for row in rows {
        writeln!(
            out,
            "{:<24} {:<32} {:>7} {:<24} {}",
            row.scope,
            row.name,
            row.version,
            super::audit::format_ms(row.rotated_at),
            row.description
        )?;
    }
    Ok(())
}
