//! The HTTP API against a real server on 127.0.0.1: the role rail, the one
//! error shape, hostile bodies, and values that never leak into listings.

#[path = "../support/mod.rs"]
mod support;

mod cas;
mod cli_routes;
mod dashboard;
mod deletion;
mod logs;
mod ops;
mod policies;
mod races;

use keyward::audit::Access;
use keyward::auth::{Role, Tokens};
use keyward::names::{Scope, SecretName};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

use support::{TestDb, TestKey};

const VALUE: &str = "s3cr3t-value-0xBEEF";

/// A served store with one secret and a token per role.
struct Api {
    base: String,
    client: Client,
    operator: String,
    resolver: String,
    vault: keyward::vault::Vault,
    _db: TestDb,
}

impl Api {
    async fn start(db: TestDb) -> Api {
        let vault = db.open(&TestKey::new()).await;
        let access = Access::new("test:http", "fixture").expect("access");
        vault
            .create(
                &Scope::global(),
                &SecretName::parse("GITHUB_TOKEN").expect("name"),
                VALUE.as_bytes(),
                "forge token",
                &access,
            )
            .await
            .expect("create");
        let tokens = Tokens::new(vault.db().clone());
        let (_, op) = tokens.create("ops", Role::Operator).await.expect("token");
        let (_, res) = tokens.create("agent", Role::Resolver).await.expect("token");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = keyward::http::router(vault.clone(), None);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Api {
            base: format!("http://{addr}"),
            client: Client::new(),
            operator: op.expose().to_owned(),
            resolver: res.expose().to_owned(),
            vault,
            _db: db,
        }
    }

    /// Sends `body` (JSON if it is a `Value`, raw otherwise) with `token`.
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value, String) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("send");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, json, text)
    }
}

/// Asserts the one error shape and returns the code.
fn error_code(status: StatusCode, body: &Value, raw: &str) -> String {
    assert!(!status.is_success(), "{status}: {raw}");
    assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{raw}");
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not the error shape: {raw}"));
    assert!(body["error"]["message"].is_string(), "{raw}");
    code.to_owned()
}

fn render_body() -> Value {
    json!({"template": "token=${SECRET:GITHUB_TOKEN}", "reason": "deploy"})
}

/// The role matrix, walked from the served OpenAPI document (which is
/// built from the same table as the router): every route, with no token, a
/// bad token, an expired token, a resolver, a narrow-policy resolver, an
/// agent-bound resolver and an operator.
#[tokio::test]
async fn every_route_in_the_document_checks_credentials_and_role() {
    use keyward::auth::policy::{Capability, Pattern, Policy};
    let api = Api::start(TestDb::sqlite().await).await;
    let (status, doc, raw) = api.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    let tokens = Tokens::new(api.vault.db().clone());
    let grant = |ttl, policy| keyward::auth::Grant { ttl, policy };
    let (_, expired) = tokens
        .create_with(
            "expired",
            Role::Operator,
            grant(Some(std::time::Duration::from_millis(1)), None),
        )
        .await
        .expect("token");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // Narrow: metrics only.
    let narrow_policy = Policy {
        capabilities: [Capability::Metrics].into_iter().collect(),
        resolve: vec![Pattern::parse("global/NOTHING").expect("pattern")],
        networks: Vec::new(),
        agent: None,
    };
    let (_, narrow) = tokens
        .create_with("narrow", Role::Resolver, grant(None, Some(narrow_policy)))
        .await
        .expect("token");
    // Bound to an agent type that is not the matrix's `{name}`.
    let agent_caps = [
        Capability::Render,
        Capability::Metadata,
        Capability::AgentToken,
    ];
    let agent_policy = Policy::for_agent(
        agent_caps.into_iter().collect(),
        "someone-else",
        None,
        Vec::new(),
    )
    .expect("policy");
    let (_, agent) = tokens
        .create_with(
            "agent-bound",
            Role::Resolver,
            grant(None, Some(agent_policy)),
        )
        .await
        .expect("token");
    let expired: &'static str = Box::leak(expired.expose().to_owned().into_boxed_str());
    let narrow: &'static str = Box::leak(narrow.expose().to_owned().into_boxed_str());
    let agent: &'static str = Box::leak(agent.expose().to_owned().into_boxed_str());
    let bad = [
        None,
        Some("kw_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        Some("not-a-token"),
        Some(""),
        Some(expired),
    ];
    let resolver: &'static str = Box::leak(api.resolver.clone().into_boxed_str());
    let operator: &'static str = Box::leak(api.operator.clone().into_boxed_str());
    let mut seen = 0;
    for (path, methods) in doc["paths"].as_object().expect("paths") {
        let concrete = path
            .replace("{name}", "MATRIX_ONLY")
            .replace("{id}", "0000000000000000")
            .replace("{version}", "1");
        for (method, op) in methods.as_object().expect("methods") {
            seen += 1;
            let method: Method = method.to_uppercase().parse().expect("method");
            let role = op["x-keyward-role"]
                .as_str()
                .expect("every route names its role");
            let body = op.get("requestBody").map(|_| json!({}));
            let as_role = |token: Option<&'static str>| {
                api.call(method.clone(), &concrete, token, body.clone())
            };
            if role == "public" {
                let (status, _, raw) = as_role(None).await;
                // Pages answer (after redirects); a sign-in link that does
                // not exist and a sign-in form without one are refused, but
                // never with a server error.
                if method == Method::GET && !path.contains('{') {
                    assert!(status.is_success(), "{method} {path}: {raw}");
                } else {
                    assert!(status.is_client_error(), "{method} {path}: {raw}");
                }
                continue;
            }
            if role == "session" {
                dashboard::check_session_route(&api, &method, &concrete, op).await;
                continue;
            }
            if role == "session-json" {
                // A JSON route for a session: no cookie (even with an
                // operator's bearer token) is a 401 in the API's shape.
                for token in bad.into_iter().chain([Some(resolver), Some(operator)]) {
                    let (status, json, raw) = as_role(token).await;
                    assert_eq!(
                        status,
                        StatusCode::UNAUTHORIZED,
                        "{method} {path} {token:?}: {raw}"
                    );
                    assert_eq!(error_code(status, &json, &raw), "unauthenticated");
                }
                continue;
            }
            assert!(
                op["security"].is_array(),
                "{method} {path} needs a token but does not say so"
            );
            for token in bad {
                let (status, json, raw) = as_role(token).await;
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} {token:?}: {raw}"
                );
                assert_eq!(error_code(status, &json, &raw), "unauthenticated");
            }
            // Policy tokens: refused (403) exactly on the routes whose
            // capability their policy lacks, and on every operator route.
            let capability = op["x-keyward-capability"].as_str();
            assert_eq!(
                capability.is_some(),
                role == "resolver",
                "{method} {path}: a resolver route names its capability, no other does"
            );
            let names_an_agent = path.starts_with("/agent-types/{name}");
            for (token, caps, who) in [
                (narrow, &["metrics"][..], "narrow"),
                (
                    agent,
                    &["render", "metadata", "agent-token"][..],
                    "agent-bound",
                ),
            ] {
                let allowed = capability.is_some_and(|c| caps.contains(&c));
                let (status, json, raw) = as_role(Some(token)).await;
                if !allowed || (who == "agent-bound" && names_an_agent) {
                    if !allowed || status == StatusCode::FORBIDDEN {
                        assert_eq!(
                            status,
                            StatusCode::FORBIDDEN,
                            "{method} {path} as {who}: {raw}"
                        );
                        assert_eq!(error_code(status, &json, &raw), "forbidden");
                    } else {
                        // A route naming another agent refuses it once its
                        // body is read (a malformed body is refused first).
                        assert_eq!(
                            status,
                            StatusCode::BAD_REQUEST,
                            "{method} {path} as {who}: {raw}"
                        );
                    }
                } else {
                    assert!(
                        status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                        "{method} {path} as {who}: {raw}"
                    );
                }
            }
            let (status, json, raw) = as_role(Some(resolver)).await;
            match role {
                "resolver" => assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "{method} {path} as resolver: {raw}"
                ),
                "operator" => {
                    assert_eq!(
                        status,
                        StatusCode::FORBIDDEN,
                        "{method} {path} as resolver: {raw}"
                    );
                    assert_eq!(error_code(status, &json, &raw), "forbidden");
                }
                other => panic!("{method} {path}: unknown role {other}"),
            }
            let (status, _, raw) = as_role(Some(operator)).await;
            assert!(
                status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                "{method} {path} as operator: {raw}"
            );
            assert_ne!(
                status,
                StatusCode::INTERNAL_SERVER_ERROR,
                "{method} {path}: {raw}"
            );
        }
    }
    assert!(seen >= 30, "the document lists {seen} routes");
    // A header that is not `Bearer <token>` is refused like a bad token.
    let resp = api
        .client
        .get(format!("{}/secrets", api.base))
        .header("Authorization", format!("Basic {}", api.operator))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // The page renders the same table.
    let (status, _, page) = api.call(Method::GET, "/api", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("/secrets/{name}/access-log") && page.contains("operator"));
}

#[tokio::test]
async fn listings_never_hold_a_value_and_render_logs_the_caller() {
    let api = Api::start(TestDb::sqlite().await).await;
    let (status, json, raw) = api
        .call(Method::GET, "/secrets", Some(&api.resolver), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json[0]["name"], "GITHUB_TOKEN");
    assert_eq!(json[0]["description"], "forge token");
    assert!(!raw.contains(VALUE));

    let (status, json, raw) = api
        .call(
            Method::POST,
            "/render",
            Some(&api.resolver),
            Some(render_body()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    assert_eq!(json["text"], format!("token={VALUE}"));
    let row = api
        .vault
        .log_tail(1)
        .await
        .expect("log")
        .pop()
        .expect("a row");
    assert!(row.accessor.starts_with("token:agent#"), "{}", row.accessor);
    assert_eq!(
        (row.reason.as_str(), row.action.as_str()),
        ("deploy", "render")
    );

    let (_, _, raw) = api
        .call(Method::GET, "/tokens", Some(&api.operator), None)
        .await;
    assert!(!raw.contains(&api.resolver[20..]) && !raw.contains(&api.operator[20..]));
}

#[tokio::test]
async fn render_names_every_missing_secret() {
    let api = Api::start(TestDb::sqlite().await).await;
    let body = json!({"template": "${SECRET:A} ${SECRET:GITHUB_TOKEN} ${SECRET:agent_type:x/B}", "reason": "r"});
    let (status, json, raw) = api
        .call(Method::POST, "/render", Some(&api.resolver), Some(body))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{raw}");
    assert_eq!(error_code(status, &json, &raw), "missing_secrets");
    let missing: Vec<&str> = json["error"]["missing"]
        .as_array()
        .expect("missing list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(missing, ["A", "agent_type:x/B"]);
    assert!(!raw.contains(VALUE), "a partial render leaked a value");
}

#[tokio::test]
async fn hostile_bodies_get_the_error_shape_and_change_nothing() {
    let api = Api::start(TestDb::sqlite().await).await;
    let url = format!("{}/render", api.base);
    let send = |body: Vec<u8>, content_type: &'static str| {
        api.client
            .post(&url)
            .bearer_auth(&api.resolver)
            .header("Content-Type", content_type)
            .body(body)
            .send()
    };
    let huge = format!(
        r#"{{"template": "{}", "reason": "r"}}"#,
        "x".repeat(keyward::http::MAX_BODY)
    );
    // Malformed JSON is 400; well-formed JSON with a field the store refuses
    // (reason, context, template) is 422, as everywhere in the API.
    let cases: Vec<(Vec<u8>, &str, u16, &str)> = vec![
        (b"{".to_vec(), "application/json", 400, "invalid"),
        (b"[]".to_vec(), "application/json", 400, "invalid"),
        (b"\xff\xfe".to_vec(), "application/json", 400, "invalid"),
        (
            render_body().to_string().into_bytes(),
            "text/plain",
            415,
            "unsupported_media_type",
        ),
        (
            br#"{"template": "x", "reason": "r", "extra": 1}"#.to_vec(),
            "application/json",
            400,
            "invalid",
        ),
        (
            br#"{"template": "x"}"#.to_vec(),
            "application/json",
            400,
            "invalid",
        ),
        (
            br#"{"template": 5, "reason": "r"}"#.to_vec(),
            "application/json",
            400,
            "invalid",
        ),
        (
            br#"{"template": "x", "reason": "a\nb"}"#.to_vec(),
            "application/json",
            422,
            "invalid",
        ),
        (
            br#"{"template": "x", "reason": "   "}"#.to_vec(),
            "application/json",
            422,
            "invalid",
        ),
        (
            br#"{"template": "x", "reason": "r", "context": {"planet": "mars"}}"#.to_vec(),
            "application/json",
            422,
            "invalid",
        ),
        (
            br#"{"template": "x", "reason": "r", "context": {"instance": "../../etc"}}"#.to_vec(),
            "application/json",
            422,
            "invalid",
        ),
        (
            br#"{"template": "${SECRET:", "reason": "r"}"#.to_vec(),
            "application/json",
            422,
            "invalid_template",
        ),
        (
            br#"{"template": "${SECRET:bad name}", "reason": "r"}"#.to_vec(),
            "application/json",
            422,
            "invalid_template",
        ),
        (huge.into_bytes(), "application/json", 413, "too_large"),
    ];
    let before = api.vault.log_tail(1000).await.expect("log").len();
    for (body, content_type, want, code) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        let resp = send(body, content_type).await.expect("send");
        let status = resp.status();
        let raw = resp.text().await.expect("text");
        let json: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
        assert_eq!(status.as_u16(), want, "{shown}: {raw}");
        assert_eq!(error_code(status, &json, &raw), code, "{shown}");
    }
    let after = api.vault.log_tail(1000).await.expect("log").len();
    assert_eq!(before, after, "a refused request read a secret");
    let (status, json, raw) = api
        .call(Method::GET, "/nope", Some(&api.operator), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(status, &json, &raw), "not_found");
    let (status, json, raw) = api
        .call(Method::PATCH, "/secrets", Some(&api.operator), None)
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{raw}");
    assert_eq!(error_code(status, &json, &raw), "method_not_allowed");
    let (status, _, raw) = api
        .call(
            Method::GET,
            "/secrets?scope=not%20a%20scope",
            Some(&api.resolver),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{raw}");
    let (status, _, raw) = api
        .call(Method::GET, "/secrets?bogus=1", Some(&api.resolver), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{raw}");
}

#[tokio::test]
async fn tokens_made_over_http_work_until_revoked() {
    let api = Api::start(TestDb::sqlite().await).await;
    let (status, json, raw) = api
        .call(
            Method::POST,
            "/tokens",
            Some(&api.operator),
            Some(json!({"name": "ci", "role": "resolver"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{raw}");
    let token = json["token"].as_str().expect("token").to_owned();
    let id = json["id"].as_str().expect("id").to_owned();
    let (status, _, _) = api.call(Method::GET, "/secrets", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    for (name, role) in [("", "resolver"), ("ok", "root"), ("a\u{0}b", "operator")] {
        let (status, json, raw) = api
            .call(
                Method::POST,
                "/tokens",
                Some(&api.operator),
                Some(json!({"name": name, "role": role})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{raw}");
        assert_eq!(error_code(status, &json, &raw), "invalid");
    }
    // A lifetime out of bounds is refused; one in bounds is answered.
    for ttl in [json!(0), json!(-1), json!("1d"), json!(400_000_000_000u64)] {
        let (status, json, raw) = api
            .call(
                Method::POST,
                "/tokens",
                Some(&api.operator),
                Some(json!({"name": "t", "role": "resolver", "ttl_seconds": ttl})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{ttl}: {raw}");
        assert_eq!(error_code(status, &json, &raw), "invalid");
    }
    let (status, json, raw) = api
        .call(
            Method::POST,
            "/tokens",
            Some(&api.operator),
            Some(json!({"name": "t", "role": "resolver", "ttl_seconds": 60})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{raw}");
    assert_eq!(
        json["expires_at"].as_i64().expect("expires_at")
            - json["created_at"].as_i64().expect("created_at"),
        60_000
    );
    // Rotation: a new value, the old one kept for the grace period asked.
    let (status, json, raw) = api
        .call(
            Method::POST,
            &format!("/tokens/{id}/rotate"),
            Some(&api.operator),
            Some(json!({"grace_seconds": 60})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    let rotated = json["token"].as_str().expect("token").to_owned();
    assert!(json["previous_valid_until"].is_i64(), "{raw}");
    for t in [&token, &rotated] {
        let (status, _, _) = api.call(Method::GET, "/secrets", Some(t), None).await;
        assert_eq!(status, StatusCode::OK);
    }
    for body in [
        json!({"grace_seconds": 700_000}),
        json!({"grace": 1}),
        json!([]),
    ] {
        let (status, json, raw) = api
            .call(
                Method::POST,
                &format!("/tokens/{id}/rotate"),
                Some(&api.operator),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {raw}");
        assert_eq!(error_code(status, &json, &raw), "invalid");
    }
    let (status, _, _) = api
        .call(
            Method::DELETE,
            &format!("/tokens/{id}"),
            Some(&api.operator),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = api.call(Method::GET, "/secrets", Some(&token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, json, raw) = api
        .call(
            Method::DELETE,
            &format!("/tokens/{id}"),
            Some(&api.operator),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(status, &json, &raw), "not_found");
}

#[tokio::test]
async fn operators_manage_secrets_without_values_ever_coming_back() {
    let api = Api::start(TestDb::sqlite().await).await;
    let op = Some(api.operator.as_str());
    let new = json!({"name": "DEPLOY_KEY", "scope": "agent_type:coder", "value": "first-value-123", "description": "deploy"});
    let (status, json, raw) = api
        .call(Method::POST, "/secrets", op, Some(new.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{raw}");
    assert_eq!(
        (json["version"].as_i64(), json["scope"].as_str()),
        (Some(1), Some("agent_type:coder"))
    );
    assert!(!raw.contains("first-value-123"));
    let (status, json, raw) = api.call(Method::POST, "/secrets", op, Some(new)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(status, &json, &raw), "exists");

    let path = "/secrets/DEPLOY_KEY?scope=agent_type:coder";
    let (status, json, raw) = api
        .call(
            Method::PUT,
            path,
            op,
            Some(json!({"value": "second-value-456"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    assert_eq!(json["version"], 2);
    let rotated = json["rotated_at"].as_i64().expect("rotated_at");
    let (status, json, _) = api
        .call(
            Method::PUT,
            path,
            op,
            Some(json!({"description": "new words"})),
        )
        .await;
    assert_eq!(
        (
            status,
            json["description"].as_str(),
            json["version"].as_i64()
        ),
        (StatusCode::OK, Some("new words"), Some(2))
    );
    // A bad description is refused before the value is touched.
    let (status, _, raw) = api
        .call(
            Method::PUT,
            path,
            op,
            Some(json!({"value": "third-value-789", "description": "a\nb"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{raw}");
    let (status, json, raw) = api.call(Method::PUT, path, op, Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(status, &json, &raw), "invalid");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let rotate = "/secrets/DEPLOY_KEY/rotate?scope=agent_type:coder";
    let (status, json, raw) = api.call(Method::POST, rotate, op, None).await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    assert!(json["rotated_at"].as_i64().expect("rotated_at") > rotated);
    assert_eq!(json["version"], 2, "a re-seal keeps the version");

    let body = json!({"template": "${SECRET:DEPLOY_KEY}", "reason": "check", "context": {"agent_type": "coder"}});
    let (_, json, _) = api
        .call(Method::POST, "/render", Some(&api.resolver), Some(body))
        .await;
    assert_eq!(json["text"], "second-value-456");

    let log = "/secrets/DEPLOY_KEY/access-log?scope=agent_type:coder";
    let (status, page, raw) = api.call(Method::GET, log, Some(&api.resolver), None).await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    let actions: Vec<&str> = page["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    assert_eq!(actions[0], "render", "newest first: {actions:?}");
    assert!(actions.len() >= 5, "{actions:?}");
    let (_, page, _) = api
        .call(
            Method::GET,
            &format!("{log}&limit=2"),
            Some(&api.resolver),
            None,
        )
        .await;
    assert_eq!(page["rows"].as_array().expect("rows").len(), 2);
    let next = page["next_before"].as_i64().expect("a next page");
    let (_, older, _) = api
        .call(
            Method::GET,
            &format!("{log}&limit=2&before={next}"),
            Some(&api.resolver),
            None,
        )
        .await;
    assert!(older["rows"][0]["seq"].as_i64().expect("seq") < next);
    let (_, only, _) = api
        .call(
            Method::GET,
            &format!("{log}&action=render"),
            Some(&api.resolver),
            None,
        )
        .await;
    assert_eq!(only["rows"].as_array().expect("rows").len(), 1);
    for bad in [
        "&limit=0",
        "&limit=501",
        "&before=-1",
        "&limit=x",
        "&colour=red",
    ] {
        let (status, json, raw) = api
            .call(
                Method::GET,
                &format!("{log}{bad}"),
                Some(&api.resolver),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {raw}");
        assert_eq!(error_code(status, &json, &raw), "invalid");
    }

    let (status, _, _) = api.call(Method::DELETE, path, op, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, json, raw) = api.call(Method::DELETE, path, op, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(status, &json, &raw), "not_found");
    let (_, page, _) = api.call(Method::GET, log, Some(&api.resolver), None).await;
    assert_eq!(
        page["rows"][0]["action"], "delete",
        "history outlives the secret"
    );

    let (_, _, listing) = api
        .call(Method::GET, "/secrets", Some(&api.resolver), None)
        .await;
    for value in [
        "first-value-123",
        "second-value-456",
        "third-value-789",
        VALUE,
    ] {
        assert!(!listing.contains(value));
    }
}

#[tokio::test]
async fn hostile_secret_input_is_refused_and_writes_nothing() {
    let api = Api::start(TestDb::sqlite().await).await;
    let op = Some(api.operator.as_str());
    let big = "v".repeat(keyward::vault::MAX_VALUE_LEN + 1);
    let cases = [
        (json!({"name": "has space", "value": "v"}), 422),
        (json!({"name": "", "value": "v"}), 422),
        (json!({"name": "OK", "value": ""}), 422),
        (json!({"name": "OK", "value": "v", "scope": "Global"}), 422),
        (
            json!({"name": "OK", "value": "v", "scope": "agent_type:../x"}),
            422,
        ),
        (
            json!({"name": "OK", "value": "v", "description": "x".repeat(1025)}),
            422,
        ),
        (json!({"name": "OK", "value": big}), 413),
        (json!({"name": "OK", "value": 5}), 400),
        (json!({"name": "OK"}), 400),
        (json!({"name": "OK", "value": "v", "owner": "me"}), 400),
    ];
    for (body, want) in cases {
        let shown: String = body.to_string().chars().take(60).collect();
        let (status, json, raw) = api.call(Method::POST, "/secrets", op, Some(body)).await;
        assert_eq!(status.as_u16(), want, "{shown}: {raw}");
        error_code(status, &json, &raw);
    }
    for path in [
        "/secrets/bad%20name/rotate",
        "/secrets/%00/rotate",
        "/secrets/X/rotate?scope=%0a",
    ] {
        let (status, json, raw) = api.call(Method::POST, path, op, None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {raw}");
        error_code(status, &json, &raw);
    }
    let (_, json, _) = api.call(Method::GET, "/secrets", op, None).await;
    assert_eq!(
        json.as_array().expect("list").len(),
        1,
        "only the fixture secret exists"
    );
}

#[tokio::test]
async fn metrics_count_requests_reveals_and_commits_without_naming_secrets() {
    let api = Api::start(TestDb::sqlite().await).await;
    let res = Some(api.resolver.as_str());
    api.call(Method::POST, "/render", res, Some(render_body()))
        .await;
    api.call(Method::GET, "/secrets/GITHUB_TOKEN/access-log", res, None)
        .await;
    api.call(Method::GET, "/secrets", None, None).await;
    let (status, _, text) = api.call(Method::GET, "/metrics", res, None).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    for line in [
        r#"keyward_http_requests_total{route="/render",status="200"} 1"#,
        r#"keyward_http_requests_total{route="/secrets",status="401"} 1"#,
        r#"keyward_http_requests_total{route="/secrets/{name}/access-log",status="200"} 1"#,
        "keyward_reveals_total 1",
        "keyward_denials_total 0",
        r#"keyward_access_log_batch_rows_bucket{le="+Inf"}"#,
        "# TYPE keyward_access_log_batch_rows histogram",
    ] {
        assert!(text.contains(line), "{line} not in:\n{text}");
    }
    assert!(
        !text.contains("GITHUB_TOKEN") && !text.contains(VALUE),
        "{text}"
    );
}
