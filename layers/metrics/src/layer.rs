//! The tower layer that records every MCP-plane call.

use crate::capture::{Capture, CaptureMode, capture_body};
use crate::log::{LogEntry, ReplayOf, Timings};
use crate::recorder::{InFlight, Outcome, Recorder};
use mcp_gateway_core::timing::DispatchScope;
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
        // With capture off nothing is copied; with it on, the arguments are kept raw until
        // the outcome decides whether they are stored (`errors`), and redacted only then.
        let capture = self.recorder.capture_mode();
        let arguments = match (capture, req.params()) {
            (CaptureMode::None, _) | (_, None) => None,
            (_, Some(p)) => {
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
                Some(Pending::of(raw, self.recorder.body_limit()))
            }
        };
        // Only a replay carries one: a lookup in an empty map otherwise.
        let replay = req.extensions.get::<ReplayOf>().cloned();
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
            capture,
            arguments,
            replay,
            target,
            at: SystemTime::now(),
            start: Instant::now(),
            _in_flight: in_flight,
        };
        let mut scope = DispatchScope::default();
        let inner = {
            let _entered = scope.enter();
            self.inner.call(req)
        };
        ResponseFuture {
            inner,
            call: Some(call),
            scope,
        }
    }
}

/// Arguments held until the outcome is known.
enum Pending {
    /// The raw text (at most 64 × the body limit).
    Raw(Box<str>),
    /// Too large to be worth keeping: only its size.
    TooLarge(usize),
}

impl Pending {
    fn of(raw: &str, limit: usize) -> Self {
        if raw.len() > limit.saturating_mul(64) {
            Pending::TooLarge(raw.len())
        } else {
            Pending::Raw(raw.into())
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
    /// The capture mode when the call started.
    capture: CaptureMode,
    arguments: Option<Pending>,
    replay: Option<ReplayOf>,
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
    /// Records the call; `res` is `None` when it was dropped unanswered (cancelled).
    fn finish(self, res: Option<&Result<McpResponse, McpError>>, scope: DispatchScope) {
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
        if !log.enabled() {
            return;
        }
        let keep = match self.capture {
            CaptureMode::None => false,
            CaptureMode::Errors => outcome != Outcome::Ok,
            CaptureMode::All => true,
        };
        let mut capture = Capture::default();
        let (mut arguments, mut result) = (None, None);
        if keep {
            let redactor = self.recorder.redactor();
            let limit = self.recorder.body_limit();
            let paths = &mut capture.redacted;
            if let Some(p) = &self.arguments {
                let (body, state) = match p {
                    Pending::Raw(raw) => capture_body(raw, "arguments", &redactor, limit, paths),
                    Pending::TooLarge(n) => crate::capture::size_only(*n),
                };
                arguments = Some(Arc::from(body));
                capture.arguments = state;
            }
            if let Some(Ok(r)) = res {
                let (body, state) = capture_body(r.result.get(), "result", &redactor, limit, paths);
                result = Some(Arc::from(body));
                capture.result = state;
            }
        }
        // Where the time went: until the upstream took the call, and after.
        let (queued, upstream) = match scope.first() {
            Some(t) => {
                let q = t.saturating_duration_since(self.start).min(elapsed);
                (Some(q), Some(elapsed - q))
            }
            None => (None, None),
        };
        let id = log.push(LogEntry {
            id: 0,
            request_id: self.request_id.unwrap_or_default(),
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
            timings: Timings {
                queued,
                upstream,
                total: elapsed,
            },
            retries: scope.count().saturating_sub(1),
            error,
            replay_of: self.replay.as_ref().map(ReplayOf::of),
            arguments,
            result,
            capture,
        });
        if let Some(r) = &self.replay {
            r.set_logged(id);
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
        // When the call reached its upstream: every poll of `inner` runs in this scope.
        scope: DispatchScope,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before it finished: the caller cancelled or went away.
            let this = this.project();
            if let Some(call) = this.call.take() {
                call.finish(None, *this.scope);
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
        let res = {
            let _entered = this.scope.enter();
            this.inner.poll(cx)
        };
        let res = std::task::ready!(res);
        if let Some(call) = this.call.take() {
            call.finish(Some(&res), *this.scope);
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
            capture: CaptureMode::All,
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
        let body = |b: &Option<Arc<serde_json::value::RawValue>>| {
            serde_json::from_str::<serde_json::Value>(b.as_ref().unwrap().get()).unwrap()
        };
        assert_eq!(
            body(&e.arguments),
            serde_json::json!({"path":"/x","auth":{"password":"[REDACTED]"}})
        );
        assert_eq!(body(&e.result)["token"], "[REDACTED]");
        assert_eq!(
            (e.capture.arguments, e.capture.result),
            (crate::BodyState::Redacted, crate::BodyState::Redacted)
        );
        assert_eq!(
            e.capture.redacted,
            ["/arguments/auth/password", "/result/token"]
        );
        assert_eq!(e.timings.queued, None, "never reached an upstream service");
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

    /// A service that takes `wait` to "get its slot", marks the dispatch, then answers
    /// after `work`; `fail` answers an error instead.
    fn slow(
        wait: std::time::Duration,
        work: std::time::Duration,
    ) -> impl Service<McpRequest, Response = McpResponse, Error = McpError, Future: Send> + Clone
    {
        tower::service_fn(move |req: McpRequest| {
            let fail = req.tool_name().ok().flatten().as_deref() == Some("fail");
            // As a `ConcurrencyLimit` would: the wait happens in the polls of the call.
            async move {
                tokio::time::sleep(wait).await;
                mcp_gateway_core::timing::dispatched();
                tokio::time::sleep(work).await;
                if fail {
                    return Err(McpError::Upstream {
                        server: "fs".into(),
                        reason: "boom".into(),
                    });
                }
                let result = serde_json::value::RawValue::from_string(r#"{"ok":1}"#.into());
                Ok(McpResponse {
                    result: result.unwrap(),
                    server: Some("fs".into()),
                })
            }
        })
    }

    #[tokio::test]
    async fn times_the_wait_for_the_upstream_apart() {
        use std::time::Duration;
        use tower::ServiceExt;
        let recorder = Recorder::new(10);
        let svc = McpMetricsLayer::new(recorder.clone())
            .layer(slow(Duration::from_millis(150), Duration::from_millis(50)));
        svc.oneshot(McpRequest::call_tool("read", None).with_server("fs"))
            .await
            .unwrap();
        let e = &recorder.log().query(&Default::default())[0];
        let t = e.timings;
        let (q, u) = (t.queued.unwrap(), t.upstream.unwrap());
        assert!(
            q >= Duration::from_millis(150) && u >= Duration::from_millis(50),
            "{t:?}"
        );
        assert!(q + u <= t.total, "{t:?}");
        assert_eq!(e.retries, 0);
        let v = serde_json::to_value(e).unwrap();
        assert!(v["timings"]["queuedMs"].as_f64().unwrap() >= 150.0, "{v}");
        assert_eq!(
            v["capture"],
            serde_json::json!({"arguments":"none","result":"none"})
        );
        assert!(
            v.get("arguments").is_none() && v.get("replayOf").is_none(),
            "{v}"
        );
    }

    #[tokio::test]
    async fn errors_mode_keeps_the_bodies_of_failed_calls_only() {
        use std::time::Duration;
        use tower::ServiceExt;
        let recorder = Recorder::new(10);
        recorder.configure(&crate::RecorderOptions {
            capture: CaptureMode::Errors,
            ..Default::default()
        });
        let svc =
            McpMetricsLayer::new(recorder.clone()).layer(slow(Duration::ZERO, Duration::ZERO));
        let args = serde_json::value::RawValue::from_string(r#"{"a":1}"#.into()).unwrap();
        for name in ["read", "fail"] {
            let _ = svc
                .clone()
                .oneshot(McpRequest::call_tool(name, Some(&args)).with_server("fs"))
                .await;
        }
        // A replay is marked, and learns its entry's id.
        let replay = ReplayOf::new(1);
        let mut req = McpRequest::call_tool("read", Some(&args)).with_server("fs");
        req.extensions.insert(replay.clone());
        svc.clone().oneshot(req).await.unwrap();
        let log = recorder.log().query(&Default::default());
        let (ok, failed, replayed) = (&log[2], &log[1], &log[0]);
        assert!(ok.arguments.is_none() && ok.result.is_none());
        assert_eq!(ok.capture, Capture::default());
        assert_eq!(failed.arguments.as_ref().unwrap().get(), r#"{"a":1}"#);
        assert_eq!(
            (failed.capture.arguments, failed.capture.result),
            (crate::BodyState::Full, crate::BodyState::None),
            "an error has no result"
        );
        assert_eq!(failed.outcome, "upstream_error");
        assert_eq!(replayed.replay_of, Some(1));
        assert_eq!(replay.logged_as(), Some(replayed.id));
    }
}
