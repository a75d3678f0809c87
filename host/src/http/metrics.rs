//! `GET /metrics`: Prometheus text format, written by hand (a handful of
//! counters needs no client library).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, PoisonError};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::Resolver;
use super::AppState;
use crate::audit::group_commit::BATCH_BUCKETS;

/// Requests answered, by route template and status.
#[derive(Default)]
pub struct HttpStats {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
}

impl HttpStats {
    fn count(&self, route: String, status: u16) {
        let mut map = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        *map.entry((route, status)).or_default() += 1;
    }
}

/// Counts every routed request by its route template (never the raw path:
/// secret names stay out of the metrics) and status.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    state.http.count(route, response.status().as_u16());
    response
}

/// `GET /metrics` (resolver): request counts, reveals, denials, plugin calls
/// and failures, access-log group sizes.
pub async fn metrics(Resolver(_caller): Resolver, State(state): State<AppState>) -> Response {
    let mut out = String::new();
    let _ = write_all(&mut out, &state);
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

fn write_all(out: &mut String, state: &AppState) -> std::fmt::Result {
    writeln!(
        out,
        "# HELP keyward_http_requests_total HTTP requests answered, by route and status."
    )?;
    writeln!(out, "# TYPE keyward_http_requests_total counter")?;
    let requests = state
        .http
        .requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    for ((route, status), n) in requests {
        writeln!(
            out,
            "keyward_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
        )?;
    }
    let log = state.vault.log_stats();
    let counter = |out: &mut String, name: &str, help: &str, value: u64| {
        writeln!(out, "# HELP {name} {help}")?;
        writeln!(out, "# TYPE {name} counter")?;
        writeln!(out, "{name} {value}")
    };
    counter(
        out,
        "keyward_reveals_total",
        "Secret values handed out, each logged first.",
        log.revealed.load(Ordering::Relaxed),
    )?;
    counter(
        out,
        "keyward_denials_total",
        "Refused lookups written to the access log.",
        log.denied.load(Ordering::Relaxed),
    )?;
    counter(
        out,
        "keyward_access_log_rows_total",
        "Access-log rows written.",
        log.rows.load(Ordering::Relaxed),
    )?;
    writeln!(
        out,
        "# HELP keyward_access_log_batch_rows Rows per access-log commit (one fsync each)."
    )?;
    writeln!(out, "# TYPE keyward_access_log_batch_rows histogram")?;
    let mut cumulative = 0;
    for (i, bucket) in log.batches.iter().enumerate() {
        cumulative += bucket.load(Ordering::Relaxed);
        let le = BATCH_BUCKETS
            .get(i)
            .map_or_else(|| "+Inf".to_owned(), u64::to_string);
        writeln!(
            out,
            "keyward_access_log_batch_rows_bucket{{le=\"{le}\"}} {cumulative}"
        )?;
    }
    writeln!(
        out,
        "keyward_access_log_batch_rows_sum {}",
        log.rows.load(Ordering::Relaxed)
    )?;
    writeln!(
        out,
        "keyward_access_log_batch_rows_count {}",
        log.groups.load(Ordering::Relaxed)
    )?;
    if let Some(plugins) = &state.plugins {
        let stats = plugins.stats();
        counter(
            out,
            "keyward_plugin_calls_total",
            "Plugin export calls.",
            stats.calls.load(Ordering::Relaxed),
        )?;
        writeln!(
            out,
            "# HELP keyward_plugin_failures_total Failed plugin calls, by kind."
        )?;
        writeln!(out, "# TYPE keyward_plugin_failures_total counter")?;
        let failures = stats
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for (kind, n) in failures {
            writeln!(out, "keyward_plugin_failures_total{{kind=\"{kind}\"}} {n}")?;
        }
    }
    Ok(())
}
