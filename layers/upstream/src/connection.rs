//! One live connection to an upstream: the pending-call table, id matching, cancellation,
//! and the `_meta` a 2026-07-28 server needs on every request. Transport-independent.

use bytes::Bytes;
use mcp_gateway_core::McpError;
use mcp_gateway_core::jsonrpc::{self, JsonRpcError, Message, RequestId};
use mcp_gateway_core::protocol::{self, Generation};
use serde_json::value::RawValue;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::{mpsc, oneshot};

/// What a pending call eventually receives.
pub(crate) type Reply = Result<Box<RawValue>, McpError>;

/// Something the server said that the supervisor must act on.
#[derive(Debug)]
pub(crate) enum Event {
    /// `notifications/tools/list_changed`.
    ToolsListChanged,
}

/// A live connection. Transports push received frames into [`Connection::handle_incoming`]
/// and drain `out` to the wire.
pub(crate) struct Connection {
    server: Arc<str>,
    out: mpsc::UnboundedSender<Bytes>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    next_id: AtomicU64,
    closed: AtomicBool,
    generation: OnceLock<Generation>,
    /// Members of the `_meta` object added to every request of a stateless server.
    stateless_meta: OnceLock<String>,
    events: mpsc::UnboundedSender<Event>,
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
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            generation: OnceLock::new(),
            stateless_meta: OnceLock::new(),
            events,
        }
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
            let meta = format!(
                r#""{}":{},"{}":{{}},"{}":{}"#,
                protocol::META_PROTOCOL_VERSION,
                serde_json::Value::from(v.as_str()),
                protocol::META_CLIENT_CAPABILITIES,
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
    ) -> Result<(oneshot::Receiver<Reply>, PendingGuard), McpError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(self.gone("connection closed"));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let params = self.with_meta(params)?;
        let frame =
            jsonrpc::request_frame(&RequestId::Number(id as i64), method, params.as_deref());
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .expect("pending table poisoned")
            .insert(id, tx);
        if self.out.send(Bytes::from(frame)).is_err() {
            self.pending
                .lock()
                .expect("pending table poisoned")
                .remove(&id);
            return Err(self.gone("connection closed"));
        }
        Ok((
            rx,
            PendingGuard {
                conn: Some(self.clone()),
                id,
            },
        ))
    }

    /// Sends a request and waits for its reply (no timeout: callers add one).
    pub(crate) async fn request(
        self: &Arc<Self>,
        method: &str,
        params: Option<&RawValue>,
    ) -> Reply {
        let (rx, mut guard) = self.send_request(method, params)?;
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

    /// Adds the stateless `_meta` members to `params` when the server needs them.
    ///
    /// Fast path: params without a `_meta` member get it spliced in front without parsing.
    fn with_meta<'a>(
        &self,
        params: Option<&'a RawValue>,
    ) -> Result<Option<std::borrow::Cow<'a, str>>, McpError> {
        let Some(meta) = self.stateless_meta.get() else {
            return Ok(params.map(|p| std::borrow::Cow::Borrowed(p.get())));
        };
        let Some(p) = params else {
            return Ok(Some(format!(r#"{{"_meta":{{{meta}}}}}"#).into()));
        };
        let text = p.get().trim_start();
        let Some(rest) = text.strip_prefix('{') else {
            return Err(McpError::InvalidParams(
                "params must be a JSON object".into(),
            ));
        };
        if !text.contains("\"_meta\"") {
            let sep = if rest.trim_start().starts_with('}') {
                ""
            } else {
                ","
            };
            return Ok(Some(format!(r#"{{"_meta":{{{meta}}}{sep}{rest}"#).into()));
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
            serde_json::from_str(&format!("{{{meta}}}")).expect("rendered from valid JSON");
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
            (None, Some(method)) => self.handle_notification(&method, msg.params),
            (Some(id), Some(method)) => self.handle_server_request(id, &method),
            (None, None) => {
                tracing::warn!(server = %self.server, "message with neither id nor method ignored")
            }
        }
        Ok(())
    }

    fn handle_notification(&self, method: &str, params: Option<&RawValue>) {
        match method {
            "notifications/tools/list_changed" => {
                let _ = self.events.send(Event::ToolsListChanged);
            }
            "notifications/message" => {
                tracing::info!(server = %self.server, params = params.map(RawValue::get).unwrap_or(""), "server log")
            }
            _ => tracing::debug!(server = %self.server, method, "notification from server"),
        }
    }

    /// Answers requests the server sends to its client. The gateway has no roots and cannot
    /// sample or elicit on its own, so it says so rather than leaving the server waiting.
    fn handle_server_request(&self, id: RequestId, method: &str) {
        let frame = match method {
            "ping" => jsonrpc::result_frame(&id, "{}"),
            "roots/list" => jsonrpc::result_frame(&id, r#"{"roots":[]}"#),
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
/// e.g. because a timeout fired or the client went away.
pub(crate) struct PendingGuard {
    conn: Option<Arc<Connection>>,
    id: u64,
}

impl PendingGuard {
    /// The reply arrived: nothing to cancel.
    pub(crate) fn disarm(&mut self) {
        self.conn = None;
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> (Arc<Connection>, mpsc::UnboundedReceiver<Bytes>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (etx, _erx) = mpsc::unbounded_channel();
        (Arc::new(Connection::new("t".into(), tx, etx)), rx)
    }

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.into()).unwrap()
    }

    #[tokio::test]
    async fn matches_replies_out_of_order_and_cancels_on_drop() {
        let (c, mut out) = conn();
        let (rx1, mut g1) = c.send_request("a", None).unwrap();
        let (rx2, mut g2) = c.send_request("b", None).unwrap();
        let (_rx3, g3) = c.send_request("c", None).unwrap();
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
        let (rx, _g) = c.send_request("a", None).unwrap();
        c.close("process exited with status 1");
        let err = rx.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("process exited"));
        assert!(c.send_request("b", None).is_err());
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
            serde_json::from_str(&c.with_meta(Some(&p)).unwrap().unwrap()).unwrap();
        assert_eq!(v["_meta"][protocol::META_PROTOCOL_VERSION], "2026-07-28");
        assert_eq!(v["arguments"]["_metaish"], 1);
        let p = raw(r#"{"_meta":{"progressToken":5},"name":"x"}"#);
        let v: serde_json::Value =
            serde_json::from_str(&c.with_meta(Some(&p)).unwrap().unwrap()).unwrap();
        assert_eq!(v["_meta"]["progressToken"], 5);
        assert_eq!(v["_meta"][protocol::META_CLIENT_INFO]["name"], "gw");
        let v: serde_json::Value =
            serde_json::from_str(&c.with_meta(Some(&raw("{ }"))).unwrap().unwrap()).unwrap();
        assert!(v["_meta"].is_object());
        assert!(
            c.with_meta(None)
                .unwrap()
                .unwrap()
                .starts_with(r#"{"_meta":"#)
        );
    }
}
