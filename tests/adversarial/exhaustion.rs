//! A plugin cannot exhaust the host: refusals and invalid calls draw on a
//! per-call budget (one summary row past it, not millions), and the text a
//! plugin makes the host write into the access log is clipped.

use std::collections::HashMap;

use keyward::runtime::{BaseUrl, PluginError};

use crate::harness::{reference, Sandbox};

const PLUGIN: &str = "hostile-forge";
/// The documented cut of plugin text in the log (docs/access-log.md).
const MAX_LOGGED_TEXT: usize = 256;

async fn attack(sandbox: &Sandbox, attack: &str) -> Result<keyward::runtime::Account, PluginError> {
    let url = BaseUrl::parse(&format!("http://127.0.0.1:9/{attack}")).expect("base URL");
    sandbox
        .rt
        .forge_whoami(&sandbox.vault, PLUGIN, &url, &reference("FORGE_TOKEN"))
        .await
}

async fn sandbox() -> Sandbox {
    let sandbox = Sandbox::new(&[PLUGIN], |_, m| m, HashMap::new()).await;
    sandbox
        .secret("FORGE_TOKEN", b"fjt_budget-test-token")
        .await;
    sandbox
}

#[tokio::test]
async fn a_flood_of_refused_reveals_costs_one_summary_row() {
    let sandbox = sandbox().await;
    let before = sandbox.log().await.len();
    let err = attack(&sandbox, "refusal-flood")
        .await
        .expect_err("stopped");
    assert_eq!(err.kind(), "refusal_limit", "{err}");
    assert!(err.to_string().contains("limit of 16"), "{err}");
    assert_eq!(err.http_status(), 502);
    let rows = sandbox.rows_of(PLUGIN).await;
    let denied = rows.iter().filter(|r| r.action == "reveal").count();
    let limit = rows.iter().filter(|r| r.action == "limit").count();
    assert_eq!((denied, limit), (16, 1), "{rows:?}");
    assert_eq!(sandbox.log().await.len() - before, 17);
}

#[tokio::test]
async fn a_flood_of_invalid_calls_is_stopped_too() {
    let sandbox = sandbox().await;
    let err = attack(&sandbox, "invalid-flood")
        .await
        .expect_err("stopped");
    assert_eq!(err.kind(), "refusal_limit", "{err}");
    let rows = sandbox.rows_of(PLUGIN).await;
    assert_eq!(rows.len(), 1, "one summary row: {rows:?}");
    assert_eq!(rows[0].action, "limit");
}

#[tokio::test]
async fn a_flood_of_misses_under_a_wildcard_grant_is_stopped_too() {
    let wildcard =
        |_: &str, m: String| format!("{m}\n[grants]\nsecrets = [\"plugin:hostile-forge/*\"]\n");
    let sandbox = Sandbox::new(&[PLUGIN], wildcard, HashMap::new()).await;
    sandbox
        .secret("FORGE_TOKEN", b"fjt_budget-test-token")
        .await;
    let err = attack(&sandbox, "miss-flood").await.expect_err("stopped");
    assert_eq!(err.kind(), "refusal_limit", "{err}");
    let rows = sandbox.rows_of(PLUGIN).await;
    let missing = rows.iter().filter(|r| r.outcome == "missing").count();
    let limit = rows.iter().filter(|r| r.action == "limit").count();
    // The store logs a miss as it finds it, so the one past the budget is
    // there too: 17 rows and the summary, not a million.
    assert_eq!((missing, limit), (17, 1), "{rows:?}");
}

#[tokio::test]
async fn plugin_text_in_the_access_log_is_clipped() {
    let sandbox = sandbox().await;
    attack(&sandbox, "long-strings")
        .await
        .expect("the plugin carries on");
    let rows = sandbox.rows_of(PLUGIN).await;
    assert!(rows.len() >= 2, "{rows:?}");
    for row in &rows {
        for (column, text) in [
            ("name", &row.name),
            ("reason", &row.reason),
            ("detail", &row.detail),
        ] {
            assert!(
                text.len() <= MAX_LOGGED_TEXT,
                "{column} of {} bytes: {text}",
                text.len()
            );
        }
    }
}
