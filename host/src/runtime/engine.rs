//! The one `wasmtime::Engine`: component model, epoch interruption, the
//! pooling allocator with copy-on-write memory images, and the thread that
//! advances the epoch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::manifest::MAX_MEMORY_MIB;

/// How often the epoch advances. A running guest is preempted (its future
/// yields to tokio) at this granularity, and wall-time limits are this exact.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Instances alive at once, across every plugin. A call that finds the pool
/// full fails with [`super::PluginError::Busy`] rather than queueing without
/// bound.
pub const MAX_CONCURRENT_INSTANCES: u32 = 64;

/// Most elements in one table (CPython's function table is the largest seen).
pub const MAX_TABLE_ELEMENTS: usize = 64 * 1024;

/// Per memory slot, at most how much of what the guest dirtied is reset in
/// place (and stays resident) rather than released to the kernel. A Rust
/// plugin touches about 1 MiB per call.
const KEEP_RESIDENT: usize = 2 << 20;

/// Idle slots kept ready for the plugin that used them last. With
/// [`KEEP_RESIDENT`] this bounds the memory idle plugins hold (32 MiB).
const WARM_SLOTS: u32 = 16;

/// Builds the engine and starts its epoch ticker; the ticker stops when the
/// returned guard is dropped.
pub fn build() -> wasmtime::Result<(Engine, EpochTicker)> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(MAX_CONCURRENT_INSTANCES)
        // A component made by componentize-py holds a dozen core instances
        // (CPython, libc, adapters); Rust components hold two or three.
        .max_core_instances_per_component(32)
        .total_core_instances(MAX_CONCURRENT_INSTANCES * 8)
        .max_memories_per_component(8)
        .total_memories(MAX_CONCURRENT_INSTANCES * 4)
        .max_tables_per_component(8)
        .total_tables(MAX_CONCURRENT_INSTANCES * 4)
        .table_elements(MAX_TABLE_ELEMENTS)
        .total_stacks(MAX_CONCURRENT_INSTANCES)
        // Per-plugin limits are enforced by each store's limiter; this is the
        // ceiling any manifest may ask for.
        .max_memory_size((MAX_MEMORY_MIB << 20) as usize)
        // A warm call's cost is mostly resetting the slot it used. Without
        // these, every call ends in `madvise` (a TLB shootdown across the
        // host's threads) and the next one page-faults its memory back in.
        // With them the pages the guest dirtied are reset in place: the
        // kernel's PAGEMAP_SCAN (Linux 6.7+; `Auto` falls back to resetting
        // the low addresses elsewhere) finds which, so the cost follows what
        // the guest touched, not the size kept.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT / 16)
        // What is still released goes back to the kernel in batches (one
        // `process_madvise` for several slots).
        .decommit_batch_size(16)
        .max_unused_warm_slots(WARM_SLOTS);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .memory_init_cow(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        // Deep recursion must trap, not take the host's stack with it.
        .max_wasm_stack(1 << 20)
        .async_stack_size(2 << 20);
    let engine = Engine::new(&config)?;
    let ticker = EpochTicker::start(&engine);
    Ok((engine, ticker))
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl EpochTicker {
    fn start(engine: &Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("keyward-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .expect("spawning the epoch thread");
        EpochTicker { stop, thread }
    }

    /// Whether the clock still ticks: without it no wall-time limit ends a
    /// plugin call.
    pub fn running(&self) -> bool {
        !self.thread.is_finished()
    }

    /// Stops the clock (the readiness test's fault; test builds only).
    #[cfg(feature = "fault-injection")]
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
