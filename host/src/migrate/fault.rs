//! Fault injection for the crash tests: with `KEYWARD_FAULT_KILL_AT=N` set,
//! the process sends itself SIGKILL at the N-th checkpoint of a migration
//! (counted from 1 across the process). Checkpoints sit between every two
//! steps whose order matters: before and after each write transaction, each
//! retire call and each retire mark. Unset (always, outside tests) this
//! costs one load of an atomic per checkpoint.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable.
pub const KILL_AT_VAR: &str = "KEYWARD_FAULT_KILL_AT";

static PASSED: AtomicU64 = AtomicU64::new(0);

fn kill_at() -> Option<u64> {
    static AT: OnceLock<Option<u64>> = OnceLock::new();
    *AT.get_or_init(|| std::env::var(KILL_AT_VAR).ok()?.parse().ok())
}

/// One point at which a crash must leave a re-runnable state.
pub fn checkpoint(label: &str) {
    let Some(at) = kill_at() else { return };
    let n = PASSED.fetch_add(1, Ordering::SeqCst) + 1;
    if n == at {
        eprintln!("keyward: fault injection: SIGKILL at checkpoint {n} ({label})");
        // A real SIGKILL, not an exit: no destructor, flush or rollback runs.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &std::process::id().to_string()])
            .status();
        // The signal is on its way; never carry on past the checkpoint.
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
}
