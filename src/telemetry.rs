//! Logs and traces. [`init`] installs the binary's `tracing` subscriber: log lines at
//! `logLevel` (JSON or pretty) and, when `monitor.tracing` is configured, an OpenTelemetry
//! layer that exports the gateway's spans over OTLP/HTTP. The gateway's spans are debug
//! level, so without that layer they are never built and tracing costs nothing.
//!
//! The front ends tie each call to the caller's W3C trace through [`continue_trace`], which
//! works with any subscriber that has a `tracing-opentelemetry` layer, so an application
//! embedding [`crate::Gateway`] under its own OpenTelemetry set-up gets the same spans.

use crate::config::{Config, LogFormat, OtlpProtocol, TracingConfig};
use mcp_gateway_core::TraceContext;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use std::sync::Arc;
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

/// Reads `traceparent` (and `tracestate`) out of one header value for the propagator.
struct OneHeader<'a>(&'a str);

impl opentelemetry::propagation::Extractor for OneHeader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent").then_some(self.0)
    }
    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}

/// Makes `span` continue the caller's trace and returns the gateway's hop of it, which is
/// what the upstream is told.
///
/// With an OpenTelemetry layer installed and `span` enabled, the hop is `span` itself, so
/// the upstream's spans hang under the gateway's: its trace comes from the enclosing HTTP
/// request span (which took the `traceparent` header), or from `traceparent` when
/// `is_own_parent` (a `_meta.traceparent` the HTTP layer could not see), or is new.
/// Otherwise the caller's `traceparent` continues with a fresh span id, and nothing is made
/// up without one.
pub fn continue_trace(
    span: &tracing::Span,
    traceparent: Option<&str>,
    is_own_parent: bool,
) -> Option<Arc<TraceContext>> {
    if !span.is_disabled() {
        if is_own_parent && let Some(tp) = traceparent {
            let parent = TraceContextPropagator::new().extract(&OneHeader(tp));
            if parent.span().span_context().is_valid() {
                // Fails only when no OpenTelemetry layer is installed, handled below.
                let _ = span.set_parent(parent);
            }
        }
        let cx = span.context();
        let sc = cx.span().span_context().clone();
        if sc.is_valid()
            && let Some(t) = TraceContext::from_ids(
                sc.trace_id().to_string(),
                sc.span_id().to_string(),
                sc.trace_flags().to_u8(),
            )
        {
            return Some(Arc::new(t));
        }
    }
    traceparent
        .and_then(TraceContext::continue_from)
        .map(Arc::new)
}

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
