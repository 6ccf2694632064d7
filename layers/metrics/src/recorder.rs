//! The shared store behind the metrics layer.

use crate::capture::{CaptureMode, Redactor};
use crate::histogram::Histogram;
use crate::log::{LogEntry, RequestLog};
use crate::window::{ToolWindow, Window, WindowReport};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime};

/// The `method` label values: the MCP methods the plane forwards, plus `_other`.
pub const METHODS: [&str; 16] = [
    "tools/call",
    "tools/list",
    "resources/read",
    "resources/list",
    "resources/templates/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/get",
    "prompts/list",
    "completion/complete",
    "logging/setLevel",
    "initialize",
    "ping",
    "server/discover",
    "subscriptions/listen",
    OTHER,
];

/// Label value that stands for everything past a cardinality bound.
pub const OTHER: &str = "_other";

/// Index of `method` in [`METHODS`] (unknown methods map to `_other`).
fn method_index(method: &str) -> usize {
    METHODS
        .iter()
        .position(|m| *m == method)
        .unwrap_or(METHODS.len() - 1)
}

/// The bounded `method` label of an MCP method (`_other` for unknown ones).
pub fn method_label(method: &str) -> &'static str {
    METHODS[method_index(method)]
}

/// Default bound on distinct (server, tool) label pairs.
pub const DEFAULT_MAX_SERIES: usize = 10_000;

/// How a call ended; the label values of the outcome metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The tool ran and succeeded.
    Ok,
    /// The tool ran and reported a failure (`isError: true`).
    ToolError,
    /// The upstream failed, crashed or answered a JSON-RPC error.
    UpstreamError,
    /// The upstream is down or disabled.
    Unavailable,
    /// The upstream did not answer in time.
    Timeout,
    /// The request was malformed or named an unknown / ambiguous tool.
    ClientError,
    /// Rejected by the rate limiter.
    RateLimited,
    /// No or bad credentials.
    Unauthorized,
    /// Credentials fine, but not allowed.
    Forbidden,
    /// A gateway bug.
    InternalError,
    /// The caller went away or cancelled before the answer (logged with status 499).
    Cancelled,
}

impl Outcome {
    /// Every outcome, in a fixed order.
    pub const ALL: [Outcome; 11] = [
        Outcome::Ok,
        Outcome::ToolError,
        Outcome::UpstreamError,
        Outcome::Unavailable,
        Outcome::Timeout,
        Outcome::ClientError,
        Outcome::RateLimited,
        Outcome::Unauthorized,
        Outcome::Forbidden,
        Outcome::InternalError,
        Outcome::Cancelled,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ToolError => "tool_error",
            Outcome::UpstreamError => "upstream_error",
            Outcome::Unavailable => "unavailable",
            Outcome::Timeout => "timeout",
            Outcome::ClientError => "client_error",
            Outcome::RateLimited => "rate_limited",
            Outcome::Unauthorized => "unauthorized",
            Outcome::Forbidden => "forbidden",
            Outcome::InternalError => "internal_error",
            Outcome::Cancelled => "cancelled",
        }
    }

    /// True for outcomes counted as errors in error rates (a call its caller cancelled
    /// is not one).
    pub fn is_error(self) -> bool {
        !matches!(self, Outcome::Ok | Outcome::Cancelled)
    }

    /// Classifies a gateway error.
    pub fn of_error(e: &mcp_gateway_core::McpError) -> Outcome {
        match e.http_status() {
            401 => Outcome::Unauthorized,
            403 => Outcome::Forbidden,
            429 => Outcome::RateLimited,
            503 => Outcome::Unavailable,
            504 => Outcome::Timeout,
            500 => Outcome::InternalError,
            s if (400..500).contains(&s) && e.server().is_none() => Outcome::ClientError,
            _ => Outcome::UpstreamError,
        }
    }
}

/// One rate-limiter decision, for [`Recorder::record_rate_limit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RateLimitDecision {
    /// Admitted and counted.
    Allowed,
    /// Rejected: over budget.
    Limited,
    /// Shared backend unreachable; admitted uncounted (fail open).
    FallbackOpen,
    /// Shared backend unreachable; rejected (fail closed).
    FallbackClosed,
}

/// Rate-limiter decisions so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitCounts {
    /// Requests admitted by the limiter.
    pub allowed: u64,
    /// Requests rejected for being over budget.
    pub limited: u64,
    /// Requests admitted uncounted because the shared backend was unreachable.
    pub fallback_open: u64,
    /// Requests rejected because the shared backend was unreachable.
    pub fallback_closed: u64,
}

/// Counters for one (server, tool) pair or a total.
#[derive(Default, Debug)]
struct Stats {
    outcomes: [AtomicU64; Outcome::ALL.len()],
    latency: Histogram,
    /// Per-minute aggregates of a server or (server, tool) pair, made on its first call.
    window: OnceLock<Box<Window>>,
    /// The pair's series of the OpenTelemetry latency histogram, bound to its attributes
    /// once so recording never hashes an attribute set (tool entries only, once exported).
    otel: OnceLock<opentelemetry::metrics::BoundHistogram<f64>>,
}

impl Stats {
    fn record(&self, outcome: Outcome, d: Duration) {
        self.outcomes[outcome as usize].fetch_add(1, Ordering::Relaxed);
        self.latency.record(d);
    }

    /// Counts the call in this series' own window too (made with `keep` on first use).
    fn record_windowed(&self, now: SystemTime, keep: Duration, outcome: Outcome, d: Duration) {
        self.record(outcome, d);
        self.window
            .get_or_init(|| Box::new(Window::new(keep)))
            .record(now, outcome, d);
    }

    fn snapshot(&self) -> StatsSnapshot {
        let outcomes: Vec<(Outcome, u64)> = Outcome::ALL
            .iter()
            .map(|o| (*o, self.outcomes[*o as usize].load(Ordering::Relaxed)))
            .collect();
        let calls: u64 = outcomes.iter().map(|(_, n)| n).sum();
        let errors: u64 = outcomes
            .iter()
            .filter(|(o, _)| o.is_error())
            .map(|(_, n)| n)
            .sum();
        let h = &self.latency;
        StatsSnapshot {
            calls,
            errors,
            error_rate: if calls == 0 {
                0.0
            } else {
                errors as f64 / calls as f64
            },
            outcomes: outcomes
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .map(|(o, n)| (o.as_str(), n))
                .collect(),
            latency_ms: LatencySnapshot {
                avg: if h.count() == 0 {
                    0.0
                } else {
                    h.sum_us() as f64 / h.count() as f64 / 1000.0
                },
                p50: h.quantile_us(0.50) as f64 / 1000.0,
                p95: h.quantile_us(0.95) as f64 / 1000.0,
                p99: h.quantile_us(0.99) as f64 / 1000.0,
                max: h.max_us() as f64 / 1000.0,
            },
        }
    }
}

/// Aggregated numbers of one server, one tool or all calls.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsSnapshot {
    /// Calls recorded.
    pub calls: u64,
    /// Calls whose outcome was not `ok`.
    pub errors: u64,
    /// `errors / calls`.
    pub error_rate: f64,
    /// Calls per outcome (only non-zero ones).
    pub outcomes: BTreeMap<&'static str, u64>,
    /// Latency summary in milliseconds.
    pub latency_ms: LatencySnapshot,
}

/// Latency summary in milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct LatencySnapshot {
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

/// Numbers of one tool on one server.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSnapshot {
    /// Server id (`-` when the call never reached a server).
    pub server: String,
    /// Tool name.
    pub tool: String,
    /// Its numbers.
    #[serde(flatten)]
    pub stats: StatsSnapshot,
}

/// Requests of one MCP method on one server.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MethodSnapshot {
    /// Server id (`-` when the request did not go to one server).
    pub server: String,
    /// Method label (see [`METHODS`]).
    pub method: &'static str,
    /// Requests.
    pub calls: u64,
    /// Requests per outcome (only non-zero ones).
    pub outcomes: BTreeMap<&'static str, u64>,
}

/// Everything the recorder knows, for `GET /api/v1/metrics`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Seconds since the recorder was created.
    pub uptime_seconds: u64,
    /// All calls.
    pub total: StatsSnapshot,
    /// Per server.
    pub servers: BTreeMap<String, StatsSnapshot>,
    /// Per server and tool (`tools/call` only).
    pub tools: Vec<ToolSnapshot>,
    /// Per server and MCP method (every request).
    pub methods: Vec<MethodSnapshot>,
    /// Calls in flight, per server.
    pub in_flight: BTreeMap<String, i64>,
    /// Rate-limiter decisions (HTTP plane).
    pub rate_limit: RateLimitCounts,
    /// Requests refused by authentication, by reason (`missing_credentials`, ...).
    pub auth_failures: BTreeMap<&'static str, u64>,
    /// Calls recorded under `_other` because the series bound was reached.
    pub series_overflow: u64,
}

/// Per-server counters.
#[derive(Debug, Default)]
struct ServerEntry {
    stats: Stats,
    methods: [[AtomicU64; Outcome::ALL.len()]; METHODS.len()],
    in_flight: AtomicI64,
}

// aHash: every call looks up its server and tool here, and SipHash took most of that.
type ToolMap = HashMap<Box<str>, Arc<Stats>, ahash::RandomState>;
type ServerMap = HashMap<Arc<str>, (Arc<ServerEntry>, ToolMap), ahash::RandomState>;

/// How the recorder records: request-log bodies, redaction, retention, series bound.
#[derive(Clone, Debug)]
pub struct RecorderOptions {
    /// Which calls keep their argument and result bodies in the request log.
    pub capture: CaptureMode,
    /// Patterns of object keys whose values are replaced by `"[REDACTED]"` in captured
    /// bodies, at any depth (see `mcp_gateway_core::redact::is_secret_key`).
    pub redact: Vec<String>,
    /// JSON pointers (rooted at `/arguments` or `/result`) of more values to redact.
    pub redact_pointers: Vec<String>,
    /// Longest captured body in bytes (longer ones are cut and kept as a string).
    pub body_limit: usize,
    /// Most bytes the captured bodies of the whole log take; the oldest go first.
    pub capture_bytes: usize,
    /// How long request-log entries and per-minute aggregates are kept.
    pub retention: Duration,
    /// Most distinct (server, tool) label pairs; calls past it count under `_other`.
    pub max_series: usize,
}

impl Default for RecorderOptions {
    fn default() -> Self {
        Self {
            capture: CaptureMode::None,
            redact: mcp_gateway_core::redact::SECRET_KEYS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            redact_pointers: Vec::new(),
            body_limit: 4096,
            capture_bytes: crate::log::DEFAULT_CAPTURE_BYTES,
            retention: Duration::from_secs(24 * 3600),
            max_series: DEFAULT_MAX_SERIES,
        }
    }
}

struct Inner {
    started: Instant,
    total: Stats,
    servers: RwLock<ServerMap>,
    series: AtomicUsize,
    max_series: AtomicUsize,
    overflow: AtomicU64,
    log: RequestLog,
    window: Window,
    capture: AtomicU8,
    body_limit: AtomicUsize,
    redactor: RwLock<Arc<Redactor>>,
    rate_limit: [AtomicU64; 4],
    auth_failures: RwLock<HashMap<&'static str, AtomicU64>>,
    /// `mcp_gateway_tool_call_duration` once an OpenTelemetry exporter is attached.
    duration: OnceLock<opentelemetry::metrics::Histogram<f64>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("calls", &self.total.latency.count())
            .field("series", &self.series.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Shared metrics store: clone it freely, every clone records into the same numbers.
///
/// Recording a call is lock-free and allocation-free once its (server, tool) pair has
/// been seen: atomic adds behind an uncontended read lock. The first call of a new pair
/// takes the write lock once.
#[derive(Clone, Debug)]
pub struct Recorder {
    inner: Arc<Inner>,
}

/// Counts a call in flight on one server until dropped (see [`Recorder::begin`]).
#[derive(Debug)]
pub struct InFlight {
    entry: Arc<ServerEntry>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.entry.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Recorder {
    /// A recorder whose request log keeps the last `log_capacity` calls (0 disables it).
    pub fn new(log_capacity: usize) -> Self {
        let opts = RecorderOptions::default();
        let r = Self {
            inner: Arc::new(Inner {
                started: Instant::now(),
                total: Stats::default(),
                servers: RwLock::new(ServerMap::default()),
                series: AtomicUsize::new(0),
                max_series: AtomicUsize::new(opts.max_series),
                overflow: AtomicU64::new(0),
                log: RequestLog::new(log_capacity),
                window: Window::new(opts.retention),
                capture: AtomicU8::new(CaptureMode::None as u8),
                body_limit: AtomicUsize::new(opts.body_limit),
                redactor: RwLock::new(Arc::new(Redactor::default())),
                rate_limit: Default::default(),
                auth_failures: RwLock::new(HashMap::new()),
                duration: OnceLock::new(),
            }),
        };
        r.configure(&opts);
        r
    }

    /// A recorder with `options` (see [`Recorder::configure`]).
    pub fn with_options(log_capacity: usize, options: &RecorderOptions) -> Self {
        let r = Self::new(log_capacity);
        r.configure(options);
        r
    }

    /// Applies `options`; may be called at any time, later calls see the new values.
    pub fn configure(&self, o: &RecorderOptions) {
        let i = &self.inner;
        // The rules first: a call that sees the new mode must see the new rules too.
        *i.redactor.write().expect("metrics lock poisoned") =
            Arc::new(Redactor::new(&o.redact, &o.redact_pointers));
        i.body_limit.store(o.body_limit.max(16), Ordering::Relaxed);
        i.capture.store(o.capture as u8, Ordering::Release);
        i.max_series.store(o.max_series.max(1), Ordering::Relaxed);
        i.log.set_capture_bytes(o.capture_bytes);
        i.log.set_retention(o.retention);
        i.window.set_keep(o.retention);
        let map = i.servers.read().expect("metrics lock poisoned");
        for (e, tools) in map.values() {
            let series = std::iter::once(&e.stats).chain(tools.values().map(|t| &**t));
            for w in series.filter_map(|s| s.window.get()) {
                w.set_keep(o.retention);
            }
        }
    }

    /// Which calls keep their bodies (never any when the request log is off).
    pub fn capture_mode(&self) -> CaptureMode {
        if !self.inner.log.enabled() {
            return CaptureMode::None;
        }
        CaptureMode::from_u8(self.inner.capture.load(Ordering::Acquire))
    }

    /// The redaction rules captured bodies go through (also for what is compared with
    /// them, such as a replay's result).
    pub fn redactor(&self) -> Arc<Redactor> {
        self.inner
            .redactor
            .read()
            .expect("metrics lock poisoned")
            .clone()
    }

    /// Longest captured body, in bytes.
    pub fn body_limit(&self) -> usize {
        self.inner.body_limit.load(Ordering::Relaxed)
    }

    /// Counts one call in flight on `server` until the guard is dropped.
    pub fn begin(&self, server: &str) -> InFlight {
        let entry = {
            let map = self.inner.servers.read().expect("metrics lock poisoned");
            map.get(server).map(|(e, _)| e.clone())
        };
        let entry = entry.unwrap_or_else(|| {
            let mut map = self.inner.servers.write().expect("metrics lock poisoned");
            self.server_entry(&mut map, server).1.0.clone()
        });
        entry.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight { entry }
    }

    /// Calls in flight on `server` now.
    pub fn in_flight(&self, server: &str) -> i64 {
        let map = self.inner.servers.read().expect("metrics lock poisoned");
        map.get(server)
            .map_or(0, |(e, _)| e.in_flight.load(Ordering::Relaxed))
    }

    /// The entry of `server`, created if new (under `_other` past the series bound).
    fn server_entry<'m>(
        &self,
        map: &'m mut ServerMap,
        server: &str,
    ) -> (Arc<str>, &'m mut (Arc<ServerEntry>, ToolMap)) {
        let key: Arc<str> = if map.contains_key(server) {
            Arc::from(server)
        } else if self.inner.series.load(Ordering::Relaxed)
            < self.inner.max_series.load(Ordering::Relaxed)
        {
            self.inner.series.fetch_add(1, Ordering::Relaxed);
            Arc::from(server)
        } else {
            Arc::from(OTHER)
        };
        (key.clone(), map.entry(key).or_default())
    }

    /// Records one finished request: `tool` is the tool of a `tools/call`.
    pub fn record(
        &self,
        server: &str,
        method: &str,
        tool: Option<&str>,
        outcome: Outcome,
        elapsed: Duration,
    ) {
        let mi = method_index(method);
        let now = SystemTime::now();
        let keep = self.inner.window.keep();
        self.inner.total.record(outcome, elapsed);
        self.inner.window.record(now, outcome, elapsed);
        let server_recorded = {
            let map = self.inner.servers.read().expect("metrics lock poisoned");
            match map.get(server) {
                Some((s, tools)) => {
                    s.stats.record_windowed(now, keep, outcome, elapsed);
                    s.methods[mi][outcome as usize].fetch_add(1, Ordering::Relaxed);
                    match tool {
                        None => return,
                        Some(t) => {
                            if let Some(t) = tools.get(t) {
                                t.record_windowed(now, keep, outcome, elapsed);
                                if let Some(h) = t.otel.get() {
                                    h.record(elapsed.as_secs_f64());
                                }
                                return;
                            }
                        }
                    }
                    true
                }
                None => false,
            }
        };
        // First call for this server/tool pair: take the write lock once.
        let mut map = self.inner.servers.write().expect("metrics lock poisoned");
        let (label, entry) = self.server_entry(&mut map, server);
        if !server_recorded {
            entry.0.stats.record_windowed(now, keep, outcome, elapsed);
            entry.0.methods[mi][outcome as usize].fetch_add(1, Ordering::Relaxed);
        }
        let Some(tool) = tool else { return };
        let stats = match entry.1.get(tool) {
            Some(s) => s.clone(),
            None => {
                let i = &self.inner;
                let tool =
                    if i.series.load(Ordering::Relaxed) < i.max_series.load(Ordering::Relaxed) {
                        i.series.fetch_add(1, Ordering::Relaxed);
                        tool
                    } else {
                        i.overflow.fetch_add(1, Ordering::Relaxed);
                        OTHER
                    };
                let stats = entry.1.entry(Box::from(tool)).or_default().clone();
                if let Some(h) = i.duration.get() {
                    let _ = stats.otel.set(h.bind(&[
                        opentelemetry::KeyValue::new("server", label.to_string()),
                        opentelemetry::KeyValue::new("tool", tool.to_string()),
                    ]));
                }
                stats
            }
        };
        stats.record_windowed(now, keep, outcome, elapsed);
        if let Some(h) = stats.otel.get() {
            h.record(elapsed.as_secs_f64());
        }
    }

    /// Counts one rate-limiter decision.
    pub fn record_rate_limit(&self, decision: RateLimitDecision) {
        self.inner.rate_limit[decision as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Rate-limiter decisions so far.
    pub fn rate_limit_counts(&self) -> RateLimitCounts {
        let n = |d: RateLimitDecision| self.inner.rate_limit[d as usize].load(Ordering::Relaxed);
        RateLimitCounts {
            allowed: n(RateLimitDecision::Allowed),
            limited: n(RateLimitDecision::Limited),
            fallback_open: n(RateLimitDecision::FallbackOpen),
            fallback_closed: n(RateLimitDecision::FallbackClosed),
        }
    }

    /// Counts one request refused by authentication, labelled by `reason`.
    pub fn count_auth_failure(&self, reason: &'static str) {
        {
            let map = self
                .inner
                .auth_failures
                .read()
                .expect("metrics lock poisoned");
            if let Some(n) = map.get(reason) {
                n.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let mut map = self
            .inner
            .auth_failures
            .write()
            .expect("metrics lock poisoned");
        map.entry(reason)
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Requests refused by authentication so far, by reason.
    pub fn auth_failures(&self) -> BTreeMap<&'static str, u64> {
        let map = self
            .inner
            .auth_failures
            .read()
            .expect("metrics lock poisoned");
        map.iter()
            .map(|(k, v)| (*k, v.load(Ordering::Relaxed)))
            .collect()
    }

    /// The request log.
    pub fn log(&self) -> &RequestLog {
        &self.inner.log
    }

    /// Appends to the request log under the next id, which it returns (0 when the log is
    /// disabled).
    pub fn log_call(&self, entry: LogEntry) -> u64 {
        self.inner.log.push(entry)
    }

    /// Calls recorded in total.
    pub fn total_calls(&self) -> u64 {
        self.inner.total.latency.count()
    }

    /// Calls over the retention window, in buckets of `bucket_minutes` when given, in all
    /// only: no series per server or tool is made.
    pub fn window_totals(&self, bucket_minutes: Option<u64>) -> WindowReport {
        self.inner.window.report(SystemTime::now(), bucket_minutes)
    }

    /// Calls over the retention window, in buckets of `bucket_minutes` when given: in all,
    /// per server and per (server, tool) pair. `server` and `tool` keep only the matching
    /// servers and pairs.
    pub fn window(
        &self,
        bucket_minutes: Option<u64>,
        server: Option<&str>,
        tool: Option<&str>,
    ) -> WindowReport {
        let now = SystemTime::now();
        let mut r = self.inner.window.report(now, bucket_minutes);
        let map = self.inner.servers.read().expect("metrics lock poisoned");
        for (sid, (e, tools)) in map.iter() {
            if server.is_some_and(|s| s != &**sid) {
                continue;
            }
            if tool.is_none()
                && let Some(w) = e
                    .stats
                    .window
                    .get()
                    .and_then(|w| w.series(now, bucket_minutes))
            {
                r.servers.insert(sid.to_string(), w);
            }
            for (t, st) in tools {
                if tool.is_some_and(|x| x != &**t) {
                    continue;
                }
                if let Some(w) = st.window.get().and_then(|w| w.series(now, bucket_minutes)) {
                    r.tools.push(ToolWindow {
                        server: sid.to_string(),
                        tool: t.to_string(),
                        window: w,
                    });
                }
            }
        }
        r.tools
            .sort_by(|a, b| (&a.server, &a.tool).cmp(&(&b.server, &b.tool)));
        r
    }

    /// A point-in-time copy of every number.
    pub fn snapshot(&self) -> Snapshot {
        let map = self.inner.servers.read().expect("metrics lock poisoned");
        let mut servers = BTreeMap::new();
        let mut tools = Vec::new();
        let mut methods = Vec::new();
        let mut in_flight = BTreeMap::new();
        for (sid, (s, tmap)) in map.iter() {
            let snap = s.stats.snapshot();
            if snap.calls > 0 {
                servers.insert(sid.to_string(), snap);
            }
            in_flight.insert(sid.to_string(), s.in_flight.load(Ordering::Relaxed));
            for (t, st) in tmap {
                tools.push(ToolSnapshot {
                    server: sid.to_string(),
                    tool: t.to_string(),
                    stats: st.snapshot(),
                });
            }
            for (mi, counts) in s.methods.iter().enumerate() {
                let outcomes: BTreeMap<&'static str, u64> = Outcome::ALL
                    .iter()
                    .map(|o| (o.as_str(), counts[*o as usize].load(Ordering::Relaxed)))
                    .filter(|(_, n)| *n > 0)
                    .collect();
                if !outcomes.is_empty() {
                    methods.push(MethodSnapshot {
                        server: sid.to_string(),
                        method: METHODS[mi],
                        calls: outcomes.values().sum(),
                        outcomes,
                    });
                }
            }
        }
        tools.sort_by(|a, b| (&a.server, &a.tool).cmp(&(&b.server, &b.tool)));
        methods.sort_by(|a, b| (&a.server, a.method).cmp(&(&b.server, b.method)));
        Snapshot {
            uptime_seconds: self.inner.started.elapsed().as_secs(),
            total: self.inner.total.snapshot(),
            servers,
            tools,
            methods,
            in_flight,
            rate_limit: self.rate_limit_counts(),
            auth_failures: self.auth_failures(),
            series_overflow: self.inner.overflow.load(Ordering::Relaxed),
        }
    }

    /// Has tool-call latency recorded into `h` too (an OpenTelemetry exporter's histogram),
    /// one series per (server, tool) pair, bound to its attributes when the pair is first
    /// seen. Attach it before the first call; the first histogram attached stays.
    pub(crate) fn attach_duration(&self, h: opentelemetry::metrics::Histogram<f64>) {
        let _ = self.inner.duration.set(h);
    }

    /// Every non-zero request count by (server, method, outcome).
    pub(crate) fn each_request_count(&self, mut f: impl FnMut(&str, &'static str, Outcome, u64)) {
        let map = self.inner.servers.read().expect("metrics lock poisoned");
        for (s, (e, _)) in map.iter() {
            for (mi, counts) in e.methods.iter().enumerate() {
                for o in Outcome::ALL {
                    let n = counts[o as usize].load(Ordering::Relaxed);
                    if n > 0 {
                        f(s, METHODS[mi], o, n);
                    }
                }
            }
        }
    }

    /// Every non-zero tool-call count by (server, tool, outcome).
    pub(crate) fn each_tool_count(&self, mut f: impl FnMut(&str, &str, Outcome, u64)) {
        let map = self.inner.servers.read().expect("metrics lock poisoned");
        for (s, (_, tools)) in map.iter() {
            for (t, st) in tools {
                for o in Outcome::ALL {
                    let n = st.outcomes[o as usize].load(Ordering::Relaxed);
                    if n > 0 {
                        f(s, t, o, n);
                    }
                }
            }
        }
    }

    /// Calls in flight now, per server seen so far.
    pub(crate) fn each_in_flight(&self, mut f: impl FnMut(&str, i64)) {
        let map = self.inner.servers.read().expect("metrics lock poisoned");
        for (s, (e, _)) in map.iter() {
            f(s, e.in_flight.load(Ordering::Relaxed));
        }
    }

    /// Tool calls counted under `tool="_other"` because of the series bound.
    pub fn series_overflow(&self) -> u64 {
        self.inner.overflow.load(Ordering::Relaxed)
    }

    /// When the recorder was created.
    pub fn started_at(&self) -> SystemTime {
        SystemTime::now() - self.inner.started.elapsed()
    }
}

/// Escapes a Prometheus label value.
pub fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PrometheusExporter;

    /// The value of the series `name` with exactly `labels` (in any order) in `text`.
    fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut want: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        want.sort();
        text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
            let body = rest.strip_suffix('}')?;
            let mut got: Vec<String> = body
                .split(',')
                .filter(|p| !p.is_empty())
                .map(String::from)
                .collect();
            got.sort();
            (n == name && got == want).then(|| value.parse().ok())?
        })
    }

    #[test]
    fn records_per_server_and_tool() {
        let r = Recorder::new(10);
        let exporter = PrometheusExporter::new(&r, 100).unwrap();
        r.record(
            "fs",
            "tools/call",
            Some("read"),
            Outcome::Ok,
            Duration::from_millis(2),
        );
        r.record(
            "fs",
            "tools/call",
            Some("read"),
            Outcome::ToolError,
            Duration::from_millis(4),
        );
        r.record(
            "fs",
            "tools/call",
            Some("write"),
            Outcome::Ok,
            Duration::from_millis(1),
        );
        r.record(
            "gh",
            "tools/call",
            Some("issue"),
            Outcome::Timeout,
            Duration::from_millis(30),
        );
        let s = r.snapshot();
        assert_eq!(s.total.calls, 4);
        assert_eq!(s.total.errors, 2);
        assert_eq!(s.servers["fs"].calls, 3);
        assert_eq!(s.servers["gh"].outcomes["timeout"], 1);
        let read = s.tools.iter().find(|t| t.tool == "read").unwrap();
        assert_eq!(read.stats.calls, 2);
        assert_eq!(read.stats.error_rate, 0.5);
        let p = exporter.render();
        let tool_calls = [
            ("server", "fs"),
            ("tool", "read"),
            ("outcome", "tool_error"),
        ];
        assert_eq!(
            sample(&p, "mcp_gateway_tool_calls_total", &tool_calls),
            Some(1.0),
            "{p}"
        );
        let gh = [("server", "gh"), ("tool", "issue")];
        assert_eq!(
            sample(&p, "mcp_gateway_tool_call_duration_seconds_count", &gh),
            Some(1.0),
            "{p}"
        );
        // 30 ms: above the 25 ms bucket, within the 50 ms one.
        let le = |b: &'static str| [("server", "gh"), ("tool", "issue"), ("le", b)];
        let bucket = "mcp_gateway_tool_call_duration_seconds_bucket";
        assert_eq!(sample(&p, bucket, &le("0.025")), Some(0.0), "{p}");
        assert_eq!(sample(&p, bucket, &le("0.05")), Some(1.0), "{p}");
        r.record_rate_limit(RateLimitDecision::Limited);
        r.record_rate_limit(RateLimitDecision::FallbackOpen);
        assert_eq!(r.snapshot().rate_limit.limited, 1);
        let p = exporter.render();
        let limited = [("result", "limited")];
        assert_eq!(
            sample(&p, "mcp_gateway_rate_limit_decisions_total", &limited),
            Some(1.0)
        );
        let open = [("mode", "open")];
        assert_eq!(
            sample(&p, "mcp_gateway_rate_limit_fallbacks_total", &open),
            Some(1.0)
        );
        r.count_auth_failure("token_expired");
        r.count_auth_failure("token_expired");
        r.count_auth_failure("missing_credentials");
        assert_eq!(r.snapshot().auth_failures["token_expired"], 2);
        let expired = [("reason", "token_expired")];
        assert_eq!(
            sample(
                &exporter.render(),
                "mcp_gateway_auth_failures_total",
                &expired
            ),
            Some(2.0)
        );
    }

    #[test]
    fn bounds_series_and_methods() {
        let r = Recorder::new(0);
        r.configure(&RecorderOptions {
            max_series: 3,
            ..Default::default()
        });
        let exporter = PrometheusExporter::new(&r, 3).unwrap();
        let ms = Duration::from_millis(1);
        r.record("fs", "tools/call", Some("a"), Outcome::Ok, ms); // server + 1 pair
        r.record("fs", "tools/call", Some("b"), Outcome::Ok, ms); // 3: at the bound
        r.record("fs", "tools/call", Some("c"), Outcome::Ok, ms); // -> _other
        r.record("fs", "tools/call", Some("d"), Outcome::Ok, ms); // -> _other
        r.record("gh", "tools/list", None, Outcome::Ok, ms); // new server -> _other
        r.record("fs", "weird/method", None, Outcome::Timeout, ms);
        let p = exporter.render();
        let requests = "mcp_gateway_requests_total";
        for (name, labels, want) in [
            (
                "mcp_gateway_tool_calls_total",
                [("server", "fs"), ("tool", "_other"), ("outcome", "ok")],
                2.0,
            ),
            (
                requests,
                [
                    ("server", "fs"),
                    ("method", "tools/call"),
                    ("outcome", "ok"),
                ],
                4.0,
            ),
            (
                requests,
                [
                    ("server", "fs"),
                    ("method", "_other"),
                    ("outcome", "timeout"),
                ],
                1.0,
            ),
            (
                requests,
                [
                    ("server", "_other"),
                    ("method", "tools/list"),
                    ("outcome", "ok"),
                ],
                1.0,
            ),
        ] {
            assert_eq!(
                sample(&p, name, &labels),
                Some(want),
                "{name} {labels:?} in\n{p}"
            );
        }
        assert_eq!(
            sample(&p, "mcp_gateway_series_overflow_total", &[]),
            Some(2.0)
        );
        let other = [("server", "fs"), ("tool", "_other")];
        let count = "mcp_gateway_tool_call_duration_seconds_count";
        assert_eq!(sample(&p, count, &other), Some(2.0), "{p}");
        assert!(!p.contains(r#"tool="c""#));
        assert_eq!(method_label("prompts/get"), "prompts/get");
        assert_eq!(method_label("x"), OTHER);
    }
}
