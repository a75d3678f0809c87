//! Token policies against a real server: agent-bound tokens resolve only
//! their own chain whatever the request says, narrow tokens only what
//! their patterns name, capabilities gate each kind of route, networks
//! gate where requests come from — and every refusal of a reference is a
//! `denied` row naming the token, the rule and the reference.

use keyward::audit::Access;
use keyward::auth::policy::{Capability, Pattern, Policy};
use keyward::auth::{Grant, Role, Tokens};
use keyward::forge::{ForgeApps, Forges};
use keyward::names::{Scope, SecretName};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use crate::support::{TestDb, TestKey};

struct Served {
    base: String,
    client: Client,
    vault: keyward::vault::Vault,
    tokens: Tokens,
    operator: String,
    _db: TestDb,
}

/// A server over a store with two agents' secrets: `coder` (instance i-1)
/// and `reviewer` (instance i-2), each with a forge token, plus a global.
async fn serve(connect_info: bool) -> Served {
    let db = TestDb::sqlite().await;
    let vault = db.open(&TestKey::new()).await;
    let access = Access::new("test:policies", "fixture").expect("access");
    for (scope, name, value) in [
        ("global", "SHARED", "shared-value"),
        ("agent_type:coder", "API_KEY", "coder-key"),
        ("instance:i-1", "API_KEY", "coder-i1-key"),
        ("agent_type:reviewer", "API_KEY", "reviewer-key"),
        ("instance:i-2", "API_KEY", "reviewer-i2-key"),
        ("operator_oauth:forgejo", "ACCESS_TOKEN", "operator-oauth"),
    ] {
        vault
            .create(
                &Scope::parse(scope).expect("scope"),
                &SecretName::parse(name).expect("name"),
                value.as_bytes(),
                "",
                &access,
            )
            .await
            .expect("create");
    }
    let tokens = Tokens::new(vault.db().clone());
    let (_, op) = tokens.create("ops", Role::Operator).await.expect("token");
    let forges = Forges::new(vault.clone(), None, ForgeApps::default());
    let app = keyward::http::router_with(vault.clone(), None, Some(forges), Default::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    if connect_info {
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await
        });
    } else {
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    let served = Served {
        base: format!("http://{addr}"),
        client: Client::new(),
        vault,
        tokens,
        operator: op.expose().to_owned(),
        _db: db,
    };
    for (agent, token) in [
        ("coder", "coder-forge-token"),
        ("reviewer", "reviewer-forge-token"),
    ] {
        let (status, body) = served
            .call(
                reqwest::Method::POST,
                "/agent-types",
                &served.operator.clone(),
                json!({"name": agent, "forge": "forgejo", "base_url": "http://127.0.0.1:9", "token": token}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    served
}

impl Served {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(token);
        if method != reqwest::Method::GET {
            req = req
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let resp = req.send().await.expect("send");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn token(&self, name: &str, policy: Policy) -> String {
        let (_, token) = self
            .tokens
            .create_with(
                name,
                Role::Resolver,
                Grant {
                    ttl: None,
                    policy: Some(policy),
                },
            )
            .await
            .expect("token");
        token.expose().to_owned()
    }

    async fn render(&self, token: &str, template: &str, context: Value) -> (StatusCode, Value) {
        self.call(
            reqwest::Method::POST,
            "/render",
            token,
            json!({"template": template, "reason": "policy test", "context": context}),
        )
        .await
    }

    /// The `denied` rows of the access log written by `token_name`.
    async fn denied_rows(&self, token_name: &str) -> Vec<keyward::audit::chain::LogRow> {
        self.vault
            .log_tail(1000)
            .await
            .expect("log")
            .into_iter()
            .filter(|r| {
                r.outcome == "denied" && r.accessor.starts_with(&format!("token:{token_name}#"))
            })
            .collect()
    }
}

fn agent_policy(agent_type: &str, instance: &str) -> Policy {
    Policy::for_agent(
        [
            Capability::Render,
            Capability::AgentToken,
            Capability::Metadata,
        ]
        .into_iter()
        .collect(),
        agent_type,
        Some(instance),
        Vec::new(),
    )
    .expect("policy")
}

#[tokio::test]
async fn two_agent_bound_tokens_each_resolve_only_their_own_secrets() {
    let s = serve(true).await;
    let coder = s.token("coder-agent", agent_policy("coder", "i-1")).await;
    let reviewer = s
        .token("reviewer-agent", agent_policy("reviewer", "i-2"))
        .await;

    // The server fixes the context: a bare name resolves along the token's
    // own chain, with or without the body saying so.
    for (token, own) in [(&coder, "coder-i1-key"), (&reviewer, "reviewer-i2-key")] {
        let (status, body) = s
            .render(token, "${SECRET:API_KEY} ${SECRET:SHARED}", json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["text"], format!("{own} shared-value"));
    }
    let (status, body) = s
        .render(
            &coder,
            "${SECRET:API_KEY}",
            json!({"agent_type": "coder", "instance": "i-1"}),
        )
        .await;
    assert_eq!(
        (status, body["text"].as_str()),
        (StatusCode::OK, Some("coder-i1-key"))
    );

    // Each attempt at the other's secrets: 403 and a denied row.
    for (token, name, attempts) in [
        (
            &coder,
            "coder-agent",
            [
                ("${SECRET:agent_type:reviewer/API_KEY}", json!({})),
                ("${SECRET:instance:i-2/API_KEY}", json!({})),
                (
                    "${SECRET:API_KEY}",
                    json!({"agent_type": "reviewer", "instance": "i-2"}),
                ),
                ("${SECRET:operator_oauth:forgejo/ACCESS_TOKEN}", json!({})),
            ],
        ),
        (
            &reviewer,
            "reviewer-agent",
            [
                ("${SECRET:agent_type:coder/API_KEY}", json!({})),
                ("${SECRET:instance:i-1/API_KEY}", json!({})),
                ("${SECRET:API_KEY}", json!({"agent_type": "coder"})),
                ("${SECRET:operator_oauth:forgejo/ACCESS_TOKEN}", json!({})),
            ],
        ),
    ] {
        for (template, context) in attempts {
            let (status, body) = s.render(token, template, context.clone()).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{name} {template} {context}: {body}"
            );
            assert_eq!(body["error"]["code"], "forbidden", "{body}");
            let text = body.to_string();
            for value in [
                "coder-key",
                "coder-i1-key",
                "reviewer-key",
                "reviewer-i2-key",
                "operator-oauth",
            ] {
                assert!(!text.contains(value), "a value in a refusal: {text}");
            }
        }
        let denied = s.denied_rows(name).await;
        assert_eq!(denied.len(), 4, "{name}: {denied:?}");
        for row in &denied {
            assert_eq!(row.action, "render");
            assert!(
                row.detail.contains("policy") || row.detail.contains("bound to"),
                "the rule is named: {row:?}"
            );
        }
        assert!(denied
            .iter()
            .any(|r| r.scope.starts_with("agent_type:") && r.name == "API_KEY"));
    }

    // getAgentToken: its own type only; the other's is a denied row.
    let (status, body) = s
        .call(
            reqwest::Method::POST,
            "/agent-types/coder/token",
            &coder,
            json!({"reason": "run"}),
        )
        .await;
    assert_eq!(
        (status, body["token"].as_str()),
        (StatusCode::OK, Some("coder-forge-token")),
        "{body}"
    );
    let (status, body) = s
        .call(
            reqwest::Method::POST,
            "/agent-types/reviewer/token",
            &coder,
            json!({"reason": "steal"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(!body.to_string().contains("reviewer-forge-token"));
    let (status, _) = s
        .call(
            reqwest::Method::POST,
            "/agent-types/coder/token",
            &coder,
            json!({"reason": "other instance", "instance": "i-9"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(s.denied_rows("coder-agent").await.len(), 6);
    // Metadata: its own type and its own secrets only.
    let (status, body) = s
        .call(reqwest::Method::GET, "/agent-types", &coder, Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["coder"]);
    let (status, _) = s
        .call(
            reqwest::Method::GET,
            "/agent-types/reviewer",
            &coder,
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = s
        .call(reqwest::Method::GET, "/secrets", &coder, Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK);
    let listed: Vec<String> = body
        .as_array()
        .expect("list")
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["scope"].as_str().unwrap_or(""),
                m["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(
        listed.contains(&"instance:i-1/API_KEY".to_owned()),
        "{listed:?}"
    );
    assert!(
        !listed
            .iter()
            .any(|l| l.contains("reviewer") || l.contains("i-2") || l.contains("operator_oauth")),
        "{listed:?}"
    );
}

#[tokio::test]
async fn capabilities_patterns_and_networks_gate_narrow_tokens() {
    let s = serve(true).await;
    // Made over HTTP: a render-only token for global GITHUB-style names.
    let (status, body) = s
        .call(
            reqwest::Method::POST,
            "/tokens",
            &s.operator.clone(),
            json!({"name": "narrow", "role": "resolver", "policy": {
                "capabilities": ["render"],
                "resolve": ["global/SHARED*"],
            }}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["policy"]["resolve"], json!(["global/SHARED*"]));
    let narrow = body["token"].as_str().expect("token").to_owned();
    let (status, body) = s.render(&narrow, "${SECRET:SHARED}", json!({})).await;
    assert_eq!(
        (status, body["text"].as_str()),
        (StatusCode::OK, Some("shared-value")),
        "{body}"
    );
    // A bare name in a context resolves only where the pattern allows:
    // coder's API_KEY exists but is out of reach, so it is denied.
    let (status, _) = s
        .render(&narrow, "${SECRET:API_KEY}", json!({"agent_type": "coder"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Routes whose capability it lacks.
    for (method, path) in [
        (reqwest::Method::GET, "/secrets"),
        (reqwest::Method::GET, "/metrics"),
        (reqwest::Method::GET, "/agent-types"),
        (reqwest::Method::GET, "/secrets/SHARED/access-log"),
    ] {
        let (status, body) = s
            .call(method.clone(), path, &narrow, json!({"reason": "x"}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("does not allow"),
            "{body}"
        );
    }
    // Each refusal is on record: the route, the token, why.
    let refused: Vec<_> = s
        .denied_rows("narrow")
        .await
        .into_iter()
        .filter(|r| r.action == "request")
        .collect();
    assert_eq!(refused.len(), 4, "{refused:?}");
    assert!(refused
        .iter()
        .all(|r| r.scope == "route" && r.detail.contains("does not allow")));
    assert!(
        refused.iter().any(|r| r.name == "GET /metrics"),
        "{refused:?}"
    );
    // Operator routes stay operator routes.
    let (status, _) = s
        .call(reqwest::Method::GET, "/tokens", &narrow, Value::Null)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Access-log history only of what it may resolve.
    let history = s
        .token(
            "historian",
            Policy {
                capabilities: [Capability::AccessLog].into_iter().collect(),
                resolve: vec![Pattern::parse("global/*").expect("pattern")],
                networks: Vec::new(),
                agent: None,
            },
        )
        .await;
    let (status, _) = s
        .call(
            reqwest::Method::GET,
            "/secrets/SHARED/access-log",
            &history,
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s
        .call(
            reqwest::Method::GET,
            "/secrets/API_KEY/access-log?scope=agent_type:coder",
            &history,
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Networks: the test client is 127.0.0.1.
    let elsewhere = Policy {
        networks: vec!["10.0.0.0/8".parse().expect("net")],
        ..Policy::resolver()
    };
    let here = Policy {
        networks: vec!["127.0.0.0/8".parse().expect("net")],
        ..Policy::resolver()
    };
    let elsewhere = s.token("elsewhere", elsewhere).await;
    let here_token = s.token("here", here.clone()).await;
    let (status, body) = s.render(&elsewhere, "${SECRET:SHARED}", json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("127.0.0.1"),
        "{body}"
    );
    let refused = s.denied_rows("elsewhere").await;
    assert!(
        refused.len() == 1
            && refused[0].name == "POST /render"
            && refused[0].detail.contains("127.0.0.1"),
        "{refused:?}"
    );
    let (status, _) = s.render(&here_token, "${SECRET:SHARED}", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    // Served without peer addresses, a token held to networks is refused.
    let blind = serve(false).await;
    let token = blind.token("here", here).await;
    let (status, _) = blind.render(&token, "${SECRET:SHARED}", json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bad_policies_are_refused_at_creation() {
    let s = serve(true).await;
    for policy in [
        json!({"capabilities": ["render", "everything"], "resolve": ["*/*"]}),
        json!({"capabilities": ["render"], "resolve": ["no-slash"]}),
        json!({"capabilities": ["render"], "resolve": ["global/${SECRET:X}"]}),
        json!({"capabilities": ["render"], "resolve": ["*/*"], "networks": ["10.0.0.0/99"]}),
        json!({"capabilities": ["render"], "resolve": ["*/*"], "extra": true}),
        json!({"capabilities": ["render"], "resolve": ["*/*"], "agent": {"agent_type": "bad name"}}),
    ] {
        let (status, body) = s
            .call(
                reqwest::Method::POST,
                "/tokens",
                &s.operator.clone(),
                json!({"name": "bad", "role": "resolver", "policy": policy}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{policy}: {body}");
    }
    let (status, body) = s
        .call(
            reqwest::Method::POST,
            "/tokens",
            &s.operator.clone(),
            json!({"name": "op", "role": "operator", "policy": {"capabilities": [], "resolve": []}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}
