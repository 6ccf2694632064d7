//! The recorder's numbers as OpenTelemetry instruments, exposed in the Prometheus text
//! format by `opentelemetry-prometheus`.
//!
//! Counters and gauges are *observable* instruments: their callbacks read the recorder's
//! atomics when Prometheus scrapes, so the call path pays nothing for them. Latency is a
//! synchronous OpenTelemetry histogram whose series are bound to their (server, tool)
//! attributes once, when the recorder first sees the pair, so a call
//! records into it without building or hashing an attribute set.

use crate::recorder::{OTHER, Recorder};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry_sdk::metrics::{Instrument, SdkMeterProvider, Stream};
use prometheus::TextEncoder;

/// Bucket bounds of `mcp_gateway_tool_call_duration_seconds`, in seconds.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// An OpenTelemetry meter provider over a [`Recorder`], read by a Prometheus exporter.
///
/// Add instruments of your own with [`PrometheusExporter::meter`]; [`render`] serves them
/// all.
///
/// [`render`]: PrometheusExporter::render
pub struct PrometheusExporter {
    provider: SdkMeterProvider,
    registry: prometheus::Registry,
    meter: Meter,
}

impl std::fmt::Debug for PrometheusExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusExporter").finish_non_exhaustive()
    }
}

impl PrometheusExporter {
    /// Exposes `recorder`. `max_series` is the recorder's (server, tool) bound: the
    /// per-tool streams are sized for it (and every outcome), so the SDK's own cardinality
    /// limit never folds series the recorder keeps.
    pub fn new(recorder: &Recorder, max_series: usize) -> Result<Self, String> {
        let registry = prometheus::Registry::new();
        let reader = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_target_info()
            .scope_info_enabled(false)
            .build()
            .map_err(|e| format!("cannot build the Prometheus exporter: {e}"))?;
        // The SDK folds series past an instrument's cardinality limit into one overflow
        // series, and preallocates a table for the limit: size the (server, tool) instruments
        // for the recorder's bound, and the rest for what they can hold.
        let outcomes = crate::recorder::Outcome::ALL.len();
        let pairs = max_series + 2;
        let provider = SdkMeterProvider::builder()
            .with_reader(reader)
            .with_view(move |i: &Instrument| {
                let limit = match i.name() {
                    "mcp_gateway_tool_call_duration" => pairs,
                    "mcp_gateway_tool_calls" => pairs * outcomes,
                    // Every method and outcome of 64 servers.
                    "mcp_gateway_requests" => 64 * crate::recorder::METHODS.len() * outcomes,
                    _ => return None,
                };
                Stream::builder().with_cardinality_limit(limit).build().ok()
            })
            .build();
        let meter = provider.meter("mcp-gateway");
        register(&meter, recorder);
        Ok(Self {
            provider,
            registry,
            meter,
        })
    }

    /// The meter behind the exporter, for more instruments (observable ones cost nothing
    /// between scrapes).
    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    /// Everything the provider holds, in the Prometheus text format 0.0.4.
    pub fn render(&self) -> String {
        // The encoder fails only on malformed metric families, which these instruments
        // never make.
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }

    /// Stops the provider.
    pub fn shutdown(&self) {
        let _ = self.provider.shutdown();
    }
}

fn outcome_attrs(server: &str, key: &'static str, value: &str, outcome: &str) -> [KeyValue; 3] {
    [
        KeyValue::new("server", server.to_string()),
        KeyValue::new(key, value.to_string()),
        KeyValue::new("outcome", outcome.to_string()),
    ]
}

/// The recorder's instruments.
fn register(meter: &Meter, recorder: &Recorder) {
    let r = recorder.clone();
    meter
        .u64_observable_counter("mcp_gateway_requests")
        .with_description("MCP requests by server, method and outcome.")
        .with_callback(move |o| {
            r.each_request_count(|server, method, outcome, n| {
                o.observe(
                    n,
                    &outcome_attrs(server, "method", method, outcome.as_str()),
                );
            });
        })
        .build();
    let r = recorder.clone();
    meter
        .u64_observable_counter("mcp_gateway_tool_calls")
        .with_description("Tool calls by server, tool and outcome.")
        .with_callback(move |o| {
            r.each_tool_count(|server, tool, outcome, n| {
                o.observe(n, &outcome_attrs(server, "tool", tool, outcome.as_str()));
            });
        })
        .build();
    recorder.attach_duration(
        meter
            .f64_histogram("mcp_gateway_tool_call_duration")
            .with_unit("s")
            .with_description("Latency of tool calls.")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build(),
    );
    let r = recorder.clone();
    meter
        .i64_observable_gauge("mcp_gateway_in_flight_calls")
        .with_description("MCP calls in flight, by server.")
        .with_callback(move |o| {
            r.each_in_flight(|server, n| {
                o.observe(n, &[KeyValue::new("server", server.to_string())]);
            });
        })
        .build();
    let r = recorder.clone();
    meter
        .u64_observable_counter("mcp_gateway_series_overflow")
        .with_description(format!(
            "Tool calls counted under tool=\"{OTHER}\" because the (server, tool) series bound was reached."
        ))
        .with_callback(move |o| o.observe(r.series_overflow(), &[]))
        .build();
    let r = recorder.clone();
    meter
        .u64_observable_counter("mcp_gateway_auth_failures")
        .with_description("Requests refused by authentication, by reason.")
        .with_callback(move |o| {
            for (reason, n) in r.auth_failures() {
                o.observe(n, &[KeyValue::new("reason", reason)]);
            }
        })
        .build();
    let r = recorder.clone();
    meter
        .u64_observable_counter("mcp_gateway_rate_limit_decisions")
        .with_description("Rate-limiter decisions by result.")
        .with_callback(move |o| {
            let c = r.rate_limit_counts();
            o.observe(c.allowed, &[KeyValue::new("result", "allowed")]);
            o.observe(c.limited, &[KeyValue::new("result", "limited")]);
        })
        .build();
    let r = recorder.clone();
    meter
        .u64_observable_counter("mcp_gateway_rate_limit_fallbacks")
        .with_description(
            "Requests decided by the fail mode while the shared rate-limit backend was unreachable.",
        )
        .with_callback(move |o| {
            let c = r.rate_limit_counts();
            o.observe(c.fallback_open, &[KeyValue::new("mode", "open")]);
            o.observe(c.fallback_closed, &[KeyValue::new("mode", "closed")]);
        })
        .build();
}
