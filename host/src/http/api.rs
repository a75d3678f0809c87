//! The route table: the router is built from it and so is the OpenAPI
//! document (`GET /openapi.json`) and the API page (`GET /api`). A route
//! that is not in the table is not served, so the document lists every
//! route with the role it needs, and the role matrix test (tests/http)
//! walks the document: no route can skip the rail unnoticed.

use axum::routing::{delete, get, post, put, MethodRouter};
use serde_json::{json, Map, Value};

use super::{dashboard, forge, log, metrics, routes, secrets, tokens, AppState};
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
    fn as_str(self) -> &'static str {
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
    handler: fn() -> MethodRouter<AppState>,
}

macro_rules! route {
    ($method:ident $path:literal, Resolver($cap:ident), $ok:literal, $summary:literal, query[$($q:literal),*], body=$body:literal, $handler:path) => {
        Route {
            method: method_name(stringify!($method)),
            path: $path,
            needs: Needs::Resolver(Capability::$cap),
            summary: $summary,
            query: &[$($q),*],
            body: $body,
            ok: $ok,
            handler: || $method($handler),
        }
    };
    ($method:ident $path:literal, $needs:ident, $ok:literal, $summary:literal, query[$($q:literal),*], body=$body:literal, $handler:path) => {
        Route {
            method: method_name(stringify!($method)),
            path: $path,
            needs: Needs::$needs,
            summary: $summary,
            query: &[$($q),*],
            body: $body,
            ok: $ok,
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
        route!(get "/openapi.json", Public, 200, "This document", query[], body=false, openapi_json),
        route!(get "/api", Public, 200, "This document as a page", query[], body=false, api_page),
        route!(get "/secrets", Resolver(Metadata), 200, "Metadata of every secret; never a value", query["scope"], body=false, secrets::list),
        route!(post "/secrets", Operator, 201, "Create a secret {name, scope?, value, description?}", query[], body=true, secrets::create),
        route!(put "/secrets/{name}", Operator, 200, "Replace the value, description and/or versions kept {value?, description?, max_versions?, cas?}; If-Match: \"N\" makes it a check-and-set (409 version_mismatch)", query["scope"], body=true, secrets::update),
        route!(delete "/secrets/{name}", Operator, 204, "Soft-delete a secret (undeletable for KEYWARD_DELETE_RETENTION); destroy=true removes every version's ciphertext now", query["scope", "destroy"], body=false, secrets::delete),
        route!(post "/secrets/{name}/undelete", Operator, 200, "Make a soft-deleted secret live again (409 not_deleted, 410 retention_passed)", query["scope"], body=false, secrets::undelete),
        route!(get "/deleted-secrets", Operator, 200, "The soft-deleted secrets: when, by whom, until when undeletable; never a value", query["scope"], body=false, secrets::deleted),
        route!(post "/secrets/{name}/rotate", Operator, 200, "Re-seal under the current master key", query["scope"], body=false, secrets::rotate),
        route!(post "/secrets/{name}/reveal", Resolver(Render), 200, "One secret's value {reason}, base64; logged as a reveal", query["scope"], body=true, secrets::reveal),
        route!(get "/secrets/{name}/versions", Operator, 200, "Every version's metadata (number, written when and by whom, key id, state), newest first; never a value", query["scope"], body=false, secrets::versions),
        route!(post "/secrets/{name}/versions/{version}/reveal", Operator, 200, "One version's value {reason}, base64; logged as a reveal of that version", query["scope"], body=true, secrets::reveal_version),
        route!(post "/secrets/{name}/rollback", Operator, 200, "Make kept version {to} the value again, as a new version {to, reason}; logged as a reveal and a replace", query["scope"], body=true, secrets::rollback),
        route!(get "/secrets/{name}/access-log", Resolver(AccessLog), 200, "The secret's access-log rows, newest first, paged", query["scope", "accessor", "action", "before", "limit"], body=false, secrets::history),
        route!(post "/render", Resolver(Render), 200, "Substitute ${SECRET:…} placeholders {template | templates: {NAME: template}, reason, context?}", query[], body=true, routes::render),
        route!(post "/tokens", Operator, 201, "Create an API token {name, role, ttl_seconds?}; shown once", query[], body=true, tokens::create_token),
        route!(get "/tokens", Operator, 200, "Every API token, never the token itself", query[], body=false, tokens::list_tokens),
        route!(delete "/tokens/{id}", Operator, 204, "Revoke an API token", query[], body=false, tokens::revoke_token),
        route!(post "/tokens/{id}/rotate", Operator, 200, "Give an API token a new value {grace_seconds?}; shown once", query[], body=true, tokens::rotate_token),
        route!(get "/access-log", Operator, 200, "The newest access-log rows, or the rows after a seq (to follow)", query["after", "limit"], body=false, log::tail),
        route!(post "/access-log/verify", Operator, 200, "Verify the chain on the server {checkpoints?: [signed checkpoint]}", query[], body=true, log::verify),
        route!(get "/plugins", Operator, 200, "Loaded plugins (kind, version, sha256, grants, limits) and refused files", query[], body=false, routes::list_plugins),
        route!(post "/plugins/reload", Operator, 200, "Reload the plugins folder now", query[], body=false, routes::reload_plugins),
        route!(get "/metrics", Resolver(Metrics), 200, "Prometheus metrics", query[], body=false, metrics::metrics),
        // Forges: operator sign-in, the active forge, agent types.
        route!(get "/auth/{forge}/login", Public, 303, "Sign in with a forge: to its authorize page (state + PKCE)", query[], body=false, forge::login),
        route!(get "/auth/{forge}/callback", Public, 200, "The forge's redirect back; sets the session cookie", query["code", "state", "error", "error_description"], body=false, forge::callback),
        route!(get "/me", SessionJson, 200, "The active forge and the signed-in account {forge_type, account_login, base_url, since}", query[], body=false, forge::me),
        route!(get "/forge/repos", Operator, 200, "One page of the operator's repositories on the active forge; 412 without one", query["cursor"], body=false, forge::repos),
        route!(get "/agent-types", Resolver(Metadata), 200, "Every agent type; never a token", query[], body=false, forge::list_agent_types),
        route!(post "/agent-types", Operator, 201, "Create an agent type {name, forge, base_url?, description?, token?}", query[], body=true, forge::create_agent_type),
        route!(get "/agent-types/{name}", Resolver(Metadata), 200, "One agent type; never a token", query[], body=false, forge::get_agent_type),
        route!(delete "/agent-types/{name}", Operator, 204, "Delete an agent type and its instance overrides", query[], body=false, forge::delete_agent_type),
        route!(put "/agent-types/{name}/token", Operator, 200, "Set or rotate the token {value, instance?}", query[], body=true, forge::set_agent_token),
        route!(post "/agent-types/{name}/token", Resolver(AgentToken), 200, "getAgentToken {reason, instance?}: the token, logged with caller and reason", query[], body=true, forge::agent_token),
        route!(post "/agent-types/{name}/dispatch", Resolver(Dispatch), 200, "A forge call (whoami) with the agent type's token {reason, instance?}", query[], body=true, forge::dispatch),
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

/// The OpenAPI 3.1 document of [`table`].
pub fn document() -> Value {
    let mut paths = Map::new();
    for route in table() {
        let mut op = json!({
            "summary": route.summary,
            "x-keyward-role": route.needs.as_str(),
            "x-keyward-capability": match route.needs {
                Needs::Resolver(cap) => Value::from(cap.as_str()),
                _ => Value::Null,
            },
            "responses": responses(&route),
        });
        let mut parameters: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        parameters.extend(route.query.iter().map(
            |q| json!({"name": q, "in": "query", "required": false, "schema": {"type": "string"}}),
        ));
        if !parameters.is_empty() {
            op["parameters"] = Value::Array(parameters);
        }
        let form = route.needs == Needs::Session || route.path == "/login";
        if route.body {
            let media = if form {
                "application/x-www-form-urlencoded"
            } else {
                "application/json"
            };
            op["requestBody"] =
                json!({"required": true, "content": {media: {"schema": {"type": "object"}}}});
        }
        match route.needs {
            Needs::Public => {}
            Needs::Session | Needs::SessionJson => op["security"] = json!([{"session": []}]),
            Needs::Resolver(_) | Needs::Operator => op["security"] = json!([{"bearer": []}]),
        }
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[route.method.to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Keyward",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Secret-resolution host. Errors are {\"error\": {\"code\", \"message\"}}; see docs/http-api.md."
        },
        "components": {"securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "An API token, kw_…"},
            "session": {"type": "apiKey", "in": "cookie", "name": "keyward_session", "description": "An operator's dashboard session (`__Host-keyward_session` over https); forms also carry its CSRF token in the `csrf` field"}
        }},
        "paths": paths,
    })
}

fn responses(route: &Route) -> Value {
    let mut r = Map::new();
    r.insert(route.ok.to_string(), json!({"description": "success"}));
    let error = |d: &str| json!({"description": d});
    if route.needs == Needs::Session {
        // Pages and forms answer in HTML, with the API's statuses.
        if route.method == "GET" {
            r.insert("303".into(), error("no session: to /login"));
        } else {
            r.insert("401".into(), error("no session"));
            r.insert(
                "403".into(),
                error("no or a wrong CSRF token, or another origin"),
            );
        }
        r.insert("400".into(), error("a field the store refuses"));
        r.insert("404".into(), error("no such secret or token"));
        return Value::Object(r);
    }
    if route.needs != Needs::Public {
        r.insert("401".into(), error("no, or an unusable, token"));
    }
    if route.needs == Needs::Operator {
        r.insert("403".into(), error("the token's role is too small"));
    }
    if route.body {
        r.insert(
            "400".into(),
            error("the body is not the JSON this route takes"),
        );
        r.insert("413".into(), error("the body is too large"));
        r.insert("415".into(), error("the body is not declared as JSON"));
    }
    if route.needs != Needs::Public {
        r.insert("422".into(), error("a field the store refuses"));
        r.insert("503".into(), error("the store is unavailable"));
    }
    Value::Object(r)
}

async fn openapi_json() -> axum::Json<Value> {
    axum::Json(document())
}

/// A plain page of the routes, rendered on the server (no script, no CDN).
async fn api_page() -> axum::response::Html<String> {
    let mut rows = String::new();
    for route in table() {
        rows.push_str(&format!(
            "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>\n",
            route.method,
            escape(route.path),
            route.needs.as_str(),
            escape(route.summary)
        ));
    }
    axum::response::Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Keyward API</title></head>\n\
         <body><main><h1>Keyward API</h1>\n\
         <p>Bearer API tokens (<code>Authorization: Bearer kw_…</code>). The machine-readable document is \
         <a href=\"/openapi.json\">/openapi.json</a>.</p>\n\
         <table><thead><tr><th scope=\"col\">Method</th><th scope=\"col\">Path</th><th scope=\"col\">Role</th>\
         <th scope=\"col\">What</th></tr></thead><tbody>\n{rows}</tbody></table></main></body></html>\n"
    ))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_every_route_once() {
        let doc = document();
        let mut n = 0;
        for (_, methods) in doc["paths"].as_object().expect("paths") {
            n += methods.as_object().expect("methods").len();
        }
        assert_eq!(n, table().len(), "a path+method appears twice in the table");
    }
}
