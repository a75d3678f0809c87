//! Agent types (TOK-1, resolver side): each names a forge plugin, a base
//! URL and a token, a secret at scope `agent_type:<name>` (an instance may
//! override it with one at `instance:<id>`). The token is read through the
//! resolver on every use, so a rotated value reaches the next dispatch with
//! no restart.

use serde::Serialize;

use super::{ForgeError, Forges};
use crate::audit::{Access, Action};
use crate::crypto::SecretBytes;
use crate::names::{Scope, SecretName, SecretRef};
use crate::resolve::Context;
use crate::runtime::{Account, BaseUrl};
use crate::store::{agents as store, now_ms, secrets};
use crate::vault::PutMode;

/// The name of an agent type's token secret in its scope.
pub const TOKEN_NAME: &str = "FORGE_TOKEN";

/// An agent type, as the API shows it (never the token).
#[derive(Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct AgentTypeView {
    /// Its name.
    pub name: String,
    /// The forge plugin it uses.
    pub forge: String,
    /// The forge's base URL.
    pub base_url: String,
    /// For people.
    pub description: String,
    /// The token's reference, when one is set.
    pub token: Option<String>,
    /// Its instances with their own token.
    pub instances: Vec<InstanceView>,
    /// Created (ms since the epoch).
    pub created_at: i64,
    /// Last changed (ms since the epoch).
    pub updated_at: i64,
}

/// An instance override.
#[derive(Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct InstanceView {
    /// The instance id.
    pub id: String,
    /// Its token's reference, when set.
    pub token: Option<String>,
}

/// Validates an agent-type name (a scope id: it becomes `agent_type:<name>`).
pub fn check_name(name: &str) -> Result<Scope, ForgeError> {
    Scope::scoped("agent_type", name).map_err(|e| ForgeError::Invalid(e.to_string()))
}

fn instance_scope(id: &str) -> Result<Scope, ForgeError> {
    Scope::scoped("instance", id).map_err(|e| ForgeError::Invalid(e.to_string()))
}

fn token_name() -> SecretName {
    SecretName::parse(TOKEN_NAME).expect("a valid name")
}

impl Forges {
    async fn view(&self, row: store::AgentType) -> Result<AgentTypeView, ForgeError> {
        let db = self.vault().db();
        let mut token = store::token_secret_for(db.reader(), &row.name, None).await?;
        if token.is_none() {
            token = self.type_token_by_name(&row.name).await?;
        }
        let token = token.map(|(_, scope, name)| format!("{scope}/{name}"));
        let mut instances = Vec::new();
        for i in store::list_instances(db.reader(), &row.name).await? {
            let token = store::token_secret_for(db.reader(), &row.name, Some(&i.id))
                .await?
                .filter(|(id, _, _)| Some(*id) == i.token_secret_id)
                .map(|(_, scope, name)| format!("{scope}/{name}"));
            instances.push(InstanceView { id: i.id, token });
        }
        Ok(AgentTypeView {
            name: row.name,
            forge: row.forge,
            base_url: row.base_url,
            description: row.description,
            token,
            instances,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }

    /// Every agent type.
    pub async fn agent_types(&self) -> Result<Vec<AgentTypeView>, ForgeError> {
        let rows = store::list(self.vault().db().reader()).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(self.view(row).await?);
        }
        Ok(out)
    }

    /// One agent type.
    pub async fn agent_type(&self, name: &str) -> Result<AgentTypeView, ForgeError> {
        let row = self.agent_row(name).await?;
        self.view(row).await
    }

    async fn agent_row(&self, name: &str) -> Result<store::AgentType, ForgeError> {
        check_name(name)?;
        store::get(self.vault().db().reader(), name)
            .await?
            .ok_or_else(|| ForgeError::UnknownAgentType(name.to_owned()))
    }

    /// Creates an agent type using forge plugin `forge` at `base_url` (none:
    /// the plugin's default). An existing `agent_type:<name>/FORGE_TOKEN`
    /// secret becomes its token.
    pub async fn create_agent_type(
        &self,
        name: &str,
        forge: &str,
        base_url: Option<&str>,
        description: &str,
    ) -> Result<AgentTypeView, ForgeError> {
        let scope = check_name(name)?;
        if !crate::runtime::manifest::valid_name(forge) {
            return Err(ForgeError::Invalid(format!(
                "forge {:?} is not a plugin name",
                forge.chars().take(64).collect::<String>()
            )));
        }
        crate::vault::check_description(description)?;
        let base = match base_url {
            Some(text) => BaseUrl::parse(text.trim_end_matches('/'))?,
            None => {
                let info = self.runtime()?.forge_info(self.vault(), forge).await?;
                BaseUrl::parse(info.default_base_url.trim_end_matches('/'))?
            }
        };
        let db = self.vault().db();
        let existing = secrets::get(db.reader(), scope.as_str(), TOKEN_NAME)
            .await?
            .map(|r| r.id);
        let row = store::AgentType {
            name: name.to_owned(),
            forge: forge.to_owned(),
            base_url: base.as_str().to_owned(),
            token_secret_id: existing,
            description: description.to_owned(),
            created_at: now_ms(),
            updated_at: now_ms(),
        };
        if !store::create(&mut *db.writer().await?, &row).await? {
            return Err(ForgeError::AgentTypeExists(name.to_owned()));
        }
        self.agent_type(name).await
    }

    /// Deletes an agent type and its instance rows (their token secrets
    /// stay in the store, for the operator to delete).
    pub async fn delete_agent_type(&self, name: &str) -> Result<(), ForgeError> {
        check_name(name)?;
        if !store::delete(&mut *self.vault().db().writer().await?, name).await? {
            return Err(ForgeError::UnknownAgentType(name.to_owned()));
        }
        Ok(())
    }

    /// Sets (or replaces: a new version) the token of an agent type, or of
    /// one of its instances, and links it.
    pub async fn set_agent_token(
        &self,
        name: &str,
        instance: Option<&str>,
        value: &[u8],
        access: &Access,
    ) -> Result<String, ForgeError> {
        self.agent_row(name).await?;
        let scope = match instance {
            Some(id) => instance_scope(id)?,
            None => check_name(name)?,
        };
        let db = self.vault().db();
        if let Some(iid) = instance {
            // Claimed before the token is written, so that of several
            // agent types asking for one new instance id at once, only the
            // one that gets the row writes `instance:<id>/FORGE_TOKEN`; the
            // others answer 409 having changed nothing. (Until the link
            // below, an instance without a token uses its type's.)
            let claimed =
                store::create_instance(&mut *db.writer().await?, iid, name, None, now_ms()).await?;
            if !claimed {
                match store::get_instance(db.reader(), iid).await? {
                    Some(i) if i.agent_type == name => {}
                    Some(_) => return Err(ForgeError::InstanceTaken(iid.to_owned())),
                    // Deleted again between the two statements.
                    None => return Err(ForgeError::Race),
                }
            }
        }
        self.vault()
            .put(&scope, &token_name(), value, None, access, PutMode::Upsert)
            .await?;
        let id = secrets::get(db.reader(), scope.as_str(), TOKEN_NAME)
            .await?
            .map(|r| r.id);
        match instance {
            None => store::set_token(&mut *db.writer().await?, name, id, now_ms()).await?,
            Some(iid) => {
                store::set_instance_token(&mut *db.writer().await?, iid, id, now_ms()).await?
            }
        };
        Ok(format!("{scope}/{TOKEN_NAME}"))
    }

    /// Removes an instance override.
    pub async fn delete_instance(&self, name: &str, instance: &str) -> Result<(), ForgeError> {
        self.agent_row(name).await?;
        instance_scope(instance)?;
        let db = self.vault().db();
        match store::get_instance(db.reader(), instance).await? {
            Some(i) if i.agent_type == name => {
                store::delete_instance(&mut *db.writer().await?, instance).await?;
                Ok(())
            }
            _ => Err(ForgeError::UnknownInstance(instance.to_owned())),
        }
    }

    /// The reference of the token `name` (or its `instance`) uses now.
    async fn agent_token_ref(
        &self,
        name: &str,
        instance: Option<&str>,
    ) -> Result<(store::AgentType, SecretRef), ForgeError> {
        let row = self.agent_row(name).await?;
        if let Some(id) = instance {
            instance_scope(id)?;
        }
        let db = self.vault().db();
        let mut found = store::token_secret_for(db.reader(), name, instance).await?;
        if found.is_none() {
            found = self.type_token_by_name(name).await?;
        }
        let Some((_, scope, secret)) = found else {
            return Err(ForgeError::NoToken(name.to_owned()));
        };
        let reference = SecretRef::parse(&format!("{scope}/{secret}"))
            .map_err(|e| ForgeError::Invalid(e.to_string()))?;
        Ok((row, reference))
    }

    /// A token secret deleted and made again (say with `keyward secret
    /// set`) is a new row the type's link no longer points at: it is found
    /// by its name, `agent_type:<name>/FORGE_TOKEN`, at read time. Nothing
    /// is written, because resolvers call this and a resolver request
    /// writes only log rows (docs/http-api.md); operators relink by setting
    /// the token (`PUT /agent-types/{name}/token`).
    async fn type_token_by_name(
        &self,
        name: &str,
    ) -> Result<Option<(i64, String, String)>, ForgeError> {
        let scope = check_name(name)?;
        let id = secrets::get(self.vault().db().reader(), scope.as_str(), TOKEN_NAME)
            .await?
            .map(|r| r.id);
        Ok(id.map(|id| (id, scope.to_string(), TOKEN_NAME.to_owned())))
    }

    /// getAgentToken: the agent type's token (the instance's override when
    /// it has one), read through the resolver and logged with `access`.
    pub async fn agent_token(
        &self,
        name: &str,
        instance: Option<&str>,
        access: &Access,
    ) -> Result<SecretBytes, ForgeError> {
        let (_, reference) = self.agent_token_ref(name, instance).await?;
        let (_, value) = self
            .vault()
            .reveal(&reference, &Context::default(), access, Action::Reveal)
            .await?;
        Ok(value)
    }

    /// Runs a forge call (whoami) with the agent type's token through its
    /// plugin for `caller`; the plugin never sees the token (expanded at
    /// egress, logged there with the plugin as accessor and the caller and
    /// its reason in the row's reason).
    pub async fn dispatch(
        &self,
        name: &str,
        instance: Option<&str>,
        caller: &Access,
    ) -> Result<Account, ForgeError> {
        let (row, reference) = self.agent_token_ref(name, instance).await?;
        let base = BaseUrl::parse(&row.base_url)?;
        tracing::info!(agent_type = %name, instance = ?instance, caller = %caller.accessor(), forge = %row.forge, "dispatch");
        Ok(self
            .runtime()?
            .forge_whoami_with(
                self.vault(),
                &row.forge,
                &base,
                crate::runtime::TokenRef::Stored(reference.clone()),
                Some(caller),
            )
            .await?)
    }
}
