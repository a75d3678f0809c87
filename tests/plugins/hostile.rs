//! Each hostile fixture: the call fails with a clear error, the host goes on
//! serving other calls, and every denial is in the access log.

use std::collections::HashMap;

use keyward::runtime::{PluginError, ReturnedError};

use crate::{fixtures, Host};

/// A host whose `name` fixture has its manifest edited by `edit`.
async fn host_with_edit(name: &str, edit: impl FnOnce(String) -> String) -> Host {
    let host = Host::with(&["echo-forge"]).await;
    fixtures::install(host.plugins.path(), name, edit);
    host.rt.reload().await;
    assert!(
        host.rt.registry().plugins.contains_key(name),
        "{name} loads: {:?}",
        host.rt.registry().refused
    );
    host
}

fn limit(manifest: String, line: &str) -> String {
    // The fixture manifests end with their [limits] table (or have none).
    if manifest.contains("[limits]") {
        format!("{manifest}\n{line}\n")
    } else {
        format!("{manifest}\n[limits]\n{line}\n")
    }
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_at_the_wall_time_limit() {
    let host = host_with_edit("infinite-loop", |m| limit(m, "wall_time_ms = 300")).await;
    let started = std::time::Instant::now();
    let err = host.whoami("infinite-loop").await.expect_err("stopped");
    assert!(
        matches!(err, PluginError::Timeout { limit_ms: 300, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("wall-time limit of 300 ms"),
        "{err}"
    );
    assert!(
        started.elapsed().as_secs() < 5,
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(err.http_status(), 504);
    host.still_serves().await;
}

#[tokio::test]
async fn a_memory_bomb_hits_its_memory_limit() {
    let host = Host::with(&["memory-bomb", "echo-forge"]).await;
    let err = host.whoami("memory-bomb").await.expect_err("stopped");
    assert!(
        matches!(err, PluginError::MemoryLimit { limit_mib: 64, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("memory limit of 64 MiB"), "{err}");
    host.still_serves().await;
}

#[tokio::test]
async fn deep_recursion_is_a_clear_stack_overflow() {
    let host = Host::with(&["deep-recursion", "echo-forge"]).await;
    let err = host.whoami("deep-recursion").await.expect_err("stopped");
    assert!(err.to_string().contains("stack overflow"), "{err}");
    host.still_serves().await;
}

#[tokio::test]
async fn a_panic_is_reported_with_its_message() {
    let host = Host::with(&["panic", "echo-forge"]).await;
    let err = host.whoami("panic").await.expect_err("trapped");
    assert!(matches!(err, PluginError::Crashed { .. }), "{err}");
    assert!(
        err.to_string().contains("fixture panic"),
        "{err}\n{}",
        crate::captured_log()
    );
    host.still_serves().await;
}

#[tokio::test]
async fn revealing_an_ungranted_reference_is_denied_and_logged() {
    let host = Host::with(&["reveal-ungranted", "echo-forge"]).await;
    let err = host.whoami("reveal-ungranted").await.expect_err("denied");
    match &err {
        PluginError::Returned {
            error: ReturnedError::Denied(why),
            ..
        } => assert!(why.contains("not granted"), "{why}"),
        other => panic!("expected a denial, got {other}"),
    }
    assert_eq!(err.http_status(), 403);
    let rows = host.log_of("reveal-ungranted").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (
            rows[0].action.as_str(),
            rows[0].outcome.as_str(),
            rows[0].name.as_str()
        ),
        ("reveal", "denied", "not-granted")
    );
    host.still_serves().await;
}

fn denied(err: &PluginError) -> &str {
    match err {
        PluginError::Returned {
            error: ReturnedError::Denied(why),
            ..
        } => why,
        other => panic!("expected a denial, got {other}"),
    }
}

#[tokio::test]
async fn a_fetch_to_an_ungranted_origin_is_denied_and_logged() {
    let host = Host::with(&["fetch-ungranted", "echo-forge"]).await;
    let err = host.whoami("fetch-ungranted").await.expect_err("denied");
    assert!(
        denied(&err).contains("https://ungranted.example:443 is not granted"),
        "{err}"
    );
    let rows = host.log_of("fetch-ungranted").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (
            rows[0].action.as_str(),
            rows[0].outcome.as_str(),
            rows[0].scope.as_str()
        ),
        ("fetch", "denied", "outbound")
    );
    assert_eq!(rows[0].name, "https://ungranted.example:443");
    host.still_serves().await;
}

#[tokio::test]
async fn a_redirect_to_another_origin_is_not_followed() {
    let host = Host::with(&["fetch-redirect", "echo-forge"]).await;
    let err = host.whoami("fetch-redirect").await.expect_err("denied");
    let why = denied(&err);
    assert!(why.contains("redirected to http://127.0.0.2:"), "{why}");
    let rows = host.log_of("fetch-redirect").await;
    assert!(
        rows.iter().any(|r| r.action == "fetch"
            && r.outcome == "denied"
            && r.name.starts_with("http://127.0.0.2:")),
        "{rows:?}"
    );
    host.still_serves().await;
}

#[tokio::test]
async fn an_oversized_response_is_cut_off_at_the_limit() {
    let host = Host::with(&["fetch-oversized", "echo-forge"]).await;
    let err = host.whoami("fetch-oversized").await.expect_err("refused");
    match &err {
        PluginError::Returned {
            error: ReturnedError::Limit(why),
            ..
        } => assert!(
            why.contains("larger than the plugin's limit of 1024 bytes"),
            "{why}"
        ),
        other => panic!("expected a limit error, got {other}"),
    }
    host.still_serves().await;
}

#[tokio::test]
async fn outbound_calls_per_call_are_limited() {
    let host = Host::with(&["fetch-many", "echo-forge"]).await;
    let err = host.whoami("fetch-many").await.expect_err("refused");
    match &err {
        PluginError::Returned {
            error: ReturnedError::Limit(why),
            ..
        } => assert!(why.contains("at most 4 outbound requests"), "{why}"),
        other => panic!("expected a limit error, got {other}"),
    }
    host.still_serves().await;
}

#[tokio::test]
async fn a_log_flood_is_stopped_at_the_log_limit() {
    let host = Host::with(&["log-flood", "echo-forge"]).await;
    let err = host.whoami("log-flood").await.expect_err("stopped");
    assert!(matches!(err, PluginError::LogLimit { .. }), "{err}");
    let flood_lines = crate::captured_log()
        .lines()
        .filter(|l| l.contains("log-flood"))
        .count();
    // 64 KiB of 1 KiB lines at most, plus stdout's share.
    assert!(flood_lines <= 200, "{flood_lines} lines reached the log");
    host.still_serves().await;
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_is_refused() {
    let mut hosts = HashMap::new();
    hosts.insert(
        "forge.rebind.test".to_owned(),
        vec!["127.0.0.1".parse().expect("ip")],
    );
    let host = Host::build(&["echo-forge"], false, hosts).await;
    let port = host.base.rsplit(':').next().expect("port").to_owned();
    let base = format!("https://forge.rebind.test:{port}");
    let err = host
        .rt
        .forge_whoami(
            &host.vault,
            "echo-forge",
            &keyward::runtime::BaseUrl::parse(&base).expect("base URL"),
            &crate::reference(crate::TOKEN_REF),
        )
        .await
        .expect_err("refused");
    assert!(
        denied(&err).contains("resolves only to addresses plugins may not reach"),
        "{err}"
    );
    let rows = host.log_of("echo-forge").await;
    assert!(
        rows.iter()
            .any(|r| r.action == "fetch" && r.outcome == "denied"),
        "{rows:?}"
    );
    // The token was never expanded for that origin.
    assert!(!rows.iter().any(|r| r.action == "egress"), "{rows:?}");
}
