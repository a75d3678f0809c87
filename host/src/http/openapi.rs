//! The OpenAPI 3.1 document (`GET /openapi.json`) and its plain page
//! (`GET /api`), both built from the route table in `api.rs`: every route
//! with its role, and the JSON schema of each typed body, answer and query
//! string from the Rust types its handler uses.

use schemars::SchemaGenerator;
use serde_json::{json, Map, Value};

use super::api::{table, Needs, Route};

/// The OpenAPI 3.1 document of [`table`], with the JSON schema of every
/// typed body, answer and query string (`components/schemas`).
pub fn document() -> Value {
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    settings.meta_schema = None;
    let mut g = SchemaGenerator::new(settings);
    let mut paths = Map::new();
    for route in table() {
        let mut op = json!({
            "summary": route.summary,
            "x-keyward-role": route.needs.as_str(),
            "x-keyward-capability": match route.needs {
                Needs::Resolver(cap) => Value::from(cap.as_str()),
                _ => Value::Null,
            },
            "responses": responses(&route, &mut g),
        });
        let mut parameters: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": path_schema(route.path, p)}))
            .collect();
        let query = route.schemas.query.map(|f| f(&mut g).to_value());
        parameters.extend(route.query.iter().map(|q| {
            let schema = query
                .as_ref()
                .and_then(|s| s.pointer(&format!("/properties/{q}")))
                .cloned()
                .unwrap_or_else(|| json!({"type": "string"}));
            let required = query
                .as_ref()
                .and_then(|s| s.get("required"))
                .and_then(Value::as_array)
                .is_some_and(|r| r.iter().any(|n| n == q));
            json!({"name": q, "in": "query", "required": required, "schema": schema})
        }));
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
            let schema = match route.schemas.request {
                Some(f) => f(&mut g).to_value(),
                None => json!({"type": "object"}),
            };
            op["requestBody"] = json!({"required": true, "content": {media: {"schema": schema}}});
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
    let mut schemas = g.take_definitions(true);
    schemas.insert("Error".into(), error_schema());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Keyward",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Secret-resolution host. Errors are {\"error\": {\"code\", \"message\"}}; see docs/http-api.md."
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API token, kw_…"},
                "session": {"type": "apiKey", "in": "cookie", "name": "keyward_session", "description": "An operator's dashboard session (`__Host-keyward_session` over https); forms also carry its CSRF token in the `csrf` field"}
            },
            "schemas": schemas,
        },
        "paths": paths,
    })
}

/// A path parameter's schema: the grammar the handler checks.
fn path_schema(path: &str, param: &str) -> Value {
    match param {
        "version" => json!({"type": "integer", "minimum": 1}),
        "name" if path.starts_with("/secrets/") => {
            json!({"type": "string", "pattern": crate::names::NAME_PATTERN})
        }
        _ => json!({"type": "string", "minLength": 1, "maxLength": 128}),
    }
}

/// The one error shape of every JSON route (see `http/error.rs`).
fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Stable, for programs: not_found, invalid, missing_secrets, version_mismatch, …"},
                "message": {"type": "string", "description": "For people"},
                "missing": {"type": "array", "items": {"type": "string"}},
                "current_version": {"type": "integer"}
            }
        }}
    })
}

fn responses(route: &Route, g: &mut SchemaGenerator) -> Value {
    let mut r = Map::new();
    let ok = match route.schemas.response {
        Some(f) => {
            json!({"description": "success", "content": {"application/json": {"schema": f(g).to_value()}}})
        }
        None => json!({"description": "success"}),
    };
    r.insert(route.ok.to_string(), ok);
    if route.needs == Needs::Session {
        let page = |d: &str| json!({"description": d});
        // Pages and forms answer in HTML, with the API's statuses.
        if route.method == "GET" {
            r.insert("303".into(), page("no session: to /login"));
        } else {
            r.insert("401".into(), page("no session"));
            r.insert(
                "403".into(),
                page("no or a wrong CSRF token, or another origin"),
            );
        }
        r.insert("400".into(), page("a field the store refuses"));
        r.insert("404".into(), page("no such secret or token"));
        return Value::Object(r);
    }
    let error = |d: &str| json!({"description": d, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    r.insert("400".into(), error("a malformed query string or path"));
    if route.path.contains('{') {
        r.insert(
            "404".into(),
            error("no such secret, token, agent type or forge"),
        );
    }
    if route.needs != Needs::Public {
        r.insert("401".into(), error("no, or an unusable, token"));
        r.insert(
            "403".into(),
            error("the token's role or policy does not allow it"),
        );
        r.insert(
            "404".into(),
            error("no such secret, token, agent type or forge"),
        );
        r.insert(
            "409".into(),
            error("a conflict: it exists, changed meanwhile, or is deleted"),
        );
        r.insert("422".into(), error("a field the store refuses"));
        r.insert("429".into(), error("too many requests; see Retry-After"));
        r.insert(
            "503".into(),
            error("the store or the access log is unavailable"),
        );
    }
    if route.path.ends_with("/undelete") {
        r.insert(
            "410".into(),
            error("deleted longer ago than the retention window"),
        );
    }
    if route.body {
        r.insert(
            "400".into(),
            error("the body or query is not what this route takes"),
        );
        r.insert("413".into(), error("the body is too large"));
        r.insert("415".into(), error("the body is not declared as JSON"));
    }
    // Routes that call a forge answer its failures (docs/forges.md).
    let forge = route.path.starts_with("/auth/")
        || route.path.starts_with("/forge/")
        || route.path == "/me"
        || route.path.ends_with("/dispatch");
    if forge {
        if route.path.ends_with("/callback") {
            r.insert(
                "403".into(),
                error("a sign-in the forge or the state check refused (an HTML page)"),
            );
        }
        r.insert(
            "412".into(),
            error("no forge signed in to, or none configured"),
        );
        r.insert("424".into(), error("the forge refused the token"));
        r.insert(
            "501".into(),
            error("the forge's plugin does not support it"),
        );
        r.insert("502".into(), error("the forge answered something unusable"));
        r.insert("504".into(), error("the forge did not answer in time"));
    }
    Value::Object(r)
}

pub(super) async fn openapi_json() -> axum::Json<Value> {
    axum::Json(document())
}

/// A plain page of the routes, rendered on the server (no script, no CDN).
pub(super) async fn api_page() -> axum::response::Html<String> {
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

    /// Every JSON body is typed, and a typed query string lists exactly
    /// the fields its type has: the document cannot drift from the handler.
    #[test]
    fn bodies_are_typed_and_query_lists_match_their_types() {
        let mut g = SchemaGenerator::default();
        for route in table() {
            let json_body = route.body && route.needs != Needs::Session && route.path != "/login";
            assert_eq!(
                json_body,
                route.schemas.request.is_some(),
                "{} {}: a JSON body needs its type (req = …), and only one",
                route.method,
                route.path
            );
            if let Some(query) = route.schemas.query {
                let schema = query(&mut g).to_value();
                let mut fields: Vec<&str> = schema["properties"]
                    .as_object()
                    .expect("an object")
                    .keys()
                    .map(String::as_str)
                    .collect();
                let mut listed = route.query.to_vec();
                fields.sort_unstable();
                listed.sort_unstable();
                assert_eq!(fields, listed, "{} {}", route.method, route.path);
            }
        }
        let doc = document();
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        for name in [
            "SecretMeta",
            "NewSecret",
            "Update",
            "RenderRequest",
            "Error",
            "Policy",
        ] {
            assert!(
                schemas.contains_key(name),
                "{name} missing: {:?}",
                schemas.keys()
            );
        }
        // Every $ref points at a schema that is there.
        let text = doc.to_string();
        for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = part.split('"').next().expect("a name");
            assert!(schemas.contains_key(name), "dangling $ref {name}");
        }
    }
}
