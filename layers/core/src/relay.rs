//! Server→client messages relayed to the downstream caller a request came from.
//!
//! A front end that can deliver messages to its client (a session stream, an SSE answer)
//! puts a [`RelaySink`] into [`crate::McpRequest::extensions`]. The upstream then routes to
//! it what the server sends while that call runs: `notifications/progress` (with the
//! progress token the client chose, however many clients use the same token at once) and
//! server→client requests such as `sampling/createMessage` or `elicitation/create`, whose
//! answer goes back through [`ServerMessage::reply`].

use crate::JsonRpcError;
use crate::protocol::LogLevel;
use serde_json::value::RawValue;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Where the client's answer to a relayed server→client request goes.
pub type Reply = oneshot::Sender<Result<Box<RawValue>, JsonRpcError>>;

/// A JSON-RPC notification or request travelling from an upstream server to a client.
#[derive(Debug)]
pub struct ServerMessage {
    /// The method, e.g. `notifications/progress` or `sampling/createMessage`.
    pub method: String,
    /// Its params, raw (already rewritten to the client's own progress token).
    pub params: Option<Box<RawValue>>,
    /// For a request: where the client's result (or error) must be sent. `None` for a
    /// notification. Dropping it answers the server with an error.
    pub reply: Option<Reply>,
}

/// Where an upstream delivers notifications that belong to one request.
#[derive(Clone, Debug)]
pub struct RelaySink {
    tx: mpsc::UnboundedSender<ServerMessage>,
    capabilities: Option<Arc<str>>,
    log_level: Option<LogLevel>,
}

impl RelaySink {
    /// A sink and the receiver the front end reads from.
    pub fn channel() -> (RelaySink, mpsc::UnboundedReceiver<ServerMessage>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let sink = RelaySink {
            tx,
            capabilities: None,
            log_level: None,
        };
        (sink, rx)
    }

    /// The same sink, declaring the client capabilities (a JSON object) whose requests the
    /// front end can deliver. A 2026-07-28 upstream sees them as the request's
    /// `clientCapabilities`, so it asks only for what the caller can answer.
    pub fn with_capabilities(mut self, capabilities: Option<Arc<str>>) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// The same sink, asking for the server's log messages at `level` and above. A
    /// 2026-07-28 upstream sees it as the request's `_meta` log level; without one it sends
    /// no log messages for the request, as the spec says.
    pub fn with_log_level(mut self, level: Option<LogLevel>) -> Self {
        self.log_level = level;
        self
    }

    /// The log level asked for with [`Self::with_log_level`].
    pub fn log_level(&self) -> Option<LogLevel> {
        self.log_level
    }

    /// The client capabilities declared with [`Self::with_capabilities`].
    pub fn capabilities(&self) -> Option<&str> {
        self.capabilities.as_deref()
    }

    /// Delivers a message; returns false when the client is gone.
    pub fn send(&self, msg: ServerMessage) -> bool {
        self.tx.send(msg).is_ok()
    }

    /// True when the receiving side was dropped.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// The part of a client's declared capabilities that the gateway can relay from an
/// upstream: `sampling` and `elicitation`, as declared (sub-capabilities included).
/// `roots` stay out (a server would let a caller's roots replace its own configuration),
/// and so does anything the gateway cannot deliver. `None` when nothing is left.
pub fn relayable_capabilities(declared: &str) -> Option<Arc<str>> {
    let caps: std::collections::BTreeMap<&str, &RawValue> = serde_json::from_str(declared).ok()?;
    let kept: std::collections::BTreeMap<&str, &RawValue> = caps
        .into_iter()
        .filter(|(k, _)| matches!(*k, "sampling" | "elicitation"))
        .collect();
    if kept.is_empty() {
        return None;
    }
    serde_json::to_string(&kept).ok().map(Arc::from)
}
