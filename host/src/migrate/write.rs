//! Writing a batch of legacy values: every new secret (or API token), its
//! binding, its ledger row and its access-log entry in one transaction, so
//! an item is either written and recorded or neither. Per-item refusals (a
//! target holding another value, an unknown agent type) are checked before
//! that item writes anything, so they never abort the batch.

use std::collections::{HashMap, HashSet};

use sqlx::AnyConnection;

use super::{Candidate, RunAccess};
use crate::audit::{Access, AccessEntry, Action, Outcome};
use crate::auth::token::{legacy_id, token_hash, Role};
use crate::crypto::{secret_aad, SecretBytes};
use crate::names::{Scope, SecretRef};
use crate::runtime::Binding;
use crate::store::migrate::{self as ledger, LedgerRow, State};
use crate::store::now_ms;
use crate::store::{agents, secrets, tokens};
use crate::vault::{Vault, VaultError, MAX_DESCRIPTION_LEN};

/// What the batch's look-ups found, read once per batch rather than once
/// per item (a 10,000-item run spent most of its time on per-item queries).
struct Known {
    /// Ledger rows owning the batch's targets, by target.
    owners: HashMap<String, LedgerRow>,
    /// Secrets at the batch's targets, by (scope, name).
    secrets: HashMap<(String, String), secrets::SecretRow>,
    /// Agent types among the bindings' names.
    types: HashSet<String>,
    /// Instances among the bindings' names: id → agent type.
    instances: HashMap<String, String>,
}

/// Writes `batch`; one result per item, in order. `Err` of the whole call
/// means the transaction failed and nothing of the batch was written.
pub(super) async fn batch(
    vault: &Vault,
    plugin: &str,
    source: &str,
    run: &RunAccess,
    batch: &[(&Candidate, SecretBytes)],
) -> Result<Vec<Result<(), String>>, VaultError> {
    let backend = vault.db().backend;
    let (mut tx, head) = vault.begin_logged().await?;
    let known = look_up(&mut tx, backend, batch).await?;
    let mut entries = Vec::new();
    let mut rows = Vec::new();
    let mut results = Vec::with_capacity(batch.len());
    for (candidate, value) in batch {
        match one(
            &mut tx,
            vault,
            &known,
            (plugin, source),
            run,
            candidate,
            value,
            &mut entries,
        )
        .await?
        {
            Ok((entry, row)) => {
                entries.extend(entry);
                rows.push(row);
                results.push(Ok(()));
            }
            Err(reason) => results.push(Err(reason)),
        }
    }
    ledger::written_many(&mut tx, backend, &rows).await?;
    vault.commit_logged(tx, head, &entries).await?;
    Ok(results)
}

async fn look_up(
    conn: &mut AnyConnection,
    backend: crate::store::Backend,
    batch: &[(&Candidate, SecretBytes)],
) -> Result<Known, VaultError> {
    let targets: Vec<&str> = batch.iter().map(|(c, _)| c.item.target.as_str()).collect();
    let owners = ledger::by_targets(conn, backend, &targets)
        .await?
        .into_iter()
        .map(|r| (r.target.clone(), r))
        .collect();
    let refs: Vec<(String, String)> = batch
        .iter()
        .filter(|(c, _)| !matches!(c.item.binding, Binding::ApiKey { .. }))
        .filter_map(|(c, _)| SecretRef::parse(&c.item.target).ok())
        .map(|r| {
            let scope = r.scope.clone().unwrap_or_else(Scope::global);
            (scope.as_str().to_owned(), r.name.as_str().to_owned())
        })
        .collect();
    let pairs: Vec<(&str, &str)> = refs.iter().map(|(s, n)| (s.as_str(), n.as_str())).collect();
    let secrets = if pairs.is_empty() {
        HashMap::new()
    } else {
        secrets::get_pairs(&mut *conn, backend, &pairs)
            .await?
            .into_iter()
            .map(|r| ((r.meta.scope.clone(), r.meta.name.clone()), r))
            .collect()
    };
    let mut names: Vec<&str> = Vec::new();
    for (c, _) in batch {
        match &c.item.binding {
            Binding::AgentTypeToken(agent) => names.push(agent),
            Binding::InstanceToken {
                agent_type,
                instance,
            } => {
                names.push(agent_type);
                names.push(instance);
            }
            Binding::None | Binding::ApiKey { .. } => {}
        }
    }
    let types = ledger::agent_types_among(conn, backend, &names).await?;
    let instances = ledger::instances_among(conn, backend, &names).await?;
    Ok(Known {
        owners,
        secrets,
        types,
        instances,
    })
}

/// One item: `Ok(Ok((entry, ledger row)))` written (the entry is none when
/// the store already held exactly this value), `Ok(Err(reason))` refused,
/// `Err` a database failure.
/// A comparison with a stored value is a read on the plugin's behalf: its
/// row (as `plugin:<name> via <operator>`) goes into `reads` whatever the
/// item's outcome.
#[allow(clippy::type_complexity, clippy::too_many_arguments)] // the three outcomes, spelled out
async fn one(
    conn: &mut AnyConnection,
    vault: &Vault,
    known: &Known,
    (plugin, source): (&str, &str),
    run: &RunAccess,
    c: &Candidate,
    value: &SecretBytes,
    reads: &mut Vec<AccessEntry>,
) -> Result<Result<(Option<AccessEntry>, LedgerRow), String>, VaultError> {
    let access = &run.operator;
    if let Some(owner) = known.owners.get(&c.item.target) {
        if owner.plugin != plugin || owner.source != source || owner.item_id != c.item.id {
            return Ok(Err(format!(
                "target {} was already migrated from {} item {:?}",
                c.item.target, owner.plugin, owner.item_id
            )));
        }
    }
    let detail = format!("migrated by {plugin} from {}", clip(&c.item.id, 200));
    let (secret_id, version, entry) = match &c.item.binding {
        Binding::ApiKey { name, role } => {
            match api_key(conn, vault, name, role, value, &detail, access).await? {
                Ok(entry) => (None, None, entry),
                Err(reason) => return Ok(Err(reason)),
            }
        }
        binding => {
            let reference = SecretRef::parse(&c.item.target)?;
            let scope = reference.scope.clone().unwrap_or_else(Scope::global);
            if let Err(reason) = check_binding(known, binding) {
                return Ok(Err(reason));
            }
            let description = description(&c.item.description);
            let now = now_ms();
            let (scope_s, name_s) = (scope.as_str(), reference.name.as_str());
            let key = (scope_s.to_owned(), name_s.to_owned());
            let (id, version, entry) = match known.secrets.get(&key) {
                None => {
                    let sealed = vault
                        .keyring()
                        .seal(value.expose(), &secret_aad(scope_s, name_s, 1));
                    let new = secrets::NewValue {
                        sealed: &sealed,
                        written_by: access.accessor(),
                        now,
                    };
                    let id = secrets::insert(conn, scope_s, name_s, &description, new).await?;
                    let entry =
                        AccessEntry::new(access, Action::Create, Outcome::Ok, scope_s, name_s);
                    (id, 1, Some(entry))
                }
                // Deleted (an operator cleared the name for it): written as
                // the next version, the deleted value kept as a version.
                Some(row) if row.deleted_at.is_some() => {
                    let note = " (it was deleted: live again)";
                    match next_version(conn, vault, row, value, access, now, note).await? {
                        Ok((version, entry, destroyed)) => {
                            reads.extend(destroyed);
                            (row.id, version, Some(entry))
                        }
                        Err(()) => {
                            return Ok(Err(format!("{} changed during the run", c.item.target)))
                        }
                    }
                }
                Some(row) => {
                    let aad = secret_aad(scope_s, name_s, row.meta.version);
                    let opened = vault.keyring().open(&row.sealed, &aad);
                    reads.push(
                        AccessEntry::new(
                            &run.via,
                            Action::Reveal,
                            if opened.is_ok() {
                                Outcome::Ok
                            } else {
                                Outcome::Error
                            },
                            scope_s,
                            name_s,
                        )
                        .with_detail(format!(
                            "compared with the value of {} (not returned)",
                            clip(&c.item.id, 200)
                        )),
                    );
                    let same = opened
                        .map(|v| crate::crypto::ct_eq(v.expose(), value.expose()))
                        .unwrap_or(false);
                    if same {
                        // Already there (a crash after an earlier commit
                        // of the same value, or the operator set it).
                        (row.id, row.meta.version, None)
                    } else if c.state.is_some() {
                        // This item wrote it before; a run with --again
                        // brings the legacy value over as a new version.
                        match next_version(conn, vault, row, value, access, now, "").await? {
                            Ok((version, entry, destroyed)) => {
                                reads.extend(destroyed);
                                (row.id, version, Some(entry))
                            }
                            Err(()) => {
                                return Ok(Err(format!("{} changed during the run", c.item.target)))
                            }
                        }
                    } else {
                        return Ok(Err(format!(
                            "{} already exists in the store with another value; not \
                             overwritten (delete it, or map the item elsewhere)",
                            c.item.target
                        )));
                    }
                }
            };
            bind(conn, known, binding, id, now).await?;
            (
                Some(id),
                Some(version),
                entry.map(|e| e.with_detail(detail.clone())),
            )
        }
    };
    let row = LedgerRow {
        plugin: plugin.to_owned(),
        source: source.to_owned(),
        item_id: c.item.id.clone(),
        unit: c.item.unit.clone(),
        target: c.item.target.clone(),
        state: State::Written,
        secret_id,
        version,
        written_at: now_ms(),
        retired_at: None,
    };
    Ok(Ok((entry, row)))
}

/// Writes `value` as `row`'s next version; the value it replaces is kept
/// as a version, so an import can be rolled back. `Ok(Err(()))`: the row
/// changed during the run. Answers the version, its `replace` entry and the
/// `destroy` entries of versions past the limit.
#[allow(clippy::type_complexity)]
async fn next_version(
    conn: &mut AnyConnection,
    vault: &Vault,
    row: &crate::store::secrets::SecretRow,
    value: &SecretBytes,
    access: &Access,
    now: i64,
    note: &str,
) -> Result<Result<(i64, AccessEntry, Vec<AccessEntry>), ()>, VaultError> {
    let (scope, name) = (row.meta.scope.as_str(), row.meta.name.as_str());
    let version = row.meta.version + 1;
    let sealed = vault
        .keyring()
        .seal(value.expose(), &secret_aad(scope, name, version));
    let destroyed = match vault
        .supersede(conn, row, version, &sealed, access, now)
        .await
    {
        Ok(destroyed) => destroyed,
        Err(VaultError::Conflict { .. }) => return Ok(Err(())),
        Err(e) => return Err(e),
    };
    let entry = AccessEntry::new(access, Action::Replace, Outcome::Ok, scope, name)
        .with_detail(format!("version {version}{note}"));
    Ok(Ok((version, entry, destroyed)))
}

/// A legacy client API key becomes an API token: its hash, never the key.
async fn api_key(
    conn: &mut AnyConnection,
    vault: &Vault,
    name: &str,
    role: &str,
    value: &SecretBytes,
    detail: &str,
    access: &Access,
) -> Result<Result<Option<AccessEntry>, String>, VaultError> {
    let Ok(role) = Role::parse(role) else {
        return Ok(Err(format!("role {role:?}: use resolver or operator")));
    };
    let Ok(key) = std::str::from_utf8(value.expose()) else {
        return Ok(Err("the client key is not text".into()));
    };
    let Some(id) = legacy_id(vault.keyring().legacy_id_key(), key) else {
        return Ok(Err(format!(
            "not usable as a client key: use {}-{} printable ASCII characters, not starting with kw_",
            crate::auth::token::LEGACY_MIN_LEN,
            crate::auth::token::LEGACY_MAX_LEN
        )));
    };
    let hash = token_hash(key);
    // Found by its hash first: the id is keyed by the master key, so the
    // same key imported again after a key rotation has another id.
    if tokens::id_of_hash(&mut *conn, &hash).await?.is_some() {
        return Ok(Ok(None));
    }
    if tokens::id_taken(&mut *conn, &id).await? {
        return Ok(Err(format!("token id {id} is taken by another key")));
    }
    let row = tokens::TokenRow {
        id: id.clone(),
        name: name.to_owned(),
        role: role.as_str().to_owned(),
        created_at: now_ms(),
        last_used_at: None,
        revoked_at: None,
        expires_at: None,
        policy: None,
    };
    tokens::insert(conn, &row, &hash).await?;
    Ok(Ok(Some(
        AccessEntry::new(access, Action::Create, Outcome::Ok, "api_token", &id)
            .with_detail(detail.to_owned()),
    )))
}

/// Refuses a binding that cannot be made, before anything is written.
fn check_binding(known: &Known, binding: &Binding) -> Result<(), String> {
    let Binding::InstanceToken {
        agent_type,
        instance,
    } = binding
    else {
        return Ok(());
    };
    if !known.types.contains(agent_type) {
        return Err(format!(
            "no agent type {agent_type:?} for instance {instance:?}"
        ));
    }
    match known.instances.get(instance) {
        Some(owner) if owner != agent_type => Err(format!(
            "instance {instance:?} belongs to agent type {owner:?}, not {agent_type:?}"
        )),
        _ => Ok(()),
    }
}

/// Links secret `id` as `binding` says.
async fn bind(
    conn: &mut AnyConnection,
    known: &Known,
    binding: &Binding,
    id: i64,
    now: i64,
) -> Result<(), VaultError> {
    match binding {
        Binding::None | Binding::ApiKey { .. } => {}
        Binding::AgentTypeToken(agent) => {
            // An instance override row with this id is the more specific
            // owner; otherwise the agent type (if it exists yet: one
            // created later adopts `agent_type:<name>/FORGE_TOKEN`).
            if known.instances.contains_key(agent) {
                agents::set_instance_token(conn, agent, Some(id), now).await?;
            } else if known.types.contains(agent) {
                agents::set_token(conn, agent, Some(id), now).await?;
            }
        }
        Binding::InstanceToken {
            agent_type,
            instance,
        } => {
            agents::upsert_instance(conn, instance, agent_type, Some(id), now).await?;
        }
    }
    Ok(())
}

/// A plugin's description, made storable: control characters out, clipped
/// to the limit (a plugin's prose never fails an item).
fn description(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    clip(clean.trim(), MAX_DESCRIPTION_LEN)
}

pub(super) use crate::text::clip;
