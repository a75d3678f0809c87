//! The route table: the router is built from it and so is the OpenAPI
//! document (`GET /openapi.json`) and the API page (`GET /api`). A route
//! that is not in the table is not served, so the document lists every
//! route with the role it needs, and the role matrix test (tests/http)
//! walks the document: no route can skip the rail unnoticed.

use axum::routing::{delete, get, post, put, MethodRouter};
use schemars::{JsonSchema, Schema, SchemaGenerator};

use super::{dashboard, forge, log, metrics, openapi, routes, secrets, tokens, versions, AppState};
use crate::auth::policy::Capability;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// Anyone (health checks, the API document).
    Public,
    /// A resolver or operator token whose policy has this capability.
    Resolver(Capability),
    /// An operator token.
    Operator,
    /// A signed-in operator's session cookie (dashboard pages); a form
    /// also needs the session's CSRF token.
    Session,
    /// A session cookie on a JSON route (`GET /me`): 401 without one.
    SessionJson,
}

impl Needs {
    pub fn as_str(self) -> &'static str {
        match self {
            Needs::Public => "public",
            Needs::Resolver(_) => "resolver",
            Needs::Operator => "operator",
            Needs::Session => "session",
            Needs::SessionJson => "session-json",
        }
    }
}

/// One method on one path.
pub struct Route {
    /// `GET`, `POST`, `PUT` or `DELETE`.
    pub method: &'static str,
    /// The axum path (`{name}` for a parameter).
    pub path: &'static str,
    /// The role it needs.
    pub needs: Needs,
    /// One line for the document.
    pub summary: &'static str,
    /// Query parameters it takes.
    pub query: &'static [&'static str],
    /// Whether it takes a body: JSON, or a form for [`Needs::Session`]
    /// routes and the sign-in form.
    pub body: bool,
    /// Its success status.
    pub ok: u16,
    /// The Rust types of its JSON body, answer and query string, for the
    /// document's schemas.
    pub schemas: Schemas,
    handler: fn() -> MethodRouter<AppState>,
}

/// Makes the JSON schema of one Rust type.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// The schemas of a route, each from the type its handler uses (the
/// `Body<T>`, the `Json<T>` it answers, the `Query<T>` it reads).
#[derive(Default, Clone, Copy)]
pub struct Schemas {
    /// The JSON body.
    pub request: Option<SchemaFn>,
    /// The success answer.
    pub response: Option<SchemaFn>,
    /// The query string, an object whose properties are the parameters.
    pub query: Option<SchemaFn>,
}

/// A reference to `T`'s schema (kept once under `components/schemas`).
pub fn schema_ref<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// `T`'s own schema, inline (a query string's properties are read from it).
pub fn schema_inline<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    T::json_schema(g)
}

macro_rules! route {
    (@schemas $(req = $req:ty,)? $(resp = $resp:ty,)? $(params = $params:ty,)?) => {{
        #[allow(unused_mut)]
        let mut schemas = Schemas::default();
        $(schemas.request = Some(schema_ref::<$req>);)?
        $(schemas.response = Some(schema_ref::<$resp>);)?
        $(schemas.query = Some(schema_inline::<$params>);)?
        schemas
    }};
    ($method:ident $path:literal, Resolver($cap:ident), $ok:literal, $summary:literal, query[$($q:literal),*], body=$body:literal, $handler:path $(, $($schema:tt)*)?) => {
        Route {
            method: method_name(stringify!($method)),
            path: $path,
            needs: Needs::Resolver(Capability::$cap),
            summary: $summary,
            query: &[$($q),*],
            body: $body,
            ok: $ok,
            schemas: route!(@schemas $($($schema)*,)?),
            handler: || $method($handler),
        }
    };
    ($method:ident $path:literal, $needs:ident, $ok:literal, $summary:literal, query[$($q:literal),*], body=$body:literal, $handler:path $(, $($schema:tt)*)?) => {
        Route {
            method: method_name(stringify!($method)),
            path: $path,
            needs: Needs::$needs,
            summary: $summary,
            query: &[$($q),*],
            body: $body,
            ok: $ok,
            schemas: route!(@schemas $($($schema)*,)?),
            handler: || $method($handler),
        }
    };
}

const fn method_name(method: &'static str) -> &'static str {
    match method.as_bytes() {
        b"get" => "GET",
        b"post" => "POST",
        b"put" => "PUT",
        b"delete" => "DELETE",
        _ => panic!("unknown method"),
    }
}

/// Every route of the API.
pub fn table() -> Vec<Route> {
    vec![
        route!(get "/healthz", Public, 200, "Liveness: 200 while the process answers; never waits on the database", query[], body=false, routes::healthz),
        route!(get "/readyz", Public, 200, "Readiness: 200 when the database and the access log answer (within 500 ms each) and the plugin runtime can serve calls; 503 naming the part that failed", query[], body=false, routes::readyz),
        route!(get "/openapi.json", Public, 200, "This document", query[], body=false, openapi::openapi_json),
        route!(get "/api", Public, 200, "This document as a page", query[], body=false, openapi::api_page),
        route!(get "/secrets", Resolver(Metadata), 200, "Metadata of every secret; never a value", query["scope"], body=false, secrets::list, resp = Vec<crate::store::secrets::SecretMeta>, params = secrets::ScopeQuery),
        route!(post "/secrets", Operator, 201, "Create a secret {name, scope?, value, description?}", query[], body=true, secrets::create, req = secrets::NewSecret, resp = crate::store::secrets::SecretMeta),
        route!(put "/secrets/{name}", Operator, 200, "Replace the value, description and/or versions kept {value?, description?, max_versions?, cas?}; If-Match: \"N\" makes it a check-and-set (409 version_mismatch)", query["scope"], body=true, secrets::update, req = secrets::Update, resp = crate::store::secrets::SecretMeta, params = secrets::ScopeQuery),
        route!(delete "/secrets/{name}", Operator, 204, "Soft-delete a secret (undeletable for KEYWARD_DELETE_RETENTION); destroy=true removes every version's ciphertext now", query["scope", "destroy"], body=false, secrets::delete, params = secrets::DeleteQuery),
        route!(post "/secrets/{name}/undelete", Operator, 200, "Make a soft-deleted secret live again (409 not_deleted, 410 retention_passed)", query["scope"], body=false, secrets::undelete, resp = crate::store::secrets::SecretMeta, params = secrets::ScopeQuery),
        route!(get "/deleted-secrets", Operator, 200, "The soft-deleted secrets: when, by whom, until when undeletable; never a value", query["scope"], body=false, secrets::deleted, resp = Vec<crate::store::secrets::DeletedMeta>, params = secrets::ScopeQuery),
        route!(post "/secrets/{name}/rotate", Operator, 200, "Re-seal under the current master key", query["scope"], body=false, secrets::rotate, resp = crate::store::secrets::SecretMeta, params = secrets::ScopeQuery),
        route!(post "/secrets/{name}/reveal", Resolver(Render), 200, "One secret's value {reason}, base64; logged as a reveal", query["scope"], body=true, secrets::reveal, req = secrets::RevealRequest, resp = secrets::Revealed, params = secrets::ScopeQuery),
        route!(get "/secrets/{name}/versions", Operator, 200, "Every version's metadata (number, written when and by whom, key id, state), newest first; never a value", query["scope"], body=false, versions::versions, resp = Vec<crate::store::versions::VersionMeta>, params = secrets::ScopeQuery),
        route!(post "/secrets/{name}/versions/{version}/reveal", Operator, 200, "One version's value {reason}, base64; logged as a reveal of that version", query["scope"], body=true, versions::reveal_version, req = secrets::RevealRequest, resp = secrets::Revealed, params = secrets::ScopeQuery),
        route!(post "/secrets/{name}/rollback", Operator, 200, "Make kept version {to} the value again, as a new version {to, reason}; logged as a reveal and a replace", query["scope"], body=true, versions::rollback, req = versions::Rollback, resp = crate::store::secrets::SecretMeta, params = secrets::ScopeQuery),
        route!(get "/secrets/{name}/access-log", Resolver(AccessLog), 200, "The secret's access-log rows, newest first, paged", query["scope", "accessor", "action", "before", "limit"], body=false, secrets::history, resp = secrets::HistoryPage, params = secrets::HistoryParams),
        route!(post "/render", Resolver(Render), 200, "Substitute ${SECRET:…} placeholders {template | templates: {NAME: template}, reason, context?}", query[], body=true, routes::render, req = routes::RenderRequest, resp = routes::Rendered),
        route!(post "/tokens", Operator, 201, "Create an API token {name, role, ttl_seconds?}; shown once", query[], body=true, tokens::create_token, req = tokens::NewToken, resp = tokens::IssuedToken<'static>),
        route!(get "/tokens", Operator, 200, "Every API token, never the token itself", query[], body=false, tokens::list_tokens, resp = Vec<crate::store::tokens::TokenRow>),
        route!(delete "/tokens/{id}", Operator, 204, "Revoke an API token", query[], body=false, tokens::revoke_token),
        route!(post "/tokens/{id}/rotate", Operator, 200, "Give an API token a new value {grace_seconds?}; shown once", query[], body=true, tokens::rotate_token, req = tokens::Rotate, resp = tokens::RotatedToken<'static>),
        route!(get "/access-log", Operator, 200, "The newest access-log rows, or the rows after a seq (to follow)", query["after", "limit"], body=false, log::tail, resp = log::TailPage, params = log::TailParams),
        route!(post "/access-log/verify", Operator, 200, "Verify the chain on the server {checkpoints?: [signed checkpoint]}", query[], body=true, log::verify, req = log::VerifyRequest, resp = crate::vault::LogVerdict),
        route!(get "/plugins", Operator, 200, "Loaded plugins (kind, version, sha256, grants, limits) and refused files", query[], body=false, routes::list_plugins, resp = crate::runtime::view::PluginList),
        route!(post "/plugins/reload", Operator, 200, "Reload the plugins folder now", query[], body=false, routes::reload_plugins, resp = routes::Reloaded),
        route!(get "/metrics", Resolver(Metrics), 200, "Prometheus metrics", query[], body=false, metrics::metrics),
        // Forges: operator sign-in, the active forge, agent types.
        route!(get "/auth/{forge}/login", Public, 303, "Sign in with a forge: to its authorize page (state + PKCE)", query[], body=false, forge::login),
        route!(get "/auth/{forge}/callback", Public, 200, "The forge's redirect back; sets the session cookie", query["code", "state", "error", "error_description"], body=false, forge::callback, params = forge::CallbackQuery),
        route!(get "/me", SessionJson, 200, "The active forge and the signed-in account {forge_type, account_login, base_url, since}", query[], body=false, forge::me, resp = crate::forge::router::Me),
        route!(get "/forge/repos", Operator, 200, "One page of the operator's repositories on the active forge; 412 without one", query["cursor"], body=false, forge::repos, resp = crate::runtime::RepositoryPage, params = forge::CursorQuery),
        route!(get "/agent-types", Resolver(Metadata), 200, "Every agent type; never a token", query[], body=false, forge::list_agent_types, resp = Vec<crate::forge::agents::AgentTypeView>),
        route!(post "/agent-types", Operator, 201, "Create an agent type {name, forge, base_url?, description?, token?}", query[], body=true, forge::create_agent_type, req = forge::NewAgentType, resp = crate::forge::agents::AgentTypeView),
        route!(get "/agent-types/{name}", Resolver(Metadata), 200, "One agent type; never a token", query[], body=false, forge::get_agent_type, resp = crate::forge::agents::AgentTypeView),
        route!(delete "/agent-types/{name}", Operator, 204, "Delete an agent type and its instance overrides", query[], body=false, forge::delete_agent_type),
        route!(put "/agent-types/{name}/token", Operator, 200, "Set or rotate the token {value, instance?}", query[], body=true, forge::set_agent_token, req = forge::SetToken, resp = forge::TokenReference),
        route!(post "/agent-types/{name}/token", Resolver(AgentToken), 200, "getAgentToken {reason, instance?}: the token, logged with caller and reason", query[], body=true, forge::agent_token, req = forge::ForAgent, resp = forge::AgentToken<'static>),
        route!(post "/agent-types/{name}/dispatch", Resolver(Dispatch), 200, "A forge call (whoami) with the agent type's token {reason, instance?}", query[], body=true, forge::dispatch, req = forge::ForAgent, resp = forge::Dispatched),
        route!(delete "/agent-types/{name}/instances/{id}", Operator, 204, "Remove an instance's token override", query[], body=false, forge::delete_instance),
        // The dashboard: HTML pages and forms, for a session, not a token.
        route!(get "/", Public, 303, "The dashboard (redirects)", query[], body=false, dashboard::root),
        route!(get "/static/keyward.css", Public, 200, "The dashboard's stylesheet", query[], body=false, dashboard::stylesheet),
        route!(get "/login", Public, 200, "How to sign in", query[], body=false, dashboard::login_page),
        route!(get "/login/{link}", Public, 200, "A one-time sign-in link's confirmation page", query[], body=false, dashboard::login_confirm),
        route!(post "/login", Public, 303, "Sign in with a one-time link (form: link); sets the session cookie", query[], body=true, dashboard::login_submit),
        route!(post "/logout", Session, 303, "Sign out (form)", query[], body=true, dashboard::logout),
        route!(get "/settings/secrets", Session, 200, "Dashboard: the secrets", query["notice"], body=false, dashboard::secrets_page),
        route!(post "/settings/secrets", Session, 303, "Dashboard: add a secret (form: name, scope, value, description)", query[], body=true, dashboard::secret_create),
        route!(get "/settings/secrets/{name}", Session, 200, "Dashboard: one secret and its access log", query["scope", "notice", "before", "accessor", "action"], body=false, dashboard::secret_page),
        route!(post "/settings/secrets/{name}/describe", Session, 303, "Dashboard: save the description (form)", query["scope"], body=true, dashboard::secret_describe),
        route!(post "/settings/secrets/{name}/replace", Session, 303, "Dashboard: replace the value (form)", query["scope"], body=true, dashboard::secret_replace),
        route!(post "/settings/secrets/{name}/rotate", Session, 303, "Dashboard: re-seal (form)", query["scope"], body=true, dashboard::secret_rotate),
        route!(get "/settings/secrets/{name}/rollback", Session, 200, "Dashboard: confirm a rollback to a kept version (asks why)", query["scope", "to"], body=false, dashboard::secret_rollback_confirm),
        route!(post "/settings/secrets/{name}/rollback", Session, 303, "Dashboard: roll back (form {to, reason})", query["scope"], body=true, dashboard::secret_rollback),
        route!(get "/settings/secrets/{name}/delete", Session, 200, "Dashboard: confirm a deletion", query["scope"], body=false, dashboard::secret_delete_confirm),
        route!(post "/settings/secrets/{name}/delete", Session, 303, "Dashboard: soft-delete (form)", query["scope"], body=true, dashboard::secret_delete),
        route!(post "/settings/secrets/{name}/undelete", Session, 303, "Dashboard: undelete (form)", query["scope"], body=true, dashboard::secret_undelete),
        route!(get "/settings/secrets/{name}/destroy", Session, 200, "Dashboard: confirm a destroy", query["scope"], body=false, dashboard::secret_destroy_confirm),
        route!(post "/settings/secrets/{name}/destroy", Session, 303, "Dashboard: destroy with every version (form)", query["scope"], body=true, dashboard::secret_destroy),
        route!(get "/settings/plugins", Session, 200, "Dashboard: loaded plugins (grants, limits, source, last run) and refused files with why; reload", query["notice"], body=false, dashboard::plugins_page),
        route!(post "/settings/plugins/reload", Session, 303, "Dashboard: reload the plugins folder (form)", query[], body=true, dashboard::plugins_reload),
        route!(get "/settings/access-log", Session, 200, "Dashboard: the whole access log, newest first, filtered (accessor, action, outcome, scope, name, from/to day) and paged", query["accessor", "action", "outcome", "scope", "name", "from", "to", "before"], body=false, dashboard::log_page),
        route!(post "/settings/access-log/verify", Session, 200, "Dashboard: verify the chain now (form); 409 with the verdict if it is broken", query[], body=true, dashboard::log_verify),
        route!(get "/settings/tokens", Session, 200, "Dashboard: API tokens with their policies; the create form, pre-bound by agent_type and instance", query["notice", "agent_type", "instance"], body=false, dashboard::tokens_page),
        route!(post "/settings/tokens", Session, 201, "Dashboard: create an API token (form: name, role, ttl_days, agent_type, instance, can…, resolve, networks); shown once", query[], body=true, dashboard::token_create),
        route!(post "/settings/tokens/{id}/revoke", Session, 303, "Dashboard: revoke an API token (form)", query[], body=true, dashboard::token_revoke),
        route!(post "/settings/tokens/{id}/rotate", Session, 200, "Dashboard: rotate an API token (form: grace_minutes); the new value shown once", query[], body=true, dashboard::token_rotate),
        route!(get "/settings/agent-types", Session, 200, "Dashboard: agent types (never a token) and the add form", query["notice"], body=false, dashboard::agent_types_page),
        route!(post "/settings/agent-types", Session, 303, "Dashboard: add an agent type (form: name, forge, base_url, description, token)", query[], body=true, dashboard::agent_type_create),
        route!(get "/settings/agent-types/{name}", Session, 200, "Dashboard: one agent type: its token, instance overrides, test dispatch", query["notice"], body=false, dashboard::agent_type_page),
        route!(post "/settings/agent-types/{name}/token", Session, 303, "Dashboard: set or rotate the type's or an instance's token (form: value, instance)", query[], body=true, dashboard::agent_type_token),
        route!(post "/settings/agent-types/{name}/instances/{id}/delete", Session, 303, "Dashboard: remove an instance's token override (form)", query[], body=true, dashboard::instance_delete),
        route!(post "/settings/agent-types/{name}/dispatch", Session, 200, "Dashboard: a test dispatch (whoami) with the type's token (form: instance); shows the account or the forge's error", query[], body=true, dashboard::agent_type_dispatch),
        route!(get "/settings/agent-types/{name}/delete", Session, 200, "Dashboard: confirm deleting an agent type", query[], body=false, dashboard::agent_type_delete_confirm),
        route!(post "/settings/agent-types/{name}/delete", Session, 303, "Dashboard: delete an agent type (form)", query[], body=true, dashboard::agent_type_delete),
    ]
}

/// Adds every route of the table to `router`.
pub fn register(mut router: axum::Router<AppState>) -> axum::Router<AppState> {
    for route in table() {
        router = router.route(route.path, (route.handler)());
    }
    router
}

/// The capability a resolver route needs, by method and axum path (as
/// `MatchedPath` gives it); none for a route that is not a resolver's.
pub fn capability(method: &str, path: &str) -> Option<Capability> {
    static CAPABILITIES: std::sync::OnceLock<
        std::collections::HashMap<(&'static str, &'static str), Capability>,
    > = std::sync::OnceLock::new();
    CAPABILITIES
        .get_or_init(|| {
            table()
                .into_iter()
                .filter_map(|r| match r.needs {
                    Needs::Resolver(cap) => Some(((r.method, r.path), cap)),
                    _ => None,
                })
                .collect()
        })
        .get(&(method, path))
        .copied()
}
