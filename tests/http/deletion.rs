//! Soft delete, undelete, destroy and per-secret version limits over HTTP,
//! with hostile query values.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::TestDb;
use crate::{error_code, render_body, Api};

#[tokio::test]
async fn delete_hides_undelete_restores_and_destroy_is_final() {
    let api = Api::start(TestDb::sqlite().await).await;
    let (op, res) = (Some(api.operator.as_str()), Some(api.resolver.as_str()));
    let path = "/secrets/GITHUB_TOKEN";

    let (status, _, raw) = api.call(Method::DELETE, path, op, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{raw}");
    let (status, body, raw) = api
        .call(Method::POST, "/render", res, Some(render_body()))
        .await;
    assert_eq!(error_code(status, &body, &raw), "missing_secrets");
    let (_, list, _) = api.call(Method::GET, "/secrets", res, None).await;
    assert_eq!(list, json!([]), "a deleted secret is not listed");

    let (status, deleted, raw) = api.call(Method::GET, "/deleted-secrets", op, None).await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    let row = &deleted[0];
    assert_eq!(
        (&row["name"], &row["scope"], &row["version"]),
        (&json!("GITHUB_TOKEN"), &json!("global"), &json!(1))
    );
    assert!(
        row["deleted_by"]
            .as_str()
            .is_some_and(|by| by.starts_with("token:ops")),
        "{row}"
    );
    let week = 7 * 24 * 3600 * 1000;
    assert_eq!(
        row["undeletable_until"].as_i64().expect("until") - row["deleted_at"].as_i64().expect("at"),
        week
    );
    let (status, body, raw) = api.call(Method::GET, "/deleted-secrets", res, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{raw}");
    assert_eq!(body["error"]["code"], "forbidden");

    let undelete = "/secrets/GITHUB_TOKEN/undelete";
    let (status, meta, raw) = api.call(Method::POST, undelete, op, None).await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    assert_eq!(meta["version"], 1);
    let (status, _, raw) = api
        .call(Method::POST, "/render", res, Some(render_body()))
        .await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    let (status, body, raw) = api.call(Method::POST, undelete, op, None).await;
    assert_eq!(error_code(status, &body, &raw), "not_deleted");
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _, raw) = api.call(Method::POST, undelete, res, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{raw}");

    for bad in ["maybe", "1", "", "TRUE%00"] {
        let (status, body, raw) = api
            .call(Method::DELETE, &format!("{path}?destroy={bad}"), op, None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "destroy={bad}: {raw}");
        assert_eq!(body["error"]["code"], "invalid");
    }
    let (status, _, raw) = api
        .call(Method::DELETE, &format!("{path}?destroy=true"), op, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{raw}");
    let (status, body, raw) = api.call(Method::POST, undelete, op, None).await;
    assert_eq!(error_code(status, &body, &raw), "not_found");
    let (status, body, raw) = api
        .call(Method::DELETE, &format!("{path}?destroy=true"), op, None)
        .await;
    assert_eq!(error_code(status, &body, &raw), "not_found");
    let (_, deleted, _) = api.call(Method::GET, "/deleted-secrets", op, None).await;
    assert_eq!(deleted, json!([]));
    // Deleted, then created again: live as its next version, the deleted
    // value kept (an operator's "delete and make it again" works).
    let create = json!({"name": "GITHUB_TOKEN", "value": "first-value"});
    let (status, _, raw) = api.call(Method::POST, "/secrets", op, Some(create)).await;
    assert_eq!(status, StatusCode::CREATED, "{raw}");
    api.call(Method::DELETE, path, op, None).await;
    let create = json!({"name": "GITHUB_TOKEN", "value": "second-value"});
    let (status, meta, raw) = api.call(Method::POST, "/secrets", op, Some(create)).await;
    assert_eq!(status, StatusCode::CREATED, "{raw}");
    assert_eq!(meta["version"], 2, "{meta}");
    let (_, versions, _) = api
        .call(Method::GET, "/secrets/GITHUB_TOKEN/versions", op, None)
        .await;
    assert_eq!(versions.as_array().map(Vec::len), Some(2), "{versions}");
}

#[tokio::test]
async fn past_the_retention_undelete_is_gone() {
    let api = Api::start(TestDb::sqlite().await).await;
    let vault = api.vault.clone().with_retention(Duration::from_millis(200));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = keyward::http::router(vault, None);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let send = |method: Method, path: &str| {
        api.client
            .request(method, format!("{base}{path}"))
            .bearer_auth(&api.operator)
            .send()
    };
    let resp = send(Method::DELETE, "/secrets/GITHUB_TOKEN")
        .await
        .expect("delete");
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resp = send(Method::POST, "/secrets/GITHUB_TOKEN/undelete")
        .await
        .expect("undelete");
    assert_eq!(resp.status(), StatusCode::GONE);
    let body: Value = serde_json::from_str(&resp.text().await.expect("body")).expect("json");
    assert_eq!(body["error"]["code"], "retention_passed");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("more than 0s ago") || m.contains("200ms")),
        "{body}"
    );
}

#[tokio::test]
async fn max_versions_is_checked_and_prunes() {
    let api = Api::start(TestDb::sqlite().await).await;
    let op = Some(api.operator.as_str());
    let path = "/secrets/GITHUB_TOKEN";
    for i in 2..=5 {
        let (status, _, raw) = api
            .call(
                Method::PUT,
                path,
                op,
                Some(json!({"value": format!("value-{i}")})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{raw}");
    }
    for bad in [
        json!(-1),
        json!(10_001),
        json!("3"),
        json!(2.5),
        json!(null),
    ] {
        let (status, body, raw) = api
            .call(Method::PUT, path, op, Some(json!({ "max_versions": bad })))
            .await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY,
            "max_versions {bad}: {raw}"
        );
        error_code(status, &body, &raw);
    }
    let (status, meta, raw) = api
        .call(Method::PUT, path, op, Some(json!({"max_versions": 2})))
        .await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    assert_eq!(meta["version"], 5, "a limit alone writes no value");
    let (_, versions, _) = api
        .call(Method::GET, "/secrets/GITHUB_TOKEN/versions", op, None)
        .await;
    let states: Vec<(i64, String)> = versions
        .as_array()
        .expect("list")
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().expect("n"),
                v["state"].as_str().expect("state").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            (5, "current".to_owned()),
            (4, "kept".to_owned()),
            (3, "destroyed".to_owned()),
            (2, "destroyed".to_owned()),
            (1, "destroyed".to_owned())
        ]
    );
    // A stale check-and-set changes neither the value nor the limit.
    let (status, _, raw) = api
        .call(
            Method::PUT,
            path,
            op,
            Some(json!({"value": "late", "max_versions": 0, "cas": 4})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{raw}");
    let (status, _, raw) = api
        .call(Method::PUT, path, op, Some(json!({"value": "six-value"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    let (_, versions, _) = api
        .call(Method::GET, "/secrets/GITHUB_TOKEN/versions", op, None)
        .await;
    let kept = versions
        .as_array()
        .expect("list")
        .iter()
        .filter(|v| v["state"] != "destroyed")
        .count();
    assert_eq!(kept, 2, "the limit of 2 still holds: {versions}");
}
