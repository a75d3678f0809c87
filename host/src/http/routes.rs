//! Route handlers. Each takes its caller ([`Resolver`] or [`Operator`])
//! first: the role check happens before anything else is read.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::auth::{Operator, Resolver};
use super::body::Body;
use super::error::ApiError;
use super::AppState;
use crate::audit::Access;
use crate::auth::AuthError;
use crate::resolve::Context;
use crate::runtime::view::{PluginList, RefusedView};

/// `GET /healthz`: liveness. 200 `{"status":"ok"}` whenever the process
/// answers; it never waits on the database (a load balancer's or
/// supervisor's check must not hang with it). Readiness is `/readyz`.
pub async fn healthz() -> (StatusCode, Json<Value>) {
    (StatusCode::OK, Json(json!({"status": "ok"})))
}

/// How long `/readyz` waits for each of its checks.
pub const READY_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// How long a `/readyz` verdict is reused.
const READY_FRESH: std::time::Duration = std::time::Duration::from_millis(100);

/// `/readyz`'s last verdict and when it was reached. Behind an async
/// mutex: concurrent checks wait for the one in flight rather than each
/// probing, so an unauthenticated caller hammering `/readyz` costs the
/// store at most ten probes a second — a probe takes the SQLite write lock
/// for an empty group.
pub type ReadyCache = std::sync::Arc<tokio::sync::Mutex<Option<(std::time::Instant, Verdict)>>>;

/// The parts `/readyz` checks, in order.
const PARTS: [&str; 3] = ["database", "access_log", "plugins"];

/// What `/readyz` found: each part's state (`ok`, `failed`, `skipped`
/// when the database it needs failed, `none` for a server without a
/// plugin runtime), and the first part that failed, with why.
#[derive(Clone, Debug)]
pub struct Verdict {
    states: [&'static str; 3],
    failed: Option<(&'static str, String)>,
}

/// `GET /readyz`: readiness. 200 `{"status":"ready","checks":{…}}` when
/// the database answers a query, the access log takes a group (an empty
/// one: nothing is written), each within [`READY_WAIT`], and the plugin
/// runtime can serve calls; 503 with the error shape plus `failed` (the
/// part) and `checks` otherwise. No credentials: load balancers call it.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let mut last = state.ready.lock().await;
    let verdict = match last.as_ref() {
        Some((at, verdict)) if at.elapsed() < READY_FRESH => verdict.clone(),
        _ => {
            let verdict = probe(&state).await;
            *last = Some((std::time::Instant::now(), verdict.clone()));
            verdict
        }
    };
    drop(last);
    let checks: serde_json::Map<String, Value> = PARTS
        .iter()
        .zip(verdict.states)
        .map(|(part, state)| ((*part).to_owned(), Value::from(state)))
        .collect();
    match verdict.failed {
        None => (
            StatusCode::OK,
            Json(json!({"status": "ready", "checks": checks})),
        ),
        Some((part, message)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "error": {"code": "unavailable", "message": message},
                "failed": part,
                "checks": checks,
            })),
        ),
    }
}

/// Checks the database, then the access log (which needs it), and the
/// plugin runtime.
async fn probe(state: &AppState) -> Verdict {
    let mut failed = None;
    let query = tokio::time::timeout(
        READY_WAIT,
        sqlx::query("SELECT 1").execute(state.vault.db().reader()),
    );
    let database = match query.await {
        Err(_) => Some("the database did not answer in time"),
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness: database unavailable");
            Some("the database is not answering")
        }
        Ok(Ok(_)) => None,
    };
    let log = match database {
        Some(_) => None,
        None => match tokio::time::timeout(READY_WAIT, state.vault.probe_log()).await {
            Err(_) => Some("the access log did not answer in time"),
            Ok(Err(error)) => {
                tracing::warn!(%error, "readiness: access log unavailable");
                Some("the access log cannot be written")
            }
            Ok(Ok(())) => None,
        },
    };
    let plugins = state.plugins.as_ref().map(|p| p.not_ready());
    if let Some(Some(problem)) = plugins {
        tracing::warn!(problem, "readiness: plugin runtime unavailable");
    }
    let mut states = ["ok"; 3];
    for (i, problem) in [database, log, plugins.flatten()].into_iter().enumerate() {
        if let Some(problem) = problem {
            states[i] = "failed";
            failed = failed.or(Some((PARTS[i], problem.to_owned())));
        }
    }
    if database.is_some() {
        states[1] = "skipped";
    }
    if plugins.is_none() {
        states[2] = "none";
    }
    Verdict { states, failed }
}

/// Anything not routed: 404 in the API's shape.
pub async fn not_found() -> (StatusCode, Json<Value>) {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": {"code": "not_found", "message": "no such route"}})),
    )
}

/// A routed path with another method: 405 in the API's shape.
pub async fn method_not_allowed() -> (StatusCode, Json<Value>) {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(
            json!({"error": {"code": "method_not_allowed", "message": "this path does not take that method"}}),
        ),
    )
}

/// `POST /render` body: one `template`, or several `templates` by name
/// (rendered with one lookup, all or nothing).
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenderRequest {
    #[serde(default)]
    template: Option<String>,
    #[serde(default)]
    templates: Option<BTreeMap<String, String>>,
    #[serde(default)]
    context: BTreeMap<String, String>,
    reason: String,
}

/// `POST /render` answer: `text` for a `template`, `texts` for `templates`.
#[derive(Serialize, schemars::JsonSchema)]
pub struct Rendered {
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    texts: Option<BTreeMap<String, String>>,
}

/// The most templates one render may hold.
pub const MAX_TEMPLATES: usize = 1000;

/// `POST /render` (resolver): the template with every placeholder
/// substituted; each read logged with the caller's token as accessor and
/// the given reason. 422 names every missing secret.
pub async fn render(
    Resolver(caller): Resolver,
    State(state): State<AppState>,
    Body(req): Body<RenderRequest>,
) -> Result<Json<Rendered>, ApiError> {
    let mut ctx = Context::default();
    for (key, value) in &req.context {
        ctx.set(key, value)?;
    }
    let access = Access::new(caller.accessor(), req.reason.as_str())?;
    let (names, texts): (Vec<Option<&String>>, Vec<&str>) = match (&req.template, &req.templates) {
        (Some(one), None) => (vec![None], vec![one.as_str()]),
        (None, Some(many)) if many.len() <= MAX_TEMPLATES => {
            many.iter().map(|(n, t)| (Some(n), t.as_str())).unzip()
        }
        (None, Some(_)) => {
            return Err(ApiError::Invalid(format!(
                "at most {MAX_TEMPLATES} templates per render"
            )))
        }
        _ => {
            return Err(ApiError::Invalid(
                "give either template or templates (one of them)".into(),
            ))
        }
    };
    let limit = match caller.policy.as_deref() {
        None => None,
        Some(policy) => {
            if let Some(binding) = &policy.agent {
                // The server, not the request, says whose secrets these are.
                let fixed = binding.context();
                if !req.context.is_empty() && ctx != fixed {
                    let asked = ctx.scopes();
                    let scope = asked.first().map_or("global", |s| s.as_str());
                    let detail = format!(
                        "the token is bound to {}; the request asked for another context",
                        fixed
                            .scopes()
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(" -> ")
                    );
                    state
                        .vault
                        .record_denied(&access, crate::audit::Action::Render, scope, "*", &detail)
                        .await?;
                    return Err(AuthError::NotPermitted(detail).into());
                }
                ctx = fixed;
            }
            Some(policy as &dyn crate::vault::Limit)
        }
    };
    let rendered = crate::template::render_many(&state.vault, &texts, &ctx, &access, limit).await?;
    let mut out = BTreeMap::new();
    for (name, mut bytes) in names.into_iter().zip(rendered) {
        // JSON carries text: a value that is not UTF-8 cannot be
        // substituted into it faithfully, so it is refused rather than
        // mangled. The buffer is moved, not copied: one plaintext copy
        // fewer left unzeroed.
        let text = String::from_utf8(std::mem::take(&mut *bytes)).map_err(|e| {
            // The refused bytes are zeroed, not just dropped.
            drop(zeroize::Zeroizing::new(e.into_bytes()));
            ApiError::Invalid("the rendered text is not UTF-8 (a secret holds binary data)".into())
        })?;
        match name {
            None => {
                return Ok(Json(Rendered {
                    text: Some(text),
                    texts: None,
                }))
            }
            Some(name) => {
                out.insert(name.clone(), text);
            }
        }
    }
    Ok(Json(Rendered {
        text: None,
        texts: Some(out),
    }))
}

/// `GET /plugins` (operator): what the server's runtime has loaded (name,
/// kind, version, sha256, source, grants, limits; a migrator's last
/// finished run) and what it refused, with why.
pub async fn list_plugins(
    Operator(_caller): Operator,
    State(state): State<AppState>,
) -> Result<Json<PluginList>, ApiError> {
    let Some(plugins) = &state.plugins else {
        return Err(ApiError::Unavailable(
            "this server runs no plugin runtime".into(),
        ));
    };
    let runs = crate::store::migrate::last_runs(state.vault.db().reader())
        .await
        .map_err(|e| ApiError::Vault(e.into()))?;
    Ok(Json(PluginList::of(&plugins.registry(), &runs)))
}

/// What `POST /plugins/reload` answers.
#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Reloaded {
    /// The plugins loaded now, by name.
    pub loaded: Vec<String>,
    /// The files refused, with why.
    pub refused: Vec<RefusedView>,
}

/// `POST /plugins/reload` (operator): loads the plugins folder again now
/// (it is also watched) and answers what is loaded and what was refused.
pub async fn reload_plugins(
    Operator(caller): Operator,
    State(state): State<AppState>,
) -> Result<Json<Reloaded>, ApiError> {
    let Some(plugins) = &state.plugins else {
        return Err(ApiError::Unavailable(
            "this server runs no plugin runtime".into(),
        ));
    };
    tracing::info!(by = %caller.accessor(), "plugin reload requested over HTTP");
    let registry = plugins.reload().await;
    let list = PluginList::of(&registry, &[]);
    Ok(Json(Reloaded {
        loaded: list.plugins.into_iter().map(|p| p.name).collect(),
        refused: list.refused,
    }))
}
