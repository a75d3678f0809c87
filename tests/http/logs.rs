//! The per-request log line and the request id, from a real `keyward
//! serve`: JSON lines parsed field by field, hostile `X-Request-Id` values
//! replaced, the id carried into the access log, and neither a value nor a
//! token in the log.

use std::time::{Duration, Instant};

use reqwest::header::HeaderValue;
use serde_json::{json, Value};

use crate::support::kw::{Kw, Served};

const VALUE: &str = "log-test-value-0xC0FFEE";

/// A served store with one secret, a resolver and an operator token, its
/// stderr in `serve.log`, logging as `format` says (unset: the default).
struct Logged {
    kw: Kw,
    served: Served,
    resolver: String,
    operator: String,
    client: reqwest::Client,
}

impl Logged {
    fn start(format: Option<&str>) -> Logged {
        let kw = Kw::new();
        kw.ok(&["secret", "set", "GITHUB_TOKEN"], VALUE.as_bytes());
        let resolver = kw.token("agent", "resolver");
        let operator = kw.token("ops", "operator");
        let mut cmd = kw.cmd(&["serve", "--listen", "127.0.0.1:0"]);
        if let Some(format) = format {
            cmd.env("KEYWARD_LOG_FORMAT", format);
        }
        let served = Served::spawn(cmd, &kw.dir.path().join("serve.log"));
        Logged {
            kw,
            served,
            resolver,
            operator,
            client: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.served.addr)
    }

    /// POST /render of the secret with `id` (if any) as X-Request-Id.
    async fn render(&self, id: Option<HeaderValue>) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url("/render"))
            .bearer_auth(&self.resolver)
            .header("content-type", "application/json")
            .body(
                json!({"template": "t=${SECRET:GITHUB_TOKEN}", "reason": "log test"}).to_string(),
            );
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        let res = req.send().await.expect("render");
        assert_eq!(res.status(), 200);
        res
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.kw.dir.path().join("serve.log")).expect("serve log")
    }

    /// The JSON request lines once `n` are written (every line of the log
    /// must be JSON).
    async fn request_lines(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            let lines: Vec<Value> = log
                .lines()
                .map(|l| {
                    serde_json::from_str::<Value>(l)
                        .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))
                })
                .filter(|v| v["target"] == "keyward::request")
                .collect();
            if lines.len() >= n || Instant::now() > deadline {
                assert!(
                    lines.len() >= n,
                    "{} request lines of {n}:\n{log}",
                    lines.len()
                );
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn header(res: &reqwest::Response) -> String {
    res.headers()
        .get("x-request-id")
        .expect("every answer has an X-Request-Id")
        .to_str()
        .expect("ASCII")
        .to_owned()
}

#[tokio::test]
async fn json_logs_have_one_line_per_request_with_its_id_and_accessor() {
    let s = Logged::start(Some("json"));
    let res = s
        .render(Some(HeaderValue::from_static("trace-abc-123")))
        .await;
    assert_eq!(header(&res), "trace-abc-123", "a good id is echoed");
    let res = s.render(None).await;
    let made = header(&res);
    assert!(!made.is_empty() && made.len() <= 128, "{made}");
    // A refusal, a raw path holding a secret name, and no route at all.
    let res = s.client.get(s.url("/secrets")).send().await.expect("send");
    assert_eq!(res.status(), 401);
    let res = s
        .client
        .get(s.url("/secrets/GITHUB_TOKEN/access-log"))
        .bearer_auth(&s.resolver)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 200);
    let res = s
        .client
        .get(s.url("/no/such/route"))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 404);
    assert!(res.headers().contains_key("x-request-id"));

    let lines = s.request_lines(5).await;
    let first = &lines[0];
    assert_eq!(first["message"], "request", "{first}");
    assert_eq!(first["level"], "INFO", "{first}");
    assert_eq!(first["status"], 200, "{first}");
    assert!(
        first["duration_ms"].as_f64().is_some_and(|d| d >= 0.0),
        "{first}"
    );
    let span = &first["span"];
    assert_eq!(span["method"], "POST", "{first}");
    assert_eq!(span["route"], "/render", "{first}");
    assert_eq!(span["request_id"], "trace-abc-123", "{first}");
    assert!(
        span["accessor"]
            .as_str()
            .is_some_and(|a| a.starts_with("token:agent#")),
        "{first}"
    );
    assert_eq!(lines[1]["span"]["request_id"], made.as_str());
    assert_eq!(
        (
            lines[2]["status"].as_u64(),
            lines[2]["span"]["route"].as_str()
        ),
        (Some(401), Some("/secrets"))
    );
    assert!(
        lines[2]["span"].get("accessor").is_none(),
        "no token, no accessor: {}",
        lines[2]
    );
    assert_eq!(lines[3]["span"]["route"], "/secrets/{name}/access-log");
    assert_eq!(
        (
            lines[4]["status"].as_u64(),
            lines[4]["span"]["route"].as_str()
        ),
        (Some(404), Some("unmatched"))
    );

    let log = s.log();
    for never in [
        VALUE,
        s.resolver.as_str(),
        s.operator.as_str(),
        "GITHUB_TOKEN",
        "Bearer",
    ] {
        assert!(!log.contains(never), "{never} is in the log:\n{log}");
    }

    // The access log's rows name the request they were written for.
    let rows: Value = s
        .client
        .get(s.url("/access-log?limit=100"))
        .bearer_auth(&s.operator)
        .send()
        .await
        .expect("tail")
        .text()
        .await
        .map(|t| serde_json::from_str(&t).expect("json"))
        .expect("body");
    let details: Vec<&str> = rows["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["action"] == "render")
        .filter_map(|r| r["detail"].as_str())
        .collect();
    assert_eq!(
        details,
        [
            "request trace-abc-123".to_owned(),
            format!("request {made}")
        ],
        "{rows}"
    );
}

#[tokio::test]
async fn hostile_request_ids_are_replaced_not_logged() {
    let s = Logged::start(Some("json"));
    let too_long = "x".repeat(129);
    let hostile: Vec<HeaderValue> = vec![
        HeaderValue::from_static(""),
        HeaderValue::from_static("has space"),
        HeaderValue::from_str(&too_long).expect("header"),
        HeaderValue::from_static("quo\"te\\back"),
        HeaderValue::from_static("{\"level\":\"ERROR\",\"forged\":true}"),
        HeaderValue::from_static("semi;colon,comma"),
        HeaderValue::from_bytes(b"\xff\xfe-latin1").expect("obs-text header"),
        HeaderValue::from_bytes(b"tab\there").expect("tab header"),
    ];
    let mut answered = Vec::new();
    for id in &hostile {
        let res = s.render(Some(id.clone())).await;
        let got = header(&res);
        assert_ne!(got.as_bytes(), id.as_bytes(), "{id:?} was echoed");
        assert!(
            got.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'),
            "{got}: not a made id"
        );
        answered.push(got);
    }
    // Two headers: refused too (which one would the log carry?).
    let res = s
        .client
        .post(s.url("/render"))
        .bearer_auth(&s.resolver)
        .header("x-request-id", "one")
        .header("x-request-id", "two")
        .header("content-type", "application/json")
        .body(json!({"template": "x", "reason": "log test"}).to_string())
        .send()
        .await
        .expect("send");
    let got = header(&res);
    assert!(got != "one" && got != "two", "{got}");
    answered.push(got);

    let lines = s.request_lines(answered.len()).await;
    let logged: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["span"]["request_id"].as_str())
        .collect();
    assert_eq!(logged, answered);
    let log = s.log();
    for forged in [
        "forged",
        "has space",
        too_long.as_str(),
        "quo\\\"te",
        "semi;colon",
    ] {
        assert!(!log.contains(forged), "{forged} reached the log:\n{log}");
    }
}

#[tokio::test]
async fn text_logs_are_the_default_and_a_bad_format_is_refused() {
    let s = Logged::start(None);
    s.render(Some(HeaderValue::from_static("text-id-1"))).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let log = s.log();
        if let Some(line) = log.lines().find(|l| l.contains("keyward::request")) {
            break line.to_owned();
        }
        assert!(Instant::now() < deadline, "no request line:\n{log}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for part in [
        "method=POST",
        "route=\"/render\"",
        "request_id=\"text-id-1\"",
        "accessor=\"token:agent#",
        "status=200",
        "duration_ms=",
    ] {
        assert!(line.contains(part), "{part} not in {line}");
    }
    assert!(serde_json::from_str::<Value>(&line).is_err());

    // --log-format and KEYWARD_LOG_FORMAT take text or json, nothing else.
    let kw = Kw::new();
    let mut cmd = kw.cmd(&["secret", "list"]);
    cmd.env("KEYWARD_LOG_FORMAT", "xml");
    let out = crate::support::kw::run_with(cmd, b"");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid value 'xml'") && err.contains("text") && err.contains("json"),
        "{err}"
    );
    let out = kw.run(&["--log-format", "yaml", "secret", "list"], b"");
    assert_eq!(out.status.code(), Some(2));
    let out = kw.run(&["--log-format", "json", "secret", "list"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
