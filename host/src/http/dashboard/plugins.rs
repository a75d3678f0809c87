//! `/settings/plugins`: what the runtime loaded (kind, version, source,
//! sha256, grants, limits, a migrator's last run) and what it refused with
//! the reason; a reload button (the folder is also watched).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;

use super::{csrf_field, html_response, notice, page, when, PageError, SignedIn, Submitted};
use crate::http::error::ApiError;
use crate::http::secrets::QueryResult;
use crate::http::AppState;

/// The page's query.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsQuery {
    notice: Option<String>,
}

fn list(items: Vec<String>) -> Markup {
    html! {
        @if items.is_empty() {
            span class="help" { "none" }
        } @else {
            @for (i, item) in items.iter().enumerate() {
                @if i > 0 { ", " }
                code { (item) }
            }
        }
    }
}

/// `GET /settings/plugins`.
pub async fn plugins_page(
    SignedIn(session): SignedIn,
    State(state): State<AppState>,
    params: QueryResult<PluginsQuery>,
) -> Result<Response, PageError> {
    let params = super::secrets::query(params)?;
    let Some(plugins) = &state.plugins else {
        // A router embedded without a runtime (tests, tools): say so.
        let body = html! { p { "This server runs no plugin runtime." } };
        return Ok(html_response(
            StatusCode::OK,
            page("Plugins", Some(&session), body),
        ));
    };
    let registry = plugins.registry();
    let runs = crate::store::migrate::last_runs(state.vault.db().reader())
        .await
        .map_err(|e| ApiError::Vault(e.into()))?;
    let body = html! {
        (notice(params.notice.as_deref()))
        section aria-labelledby="loaded" {
            h2 id="loaded" { "Loaded" }
            @if registry.plugins.is_empty() {
                p { "No plugin is loaded." }
            }
            @for p in registry.plugins.values() {
                @let m = &p.manifest;
                @let l = &m.limits;
                article aria-labelledby=(format!("plugin-{}", m.name)) {
                    h3 id=(format!("plugin-{}", m.name)) { (m.name) " " span class="help" { (m.kind.as_str()) " " (m.version) } }
                    p { (m.description) }
                    dl class="meta" {
                        dt { "Source" } dd { code { (p.source.to_string()) } }
                        dt { "SHA-256" } dd { code { (p.sha256) } }
                        dt { "May reveal" } dd { (list(m.grants.secrets.iter().map(ToString::to_string).collect())) }
                        dt { "May use at egress" } dd { (list(m.grants.uses.iter().map(ToString::to_string).collect())) }
                        dt { "May reach" } dd { (list(m.grants.origins.iter().map(ToString::to_string).collect())) }
                        dt { "Limits" } dd {
                            (l.memory_bytes / (1024 * 1024)) " MiB memory, "
                            (l.wall_time.as_millis()) " ms per call, "
                            (l.outbound_calls) " outbound calls, "
                            (l.response_bytes / 1024) " KiB per response, "
                            (l.refusals) " refusals"
                        }
                        @if let Some(run) = runs.iter().find(|r| r.plugin == m.name) {
                            dt { "Last run" } dd { (when(run.finished_at)) ": " (run.migrated) " migrated, " (run.skipped) " skipped" }
                        }
                    }
                }
            }
        }
        section aria-labelledby="refused" {
            h2 id="refused" { "Refused" }
            @if registry.refused.is_empty() {
                p { "None: every file in the plugins folder loaded." }
            } @else {
                table {
                    caption class="sr-only" { "Refused plugin files and why" }
                    thead { tr { th scope="col" { "File" } th scope="col" { "Why" } } }
                    tbody {
                        @for e in &registry.refused {
                            tr { td { code { (e.file) } } td { (e.problem) } }
                        }
                    }
                }
            }
        }
        section aria-labelledby="reload" {
            h2 id="reload" { "Reload" }
            p class="help" { "The plugins folder is watched; reload to load it again now." }
            form method="post" action="/settings/plugins/reload" class="inline" {
                (csrf_field(&session))
                button type="submit" { "Reload plugins" }
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        page("Plugins", Some(&session), body),
    ))
}

/// The reload form: no fields.
#[derive(Deserialize)]
pub struct NoFields {}

/// `POST /settings/plugins/reload`.
pub async fn plugins_reload(
    State(state): State<AppState>,
    Submitted { session, .. }: Submitted<NoFields>,
) -> Result<Response, PageError> {
    let Some(plugins) = &state.plugins else {
        // Nothing to reload; the page says why.
        return Ok(super::see_other("/settings/plugins"));
    };
    tracing::info!(by = %session.accessor(), "plugin reload requested from the dashboard");
    plugins.reload().await;
    Ok(super::see_other("/settings/plugins?notice=reloaded"))
}
