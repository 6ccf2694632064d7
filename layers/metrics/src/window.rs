//! Per-minute aggregates over the retention window, for `GET /api/v1/metrics?bucket=`.
//!
//! Calls are counted into one of three live minute slots (atomics only, no lock). When a
//! slot is reused for a new minute, the minute it held is sealed into a compact record in
//! a bounded ring under a short mutex: one lock per minute rollover, never per call.

use crate::histogram::{self, Histogram};
use crate::recorder::Outcome;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const LIVE: usize = 3;
const EMPTY: u64 = u64::MAX;

#[derive(Debug, Default)]
struct Slot {
    minute: AtomicU64,
    outcomes: [AtomicU64; Outcome::ALL.len()],
    latency: Histogram,
}

/// One sealed minute: counts per outcome and the non-empty latency buckets.
#[derive(Clone, Debug)]
struct Minute {
    minute: u64,
    outcomes: [u64; Outcome::ALL.len()],
    buckets: Vec<(u16, u64)>,
    sum_us: u64,
    max_us: u64,
}

impl Minute {
    fn empty(minute: u64) -> Self {
        Minute {
            minute,
            outcomes: [0; Outcome::ALL.len()],
            buckets: Vec::new(),
            sum_us: 0,
            max_us: 0,
        }
    }
}

/// Per-minute call aggregates, kept for a configurable number of minutes.
#[derive(Debug)]
pub(crate) struct Window {
    live: [Slot; LIVE],
    sealed: Mutex<VecDeque<Minute>>,
    keep_minutes: AtomicU64,
}

fn minute_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() / 60
}

impl Window {
    pub(crate) fn new(keep: Duration) -> Self {
        let w = Window {
            live: Default::default(),
            sealed: Mutex::new(VecDeque::new()),
            keep_minutes: AtomicU64::new(1),
        };
        for s in &w.live {
            s.minute.store(EMPTY, Ordering::Relaxed);
        }
        w.set_keep(keep);
        w
    }

    /// Minutes kept.
    pub(crate) fn keep(&self) -> Duration {
        Duration::from_secs(self.keep_minutes.load(Ordering::Relaxed) * 60)
    }

    pub(crate) fn set_keep(&self, keep: Duration) {
        self.keep_minutes
            .store((keep.as_secs() / 60).max(1), Ordering::Relaxed);
    }

    /// Counts one call that ended at `now`.
    pub(crate) fn record(&self, now: SystemTime, outcome: Outcome, d: Duration) {
        let m = minute_of(now);
        let slot = &self.live[(m % LIVE as u64) as usize];
        if slot.minute.load(Ordering::Acquire) != m {
            self.rollover(slot, m);
        }
        slot.outcomes[outcome as usize].fetch_add(1, Ordering::Relaxed);
        slot.latency.record(d);
    }

    /// Seals what `slot` holds and makes it minute `m` (once per slot and minute).
    fn rollover(&self, slot: &Slot, m: u64) {
        let mut sealed = self.sealed.lock().expect("window lock poisoned");
        let old = slot.minute.load(Ordering::Acquire);
        if old == m || (old != EMPTY && old > m) {
            return; // another caller did it, or this caller's clock is behind
        }
        if old != EMPTY {
            let mut rec = Minute::empty(old);
            for (i, o) in slot.outcomes.iter().enumerate() {
                rec.outcomes[i] = o.swap(0, Ordering::Relaxed);
            }
            let (buckets, sum, max) = slot.latency.take();
            rec.buckets = buckets;
            rec.sum_us = sum;
            rec.max_us = max;
            if rec.outcomes.iter().any(|n| *n > 0) {
                let at = sealed.partition_point(|x| x.minute < old);
                sealed.insert(at, rec);
            }
        }
        slot.minute.store(m, Ordering::Release);
        let keep = self.keep_minutes.load(Ordering::Relaxed);
        while sealed.front().is_some_and(|x| x.minute + keep <= m) {
            sealed.pop_front();
        }
    }

    /// Every minute with calls in the last `keep` minutes, oldest first.
    fn minutes(&self, now: SystemTime) -> Vec<Minute> {
        let now_m = minute_of(now);
        let keep = self.keep_minutes.load(Ordering::Relaxed);
        let first = (now_m + 1).saturating_sub(keep);
        let mut out: Vec<Minute> = self
            .sealed
            .lock()
            .expect("window lock poisoned")
            .iter()
            .filter(|x| x.minute >= first && x.minute <= now_m)
            .cloned()
            .collect();
        for slot in &self.live {
            let m = slot.minute.load(Ordering::Acquire);
            if m == EMPTY || m < first || m > now_m {
                continue;
            }
            let mut rec = Minute::empty(m);
            for (i, o) in slot.outcomes.iter().enumerate() {
                rec.outcomes[i] = o.load(Ordering::Relaxed);
            }
            rec.buckets = slot.latency.nonzero();
            rec.sum_us = slot.latency.sum_us();
            rec.max_us = slot.latency.max_us();
            if rec.outcomes.iter().any(|n| *n > 0) {
                out.push(rec);
            }
        }
        out.sort_by_key(|x| x.minute);
        out
    }

    /// The whole window as one bucket, plus buckets of `bucket_minutes` (when given),
    /// oldest first; buckets without calls are left out.
    pub(crate) fn report(&self, now: SystemTime, bucket_minutes: Option<u64>) -> WindowReport {
        let minutes = self.minutes(now);
        let keep = self.keep_minutes.load(Ordering::Relaxed);
        let first = (minute_of(now) + 1).saturating_sub(keep);
        let total = Agg::of(minutes.iter());
        let buckets = bucket_minutes.map(|b| {
            let b = b.max(1);
            let mut out = Vec::new();
            let mut i = 0;
            while i < minutes.len() {
                let start = minutes[i].minute / b * b;
                let j = i + minutes[i..].partition_point(|x| x.minute < start + b);
                out.push(Agg::of(minutes[i..j].iter()).bucket(start));
                i = j;
            }
            out
        });
        WindowReport {
            retention_minutes: keep,
            since: crate::rfc3339(UNIX_EPOCH + Duration::from_secs(first * 60)),
            total: total.stats(),
            bucket_seconds: bucket_minutes.map(|b| b.max(1) * 60),
            buckets,
            servers: Default::default(),
            tools: Vec::new(),
        }
    }
}

impl Window {
    /// The window of one server or tool: all its calls in the window, plus buckets of
    /// `bucket_minutes` when given. `None` when it had no call in the window.
    pub(crate) fn series(
        &self,
        now: SystemTime,
        bucket_minutes: Option<u64>,
    ) -> Option<SeriesWindow> {
        let r = self.report(now, bucket_minutes);
        (r.total.calls > 0).then_some(SeriesWindow {
            total: r.total,
            buckets: r.buckets,
        })
    }
}

struct Agg {
    outcomes: [u64; Outcome::ALL.len()],
    buckets: Vec<u64>,
    sum_us: u64,
    max_us: u64,
}

impl Agg {
    fn of<'a>(ms: impl Iterator<Item = &'a Minute>) -> Agg {
        let mut a = Agg {
            outcomes: [0; Outcome::ALL.len()],
            buckets: vec![0; histogram::BUCKETS],
            sum_us: 0,
            max_us: 0,
        };
        for m in ms {
            for (x, y) in a.outcomes.iter_mut().zip(m.outcomes) {
                *x += y;
            }
            for (i, n) in &m.buckets {
                a.buckets[*i as usize] += n;
            }
            a.sum_us += m.sum_us;
            a.max_us = a.max_us.max(m.max_us);
        }
        a
    }

    fn stats(&self) -> WindowStats {
        let calls: u64 = self.outcomes.iter().sum();
        let errors: u64 = Outcome::ALL
            .iter()
            .filter(|o| o.is_error())
            .map(|o| self.outcomes[*o as usize])
            .sum();
        let q = |p: f64| histogram::quantile_of(&self.buckets, self.max_us, p) as f64 / 1000.0;
        WindowStats {
            calls,
            errors,
            error_rate: if calls == 0 {
                0.0
            } else {
                errors as f64 / calls as f64
            },
            outcomes: Outcome::ALL
                .iter()
                .filter(|o| self.outcomes[**o as usize] > 0)
                .map(|o| (o.as_str(), self.outcomes[*o as usize]))
                .collect(),
            latency_ms: WindowLatency {
                avg: if calls == 0 {
                    0.0
                } else {
                    self.sum_us as f64 / calls as f64 / 1000.0
                },
                p50: q(0.50),
                p95: q(0.95),
                p99: q(0.99),
                max: self.max_us as f64 / 1000.0,
            },
        }
    }

    fn bucket(&self, start_minute: u64) -> Bucket {
        Bucket {
            start: crate::rfc3339(UNIX_EPOCH + Duration::from_secs(start_minute * 60)),
            stats: self.stats(),
        }
    }
}

/// Calls over the retention window (`GET /api/v1/metrics`, key `window`).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowReport {
    /// Minutes the window covers (`monitor.retentionHours` × 60).
    pub retention_minutes: u64,
    /// Start of the window (RFC 3339).
    pub since: String,
    /// All calls in the window.
    #[serde(flatten)]
    pub total: WindowStats,
    /// Width of each bucket in seconds, when buckets were asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket_seconds: Option<u64>,
    /// Buckets with calls, oldest first, when asked for (`?bucket=1m|5m|15m|1h|1d`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<Bucket>>,
    /// The same per server that had calls in the window.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub servers: std::collections::BTreeMap<String, SeriesWindow>,
    /// The same per (server, tool) pair that had calls in the window.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolWindow>,
}

/// One server's or tool's calls over the window.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeriesWindow {
    /// All its calls in the window.
    #[serde(flatten)]
    pub total: WindowStats,
    /// Its buckets with calls, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<Bucket>>,
}

/// One (server, tool) pair's calls over the window.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolWindow {
    /// Server id (`-` when no server was reached).
    pub server: String,
    /// Tool name (`_other` past the series bound).
    pub tool: String,
    /// Its numbers.
    #[serde(flatten)]
    pub window: SeriesWindow,
}

/// Counts and latency of the calls in a span of time.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowStats {
    /// Calls that ended in the span.
    pub calls: u64,
    /// Those whose outcome is an error.
    pub errors: u64,
    /// `errors / calls`.
    pub error_rate: f64,
    /// Calls per outcome (only non-zero ones).
    pub outcomes: std::collections::BTreeMap<&'static str, u64>,
    /// Latency summary in milliseconds.
    pub latency_ms: WindowLatency,
}

/// Latency summary of a span, in milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct WindowLatency {
    /// Mean.
    pub avg: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

/// One time bucket.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    /// Start of the bucket (RFC 3339, aligned to the bucket width).
    pub start: String,
    /// Its numbers.
    #[serde(flatten)]
    pub stats: WindowStats,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_minutes_and_drops_old_ones() {
        let w = Window::new(Duration::from_secs(3600));
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000 / 3600 * 3600);
        let at = |min: u64| t0 + Duration::from_secs(min * 60 + 5);
        for min in 0..10 {
            w.record(at(min), Outcome::Ok, Duration::from_millis(10));
            if min == 3 {
                w.record(at(min), Outcome::Timeout, Duration::from_millis(1000));
            }
        }
        let r = w.report(at(9), Some(5));
        assert_eq!(r.total.calls, 11);
        assert_eq!(r.total.errors, 1);
        let b = r.buckets.unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].stats.calls, b[0].stats.errors), (6, 1));
        assert_eq!(b[1].stats.calls, 5);
        assert!(b[0].stats.latency_ms.p99 > 900.0, "{:?}", b[0].stats);
        assert!(b[1].stats.latency_ms.p99 < 13.0, "{:?}", b[1].stats);
        // 70 minutes later, only the new minute is in the (60-minute) window.
        w.record(at(80), Outcome::Ok, Duration::from_millis(1));
        let r = w.report(at(80), Some(1));
        assert_eq!(r.total.calls, 1);
        assert_eq!(r.buckets.unwrap().len(), 1);
        assert!(w.sealed.lock().unwrap().len() <= 60);
    }
}
