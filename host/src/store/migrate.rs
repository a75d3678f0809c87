//! The `migration_ledger`, `migration_run` and `migration_lock` tables: what
//! each legacy item became, which runs finished, and which host is running
//! a plugin's migration now.

use sqlx::{AnyConnection, Row};

use super::Reader;

use super::Backend;

/// `$1` as the elements of a JSON array, per backend: `value` (SQLite) or
/// `e` (PostgreSQL), for one statement of one fixed shape per batch.
fn json_rows(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "json_each($1)",
        Backend::Postgres => "jsonb_array_elements($1::jsonb) AS e",
    }
}

/// One element of [`json_rows`] as text.
fn element(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "value",
        Backend::Postgres => "e #>> '{}'",
    }
}

fn json_text(backend: Backend, i: usize) -> String {
    match backend {
        Backend::Sqlite => format!("json_extract(value, '$[{i}]')"),
        Backend::Postgres => format!("(e->>{i})"),
    }
}

fn json_int(backend: Backend, i: usize) -> String {
    match backend {
        Backend::Sqlite => format!("json_extract(value, '$[{i}]')"),
        Backend::Postgres => format!("(e->>{i})::bigint"),
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, sqlx::Error> {
    serde_json::to_string(value).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

/// Where an item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// The new secret (or API token) is committed; the legacy item still
    /// exists.
    Written,
    /// The plugin retired the legacy item.
    Retired,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Written => "written",
            State::Retired => "retired",
        }
    }

    fn parse(text: &str) -> Result<State, sqlx::Error> {
        match text {
            "written" => Ok(State::Written),
            "retired" => Ok(State::Retired),
            other => Err(sqlx::Error::Decode(
                format!("unknown migration state {other:?}").into(),
            )),
        }
    }
}

/// One ledger row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerRow {
    /// The migrator.
    pub plugin: String,
    /// The run's source (folder or URL as given; empty for none).
    pub source: String,
    /// The plugin's id of the item.
    pub item_id: String,
    /// Its retire unit.
    pub unit: String,
    /// What it became.
    pub target: String,
    /// Where it is.
    pub state: State,
    /// The secret written, if it is one (and still exists).
    pub secret_id: Option<i64>,
    /// The version of that secret the item wrote (or found holding its
    /// value), so an import can be rolled back to the one before.
    pub version: Option<i64>,
    /// Unix ms.
    pub written_at: i64,
    /// Unix ms, once retired.
    pub retired_at: Option<i64>,
}

const COLUMNS: &str =
    "plugin, source, item_id, unit, target, state, secret_id, version, written_at, retired_at";

fn row(r: &sqlx::any::AnyRow) -> Result<LedgerRow, sqlx::Error> {
    Ok(LedgerRow {
        plugin: r.try_get("plugin")?,
        source: r.try_get("source")?,
        item_id: r.try_get("item_id")?,
        unit: r.try_get("unit")?,
        target: r.try_get("target")?,
        state: State::parse(&r.try_get::<String, _>("state")?)?,
        secret_id: r.try_get("secret_id")?,
        version: r.try_get("version")?,
        written_at: r.try_get("written_at")?,
        retired_at: r.try_get("retired_at")?,
    })
}

/// Every ledger row of `plugin` for `source`.
pub async fn ledger(
    db: Reader<'_>,
    plugin: &str,
    source: &str,
) -> Result<Vec<LedgerRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM migration_ledger WHERE plugin = $1 AND source = $2");
    sqlx::query(&sql)
        .bind(plugin.to_owned())
        .bind(source.to_owned())
        .fetch_all(db)
        .await?
        .iter()
        .map(row)
        .collect()
}

/// The ledger row that owns `target`, whichever plugin wrote it.
pub async fn by_target(
    conn: &mut AnyConnection,
    target: &str,
) -> Result<Option<LedgerRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM migration_ledger WHERE target = $1");
    sqlx::query(&sql)
        .bind(target.to_owned())
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(row)
        .transpose()
}

/// The ledger rows owning any of `targets`.
pub async fn by_targets(
    conn: &mut AnyConnection,
    backend: Backend,
    targets: &[&str],
) -> Result<Vec<LedgerRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM migration_ledger WHERE target IN (SELECT {} FROM {})",
        element(backend),
        json_rows(backend)
    );
    sqlx::query(&sql)
        .bind(encode(&targets)?)
        .fetch_all(conn)
        .await?
        .iter()
        .map(row)
        .collect()
}

/// Which of `names` are agent types.
pub async fn agent_types_among(
    conn: &mut AnyConnection,
    backend: Backend,
    names: &[&str],
) -> Result<std::collections::HashSet<String>, sqlx::Error> {
    if names.is_empty() {
        return Ok(Default::default());
    }
    let sql = format!(
        "SELECT name FROM agent_type WHERE name IN (SELECT {} FROM {})",
        element(backend),
        json_rows(backend)
    );
    sqlx::query(&sql)
        .bind(encode(&names)?)
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| r.try_get("name"))
        .collect()
}

/// The agent type of each of `ids` that is an instance: id → type.
pub async fn instances_among(
    conn: &mut AnyConnection,
    backend: Backend,
    ids: &[&str],
) -> Result<std::collections::HashMap<String, String>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let sql = format!(
        "SELECT id, agent_type FROM agent_instance WHERE id IN (SELECT {} FROM {})",
        element(backend),
        json_rows(backend)
    );
    sqlx::query(&sql)
        .bind(encode(&ids)?)
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("agent_type")?)))
        .collect()
}

/// [`written`] for many rows in one statement.
pub async fn written_many(
    conn: &mut AnyConnection,
    backend: Backend,
    rows: &[LedgerRow],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let values: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!([
                r.plugin,
                r.source,
                r.item_id,
                r.unit,
                r.target,
                r.secret_id,
                r.written_at,
                r.version
            ])
        })
        .collect();
    let (t, i) = (|n| json_text(backend, n), |n| json_int(backend, n));
    // `WHERE true`: SQLite needs it to read ON CONFLICT after a SELECT.
    let sql = format!(
        "INSERT INTO migration_ledger (plugin, source, item_id, unit, target, state, secret_id, \
         written_at, retired_at, version) \
         SELECT {}, {}, {}, {}, {}, 'written', {}, {}, NULL, {} FROM {} \
         WHERE true ON CONFLICT (plugin, source, item_id) DO UPDATE SET unit = excluded.unit, \
         target = excluded.target, state = excluded.state, secret_id = excluded.secret_id, \
         version = excluded.version, written_at = excluded.written_at, retired_at = NULL",
        t(0),
        t(1),
        t(2),
        t(3),
        t(4),
        i(5),
        i(6),
        i(7),
        json_rows(backend)
    );
    sqlx::query(&sql)
        .bind(encode(&values)?)
        .execute(conn)
        .await?;
    Ok(())
}

/// [`retired`] for many units of one plugin and source in one statement.
pub async fn retired_many(
    conn: &mut AnyConnection,
    backend: Backend,
    plugin: &str,
    source: &str,
    units: &[&str],
    at: i64,
) -> Result<u64, sqlx::Error> {
    if units.is_empty() {
        return Ok(0);
    }
    let sql = format!(
        "UPDATE migration_ledger SET state = 'retired', retired_at = $2 \
         WHERE plugin = $3 AND source = $4 AND state = 'written' \
         AND unit IN (SELECT {} FROM {})",
        element(backend),
        json_rows(backend)
    );
    let done = sqlx::query(&sql)
        .bind(encode(&units)?)
        .bind(at)
        .bind(plugin.to_owned())
        .bind(source.to_owned())
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// Records an item as written (a new row, or a re-run's new write of an
/// item already known).
pub async fn written(conn: &mut AnyConnection, r: &LedgerRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO migration_ledger (plugin, source, item_id, unit, target, state, secret_id, \
         written_at, retired_at, version) VALUES ($1, $8, $2, $3, $4, $5, $6, $7, NULL, $9) \
         ON CONFLICT (plugin, source, item_id) DO UPDATE SET unit = excluded.unit, \
         target = excluded.target, state = excluded.state, secret_id = excluded.secret_id, \
         version = excluded.version, written_at = excluded.written_at, retired_at = NULL",
    )
    .bind(r.plugin.clone())
    .bind(r.item_id.clone())
    .bind(r.unit.clone())
    .bind(r.target.clone())
    .bind(State::Written.as_str())
    .bind(r.secret_id)
    .bind(r.written_at)
    .bind(r.source.clone())
    .bind(r.version)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks every item of `unit` (of `plugin` in `source`) retired.
pub async fn retired(
    conn: &mut AnyConnection,
    plugin: &str,
    source: &str,
    unit: &str,
    at: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE migration_ledger SET state = $1, retired_at = $2 \
         WHERE plugin = $3 AND unit = $4 AND state = $5 AND source = $6",
    )
    .bind(State::Retired.as_str())
    .bind(at)
    .bind(plugin.to_owned())
    .bind(unit.to_owned())
    .bind(State::Written.as_str())
    .bind(source.to_owned())
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// A finished run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRow {
    /// The migrator.
    pub plugin: String,
    /// Its wasm's sha256.
    pub sha256: String,
    /// SHA-256 of the run's source and options.
    pub options_digest: String,
    /// Unix ms.
    pub started_at: i64,
    /// Unix ms.
    pub finished_at: i64,
    /// Items written by it.
    pub migrated: i64,
    /// Items it found done already.
    pub skipped: i64,
    /// Which host ran it.
    pub host: String,
}

/// The last finished run of this plugin build with these options.
pub async fn finished(
    db: Reader<'_>,
    plugin: &str,
    sha256: &str,
    digest: &str,
) -> Result<Option<RunRow>, sqlx::Error> {
    let r = sqlx::query(
        "SELECT plugin, sha256, options_digest, started_at, finished_at, migrated, skipped, host \
         FROM migration_run WHERE plugin = $1 AND sha256 = $2 AND options_digest = $3 \
         ORDER BY finished_at DESC LIMIT 1",
    )
    .bind(plugin.to_owned())
    .bind(sha256.to_owned())
    .bind(digest.to_owned())
    .fetch_optional(db)
    .await?;
    r.as_ref().map(run_row).transpose()
}

fn run_row(r: &sqlx::any::AnyRow) -> Result<RunRow, sqlx::Error> {
    Ok(RunRow {
        plugin: r.try_get("plugin")?,
        sha256: r.try_get("sha256")?,
        options_digest: r.try_get("options_digest")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        migrated: r.try_get("migrated")?,
        skipped: r.try_get("skipped")?,
        host: r.try_get("host")?,
    })
}

/// The last finished run of each plugin, newest first.
pub async fn last_runs(db: Reader<'_>) -> Result<Vec<RunRow>, sqlx::Error> {
    sqlx::query(
        "SELECT plugin, sha256, options_digest, started_at, finished_at, migrated, skipped, host \
         FROM migration_run r WHERE finished_at = \
         (SELECT MAX(finished_at) FROM migration_run WHERE plugin = r.plugin) \
         ORDER BY finished_at DESC",
    )
    .fetch_all(db)
    .await?
    .iter()
    .map(run_row)
    .collect()
}

/// Records a finished run.
pub async fn record_run(conn: &mut AnyConnection, r: &RunRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO migration_run (plugin, sha256, options_digest, started_at, finished_at, \
         migrated, skipped, host) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(r.plugin.clone())
    .bind(r.sha256.clone())
    .bind(r.options_digest.clone())
    .bind(r.started_at)
    .bind(r.finished_at)
    .bind(r.migrated)
    .bind(r.skipped)
    .bind(r.host.clone())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Takes (or renews) the lease on `plugin`'s migration until `until`: true
/// if `holder` has it now. Free, expired or already held by `holder` →
/// taken; one conditional write, so two hosts cannot both get it.
pub async fn take_lock(
    conn: &mut AnyConnection,
    plugin: &str,
    holder: &str,
    until: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO migration_lock (plugin, holder, until) VALUES ($1, $2, $3) \
         ON CONFLICT (plugin) DO UPDATE SET holder = excluded.holder, until = excluded.until \
         WHERE migration_lock.until < $4 OR migration_lock.holder = excluded.holder",
    )
    .bind(plugin.to_owned())
    .bind(holder.to_owned())
    .bind(until)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Who holds `plugin`'s lease, if anyone (expired or not).
pub async fn lock_holder(db: Reader<'_>, plugin: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query("SELECT holder FROM migration_lock WHERE plugin = $1")
        .bind(plugin.to_owned())
        .fetch_optional(db)
        .await?
        .map(|r| r.try_get("holder"))
        .transpose()
}

/// Takes the lease from `stale` (a holder known to be dead), if it still
/// has it: true if `holder` has it now.
pub async fn steal_lock(
    conn: &mut AnyConnection,
    plugin: &str,
    stale: &str,
    holder: &str,
    until: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE migration_lock SET holder = $1, until = $2 WHERE plugin = $3 AND holder = $4",
    )
    .bind(holder.to_owned())
    .bind(until)
    .bind(plugin.to_owned())
    .bind(stale.to_owned())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives the lease up, if `holder` still has it.
pub async fn release_lock(
    conn: &mut AnyConnection,
    plugin: &str,
    holder: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM migration_lock WHERE plugin = $1 AND holder = $2")
        .bind(plugin.to_owned())
        .bind(holder.to_owned())
        .execute(&mut *conn)
        .await?;
    Ok(())
}
