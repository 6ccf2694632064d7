//! The in-memory backend: a sliding-window counter on pingora-limits' count-min estimator.
//!
//! # Semantics
//!
//! Time is cut into fixed windows of `W` seconds counted from the limiter's creation. A key's
//! load at time `t`, a fraction `f` into the current window, is estimated as
//!
//! ```text
//! estimate = previous_window_count × (1 − f) + current_window_count
//! ```
//!
//! (the sliding-window counter of Cloudflare's "counting things" post; pingora-limits'
//! `Rate` computes the same blend). A request is admitted when `estimate + 1 ≤ limit`. At a
//! window edge the previous window still weighs fully, so a client that spent its budget
//! just before the edge cannot spend it again just after: no 2× burst.
//!
//! # Why not `pingora_limits::rate::Rate` itself
//!
//! `Rate` rotates its windows lazily from `std::time::Instant` and asserts on a race at the
//! first rollover (see DESIGN.md §6). This module keeps pingora's lock-free
//! [`Estimator`] (a count-min sketch of atomics) and does its own rotation:
//!
//! - windows are aligned to a grid (`elapsed / W`), read from `tokio::time::Instant` so tests
//!   can pause time;
//! - exactly one caller rotates (a CAS on a flag), clearing the stale estimator *before*
//!   publishing the new window; callers that arrive meanwhile keep using the previous window
//!   with its count weighted fully — conservative, never lenient;
//! - nothing panics.
//!
//! # Exactness under concurrency
//!
//! A count-min sketch returns the minimum of `h` counters. Two concurrent requests for the
//! same key can reach the rows in different orders, and each can then see the other in a row
//! that is not its minimum — both admitted for one free slot. To rule that out the
//! increment runs under one of [`GATES`] tiny striped mutexes chosen by the key's hash: the
//! same key's increments are then ordered identically in every row, the sketch behaves like a
//! single atomic counter per key (plus collision noise, which only over-counts), and a window
//! never admits more than `limit`. A rejected request's increment is undone, so hammering
//! while limited does not extend the penalty.
//!
//! # Memory
//!
//! Two estimators of `4 × slots` `AtomicIsize` each, with `slots` the next power of two ≥
//! `max_keys`: `64 × slots` bytes, whatever the number of distinct keys. Stale keys cost
//! nothing. Keys are never under-counted; a key is over-counted (limited early) when another
//! active key shares all four of its counters, which happens to about `(1 − e^(−n/slots))⁴`
//! of keys with `n` keys active in one window: 0.24 % at a quarter of `max_keys`, 16 % at
//! `max_keys`. Size `max_keys` to about 4× the callers active per window.

use crate::decision::Decision;
use pingora_limits::estimator::Estimator;
use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Rows of the count-min sketch.
const HASHES: usize = 4;
/// Striped gates serialising increments of keys that share a stripe.
pub(crate) const GATES: usize = 1024;

/// Sliding-window counters for any number of keys in bounded memory.
pub(crate) struct SlidingWindow {
    windows: [Estimator; 2],
    /// Index of the current window since `start`.
    epoch: AtomicU64,
    rotating: AtomicBool,
    start: Instant,
    window_nanos: u64,
    window: Duration,
    slots: usize,
    gates: Box<[Mutex<()>]>,
    hasher: ahash::RandomState,
}

impl std::fmt::Debug for SlidingWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlidingWindow")
            .field("window", &self.window)
            .field("slots", &self.slots)
            .field("epoch", &self.epoch.load(Ordering::Relaxed))
            .finish()
    }
}

impl SlidingWindow {
    /// Counters for windows of `window`, sized for about `max_keys` keys active per window.
    pub(crate) fn new(window: Duration, max_keys: usize) -> Self {
        let slots = max_keys.clamp(1024, 1 << 28).next_power_of_two();
        Self {
            windows: [Estimator::new(HASHES, slots), Estimator::new(HASHES, slots)],
            epoch: AtomicU64::new(0),
            rotating: AtomicBool::new(false),
            start: Instant::now(),
            window_nanos: window.as_nanos().max(1) as u64,
            window,
            slots,
            gates: (0..GATES).map(|_| Mutex::new(())).collect(),
            hasher: ahash::RandomState::new(),
        }
    }

    /// Bytes held by the counters (constant: independent of the number of keys).
    pub(crate) fn memory_bytes(&self) -> usize {
        2 * HASHES * self.slots * std::mem::size_of::<isize>()
    }

    /// The current window index and how far into it we are (nanoseconds).
    fn position(&self) -> (u64, u64) {
        let e = self.start.elapsed().as_nanos() as u64;
        (e / self.window_nanos, e % self.window_nanos)
    }

    /// The published window, rotating to `idx` first when this caller wins the race.
    fn rotate_to(&self, idx: u64) -> u64 {
        let cur = self.epoch.load(Ordering::Acquire);
        if idx <= cur {
            return cur;
        }
        if self
            .rotating
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            // Someone else is clearing; keep counting in the window they are leaving.
            return cur;
        }
        let cur = self.epoch.load(Ordering::Acquire);
        if idx > cur {
            // The estimator that becomes current holds window `idx - 2` (or older): clear it.
            // When more than one window passed, the other one is stale too.
            self.windows[(idx % 2) as usize].reset();
            if idx > cur + 1 {
                self.windows[((idx + 1) % 2) as usize].reset();
            }
            self.epoch.store(idx, Ordering::Release);
        }
        self.rotating.store(false, Ordering::Release);
        idx.max(cur)
    }

    /// Decides one request for `key` against `limit`, counting it when admitted.
    pub(crate) fn check<K: Hash + ?Sized>(&self, key: &K, limit: u64) -> Decision {
        let h = self.hasher.hash_one(key);
        let (idx, into) = self.position();
        let epoch = self.rotate_to(idx);
        let current = &self.windows[(epoch % 2) as usize];
        let (fraction, prev) = if epoch == idx {
            let previous = &self.windows[((epoch + 1) % 2) as usize];
            (
                into as f64 / self.window_nanos as f64,
                previous.get(h).max(0) as u64,
            )
        } else {
            // Rotation in progress elsewhere: the window we count in has ended, weigh it as
            // current (conservative) and forget the one before.
            (0.0, 0)
        };
        let allowance = (limit as f64 - prev as f64 * (1.0 - fraction)).floor();
        if allowance < 1.0 {
            let curr = current.get(h).max(0) as u64;
            return Decision::limited(limit, prev, curr, fraction, self.window);
        }
        let allowance = allowance as isize;
        let after = {
            let _gate = self.gates[h as usize % GATES]
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let after = current.incr(h, 1);
            if after > allowance {
                current.decr(h, 1);
            }
            after
        };
        if after > allowance {
            Decision::limited(
                limit,
                prev,
                (after - 1).max(0) as u64,
                fraction,
                self.window,
            )
        } else {
            Decision::allowed(limit, (allowance - after) as u64, fraction, self.window)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: f64) -> Duration {
        Duration::from_secs_f64(n)
    }

    #[tokio::test(start_paused = true)]
    async fn admits_up_to_the_limit_then_rejects() {
        let w = SlidingWindow::new(secs(10.0), 1000);
        for i in 0..5 {
            let d = w.check("a", 5);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 4 - i);
            assert_eq!(d.reset_secs, 10);
        }
        let d = w.check("a", 5);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        // All five were in the current window: they age out over the next window.
        assert!(d.retry_after_secs().unwrap() >= 10, "{d:?}");
        // Other keys are untouched.
        assert!(w.check("b", 5).allowed);
    }

    #[tokio::test(start_paused = true)]
    async fn no_double_burst_at_the_window_edge() {
        let w = SlidingWindow::new(secs(10.0), 1000);
        tokio::time::advance(secs(9.9)).await;
        let admitted = (0..20).filter(|_| w.check("k", 10).allowed).count();
        assert_eq!(admitted, 10);
        // Just past the edge the previous window still weighs ~99%.
        tokio::time::advance(secs(0.2)).await;
        let admitted = (0..20).filter(|_| w.check("k", 10).allowed).count();
        assert_eq!(admitted, 0, "a fixed window would admit 10 more here");
        // Half-way through, half of the previous window has aged out.
        tokio::time::advance(secs(4.9)).await; // t = 15.0
        let d = w.check("k", 10);
        assert!(d.allowed);
        assert_eq!(d.remaining, 4, "{d:?}"); // 10 - 10 × 0.5 - 1
        let admitted = (0..20).filter(|_| w.check("k", 10).allowed).count();
        assert_eq!(admitted, 4);
        // Two windows later everything has aged out.
        tokio::time::advance(secs(20.0)).await;
        let admitted = (0..20).filter(|_| w.check("k", 10).allowed).count();
        assert_eq!(admitted, 10);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_when_the_estimate_drops() {
        let w = SlidingWindow::new(secs(10.0), 1000);
        for _ in 0..10 {
            assert!(w.check("k", 10).allowed);
        }
        tokio::time::advance(secs(10.0)).await; // previous = 10, fraction 0
        let d = w.check("k", 10);
        assert!(!d.allowed);
        // One slot frees when 10 × (1 − f) ≤ 9, i.e. f = 0.1 → 1 s.
        assert_eq!(d.retry_after_secs(), Some(1));
        tokio::time::advance(secs(1.0)).await;
        assert!(w.check("k", 10).allowed);
        assert!(!w.check("k", 10).allowed);
    }

    #[test]
    fn many_threads_never_admit_more_than_the_limit() {
        let w = std::sync::Arc::new(SlidingWindow::new(secs(3600.0), 1000));
        let admitted = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        if w.check("hot", 1000).allowed {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(admitted.load(Ordering::Relaxed), 1000);
    }

    #[tokio::test(start_paused = true)]
    async fn memory_is_fixed_by_config_not_by_keys() {
        let w = SlidingWindow::new(secs(60.0), 1 << 20);
        let before = w.memory_bytes();
        assert_eq!(before, 64 << 20);
        for i in 0..1_000_000u64 {
            w.check(&i, 100);
        }
        assert_eq!(w.memory_bytes(), before);
        // At full capacity about (1 − 1/e)⁴ ≈ 16 % of keys share all four counters with
        // another key (over-counted: limited early, never late).
        let over = (0..1000u64)
            .filter(|i| w.check(i, 100).remaining < 98)
            .count();
        assert!(over < 250, "{over} of 1000 keys over-counted");
    }

    #[tokio::test(start_paused = true)]
    async fn a_quarter_full_sketch_is_nearly_exact() {
        let w = SlidingWindow::new(secs(60.0), 1 << 16);
        for i in 0..(1u64 << 14) {
            w.check(&i, 100);
        }
        // (1 − e^(−1/4))⁴ ≈ 0.24 % expected.
        let over = (0..(1u64 << 14))
            .filter(|i| w.check(i, 100).remaining < 98)
            .count();
        assert!(over < 160, "{over} of 16384 keys over-counted");
    }
}
