//! Ties a call's span to the caller's W3C trace.

use mcp_gateway_core::TraceContext;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::sync::Arc;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Reads `traceparent` (and `tracestate`) out of one header value for the propagator.
pub struct OneHeader<'a>(pub &'a str);

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
