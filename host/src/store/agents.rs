//! `agent_type` and `agent_instance`: which forge plugin and base URL an
//! agent type uses, and which secret holds its token (an instance may
//! override it).

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Connection, Row};

use super::Reader;

/// One agent type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentType {
    /// Its name (the id of the scope `agent_type:<name>`).
    pub name: String,
    /// The forge plugin.
    pub forge: String,
    /// The forge's base URL.
    pub base_url: String,
    /// The secret holding its token.
    pub token_secret_id: Option<i64>,
    /// For people.
    pub description: String,
    /// Created (ms).
    pub created_at: i64,
    /// Last changed (ms).
    pub updated_at: i64,
}

/// One instance override.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentInstance {
    /// The instance id.
    pub id: String,
    /// Its agent type.
    pub agent_type: String,
    /// The secret holding its own token.
    pub token_secret_id: Option<i64>,
    /// Created (ms).
    pub created_at: i64,
    /// Last changed (ms).
    pub updated_at: i64,
}

fn type_of(row: &AnyRow) -> Result<AgentType, sqlx::Error> {
    Ok(AgentType {
        name: row.try_get("name")?,
        forge: row.try_get("forge")?,
        base_url: row.try_get("base_url")?,
        token_secret_id: row.try_get("token_secret_id")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn instance_of(row: &AnyRow) -> Result<AgentInstance, sqlx::Error> {
    Ok(AgentInstance {
        id: row.try_get("id")?,
        agent_type: row.try_get("agent_type")?,
        token_secret_id: row.try_get("token_secret_id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

const TYPE: &str = "name, forge, base_url, token_secret_id, description, created_at, updated_at";
const INSTANCE: &str = "id, agent_type, token_secret_id, created_at, updated_at";

/// Creates an agent type; false if one of that name exists.
pub async fn create(conn: &mut AnyConnection, t: &AgentType) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO agent_type (name, forge, base_url, token_secret_id, description, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(t.name.clone())
    .bind(t.forge.clone())
    .bind(t.base_url.clone())
    .bind(t.token_secret_id)
    .bind(t.description.clone())
    .bind(t.created_at)
    .bind(t.updated_at)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One agent type.
pub async fn get(db: Reader<'_>, name: &str) -> Result<Option<AgentType>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {TYPE} FROM agent_type WHERE name = $1"))
        .bind(name.to_owned())
        .fetch_optional(db)
        .await?;
    row.as_ref().map(type_of).transpose()
}

/// Every agent type, by name.
pub async fn list(db: Reader<'_>) -> Result<Vec<AgentType>, sqlx::Error> {
    let rows = sqlx::query(&format!("SELECT {TYPE} FROM agent_type ORDER BY name"))
        .fetch_all(db)
        .await?;
    rows.iter().map(type_of).collect()
}

/// Rewrites an agent type's forge, base URL, description and token link
/// (name and created_at stay); false if there is no such type.
pub async fn update(conn: &mut AnyConnection, t: &AgentType) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE agent_type SET forge = $1, base_url = $2, description = $3, \
         token_secret_id = $4, updated_at = $5 WHERE name = $6",
    )
    .bind(t.forge.clone())
    .bind(t.base_url.clone())
    .bind(t.description.clone())
    .bind(t.token_secret_id)
    .bind(t.updated_at)
    .bind(t.name.clone())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Points an agent type at the secret `secret_id`.
pub async fn set_token(
    conn: &mut AnyConnection,
    name: &str,
    secret_id: Option<i64>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("UPDATE agent_type SET token_secret_id = $1, updated_at = $2 WHERE name = $3")
            .bind(secret_id)
            .bind(now)
            .bind(name.to_owned())
            .execute(&mut *conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes an agent type (its instances go with it); false if none.
pub async fn delete(conn: &mut AnyConnection, name: &str) -> Result<bool, sqlx::Error> {
    // Explicit, not only ON DELETE CASCADE: SQLite enforces foreign keys
    // per connection, and the instance rows must never outlive their type.
    let mut tx = conn.begin().await?;
    sqlx::query("DELETE FROM agent_instance WHERE agent_type = $1")
        .bind(name.to_owned())
        .execute(&mut *tx)
        .await?;
    let done = sqlx::query("DELETE FROM agent_type WHERE name = $1")
        .bind(name.to_owned())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// Creates an instance override; false if an instance of that id exists
/// (made by a concurrent request: the caller reads it again).
pub async fn create_instance(
    conn: &mut AnyConnection,
    id: &str,
    agent_type: &str,
    secret_id: Option<i64>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO agent_instance (id, agent_type, token_secret_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $4) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id.to_owned())
    .bind(agent_type.to_owned())
    .bind(secret_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One instance.
pub async fn get_instance(db: Reader<'_>, id: &str) -> Result<Option<AgentInstance>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {INSTANCE} FROM agent_instance WHERE id = $1"
    ))
    .bind(id.to_owned())
    .fetch_optional(db)
    .await?;
    row.as_ref().map(instance_of).transpose()
}

/// The instances of an agent type, by id.
pub async fn list_instances(
    db: Reader<'_>,
    agent_type: &str,
) -> Result<Vec<AgentInstance>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {INSTANCE} FROM agent_instance WHERE agent_type = $1 ORDER BY id"
    ))
    .bind(agent_type.to_owned())
    .fetch_all(db)
    .await?;
    rows.iter().map(instance_of).collect()
}

/// Creates instance `id` of `agent_type` pointing at `secret_id`, or points
/// the existing row at it (a migration binding an instance's token).
pub async fn upsert_instance(
    conn: &mut AnyConnection,
    id: &str,
    agent_type: &str,
    secret_id: Option<i64>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO agent_instance (id, agent_type, token_secret_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $4) ON CONFLICT (id) DO UPDATE SET \
         token_secret_id = excluded.token_secret_id, updated_at = excluded.updated_at",
    )
    .bind(id.to_owned())
    .bind(agent_type.to_owned())
    .bind(secret_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Points an instance at the secret `secret_id`.
pub async fn set_instance_token(
    conn: &mut AnyConnection,
    id: &str,
    secret_id: Option<i64>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE agent_instance SET token_secret_id = $1, updated_at = $2 WHERE id = $3",
    )
    .bind(secret_id)
    .bind(now)
    .bind(id.to_owned())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes an instance override; false if none.
pub async fn delete_instance(conn: &mut AnyConnection, id: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM agent_instance WHERE id = $1")
        .bind(id.to_owned())
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The token secret (id, scope, name) `agent_type` uses — for `instance`,
/// its own when it has one, else the type's. A secret that was destroyed
/// (its link set to NULL) or is soft-deleted is no token; an undeleted one
/// is again.
pub async fn token_secret_for(
    db: Reader<'_>,
    agent_type: &str,
    instance: Option<&str>,
) -> Result<Option<(i64, String, String)>, sqlx::Error> {
    if let Some(id) = instance {
        let row = sqlx::query(
            "SELECT s.id, s.scope, s.name FROM agent_instance i \
             JOIN secret s ON s.id = i.token_secret_id \
             WHERE i.id = $1 AND i.agent_type = $2 AND s.deleted_at IS NULL",
        )
        .bind(id.to_owned())
        .bind(agent_type.to_owned())
        .fetch_optional(db)
        .await?;
        if let Some(r) = row {
            return Ok(Some((
                r.try_get("id")?,
                r.try_get("scope")?,
                r.try_get("name")?,
            )));
        }
    }
    let row = sqlx::query(
        "SELECT s.id, s.scope, s.name FROM agent_type t \
         JOIN secret s ON s.id = t.token_secret_id WHERE t.name = $1 \
         AND s.deleted_at IS NULL",
    )
    .bind(agent_type.to_owned())
    .fetch_optional(db)
    .await?;
    row.map(|r| Ok((r.try_get("id")?, r.try_get("scope")?, r.try_get("name")?)))
        .transpose()
}
