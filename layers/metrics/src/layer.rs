//! The tower layer that records every MCP-plane call.

use crate::log::{LogEntry, log_body};
use crate::recorder::{InFlight, Outcome, Recorder};
use mcp_gateway_core::{Identity, McpError, McpRequest, McpResponse, RequestIds, Routing};
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};
use tower::{Layer, Service};

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

    fn call(&mut self, mut req: McpRequest) -> Self::Future {
        let is_call = req.method() == "tools/call";
        // The route decided at the top of the plane: the server for the in-flight gauge, and
        // the tool under the name the server knows.
        // A call that resolved to no server is counted under none: the server it named is
        // the caller's text, not one of the gateway's (no series per made-up id).
        let (tool, target, routed): (Option<String>, Option<Arc<str>>, bool) = match &req.route {
            Routing::Routed(r) => (Some(r.tool.to_string()), Some(r.server.clone()), true),
            Routing::Failed(_) => (
                req.tool_name().ok().flatten().map(|t| t.into_owned()),
                None,
                false,
            ),
            Routing::Unresolved if is_call => (
                req.tool_name().ok().flatten().map(|t| t.into_owned()),
                req.server.clone(),
                false,
            ),
            Routing::Unresolved => (None, req.server.clone(), false),
        };
        let in_flight = self.recorder.begin(target.as_deref().unwrap_or("-"));
        // Taken, not copied: nothing below the request log reads them. An embedder's front
        // end may still pass them as an extension.
        let mut ids = std::mem::take(&mut req.ids);
        if ids.is_empty()
            && let Some(e) = req.extensions.remove::<RequestIds>()
        {
            ids = e;
        }
        let arguments = if self.recorder.log_bodies() {
            req.params().map(|p| {
                let (fields, limit) = self.recorder.body_policy();
                #[derive(serde::Deserialize)]
                struct Args<'a> {
                    #[serde(borrow)]
                    arguments: Option<&'a serde_json::value::RawValue>,
                }
                let raw = match serde_json::from_str::<Args<'_>>(p.get()) {
                    Ok(Args { arguments: Some(a) }) if is_call => a.get(),
                    _ if is_call => "{}",
                    _ => p.get(),
                };
                log_body(raw, &fields, limit)
            })
        } else {
            None
        };
        let call = Call {
            recorder: self.recorder.clone(),
            method: req.method_text(),
            tool,
            server: target.clone(),
            routed,
            identity: req.identity.clone(),
            transport: req.transport,
            request_id: ids.request_id,
            trace_id: ids.trace_id,
            arguments,
            target,
            at: SystemTime::now(),
            start: Instant::now(),
            _in_flight: in_flight,
        };
        ResponseFuture {
            inner: self.inner.call(req),
            call: Some(call),
        }
    }
}

struct Call {
    recorder: Recorder,
    method: Cow<'static, str>,
    tool: Option<String>,
    server: Option<Arc<str>>,
    identity: Option<Arc<Identity>>,
    transport: &'static str,
    request_id: Option<String>,
    trace_id: Option<String>,
    arguments: Option<serde_json::Value>,
    /// The tool is already the server's own name (the call was resolved).
    routed: bool,
    /// The server the call was resolved to before it was sent.
    target: Option<Arc<str>>,
    at: SystemTime,
    start: Instant,
    /// Counts the call in flight until the call is dropped.
    _in_flight: InFlight,
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
                (outcome, 200, r.server.clone(), None)
            }
            Some(Err(e)) => (
                Outcome::of_error(e),
                e.http_status(),
                e.server().cloned(),
                Some(e.to_string()),
            ),
        };
        // A refused call (forbidden, say) may not name its server: use the one it was
        // resolved to.
        let server = server
            .or(self.server)
            .or(self.target)
            .unwrap_or_else(|| "-".into());
        // A qualified name (`fs__read`) is recorded under the name the server knows.
        let routed = self.routed;
        let tool = self.tool.map(|mut t| {
            if routed {
                return t;
            }
            let qualified = t.strip_prefix(&*server).and_then(|r| r.strip_prefix("__"));
            if let Some(bare) = qualified {
                // In place: the bare name is the end of the string.
                let cut = t.len() - bare.len();
                t.drain(..cut);
            }
            t
        });
        self.recorder
            .record(&server, &self.method, tool.as_deref(), outcome, elapsed);
        let log = self.recorder.log();
        if log.enabled() {
            let result = match res {
                Some(Ok(r)) if self.arguments.is_some() || self.recorder.log_bodies() => {
                    let (fields, limit) = self.recorder.body_policy();
                    Some(log_body(r.result.get(), &fields, limit))
                }
                _ => None,
            };
            let id = log.next_id();
            log.push(LogEntry {
                id,
                request_id: self.request_id.unwrap_or_else(|| id.to_string()),
                trace_id: self.trace_id,
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
                arguments: self.arguments,
                result,
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

    #[test]
    fn reads_traceparent() {
        let t = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            RequestIds::trace_id_of(t).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "",
        ] {
            assert_eq!(RequestIds::trace_id_of(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn counts_in_flight_and_logs_bodies() {
        use tower::{ServiceExt, service_fn};
        let recorder = Recorder::new(10);
        recorder.configure(&crate::RecorderOptions {
            log_bodies: true,
            ..Default::default()
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let rx = Arc::new(tokio::sync::Mutex::new(Some(rx)));
        let svc =
            McpMetricsLayer::new(recorder.clone()).layer(service_fn(move |_r: McpRequest| {
                let rx = rx.clone();
                async move {
                    if let Some(rx) = rx.lock().await.take() {
                        let _ = rx.await;
                    }
                    let result = serde_json::value::RawValue::from_string(
                        r#"{"content":[],"token":"t"}"#.into(),
                    )
                    .unwrap();
                    Ok::<_, McpError>(McpResponse {
                        result,
                        server: Some("fs".into()),
                    })
                }
            }));
        let args = serde_json::value::RawValue::from_string(
            r#"{"path":"/x","auth":{"password":"hunter2"}}"#.into(),
        )
        .unwrap();
        let mut req = McpRequest::call_tool("read", Some(&args)).with_server("fs");
        req.ids = RequestIds {
            request_id: Some("7".into()),
            trace_id: Some("ab".into()),
        };
        let pending = tokio::spawn(svc.clone().oneshot(req));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(recorder.in_flight("fs"), 1);
        // a call dropped before its answer leaves the gauge too
        let mut other = svc.clone();
        let fut = Service::call(
            &mut other,
            McpRequest::call_tool("read", None).with_server("fs"),
        );
        assert_eq!(recorder.in_flight("fs"), 2);
        drop(fut);
        assert_eq!(recorder.in_flight("fs"), 1);
        tx.send(()).unwrap();
        pending.await.unwrap().unwrap();
        assert_eq!(recorder.in_flight("fs"), 0);
        let log = recorder.log().query(&Default::default());
        let e = log.iter().find(|e| e.request_id == "7").unwrap();
        assert_eq!(e.trace_id.as_deref(), Some("ab"));
        assert_eq!(
            e.arguments.as_ref().unwrap(),
            &serde_json::json!({"path":"/x","auth":{"password":"[REDACTED]"}})
        );
        assert_eq!(e.result.as_ref().unwrap()["token"], "[REDACTED]");
        // Ids passed the older way, as an extension, are logged too (here for a call
        // dropped unanswered).
        let mut req = McpRequest::call_tool("read", None);
        req.extensions.insert(RequestIds {
            request_id: Some("8".into()),
            trace_id: None,
        });
        let mut svc = svc.clone();
        let fut = Service::call(&mut svc, req);
        drop(fut);
        let log = recorder.log().query(&Default::default());
        assert!(log.iter().any(|e| e.request_id == "8"), "{log:?}");
    }

    #[tokio::test]
    async fn logs_the_name_the_server_knows_and_shares_the_caller() {
        use tower::{ServiceExt, service_fn};
        let recorder = Recorder::new(10);
        let svc =
            McpMetricsLayer::new(recorder.clone()).layer(service_fn(|_r: McpRequest| async {
                let result = serde_json::value::RawValue::from_string("{}".into()).unwrap();
                Ok::<_, McpError>(McpResponse {
                    result,
                    server: Some("fs".into()),
                })
            }));
        let caller = Arc::new(Identity {
            subject: "alice".into(),
            roles: vec![],
            tenant: None,
            key_name: None,
            claims: None,
        });
        for name in ["fs__read", "read", "fsx__read"] {
            let mut req = McpRequest::call_tool(name, None);
            req.identity = Some(caller.clone());
            svc.clone().oneshot(req).await.unwrap();
        }
        let log = recorder.log().query(&Default::default());
        let tools: Vec<_> = log
            .iter()
            .rev()
            .map(|e| e.tool.as_deref().unwrap())
            .collect();
        assert_eq!(tools, ["read", "read", "fsx__read"]);
        let e = serde_json::to_value(&log[0]).unwrap();
        assert_eq!(
            (e["identity"].as_str(), e["server"].as_str()),
            (Some("alice"), Some("fs"))
        );
        assert_eq!(
            (e["method"].as_str(), e["transport"].as_str()),
            (Some("tools/call"), Some("mcp"))
        );
    }
}
