//! `keyward plugin manifest FILE.wasm [--write]`: checks, or fills in, the
//! `sha256` a drop-in plugin's manifest must carry. The text is edited in
//! place (comments and order kept) and the result is parsed as the loader
//! would before it replaces the file.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use sha2::Digest as _;

use crate::runtime::{registry, Manifest};

pub(super) fn run(wasm: &Path, manifest: Option<&Path>, write: bool) -> anyhow::Result<ExitCode> {
    let beside = wasm.with_extension("toml");
    let manifest = manifest.unwrap_or(&beside);
    let sha256 = hash(wasm)?;
    let text = std::fs::read_to_string(manifest).with_context(|| {
        format!(
            "{}: cannot read the manifest (keyward plugin new writes one; see docs/plugins.md, \"The manifest\")",
            manifest.display()
        )
    })?;
    let manifest_stem = stem(manifest)?;
    let parsed = Manifest::parse(&text, manifest_stem)
        .map_err(|e| anyhow::anyhow!("{}: manifest: {e}", manifest.display()))?;
    // The loader pairs NAME.wasm with NAME.toml: a mismatch never loads.
    let wasm_stem = stem(wasm)?;
    if wasm_stem != parsed.name {
        bail!(
            "{}: the manifest names the plugin {:?}, but the component is {}: Keyward loads NAME.wasm with NAME.toml",
            manifest.display(),
            parsed.name,
            wasm.display()
        );
    }
    if !write {
        return match parsed.sha256 {
            None => bail!(
                "{}: no sha256 (a drop-in plugin needs one); `keyward plugin manifest {} --write` fills it in",
                manifest.display(),
                wasm.display()
            ),
            Some(expected) if expected != sha256 => bail!(
                "{}: sha256 mismatch: the manifest says {expected}, {} is {sha256}; rebuilt? `keyward plugin manifest {} --write` updates it",
                manifest.display(),
                wasm.display(),
                wasm.display()
            ),
            Some(_) => {
                println!("{}: sha256 {sha256} matches {}", manifest.display(), wasm.display());
                Ok(ExitCode::SUCCESS)
            }
        };
    }
    if parsed.sha256.as_deref() == Some(sha256.as_str()) {
        println!("{}: sha256 {sha256} (unchanged)", manifest.display());
        return Ok(ExitCode::SUCCESS);
    }
    let updated = with_sha256(&text, &sha256);
    match Manifest::parse(&updated, manifest_stem) {
        Ok(m) if m.sha256.as_deref() == Some(sha256.as_str()) => {}
        _ => bail!(
            "{}: cannot place the sha256 in this text; add the line sha256 = \"{sha256}\" before the first [table]",
            manifest.display()
        ),
    }
    replace(manifest, updated.as_bytes())?;
    println!("{}: sha256 = {sha256}", manifest.display());
    Ok(ExitCode::SUCCESS)
}

/// Lower-case hex sha256 of the component, read with the loader's size cap.
fn hash(wasm: &Path) -> anyhow::Result<String> {
    let meta = std::fs::metadata(wasm).with_context(|| format!("{}", wasm.display()))?;
    if !meta.is_file() {
        bail!("{}: not a file", wasm.display());
    }
    if meta.len() > registry::MAX_WASM_BYTES {
        bail!(
            "{}: larger than {} bytes, which Keyward refuses to load",
            wasm.display(),
            registry::MAX_WASM_BYTES
        );
    }
    let bytes = std::fs::read(wasm).with_context(|| format!("{}", wasm.display()))?;
    Ok(hex::encode(sha2::Sha256::digest(&bytes)))
}

fn stem(path: &Path) -> anyhow::Result<&str> {
    path.file_stem()
        .and_then(|s| s.to_str())
        .with_context(|| format!("{}: no file name", path.display()))
}

/// `text` with its top-level `sha256 = …` line set to `sha256`: replaced
/// where it is, else inserted after the top-level `version` line, else
/// before the first table, else at the end.
pub fn with_sha256(text: &str, sha256: &str) -> String {
    let line = format!("sha256 = \"{sha256}\"");
    let lines: Vec<&str> = text.lines().collect();
    let top_end = lines
        .iter()
        .position(|l| l.trim_start().starts_with('['))
        .unwrap_or(lines.len());
    let key_of = |l: &str| -> Option<String> {
        let l = l.trim_start();
        let (key, _) = l.split_once('=')?;
        Some(key.trim().trim_matches('"').to_owned())
    };
    let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    if let Some(i) = (0..top_end).find(|&i| key_of(lines[i]).as_deref() == Some("sha256")) {
        out[i] = line;
    } else {
        let at = (0..top_end)
            .find(|&i| key_of(lines[i]).as_deref() == Some("version"))
            .map_or(top_end, |i| i + 1);
        out.insert(at, line);
    }
    let mut joined = out.join("\n");
    joined.push('\n');
    joined
}

/// Replaces `path` with `bytes` through a synced temp file and a rename, so
/// a crash leaves the old manifest or the new one.
fn replace(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".keyward-tmp");
    let tmp = path.with_file_name(name);
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.with_context(|| format!("{}: cannot write it", path.display()))
}

#[cfg(test)]
mod tests {
    use super::with_sha256;

    const SHA: &str = "ab00000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn the_hash_goes_after_version_or_replaces_the_old_one() {
        let text = "# c\nname = \"x\"\nkind = \"forge\"\nversion = \"1\"\n\n[grants]\nsha256 = 1\n";
        let out = with_sha256(text, SHA);
        assert_eq!(
            out,
            format!("# c\nname = \"x\"\nkind = \"forge\"\nversion = \"1\"\nsha256 = \"{SHA}\"\n\n[grants]\nsha256 = 1\n")
        );
        let again = with_sha256(&out.replace("ab00", "cd00"), SHA);
        assert_eq!(again, out, "replaced in place, not added twice");
        assert_eq!(
            with_sha256("name = \"x\"\n[limits]\n", SHA),
            format!("name = \"x\"\nsha256 = \"{SHA}\"\n[limits]\n")
        );
    }
}
