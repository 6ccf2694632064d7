//! Logs and traces. [`init`] installs the binary's `tracing` subscriber: log lines at
//! `logLevel` (JSON or pretty) and, when `monitor.tracing` is configured, an OpenTelemetry
//! layer that exports the gateway's spans over OTLP/HTTP. The gateway's spans are debug
//! level, so without that layer they are never built and tracing costs nothing.
//!
//! The front ends tie each call to the caller's W3C trace through [`continue_trace`], which
//! works with any subscriber that has a `tracing-opentelemetry` layer, so an application
//! embedding [`crate::Gateway`] under its own OpenTelemetry set-up gets the same spans.

use crate::config::{Config, LogFormat, OtlpProtocol, TracingConfig};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use std::time::Duration;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Keeps the span exporter alive; [`Telemetry::shutdown`] sends what is still buffered.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Flushes buffered spans and stops the exporter. Blocks up to the export timeout, so
    /// call it outside the async runtime (or from a blocking task).
    pub fn shutdown(self) {
        if let Some(p) = self.provider
            && let Err(e) = p.shutdown()
        {
            eprintln!("mcp-gateway: flushing spans to the collector failed: {e}");
        }
    }
}

/// A tracer provider that exports to the configured OTLP/HTTP collector in batches, sampling
/// new traces at `sampleRatio` and following the caller's sampled flag otherwise.
pub fn tracer_provider(t: &TracingConfig) -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(t.traces_url())
        .with_protocol(match t.protocol {
            OtlpProtocol::HttpProtobuf => opentelemetry_otlp::Protocol::HttpBinary,
            OtlpProtocol::HttpJson => opentelemetry_otlp::Protocol::HttpJson,
        })
        .with_timeout(Duration::from_millis(t.timeout_ms))
        .with_headers(t.headers.clone().into_iter().collect())
        .build()
        .map_err(|e| format!("monitor.tracing: cannot build the OTLP exporter: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(t.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            t.sample_ratio,
        ))))
        .with_resource(resource)
        .build())
}

/// The `tracing-opentelemetry` layer for `provider`, filtered to what it should see: every
/// span of the gateway's crates (they are debug level) and their warnings and errors as span
/// events. Nothing else reaches the exporter.
pub fn otel_layer<S>(provider: &SdkTracerProvider) -> impl Layer<S> + Send + Sync + 'static
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
{
    let own = |m: &tracing::Metadata<'_>| {
        m.target().starts_with("mcp_gateway") && (m.is_span() || *m.level() <= tracing::Level::WARN)
    };
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("mcp-gateway"))
        .with_filter(tracing_subscriber::filter::filter_fn(own))
}

/// Installs the process-wide subscriber for `cfg`: log lines on stderr filtered by
/// `RUST_LOG` or `logLevel`, plus span export when `monitor.tracing` is set.
pub fn init(cfg: &Config) -> Result<Telemetry, String> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{},tower_http=warn", cfg.log_level.as_str())));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match cfg.log_format {
        LogFormat::Json => fmt.json().with_filter(filter).boxed(),
        LogFormat::Pretty => fmt.with_filter(filter).boxed(),
    };
    let provider = cfg
        .monitor
        .tracing
        .as_ref()
        .map(tracer_provider)
        .transpose()?;
    let otel = provider.as_ref().map(otel_layer);
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| format!("cannot install the log subscriber: {e}"))?;
    Ok(Telemetry { provider })
}

use mcp_gateway_mcp_server::OneHeader;
pub use mcp_gateway_mcp_server::continue_trace;

/// The span of one HTTP request (debug level), continuing the caller's `traceparent` header.
pub(crate) fn http_span<B>(req: &http::Request<B>) -> tracing::Span {
    let span = tracing::debug_span!(
        "HTTP request",
        otel.name = tracing::field::Empty,
        otel.kind = "server",
        http.request.method = %req.method(),
        url.path = %req.uri().path(),
        http.response.status_code = tracing::field::Empty,
    );
    if !span.is_disabled() {
        span.record(
            "otel.name",
            format!("{} {}", req.method(), req.uri().path()).as_str(),
        );
        if let Some(tp) = req
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
        {
            let parent = TraceContextPropagator::new().extract(&OneHeader(tp));
            if parent.span().span_context().is_valid() {
                let _ = span.set_parent(parent);
            }
        }
    }
    span
}
