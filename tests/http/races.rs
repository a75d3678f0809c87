//! Concurrent requests that race for the same name: one wins, the others get
//! 409 with the error shape — never a 500 or a 503 — on both backends.

use keyward::auth::{Role, Tokens};
use keyward::forge::{ForgeApps, Forges};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::{TestDb, TestKey};

/// How many requests race each time.
const RACERS: usize = 8;

struct Served {
    base: String,
    client: Client,
    operator: String,
    _db: TestDb,
}

async fn serve(db: TestDb) -> Served {
    let vault = db.open(&TestKey::new()).await;
    let (_, op) = Tokens::new(vault.db().clone())
        .create("ops", Role::Operator)
        .await
        .expect("token");
    let forges = Forges::new(vault.clone(), None, ForgeApps::default());
    let app = keyward::http::router_with(vault, None, Some(forges), Default::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    Served {
        base: format!("http://{addr}"),
        client: Client::new(),
        operator: op.expose().to_owned(),
        _db: db,
    }
}

impl Served {
    /// Sends every `(method, path, body)` at once; the statuses and bodies.
    async fn race_all(
        &self,
        requests: Vec<(reqwest::Method, String, Value)>,
    ) -> Vec<(StatusCode, Value)> {
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(requests.len()));
        let tasks: Vec<_> = requests
            .into_iter()
            .map(|(method, path, body)| {
                let request = self
                    .client
                    .request(method, format!("{}{path}", self.base))
                    .bearer_auth(&self.operator)
                    .header("Content-Type", "application/json")
                    .body(body.to_string());
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    let resp = request.send().await.expect("send");
                    let status = resp.status();
                    let text = resp.text().await.expect("body");
                    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("task"));
        }
        out
    }

    /// The `bodies` to one `path`, all at once.
    async fn race(
        &self,
        method: reqwest::Method,
        path: &str,
        bodies: Vec<Value>,
    ) -> Vec<(StatusCode, Value)> {
        self.race_all(
            bodies
                .into_iter()
                .map(|b| (method.clone(), path.to_owned(), b))
                .collect(),
        )
        .await
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> (StatusCode, Value) {
        self.race(method, path, vec![body]).await.remove(0)
    }
}

/// Exactly one of `results` has `won`; every other one is a 409 with the
/// error shape.
fn one_wins(results: &[(StatusCode, Value)], won: StatusCode) {
    let winners = results.iter().filter(|(s, _)| *s == won).count();
    assert_eq!(winners, 1, "{results:?}");
    for (status, body) in results.iter().filter(|(s, _)| *s != won) {
        assert_eq!(*status, StatusCode::CONFLICT, "{results:?}");
        assert!(body["error"]["code"].is_string(), "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
}

async fn duplicate_secret_creates_answer_409(db: TestDb) {
    let s = serve(db).await;
    let bodies = (0..RACERS)
        .map(|i| json!({"name": "RACED", "value": format!("value-{i}")}))
        .collect();
    let results = s.race(reqwest::Method::POST, "/secrets", bodies).await;
    one_wins(&results, StatusCode::CREATED);
}

async fn duplicate_agent_types_answer_409(db: TestDb) {
    let s = serve(db).await;
    let bodies = (0..RACERS)
        .map(|_| json!({"name": "coder", "forge": "forgejo", "base_url": "http://127.0.0.1:9"}))
        .collect();
    let results = s.race(reqwest::Method::POST, "/agent-types", bodies).await;
    one_wins(&results, StatusCode::CREATED);
}

/// One instance id claimed by several agent types at once: one type gets
/// it, the others 409; asked again one by one, still 409.
async fn an_instance_id_claimed_by_two_agent_types_answers_409(db: TestDb) {
    let s = serve(db).await;
    for i in 0..RACERS {
        let (status, body) = s
            .send(
                reqwest::Method::POST,
                "/agent-types",
                json!({"name": format!("type{i}"), "forge": "forgejo", "base_url": "http://127.0.0.1:9"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let results = s
        .race_all(
            (0..RACERS)
                .map(|i| {
                    (
                        reqwest::Method::PUT,
                        format!("/agent-types/type{i}/token"),
                        json!({"value": format!("tok-{i}"), "instance": "i-42"}),
                    )
                })
                .collect(),
        )
        .await;
    one_wins(&results, StatusCode::OK);
    let winner = (0..RACERS)
        .find(|i| results[*i].0 == StatusCode::OK)
        .expect("a winner");
    let loser = (winner + 1) % RACERS;
    let (status, body) = s
        .send(
            reqwest::Method::PUT,
            &format!("/agent-types/type{loser}/token"),
            json!({"value": "late", "instance": "i-42"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

/// The same instance of the same type set at once: every request succeeds
/// (it is one override, set several times).
async fn one_instance_set_at_once_by_its_own_type_succeeds(db: TestDb) {
    let s = serve(db).await;
    let (status, body) = s
        .send(
            reqwest::Method::POST,
            "/agent-types",
            json!({"name": "coder", "forge": "forgejo", "base_url": "http://127.0.0.1:9"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let bodies = (0..RACERS)
        .map(|i| json!({"value": format!("tok-{i}"), "instance": "i-7"}))
        .collect();
    let results = s
        .race(reqwest::Method::PUT, "/agent-types/coder/token", bodies)
        .await;
    for (status, body) in &results {
        assert!(
            *status == StatusCode::OK || *status == StatusCode::CONFLICT,
            "{status}: {body}"
        );
    }
    assert!(
        results.iter().any(|(s, _)| *s == StatusCode::OK),
        "{results:?}"
    );
}

on_both_backends!(
    duplicate_secret_creates_answer_409,
    duplicate_agent_types_answer_409,
    an_instance_id_claimed_by_two_agent_types_answers_409,
    one_instance_set_at_once_by_its_own_type_succeeds,
);
