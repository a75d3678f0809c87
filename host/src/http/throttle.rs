//! Limits on what callers nobody has authenticated yet can start. The
//! operator sign-in (`/auth/{forge}/login`, `/callback`) runs plugin calls
//! and writes an `oauth_pending` row before anyone is known, so a flood of
//! it must not take the instance pool from operators and agents, nor fill
//! the table. Three limits, defaults in docs/http-api.md ("Sign-in limits"):
//! a token bucket on sign-in starts (per host), a cap on live pending rows
//! (counted in the database, so across hosts), and a semaphore that lets
//! unauthenticated plugin calls hold only a share of the pool.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Sign-in starts one host accepts at once before the rate applies.
pub const SIGN_IN_BURST: u32 = 20;
/// Sign-in starts per second one host accepts, sustained.
pub const SIGN_IN_PER_SECOND: u32 = 2;
/// Live `oauth_pending` rows (started, not yet expired) across all hosts.
pub const MAX_PENDING_SIGN_INS: u64 = 1000;
/// Plugin calls unauthenticated requests may run at once on one host: a
/// quarter of the runtime's pool of 64 instances
/// (`runtime::engine::MAX_CONCURRENT_INSTANCES`), so three quarters stay
/// with authenticated callers whatever a flood does.
pub const UNAUTHENTICATED_CALLS: u32 = 16;

/// The limits of one host's sign-in (tests make them small).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SignInLimits {
    /// Starts accepted at once (the bucket's size).
    pub burst: u32,
    /// Starts per second, sustained (the bucket's refill).
    pub per_second: u32,
    /// Live pending sign-ins across all hosts.
    pub max_pending: u64,
    /// Plugin calls unauthenticated requests may run at once.
    pub concurrent_calls: u32,
}

impl Default for SignInLimits {
    fn default() -> Self {
        SignInLimits {
            burst: SIGN_IN_BURST,
            per_second: SIGN_IN_PER_SECOND,
            max_pending: MAX_PENDING_SIGN_INS,
            concurrent_calls: UNAUTHENTICATED_CALLS,
        }
    }
}

/// One host's sign-in gate: the bucket and the share of the pool.
pub struct SignInGate {
    limits: SignInLimits,
    bucket: Mutex<Bucket>,
    calls: Arc<Semaphore>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl SignInGate {
    /// A gate with a full bucket.
    pub fn new(limits: SignInLimits) -> SignInGate {
        SignInGate {
            limits,
            bucket: Mutex::new(Bucket {
                tokens: f64::from(limits.burst),
                at: Instant::now(),
            }),
            calls: Arc::new(Semaphore::new(limits.concurrent_calls as usize)),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &SignInLimits {
        &self.limits
    }

    /// Takes one sign-in start from the bucket; past the rate, how many
    /// seconds until one is free.
    pub fn start(&self) -> Result<(), u32> {
        let rate = f64::from(self.limits.per_second);
        let mut b = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let refill = now.duration_since(b.at).as_secs_f64() * rate;
        b.tokens = (b.tokens + refill).min(f64::from(self.limits.burst));
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        if rate <= 0.0 {
            return Err(60);
        }
        let wait = (1.0 - b.tokens) / rate;
        Err((wait.ceil() as u32).max(1))
    }

    /// A slot for one unauthenticated request's plugin calls, held until
    /// the permit drops; none when the share is in use.
    pub fn call_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.calls.clone().try_acquire_owned().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_gives_its_burst_then_asks_to_wait() {
        let gate = SignInGate::new(SignInLimits {
            burst: 3,
            per_second: 1,
            ..SignInLimits::default()
        });
        for _ in 0..3 {
            assert_eq!(gate.start(), Ok(()));
        }
        let wait = gate.start().expect_err("past the burst");
        assert!((1..=2).contains(&wait), "{wait}");
    }

    #[test]
    fn the_share_of_the_pool_is_bounded() {
        let gate = SignInGate::new(SignInLimits {
            concurrent_calls: 2,
            ..SignInLimits::default()
        });
        let a = gate.call_slot().expect("one");
        let _b = gate.call_slot().expect("two");
        assert!(gate.call_slot().is_none());
        drop(a);
        assert!(gate.call_slot().is_some());
    }
}
