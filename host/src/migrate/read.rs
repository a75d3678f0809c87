//! Phase 3a, read: the values of one batch — the plugin's `read` for its
//! items, the store for in-store moves — each checked before it is written.

use super::drive::Phase;
use super::Candidate;
use crate::audit::Action;
use crate::crypto::SecretBytes;
use crate::names::SecretRef;
use crate::resolve::Context;
use crate::vault::MAX_VALUE_LEN;

/// The values of the candidates at `chunk`, one result per position: a
/// value, or why it cannot be written (not read, empty, too large).
pub(super) async fn read_values(
    p: &Phase<'_>,
    candidates: &[Candidate],
    chunk: &[usize],
) -> Vec<Result<SecretBytes, String>> {
    let mut out: Vec<Option<Result<SecretBytes, String>>> =
        (0..chunk.len()).map(|_| None).collect();
    let (mut moved, mut from_plugin) = (Vec::new(), Vec::new());
    for (k, &i) in chunk.iter().enumerate() {
        match &candidates[i].rename_from {
            Some(old) => moved.push((k, old.clone())),
            None => from_plugin.push(k),
        }
    }
    if !moved.is_empty() {
        let olds: Vec<SecretRef> = moved.iter().map(|(_, old)| old.clone()).collect();
        for ((k, _), value) in moved.iter().zip(reveal_moved(p, &olds).await) {
            out[*k] = Some(value);
        }
    }
    if !from_plugin.is_empty() {
        let ids: Vec<String> = from_plugin
            .iter()
            .map(|&k| candidates[chunk[k]].item.id.clone())
            .collect();
        match p
            .runtime
            .migration_read(p.vault, &p.request.plugin, &p.request.source, &ids)
            .await
        {
            Ok(values) => {
                for (&k, v) in from_plugin.iter().zip(values) {
                    out[k] = Some(v);
                }
            }
            Err(e) => {
                for &k in &from_plugin {
                    out[k] = Some(Err(format!("read failed: {e}")));
                }
            }
        }
    }
    out.into_iter()
        .map(|v| {
            v.unwrap_or_else(|| Err("not read".into()))
                .and_then(check_value)
        })
        .collect()
}

/// The stored values of the secrets a batch moves, read as the plugin via
/// the operator: one lookup for the whole batch (one group commit). If any
/// of them cannot be read, the batch is read again one by one so that each
/// fails (or not) on its own.
async fn reveal_moved(p: &Phase<'_>, olds: &[SecretRef]) -> Vec<Result<SecretBytes, String>> {
    let ctx = Context::default();
    let via = &p.access.via;
    if let Ok(values) = p.vault.reveal_all(olds, &ctx, via, Action::Reveal).await {
        return values.into_iter().map(Ok).collect();
    }
    let mut out = Vec::with_capacity(olds.len());
    for old in olds {
        out.push(
            p.vault
                .reveal(old, &ctx, via, Action::Reveal)
                .await
                .map(|(_, v)| v)
                .map_err(|e| e.to_string()),
        );
    }
    out
}

fn check_value(v: SecretBytes) -> Result<SecretBytes, String> {
    if v.is_empty() {
        return Err("empty value".into());
    }
    if v.len() > MAX_VALUE_LEN {
        return Err(format!(
            "a value of {} bytes is larger than the {MAX_VALUE_LEN}-byte limit",
            v.len()
        ));
    }
    Ok(v)
}
