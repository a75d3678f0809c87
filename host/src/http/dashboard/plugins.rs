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
use crate::runtime::view::PluginList;

/// The page's query.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsQuery {
    notice: Option<String>,
}

fn list(items: &[String]) -> Markup {
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
    let runs = crate::store::migrate::last_runs(state.vault.db().reader())
        .await
        .map_err(|e| ApiError::Vault(e.into()))?;
    let view = PluginList::of(&plugins.registry(), &runs);
    let body = html! {
        (notice(params.notice.as_deref()))
        section aria-labelledby="loaded" {
            h2 id="loaded" { "Loaded" }
            @if view.plugins.is_empty() {
                p { "No plugin is loaded." }
            }
            @for p in &view.plugins {
                @let l = &p.limits;
                article aria-labelledby=(format!("plugin-{}", p.name)) {
                    h3 id=(format!("plugin-{}", p.name)) { (p.name) " " span class="help" { (p.kind) " " (p.version) } }
                    p { (p.description) }
                    dl class="meta" {
                        dt { "Source" } dd { code { (p.source) } }
                        dt { "SHA-256" } dd { code { (p.sha256) } }
                        dt { "May reveal" } dd { (list(&p.grants.reveal)) }
                        dt { "May use at egress" } dd { (list(&p.grants.uses)) }
                        dt { "May reach" } dd { (list(&p.grants.origins)) }
                        dt { "Limits" } dd {
                            (l.memory_bytes / (1024 * 1024)) " MiB memory, "
                            (l.wall_time_ms) " ms per call, "
                            (l.outbound_calls) " outbound calls, "
                            (l.response_bytes / 1024) " KiB per response, "
                            (l.refusals) " refusals"
                        }
                        @if let Some(run) = &p.last_run {
                            dt { "Last run" } dd { (when(run.finished_at)) ": " (run.migrated) " migrated, " (run.skipped) " skipped" }
                        }
                    }
                }
            }
        }
        section aria-labelledby="refused" {
            h2 id="refused" { "Refused" }
            @if view.refused.is_empty() {
                p { "None: every file in the plugins folder loaded." }
            } @else {
                table {
                    caption class="sr-only" { "Refused plugin files and why" }
                    thead { tr { th scope="col" { "File" } th scope="col" { "Why" } } }
                    tbody {
                        @for e in &view.refused {
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
