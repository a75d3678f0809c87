//! Check-and-set over HTTP: `PUT /secrets/{name}` with `If-Match: "N"` or
//! `cas`, the `ETag` of the answer, and hostile `If-Match` values.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::TestDb;
use crate::Api;

/// `PUT path` with `body` and, if given, `If-Match`; (status, ETag, JSON).
async fn put(
    api: &Api,
    path: &str,
    if_match: Option<&str>,
    body: Value,
) -> (StatusCode, Option<String>, Value) {
    let mut req = api
        .client
        .request(Method::PUT, format!("{}{path}", api.base))
        .bearer_auth(&api.operator)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(tag) = if_match {
        req = req.header("if-match", tag);
    }
    let resp = req.send().await.expect("send");
    let status = resp.status();
    let etag = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = resp.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, etag, json)
}

/// The entry of `name` in a `GET /secrets` answer.
fn named<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .expect("a list")
        .iter()
        .find(|m| m["name"] == name)
        .expect("listed")
}

#[tokio::test]
async fn if_match_and_cas_guard_a_change_and_a_stale_one_writes_nothing() {
    let api = Api::start(TestDb::sqlite().await).await;
    let op = Some(api.operator.as_str());
    let new = json!({"name": "DB_PASSWORD", "value": "one-1234", "description": "d1"});
    let (status, _, raw) = api.call(Method::POST, "/secrets", op, Some(new)).await;
    assert_eq!(status, StatusCode::CREATED, "{raw}");
    let path = "/secrets/DB_PASSWORD";

    let (status, etag, json) = put(&api, path, Some("\"1\""), json!({"value": "two-1234"})).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(etag.as_deref(), Some("\"2\""));
    assert_eq!(json["version"], 2);

    // The same If-Match again is stale: 409 naming the current version,
    // and neither the value nor the description changes.
    let (status, _, json) = put(
        &api,
        path,
        Some("\"1\""),
        json!({"value": "three-1234", "description": "d2"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{json}");
    assert_eq!(json["error"]["code"], "version_mismatch");
    assert_eq!(json["error"]["current_version"], 2);
    let (status, _, json) = put(&api, path, None, json!({"description": "d3", "cas": 1})).await;
    assert_eq!(
        (status, json["error"]["current_version"].as_i64()),
        (StatusCode::CONFLICT, Some(2))
    );
    let (_, list, _) = api.call(Method::GET, "/secrets", op, None).await;
    let meta = named(&list, "DB_PASSWORD");
    assert_eq!(
        (meta["version"].as_i64(), meta["description"].as_str()),
        (Some(2), Some("d1"))
    );
    let body = json!({"template": "${SECRET:DB_PASSWORD}", "reason": "check"});
    let (_, rendered, _) = api
        .call(Method::POST, "/render", Some(&api.resolver), Some(body))
        .await;
    assert_eq!(rendered["text"], "two-1234");

    // `cas` in the body works like If-Match; both at once must agree.
    let (status, etag, _) = put(&api, path, None, json!({"value": "four-1234", "cas": 2})).await;
    assert_eq!((status, etag.as_deref()), (StatusCode::OK, Some("\"3\"")));
    let (status, _, json) = put(
        &api,
        path,
        Some("3"),
        json!({"value": "five-1234", "cas": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    // Without either, a change is unconditional, as before.
    let (status, etag, _) = put(&api, path, None, json!({"value": "six-1234"})).await;
    assert_eq!((status, etag.as_deref()), (StatusCode::OK, Some("\"4\"")));
}

#[tokio::test]
async fn hostile_if_match_values_are_refused_and_change_nothing() {
    let api = Api::start(TestDb::sqlite().await).await;
    let op = Some(api.operator.as_str());
    let new = json!({"name": "API_KEY", "value": "v-12345678"});
    api.call(Method::POST, "/secrets", op, Some(new)).await;
    let path = "/secrets/API_KEY";
    for tag in [
        "*",
        "W/\"1\"",
        "\"1\", \"2\"",
        "\"-1\"",
        "+1",
        "\"abc\"",
        "\"99999999999999999999999\"",
        "",
        "\"\"",
    ] {
        let (status, _, json) = put(&api, path, Some(tag), json!({"value": "hostile-123"})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "If-Match {tag:?}: {json}");
        assert_eq!(json["error"]["code"], "invalid", "{tag:?}");
    }
    let (status, _, json) = put(&api, path, None, json!({"value": "x-12345678", "cas": -1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    let (status, _, json) = put(&api, path, None, json!({"value": "x-12345678", "cas": "1"})).await;
    assert!(status.is_client_error(), "{json}");
    let (_, list, _) = api.call(Method::GET, "/secrets", op, None).await;
    assert_eq!(
        named(&list, "API_KEY")["version"],
        1,
        "a refused change wrote"
    );
}

/// Versions over HTTP: the list (never a value), a logged read of an
/// earlier version, a rollback naming its reason, and hostile input.
#[tokio::test]
async fn versions_list_read_and_roll_back_over_http() {
    let api = Api::start(TestDb::sqlite().await).await;
    let op = Some(api.operator.as_str());
    let new = json!({"name": "ROLLED", "value": "good-value-1"});
    api.call(Method::POST, "/secrets", op, Some(new)).await;
    put(
        &api,
        "/secrets/ROLLED",
        None,
        json!({"value": "bad-value-2"}),
    )
    .await;

    let (status, list, raw) = api
        .call(Method::GET, "/secrets/ROLLED/versions", op, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    assert_eq!(list[0]["version"], 2);
    assert_eq!(list[0]["state"], "current");
    assert_eq!(
        (list[1]["version"].as_i64(), list[1]["state"].as_str()),
        (Some(1), Some("kept"))
    );
    assert!(
        !raw.contains("good-value-1") && !raw.contains("bad-value-2"),
        "{raw}"
    );

    let reveal = "/secrets/ROLLED/versions/1/reveal";
    let (status, json, raw) = api
        .call(Method::POST, reveal, op, Some(json!({"reason": "compare"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    use base64::Engine as _;
    let value = base64::engine::general_purpose::STANDARD
        .decode(json["value_base64"].as_str().expect("value"))
        .expect("base64");
    assert_eq!(value, b"good-value-1");
    // Operators only: a resolver that may render the secret now may not
    // read what it was before.
    let (status, _, _) = api
        .call(
            Method::POST,
            reveal,
            Some(&api.resolver),
            Some(json!({"reason": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let resp = api
        .client
        .post(format!("{}/secrets/ROLLED/rollback", api.base))
        .bearer_auth(&api.operator)
        .header("content-type", "application/json")
        .body(json!({"to": 1, "reason": "bad rotation"}).to_string())
        .send()
        .await
        .expect("rollback");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers().get("etag").and_then(|v| v.to_str().ok()),
        Some("\"3\"")
    );
    let body = json!({"template": "${SECRET:ROLLED}", "reason": "check"});
    let (_, rendered, _) = api
        .call(Method::POST, "/render", Some(&api.resolver), Some(body))
        .await;
    assert_eq!(rendered["text"], "good-value-1");
    let (_, log, _) = api
        .call(Method::GET, "/secrets/ROLLED/access-log", op, None)
        .await;
    let rows: Vec<(String, String)> = log["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["reason"] == "bad rotation")
        .map(|r| {
            (
                r["action"].as_str().unwrap_or_default().to_owned(),
                r["detail"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter()
            .any(|(a, d)| a == "replace" && d.starts_with("version 3: rollback to version 1")),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|(a, d)| a == "reveal" && d.starts_with("version 1, for a rollback")),
        "{rows:?}"
    );

    // Hostile: versions that are not there, not numbers, or the current one.
    for (path, body, want) in [
        (
            "/secrets/ROLLED/versions/0/reveal",
            json!({"reason": "x"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/secrets/ROLLED/versions/-1/reveal",
            json!({"reason": "x"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/secrets/ROLLED/versions/abc/reveal",
            json!({"reason": "x"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/secrets/ROLLED/versions/99/reveal",
            json!({"reason": "x"}),
            StatusCode::NOT_FOUND,
        ),
        (
            "/secrets/NOPE/versions/1/reveal",
            json!({"reason": "x"}),
            StatusCode::NOT_FOUND,
        ),
        (
            "/secrets/ROLLED/rollback",
            json!({"to": 3, "reason": "x"}),
            StatusCode::NOT_FOUND,
        ),
        (
            "/secrets/ROLLED/rollback",
            json!({"to": 42, "reason": "x"}),
            StatusCode::NOT_FOUND,
        ),
        (
            "/secrets/ROLLED/rollback",
            json!({"to": 1}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/secrets/ROLLED/rollback",
            json!({"to": "1", "reason": "x"}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, json, raw) = api.call(Method::POST, path, op, Some(body.clone())).await;
        assert_eq!(status, want, "{path} {body}: {raw}");
        assert!(json["error"]["code"].is_string(), "{raw}");
    }
    let (_, list, _) = api
        .call(Method::GET, "/secrets/ROLLED/versions", op, None)
        .await;
    assert_eq!(list[0]["version"], 3, "a refused call wrote a version");
}
