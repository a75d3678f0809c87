//! Latency histograms that cost a request no mutex: fixed buckets of
//! atomics, and families keyed by two labels behind a read-write lock that
//! readers share (it is written once per new series). `/metrics`
//! (http/metrics.rs) renders them with prometheus-client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// Bucket bounds, in seconds, of every duration histogram: 0.5 ms to 10 s.
pub const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram of fixed buckets: one atomic add for the bucket and one for
/// the sum per observation.
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative); the last counts what is above every bound.
    counts: Box<[AtomicU64]>,
    /// The sum of the observations, as `f64` bits.
    sum: AtomicU64,
}

impl Default for Histogram {
    /// A duration histogram ([`SECONDS`]).
    fn default() -> Histogram {
        Histogram::new(SECONDS)
    }
}

impl Histogram {
    /// An empty histogram with these upper bounds (ascending).
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Counts one observation.
    pub fn observe(&self, value: f64) {
        let bucket = self
            .bounds
            .iter()
            .position(|&bound| value <= bound)
            .unwrap_or(self.bounds.len());
        if let Some(count) = self.counts.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        // Lock-free: retried only when another observation landed between
        // the load and the store.
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }

    /// The sum, the count and each bucket's own count (`+Inf` last), as
    /// prometheus-client's encoder takes them (it makes them cumulative).
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(self.counts.len());
        for (i, count) in self.counts.iter().enumerate() {
            let n = count.load(Ordering::Relaxed);
            total += n;
            let bound = self.bounds.get(i).copied().unwrap_or(f64::INFINITY);
            buckets.push((bound, n));
        }
        (
            f64::from_bits(self.sum.load(Ordering::Relaxed)),
            total,
            buckets,
        )
    }
}

/// The series of a [`Family`]: by the first label, each second label's.
type Series<L> = HashMap<Box<str>, Vec<(L, Arc<Histogram>)>>;

/// Histograms by two labels: a text one (a route, a plugin) and a small
/// copyable one (a status, an outcome).
pub struct Family<L> {
    bounds: &'static [f64],
    series: RwLock<Series<L>>,
}

impl<L: Copy + Eq> Default for Family<L> {
    fn default() -> Family<L> {
        Family {
            bounds: SECONDS,
            series: RwLock::default(),
        }
    }
}

impl<L: Copy + Eq + Ord> Family<L> {
    /// Counts `value` in the series (`first`, `second`), made on first use.
    pub fn observe(&self, first: &str, second: L, value: f64) {
        {
            let series = self.series.read().unwrap_or_else(PoisonError::into_inner);
            if let Some((_, h)) = series
                .get(first)
                .and_then(|all| all.iter().find(|(l, _)| *l == second))
            {
                h.observe(value);
                return;
            }
        }
        let mut series = self.series.write().unwrap_or_else(PoisonError::into_inner);
        let all = series.entry(first.into()).or_default();
        match all.iter().find(|(l, _)| *l == second) {
            Some((_, h)) => h.observe(value),
            None => {
                let h = Arc::new(Histogram::new(self.bounds));
                h.observe(value);
                all.push((second, h));
            }
        }
    }

    /// Every series, sorted by its labels.
    pub fn collect(&self) -> Vec<(String, L, Arc<Histogram>)> {
        let series = self.series.read().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<(String, L, Arc<Histogram>)> = series
            .iter()
            .flat_map(|(first, rest)| {
                rest.iter()
                    .map(move |(second, h)| (first.to_string(), *second, h.clone()))
            })
            .collect();
        all.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_the_sum_adds_up() {
        let h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.0, 1.5, 3.0] {
            h.observe(v);
        }
        let (sum, count, buckets) = h.snapshot();
        assert_eq!((sum, count), (6.0, 4));
        assert_eq!(buckets, [(1.0, 2), (2.0, 1), (f64::INFINITY, 1)]);
    }

    #[test]
    fn a_family_makes_each_series_once() {
        let f: Family<u16> = Family::default();
        f.observe("/b", 200, 0.1);
        f.observe("/a", 500, 0.2);
        f.observe("/a", 200, 0.3);
        f.observe("/a", 200, 0.4);
        let got: Vec<(String, u16, u64)> = f
            .collect()
            .into_iter()
            .map(|(r, s, h)| (r, s, h.snapshot().1))
            .collect();
        assert_eq!(
            got,
            [
                ("/a".to_owned(), 200, 2),
                ("/a".to_owned(), 500, 1),
                ("/b".to_owned(), 200, 1)
            ]
        );
    }
}
