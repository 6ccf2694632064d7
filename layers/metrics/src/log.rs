//! A bounded ring of recent calls, with their captured bodies bounded in total.

use crate::capture::{BodyState, Capture};
use mcp_gateway_core::Identity;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

fn as_rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::rfc3339(*t))
}

fn as_str<S: serde::Serializer>(t: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t)
}

fn as_subject<S: serde::Serializer>(i: &Option<Arc<Identity>>, s: S) -> Result<S::Ok, S::Error> {
    match i {
        Some(i) => s.serialize_some(&i.subject),
        None => s.serialize_none(),
    }
}

fn as_raw<S: serde::Serializer>(v: &Option<Arc<RawValue>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_some(&**v),
        None => s.serialize_none(),
    }
}

/// One call in the request log.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    /// Sequence number, unique per process and increasing in the order entries are
    /// logged (assigned by [`RequestLog::push`]).
    pub id: u64,
    /// When the call started; serialized as `time` (RFC 3339), formatted only when the log
    /// is read, never on the call path.
    #[serde(rename = "time", serialize_with = "as_rfc3339")]
    pub at: SystemTime,
    /// The front end's id for the request (the JSON-RPC id on `/mcp`); when empty,
    /// [`RequestLog::push`] sets the sequence number.
    pub request_id: String,
    /// W3C trace id (32 hex digits) from the caller's `traceparent`, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Front end that received it: `rest` or `mcp`.
    pub transport: &'static str,
    /// The authenticated caller, serialized as its subject (the key's name or the token's
    /// `sub`). Shared with the request, not copied.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "as_subject")]
    pub identity: Option<Arc<Identity>>,
    /// JSON-RPC method.
    pub method: Cow<'static, str>,
    /// Server that answered (`-` if none).
    #[serde(serialize_with = "as_str")]
    pub server: Arc<str>,
    /// Tool called, for `tools/call`: the name the server knows (the caller's text when the
    /// name resolved to no server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Outcome label.
    pub outcome: &'static str,
    /// HTTP-equivalent status.
    pub status: u16,
    /// Duration in milliseconds.
    pub duration_ms: f64,
    /// Where the time went.
    pub timings: Timings,
    /// Times the call was sent to an upstream service again after the first.
    pub retries: u32,
    /// Error message, if it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The entry this call replayed (`POST /api/v1/requests/{id}/replay`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<u64>,
    /// Arguments (or params of other methods) as captured: redacted, maybe cut.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "as_raw")]
    pub arguments: Option<Arc<RawValue>>,
    /// Result as captured: redacted, maybe cut.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "as_raw")]
    pub result: Option<Arc<RawValue>>,
    /// What the log holds of the bodies.
    pub capture: Capture,
}

impl LogEntry {
    /// Bytes the captured bodies take (what `monitor.captureBytes` bounds).
    pub fn body_bytes(&self) -> usize {
        let len = |b: &Option<Arc<RawValue>>| b.as_ref().map_or(0, |b| b.get().len());
        len(&self.arguments)
            + len(&self.result)
            + self.capture.redacted.iter().map(String::len).sum::<usize>()
    }

    /// Drops the captured bodies, marking them [`BodyState::Dropped`].
    fn drop_bodies(&mut self) {
        for (body, state) in [
            (&mut self.arguments, &mut self.capture.arguments),
            (&mut self.result, &mut self.capture.result),
        ] {
            if body.take().is_some() {
                *state = BodyState::Dropped;
            }
        }
        self.capture.redacted = Vec::new();
    }

    /// The caller's subject, if known.
    pub fn subject(&self) -> Option<&str> {
        self.identity.as_deref().map(|i| i.subject.as_str())
    }
}

/// Time spent before and in the upstream, in the request log's `timings`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timings {
    /// From the call's start until its upstream took it (its server's `maxConcurrency`
    /// slot granted); `None` when it never reached an upstream.
    pub queued: Option<Duration>,
    /// From then until the answer; `None` when it never reached an upstream.
    pub upstream: Option<Duration>,
    /// The whole call.
    pub total: Duration,
}

impl Serialize for Timings {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut t = s.serialize_struct("Timings", 3)?;
        t.serialize_field("queuedMs", &self.queued.map(ms))?;
        t.serialize_field("upstreamMs", &self.upstream.map(ms))?;
        t.serialize_field("totalMs", &ms(self.total))?;
        t.end()
    }
}

/// Marks a request (in [`McpRequest::extensions`](mcp_gateway_core::McpRequest)) as the
/// replay of a logged call: its entry gets `replayOf`, and the id it is logged under can be
/// read back once the call is answered.
#[derive(Clone, Debug)]
pub struct ReplayOf {
    of: u64,
    logged: Arc<AtomicU64>,
}

impl ReplayOf {
    /// A replay of entry `of`.
    pub fn new(of: u64) -> Self {
        Self {
            of,
            logged: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The replayed entry.
    pub fn of(&self) -> u64 {
        self.of
    }

    /// The id of the replay's own entry, once it was logged.
    pub fn logged_as(&self) -> Option<u64> {
        match self.logged.load(Ordering::Acquire) {
            0 => None,
            id => Some(id),
        }
    }

    pub(crate) fn set_logged(&self, id: u64) {
        self.logged.store(id, Ordering::Release);
    }
}

/// Filters for [`RequestLog::query`], as taken from `GET /api/v1/requests`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogQuery {
    /// Only this server.
    pub server: Option<String>,
    /// Only this tool.
    pub tool: Option<String>,
    /// Only this outcome label (`ok`, `timeout`, ...), HTTP status (`504`), or `error` for
    /// every outcome counted as an error (all but `ok` and `cancelled`).
    pub status: Option<String>,
    /// Only entries newer than this many seconds ago.
    pub since: Option<u64>,
    /// Only entries logged after this one (`id > after`), for polling.
    pub after: Option<u64>,
    /// At most this many entries (newest first); default 100.
    pub limit: Option<usize>,
    /// Only the calls of this caller (identity subject); anonymous calls never match.
    pub subject: Option<String>,
}

/// The entries and what their captured bodies take.
#[derive(Debug, Default)]
struct Ring {
    entries: VecDeque<LogEntry>,
    /// Sum of [`LogEntry::body_bytes`] over `entries`.
    body_bytes: usize,
    /// Entries with a smaller id hold no bodies (where dropping looks first).
    bodies_from: u64,
}

impl Ring {
    fn pop_front(&mut self) {
        if let Some(e) = self.entries.pop_front() {
            self.body_bytes -= e.body_bytes();
        }
    }

    /// Position of entry `id`.
    fn position(&self, id: u64) -> Result<usize, usize> {
        self.entries.binary_search_by_key(&id, |e| e.id)
    }
}

/// Bounded ring of recent calls, newest last; ids increase from front to back.
#[derive(Debug)]
pub struct RequestLog {
    capacity: usize,
    retention_secs: AtomicU64,
    capture_bytes: AtomicUsize,
    next_id: AtomicU64,
    ring: Mutex<Ring>,
}

/// Default of `monitor.captureBytes`: 8 MiB of captured bodies in all.
pub const DEFAULT_CAPTURE_BYTES: usize = 8 * 1024 * 1024;

impl RequestLog {
    /// A log keeping `capacity` entries (0 keeps none).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            retention_secs: AtomicU64::new(0),
            capture_bytes: AtomicUsize::new(DEFAULT_CAPTURE_BYTES),
            next_id: AtomicU64::new(1),
            ring: Mutex::new(Ring {
                entries: VecDeque::with_capacity(capacity.min(4096)),
                ..Ring::default()
            }),
        }
    }

    /// True when the log keeps entries.
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// Drops entries older than `max_age` on every push and query (zero keeps them all).
    pub fn set_retention(&self, max_age: Duration) {
        self.retention_secs
            .store(max_age.as_secs(), Ordering::Relaxed);
    }

    /// Bounds the captured bodies of all entries together to `bytes`; past it, the oldest
    /// entries' bodies are dropped first (the entries stay).
    pub fn set_capture_bytes(&self, bytes: usize) {
        self.capture_bytes.store(bytes, Ordering::Relaxed);
    }

    fn retention_cutoff(&self) -> Option<SystemTime> {
        match self.retention_secs.load(Ordering::Relaxed) {
            0 => None,
            s => SystemTime::now().checked_sub(Duration::from_secs(s)),
        }
    }

    /// Appends an entry under the next id, which it returns (0 when the log is off),
    /// evicting the oldest when full and those past retention, and dropping the oldest
    /// bodies while the captured bodies exceed their bound.
    pub fn push(&self, mut entry: LogEntry) -> u64 {
        if self.capacity == 0 {
            return 0;
        }
        let cutoff = self.retention_cutoff();
        let bound = self.capture_bytes.load(Ordering::Relaxed);
        let mut r = self.ring.lock().expect("log lock poisoned");
        // Taken under the lock: ids increase along the ring, so `after=` never skips one.
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        entry.id = id;
        if entry.request_id.is_empty() {
            entry.request_id = id.to_string();
        }
        if r.entries.len() == self.capacity {
            r.pop_front();
        }
        if let Some(c) = cutoff {
            while r.entries.front().is_some_and(|e| e.at < c) {
                r.pop_front();
            }
        }
        if entry.body_bytes() > bound {
            // Alone over the bound: keeping it would cost every other entry its bodies.
            entry.drop_bodies();
        }
        r.body_bytes += entry.body_bytes();
        r.entries.push_back(entry);
        if r.body_bytes > bound {
            let start = r.position(r.bodies_from).unwrap_or_else(|i| i);
            let Ring {
                entries,
                body_bytes,
                bodies_from,
            } = &mut *r;
            for e in entries.range_mut(start..) {
                if *body_bytes <= bound {
                    break;
                }
                *body_bytes -= e.body_bytes();
                e.drop_bodies();
                *bodies_from = e.id + 1;
            }
        }
        id
    }

    /// Entries matching `q`, newest first (never older than the retention).
    pub fn query(&self, q: &LogQuery) -> Vec<LogEntry> {
        let since = q
            .since
            .and_then(|s| SystemTime::now().checked_sub(Duration::from_secs(s)));
        let cutoff = match (since, self.retention_cutoff()) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let limit = q.limit.unwrap_or(100);
        let after = q.after.unwrap_or(0);
        let r = self.ring.lock().expect("log lock poisoned");
        r.entries
            .iter()
            .rev()
            .take_while(|e| e.id > after)
            .filter(|e| q.server.as_ref().is_none_or(|s| *e.server == **s))
            .filter(|e| q.tool.as_ref().is_none_or(|t| e.tool.as_ref() == Some(t)))
            .filter(|e| q.status.as_ref().is_none_or(|s| status_matches(e, s)))
            .filter(|e| cutoff.is_none_or(|c| e.at >= c))
            .filter(|e| {
                q.subject
                    .as_ref()
                    .is_none_or(|s| e.identity.as_ref().is_some_and(|i| i.subject == *s))
            })
            .take(limit)
            .cloned()
            .collect()
    }

    /// Entry `id`, unless it was evicted or is past the retention.
    pub fn get(&self, id: u64) -> Option<LogEntry> {
        let cutoff = self.retention_cutoff();
        let r = self.ring.lock().expect("log lock poisoned");
        let e = &r.entries[r.position(id).ok()?];
        cutoff.is_none_or(|c| e.at >= c).then(|| e.clone())
    }

    /// Drops entries older than `max_age`.
    pub fn expire(&self, max_age: Duration) {
        let Some(cutoff) = SystemTime::now().checked_sub(max_age) else {
            return;
        };
        let mut r = self.ring.lock().expect("log lock poisoned");
        while r.entries.front().is_some_and(|e| e.at < cutoff) {
            r.pop_front();
        }
    }

    /// Number of entries kept.
    pub fn len(&self) -> usize {
        self.ring.lock().expect("log lock poisoned").entries.len()
    }

    /// True when no entry is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the captured bodies of all entries take now.
    pub fn body_bytes(&self) -> usize {
        self.ring.lock().expect("log lock poisoned").body_bytes
    }
}

fn status_matches(e: &LogEntry, s: &str) -> bool {
    if s == "error" {
        return !matches!(e.outcome, "ok" | "cancelled");
    }
    e.outcome == s || s.parse::<u16>().is_ok_and(|n| n == e.status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: SystemTime) -> LogEntry {
        LogEntry {
            id: 0,
            request_id: String::new(),
            trace_id: None,
            at,
            transport: "rest",
            identity: None,
            method: "tools/call".into(),
            server: "s".into(),
            tool: Some("t".into()),
            outcome: "ok",
            status: 200,
            duration_ms: 1.0,
            timings: Timings::default(),
            retries: 0,
            error: None,
            replay_of: None,
            arguments: None,
            result: None,
            capture: Capture::default(),
        }
    }

    fn with_bodies(at: SystemTime, n: usize) -> LogEntry {
        let body = |n: usize| -> Arc<RawValue> {
            Arc::from(serde_json::value::to_raw_value(&"x".repeat(n - 2)).unwrap())
        };
        let mut e = entry(at);
        e.arguments = Some(body(n));
        e.result = Some(body(n));
        e.capture.arguments = BodyState::Full;
        e.capture.result = BodyState::Full;
        e
    }

    fn ids(log: &RequestLog, q: &LogQuery) -> Vec<u64> {
        log.query(q).iter().map(|e| e.id).collect()
    }

    #[test]
    fn bound_and_retention() {
        let log = RequestLog::new(3);
        let now = SystemTime::now();
        for _ in 1..=5 {
            log.push(entry(now));
        }
        assert_eq!(ids(&log, &LogQuery::default()), [5, 4, 3]);
        assert_eq!(log.get(4).unwrap().request_id, "4", "generated request id");
        assert!(log.get(2).is_none(), "evicted");
        let after = LogQuery {
            after: Some(3),
            ..Default::default()
        };
        assert_eq!(ids(&log, &after), [5, 4]);
        let log = RequestLog::new(3);
        log.push(entry(now - Duration::from_secs(7200)));
        log.push(entry(now));
        assert_eq!(log.query(&LogQuery::default()).len(), 2, "no retention yet");
        log.set_retention(Duration::from_secs(3600));
        assert_eq!(
            ids(&log, &LogQuery::default()),
            [2],
            "older than retention: not answered"
        );
        assert!(log.get(1).is_none(), "nor found by id");
        log.push(entry(now));
        assert_eq!(log.len(), 2, "and dropped on the next push");
    }

    #[test]
    fn status_error_matches_every_error_outcome() {
        let log = RequestLog::new(10);
        let now = SystemTime::now();
        for (outcome, status) in [
            ("ok", 200),
            ("tool_error", 200),
            ("timeout", 504),
            ("cancelled", 499),
        ] {
            let mut e = entry(now);
            (e.outcome, e.status) = (outcome, status);
            log.push(e);
        }
        let q = |s: &str| LogQuery {
            status: Some(s.into()),
            ..Default::default()
        };
        assert_eq!(ids(&log, &q("error")), [3, 2]);
        assert_eq!(ids(&log, &q("504")), [3]);
        assert_eq!(ids(&log, &q("ok")), [1]);
    }

    #[test]
    fn captured_bodies_are_bounded_in_total_oldest_first() {
        let log = RequestLog::new(100);
        log.set_capture_bytes(1000);
        let now = SystemTime::now();
        for _ in 0..3 {
            log.push(with_bodies(now, 200)); // 400 bytes each
        }
        log.push(entry(now)); // no bodies
        assert_eq!(log.body_bytes(), 800, "the first entry's bodies went");
        let first = log.get(1).unwrap();
        assert!(first.arguments.is_none() && first.result.is_none());
        assert_eq!(first.capture.arguments, BodyState::Dropped);
        assert_eq!(log.get(2).unwrap().capture.arguments, BodyState::Full);
        for _ in 0..5 {
            log.push(with_bodies(now, 200));
        }
        assert!(log.body_bytes() <= 1000, "{}", log.body_bytes());
        let kept: Vec<u64> = log
            .query(&LogQuery::default())
            .iter()
            .filter(|e| e.arguments.is_some())
            .map(|e| e.id)
            .collect();
        assert_eq!(kept, [9, 8], "the newest keep theirs");
        // One entry larger than the bound keeps none, and costs the others nothing.
        log.push(with_bodies(now, 600));
        assert_eq!(log.get(10).unwrap().capture.result, BodyState::Dropped);
        assert_eq!(log.body_bytes(), 800);
        // Evicting entries gives their bytes back.
        let small = RequestLog::new(2);
        for _ in 0..4 {
            small.push(with_bodies(now, 100));
        }
        assert_eq!(small.body_bytes(), 400);
    }
}
