//! One call into one plugin: a fresh `Store` (nothing survives between
//! calls), the plugin's limits, its grants plus the call's own, and the
//! mapping of every way a call can end onto [`PluginError`].
//!
//! (Over 500 lines: the store, its limits, its WASI context and the mapping
//! of every ending of a call are one life cycle, read together.)

use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::p2::OutputStream;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use zeroize::Zeroizing;

use super::egress::Egress;
use super::error::{PluginError, ReturnedError};
use super::grants::CallGrants;
use super::manifest::Limits;
use super::redact::Redactor;
use crate::vault::Vault;

/// Everything a host import needs during one call. Lives in the `Store`.
pub(crate) struct CallState {
    wasi: Wasi,
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
    pub accessor: Arc<str>,
    /// Manifest grants plus the call's own.
    pub grants: CallGrants,
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
    /// Values the host binds to a reference for this call only, such as an
    /// operator's OAuth token (it lives sealed in `operator_oauth_tokens`,
    /// not in the secret table). Usable in `${SECRET:…}` at egress (each use
    /// logged), never handed to `secrets.reveal`.
    pub bound: Vec<(crate::names::SecretRef, crate::crypto::SecretBytes)>,
    /// Outbound requests made so far (each redirect hop counts).
    pub outbound_used: u32,
    /// `log.emit` bytes so far.
    pub log_used: u64,
    /// Set when the log limit stopped the call.
    pub log_exceeded: bool,
    /// A refresh call's journal: keep the forge's answer, or replay a kept
    /// one (runtime/journal.rs).
    pub journal: Option<super::journal::Journal>,
    /// The caller a forge call runs for (a resolver token dispatching an
    /// agent type): named in the reason of the call's egress rows.
    pub on_behalf: Option<crate::audit::Access>,
    /// Refused or invalid host calls so far.
    pub refusals: u32,
    /// Set when the refusal limit stopped the call.
    pub refusals_exceeded: bool,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi.ctx,
            table: &mut self.table,
        }
    }
}

/// Enforces the manifest's memory limit over the whole instance: every
/// linear memory and every table of every core instance inside the
/// component draws on one budget (a component made of several modules
/// cannot multiply its limit), and remembers that it did, so the trap that
/// follows a failed allocation is reported as what it is.
struct MemoryLimiter {
    limit: u64,
    /// Bytes of linear memory and table elements held now.
    used: u64,
    exceeded: bool,
}

/// What one table element is counted as: a function reference's size in
/// the host (a pointer and a type index), rounded up.
const TABLE_ELEMENT_BYTES: u64 = 16;

impl MemoryLimiter {
    /// Grows the instance's total from `current` to `desired` units of
    /// `unit` bytes, if that stays within the limit.
    fn grow(&mut self, current: usize, desired: usize, unit: u64) -> bool {
        let more = (desired.saturating_sub(current) as u64).saturating_mul(unit);
        let total = self.used.saturating_add(more);
        if total > self.limit {
            self.exceeded = true;
            return false;
        }
        self.used = total;
        true
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.grow(current, desired, 1))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > super::engine::MAX_TABLE_ELEMENTS {
            return Ok(false);
        }
        Ok(self.grow(current, desired, TABLE_ELEMENT_BYTES))
    }
}

/// The captured stdout and stderr of one call.
pub(crate) struct Stdio {
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

/// A WASI context with its stdout and stderr pointed at the call's buffers.
///
/// Contexts are reused from call to call of one plugin (see [`WasiPool`]):
/// building one seeds two random generators, twice, which was a twentieth of
/// a warm call. What a context holds is the same for every call (no
/// environment, arguments, preopened directory or sockets; clocks; random
/// generators); everything a guest can create lives in the `ResourceTable`,
/// and that is new for every call, as is the buffer its stdio writes to.
pub(crate) struct Wasi {
    ctx: WasiCtx,
    stdout: Capture,
    stderr: Capture,
    /// False for a context with a preopened directory: it is for one
    /// migrator run only and never goes back to the pool.
    pooled: bool,
}

/// Where a migrator run's source folder appears in the guest.
pub(crate) const SOURCE_GUEST_PATH: &str = "/source";

impl Wasi {
    fn new() -> Self {
        Self::build(None).expect("a context without a preopened directory always builds")
    }

    /// No environment, no arguments, no sockets: only clocks, random, the
    /// captured stdio and, for a migrator run over a folder, that one
    /// folder at [`SOURCE_GUEST_PATH`] (the sandbox keeps every path,
    /// symlinks included, inside it).
    fn build(source: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let (stdout, stderr) = (Capture::default(), Capture::default());
        let mut builder = WasiCtx::builder();
        builder
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if let Some(dir) = source {
            // A migrator run reads and renames thousands of small local
            // files: doing each operation on the calling thread instead of
            // a `spawn_blocking` round trip made a 10,000-file run's reads
            // several times faster. Only these one-run contexts do it.
            builder.allow_blocking_current_thread(true);
            builder
                .preopened_dir(dir, SOURCE_GUEST_PATH, wasmtime_wasi::FsPerms::ReadWrite)
                .map_err(|e| {
                    anyhow::anyhow!("cannot open the source folder {}: {e}", dir.display())
                })?;
        }
        Ok(Wasi {
            ctx: builder.build(),
            stdout,
            stderr,
            pooled: source.is_none(),
        })
    }
}

/// A plugin's idle WASI contexts.
#[derive(Default)]
pub(crate) struct WasiPool(Mutex<Vec<Wasi>>);

/// Idle contexts kept per plugin; more are dropped.
const IDLE_WASI: usize = 16;

impl WasiPool {
    fn take(&self) -> Wasi {
        let idle = self.0.lock().unwrap_or_else(PoisonError::into_inner).pop();
        idle.unwrap_or_else(Wasi::new)
    }

    fn put(&self, wasi: Wasi) {
        if !wasi.pooled {
            return;
        }
        let mut idle = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < IDLE_WASI {
            idle.push(wasi);
        }
    }
}

/// Where an idle context's stdout and stderr point: a buffer that takes
/// nothing.
static DETACHED: LazyLock<MemoryOutputPipe> = LazyLock::new(|| MemoryOutputPipe::new(0));

/// stdout or stderr of a [`Wasi`]: writes go to the buffer of the call
/// that holds the context now.
#[derive(Clone)]
struct Capture(Arc<Mutex<MemoryOutputPipe>>);

impl Default for Capture {
    fn default() -> Self {
        Capture(Arc::new(Mutex::new(DETACHED.clone())))
    }
}

impl Capture {
    fn point_at(&self, pipe: &MemoryOutputPipe) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = pipe.clone();
    }

    fn current(&self) -> MemoryOutputPipe {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.current())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.current())
    }
}

/// Builds the store for one call: a WASI context from `pool`, or, for a
/// migrator call with a `source` folder, one of its own with the folder
/// preopened.
pub(crate) fn new_store(
    engine: &wasmtime::Engine,
    call: CallCtx,
    pool: &WasiPool,
    source: Option<&std::path::Path>,
) -> anyhow::Result<(Store<CallState>, Stdio, Instant)> {
    let wasi = match source {
        None => pool.take(),
        Some(dir) => Wasi::build(Some(dir))?,
    };
    Ok(store_with(engine, call, wasi))
}

fn store_with(
    engine: &wasmtime::Engine,
    call: CallCtx,
    wasi: Wasi,
) -> (Store<CallState>, Stdio, Instant) {
    let cap = usize::try_from(call.limits.log_bytes).unwrap_or(usize::MAX);
    let stdio = Stdio {
        stdout: MemoryOutputPipe::new(cap),
        stderr: MemoryOutputPipe::new(cap),
    };
    wasi.stdout.point_at(&stdio.stdout);
    wasi.stderr.point_at(&stdio.stderr);
    let limiter = MemoryLimiter {
        limit: call.limits.memory_bytes,
        used: 0,
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
/// `E` is the error type of the export: the host's `error` or the forge's
/// `forge-error`.
pub(crate) type Outcome<T, E = super::bindings::GuestError> =
    Option<wasmtime::Result<Result<T, E>>>;

/// Runs `work` (instantiate + one export) within the wall-time limit. The
/// epoch callback stops a guest that computes past it; this timeout stops
/// one that waits on the host past it.
pub(crate) async fn bounded<T, E>(
    deadline: Instant,
    work: impl Future<Output = wasmtime::Result<Result<T, E>>>,
) -> Outcome<T, E> {
    let grace = Duration::from_millis(50);
    // Boxed: instantiation and call futures are kilobytes, and every poll
    // through the timeout would otherwise move them.
    tokio::time::timeout_at((deadline + grace).into(), Box::pin(work))
        .await
        .ok()
}

/// Maps every way a call can end onto a [`PluginError`], and sends the
/// captured stdio to the log, redacted. The store is dropped here: nothing
/// of the call survives it but its WASI context, which goes back to `pool`.
pub(crate) fn finish<T, E: Into<ReturnedError>>(
    store: Store<CallState>,
    stdio: Stdio,
    outcome: Outcome<T, E>,
    pool: &WasiPool,
) -> Result<T, PluginError> {
    let result = conclude(&store, &stdio, outcome);
    let wasi = store.into_data().wasi;
    // The call's buffers are let go of with the call.
    wasi.stdout.point_at(&DETACHED);
    wasi.stderr.point_at(&DETACHED);
    pool.put(wasi);
    result
}

fn conclude<T, E: Into<ReturnedError>>(
    store: &Store<CallState>,
    stdio: &Stdio,
    outcome: Outcome<T, E>,
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
            error: redact_returned(guest.into(), &state.call.redactor),
        }),
        Some(Err(trap)) => Err(classify(trap, state, &plugin, &limits, stdio)),
    }
}

/// Redacts first, then clips: clipping first could cut a value in two
/// and let its first part through.
fn redact_returned(e: ReturnedError, r: &Redactor) -> ReturnedError {
    e.map_message(|m| super::error::clip(&r.redact_str(&m)))
}

fn classify(
    trap: wasmtime::Error,
    state: &CallState,
    plugin: &str,
    limits: &Limits,
    stdio: &Stdio,
) -> PluginError {
    let plugin = plugin.to_owned();
    if let Some(down) = trap.downcast_ref::<super::error::StoreUnavailable>() {
        tracing::warn!(%plugin, error = %down, "plugin call stopped: the store is unavailable");
        return PluginError::Unavailable(down.0.clone());
    }
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
    if state.call.refusals_exceeded {
        return PluginError::RefusalLimit {
            plugin,
            limit: limits.refusals,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn write(capture: &Capture, text: &str) {
        let mut stream = capture.p2_stream();
        stream
            .write(bytes::Bytes::copy_from_slice(text.as_bytes()))
            .expect("write");
    }

    #[test]
    fn a_reused_context_writes_only_to_the_current_calls_buffer() {
        let pool = WasiPool::default();
        let first = MemoryOutputPipe::new(1024);
        let wasi = pool.take();
        wasi.stdout.point_at(&first);
        write(&wasi.stdout, "first call");
        wasi.stdout.point_at(&DETACHED);
        pool.put(wasi);

        let second = MemoryOutputPipe::new(1024);
        let wasi = pool.take();
        assert!(
            pool.0.lock().expect("pool").is_empty(),
            "the idle context was reused"
        );
        wasi.stdout.point_at(&second);
        write(&wasi.stdout, "second call");
        assert_eq!(&first.contents()[..], b"first call");
        assert_eq!(&second.contents()[..], b"second call");
    }

    #[test]
    fn the_memory_limit_holds_across_all_memories_and_tables_of_an_instance() {
        let mut limiter = MemoryLimiter {
            limit: 64 << 20,
            used: 0,
            exceeded: false,
        };
        // Two memories of 30 MiB each fit; a third of 30 MiB does not,
        // though each alone is far below the limit.
        assert!(limiter.memory_growing(0, 30 << 20, None).expect("ok"));
        assert!(limiter.memory_growing(0, 30 << 20, None).expect("ok"));
        assert!(!limiter.memory_growing(0, 30 << 20, None).expect("ok"));
        assert!(limiter.exceeded);
        // Growing an existing memory counts only what is added.
        let mut limiter = MemoryLimiter {
            limit: 64 << 20,
            used: 0,
            exceeded: false,
        };
        assert!(limiter.memory_growing(0, 1 << 20, None).expect("ok"));
        assert!(limiter
            .memory_growing(1 << 20, (63 << 20) + (512 << 10), None)
            .expect("ok"));
        // Tables draw on the same budget: 60,000 elements fit the table
        // ceiling but not the half MiB left.
        assert!(!limiter.table_growing(0, 60_000, None).expect("ok"));
    }

    #[test]
    fn an_idle_context_takes_no_output() {
        let capture = Capture::default();
        let mut stream = capture.p2_stream();
        assert!(stream.check_write().is_err(), "a detached stream is closed");
    }
}
