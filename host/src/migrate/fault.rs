//! Fault injection for the crash tests, compiled in only with the cargo
//! feature `fault-injection` (scripts/test turns it on; release builds never
//! do). With it, `KEYWARD_FAULT_KILL_AT=N` makes the process send itself
//! SIGKILL at the N-th checkpoint of a migration (counted from 1 across the
//! process). Checkpoints sit between every two steps whose order matters:
//! before and after each write transaction, each retire call and each
//! retire mark. `KEYWARD_FAULT_KILL_AT=LABEL` kills at the named
//! [`kill_point`] LABEL instead (a forge refresh's `refresh-answered`).
//! Without the feature both are empty inline functions and the variable
//! means nothing.

/// The environment variable (read only by builds with `fault-injection`).
pub const KILL_AT_VAR: &str = "KEYWARD_FAULT_KILL_AT";

/// Whether this build has the hook (tests that need it say so when not).
pub const ENABLED: bool = cfg!(feature = "fault-injection");

/// One point at which a crash must leave a re-runnable state.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn checkpoint(_label: &str) {}

/// One point at which a crash must leave a re-runnable state.
#[cfg(feature = "fault-injection")]
pub fn checkpoint(label: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    static PASSED: AtomicU64 = AtomicU64::new(0);
    static AT: OnceLock<Option<u64>> = OnceLock::new();
    let kill_at = *AT.get_or_init(|| std::env::var(KILL_AT_VAR).ok()?.parse().ok());
    let Some(at) = kill_at else { return };
    let n = PASSED.fetch_add(1, Ordering::SeqCst) + 1;
    if n == at {
        kill(&format!("checkpoint {n} ({label})"));
    }
}

/// A named point outside migrations (`KEYWARD_FAULT_KILL_AT=<label>`, e.g.
/// `refresh-answered`) at which a crash must lose nothing. Numbered
/// migration checkpoints do not count these.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn kill_point(_label: &str) {}

/// A named point outside migrations (`KEYWARD_FAULT_KILL_AT=<label>`, e.g.
/// `refresh-answered`) at which a crash must lose nothing. Numbered
/// migration checkpoints do not count these.
#[cfg(feature = "fault-injection")]
pub fn kill_point(label: &str) {
    if std::env::var(KILL_AT_VAR).is_ok_and(|at| at == label) {
        kill(label);
    }
}

#[cfg(feature = "fault-injection")]
fn kill(what: &str) -> ! {
    eprintln!("keyward: fault injection: SIGKILL at {what}");
    // A real SIGKILL, not an exit: no destructor, flush or rollback runs.
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status();
    // The signal is on its way; never carry on past the checkpoint.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}
