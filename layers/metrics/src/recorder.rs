//! The shared store behind the metrics layer.

use crate::histogram::Histogram;
use crate::log::{LogEntry, RequestLog};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

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
}

impl Stats {
    fn record(&self, outcome: Outcome, d: Duration) {
        self.outcomes[outcome as usize].fetch_add(1, Ordering::Relaxed);
        self.latency.record(d);
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
    pub outcomes: std::collections::BTreeMap<&'static str, u64>,
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
    /// Tool name (or the method for non-tool requests).
    pub tool: String,
    /// Its numbers.
    #[serde(flatten)]
    pub stats: StatsSnapshot,
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
    pub servers: std::collections::BTreeMap<String, StatsSnapshot>,
    /// Per server and tool.
    pub tools: Vec<ToolSnapshot>,
    /// Rate-limiter decisions (HTTP plane).
    pub rate_limit: RateLimitCounts,
    /// Requests refused by authentication, by reason (`missing_credentials`, ...).
    pub auth_failures: std::collections::BTreeMap<&'static str, u64>,
}

type ToolMap = HashMap<Box<str>, Arc<Stats>>;
type ServerMap = HashMap<Arc<str>, (Arc<Stats>, ToolMap)>;

#[derive(Debug)]
struct Inner {
    started: Instant,
    total: Stats,
    servers: RwLock<ServerMap>,
    log: RequestLog,
    rate_limit: [AtomicU64; 4],
    auth_failures: RwLock<HashMap<&'static str, AtomicU64>>,
}

/// Shared metrics store: clone it freely, every clone records into the same numbers.
#[derive(Clone, Debug)]
pub struct Recorder {
    inner: Arc<Inner>,
}

impl Recorder {
    /// A recorder whose request log keeps the last `log_capacity` calls (0 disables it).
    pub fn new(log_capacity: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                started: Instant::now(),
                total: Stats::default(),
                servers: RwLock::new(HashMap::new()),
                log: RequestLog::new(log_capacity),
                rate_limit: Default::default(),
                auth_failures: RwLock::new(HashMap::new()),
            }),
        }
    }

    /// Records one finished call.
    pub fn record(&self, server: &str, tool: &str, outcome: Outcome, elapsed: Duration) {
        self.inner.total.record(outcome, elapsed);
        let server_recorded = {
            let map = self.inner.servers.read().expect("metrics lock poisoned");
            match map.get(server) {
                Some((s, tools)) => {
                    s.record(outcome, elapsed);
                    if let Some(t) = tools.get(tool) {
                        t.record(outcome, elapsed);
                        return;
                    }
                    true
                }
                None => false,
            }
        };
        // First call for this server/tool pair: take the write lock once.
        let mut map = self.inner.servers.write().expect("metrics lock poisoned");
        let entry = map.entry(Arc::from(server)).or_insert_with(|| {
            let s = Arc::new(Stats::default());
            (s, HashMap::new())
        });
        if !server_recorded {
            entry.0.record(outcome, elapsed);
        }
        entry
            .1
            .entry(Box::from(tool))
            .or_default()
            .record(outcome, elapsed);
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
    pub fn auth_failures(&self) -> std::collections::BTreeMap<&'static str, u64> {
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

    /// Appends to the request log (no-op when it is disabled).
    pub fn log_call(&self, entry: LogEntry) {
        self.inner.log.push(entry);
    }

    /// Calls recorded in total.
    pub fn total_calls(&self) -> u64 {
        self.inner.total.latency.count()
    }

    /// A point-in-time copy of every number.
    pub fn snapshot(&self) -> Snapshot {
        let map = self.inner.servers.read().expect("metrics lock poisoned");
        let mut servers = std::collections::BTreeMap::new();
        let mut tools = Vec::new();
        for (sid, (s, tmap)) in map.iter() {
            servers.insert(sid.to_string(), s.snapshot());
            for (t, st) in tmap {
                tools.push(ToolSnapshot {
                    server: sid.to_string(),
                    tool: t.to_string(),
                    stats: st.snapshot(),
                });
            }
        }
        tools.sort_by(|a, b| (&a.server, &a.tool).cmp(&(&b.server, &b.tool)));
        Snapshot {
            uptime_seconds: self.inner.started.elapsed().as_secs(),
            total: self.inner.total.snapshot(),
            servers,
            tools,
            rate_limit: self.rate_limit_counts(),
            auth_failures: self.auth_failures(),
        }
    }

    /// Prometheus text exposition of the call metrics.
    pub fn prometheus(&self) -> String {
        use std::fmt::Write;
        const BOUNDS_US: [u64; 12] = [
            1_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
            5_000_000, 10_000_000,
        ];
        let mut out = String::new();
        out.push_str(
            "# HELP mcp_gateway_tool_calls_total MCP calls by server, tool and outcome.\n",
        );
        out.push_str("# TYPE mcp_gateway_tool_calls_total counter\n");
        let map = self.inner.servers.read().expect("metrics lock poisoned");
        let mut rows: Vec<_> = map
            .iter()
            .flat_map(|(s, (_, t))| t.iter().map(move |(tool, st)| (s, tool, st)))
            .collect();
        rows.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        for (s, t, st) in &rows {
            for o in Outcome::ALL {
                let n = st.outcomes[o as usize].load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "mcp_gateway_tool_calls_total{{server=\"{}\",tool=\"{}\",outcome=\"{}\"}} {n}",
                        escape(s),
                        escape(t),
                        o.as_str()
                    );
                }
            }
        }
        out.push_str("# HELP mcp_gateway_tool_call_duration_seconds Latency of MCP calls.\n");
        out.push_str("# TYPE mcp_gateway_tool_call_duration_seconds histogram\n");
        for (s, t, st) in &rows {
            let labels = format!("server=\"{}\",tool=\"{}\"", escape(s), escape(t));
            let cum = st.latency.cumulative(&BOUNDS_US);
            for (b, c) in BOUNDS_US.iter().zip(cum) {
                let _ = writeln!(
                    out,
                    "mcp_gateway_tool_call_duration_seconds_bucket{{{labels},le=\"{}\"}} {c}",
                    *b as f64 / 1e6
                );
            }
            let n = st.latency.count();
            let _ = writeln!(
                out,
                "mcp_gateway_tool_call_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {n}"
            );
            let _ = writeln!(
                out,
                "mcp_gateway_tool_call_duration_seconds_sum{{{labels}}} {}",
                st.latency.sum_us() as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "mcp_gateway_tool_call_duration_seconds_count{{{labels}}} {n}"
            );
        }
        let failures = self.auth_failures();
        if !failures.is_empty() {
            out.push_str(
                "# HELP mcp_gateway_auth_failures_total Requests refused by authentication, by reason.\n",
            );
            out.push_str("# TYPE mcp_gateway_auth_failures_total counter\n");
            for (reason, n) in failures {
                let _ = writeln!(
                    out,
                    "mcp_gateway_auth_failures_total{{reason=\"{}\"}} {n}",
                    escape(reason)
                );
            }
        }
        let rl = self.rate_limit_counts();
        out.push_str(
            "# HELP mcp_gateway_rate_limit_decisions_total Rate-limiter decisions by result.\n",
        );
        out.push_str("# TYPE mcp_gateway_rate_limit_decisions_total counter\n");
        let _ = writeln!(
            out,
            "mcp_gateway_rate_limit_decisions_total{{result=\"allowed\"}} {}\nmcp_gateway_rate_limit_decisions_total{{result=\"limited\"}} {}",
            rl.allowed, rl.limited
        );
        out.push_str("# HELP mcp_gateway_rate_limit_fallbacks_total Requests decided by the fail mode while the shared rate-limit backend was unreachable.\n");
        out.push_str("# TYPE mcp_gateway_rate_limit_fallbacks_total counter\n");
        let _ = writeln!(
            out,
            "mcp_gateway_rate_limit_fallbacks_total{{mode=\"open\"}} {}\nmcp_gateway_rate_limit_fallbacks_total{{mode=\"closed\"}} {}",
            rl.fallback_open, rl.fallback_closed
        );
        out
    }

    /// When the recorder was created.
    pub fn started_at(&self) -> SystemTime {
        SystemTime::now() - self.inner.started.elapsed()
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_per_server_and_tool() {
        let r = Recorder::new(10);
        r.record("fs", "read", Outcome::Ok, Duration::from_millis(2));
        r.record("fs", "read", Outcome::ToolError, Duration::from_millis(4));
        r.record("fs", "write", Outcome::Ok, Duration::from_millis(1));
        r.record("gh", "issue", Outcome::Timeout, Duration::from_millis(30));
        let s = r.snapshot();
        assert_eq!(s.total.calls, 4);
        assert_eq!(s.total.errors, 2);
        assert_eq!(s.servers["fs"].calls, 3);
        assert_eq!(s.servers["gh"].outcomes["timeout"], 1);
        let read = s.tools.iter().find(|t| t.tool == "read").unwrap();
        assert_eq!(read.stats.calls, 2);
        assert_eq!(read.stats.error_rate, 0.5);
        let p = r.prometheus();
        assert!(
            p.contains(
                r#"mcp_gateway_tool_calls_total{server="fs",tool="read",outcome="tool_error"} 1"#
            ),
            "{p}"
        );
        assert!(p.contains(
            r#"mcp_gateway_tool_call_duration_seconds_count{server="gh",tool="issue"} 1"#
        ));
        r.record_rate_limit(RateLimitDecision::Limited);
        r.record_rate_limit(RateLimitDecision::FallbackOpen);
        assert_eq!(r.snapshot().rate_limit.limited, 1);
        let p = r.prometheus();
        assert!(p.contains("mcp_gateway_rate_limit_decisions_total{result=\"limited\"} 1\n"));
        assert!(p.contains("mcp_gateway_rate_limit_fallbacks_total{mode=\"open\"} 1\n"));
        r.count_auth_failure("token_expired");
        r.count_auth_failure("token_expired");
        r.count_auth_failure("missing_credentials");
        assert_eq!(r.snapshot().auth_failures["token_expired"], 2);
        assert!(
            r.prometheus()
                .contains(r#"mcp_gateway_auth_failures_total{reason="token_expired"} 2"#)
        );
    }
}
