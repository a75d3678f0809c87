//! `/settings/agent-types`: the agent types — list, add, delete. One
//! type's page (its token, instance overrides, a test dispatch) is in
//! `agent_type.rs`. No page reads a token: a type shows only whether one is
//! set and where it is stored.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::{
    csrf_field, html_response, notice, page, problem, q, see_other, PageError, SignedIn, Submitted,
};
use crate::audit::Access;
use crate::auth::Session;
use crate::forge::agents::AgentTypeView;
use crate::forge::Forges;
use crate::http::error::ApiError;
use crate::http::AppState;

/// The forge service, or why this server has none.
pub(super) fn forges(state: &AppState) -> Result<&Forges, ApiError> {
    state
        .forges
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("this server has no forges configured".into()))
}

/// The page of one agent type.
pub(super) fn type_href(name: &str) -> String {
    format!("/settings/agent-types/{}", q(name))
}

/// The token form pre-filled with a binding to `name` (and `instance`).
pub(super) fn token_for_href(name: &str, instance: Option<&str>) -> String {
    let instance = instance.map(|i| format!("&instance={}", q(i)));
    format!(
        "/settings/tokens?agent_type={}{}#new-token",
        q(name),
        instance.unwrap_or_default()
    )
}

/// The forge plugins loaded now, for the form's suggestions.
fn forge_plugins(state: &AppState) -> Vec<String> {
    let Some(rt) = &state.plugins else {
        return Vec::new();
    };
    rt.registry()
        .plugins
        .values()
        .filter(|p| p.manifest.kind == crate::runtime::manifest::Kind::Forge)
        .map(|p| p.manifest.name.clone())
        .collect()
}

/// `token set` / `not set`, never more.
pub(super) fn token_state(token: &Option<String>) -> Markup {
    html! {
        @if token.is_some() { "set" } @else { strong { "not set" } }
    }
}

fn type_list(types: &[AgentTypeView]) -> Markup {
    html! {
        section aria-labelledby="types" {
            h2 id="types" { "Agent types" }
            @if types.is_empty() {
                p { "No agent types yet." }
            } @else {
                table {
                    caption class="sr-only" { "Agent types, by name" }
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "Forge" } th scope="col" { "Base URL" }
                        th scope="col" { "Token" } th scope="col" { "Instance overrides" } th scope="col" { "Description" }
                    } }
                    tbody {
                        @for t in types {
                            tr {
                                td { a href=(type_href(&t.name)) { (t.name) } }
                                td { code { (t.forge) } }
                                td { code { (t.base_url) } }
                                td { (token_state(&t.token)) }
                                td {
                                    @if t.instances.is_empty() { "none" }
                                    @for (n, i) in t.instances.iter().enumerate() {
                                        @if n > 0 { ", " }
                                        code { (i.id) }
                                        @if i.token.is_none() { " (no token)" }
                                    }
                                }
                                td { (t.description) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What the add form holds (never the token: it is not sent back).
#[derive(Default)]
struct Draft {
    name: String,
    forge: String,
    base_url: String,
    description: String,
}

fn create_form(session: &Session, draft: &Draft, plugins: &[String]) -> Markup {
    html! {
        section aria-labelledby="add-type" {
            h2 id="add-type" { "Add an agent type" }
            form method="post" action="/settings/agent-types" class="stack" {
                (csrf_field(session))
                label for="type-name" { "Name" }
                input id="type-name" name="name" required maxlength="128" autocomplete="off" spellcheck="false"
                    value=(draft.name) aria-describedby="type-name-help";
                p id="type-name-help" class="help" { "Letters, digits, " code { "_ . -" } "; its token lives at " code { "agent_type:NAME/FORGE_TOKEN" } "." }
                label for="type-forge" { "Forge plugin" }
                input id="type-forge" name="forge" required maxlength="64" autocomplete="off" spellcheck="false"
                    list="forge-plugins" value=(draft.forge);
                datalist id="forge-plugins" {
                    @for p in plugins { option value=(p) {} }
                }
                label for="type-base" { "Base URL" }
                input id="type-base" name="base_url" type="url" maxlength="512" autocomplete="off" spellcheck="false"
                    value=(draft.base_url) aria-describedby="type-base-help";
                p id="type-base-help" class="help" { "Empty: the forge plugin's default (e.g. https://github.com)." }
                label for="type-description" { "Description" }
                input id="type-description" name="description" maxlength="1024" autocomplete="off" value=(draft.description);
                label for="type-token" { "Forge token (optional)" }
                input id="type-token" name="token" type="password" autocomplete="off" aria-describedby="type-token-help";
                p id="type-token-help" class="help" { "Write-only: it is sealed and never shown again. You can set it later." }
                button type="submit" { "Add agent type" }
            }
        }
    }
}

async fn list_view(
    state: &AppState,
    session: &Session,
    status: StatusCode,
    top: Markup,
    draft: &Draft,
) -> Result<Response, PageError> {
    let types = forges(state)?.agent_types().await?;
    let body = html! {
        (top)
        p class="help" {
            "An agent type names a forge plugin, its base URL and the forge token its agents act with. "
            "Agents get the token through the resolver, logged, or have Keyward make the forge call for them (dispatch)."
        }
        (type_list(&types))
        (create_form(session, draft, &forge_plugins(state)))
    };
    Ok(html_response(
        status,
        page("Agent types", Some(session), body),
    ))
}

/// The list page's query.
#[derive(Deserialize)]
pub struct ListQuery {
    notice: Option<String>,
}

/// `GET /settings/agent-types`.
pub async fn agent_types_page(
    SignedIn(session): SignedIn,
    State(state): State<AppState>,
    params: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let key = params.ok().and_then(|Query(p)| p.notice);
    let top = notice(key.as_deref());
    list_view(&state, &session, StatusCode::OK, top, &Draft::default()).await
}

/// The add form.
#[derive(Deserialize)]
pub struct NewTypeForm {
    name: String,
    forge: String,
    #[serde(default)]
    base_url: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    token: Zeroizing<String>,
}

/// The session as the access log's accessor, with why.
pub(super) fn access(session: &Session, why: &str) -> Result<Access, ApiError> {
    Ok(Access::new(
        session.accessor(),
        format!("dashboard: {why}"),
    )?)
}

/// `POST /settings/agent-types`: adds a type (and its token, if given),
/// then its page. A refused form comes back filled in (but the token),
/// with why.
pub async fn agent_type_create(
    State(state): State<AppState>,
    Submitted { session, form }: Submitted<NewTypeForm>,
) -> Result<Response, PageError> {
    let name = form.name.trim();
    let base = Some(form.base_url.trim()).filter(|b| !b.is_empty());
    let made = async {
        let f = forges(&state)?;
        f.create_agent_type(name, form.forge.trim(), base, form.description.trim())
            .await?;
        if !form.token.is_empty() {
            let access = access(&session, "set agent type token")?;
            f.set_agent_token(name, None, form.token.as_bytes(), &access)
                .await?;
        }
        Ok::<_, ApiError>(())
    }
    .await;
    if let Err(e) = made {
        let (status, message) = problem(&e);
        // Echo at most what the inputs allow, so a hostile field is not
        // sent back whole.
        let clip = |s: &str, n: usize| s.chars().take(n).collect::<String>();
        let draft = Draft {
            name: clip(&form.name, 128),
            forge: clip(&form.forge, 64),
            base_url: clip(&form.base_url, 512),
            description: clip(&form.description, 1024),
        };
        let top = html! { p role="alert" id="type-error" { "Not added: " (message) } };
        return list_view(&state, &session, status, top, &draft).await;
    }
    tracing::info!(by = %session.accessor(), %name, forge = %form.forge.trim(), "agent type created in the dashboard");
    Ok(see_other(&format!(
        "{}?notice=agent-created",
        type_href(name)
    )))
}

/// `GET /settings/agent-types/{name}/delete`: the confirmation.
pub async fn agent_type_delete_confirm(
    SignedIn(session): SignedIn,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    // 404 here, not after the operator confirmed.
    let t = forges(&state)?.agent_type(&name).await?;
    let body = html! {
        p role="alert" {
            "Delete agent type " strong { (t.name) } " and its " (t.instances.len()) " instance override(s)? "
            "Dispatch and getAgentToken for it stop at once. Its token secrets stay in the store "
            "(delete them on the Secrets page); tokens bound to it keep their binding."
        }
        form method="post" action=(format!("{}/delete", type_href(&t.name))) class="inline" {
            (csrf_field(&session))
            button type="submit" class="danger" autofocus { "Delete for good" }
            " "
            a href=(type_href(&t.name)) { "Cancel" }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        page("Delete agent type", Some(&session), body),
    ))
}

/// `POST /settings/agent-types/{name}/delete`.
pub async fn agent_type_delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Submitted { session, .. }: Submitted<super::login::Empty>,
) -> Result<Response, PageError> {
    forges(&state)?.delete_agent_type(&name).await?;
    tracing::info!(by = %session.accessor(), %name, "agent type deleted in the dashboard");
    Ok(see_other("/settings/agent-types?notice=agent-deleted"))
}
