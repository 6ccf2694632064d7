//! The in-memory backend: a sliding-window counter on a lock-free count-min sketch.
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
//! # The sketch: one cache line per key and window
//!
//! pingora-limits' `Estimator` (the first version of this module) keeps four independent
//! rows and hashes the key once per row: eight hashes and eight cache lines per decision
//! (previous + current window), so with 10 k keys a decision cost 0.6 µs, almost all of it
//! cache misses. [`Sketch`] keeps the same count-min idea but puts a key's four counters
//! in one 64-byte line of sixteen `u32`s: one hash of the key picks the line and four
//! distinct lanes in it (offset + odd stride mod 16). A decision then touches one line per
//! window and hashes once. Both lines are read before the increment's gate is taken, so
//! with more keys than the CPU caches hold their two cache misses overlap.
//!
//! # Rotation
//!
//! Windows are aligned to a grid (`elapsed / W`) on the clock of [`clock`]; exactly one
//! caller rotates (a CAS on a flag), clearing the stale sketch
//! *before* publishing the new window; callers that arrive meanwhile keep using the previous
//! window with its count weighted fully — conservative, never lenient. Nothing panics.
//!
//! # Exactness under concurrency
//!
//! A count-min sketch returns the minimum of its counters. Two concurrent requests for the
//! same key can reach the counters in different orders, and each can then see the other in
//! a counter that is not its minimum — both admitted for one free slot. To rule that out the
//! increment runs under one of [`GATES`] tiny striped mutexes chosen by the key's hash: the
//! same key's increments are then ordered identically in every counter, the sketch behaves
//! like a single atomic counter per key (plus collision noise, which only over-counts), and a
//! window never admits more than `limit`. A rejected request's increment is undone, so
//! hammering while limited does not extend the penalty.
//!
//! # Memory
//!
//! Two sketches of `slots / 2` lines (64 bytes each), with `slots` the next power of two ≥
//! `max_keys`: `64 × slots` bytes, whatever the number of distinct keys. Stale keys cost
//! nothing. Keys are never under-counted; a key is over-counted (limited early) when other
//! active keys in its line cover all four of its lanes: about 0.6 % of keys with a quarter
//! of `max_keys` active in one window, 7 % at `max_keys`. Size `max_keys` to about 4× the
//! callers active per window.

use crate::decision::Decision;
use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// The clock windows are cut on, in nanoseconds since a start.
///
/// On Linux, `CLOCK_MONOTONIC_COARSE`: the time of the last timer tick (a few milliseconds
/// old), read from the vDSO without reading the CPU's time-stamp counter. A window is at
/// least a second long, and the full-resolution clock took a third of a decision (24 of
/// 68 ns here, in `perf`). Unit tests run on Tokio's clock, which they can pause.
#[cfg(all(target_os = "linux", not(test)))]
mod clock {
    /// Where a limiter's windows start.
    pub(super) type Start = u64;

    pub(super) fn start() -> Start {
        super::coarse_nanos()
    }

    pub(super) fn elapsed(start: &Start) -> u64 {
        super::coarse_nanos().saturating_sub(*start)
    }
}

/// The clock windows are cut on, in nanoseconds since a start: Tokio's, which tests pause.
#[cfg(not(all(target_os = "linux", not(test))))]
mod clock {
    /// Where a limiter's windows start.
    pub(super) type Start = tokio::time::Instant;

    pub(super) fn start() -> Start {
        Start::now()
    }

    pub(super) fn elapsed(start: &Start) -> u64 {
        start.elapsed().as_nanos() as u64
    }
}

/// `CLOCK_MONOTONIC_COARSE` in nanoseconds.
#[cfg(target_os = "linux")]
fn coarse_nanos() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    (t.tv_sec as u64) * 1_000_000_000 + t.tv_nsec as u64
}

/// Counters per line.
const LANES: usize = 16;
/// Counters per key.
const HASHES: usize = 4;
/// Striped gates serialising increments of keys that share a stripe.
pub(crate) const GATES: usize = 1024;

/// One cache line of counters.
#[repr(align(64))]
struct Line([AtomicU32; LANES]);

/// Where a key's counters are: a line and four distinct lanes in it.
#[derive(Clone, Copy)]
struct Spot {
    line: usize,
    lanes: [usize; HASHES],
}

impl Spot {
    fn of(hash: u64, lines: usize) -> Self {
        // Low bits pick the lanes, high bits the line (`lines` is a power of two).
        let offset = (hash & 15) as usize;
        let stride = (((hash >> 4) & 7) * 2 + 1) as usize; // odd: four distinct lanes mod 16
        Self {
            line: ((hash >> 32) as usize) & (lines - 1),
            lanes: std::array::from_fn(|i| (offset + i * stride) % LANES),
        }
    }
}

/// A count-min sketch whose counters for one key share a cache line.
struct Sketch {
    lines: Box<[Line]>,
}

impl Sketch {
    fn new(lines: usize) -> Self {
        Self {
            lines: (0..lines)
                .map(|_| Line(std::array::from_fn(|_| AtomicU32::new(0))))
                .collect(),
        }
    }

    fn get(&self, at: Spot) -> u32 {
        let line = &self.lines[at.line].0;
        at.lanes
            .iter()
            .map(|&l| line[l].load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }

    /// Adds one and returns the new estimate.
    fn incr(&self, at: Spot) -> u32 {
        let line = &self.lines[at.line].0;
        at.lanes
            .iter()
            .map(|&l| line[l].fetch_add(1, Ordering::Relaxed).wrapping_add(1))
            .min()
            .unwrap_or(0)
    }

    fn decr(&self, at: Spot) {
        let line = &self.lines[at.line].0;
        for &l in &at.lanes {
            line[l].fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn reset(&self) {
        for line in self.lines.iter() {
            for c in &line.0 {
                c.store(0, Ordering::Relaxed);
            }
        }
    }
}

/// Sliding-window counters for any number of keys in bounded memory.
pub(crate) struct SlidingWindow {
    windows: [Sketch; 2],
    lines: usize,
    /// Index of the current window since `start`.
    epoch: AtomicU64,
    rotating: AtomicBool,
    start: clock::Start,
    window_nanos: u64,
    window: Duration,
    gates: Box<[Mutex<()>]>,
    hasher: ahash::RandomState,
}

impl std::fmt::Debug for SlidingWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlidingWindow")
            .field("window", &self.window)
            .field("lines", &self.lines)
            .field("epoch", &self.epoch.load(Ordering::Relaxed))
            .finish()
    }
}

impl SlidingWindow {
    /// Counters for windows of `window`, sized for about `max_keys` keys active per window.
    pub(crate) fn new(window: Duration, max_keys: usize) -> Self {
        let slots = max_keys.clamp(1024, 1 << 28).next_power_of_two();
        let lines = slots / 2;
        Self {
            windows: [Sketch::new(lines), Sketch::new(lines)],
            lines,
            epoch: AtomicU64::new(0),
            rotating: AtomicBool::new(false),
            start: clock::start(),
            window_nanos: window.as_nanos().max(1) as u64,
            window,
            gates: (0..GATES).map(|_| Mutex::new(())).collect(),
            hasher: ahash::RandomState::new(),
        }
    }

    /// Bytes held by the counters (constant: independent of the number of keys).
    pub(crate) fn memory_bytes(&self) -> usize {
        2 * self.lines * std::mem::size_of::<Line>()
    }

    /// The current window index and how far into it we are (nanoseconds).
    fn position(&self) -> (u64, u64) {
        let e = clock::elapsed(&self.start);
        let idx = e / self.window_nanos;
        (idx, e - idx * self.window_nanos)
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
            // The sketch that becomes current holds window `idx - 2` (or older): clear it.
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
        let at = Spot::of(h, self.lines);
        let (idx, into) = self.position();
        let epoch = self.rotate_to(idx);
        let current = &self.windows[(epoch % 2) as usize];
        // Read before the gate: its lock is a locked instruction, which waits for every
        // earlier load, so a current line first touched after it would wait for the
        // previous line's cache miss instead of overlapping it.
        let seen = current.get(at);
        let (fraction, prev) = if epoch == idx && epoch > 0 {
            let previous = &self.windows[((epoch + 1) % 2) as usize];
            (
                into as f64 / self.window_nanos as f64,
                u64::from(previous.get(at)),
            )
        } else if epoch == idx {
            // The first window has no previous one.
            (into as f64 / self.window_nanos as f64, 0)
        } else {
            // Rotation in progress elsewhere: the window we count in has ended, weigh it as
            // current (conservative) and forget the one before.
            (0.0, 0)
        };
        let allowance = (limit as f64 - prev as f64 * (1.0 - fraction)).floor();
        if allowance < 1.0 {
            return Decision::limited(limit, prev, u64::from(seen), fraction, self.window);
        }
        // Budgets beyond u32 counters cannot be exceeded within one window in practice.
        let allowance = allowance.min(f64::from(u32::MAX - 1)) as u32;
        let after = {
            let _gate = self.gates[(h >> 16) as usize % GATES]
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let after = current.incr(at);
            if after > allowance {
                current.decr(at);
            }
            after
        };
        if after > allowance {
            Decision::limited(
                limit,
                prev,
                u64::from(after.saturating_sub(1)),
                fraction,
                self.window,
            )
        } else {
            Decision::allowed(limit, u64::from(allowance - after), fraction, self.window)
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

    #[cfg(target_os = "linux")]
    #[test]
    fn the_coarse_clock_keeps_time() {
        let (c0, i0) = (coarse_nanos(), std::time::Instant::now());
        std::thread::sleep(Duration::from_millis(60));
        let coarse = coarse_nanos() - c0;
        let fine = i0.elapsed().as_nanos() as u64;
        // One timer tick apart at most (4 ms at 250 Hz, 10 ms at 100 Hz).
        assert!(
            coarse.abs_diff(fine) < 25_000_000,
            "{coarse} ns against {fine} ns"
        );
    }

    #[test]
    fn a_key_has_four_distinct_lanes() {
        for h in 0..4096u64 {
            let s = Spot::of(h.wrapping_mul(0x9e37_79b9_7f4a_7c15), 1 << 10);
            let mut lanes = s.lanes;
            lanes.sort_unstable();
            assert!(lanes.windows(2).all(|w| w[0] != w[1]), "{lanes:?}");
            assert!(s.line < 1 << 10);
        }
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
        // At full capacity about 7 % of keys have all four lanes covered by other keys in
        // their line (over-counted: limited early, never late).
        let over = (0..1000u64)
            .filter(|i| w.check(i, 100).remaining < 98)
            .count();
        assert!(over < 150, "{over} of 1000 keys over-counted");
    }

    #[tokio::test(start_paused = true)]
    async fn a_quarter_full_sketch_is_nearly_exact() {
        let w = SlidingWindow::new(secs(60.0), 1 << 16);
        for i in 0..(1u64 << 14) {
            w.check(&i, 100);
        }
        // About 0.6 % expected.
        let over = (0..(1u64 << 14))
            .filter(|i| w.check(i, 100).remaining < 98)
            .count();
        assert!(over < 300, "{over} of 16384 keys over-counted");
    }
}
