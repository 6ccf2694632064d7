//! Call metrics and the request log for the MCP plane.
//!
//! [`McpMetricsLayer`] wraps any `Service<McpRequest>` (normally the tool router) and
//! records, per server and tool: calls, outcomes and a latency histogram; per server and
//! MCP method: outcomes; per server: calls in flight; per minute: counts and latency over
//! the retention window; plus one entry per call in a bounded ring ([`RequestLog`]), with
//! the time it waited for its server's concurrency slot and, when capture is on, its
//! bodies, redacted ([`capture`](crate::Redactor)).
//! Recording is a few atomic adds behind an uncontended read lock, with no allocation once
//! a (server, tool) pair has been seen; the ring takes a short mutex, and the per-minute
//! ring one lock per minute. Everything lives in one [`Recorder`] shared by every clone of
//! the layer. [`PrometheusExporter`] exposes it as OpenTelemetry instruments, rendered as
//! Prometheus text (format 0.0.4) by `opentelemetry-prometheus`.
//!
//! ```
//! use mcp_gateway_core::{McpError, McpRequest, McpResponse};
//! use mcp_gateway_metrics::{McpMetricsLayer, Recorder};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let recorder = Recorder::new(100);
//! let svc = ServiceBuilder::new()
//!     .layer(McpMetricsLayer::new(recorder.clone()))
//!     .service(service_fn(|_req: McpRequest| async {
//!         let result = serde_json::value::RawValue::from_string("{}".into()).unwrap();
//!         Ok::<_, McpError>(McpResponse { result, server: Some("fs".into()) })
//!     }));
//! svc.oneshot(McpRequest::call_tool("read", None)).await.unwrap();
//! assert_eq!(recorder.snapshot().total.calls, 1);
//! # }
//! ```

mod capture;
mod gauges;
mod histogram;
mod layer;
mod log;
mod otel;
mod recorder;
mod window;

pub use capture::{BodyState, Capture, CaptureMode, REDACTED, Redactor, capture_body};
pub use gauges::{ConfigReloads, GatewayGauges, HEALTH_STATES, ServerGauges, ServerHealth};
pub use histogram::Histogram;
pub use layer::{McpMetrics, McpMetricsLayer, ResponseFuture};
pub use log::{DEFAULT_CAPTURE_BYTES, LogEntry, LogQuery, ReplayOf, RequestLog, Timings};
pub use mcp_gateway_core::RequestIds;
pub use otel::{DURATION_BUCKETS, PrometheusExporter};
pub use recorder::{
    DEFAULT_MAX_SERIES, InFlight, METHODS, MethodSnapshot, OTHER, Outcome, RateLimitCounts,
    RateLimitDecision, Recorder, RecorderOptions, Snapshot, StatsSnapshot, ToolSnapshot, escape,
    method_label,
};
pub use window::{Bucket, SeriesWindow, ToolWindow, WindowLatency, WindowReport, WindowStats};

/// Formats a time as RFC 3339 UTC with milliseconds (`2026-11-25T21:29:07.123Z`).
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_rfc3339() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_764_106_147_123);
        assert_eq!(super::rfc3339(t), "2025-11-25T21:29:07.123Z");
        assert_eq!(
            super::rfc3339(std::time::UNIX_EPOCH),
            "1970-01-01T00:00:00.000Z"
        );
    }
}
