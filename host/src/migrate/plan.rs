//! Checking what discovery found, before anything is written: ids and
//! units well-formed and not the host's, targets valid, claimed once and
//! inside what the run allows (no plugin scope, the run's target scopes,
//! operator keys only with the operator's consent), renames checked by
//! [`Allowance::check_rename`], and what the ledger already knows of each
//! item.

use std::collections::{BTreeSet, HashMap};

use super::allow::Allowance;
use super::{clip, Candidate, MAX_ID_LEN, RENAME_PREFIX};
use crate::auth::token::Role;
use crate::names::SecretRef;
use crate::runtime::{Binding, LegacyItem};
use crate::store::migrate as ledger;

/// Where an item comes from.
pub(super) enum Origin {
    /// The plugin's `discover`.
    Plugin,
    /// The host's in-store move of this reference, or why the move was
    /// refused (see `discover`).
    Rename(Result<SecretRef, String>),
}

/// Checks what discovery found against itself and the ledger.
pub(super) fn plan(
    items: Vec<(LegacyItem, Origin)>,
    known: &HashMap<String, ledger::LedgerRow>,
    allow: &Allowance,
) -> Vec<Candidate> {
    let mut by_target: HashMap<String, Vec<usize>> = HashMap::new();
    let mut ids = BTreeSet::new();
    let mut out: Vec<Candidate> = Vec::with_capacity(items.len());
    for (item, origin) in items {
        let mut failed = None;
        if matches!(origin, Origin::Plugin)
            && (item.id.starts_with(RENAME_PREFIX) || item.unit.starts_with(RENAME_PREFIX))
        {
            failed = Some(format!(
                "ids and units starting with {RENAME_PREFIX:?} are the host's"
            ));
        }
        if !ids.insert(item.id.clone()) {
            failed = Some(format!(
                "the plugin found two items with id {:?}",
                clip(&item.id)
            ));
        }
        let target_ok = match &item.binding {
            Binding::ApiKey { name, .. } => crate::auth::token::check_name(name)
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    (item.target == *name)
                        .then_some(())
                        .ok_or_else(|| "an api-key item's target must be its token name".to_owned())
                }),
            _ => SecretRef::parse(&item.target)
                .map(|_| ())
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = target_ok {
            failed.get_or_insert(format!("invalid target: {e}"));
        }
        if let Err(reason) = allowed(allow, &item) {
            failed.get_or_insert(reason);
        }
        if item.unit.is_empty() {
            failed.get_or_insert("the plugin gave no retire unit".into());
        }
        // Ids and units go into the ledger and onto the terminal.
        for (what, text) in [("id", &item.id), ("unit", &item.unit)] {
            if text.is_empty() || text.len() > MAX_ID_LEN || text.chars().any(char::is_control) {
                failed.get_or_insert(format!(
                    "the plugin gave an {what} that is empty, longer than {MAX_ID_LEN} bytes or has control characters"
                ));
            }
        }
        let rename_from = match origin {
            Origin::Plugin => None,
            Origin::Rename(Ok(old)) => Some(old),
            Origin::Rename(Err(reason)) => {
                failed = Some(reason);
                None
            }
        };
        let state = known.get(&item.id).map(|r| r.state);
        by_target
            .entry(normalise_target(&item.target))
            .or_default()
            .push(out.len());
        out.push(Candidate {
            item,
            state,
            failed,
            rename_from,
        });
    }
    for positions in by_target.values().filter(|p| p.len() > 1) {
        let ids: Vec<String> = positions.iter().map(|&i| clip(&out[i].item.id)).collect();
        for &i in positions {
            let reason = format!(
                "two items with one target {}: {}",
                out[i].item.target,
                ids.join(", ")
            );
            out[i].failed.get_or_insert(reason);
        }
    }
    out
}

/// Whether the run allows what `item` would create: a secret in a scope it
/// may write (never a plugin's), or an API key of a role it may mint.
fn allowed(allow: &Allowance, item: &LegacyItem) -> Result<(), String> {
    match &item.binding {
        Binding::ApiKey { role, .. } => match Role::parse(role) {
            Ok(Role::Resolver) => Ok(()),
            Ok(Role::Operator) if allow.operator_keys => Ok(()),
            Ok(Role::Operator) => Err(format!(
                "api key {} would have the operator role: a migrator creates resolver keys \
                 only, unless the operator passes --allow-operator-keys (boot entry: \
                 allow_operator_keys = true)",
                clip(&item.target)
            )),
            Err(_) => Err(format!("role {:?}: use resolver or operator", clip(role))),
        },
        _ => match SecretRef::parse(&item.target) {
            Ok(target) => allow.check_target(&target),
            // Reported as an invalid target above.
            Err(_) => Ok(()),
        },
    }
}

/// `NAME` and `global/NAME` are one target.
fn normalise_target(target: &str) -> String {
    match target.split_once('/') {
        None => format!("global/{target}"),
        Some(_) => target.to_owned(),
    }
}
