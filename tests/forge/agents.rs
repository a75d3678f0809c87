//! Agent types: the token comes through the resolver on every dispatch, so
//! a rotation (over the API or in the dashboard) reaches the forge on the
//! next one, with no restart; getAgentToken is logged with caller and
//! reason; instances override; a dropped-in forge plugin works at once.

use forge_emulator::{Emulator, Flavor};
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::support::TestDb;
use super::{emulator, Host};

fn last_user_auth(emu: &Emulator) -> String {
    emu.requests()
        .into_iter()
        .rev()
        .find(|r| r.path.ends_with("/user"))
        .and_then(|r| r.authorization)
        .unwrap_or_default()
}

async fn host_for(emu: &Emulator, db: &TestDb) -> Host {
    Host::one_forge(db, "forgejo", emu, &["alice"]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_agent_token_reaches_the_next_dispatch() {
    let emu = emulator(Flavor::Forgejo, "alice").await;
    let db = TestDb::sqlite().await;
    let host = host_for(&emu, &db).await;
    let first = emu.personal_token("bot");
    let (status, body) = host
        .new_agent_type(
            json!({"name": "coder", "forge": "forgejo", "base_url": emu.base_url(),
                                "description": "the coding agent", "token": first}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["token"], "agent_type:coder/FORGE_TOKEN");
    assert!(!body.to_string().contains(&first), "never the token");

    let dispatch = |reason: &str| host.for_agent("coder", "dispatch", json!({"reason": reason}));
    let (status, body) = dispatch("nightly triage").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["account"]["login"], "bot");
    assert!(last_user_auth(&emu).ends_with(&first));

    // Rotated through the generic secrets API: the next dispatch uses it.
    let second = emu.personal_token("bot");
    let (status, body, _) = host
        .as_operator(
            Method::PUT,
            "/secrets/FORGE_TOKEN?scope=agent_type:coder",
            Some(json!({"value": second})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = dispatch("after rotation").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        last_user_auth(&emu).ends_with(&second),
        "{}",
        last_user_auth(&emu)
    );

    // getAgentToken: the value, logged with the caller and the reason.
    let (status, body) = host
        .for_agent("coder", "token", json!({"reason": "write agent.env"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token"], second.as_str());
    let rows = host.vault.log_tail(1000).await.expect("log");
    assert!(rows.iter().any(|r| r.accessor.starts_with("token:")
        && r.reason == "write agent.env"
        && r.scope == "agent_type:coder"
        && r.name == "FORGE_TOKEN"
        && r.action == "reveal"
        && r.outcome == "ok"));
    assert!(rows.iter().any(|r| r.accessor == "plugin:forgejo"
        && r.scope == "agent_type:coder"
        && r.action == "egress"));

    // An instance override wins for that instance only.
    let third = emu.personal_token("alice");
    let (status, body, _) = host
        .as_operator(
            Method::PUT,
            "/agent-types/coder/token",
            Some(json!({"value": third, "instance": "i-42"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token"], "instance:i-42/FORGE_TOKEN");
    let (status, body) = host
        .for_agent(
            "coder",
            "dispatch",
            json!({"reason": "instance run", "instance": "i-42"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["account"]["login"], "alice");
    let (_, body) = dispatch("type run").await;
    assert_eq!(body["account"]["login"], "bot");
    let (status, _, _) = host
        .as_operator(Method::DELETE, "/agent-types/coder/instances/i-42", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, body) = host
        .for_agent(
            "coder",
            "dispatch",
            json!({"reason": "instance run", "instance": "i-42"}),
        )
        .await;
    assert_eq!(body["account"]["login"], "bot", "back to the type's token");

    // Listing shows references, never values.
    let (status, body, _) = host
        .call(Method::GET, "/agent-types", &host.resolver, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let text = body.to_string();
    for t in [&first, &second, &third] {
        assert!(!text.contains(t.as_str()), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_rotated_in_the_dashboard_reaches_the_next_dispatch() {
    let emu = emulator(Flavor::Forgejo, "alice").await;
    let db = TestDb::sqlite().await;
    let host = host_for(&emu, &db).await;
    let first = emu.personal_token("bot");
    let (status, _) = host.new_agent_type(json!({"name": "reviewer", "forge": "forgejo", "base_url": emu.base_url(), "token": first})).await;
    assert_eq!(status, StatusCode::CREATED);
    // The operator signs in with the forge and replaces the value in the
    // dashboard's form.
    let (status, cookie, _) = host.sign_in("forgejo").await;
    assert_eq!(status, StatusCode::OK);
    let cookie = cookie.expect("cookie");
    let second = emu.personal_token("bot");
    let (status, body) = dashboard_post(
        &host,
        &cookie,
        "/settings/secrets/FORGE_TOKEN?scope=agent_type:reviewer",
        "/settings/secrets/FORGE_TOKEN/replace?scope=agent_type:reviewer",
        &[("value", &second)],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let (status, body) = host
        .for_agent(
            "reviewer",
            "dispatch",
            json!({"reason": "after the dashboard rotation"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(last_user_auth(&emu).ends_with(&second));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_agent_type_requests_are_refused_and_change_nothing() {
    let emu = emulator(Flavor::Forgejo, "alice").await;
    let db = TestDb::sqlite().await;
    let host = host_for(&emu, &db).await;
    for body in [
        json!({"name": "", "forge": "forgejo", "base_url": emu.base_url()}),
        json!({"name": "a/b", "forge": "forgejo", "base_url": emu.base_url()}),
        json!({"name": "x".repeat(500), "forge": "forgejo", "base_url": emu.base_url()}),
        json!({"name": "ok", "forge": "Not A Plugin", "base_url": emu.base_url()}),
        json!({"name": "ok", "forge": "forgejo", "base_url": "ftp://example.org"}),
        json!({"name": "ok", "forge": "forgejo", "base_url": "http://example.org"}),
        json!({"name": "ok", "forge": "forgejo", "base_url": "https://user:pw@example.org"}),
        json!({"name": "ok", "forge": "forgejo", "base_url": emu.base_url(), "surprise": 1}),
        json!({"name": 5, "forge": "forgejo"}),
        json!([]),
    ] {
        let (status, resp) = host.new_agent_type(body.clone()).await;
        assert!(status.is_client_error(), "{body}: {status} {resp}");
        assert!(resp["error"]["code"].is_string(), "{resp}");
    }
    let (_, list, _) = host
        .call(Method::GET, "/agent-types", &host.resolver, None)
        .await;
    assert_eq!(list, json!([]), "nothing was created");
    // Unknown types and missing tokens.
    let (status, _) = host
        .for_agent("ghost", "dispatch", json!({"reason": "r"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = host
        .new_agent_type(json!({"name": "empty", "forge": "forgejo", "base_url": emu.base_url()}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = host
        .for_agent("empty", "token", json!({"reason": "r"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = host
        .new_agent_type(json!({"name": "empty", "forge": "forgejo", "base_url": emu.base_url()}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "a duplicate");
    for body in [
        json!({}),
        json!({"reason": ""}),
        json!({"reason": "r\u{0}"}),
    ] {
        let (status, _) = host.for_agent("empty", "token", body.clone()).await;
        assert!(status.is_client_error(), "{body}");
    }
    // A token the forge refuses: the forge's answer, as a failed dependency.
    let (status, _, _) = host
        .as_operator(
            Method::PUT,
            "/agent-types/empty/token",
            Some(json!({"value": "not-a-real-token"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = host
        .for_agent("empty", "dispatch", json!({"reason": "r"}))
        .await;
    assert_eq!(status, StatusCode::FAILED_DEPENDENCY, "{body}");
    assert!(!body.to_string().contains("not-a-real-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_in_forge_plugin_signs_in_and_dispatches_without_a_restart() {
    let emu = emulator(Flavor::Forgejo, "alice").await;
    let db = TestDb::sqlite().await;
    let host = Host::one_forge(&db, "codeberg", &emu, &["alice"]).await;
    // Not there yet.
    assert_eq!(host.login("codeberg").await.status(), StatusCode::NOT_FOUND);
    // Built outside the host (the fixture workspace), dropped in, picked up.
    super::fixtures::install(host.plugins.path(), "codeberg", |m| m);
    let (status, body, _) = host
        .as_operator(Method::POST, "/plugins/reload", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["loaded"]
            .as_array()
            .expect("loaded")
            .iter()
            .any(|n| n == "codeberg"),
        "{body}"
    );
    let (status, cookie, page) = host.sign_in("codeberg").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let (_, me) = host.me(cookie.as_deref()).await;
    assert_eq!(me["forge_type"], "codeberg");
    let token = emu.personal_token("bot");
    let (status, body) = host.new_agent_type(json!({"name": "berg", "forge": "codeberg", "base_url": emu.base_url(), "token": token})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = host
        .for_agent("berg", "dispatch", json!({"reason": "drop-in"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["account"]["login"], "bot");
    let (status, _, _) = host.as_operator(Method::GET, "/forge/repos", None).await;
    assert_eq!(status, StatusCode::OK);
    drop(host.rt.registry());
}

/// The agent-type rows as they stand (what a resolver must never change).
async fn agent_rows(host: &Host) -> Vec<(String, Option<i64>, i64)> {
    sqlx::query_as("SELECT name, token_secret_id, updated_at FROM agent_type ORDER BY name")
        .fetch_all(host.vault.db().reader())
        .await
        .expect("agent types")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatch_names_the_resolver_token_and_writes_only_log_rows() {
    let emu = emulator(Flavor::Forgejo, "alice").await;
    let db = TestDb::sqlite().await;
    let host = host_for(&emu, &db).await;
    let (status, body) = host
        .new_agent_type(
            json!({"name": "coder", "forge": "forgejo", "base_url": emu.base_url(),
                                "token": emu.personal_token("bot")}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The token secret is deleted and made again (a new row) by an operator.
    let again = json!({"name": "FORGE_TOKEN", "scope": "agent_type:coder",
                       "value": emu.personal_token("bot")});
    for (method, path, body) in [
        (
            Method::DELETE,
            "/secrets/FORGE_TOKEN?scope=agent_type:coder",
            None,
        ),
        (Method::POST, "/secrets", Some(again)),
    ] {
        let (status, body, _) = host.as_operator(method, path, body).await;
        assert!(status.is_success(), "{status} {body}");
    }
    let before = agent_rows(&host).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (status, body) = host
        .for_agent("coder", "dispatch", json!({"reason": "nightly triage"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["account"]["login"], "bot");
    assert_eq!(
        agent_rows(&host).await,
        before,
        "a resolver's dispatch wrote to agent_type"
    );
    // The egress row names the plugin and the resolver token that asked.
    let rows = host.vault.log_tail(1000).await.expect("log");
    let egress = rows
        .iter()
        .rev()
        .find(|r| r.action == "egress" && r.scope == "agent_type:coder")
        .expect("an egress row");
    assert_eq!(egress.accessor, "plugin:forgejo");
    assert!(
        egress.reason.contains("token:agent#") && egress.reason.contains("nightly triage"),
        "the row names the resolver token and its reason: {:?}",
        egress.reason
    );
    // getAgentToken's row is the token's own.
    let (status, _) = host
        .for_agent("coder", "token", json!({"reason": "write agent.env"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(agent_rows(&host).await, before, "getAgentToken wrote");
    let rows = host.vault.log_tail(1000).await.expect("log");
    assert!(rows
        .iter()
        .any(|r| r.accessor.starts_with("token:agent#") && r.reason == "write agent.env"));
}

/// A form of the dashboard, posted with `cookie` and the CSRF token of the
/// page at `page`: the status and the answer page.
async fn dashboard_post(
    host: &Host,
    cookie: &str,
    page: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, String) {
    let html = host
        .client
        .get(format!("{}{page}", host.base))
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("text");
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF field")
        .to_owned();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("csrf", &csrf)
        .extend_pairs(fields)
        .finish();
    let resp = host
        .client
        .post(format!("{}{path}", host.base))
        .header(reqwest::header::COOKIE, cookie)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
        .send()
        .await
        .expect("post");
    (resp.status(), resp.text().await.expect("text"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboards_test_dispatch_shows_the_account_or_the_forges_error() {
    let emu = emulator(Flavor::Forgejo, "alice").await;
    let db = TestDb::sqlite().await;
    let host = host_for(&emu, &db).await;
    let (status, cookie, _) = host.sign_in("forgejo").await;
    assert_eq!(status, StatusCode::OK);
    let cookie = cookie.expect("cookie");
    let page = "/settings/agent-types";
    // Made in the dashboard, with the forge's default base URL from the
    // plugin replaced by the emulator's.
    let token = emu.personal_token("bot");
    let (status, body) = dashboard_post(
        &host,
        &cookie,
        page,
        "/settings/agent-types",
        &[
            ("name", "coder"),
            ("forge", "forgejo"),
            ("base_url", &emu.base_url()),
            ("token", &token),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let dispatch = |instance: &'static str| {
        let (host, cookie) = (&host, &cookie);
        async move {
            dashboard_post(
                host,
                cookie,
                "/settings/agent-types/coder",
                "/settings/agent-types/coder/dispatch",
                &[("instance", instance)],
            )
            .await
        }
    };
    let (status, body) = dispatch("").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains("the token belongs to <strong>bot</strong>"),
        "{body}"
    );
    assert!(body.contains("<code>1003</code>"), "the account id: {body}");
    assert!(body.contains("bot@example.test"), "the e-mail: {body}");
    assert!(!body.contains(&token), "never the token");
    assert!(last_user_auth(&emu).ends_with(&token));
    // Logged: the plugin's egress, naming the session and the reason.
    let rows = host.vault.log_tail(1000).await.expect("log");
    assert!(
        rows.iter().any(|r| r.accessor == "plugin:forgejo"
            && r.action == "egress"
            && r.scope == "agent_type:coder"
            && r.reason.contains("dashboard test dispatch")
            && r.reason.contains("session:")),
        "{:?}",
        rows.iter()
            .map(|r| (&r.accessor, &r.action, &r.reason))
            .collect::<Vec<_>>()
    );

    // An instance with a token the forge does not take: its error, clearly.
    let (status, body) = dashboard_post(
        &host,
        &cookie,
        "/settings/agent-types/coder",
        "/settings/agent-types/coder/token",
        &[("instance", "i-9"), ("value", "not-a-forge-token")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let (status, body) = dispatch("i-9").await;
    // 424: the forge no longer accepts what Keyward holds for it.
    assert_eq!(status, StatusCode::FAILED_DEPENDENCY, "{body}");
    assert!(body.contains("The test dispatch failed (424)"), "{body}");
    assert!(body.contains("role=\"alert\""), "{body}");
    assert!(body.contains("forgejo"), "names the plugin: {body}");
    assert!(
        !body.contains("not-a-forge-token"),
        "never the token: {body}"
    );
    // The type's own token still works for another instance.
    let (status, body) = dispatch("i-1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("<strong>bot</strong>"), "{body}");
}
