//! The tower layer that records every MCP-plane call.

use crate::log::LogEntry;
use crate::recorder::{Outcome, Recorder};
use mcp_gateway_core::{McpError, McpRequest, McpResponse};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};
use tower::{Layer, Service};

/// Describes the call for the request log; front ends put it in the request's extensions.
#[derive(Clone, Debug, Default)]
pub struct CallInfo {
    /// `rest` or `mcp`.
    pub transport: &'static str,
}

/// Records calls into a [`Recorder`].
#[derive(Clone, Debug)]
pub struct McpMetricsLayer {
    recorder: Recorder,
}

impl McpMetricsLayer {
    /// Records into `recorder`.
    pub fn new(recorder: Recorder) -> Self {
        Self { recorder }
    }
}

impl<S> Layer<S> for McpMetricsLayer {
    type Service = McpMetrics<S>;
    fn layer(&self, inner: S) -> McpMetrics<S> {
        McpMetrics {
            inner,
            recorder: self.recorder.clone(),
        }
    }
}

/// Service of [`McpMetricsLayer`].
#[derive(Clone, Debug)]
pub struct McpMetrics<S> {
    inner: S,
    recorder: Recorder,
}

impl<S> Service<McpRequest> for McpMetrics<S>
where
    S: Service<McpRequest, Response = McpResponse, Error = McpError>,
{
    type Response = McpResponse;
    type Error = McpError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), McpError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: McpRequest) -> Self::Future {
        let tool = if req.method() == "tools/call" {
            req.tool_name().ok().flatten().map(|t| t.into_owned())
        } else {
            None
        };
        let call = Call {
            recorder: self.recorder.clone(),
            method: req.method().to_string(),
            tool,
            server: req.server.as_deref().map(str::to_string),
            identity: req.identity.as_ref().map(|i| i.subject.clone()),
            transport: req
                .extensions
                .get::<CallInfo>()
                .map_or("mcp", |c| c.transport),
            at: SystemTime::now(),
            start: Instant::now(),
        };
        ResponseFuture {
            inner: self.inner.call(req),
            call: Some(call),
        }
    }
}

struct Call {
    recorder: Recorder,
    method: String,
    tool: Option<String>,
    server: Option<String>,
    identity: Option<String>,
    transport: &'static str,
    at: SystemTime,
    start: Instant,
}

impl Call {
    fn finish(self, res: &Result<McpResponse, McpError>) {
        self.finish_as(Some(res));
    }

    /// Records the call; `None` when it was dropped unanswered (cancelled).
    fn finish_as(self, res: Option<&Result<McpResponse, McpError>>) {
        let elapsed = self.start.elapsed();
        let (outcome, status, server, error) = match res {
            None => (Outcome::Cancelled, 499, None, None),
            Some(Ok(r)) => {
                let outcome = if is_tool_error(r.result.get()) {
                    Outcome::ToolError
                } else {
                    Outcome::Ok
                };
                (outcome, 200, r.server.as_deref().map(str::to_string), None)
            }
            Some(Err(e)) => (
                Outcome::of_error(e),
                e.http_status(),
                e.server().map(|s| s.to_string()),
                Some(e.to_string()),
            ),
        };
        let server = server.or(self.server).unwrap_or_else(|| "-".into());
        // A qualified name (`fs__read`) is recorded under the name the server knows.
        let tool = self.tool.map(|t| {
            match t
                .strip_prefix(server.as_str())
                .and_then(|r| r.strip_prefix("__"))
            {
                Some(bare) => bare.to_string(),
                None => t,
            }
        });
        let label = tool.as_deref().unwrap_or(&self.method);
        self.recorder.record(&server, label, outcome, elapsed);
        let log = self.recorder.log();
        if log.enabled() {
            log.push(LogEntry {
                id: log.next_id(),
                time: crate::rfc3339(self.at),
                at: self.at,
                transport: self.transport,
                identity: self.identity,
                method: self.method,
                server,
                tool,
                outcome: outcome.as_str(),
                status,
                duration_ms: elapsed.as_secs_f64() * 1000.0,
                error,
            });
        }
    }
}

/// True when a `tools/call` result says `isError: true`. Only results that mention the key
/// are parsed, and only their top level.
fn is_tool_error(result: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(default, rename = "isError")]
        is_error: bool,
    }
    result.contains("\"isError\"") && serde_json::from_str::<Head>(result).is_ok_and(|h| h.is_error)
}

pin_project_lite::pin_project! {
    /// Future of [`McpMetrics`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        call: Option<Call>,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before it finished: the caller cancelled or went away.
            if let Some(call) = this.project().call.take() {
                call.finish_as(None);
            }
        }
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<McpResponse, McpError>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = std::task::ready!(this.inner.poll(cx));
        if let Some(call) = this.call.take() {
            call.finish(&res);
        }
        Poll::Ready(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_tool_errors() {
        assert!(is_tool_error(r#"{"content":[],"isError":true}"#));
        assert!(!is_tool_error(r#"{"content":[],"isError":false}"#));
        assert!(!is_tool_error(
            r#"{"content":[{"type":"text","text":"\"isError\":true"}]}"#
        ));
    }
}
