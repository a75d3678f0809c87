//! One call into one plugin: a fresh `Store` (nothing survives between
//! calls), the plugin's limits, its grants plus the call's own, and the
//! mapping of every way a call can end onto [`PluginError`].

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use zeroize::Zeroizing;

use super::egress::Egress;
use super::error::{PluginError, ReturnedError};
use super::grants::Grants;
use super::manifest::Limits;
use super::redact::Redactor;
use crate::vault::Vault;

/// Everything a host import needs during one call. Lives in the `Store`.
pub(crate) struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
    /// The call's own context, used by the host interfaces.
    pub(crate) call: CallCtx,
}

/// What the host interfaces see of a call.
pub(crate) struct CallCtx {
    /// The plugin's name.
    pub plugin: Arc<str>,
    /// `plugin:<name>`, the accessor in the access log.
    pub accessor: String,
    /// Manifest grants plus the call's own.
    pub grants: Grants,
    /// The plugin's limits.
    pub limits: Limits,
    /// The store and its access log.
    pub vault: Vault,
    /// The HTTP client for `outbound`.
    pub egress: Egress,
    /// Values handed to the plugin or sent for it: redacted from its stdout,
    /// stderr and log lines, and from error messages.
    pub redactor: Redactor,
    /// Values the host expanded into outbound requests: also redacted from
    /// the responses handed back, so an echoing server cannot reveal them.
    pub expanded: Redactor,
    /// Outbound requests made so far (each redirect hop counts).
    pub outbound_used: u32,
    /// `log.emit` bytes so far.
    pub log_used: u64,
    /// Set when the log limit stopped the call.
    pub log_exceeded: bool,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Enforces the manifest's memory limit and remembers that it did, so the
/// trap that follows a failed allocation is reported as what it is.
struct MemoryLimiter {
    limit: u64,
    exceeded: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.limit {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= super::engine::MAX_TABLE_ELEMENTS)
    }
}

/// The captured stdout and stderr of one call.
pub(crate) struct Stdio {
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

/// Builds the store for one call.
pub(crate) fn new_store(
    engine: &wasmtime::Engine,
    call: CallCtx,
) -> (Store<CallState>, Stdio, Instant) {
    let cap = usize::try_from(call.limits.log_bytes).unwrap_or(usize::MAX);
    let stdio = Stdio {
        stdout: MemoryOutputPipe::new(cap),
        stderr: MemoryOutputPipe::new(cap),
    };
    // No environment, no arguments, no preopened directory, no sockets:
    // only clocks, random and the captured stdio.
    let wasi = WasiCtx::builder()
        .stdout(stdio.stdout.clone())
        .stderr(stdio.stderr.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build();
    let limiter = MemoryLimiter {
        limit: call.limits.memory_bytes,
        exceeded: false,
    };
    let deadline = Instant::now() + call.limits.wall_time;
    let state = CallState {
        wasi,
        table: ResourceTable::new(),
        limiter,
        call,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    store.set_epoch_deadline(1);
    // Every tick: past the deadline, stop; otherwise let other tasks run.
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
    (store, stdio, deadline)
}

/// What a bounded call produced: `None` if the wall-time limit elapsed
/// while the guest waited on the host.
pub(crate) type Outcome<T> = Option<wasmtime::Result<Result<T, super::bindings::GuestError>>>;

/// Runs `work` (instantiate + one export) within the wall-time limit. The
/// epoch callback stops a guest that computes past it; this timeout stops
/// one that waits on the host past it.
pub(crate) async fn bounded<T>(
    deadline: Instant,
    work: impl Future<Output = wasmtime::Result<Result<T, super::bindings::GuestError>>>,
) -> Outcome<T> {
    let grace = Duration::from_millis(50);
    tokio::time::timeout_at((deadline + grace).into(), work)
        .await
        .ok()
}

/// Maps every way a call can end onto a [`PluginError`], and sends the
/// captured stdio to the log, redacted. The store is dropped here: nothing
/// of the call survives it.
pub(crate) fn finish<T>(
    store: Store<CallState>,
    stdio: Stdio,
    outcome: Outcome<T>,
) -> Result<T, PluginError> {
    let state = store.data();
    let plugin = state.call.plugin.clone();
    let limits = state.call.limits.clone();
    stdio.flush(&plugin, &state.call.redactor);
    match outcome {
        None => Err(PluginError::Timeout {
            plugin: plugin.to_string(),
            limit_ms: limits.wall_time.as_millis(),
        }),
        Some(Ok(Ok(value))) => Ok(value),
        Some(Ok(Err(guest))) => Err(PluginError::Returned {
            plugin: plugin.to_string(),
            error: redact_returned(ReturnedError::from(guest), &state.call.redactor),
        }),
        Some(Err(trap)) => Err(classify(trap, state, &plugin, &limits, &stdio)),
    }
}

fn redact_returned(e: ReturnedError, r: &Redactor) -> ReturnedError {
    let f = |m: String| r.redact_str(&m);
    match e {
        ReturnedError::Denied(m) => ReturnedError::Denied(f(m)),
        ReturnedError::NotFound(m) => ReturnedError::NotFound(f(m)),
        ReturnedError::Invalid(m) => ReturnedError::Invalid(f(m)),
        ReturnedError::Limit(m) => ReturnedError::Limit(f(m)),
        ReturnedError::Upstream(m) => ReturnedError::Upstream(f(m)),
    }
}

fn classify(
    trap: wasmtime::Error,
    state: &CallState,
    plugin: &str,
    limits: &Limits,
    stdio: &Stdio,
) -> PluginError {
    let plugin = plugin.to_owned();
    if let Some(busy) = trap.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
        tracing::warn!(%plugin, error = %busy, "plugin instance pool exhausted");
        return PluginError::Busy;
    }
    if state.limiter.exceeded {
        return PluginError::MemoryLimit {
            plugin,
            limit_mib: limits.memory_bytes >> 20,
        };
    }
    if state.call.log_exceeded || stdio.full(limits.log_bytes) {
        return PluginError::LogLimit {
            plugin,
            limit: limits.log_bytes,
        };
    }
    match trap.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => {
            return PluginError::Timeout {
                plugin,
                limit_ms: limits.wall_time.as_millis(),
            }
        }
        Some(Trap::StackOverflow) => {
            return PluginError::Crashed {
                plugin,
                reason: "stack overflow (too deep recursion)".into(),
            }
        }
        _ => {}
    }
    // The first line of the trap says what happened; the rest is a wasm
    // backtrace that helps plugin authors, so it goes to the log only.
    let text = state.call.redactor.redact_str(&format!("{trap:?}"));
    tracing::debug!(%plugin, trap = %text, "plugin trapped");
    let reason = if let Some(t) = trap.downcast_ref::<Trap>() {
        match stdio.panic_message() {
            Some(panic) => format!("{t}: {}", state.call.redactor.redact_str(&panic)),
            None => t.to_string(),
        }
    } else {
        state.call.redactor.redact_str(&trap.to_string())
    };
    PluginError::Crashed {
        plugin,
        reason: super::error::clip(reason.trim()),
    }
}

impl Stdio {
    fn full(&self, cap: u64) -> bool {
        cap > 0
            && (self.stdout.contents().len() as u64 >= cap
                || self.stderr.contents().len() as u64 >= cap)
    }

    /// A Rust panic message from stderr ("panicked at FILE: MESSAGE"), if
    /// the guest printed one before it trapped.
    fn panic_message(&self) -> Option<String> {
        let bytes = self.stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        let start = text.rfind("panicked at")?;
        let message: Vec<&str> = text[start..]
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("note: run with"))
            .collect();
        Some(message.join(" "))
    }

    /// Sends what the guest printed to the host's log, one event per line,
    /// with revealed values redacted and control characters escaped.
    fn flush(&self, plugin: &str, redactor: &Redactor) {
        for (stream, pipe) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let bytes = pipe.contents();
            if bytes.is_empty() {
                continue;
            }
            let clean = Zeroizing::new(redactor.redact(&bytes));
            for line in String::from_utf8_lossy(&clean).lines() {
                tracing::info!(target: "keyward::plugin", %plugin, stream, "{}", super::redact::escape_controls(line));
            }
        }
    }
}
