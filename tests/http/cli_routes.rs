//! The routes the remote CLI needs: one secret's value (`/reveal`), many
//! templates in one render, the whole log (`/access-log`) and its verify
//! on the server, the plugin list — each with hostile and malformed input.

use axum::http::StatusCode;
use base64::Engine as _;
use keyward::audit::Access;
use keyward::names::{Scope, SecretName};
use reqwest::Method;
use serde_json::json;

use crate::support::TestDb;
use crate::{error_code, Api};

#[tokio::test]
async fn reveal_gives_exact_bytes_and_is_held_to_the_policy() {
    use keyward::auth::policy::{Capability, Pattern, Policy};
    let api = Api::start(TestDb::sqlite().await).await;
    let access = Access::new("test:http", "fixture").expect("access");
    let binary = b"\x00\xffbin\n".to_vec();
    api.vault
        .create(
            &Scope::parse("agent_type:coder").expect("scope"),
            &SecretName::parse("BLOB").expect("name"),
            &binary,
            "",
            &access,
        )
        .await
        .expect("create");
    let path = "/secrets/BLOB/reveal?scope=agent_type:coder";
    let body = json!({"reason": "remote get"});
    let (status, answer, raw) = api
        .call(Method::POST, path, Some(&api.operator), Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    let got = base64::engine::general_purpose::STANDARD
        .decode(answer["value_base64"].as_str().expect("value"))
        .expect("base64");
    assert_eq!(got, binary);
    assert_eq!(answer["scope"], "agent_type:coder");

    // Missing: 422 naming it; malformed: 400; no reason: 400.
    let (status, answer, raw) = api
        .call(
            Method::POST,
            "/secrets/NOPE/reveal",
            Some(&api.operator),
            Some(body.clone()),
        )
        .await;
    assert_eq!(error_code(status, &answer, &raw), "missing_secrets");
    for (path, body) in [
        ("/secrets/BLOB/reveal?scope=agent_type:coder", json!({})),
        (
            "/secrets/BLOB/reveal?scope=agent_type:coder",
            json!({"reason": "x", "extra": 1}),
        ),
        ("/secrets/BLOB/reveal?scope=nope:", json!({"reason": "x"})),
        ("/secrets/BL%2FOB/reveal", json!({"reason": "x"})),
        (
            "/secrets/BLOB/reveal?scope=agent_type:coder",
            json!({"reason": "x".repeat(100_000)}),
        ),
    ] {
        let (status, answer, raw) = api
            .call(Method::POST, path, Some(&api.operator), Some(body))
            .await;
        assert!(status.is_client_error(), "{path}: {raw}");
        error_code(status, &answer, &raw);
    }

    // A narrow token reads what its patterns name, and nothing else: the
    // refusal is a denied row naming the reference.
    let tokens = keyward::auth::Tokens::new(api.vault.db().clone());
    let policy = Policy {
        capabilities: [Capability::Render].into_iter().collect(),
        resolve: vec![Pattern::parse("global/*").expect("pattern")],
        networks: Vec::new(),
        agent: None,
    };
    let (_, narrow) = tokens
        .create_with(
            "narrow",
            keyward::auth::Role::Resolver,
            keyward::auth::Grant {
                ttl: None,
                policy: Some(policy),
            },
        )
        .await
        .expect("token");
    let (status, answer, raw) = api
        .call(
            Method::POST,
            path,
            Some(narrow.expose()),
            Some(body.clone()),
        )
        .await;
    assert_eq!(error_code(status, &answer, &raw), "forbidden");
    assert!(!raw.contains(&base64::engine::general_purpose::STANDARD.encode(&binary)));
    let rows = api.vault.log_tail(5).await.expect("tail");
    assert!(
        rows.iter().any(|r| r.outcome == "denied"
            && r.scope == "agent_type:coder"
            && r.name == "BLOB"
            && r.accessor.starts_with("token:narrow#")),
        "{rows:?}"
    );
    let (status, answer, raw) = api
        .call(
            Method::POST,
            "/secrets/GITHUB_TOKEN/reveal",
            Some(narrow.expose()),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    assert!(answer["value_base64"].is_string());
}

#[tokio::test]
async fn many_templates_render_in_one_lookup_all_or_nothing() {
    let api = Api::start(TestDb::sqlite().await).await;
    let render = |body| api.call(Method::POST, "/render", Some(&api.resolver), Some(body));
    let (status, answer, raw) = render(json!({
        "templates": {"A": "a=${SECRET:GITHUB_TOKEN}", "B": "plain", "C": "${SECRET:GITHUB_TOKEN}"},
        "reason": "run"
    }))
    .await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    assert_eq!(answer["texts"]["B"], "plain");
    assert!(answer["texts"]["A"].as_str().expect("A").starts_with("a="));
    assert!(answer.get("text").is_none(), "{raw}");
    let before = api.vault.log_head().await.expect("head").seq;
    // One missing anywhere: nothing rendered, every missing one named.
    let (status, answer, raw) = render(json!({
        "templates": {"A": "${SECRET:GITHUB_TOKEN}", "B": "${SECRET:NOPE1}", "C": "${SECRET:NOPE2}"},
        "reason": "run"
    }))
    .await;
    assert_eq!(error_code(status, &answer, &raw), "missing_secrets");
    assert!(raw.contains("NOPE1") && raw.contains("NOPE2"), "{raw}");
    assert!(!raw.contains(crate::VALUE), "{raw}");
    let after = api.vault.log_head().await.expect("head").seq;
    assert!(
        api.vault
            .log_after(before, 10)
            .await
            .expect("rows")
            .iter()
            .all(|r| r.outcome != "ok"),
        "a failed render revealed something ({before}..{after})"
    );
    let many: serde_json::Map<String, serde_json::Value> =
        (0..1001).map(|i| (format!("V{i}"), json!("x"))).collect();
    for body in [
        json!({"template": "x", "templates": {"A": "y"}, "reason": "r"}),
        json!({"reason": "r"}),
        json!({"templates": many, "reason": "r"}),
        json!({"templates": {"A": "${SECRET:"}, "reason": "r"}),
        json!({"templates": ["not", "a", "map"], "reason": "r"}),
    ] {
        let (status, answer, raw) = render(body).await;
        assert!(status.is_client_error(), "{raw}");
        error_code(status, &answer, &raw);
    }
}

#[tokio::test]
async fn the_whole_log_pages_follows_and_verifies_on_the_server() {
    let api = Api::start(TestDb::sqlite().await).await;
    for _ in 0..3 {
        api.call(
            Method::POST,
            "/render",
            Some(&api.resolver),
            Some(crate::render_body()),
        )
        .await;
    }
    let op = Some(api.operator.as_str());
    let (status, answer, raw) = api.call(Method::GET, "/access-log?limit=2", op, None).await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    let rows = answer["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2);
    let head = answer["head_seq"].as_i64().expect("head");
    assert_eq!(
        rows[1]["seq"].as_i64(),
        Some(head),
        "oldest first, ending at the head"
    );
    let (_, answer, raw) = api
        .call(
            Method::GET,
            &format!("/access-log?after={}", head - 1),
            op,
            None,
        )
        .await;
    assert_eq!(answer["rows"].as_array().expect("rows").len(), 1, "{raw}");
    for bad in [
        "limit=0",
        "limit=1001",
        "after=-1",
        "after=x",
        "limit=1e9",
        "nope=1",
    ] {
        let (status, answer, raw) = api
            .call(Method::GET, &format!("/access-log?{bad}"), op, None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {raw}");
        error_code(status, &answer, &raw);
    }
    // A resolver cannot read the whole log.
    let (status, answer, raw) = api
        .call(Method::GET, "/access-log", Some(&api.resolver), None)
        .await;
    assert_eq!(error_code(status, &answer, &raw), "forbidden");

    let checkpoint = api.vault.checkpoint().await.expect("checkpoint").to_line();
    let (status, answer, raw) = api
        .call(
            Method::POST,
            "/access-log/verify",
            op,
            Some(json!({"checkpoints": [checkpoint]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    assert_eq!(answer["intact"], true, "{raw}");
    assert_eq!(answer["checkpoints"][0]["verdict"], "reached", "{raw}");
    let forged = checkpoint.replacen("\"seq\":", "\"seq\":1", 1);
    let too_many: Vec<String> = vec![checkpoint.clone(); 101];
    for body in [
        json!({"checkpoints": ["not a checkpoint"]}),
        json!({"checkpoints": [forged]}),
        json!({"checkpoints": too_many}),
        json!({"checkpoints": "one"}),
    ] {
        let (status, answer, raw) = api
            .call(Method::POST, "/access-log/verify", op, Some(body))
            .await;
        assert!(status.is_client_error(), "{raw}");
        error_code(status, &answer, &raw);
    }
}

#[tokio::test]
async fn the_plugin_list_needs_a_runtime_and_an_operator() {
    let api = Api::start(TestDb::sqlite().await).await;
    // This server runs no plugin runtime: a clear 503, not an empty list.
    let (status, answer, raw) = api
        .call(Method::GET, "/plugins", Some(&api.operator), None)
        .await;
    assert_eq!(error_code(status, &answer, &raw), "unavailable");
    let (status, answer, raw) = api
        .call(Method::GET, "/plugins", Some(&api.resolver), None)
        .await;
    assert_eq!(error_code(status, &answer, &raw), "forbidden");
}
