//! A lock-free latency histogram with log-linear buckets (4 per power of two, in µs).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const SUB: usize = 4;
const POWERS: usize = 32;
pub(crate) const BUCKETS: usize = SUB * POWERS;

/// Latency histogram: ~19 % relative bucket width from 1 µs to over an hour.
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_us: AtomicU64,
    max_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
        }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count())
            .finish_non_exhaustive()
    }
}

fn index(us: u64) -> usize {
    if us < SUB as u64 {
        return us as usize;
    }
    let p = 63 - us.leading_zeros() as usize; // floor(log2)
    let sub = ((us >> (p - 2)) & 0b11) as usize; // next two bits
    ((p - 1) * SUB + sub).min(BUCKETS - 1)
}

/// Upper bound (µs) of bucket `i`.
fn upper(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let p = i / SUB + 1;
    let sub = (i % SUB) as u64;
    ((4 + sub + 1) << (p - 2)) - 1
}

impl Histogram {
    /// Records one observation.
    pub fn record(&self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        self.buckets[index(us)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Sum of observations in µs.
    pub fn sum_us(&self) -> u64 {
        self.sum_us.load(Ordering::Relaxed)
    }

    /// Largest observation in µs.
    pub fn max_us(&self) -> u64 {
        self.max_us.load(Ordering::Relaxed)
    }

    /// The `q` quantile (0..=1) in µs, as the upper bound of its bucket (capped at the max).
    pub fn quantile_us(&self, q: f64) -> u64 {
        let n = self.count();
        if n == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                return upper(i).min(self.max_us());
            }
        }
        self.max_us()
    }

    /// Non-empty buckets as (index, count).
    pub(crate) fn nonzero(&self) -> Vec<(u16, u64)> {
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, b)| (i as u16, b.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Empties the histogram, returning its non-empty buckets, sum and max (µs).
    pub(crate) fn take(&self) -> (Vec<(u16, u64)>, u64, u64) {
        let buckets = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, b)| (i as u16, b.swap(0, Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        self.count.store(0, Ordering::Relaxed);
        (
            buckets,
            self.sum_us.swap(0, Ordering::Relaxed),
            self.max_us.swap(0, Ordering::Relaxed),
        )
    }

    /// Cumulative counts at each of `bounds_us` (for Prometheus `le` buckets).
    pub fn cumulative(&self, bounds_us: &[u64]) -> Vec<u64> {
        let mut out = vec![0; bounds_us.len()];
        for (i, b) in self.buckets.iter().enumerate() {
            let c = b.load(Ordering::Relaxed);
            if c == 0 {
                continue;
            }
            let hi = upper(i);
            for (j, bound) in bounds_us.iter().enumerate() {
                if hi <= *bound {
                    out[j] += c;
                }
            }
        }
        out
    }
}

/// The `q` quantile (µs) of plain bucket counts (as in [`Histogram::quantile_us`]).
pub(crate) fn quantile_of(counts: &[u64], max_us: u64, q: f64) -> u64 {
    let n: u64 = counts.iter().sum();
    if n == 0 {
        return 0;
    }
    let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
    let mut seen = 0;
    for (i, c) in counts.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return upper(i).min(max_us);
        }
    }
    max_us
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_cover_values() {
        for us in [0u64, 1, 3, 4, 5, 7, 8, 100, 1000, 12_345, 10_000_000] {
            let i = index(us);
            assert!(upper(i) >= us, "{us} -> bucket {i} upper {}", upper(i));
            if i > 0 {
                assert!(upper(i - 1) < us, "{us} belongs higher");
            }
        }
    }

    #[test]
    fn quantiles_are_close() {
        let h = Histogram::default();
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.quantile_us(0.5) as f64;
        let p99 = h.quantile_us(0.99) as f64;
        assert!((p50 - 50_000.0).abs() / 50_000.0 < 0.2, "{p50}");
        assert!((p99 - 99_000.0).abs() / 99_000.0 < 0.2, "{p99}");
        assert_eq!(h.quantile_us(1.0), 100_000);
    }
}
