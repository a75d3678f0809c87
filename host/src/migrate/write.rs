//! Writing a batch of legacy values: every new secret (or API token), its
//! binding, its ledger row and its access-log entry in one transaction, so
//! an item is either written and recorded or neither. Per-item refusals (a
//! target holding another value, an unknown agent type) are checked before
//! that item writes anything, so they never abort the batch.

use sqlx::AnyConnection;
use subtle::ConstantTimeEq;

use super::Candidate;
use crate::audit::{Access, AccessEntry, Action, Outcome};
use crate::auth::token::{legacy_id, token_hash, Role};
use crate::crypto::{secret_aad, SecretBytes};
use crate::names::{Scope, SecretRef};
use crate::runtime::Binding;
use crate::store::migrate::{self as ledger, LedgerRow, State};
use crate::store::now_ms;
use crate::store::secrets;
use crate::vault::{Vault, VaultError, MAX_DESCRIPTION_LEN};

/// Writes `batch`; one result per item, in order. `Err` of the whole call
/// means the transaction failed and nothing of the batch was written.
pub(super) async fn batch(
    vault: &Vault,
    plugin: &str,
    source: &str,
    access: &Access,
    batch: &[(&Candidate, SecretBytes)],
) -> Result<Vec<Result<(), String>>, VaultError> {
    let (mut tx, head) = vault.begin_logged().await?;
    let mut entries = Vec::new();
    let mut results = Vec::with_capacity(batch.len());
    for (candidate, value) in batch {
        let result = one(&mut tx, vault, (plugin, source), access, candidate, value).await?;
        match result {
            Ok(entry) => {
                entries.extend(entry);
                results.push(Ok(()));
            }
            Err(reason) => results.push(Err(reason)),
        }
    }
    vault.commit_logged(tx, head, &entries).await?;
    Ok(results)
}

/// One item: `Ok(Ok(entry))` written (the entry is none when the store
/// already held exactly this value), `Ok(Err(reason))` refused, `Err` a
/// database failure.
async fn one(
    conn: &mut AnyConnection,
    vault: &Vault,
    (plugin, source): (&str, &str),
    access: &Access,
    c: &Candidate,
    value: &SecretBytes,
) -> Result<Result<Option<AccessEntry>, String>, VaultError> {
    if let Some(owner) = ledger::by_target(conn, &c.item.target).await? {
        if owner.plugin != plugin || owner.source != source || owner.item_id != c.item.id {
            return Ok(Err(format!(
                "target {} was already migrated from {} item {:?}",
                c.item.target, owner.plugin, owner.item_id
            )));
        }
    }
    let detail = format!("migrated by {plugin} from {}", clip(&c.item.id, 200));
    let (secret_id, entry) = match &c.item.binding {
        Binding::ApiKey { name, role } => {
            match api_key(conn, name, role, value, &detail, access).await? {
                Ok(entry) => (None, entry),
                Err(reason) => return Ok(Err(reason)),
            }
        }
        binding => {
            let reference = SecretRef::parse(&c.item.target)?;
            let scope = reference.scope.clone().unwrap_or_else(Scope::global);
            if let Err(reason) = check_binding(conn, binding).await? {
                return Ok(Err(reason));
            }
            let description = description(&c.item.description);
            let now = now_ms();
            let (scope_s, name_s) = (scope.as_str(), reference.name.as_str());
            let entry = match secrets::get(conn, scope_s, name_s).await? {
                None => {
                    let sealed = vault
                        .keyring()
                        .seal(value.expose(), &secret_aad(scope_s, name_s, 1));
                    secrets::insert(conn, scope_s, name_s, &description, &sealed, now).await?;
                    Some(AccessEntry::new(
                        access,
                        Action::Create,
                        Outcome::Ok,
                        scope_s,
                        name_s,
                    ))
                }
                Some(row) => {
                    let aad = secret_aad(scope_s, name_s, row.meta.version);
                    let same = vault
                        .keyring()
                        .open(&row.sealed, &aad)
                        .map(|v| bool::from(v.expose().ct_eq(value.expose())))
                        .unwrap_or(false);
                    if same {
                        // Already there (a crash after an earlier commit
                        // of the same value, or the operator set it).
                        None
                    } else if c.state.is_some() {
                        // This item wrote it before; a run with --again
                        // brings the legacy value over as a new version.
                        let version = row.meta.version + 1;
                        let sealed = vault
                            .keyring()
                            .seal(value.expose(), &secret_aad(scope_s, name_s, version));
                        if !secrets::replace_value(
                            conn,
                            row.id,
                            row.meta.version,
                            version,
                            &sealed,
                            now,
                        )
                        .await?
                        {
                            return Ok(Err(format!("{} changed during the run", c.item.target)));
                        }
                        Some(
                            AccessEntry::new(access, Action::Replace, Outcome::Ok, scope_s, name_s)
                                .with_detail(format!("version {version}")),
                        )
                    } else {
                        return Ok(Err(format!(
                            "{} already exists in the store with another value; not \
                             overwritten (delete it, or map the item elsewhere)",
                            c.item.target
                        )));
                    }
                }
            };
            let id = secrets::get(conn, scope_s, name_s)
                .await?
                .map(|r| r.id)
                .ok_or_else(|| VaultError::Unreadable(c.item.target.clone()))?;
            bind(conn, binding, id, now).await?;
            (Some(id), entry.map(|e| e.with_detail(detail.clone())))
        }
    };
    ledger::written(
        conn,
        &LedgerRow {
            plugin: plugin.to_owned(),
            source: source.to_owned(),
            item_id: c.item.id.clone(),
            unit: c.item.unit.clone(),
            target: c.item.target.clone(),
            state: State::Written,
            secret_id,
            written_at: now_ms(),
            retired_at: None,
        },
    )
    .await?;
    Ok(Ok(entry))
}

/// A legacy client API key becomes an API token: its hash, never the key.
async fn api_key(
    conn: &mut AnyConnection,
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
    let Some(id) = legacy_id(key) else {
        return Ok(Err(format!(
            "not usable as a client key: use {}-{} printable ASCII characters, not starting with kw_",
            crate::auth::token::LEGACY_MIN_LEN,
            crate::auth::token::LEGACY_MAX_LEN
        )));
    };
    let hash = token_hash(key);
    use sqlx::Row as _;
    let existing = sqlx::query("SELECT hash FROM api_token WHERE id = $1")
        .bind(id.clone())
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(row) = existing {
        let stored: Vec<u8> = row.try_get("hash")?;
        return Ok(if bool::from(stored.as_slice().ct_eq(&hash)) {
            Ok(None)
        } else {
            Err(format!("token id {id} is taken by another key"))
        });
    }
    sqlx::query(
        "INSERT INTO api_token (id, name, role, hash, created_at, last_used_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, NULL, NULL)",
    )
    .bind(id.clone())
    .bind(name.to_owned())
    .bind(role.as_str())
    .bind(hash.to_vec())
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(Ok(Some(
        AccessEntry::new(access, Action::Create, Outcome::Ok, "api_token", &id)
            .with_detail(detail.to_owned()),
    )))
}

/// Refuses a binding that cannot be made, before anything is written.
async fn check_binding(
    conn: &mut AnyConnection,
    binding: &Binding,
) -> Result<Result<(), String>, VaultError> {
    use sqlx::Row as _;
    let Binding::InstanceToken {
        agent_type,
        instance,
    } = binding
    else {
        return Ok(Ok(()));
    };
    let known = sqlx::query("SELECT name FROM agent_type WHERE name = $1")
        .bind(agent_type.clone())
        .fetch_optional(&mut *conn)
        .await?
        .is_some();
    if !known {
        return Ok(Err(format!(
            "no agent type {agent_type:?} for instance {instance:?}"
        )));
    }
    let owner = sqlx::query("SELECT agent_type FROM agent_instance WHERE id = $1")
        .bind(instance.clone())
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(row) = owner {
        let owner: String = row.try_get("agent_type")?;
        if owner != *agent_type {
            return Ok(Err(format!(
                "instance {instance:?} belongs to agent type {owner:?}, not {agent_type:?}"
            )));
        }
    }
    Ok(Ok(()))
}

/// Links secret `id` as `binding` says.
async fn bind(
    conn: &mut AnyConnection,
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
            let done = sqlx::query(
                "UPDATE agent_instance SET token_secret_id = $1, updated_at = $2 WHERE id = $3",
            )
            .bind(id)
            .bind(now)
            .bind(agent.clone())
            .execute(&mut *conn)
            .await?;
            if done.rows_affected() == 0 {
                sqlx::query(
                    "UPDATE agent_type SET token_secret_id = $1, updated_at = $2 WHERE name = $3",
                )
                .bind(id)
                .bind(now)
                .bind(agent.clone())
                .execute(&mut *conn)
                .await?;
            }
        }
        Binding::InstanceToken {
            agent_type,
            instance,
        } => {
            sqlx::query(
                "INSERT INTO agent_instance (id, agent_type, token_secret_id, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $4) ON CONFLICT (id) DO UPDATE SET \
                 token_secret_id = excluded.token_secret_id, updated_at = excluded.updated_at",
            )
            .bind(instance.clone())
            .bind(agent_type.clone())
            .bind(id)
            .bind(now)
            .execute(&mut *conn)
            .await?;
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

/// At most `max` bytes of `text`, cut at a character boundary.
pub(super) fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}
