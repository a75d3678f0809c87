//! Forge routes: the operator sign-in (`/auth/{forge}/login` and
//! `/callback`), `/me`, the active forge's repositories, and agent types
//! (their tokens through the resolver, and dispatch).
//!
//! (About 500 lines: one handler per forge route and the two extractors
//! they share; the forge logic itself is in `forge/`.)

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::header::{CACHE_CONTROL, LOCATION, SET_COOKIE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use maud::html;
use serde::Deserialize;
use tokio::sync::OwnedSemaphorePermit;
use zeroize::Zeroizing;

use super::auth::{Operator, Resolver, SessionCaller};
use super::body::Body;
use super::dashboard::{page_response, q};
use super::error::ApiError;
use super::secrets::{query, QueryResult};
use super::AppState;
use crate::audit::{Access, Action};
use crate::forge::agents::AgentTypeView;
use crate::forge::{ForgeError, Forges};
use crate::names::{Scope, SecretName};

fn forges(state: &AppState) -> Result<&Forges, ApiError> {
    state
        .forges
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("this server has no forges configured".into()))
}

/// The query of a forge's redirect back to `/auth/{forge}/callback`. Other
/// parameters a forge adds (`iss`, `session_state`, …) are ignored.
#[derive(Deserialize, schemars::JsonSchema)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `?cursor=` of `GET /forge/repos`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CursorQuery {
    cursor: Option<String>,
}

/// A slot in the unauthenticated share of the plugin pool, or 429.
fn unauthenticated_slot(state: &AppState) -> Result<OwnedSemaphorePermit, ApiError> {
    state.sign_in.call_slot().ok_or_else(|| ApiError::TooMany {
        message: "too many sign-ins are running at once; try again in a moment".into(),
        retry_after: 1,
    })
}

/// `GET /auth/{forge}/login`: 303 to the forge's authorize page, with a
/// fresh state and PKCE challenge kept on the server. Anyone may call it,
/// so it is limited (docs/http-api.md, "Sign-in limits"): past the rate,
/// with the pending sign-ins at their cap, or with the unauthenticated
/// share of the plugin pool in use it answers 429 with `Retry-After`.
pub async fn login(
    State(state): State<AppState>,
    Path(forge): Path<String>,
) -> Result<Response, ApiError> {
    let forges = forges(&state)?;
    // An unknown forge costs nothing, so it does not draw on the limits.
    forges.sign_in_configured(&forge)?;
    if let Err(retry_after) = state.sign_in.start() {
        return Err(ApiError::TooMany {
            message: "too many sign-ins started; try again shortly".into(),
            retry_after,
        });
    }
    let _slot = unauthenticated_slot(&state)?;
    if let Some(retry_after) = forges
        .pending_full(state.sign_in.limits().max_pending)
        .await?
    {
        tracing::warn!(%forge, "sign-in refused: too many sign-ins in progress");
        return Err(ApiError::TooMany {
            message: "too many sign-ins are in progress; try again when one finishes or expires"
                .into(),
            retry_after,
        });
    }
    let start = forges.begin_login(&forge).await?;
    let location = HeaderValue::from_str(&start.url)
        .map_err(|_| ApiError::Invalid("the forge plugin built an unusable URL".into()))?;
    let mut r = StatusCode::SEE_OTHER.into_response();
    r.headers_mut().insert(LOCATION, location);
    // The callback is accepted only from the browser holding this cookie.
    r.headers_mut()
        .insert(SET_COOKIE, state.web.pre_auth(start.browser.expose()));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// `GET /auth/{forge}/callback?code&state` (or `?error&error_description`):
/// finishes the sign-in and sets the session cookie. Answers a page that
/// moves on to the dashboard, not a redirect: the browser arrives here
/// from the forge's site, and a `SameSite=Strict` cookie is only sent on a
/// navigation that starts on Keyward's own page.
pub async fn callback(
    State(state): State<AppState>,
    Path(forge): Path<String>,
    headers: axum::http::HeaderMap,
    q: QueryResult<CallbackQuery>,
) -> Response {
    // A query that does not parse (a repeated key, say) is a bad callback.
    let q = q.ok().map(|Query(q)| q);
    let mut r = finish_sign_in(&state, &forge, &headers, q).await;
    // Used or refused, the pre-auth cookie has served its purpose.
    r.headers_mut()
        .append(SET_COOKIE, state.web.clear_pre_auth());
    r
}

async fn finish_sign_in(
    state: &AppState,
    forge: &str,
    headers: &axum::http::HeaderMap,
    query: Option<CallbackQuery>,
) -> Response {
    let browser = super::dashboard::cookie(headers, state.web.pre_auth_name());
    let back = query.unwrap_or(CallbackQuery {
        code: None,
        state: None,
        error: None,
        error_description: None,
    });
    let result = match (back.code.as_deref(), back.state.as_deref()) {
        _ if back.error.is_some() => Err(ForgeError::Refused(
            back.error_description
                .as_deref()
                .or(back.error.as_deref())
                .unwrap_or("")
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect(),
        )),
        (Some(code), Some(st)) => match forges(state) {
            Ok(f) => {
                // Trading the code runs plugin calls before anyone is known.
                let _slot = match unauthenticated_slot(state) {
                    Ok(slot) => slot,
                    Err(e) => return e.into_response(),
                };
                f.complete_login(forge, code, st, browser).await
            }
            Err(e) => return e.into_response(),
        },
        _ => Err(ForgeError::BadCallback),
    };
    match result {
        Ok(done) => {
            let mut r = page_response(
                StatusCode::OK,
                "Signed in",
                html! {
                    meta http-equiv="refresh" content="0;url=/settings/secrets";
                    p { "Signed in as " strong { (done.login) } " with " (forge) "." }
                    p { a href="/settings/secrets" autofocus { "Continue to the dashboard" } }
                },
            );
            r.headers_mut()
                .insert(SET_COOKIE, state.web.start(done.secret.expose()));
            r
        }
        Err(e) => {
            let status =
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if status.is_server_error() {
                tracing::error!(error = %e, %forge, "forge sign-in failed");
            } else {
                tracing::warn!(error = %e, %forge, "forge sign-in refused");
            }
            let message = if status.is_server_error() {
                "the sign-in failed; see the server log".to_owned()
            } else {
                e.to_string()
            };
            page_response(
                status,
                "Sign-in failed",
                html! {
                    p role="alert" { (message) }
                    p { a href={ "/auth/" (q(forge)) "/login" } { "Try again" } }
                },
            )
        }
    }
}

/// `GET /me` (session): the active forge and who is signed in there.
pub async fn me(
    SessionCaller(_session): SessionCaller,
    State(state): State<AppState>,
) -> Result<Json<crate::forge::router::Me>, ApiError> {
    Ok(Json(forges(&state)?.me().await?))
}

/// `GET /forge/repos?cursor=` (operator): one page of the operator's
/// repositories on the active forge; 412 without one.
pub async fn repos(
    Operator(_caller): Operator,
    State(state): State<AppState>,
    q: QueryResult<CursorQuery>,
) -> Result<Json<crate::runtime::RepositoryPage>, ApiError> {
    let q = query(q)?;
    let cursor = q.cursor.as_deref().filter(|c| !c.is_empty());
    if cursor.is_some_and(|c| c.len() > 256) {
        return Err(ApiError::Invalid("cursor: at most 256 characters".into()));
    }
    Ok(Json(forges(&state)?.repositories(cursor).await?))
}

/// `GET /agent-types` (resolver).
pub async fn list_agent_types(
    Resolver(caller): Resolver,
    State(state): State<AppState>,
) -> Result<Json<Vec<AgentTypeView>>, ApiError> {
    let mut types = forges(&state)?.agent_types().await?;
    // A token bound to an agent sees its own type only.
    if let Some(binding) = caller.policy.as_deref().and_then(|p| p.agent.as_ref()) {
        types.retain(|t| t.name == binding.agent_type);
    }
    Ok(Json(types))
}

/// `GET /agent-types/{name}` (resolver).
pub async fn get_agent_type(
    Resolver(caller): Resolver,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<AgentTypeView>, ApiError> {
    if let Some(binding) = caller.policy.as_deref().and_then(|p| p.agent.as_ref()) {
        if binding.agent_type != name {
            return Err(crate::auth::AuthError::NotPermitted(format!(
                "the token is bound to agent type {}",
                binding.agent_type
            ))
            .into());
        }
    }
    Ok(Json(forges(&state)?.agent_type(&name).await?))
}

/// `POST /agent-types` body.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAgentType {
    name: String,
    forge: String,
    base_url: Option<String>,
    #[serde(default)]
    description: String,
    #[schemars(with = "Option<String>")]
    token: Option<Zeroizing<String>>,
}

/// `POST /agent-types` (operator): 201; the token, if given, is stored at
/// `agent_type:<name>/FORGE_TOKEN`.
pub async fn create_agent_type(
    Operator(caller): Operator,
    State(state): State<AppState>,
    Body(req): Body<NewAgentType>,
) -> Result<(StatusCode, Json<AgentTypeView>), ApiError> {
    let f = forges(&state)?;
    let access = Access::new(caller.accessor(), "create agent type")?;
    f.create_agent_type(
        &req.name,
        &req.forge,
        req.base_url.as_deref(),
        &req.description,
    )
    .await?;
    if let Some(token) = &req.token {
        f.set_agent_token(&req.name, None, token.as_bytes(), &access)
            .await?;
    }
    tracing::info!(by = %caller.accessor(), name = %req.name, forge = %req.forge, "agent type created");
    Ok((StatusCode::CREATED, Json(f.agent_type(&req.name).await?)))
}

/// `DELETE /agent-types/{name}` (operator): 204.
pub async fn delete_agent_type(
    Operator(caller): Operator,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    forges(&state)?.delete_agent_type(&name).await?;
    tracing::info!(by = %caller.accessor(), %name, "agent type deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /agent-types/{name}/token` body.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetToken {
    #[schemars(with = "String")]
    value: Zeroizing<String>,
    instance: Option<String>,
}

/// `PUT /agent-types/{name}/token` (operator): sets or rotates the token
/// (of the type, or of one instance); the next dispatch uses it.
pub async fn set_agent_token(
    Operator(caller): Operator,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Body(req): Body<SetToken>,
) -> Result<Json<TokenReference>, ApiError> {
    let access = Access::new(caller.accessor(), "set agent type token")?;
    let reference = forges(&state)?
        .set_agent_token(
            &name,
            req.instance.as_deref(),
            req.value.as_bytes(),
            &access,
        )
        .await?;
    Ok(Json(TokenReference { token: reference }))
}

/// `DELETE /agent-types/{name}/instances/{id}` (operator): 204.
pub async fn delete_instance(
    Operator(_caller): Operator,
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    forges(&state)?.delete_instance(&name, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of the token and dispatch calls.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForAgent {
    reason: String,
    instance: Option<String>,
}

/// For a token held to a policy: whether it may use agent type `name`'s
/// token (for `instance`), and the instance to use — an instance-bound
/// token's own when the request names none. A token bound to an agent may
/// act only for it; any token's patterns must allow `agent_type:<name>/
/// FORGE_TOKEN` (and `instance:<id>/FORGE_TOKEN`). A refusal is a `denied`
/// row and a 403.
async fn agent_allowed(
    state: &AppState,
    caller: &crate::auth::Caller,
    access: &Access,
    action: Action,
    name: &str,
    instance: Option<String>,
) -> Result<Option<String>, ApiError> {
    let Some(policy) = caller.policy.as_deref() else {
        return Ok(instance);
    };
    let mut instance = instance;
    let mut refusal = None;
    if let Some(binding) = &policy.agent {
        if binding.agent_type != name {
            refusal = Some(format!(
                "the token is bound to agent type {}",
                binding.agent_type
            ));
        } else if let Some(own) = &binding.instance {
            match &instance {
                Some(asked) if asked != own => {
                    refusal = Some(format!("the token is bound to instance {own}"));
                }
                _ => instance = Some(own.clone()),
            }
        }
    }
    let token = SecretName::parse(crate::forge::agents::TOKEN_NAME)
        .map_err(|e| ApiError::Invalid(e.to_string()))?;
    let mut scopes =
        vec![Scope::scoped("agent_type", name).map_err(|e| ApiError::Invalid(e.to_string()))?];
    if let Some(id) = &instance {
        scopes.push(Scope::scoped("instance", id).map_err(|e| ApiError::Invalid(e.to_string()))?);
    }
    if refusal.is_none() {
        if let Some(scope) = scopes.iter().find(|s| policy.rule_for(s, &token).is_none()) {
            refusal = Some(format!(
                "{scope}/{} is {}",
                crate::forge::agents::TOKEN_NAME,
                crate::vault::Limit::why_not(policy)
            ));
        }
    }
    let Some(why) = refusal else {
        return Ok(instance);
    };
    let scope = scopes.last().map_or("global", |s| s.as_str());
    state
        .vault
        .record_denied(
            access,
            action,
            scope,
            crate::forge::agents::TOKEN_NAME,
            &why,
        )
        .await?;
    Err(crate::auth::AuthError::NotPermitted(why).into())
}

/// A resolver's call for one agent type (`POST /agent-types/{name}/token`
/// and `/dispatch`): the caller, the type's name and the body, extracted in
/// the order the handlers once took them as arguments (the token is checked
/// before the body is read).
pub struct AgentCall {
    caller: crate::auth::Caller,
    name: String,
    req: ForAgent,
}

impl FromRequest<AppState> for AgentCall {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let Resolver(caller) = Resolver::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Path(name) = Path::<String>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Body(req) = Body::<ForAgent>::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(AgentCall { caller, name, req })
    }
}

impl AgentCall {
    /// The call's access, its reason checked like any access's and logged
    /// with it, and the instance it may act for (see [`agent_allowed`]).
    async fn allowed(
        &self,
        state: &AppState,
        action: Action,
    ) -> Result<(Access, Option<String>), ApiError> {
        let access = Access::new(self.caller.accessor(), self.req.reason.as_str())?;
        let instance = agent_allowed(
            state,
            &self.caller,
            &access,
            action,
            &self.name,
            self.req.instance.clone(),
        )
        .await?;
        Ok((access, instance))
    }
}

/// `POST /agent-types/{name}/token` (resolver): getAgentToken, logged with
/// the caller and `reason`.
pub async fn agent_token(
    State(state): State<AppState>,
    call: AgentCall,
) -> Result<Response, ApiError> {
    let (access, instance) = call.allowed(&state, Action::Reveal).await?;
    let value = forges(&state)?
        .agent_token(&call.name, instance.as_deref(), &access)
        .await?;
    let text = std::str::from_utf8(value.expose())
        .map_err(|_| ApiError::Invalid("the token is not UTF-8".into()))?;
    Ok(Json(AgentToken { token: text }).into_response())
}

/// What `PUT /agent-types/{name}/token` answers.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct TokenReference {
    /// The secret reference the token is stored under (never the token).
    pub token: String,
}

/// What getAgentToken answers.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct AgentToken<'a> {
    /// The agent type's (or instance's) token.
    pub token: &'a str,
}

/// What a dispatch answers.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Dispatched {
    /// Who the forge says the token belongs to.
    pub account: crate::runtime::Account,
}

/// `POST /agent-types/{name}/dispatch` (resolver): a forge call (whoami)
/// with the agent type's token, through its plugin.
pub async fn dispatch(
    State(state): State<AppState>,
    call: AgentCall,
) -> Result<Json<Dispatched>, ApiError> {
    let (access, instance) = call.allowed(&state, Action::Egress).await?;
    let account = forges(&state)?
        .dispatch(&call.name, instance.as_deref(), &access)
        .await?;
    Ok(Json(Dispatched { account }))
}
