//! One live connection to an upstream: the pending-call table, id matching, cancellation,
//! and the `_meta` a 2026-07-28 server needs on every request. Transport-independent.

use bytes::Bytes;
use mcp_gateway_core::McpError;
use mcp_gateway_core::jsonrpc::{self, JsonRpcError, Message, RequestId};
use mcp_gateway_core::param_headers::ParamTable;
use mcp_gateway_core::protocol::{self, Generation};
use mcp_gateway_core::relay::{RelaySink, ServerMessage};
use mcp_gateway_core::wake::WakeGate;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Tables keyed by request id, hashed with aHash (SipHash costs more than the rest of an
/// insert or a removal, and there are two per call).
type IdMap<V> = HashMap<u64, V, ahash::RandomState>;

/// What a pending call eventually receives.
pub(crate) type Reply = Result<Box<RawValue>, McpError>;

/// The sending of one request and the reading of its answer, run by the caller's task.
pub(crate) type Exchange = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A transport that can send a request on the caller's own task instead of through the
/// driver's queue, saving a hand-off to the driver and a task per request.
pub(crate) trait Direct: Send + Sync {
    /// The exchange for the request `frame`, or the frame back when it must go through the
    /// queue (to keep its order behind the frames queued before it, for example).
    fn send_direct(self: Arc<Self>, frame: Bytes) -> Result<Exchange, Bytes>;
}

/// How long the rest of an exchange may run after its answer arrived (the end of an event
/// stream the server has not closed yet), so its connection can be reused.
const DRAIN: Duration = Duration::from_secs(10);

/// The reply to one request: the receiver of the pending-call table, and the exchange that
/// carries the request when the transport sends it on the caller's task.
pub(crate) struct ReplyFuture {
    rx: oneshot::Receiver<Reply>,
    exchange: Option<Gated>,
}

/// An exchange run on the caller's task, and the gate it is polled through.
struct Gated {
    exchange: Exchange,
    /// Driving a connection and delivering the reply on the caller's own task wakes that
    /// task while it runs (a request queued to the connection it polls, a body chunk, the
    /// reply sent to `rx`); the gate turns those into another round of polling instead of
    /// a yield that wakes another worker (see [`WakeGate`]).
    gate: WakeGate,
}

impl ReplyFuture {
    fn direct(rx: oneshot::Receiver<Reply>, exchange: Exchange) -> ReplyFuture {
        ReplyFuture {
            rx,
            exchange: Some(Gated {
                exchange,
                gate: WakeGate::new(),
            }),
        }
    }
}

impl Future for ReplyFuture {
    type Output = Result<Reply, oneshot::error::RecvError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(gated) = this.exchange.as_mut() else {
            return Pin::new(&mut this.rx).poll(cx);
        };
        let rx = &mut this.rx;
        let mut done = false;
        let reply = gated.gate.poll(cx, |cx| {
            if !done {
                done = gated.exchange.as_mut().poll(cx).is_ready();
            }
            // Registered through the gate, the reply still wakes the caller when it comes
            // from elsewhere (a closing connection).
            Pin::new(&mut *rx).poll(cx)
        });
        match reply {
            Poll::Ready(reply) => {
                if let (false, Ok(_)) = (done, &reply) {
                    // The answer came on an event stream that is still open: read it to
                    // its end elsewhere, as the driver's task would, instead of dropping
                    // the connection.
                    let rest = this.exchange.take().expect("exchange present").exchange;
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(DRAIN, rest).await;
                    });
                }
                Poll::Ready(reply)
            }
            Poll::Pending => {
                if done {
                    // Over without a reply yet (the transport fails the call when none
                    // came): from here on the reply alone wakes the caller.
                    this.exchange = None;
                    return Pin::new(&mut this.rx).poll(cx);
                }
                Poll::Pending
            }
        }
    }
}

/// Something the server said that the supervisor must act on.
#[derive(Debug)]
pub(crate) enum Event {
    /// `notifications/tools/list_changed`.
    ToolsListChanged,
    /// `notifications/resources/list_changed` or `notifications/prompts/list_changed`.
    OtherListChanged(&'static str),
    /// `notifications/resources/updated` for this URI.
    ResourceUpdated(Arc<str>),
}

/// Where server messages for one in-flight call go, and the progress token its client chose.
struct Relay {
    sink: RelaySink,
    token: Option<Box<RawValue>>,
}

/// A live connection. Transports push received frames into [`Connection::handle_incoming`]
/// and drain `out` to the wire.
pub(crate) struct Connection {
    server: Arc<str>,
    out: mpsc::UnboundedSender<Bytes>,
    pending: Mutex<IdMap<oneshot::Sender<Reply>>>,
    /// Calls whose server messages are relayed to their client, by call id (which is also
    /// the progress token sent upstream).
    progress: Mutex<IdMap<Relay>>,
    next_id: AtomicU64,
    closed: AtomicBool,
    generation: OnceLock<Generation>,
    /// Members of the `_meta` object added to every request of a stateless server.
    stateless_meta: OnceLock<String>,
    events: mpsc::UnboundedSender<Event>,
    /// `x-mcp-header` parameters by tool, set by the supervisor from the tool list and read
    /// by the Streamable HTTP transport for `tools/call`.
    param_headers: RwLock<Arc<ParamTable>>,
    /// Counts tool listings, so a call can wait for the next one.
    param_listed: tokio::sync::watch::Sender<u64>,
    /// Per-call headers (per-caller credentials) by request id, until the transport takes
    /// them; empty unless credentials are configured.
    call_headers: Mutex<IdMap<Arc<http::HeaderMap>>>,
    /// The transport, when it can send requests on the callers' tasks. Weak: the transport
    /// holds the connection.
    direct: OnceLock<Weak<dyn Direct>>,
    /// Largest message the transport reads whole ([`UpstreamConfig::max_message_bytes`]).
    ///
    /// [`UpstreamConfig::max_message_bytes`]: crate::UpstreamConfig::max_message_bytes
    max_message: usize,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("server", &self.server)
            .field("generation", &self.generation.get())
            .finish_non_exhaustive()
    }
}

impl Connection {
    pub(crate) fn new(
        server: Arc<str>,
        out: mpsc::UnboundedSender<Bytes>,
        events: mpsc::UnboundedSender<Event>,
    ) -> Self {
        Self {
            server,
            out,
            pending: Mutex::new(IdMap::default()),
            progress: Mutex::new(IdMap::default()),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            generation: OnceLock::new(),
            stateless_meta: OnceLock::new(),
            events,
            param_headers: RwLock::default(),
            param_listed: tokio::sync::watch::channel(0).0,
            call_headers: Mutex::new(IdMap::default()),
            direct: OnceLock::new(),
            max_message: crate::config::DEFAULT_MAX_MESSAGE_BYTES,
        }
    }

    /// Sets the largest message the transport reads whole.
    pub(crate) fn with_max_message(mut self, bytes: usize) -> Self {
        self.max_message = bytes;
        self
    }

    /// The largest message the transport reads whole.
    pub(crate) fn max_message(&self) -> usize {
        self.max_message
    }

    /// A message over [`Connection::max_message`] arrived: fails the call `id` it answered
    /// (when known) with a clear error. The message itself was never buffered.
    pub(crate) fn oversized(&self, id: Option<u64>, seen: usize) {
        let reason = format!(
            "the server sent a message of more than {} bytes (maxMessageBytes); it was discarded",
            self.max_message
        );
        tracing::warn!(server = %self.server, bytes = seen, limit = self.max_message, "discarding an oversized message from the server");
        if let Some(id) = id {
            self.fail(id, self.gone(&reason));
        }
    }

    /// Lets `transport` send requests on the callers' tasks (see [`Direct`]).
    pub(crate) fn set_direct(&self, transport: Weak<dyn Direct>) {
        let _ = self.direct.set(transport);
    }

    /// The caller-chosen headers of request `id` (taken once, by an HTTP transport).
    pub(crate) fn take_call_headers(&self, id: u64) -> Option<Arc<http::HeaderMap>> {
        let mut map = self.call_headers.lock().expect("headers table poisoned");
        if map.is_empty() {
            return None;
        }
        map.remove(&id)
    }

    /// The `x-mcp-header` parameters of the current tool list.
    pub(crate) fn param_headers(&self) -> Arc<ParamTable> {
        self.param_headers
            .read()
            .expect("param table poisoned")
            .clone()
    }

    /// Replaces the `x-mcp-header` parameters (after every `tools/list`).
    pub(crate) fn set_param_headers(&self, table: ParamTable) {
        *self.param_headers.write().expect("param table poisoned") = Arc::new(table);
        self.param_listed.send_modify(|n| *n += 1);
    }

    /// Changes each time the tools were listed anew (and their `x-mcp-header` table with them).
    pub(crate) fn param_headers_listed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.param_listed.subscribe()
    }

    pub(crate) fn server(&self) -> &Arc<str> {
        &self.server
    }

    pub(crate) fn generation(&self) -> Option<&Generation> {
        self.generation.get()
    }

    /// Records the negotiated generation; for a stateless server also renders the `_meta`.
    pub(crate) fn set_generation(&self, g: Generation, client_info: &(String, String)) {
        if let Generation::Stateless(v) = &g {
            let info = serde_json::json!({"name": client_info.0, "version": client_info.1});
            // Without the capabilities, which each call adds: they are its caller's.
            let meta = format!(
                r#""{}":{},"{}":{}"#,
                protocol::META_PROTOCOL_VERSION,
                serde_json::Value::from(v.as_str()),
                protocol::META_CLIENT_INFO,
                info
            );
            let _ = self.stateless_meta.set(meta);
        }
        let _ = self.generation.set(g);
    }

    /// Sends a request and returns the receiver of its reply plus a guard that cancels the
    /// call upstream if dropped before the reply arrives.
    pub(crate) fn send_request(
        self: &Arc<Self>,
        method: &str,
        params: Option<&RawValue>,
        relay: Option<&RelaySink>,
    ) -> Result<(ReplyFuture, PendingGuard), McpError> {
        self.send_request_with(method, params, relay, None)
    }

    /// [`Self::send_request`] with headers for this call only (HTTP transports send them
    /// on its POST; others ignore them).
    pub(crate) fn send_request_with(
        self: &Arc<Self>,
        method: &str,
        params: Option<&RawValue>,
        relay: Option<&RelaySink>,
        headers: Option<Arc<http::HeaderMap>>,
    ) -> Result<(ReplyFuture, PendingGuard), McpError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(self.gone("connection closed"));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // Progress tokens are per client; upstream they become this call's unique id so two
        // clients choosing the same token never see each other's progress.
        let remapped;
        let mut token = None;
        let params = match (relay, params) {
            (Some(_), Some(p)) if p.get().contains("\"progressToken\"") || has_escapes(p.get()) => {
                match remap_progress_token(p, id)? {
                    Some((new_params, original)) => {
                        token = Some(original);
                        remapped = new_params;
                        Some(&*remapped)
                    }
                    None => Some(p),
                }
            }
            (_, p) => p,
        };
        let has_progress = relay.is_some();
        if let Some(sink) = relay {
            self.progress
                .lock()
                .expect("progress table poisoned")
                .insert(
                    id,
                    Relay {
                        sink: sink.clone(),
                        token,
                    },
                );
        }
        let params = match self.with_meta(params, relay) {
            Ok(p) => p,
            Err(e) => {
                self.progress
                    .lock()
                    .expect("progress table poisoned")
                    .remove(&id);
                return Err(e);
            }
        };
        let frame =
            jsonrpc::request_frame(&RequestId::Number(id as i64), method, params.as_deref());
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .expect("pending table poisoned")
            .insert(id, tx);

        let has_headers = headers.is_some();
        if let Some(h) = headers {
            self.call_headers
                .lock()
                .expect("headers table poisoned")
                .insert(id, h);
        }
        // From here on the guard cleans up (pending entry, progress relay) on every path.
        let guard = PendingGuard {
            conn: self.clone(),
            id,
            armed: true,
            has_progress,
            has_headers,
        };
        // `close` may have drained the table between the first check and the insert.
        if self.closed.load(Ordering::Acquire) {
            return Err(self.gone("connection closed"));
        }
        let mut frame = Bytes::from(frame);
        if let Some(direct) = self.direct.get().and_then(Weak::upgrade) {
            match direct.send_direct(frame) {
                Ok(exchange) => return Ok((ReplyFuture::direct(rx, exchange), guard)),
                Err(back) => frame = back,
            }
        }
        if self.out.send(frame).is_err() {
            return Err(self.gone("connection closed"));
        }
        Ok((ReplyFuture { rx, exchange: None }, guard))
    }

    /// Sends a request and waits for its reply (no timeout: callers add one).
    pub(crate) async fn request(
        self: &Arc<Self>,
        method: &str,
        params: Option<&RawValue>,
    ) -> Reply {
        let (rx, mut guard) = self.send_request(method, params, None)?;
        let reply = rx
            .await
            .unwrap_or_else(|_| Err(self.gone("connection closed")));
        guard.disarm();
        reply
    }

    /// Sends a notification (fire and forget).
    pub(crate) fn notify(&self, method: &str, params: Option<&str>) {
        let frame = jsonrpc::notification_frame(method, params);
        let _ = self.out.send(Bytes::from(frame));
    }

    fn send_raw(&self, frame: Vec<u8>) {
        let _ = self.out.send(Bytes::from(frame));
    }

    /// Adds the stateless `_meta` members to `params` when the server needs them, with
    /// `caps` (what the caller can answer, through the gateway) as `clientCapabilities`.
    ///
    /// Fast path: params without a `_meta` member get it spliced in front without parsing.
    fn with_meta<'a>(
        &self,
        params: Option<&'a RawValue>,
        relay: Option<&RelaySink>,
    ) -> Result<Option<std::borrow::Cow<'a, str>>, McpError> {
        let Some(meta) = self.stateless_meta.get() else {
            // A 2026-07-28 client's envelope keys must not reach an older server: some refuse
            // requests that carry them.
            let session_server = matches!(self.generation.get(), Some(Generation::Session(_)));
            if session_server && params.is_some_and(carries_request_state) {
                // Only a 2026-07-28 server mints a `requestState`, and this one is older:
                // the state is forged or meant for another server.
                return Err(McpError::InvalidParams(
                    "requestState is unknown or expired; call the tool again without it".into(),
                ));
            }
            return match params {
                Some(p)
                    if session_server
                        && (p.get().contains("\"io.modelcontextprotocol/")
                            || has_escapes(p.get())) =>
                {
                    strip_envelope(p).map(|s| Some(s.into()))
                }
                p => Ok(p.map(|p| std::borrow::Cow::Borrowed(p.get()))),
            };
        };
        let key = protocol::META_CLIENT_CAPABILITIES;
        let caps = relay.and_then(RelaySink::capabilities).unwrap_or("{}");
        // The caller's log level, if it asked for log messages (no allocation otherwise).
        let level = match relay.and_then(RelaySink::log_level) {
            Some(l) => format!(r#","{}":"{}""#, protocol::META_LOG_LEVEL, l.as_str()),
            None => String::new(),
        };
        let Some(p) = params else {
            return Ok(Some(
                format!(r#"{{"_meta":{{{meta},"{key}":{caps}{level}}}}}"#).into(),
            ));
        };
        let text = p.get().trim_start();
        let Some(rest) = text.strip_prefix('{') else {
            return Err(McpError::InvalidParams(
                "params must be a JSON object".into(),
            ));
        };
        if !text.contains("\"_meta\"") && !has_escapes(text) {
            let sep = if rest.trim_start().starts_with('}') {
                ""
            } else {
                ","
            };
            return Ok(Some(
                format!(r#"{{"_meta":{{{meta},"{key}":{caps}{level}}}{sep}{rest}"#).into(),
            ));
        }
        // The caller sent its own `_meta` (a progress token, trace context, ...): merge,
        // letting our protocol keys win because the gateway is the client of this server.
        let mut top: BTreeMap<String, Box<RawValue>> = serde_json::from_str(text)
            .map_err(|e| McpError::InvalidParams(format!("params: {e}")))?;
        let mut merged: serde_json::Map<String, serde_json::Value> = match top.get("_meta") {
            Some(m) => serde_json::from_str(m.get())
                .map_err(|e| McpError::InvalidParams(format!("_meta must be an object: {e}")))?,
            None => serde_json::Map::new(),
        };
        let ours: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&format!(r#"{{{meta},"{key}":{caps}{level}}}"#))
                .map_err(|e| McpError::InvalidParams(format!("client capabilities: {e}")))?;
        merged.extend(ours);
        let m = serde_json::to_string(&merged).expect("map serializes");
        top.insert(
            "_meta".into(),
            RawValue::from_string(m).expect("serialized JSON is valid"),
        );
        Ok(Some(
            serde_json::to_string(&top).expect("map serializes").into(),
        ))
    }

    /// Dispatches one frame received from the server.
    pub(crate) fn handle_incoming(&self, line: &[u8]) -> Result<(), serde_json::Error> {
        self.handle_incoming_in(line, None)
    }

    /// Dispatches one frame received from the server on the answer stream of call `call`
    /// (a Streamable HTTP POST's event stream): its notifications belong to that call.
    pub(crate) fn handle_incoming_in(
        &self,
        line: &[u8],
        call: Option<u64>,
    ) -> Result<(), serde_json::Error> {
        let msg: Message<'_> = serde_json::from_slice(line)?;
        match (msg.id, msg.method) {
            (Some(id), None) => {
                let reply = match (msg.result, msg.error) {
                    (_, Some(error)) => Err(McpError::Rpc {
                        server: self.server.clone(),
                        error,
                    }),
                    (Some(r), None) => Ok(r.to_owned()),
                    (None, None) => Err(McpError::Upstream {
                        server: self.server.clone(),
                        reason: "response without result or error".into(),
                    }),
                };
                let key = match id {
                    RequestId::Number(n) if n > 0 => n as u64,
                    other => {
                        tracing::warn!(server = %self.server, id = %other, "response with an id the gateway never sent");
                        return Ok(());
                    }
                };
                let tx = self
                    .pending
                    .lock()
                    .expect("pending table poisoned")
                    .remove(&key);
                match tx {
                    Some(tx) => {
                        let _ = tx.send(reply);
                    }
                    None => {
                        tracing::debug!(server = %self.server, id = key, "late response to a cancelled call")
                    }
                }
            }
            (None, Some(method)) => self.handle_notification(&method, msg.params, call),
            (Some(id), Some(method)) => self.handle_server_request(id, &method, msg.params),
            (None, None) => {
                tracing::warn!(server = %self.server, "message with neither id nor method ignored")
            }
        }
        Ok(())
    }

    fn handle_notification(&self, method: &str, params: Option<&RawValue>, call: Option<u64>) {
        match method {
            "notifications/tools/list_changed" => {
                let _ = self.events.send(Event::ToolsListChanged);
            }
            "notifications/resources/list_changed" | "notifications/prompts/list_changed" => {
                let kind = if method.contains("resources") {
                    "resources"
                } else {
                    "prompts"
                };
                let _ = self.events.send(Event::OtherListChanged(kind));
            }
            "notifications/progress" => self.relay_progress(params),
            "notifications/resources/updated" => {
                #[derive(serde::Deserialize)]
                struct Updated {
                    uri: String,
                }
                if let Some(u) = params.and_then(|p| serde_json::from_str::<Updated>(p.get()).ok())
                {
                    let _ = self.events.send(Event::ResourceUpdated(Arc::from(u.uri)));
                }
            }
            "notifications/message" => {
                // A server decides what it logs, the gateway how much of it lands in its own
                // log: one line, cut at LOG_LINE_MAX bytes.
                let p = params.map(RawValue::get).unwrap_or("");
                tracing::debug!(server = %self.server, params = %cut(p, LOG_LINE_MAX), bytes = p.len(), "server log");
                self.relay_log(params, call);
            }
            _ => tracing::debug!(server = %self.server, method, "notification from server"),
        }
    }

    /// Sends a log message to the client of the call it belongs to: the call whose answer
    /// stream carried it ([`NOT_A_CALL`]: a stream of no call, such as the GET stream, so
    /// nobody's), or, on a transport that does not tell (stdio, WebSocket, legacy SSE), the
    /// only call in flight. With several calls in flight it stays in the gateway's
    /// log: sending it to a guessed caller could show one client another's data.
    fn relay_log(&self, params: Option<&RawValue>, call: Option<u64>) {
        let relays = self.progress.lock().expect("progress table poisoned");
        let target = match call {
            Some(id) => relays.get(&id),
            // Only when the one call awaiting its answer is the one relayed call: a relay
            // outlives its answer for a moment, and another call may be the one in flight.
            None => {
                let pending = self.pending.lock().expect("pending table poisoned");
                match (pending.len(), relays.len()) {
                    (1, 1) => pending.keys().next().and_then(|id| relays.get(id)),
                    _ => None,
                }
            }
        };
        if let Some(r) = target {
            r.sink.send(ServerMessage {
                method: "notifications/message".into(),
                params: params.map(ToOwned::to_owned),
                reply: None,
            });
        }
    }

    /// Sends a progress notification to the client whose call it belongs to, with the
    /// client's own token put back.
    fn relay_progress(&self, params: Option<&RawValue>) {
        let Some(p) = params else { return };
        let Ok(mut top) = serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(p.get()) else {
            return;
        };
        let Some(id) = top
            .get("progressToken")
            .and_then(|t| t.get().parse::<u64>().ok())
        else {
            return;
        };
        let progress = self.progress.lock().expect("progress table poisoned");
        let Some((relay, token)) = progress
            .get(&id)
            .and_then(|r| r.token.as_ref().map(|t| (r, t)))
        else {
            tracing::debug!(server = %self.server, id, "progress for a call that is no longer relayed");
            return;
        };
        top.insert("progressToken".into(), token.clone());
        let text = serde_json::to_string(&top).expect("map serializes");
        relay.sink.send(ServerMessage {
            method: "notifications/progress".into(),
            params: Some(RawValue::from_string(text).expect("serialized JSON is valid")),
            reply: None,
        });
    }

    /// Answers requests the server sends to its client. The gateway has no roots and cannot
    /// sample or elicit on its own, so it says so rather than leaving the server waiting.
    ///
    /// Sampling and elicitation go to the client of the call in flight that can take them
    /// (the newest one when several are: stdio gives no way to tell which call a server
    /// request belongs to); the client's answer is sent back with the server's id.
    fn handle_server_request(&self, id: RequestId, method: &str, params: Option<&RawValue>) {
        if matches!(method, "sampling/createMessage" | "elicitation/create") {
            let target = {
                let relays = self.progress.lock().expect("progress table poisoned");
                relays
                    .iter()
                    // Only calls whose client declared it can answer such requests.
                    .filter(|(_, r)| !r.sink.is_closed() && r.sink.capabilities().is_some())
                    .max_by_key(|(call, _)| **call)
                    .map(|(_, r)| r.sink.clone())
            };
            if let Some(sink) = target {
                let (tx, rx) = oneshot::channel();
                let delivered = sink.send(ServerMessage {
                    method: method.to_string(),
                    params: params.map(ToOwned::to_owned),
                    reply: Some(tx),
                });
                if delivered {
                    let out = self.out.clone();
                    let server = self.server.clone();
                    tokio::spawn(async move {
                        let frame = match rx.await {
                            Ok(Ok(result)) => jsonrpc::result_frame(&id, result.get()),
                            Ok(Err(e)) => jsonrpc::error_frame(Some(&id), &e),
                            Err(_) => jsonrpc::error_frame(
                                Some(&id),
                                &JsonRpcError::new(
                                    jsonrpc::INTERNAL_ERROR,
                                    "the client went away before answering",
                                ),
                            ),
                        };
                        if out.send(Bytes::from(frame)).is_err() {
                            tracing::debug!(server = %server, "connection closed before a relayed answer");
                        }
                    });
                    return;
                }
            }
        }
        let frame = match method {
            "ping" => jsonrpc::result_frame(&id, "{}"),
            "roots/list" => jsonrpc::result_frame(&id, r#"{"roots":[]}"#),
            "sampling/createMessage" | "elicitation/create" => jsonrpc::error_frame(
                Some(&id),
                &JsonRpcError::new(
                    jsonrpc::METHOD_NOT_FOUND,
                    format!(
                        "no client connected through mcp-gateway can answer '{method}' for this call"
                    ),
                ),
            ),
            _ => jsonrpc::error_frame(
                Some(&id),
                &JsonRpcError::new(
                    jsonrpc::METHOD_NOT_FOUND,
                    format!("mcp-gateway does not support '{method}' from servers"),
                ),
            ),
        };
        self.send_raw(frame);
    }

    /// Fails every pending call at once and refuses new ones.
    pub(crate) fn close(&self, reason: &str) {
        self.closed.store(true, Ordering::Release);
        let drained: Vec<_> = self
            .pending
            .lock()
            .expect("pending table poisoned")
            .drain()
            .collect();
        for (_, tx) in drained {
            let _ = tx.send(Err(self.gone(reason)));
        }
    }

    /// Fails one pending call (a transport that knows which call an HTTP error belongs to).
    /// Returns false when the call was already answered or abandoned.
    pub(crate) fn fail(&self, id: u64, error: McpError) -> bool {
        let tx = self
            .pending
            .lock()
            .expect("pending table poisoned")
            .remove(&id);
        match tx {
            Some(tx) => {
                let _ = tx.send(Err(error));
                true
            }
            None => false,
        }
    }

    /// True while call `id` waits for its reply.
    pub(crate) fn is_pending(&self, id: u64) -> bool {
        self.pending
            .lock()
            .expect("pending table poisoned")
            .contains_key(&id)
    }

    /// Tells the supervisor about something the transport learned (e.g. a new session whose
    /// tool list may differ).
    pub(crate) fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    fn gone(&self, reason: &str) -> McpError {
        McpError::Upstream {
            server: self.server.clone(),
            reason: reason.to_string(),
        }
    }

    #[cfg(test)]
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.lock().unwrap().len()
    }
}

/// Cancels a call upstream (`notifications/cancelled`) when dropped before its reply arrived,
/// e.g. because a timeout fired or the client went away; always unregisters its progress relay.
pub(crate) struct PendingGuard {
    conn: Arc<Connection>,
    id: u64,
    armed: bool,
    has_progress: bool,
    has_headers: bool,
}

impl PendingGuard {
    /// The reply arrived: nothing to cancel.
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        let conn = &self.conn;
        if self.has_headers {
            conn.call_headers
                .lock()
                .expect("headers table poisoned")
                .remove(&self.id);
        }
        if self.has_progress {
            conn.progress
                .lock()
                .expect("progress table poisoned")
                .remove(&self.id);
        }
        if !self.armed {
            return;
        }
        let was_pending = conn
            .pending
            .lock()
            .expect("pending table poisoned")
            .remove(&self.id)
            .is_some();
        if was_pending && !conn.closed.load(Ordering::Acquire) {
            let params = format!(
                r#"{{"requestId":{},"reason":"cancelled by mcp-gateway (timeout or client went away)"}}"#,
                self.id
            );
            conn.notify("notifications/cancelled", Some(&params));
        }
    }
}

/// Removes the `io.modelcontextprotocol/*` members of `_meta` (dropping `_meta` if empty).
fn strip_envelope(params: &RawValue) -> Result<String, McpError> {
    let bad = |e: serde_json::Error| McpError::InvalidParams(format!("params: {e}"));
    let mut top: BTreeMap<String, Box<RawValue>> =
        serde_json::from_str(params.get()).map_err(bad)?;
    if let Some(m) = top.get("_meta") {
        let mut meta: BTreeMap<String, Box<RawValue>> =
            serde_json::from_str(m.get()).map_err(bad)?;
        meta.retain(|k, _| !k.starts_with("io.modelcontextprotocol/"));
        if meta.is_empty() {
            top.remove("_meta");
        } else {
            let m = serde_json::to_string(&meta).expect("map serializes");
            top.insert(
                "_meta".into(),
                RawValue::from_string(m).expect("serialized JSON is valid"),
            );
        }
    }
    Ok(serde_json::to_string(&top).expect("map serializes"))
}

/// New params and the client's original progress token.
type Remapped = (Box<RawValue>, Box<RawValue>);

/// Replaces `_meta.progressToken` in `params` with `id`; returns the new params and the
/// original token, or `None` when there is no token after all.
fn remap_progress_token(params: &RawValue, id: u64) -> Result<Option<Remapped>, McpError> {
    let bad = |e: serde_json::Error| McpError::InvalidParams(format!("params: {e}"));
    let mut top: BTreeMap<String, Box<RawValue>> =
        serde_json::from_str(params.get()).map_err(bad)?;
    let Some(meta) = top.get("_meta") else {
        return Ok(None);
    };
    let mut meta: BTreeMap<String, Box<RawValue>> =
        serde_json::from_str(meta.get()).map_err(bad)?;
    let Some(token) = meta.insert(
        "progressToken".into(),
        RawValue::from_string(id.to_string()).expect("a number is valid JSON"),
    ) else {
        return Ok(None);
    };
    top.insert(
        "_meta".into(),
        RawValue::from_string(serde_json::to_string(&meta).expect("map serializes"))
            .expect("serialized JSON is valid"),
    );
    let text = serde_json::to_string(&top).expect("map serializes");
    Ok(Some((
        RawValue::from_string(text).expect("serialized JSON is valid"),
        token,
    )))
}

/// Most bytes of a server's log message copied into the gateway's log.
const LOG_LINE_MAX: usize = 2048;

/// `s` cut to at most `max` bytes at a character boundary, marked with `…` when cut.
fn cut(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end]).into()
}

/// The call "id" of messages read from a stream that belongs to no call (call ids start
/// at 1): their notifications are relayed to nobody.
pub(crate) const NOT_A_CALL: u64 = 0;

/// True when the text may name a key through a JSON escape (`"\u005fmeta"`): the quick
/// substring checks on raw params cannot see it, so such params take the parsing path.
fn has_escapes(text: &str) -> bool {
    text.contains("\\u")
}

/// True when `params` hold a top-level `requestState` (an MRTR retry).
fn carries_request_state(params: &RawValue) -> bool {
    #[derive(serde::Deserialize)]
    struct Top {
        #[serde(default, rename = "requestState")]
        state: Option<serde::de::IgnoredAny>,
    }
    params.get().contains("\"requestState\"")
        && serde_json::from_str::<Top>(params.get()).is_ok_and(|t| t.state.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_logs_are_cut_at_a_char_boundary() {
        assert_eq!(cut("short", 10), "short");
        let long = "é".repeat(3000);
        let c = cut(&long, LOG_LINE_MAX);
        assert!(
            c.len() <= LOG_LINE_MAX + 3 && c.ends_with('…'),
            "{}",
            c.len()
        );
    }

    fn conn() -> (Arc<Connection>, mpsc::UnboundedReceiver<Bytes>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (etx, _erx) = mpsc::unbounded_channel();
        (Arc::new(Connection::new("t".into(), tx, etx)), rx)
    }

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.into()).unwrap()
    }

    use std::task::{Wake, Waker};

    /// A waker that counts its wake-ups.
    struct Count(std::sync::atomic::AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(0.into()));
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn wake_ups_an_exchange_raises_while_polled_are_answered_in_the_same_poll() {
        let (tx, rx) = oneshot::channel::<Reply>();
        let mut tx = Some(tx);
        let mut polls = 0;
        // Like a connection driven on the caller's task: the first poll queues work and
        // wakes itself; the second delivers the reply, which wakes the receiver polled just
        // before; then it is over.
        let exchange: Exchange = Box::pin(std::future::poll_fn(move |cx| {
            polls += 1;
            match polls {
                1 => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                2 => {
                    let _ = tx.take().unwrap().send(Ok(raw("7")));
                    Poll::Ready(())
                }
                _ => unreachable!("polled after it ended"),
            }
        }));
        let mut reply = ReplyFuture::direct(rx, exchange);
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        match Pin::new(&mut reply).poll(&mut cx) {
            Poll::Ready(Ok(Ok(v))) => assert_eq!(v.get(), "7"),
            other => panic!("expected the reply in one poll, got {other:?}"),
        }
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            0,
            "the caller's task was woken while it ran"
        );
    }

    #[tokio::test]
    async fn a_reply_sent_from_elsewhere_wakes_the_caller() {
        let (tx, rx) = oneshot::channel::<Reply>();
        // Still open after the reply (the rest is then read on a task of its own).
        let exchange: Exchange = Box::pin(std::future::pending());
        let mut reply = ReplyFuture::direct(rx, exchange);
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut reply).poll(&mut cx).is_pending());
        // A closing connection fails the call from another thread.
        std::thread::spawn(move || {
            let _ = tx.send(Err(McpError::Internal("closed".into())));
        })
        .join()
        .unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(matches!(
            Pin::new(&mut reply).poll(&mut cx),
            Poll::Ready(Ok(Err(_)))
        ));
    }

    #[test]
    fn an_exchange_that_keeps_waking_itself_is_left_to_the_scheduler() {
        let (_tx, rx) = oneshot::channel::<Reply>();
        let exchange: Exchange = Box::pin(std::future::poll_fn(|cx| {
            cx.waker().wake_by_ref();
            Poll::Pending
        }));
        let mut reply = ReplyFuture::direct(rx, exchange);
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut reply).poll(&mut cx).is_pending());
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn matches_replies_out_of_order_and_cancels_on_drop() {
        let (c, mut out) = conn();
        let (rx1, mut g1) = c.send_request("a", None, None).unwrap();
        let (rx2, mut g2) = c.send_request("b", None, None).unwrap();
        let (_rx3, g3) = c.send_request("c", None, None).unwrap();
        c.handle_incoming(br#"{"jsonrpc":"2.0","id":2,"result":{"n":2}}"#)
            .unwrap();
        c.handle_incoming(br#"{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"x"}}"#)
            .unwrap();
        assert_eq!(rx2.await.unwrap().unwrap().get(), r#"{"n":2}"#);
        assert!(matches!(rx1.await.unwrap(), Err(McpError::Rpc { .. })));
        g1.disarm();
        g2.disarm();
        drop(g3);
        assert_eq!(c.pending_len(), 0);
        let frames: Vec<_> = std::iter::from_fn(|| out.try_recv().ok()).collect();
        let last = std::str::from_utf8(frames.last().unwrap()).unwrap();
        assert!(last.contains("notifications/cancelled") && last.contains(r#""requestId":3"#));
    }

    #[tokio::test]
    async fn close_fails_pending_calls() {
        let (c, _out) = conn();
        let (rx, _g) = c.send_request("a", None, None).unwrap();
        c.close("process exited with status 1");
        let err = rx.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("process exited"));
        assert!(c.send_request("b", None, None).is_err());
    }

    #[tokio::test]
    async fn relays_progress_with_the_clients_own_token() {
        let (c, mut out) = conn();
        let (sink_a, mut rx_a) = RelaySink::channel();
        let (sink_b, mut rx_b) = RelaySink::channel();
        let p = raw(r#"{"name":"slow","_meta":{"progressToken":"same"}}"#);
        let (_ra, ga) = c
            .send_request("tools/call", Some(&p), Some(&sink_a))
            .unwrap();
        let (_rb, _gb) = c
            .send_request("tools/call", Some(&p), Some(&sink_b))
            .unwrap();
        let sent: Vec<serde_json::Value> = std::iter::from_fn(|| out.try_recv().ok())
            .map(|f| serde_json::from_slice(&f).unwrap())
            .collect();
        assert_eq!(sent[0]["params"]["_meta"]["progressToken"], 1);
        assert_eq!(sent[1]["params"]["_meta"]["progressToken"], 2);
        c.handle_incoming(br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":2,"progress":5}}"#).unwrap();
        let m = rx_b.try_recv().unwrap();
        let v: serde_json::Value = serde_json::from_str(m.params.unwrap().get()).unwrap();
        assert_eq!(
            (v["progressToken"].as_str(), v["progress"].as_i64()),
            (Some("same"), Some(5))
        );
        assert!(rx_a.try_recv().is_err());
        drop(ga);
        c.handle_incoming(br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}"#).unwrap();
        assert!(rx_a.try_recv().is_err(), "relay ends with the call");
    }

    #[test]
    fn splices_stateless_meta() {
        let (c, _out) = conn();
        c.set_generation(
            Generation::Stateless("2026-07-28".into()),
            &("gw".into(), "1".into()),
        );
        let p = raw(r#"{"name":"x","arguments":{"_metaish":1}}"#);
        let v: serde_json::Value =
            serde_json::from_str(&c.with_meta(Some(&p), None).unwrap().unwrap()).unwrap();
        assert_eq!(v["_meta"][protocol::META_PROTOCOL_VERSION], "2026-07-28");
        assert_eq!(v["arguments"]["_metaish"], 1);
        let p = raw(r#"{"_meta":{"progressToken":5},"name":"x"}"#);
        let v: serde_json::Value =
            serde_json::from_str(&c.with_meta(Some(&p), None).unwrap().unwrap()).unwrap();
        assert_eq!(v["_meta"]["progressToken"], 5);
        assert_eq!(v["_meta"][protocol::META_CLIENT_INFO]["name"], "gw");
        let sampling = RelaySink::channel()
            .0
            .with_capabilities(Some(r#"{"sampling":{}}"#.into()))
            .with_log_level(Some(protocol::LogLevel::Info));
        let v: serde_json::Value = serde_json::from_str(
            &c.with_meta(Some(&raw("{ }")), Some(&sampling))
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            v["_meta"][protocol::META_CLIENT_CAPABILITIES],
            serde_json::json!({"sampling": {}})
        );
        assert_eq!(v["_meta"][protocol::META_LOG_LEVEL], "info");
        assert!(
            c.with_meta(None, None)
                .unwrap()
                .unwrap()
                .starts_with(r#"{"_meta":"#)
        );
    }
}
