//! Server→client messages relayed to the downstream caller a request came from.
//!
//! A front end that can deliver notifications (a session stream, an SSE answer) puts a
//! [`RelaySink`] into [`crate::McpRequest::extensions`]. The upstream then routes
//! `notifications/progress` for that call back to it, with the progress token the client
//! chose, however many clients use the same token at once.

use serde_json::value::RawValue;
use tokio::sync::mpsc;

/// A JSON-RPC notification travelling from an upstream server to a downstream client.
#[derive(Debug)]
pub struct ServerMessage {
    /// The notification method, e.g. `notifications/progress`.
    pub method: String,
    /// Its params, raw (already rewritten to the client's own progress token).
    pub params: Option<Box<RawValue>>,
}

/// Where an upstream delivers notifications that belong to one request.
#[derive(Clone, Debug)]
pub struct RelaySink(mpsc::UnboundedSender<ServerMessage>);

impl RelaySink {
    /// A sink and the receiver the front end reads from.
    pub fn channel() -> (RelaySink, mpsc::UnboundedReceiver<ServerMessage>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (RelaySink(tx), rx)
    }

    /// Delivers a message; returns false when the client is gone.
    pub fn send(&self, msg: ServerMessage) -> bool {
        self.0.send(msg).is_ok()
    }

    /// True when the receiving side was dropped.
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}
