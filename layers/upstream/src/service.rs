//! The tower `Service` that forwards MCP-plane requests to an upstream's live connection.

use crate::config::Transport;
use crate::connection::{Connection, PendingGuard, ReplyFuture};
use crate::supervisor::Shared;
use mcp_gateway_core::protocol::Generation;
use mcp_gateway_core::{McpError, McpRequest, McpResponse, TraceContext};
use serde_json::value::RawValue;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::Service;

/// Forwards each [`McpRequest`] to the upstream's current connection.
///
/// Always ready: backpressure comes from the `ConcurrencyLimit` that [`crate::Upstream::stack`]
/// puts in front. A server that is down, starting or stopped answers at once with
/// [`McpError::Unavailable`], never by hanging.
#[derive(Clone, Debug)]
pub struct McpUpstreamService {
    pub(crate) shared: Arc<Shared>,
}

impl Service<McpRequest> for McpUpstreamService {
    type Response = McpResponse;
    type Error = McpError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), McpError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: McpRequest) -> ResponseFuture {
        // The concurrency permit is held from here: the request log's queued time ends.
        mcp_gateway_core::timing::dispatched();
        let server = self.shared.config.id.clone();
        let Some(conn) = self.shared.connection() else {
            return ResponseFuture::failed(self.shared.unavailable());
        };
        if req.method() == "logging/setLevel"
            && conn.generation().is_some_and(Generation::is_stateless)
        {
            // 2026-07-28 has no such method: the level goes with each request (`_meta`).
            return ResponseFuture::ready(McpResponse {
                result: RawValue::from_string("{}".into()).expect("valid JSON"),
                server: Some(server),
            });
        }
        // A forwarded subscribe / unsubscribe is counted back if the server refuses it.
        let mut undo = None;
        if matches!(
            req.method(),
            "resources/subscribe" | "resources/unsubscribe"
        ) {
            match self.subscription(&conn, &req) {
                Subscription::Answered(done) => return done,
                Subscription::Forward(u) => undo = Some(u),
            }
        }
        // Lists a 2026-07-28 server marked fresh are answered from the cache.
        let cache = crate::list_cache::cacheable(req.method(), req.params()).map(|(m, cursor)| {
            let context = self.shared.credential_index(req.identity.as_deref());
            (m, cursor, context)
        });
        if let Some((m, cursor, context)) = &cache
            && let Some(hit) = self.shared.lists.get(m, cursor, *context)
        {
            return ResponseFuture::ready(McpResponse {
                result: hit,
                server: Some(server),
            });
        }
        let relay = req.extensions.get::<mcp_gateway_core::relay::RelaySink>();
        let mut headers = self.shared.headers_for(req.identity.as_deref());
        let mut traced = None;
        if let Some(t) = req.extensions.get::<Arc<TraceContext>>() {
            // W3C trace context: a header for HTTP servers, `_meta.traceparent` otherwise.
            let tp = t.traceparent();
            if matches!(self.shared.config.transport, Transport::StreamableHttp(_)) {
                let mut h = headers.as_deref().cloned().unwrap_or_default();
                if let Ok(v) = http::HeaderValue::from_str(&tp) {
                    h.insert(http::HeaderName::from_static("traceparent"), v);
                }
                headers = Some(Arc::new(h));
            } else {
                match with_meta_entry(req.params(), "traceparent", &tp) {
                    Ok(p) => traced = Some(p),
                    Err(e) => return ResponseFuture::failed(e),
                }
            }
        }
        let params = traced.as_deref().or(req.params());
        // One span per upstream call (debug level: nothing is built unless enabled).
        let span = tracing::debug_span!(
            "upstream call",
            server = %server,
            method = %req.method(),
            tool = tracing::field::Empty,
            trace_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
        );
        if !span.is_disabled() {
            if let Ok(Some(t)) = req.tool_name() {
                span.record("tool", t.as_ref());
            }
            if let Some(t) = req.extensions.get::<Arc<TraceContext>>() {
                span.record("trace_id", t.trace_id());
            }
        }
        let store = cache.map(|(m, cursor, context)| Store {
            epoch: self.shared.lists.epoch(),
            shared: self.shared.clone(),
            method: m,
            cursor,
            context,
        });
        match conn.send_request_with(req.method(), params, relay, headers) {
            Ok((rx, guard)) => ResponseFuture {
                state: State::Waiting {
                    rx,
                    guard,
                    server,
                    span,
                    store,
                    undo,
                },
            },
            Err(e) => ResponseFuture::failed(e),
        }
    }
}

impl McpUpstreamService {
    /// Counts a client's `resources/subscribe` / `unsubscribe`. The server itself is
    /// subscribed once per URI, on the first subscriber, and unsubscribed when the last one
    /// leaves: the gateway is one client to it, shared by all of its own. A 2026-07-28 server
    /// has neither method; its `subscriptions/listen` stream is opened anew with the URIs.
    /// Returns the answer when the server need not be asked.
    fn subscription(&self, conn: &Connection, req: &McpRequest) -> Subscription {
        #[derive(serde::Deserialize)]
        struct Uri {
            uri: String,
        }
        let Some(uri) = req
            .params()
            .and_then(|p| serde_json::from_str::<Uri>(p.get()).ok())
        else {
            return Subscription::Answered(ResponseFuture::failed(McpError::InvalidParams(
                "resources/subscribe and resources/unsubscribe need a uri".into(),
            )));
        };
        let add = req.method() == "resources/subscribe";
        let changed = self.shared.count_subscription(&uri.uri, add);
        let stateless = conn.generation().is_some_and(Generation::is_stateless);
        if changed && !stateless {
            return Subscription::Forward(Undo {
                shared: self.shared.clone(),
                uri: uri.uri,
                add,
            });
        }
        Subscription::Answered(ResponseFuture::ready(McpResponse {
            result: RawValue::from_string("{}".into()).expect("valid JSON"),
            server: Some(self.shared.config.id.clone()),
        }))
    }
}

/// What becomes of a `resources/subscribe` / `unsubscribe`.
enum Subscription {
    /// Answered here.
    Answered(ResponseFuture),
    /// Sent to the server; undone if it fails.
    Forward(Undo),
}

/// Takes back a subscription count when the server refused the request it was made for.
struct Undo {
    shared: Arc<Shared>,
    uri: String,
    add: bool,
}

/// `params` with `_meta.<key> = value` added (a splice when there is no `_meta` yet).
fn with_meta_entry(
    params: Option<&RawValue>,
    key: &str,
    value: &str,
) -> Result<Box<RawValue>, McpError> {
    let entry = format!(
        "{}:{}",
        serde_json::Value::from(key),
        serde_json::Value::from(value)
    );
    let text = params.map_or("{}", |p| p.get()).trim_start();
    let Some(rest) = text.strip_prefix('{') else {
        return Err(McpError::InvalidParams(
            "params must be a JSON object".into(),
        ));
    };
    let spliced = if !text.contains("\"_meta\"") {
        let sep = if rest.trim_start().starts_with('}') {
            ""
        } else {
            ","
        };
        format!(r#"{{"_meta":{{{entry}}}{sep}{rest}"#)
    } else {
        let mut top: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
            .map_err(|e| McpError::InvalidParams(format!("params: {e}")))?;
        match top
            .entry("_meta")
            .or_insert_with(|| serde_json::Value::Object(Default::default()))
        {
            serde_json::Value::Object(m) => {
                m.insert(key.to_string(), serde_json::Value::from(value));
            }
            _ => return Err(McpError::InvalidParams("_meta must be an object".into())),
        }
        serde_json::to_string(&top).expect("a JSON map serializes")
    };
    RawValue::from_string(spliced).map_err(|e| McpError::InvalidParams(format!("params: {e}")))
}

/// Future of [`McpUpstreamService`]; dropping it before the reply cancels the call upstream.
#[derive(Debug)]
pub struct ResponseFuture {
    state: State,
}

enum State {
    Failed(Option<McpError>),
    Ready(Option<McpResponse>),
    Waiting {
        rx: ReplyFuture,
        guard: PendingGuard,
        server: Arc<str>,
        span: tracing::Span,
        store: Option<Store>,
        undo: Option<Undo>,
    },
}

/// Where a list result goes in its server's cache.
struct Store {
    shared: Arc<Shared>,
    method: &'static str,
    cursor: Option<String>,
    context: Option<usize>,
    /// The cache's epoch when the request left: a list invalidated meanwhile is not kept.
    epoch: u64,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            State::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
            State::Ready(_) => f.write_str("Ready"),
            State::Waiting { server, .. } => {
                f.debug_struct("Waiting").field("server", server).finish()
            }
        }
    }
}

impl ResponseFuture {
    fn failed(e: McpError) -> Self {
        Self {
            state: State::Failed(Some(e)),
        }
    }

    fn ready(r: McpResponse) -> Self {
        Self {
            state: State::Ready(Some(r)),
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<McpResponse, McpError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            State::Failed(e) => Poll::Ready(Err(e.take().expect("polled after completion"))),
            State::Ready(r) => Poll::Ready(Ok(r.take().expect("polled after completion"))),
            State::Waiting {
                rx,
                guard,
                server,
                span,
                store,
                undo,
            } => {
                let _entered = span.enter();
                let reply = match Pin::new(rx).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(r) => r,
                };
                if !span.is_disabled() {
                    let outcome = match &reply {
                        Ok(Ok(_)) => "ok",
                        Ok(Err(e)) => e.code(),
                        Err(_) => "upstream_error",
                    };
                    span.record("outcome", outcome);
                    if outcome != "ok" {
                        span.record("otel.status_code", "error");
                    }
                }
                guard.disarm();
                let reply = reply.unwrap_or_else(|_| {
                    Err(McpError::Upstream {
                        server: server.clone(),
                        reason: "connection closed".into(),
                    })
                });
                if let (Some(st), Ok(result)) = (store.take(), &reply) {
                    st.shared
                        .lists
                        .put(st.method, st.cursor, st.context, result, st.epoch);
                }
                if let (Some(u), true) = (undo.take(), reply.is_err()) {
                    u.shared.count_subscription(&u.uri, !u.add);
                }
                Poll::Ready(reply.map(|result| McpResponse {
                    result,
                    server: Some(server.clone()),
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_a_meta_entry() {
        let add = |p: Option<&str>| {
            let p = p.map(|p| RawValue::from_string(p.to_string()).unwrap());
            with_meta_entry(p.as_deref(), "traceparent", "00-a-b-01")
                .unwrap()
                .get()
                .to_string()
        };
        assert_eq!(add(None), r#"{"_meta":{"traceparent":"00-a-b-01"}}"#);
        assert_eq!(add(Some("{}")), r#"{"_meta":{"traceparent":"00-a-b-01"}}"#);
        assert_eq!(
            add(Some(r#"{"name":"x"}"#)),
            r#"{"_meta":{"traceparent":"00-a-b-01"},"name":"x"}"#
        );
        let merged: serde_json::Value =
            serde_json::from_str(&add(Some(r#"{"_meta":{"progressToken":1},"name":"x"}"#)))
                .unwrap();
        assert_eq!(merged["_meta"]["progressToken"], 1);
        assert_eq!(merged["_meta"]["traceparent"], "00-a-b-01");
        assert_eq!(merged["name"], "x");
    }
}
