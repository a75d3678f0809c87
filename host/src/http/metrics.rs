//! `GET /metrics`: the Prometheus text format (0.0.4), encoded by
//! prometheus-client from what the server counts anyway: request
//! latencies (no mutex per request: [`crate::metrics`]), the access log's
//! counters and commits, plugin calls, the build and the process.

use std::sync::atomic::Ordering;
use std::sync::PoisonError;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::auth::Resolver;
use super::AppState;
use crate::audit::group_commit::BATCH_BUCKETS;
use crate::metrics::{Family, Histogram};

/// Requests answered, by route template and status, with their durations.
#[derive(Default)]
pub struct HttpStats {
    durations: Family<u16>,
}

/// Times every routed request by its route template (never the raw path:
/// secret names stay out of the metrics) and status.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let response = next.run(req).await;
    state.http.durations.observe(
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// `GET /metrics` (resolver): every metric of [`Everything`].
pub async fn metrics(Resolver(_caller): Resolver, State(state): State<AppState>) -> Response {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Everything(state)));
    let mut out = String::new();
    if let Err(error) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
        tracing::error!(%error, "cannot encode the metrics");
    }
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// Read at each scrape.
struct Everything(AppState);

impl std::fmt::Debug for Everything {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("metrics of the server")
    }
}

/// One unlabelled counter.
fn counter(out: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> std::fmt::Result {
    out.encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&value, None)
}

/// One unlabelled gauge.
fn gauge<V: prometheus_client::encoding::EncodeGaugeValue>(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: V,
) -> std::fmt::Result {
    out.encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

/// One unlabelled histogram.
fn histogram(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    h: &Histogram,
) -> std::fmt::Result {
    let (sum, count, buckets) = h.snapshot();
    out.encode_descriptor(name, help, None, MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
}

impl Collector for Everything {
    fn encode(&self, mut out: DescriptorEncoder) -> std::fmt::Result {
        let state = &self.0;
        // Requests: the count per route and status, and their durations.
        let series = state.http.durations.collect();
        {
            let mut m = out.encode_descriptor(
                "keyward_http_requests",
                "HTTP requests answered, by route and status",
                None,
                MetricType::Counter,
            )?;
            for (route, status, h) in &series {
                let status = status.to_string();
                let labels = [("route", route.as_str()), ("status", status.as_str())];
                m.encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&h.snapshot().1, None)?;
            }
        }
        {
            let mut m = out.encode_descriptor(
                "keyward_http_request_duration_seconds",
                "Time to answer a request (to the response head), by route and status",
                None,
                MetricType::Histogram,
            )?;
            for (route, status, h) in &series {
                let status = status.to_string();
                let labels = [("route", route.as_str()), ("status", status.as_str())];
                let (sum, count, buckets) = h.snapshot();
                m.encode_family(&labels)?
                    .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
            }
        }

        // The access log.
        let log = state.vault.log_stats();
        counter(
            &mut out,
            "keyward_reveals",
            "Secret values handed out, each logged first",
            log.revealed.load(Ordering::Relaxed),
        )?;
        counter(
            &mut out,
            "keyward_denials",
            "Refused lookups written to the access log",
            log.denied.load(Ordering::Relaxed),
        )?;
        counter(
            &mut out,
            "keyward_access_log_rows",
            "Access-log rows written",
            log.rows.load(Ordering::Relaxed),
        )?;
        counter(
            &mut out,
            "keyward_access_log_head_conflicts",
            "PostgreSQL access-log groups tried again because another writer moved the chain head or a secret changed",
            log.head_conflicts.load(Ordering::Relaxed),
        )?;
        gauge(
            &mut out,
            "keyward_access_log_verified_seq",
            "The last access-log row the background verify found good",
            log.verified_seq.load(Ordering::Relaxed),
        )?;
        gauge(
            &mut out,
            "keyward_access_log_broken_at",
            "The row where the background verify found the chain broken (0: intact)",
            log.broken_at.load(Ordering::Relaxed),
        )?;
        gauge(
            &mut out,
            "keyward_access_log_indexed_seq",
            "The last access-log row the history index covers (history reads the log itself after it)",
            log.indexed_seq.load(Ordering::Relaxed),
        )?;
        counter(
            &mut out,
            "keyward_access_log_history_rows_read",
            "Access-log rows history and search requests read from the database (the rows after the index's mark once, then the rows they return)",
            state.vault.history_rows_read(),
        )?;
        let batches: Vec<(f64, u64)> = log
            .batches
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let bound = BATCH_BUCKETS.get(i).map_or(f64::INFINITY, |&b| b as f64);
                (bound, n.load(Ordering::Relaxed))
            })
            .collect();
        out.encode_descriptor(
            "keyward_access_log_batch_rows",
            "Rows per access-log commit (one fsync each)",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(
            log.rows.load(Ordering::Relaxed) as f64,
            log.groups.load(Ordering::Relaxed),
            &batches,
            None,
        )?;
        histogram(
            &mut out,
            "keyward_access_log_commit_duration_seconds",
            "Time from an access-log group's start to its commit",
            &log.commit_seconds,
        )?;

        // Plugins.
        if let Some(plugins) = &state.plugins {
            let stats = plugins.stats();
            counter(
                &mut out,
                "keyward_plugin_calls",
                "Plugin export calls",
                stats.calls.load(Ordering::Relaxed),
            )?;
            {
                let failures = stats
                    .failures
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                let mut m = out.encode_descriptor(
                    "keyward_plugin_failures",
                    "Failed plugin calls, by kind",
                    None,
                    MetricType::Counter,
                )?;
                for (kind, n) in failures {
                    m.encode_family(&[("kind", kind)])?
                        .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
                }
            }
            let mut m = out.encode_descriptor(
                "keyward_plugin_call_duration_seconds",
                "Time of a plugin call, by plugin and outcome (ok, or the failure's kind)",
                None,
                MetricType::Histogram,
            )?;
            for (plugin, outcome, h) in stats.durations.collect() {
                let (sum, count, buckets) = h.snapshot();
                m.encode_family(&[("plugin", plugin.as_str()), ("outcome", outcome)])?
                    .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
            }
        }

        // The build.
        let info = prometheus_client::metrics::info::Info::new([
            ("version", env!("CARGO_PKG_VERSION")),
            ("commit", env!("KEYWARD_GIT_COMMIT")),
        ]);
        info.encode(out.encode_descriptor(
            "keyward_build",
            "The running build: version and git commit",
            None,
            info.metric_type(),
        )?)?;

        process(&mut out)
    }
}

/// The `process_*` metrics every Prometheus client exports, from `/proc`
/// (none elsewhere).
#[cfg(target_os = "linux")]
fn process(out: &mut DescriptorEncoder) -> std::fmt::Result {
    let Some(p) = ProcessStats::read() else {
        return Ok(());
    };
    out.encode_descriptor(
        "process_cpu_seconds",
        "User and system CPU time spent, in seconds",
        None,
        MetricType::Counter,
    )?
    .encode_counter::<NoLabelSet, _, u64>(&p.cpu_seconds, None)?;
    gauge(
        out,
        "process_resident_memory_bytes",
        "Resident memory size, in bytes",
        p.resident_bytes,
    )?;
    gauge(
        out,
        "process_virtual_memory_bytes",
        "Virtual memory size, in bytes",
        p.virtual_bytes,
    )?;
    gauge(
        out,
        "process_start_time_seconds",
        "Start time of the process since the Unix epoch, in seconds",
        p.start_time_seconds,
    )?;
    gauge(out, "process_open_fds", "Open file descriptors", p.open_fds)?;
    if let Some(max) = p.max_fds {
        gauge(
            out,
            "process_max_fds",
            "Most file descriptors the process may open",
            max,
        )?;
    }
    gauge(out, "process_threads", "Threads of the process", p.threads)
}

#[cfg(not(target_os = "linux"))]
fn process(_out: &mut DescriptorEncoder) -> std::fmt::Result {
    Ok(())
}

/// What `/proc/self` says about this process.
#[cfg(target_os = "linux")]
struct ProcessStats {
    cpu_seconds: f64,
    resident_bytes: u64,
    virtual_bytes: u64,
    start_time_seconds: f64,
    open_fds: u64,
    max_fds: Option<u64>,
    threads: u64,
}

#[cfg(target_os = "linux")]
impl ProcessStats {
    fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name (field 2) may hold spaces: count from after it.
        let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
        // Field n of proc(5) is fields[n - 3].
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        let ticks = rustix::param::clock_ticks_per_second() as f64;
        let page = rustix::param::page_size() as u64;
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok())?;
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|limits| {
                limits
                    .lines()
                    .find(|l| l.starts_with("Max open files"))?
                    .split_whitespace()
                    .nth(3)?
                    .parse()
                    .ok()
            });
        Some(ProcessStats {
            cpu_seconds: (field(14)? + field(15)?) as f64 / ticks,
            threads: field(20)?,
            start_time_seconds: boot as f64 + field(22)? as f64 / ticks,
            virtual_bytes: field(23)?,
            resident_bytes: field(24)? * page,
            open_fds: std::fs::read_dir("/proc/self/fd").ok()?.count() as u64,
            max_fds,
        })
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_os = "linux")]
    #[test]
    fn process_stats_are_read() {
        let p = super::ProcessStats::read().expect("/proc/self");
        assert!(p.resident_bytes > 0 && p.virtual_bytes >= p.resident_bytes);
        assert!(p.open_fds >= 3 && p.threads >= 1);
        assert!(p.start_time_seconds > 1_600_000_000.0);
    }
}
