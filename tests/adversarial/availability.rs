//! Availability is part of safety: when the access log cannot be written, a
//! plugin call that needs a row stops at once with 503 (never a value
//! without its row, never a hang) and works again the moment the cause is
//! gone.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use keyward::runtime::{BaseUrl, PluginError};

use crate::harness::{reference, Sandbox};

const PLUGIN: &str = "hostile-forge";

#[tokio::test]
async fn a_plugin_call_answers_503_while_the_log_cannot_be_written_and_recovers() {
    let reveal =
        |_: &str, m: String| format!("{m}\n[grants]\nsecrets = [\"plugin:hostile-forge/*\"]\n");
    let sandbox = Sandbox::new(&[PLUGIN], reveal, HashMap::new()).await;
    let token = "plugin:hostile-forge/token";
    sandbox.secret(token, b"fjt_availability-token").await;
    let base = BaseUrl::parse("http://127.0.0.1:9/reveal-token").expect("base URL");
    // Every access-log insert fails, as on a full disk.
    sandbox
        .db
        .exec(
            "CREATE TRIGGER sabotage BEFORE INSERT ON secret_access_log \
             BEGIN SELECT RAISE(ABORT, 'disk full (simulated)'); END",
        )
        .await;
    let started = Instant::now();
    let err = sandbox
        .rt
        .forge_whoami(&sandbox.vault, PLUGIN, &base, &reference(token))
        .await
        .expect_err("no row, no value");
    assert!(matches!(err, PluginError::Unavailable(_)), "{err}");
    assert_eq!(err.http_status(), 503);
    assert!(!err.to_string().contains("fjt_availability-token"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );

    sandbox.db.exec("DROP TRIGGER sabotage").await;
    let account = sandbox
        .rt
        .forge_whoami(&sandbox.vault, PLUGIN, &base, &reference(token))
        .await
        .expect("served again once the log can be written");
    assert_eq!(account.login, "fjt_availability-token");
}
