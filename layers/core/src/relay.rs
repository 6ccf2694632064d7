//! Server→client messages relayed to the downstream caller a request came from.
//!
//! A front end that can deliver messages to its client (a session stream, an SSE answer)
//! puts a [`RelaySink`] into [`crate::McpRequest::extensions`]. The upstream then routes to
//! it what the server sends while that call runs: `notifications/progress` (with the
//! progress token the client chose, however many clients use the same token at once) and
//! server→client requests such as `sampling/createMessage` or `elicitation/create`, whose
//! answer goes back through [`ServerMessage::reply`].

use crate::JsonRpcError;
use serde_json::value::RawValue;
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
