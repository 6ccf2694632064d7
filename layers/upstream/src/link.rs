//! The transport-independent handle the supervisor keeps on one live connection: a [`Link`]
//! says when the connection ended by itself, and ends it on demand.
//!
//! Every transport hands the supervisor the same three things: a [`Connection`] (the
//! protocol side), a [`Link`] (the wire side) and the receiver of the connection's events.
//! Network transports run one driver task each; [`NetLink`] is its handle.

use crate::config::{HttpConfig, Transport, UpstreamConfig};
use crate::connection::{Connection, Event};
use crate::stdio::{self, StdioLink};
use crate::{sse, streamable_http, websocket};
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What a transport hands the supervisor.
pub(crate) type Opened = (Arc<Connection>, Link, mpsc::UnboundedReceiver<Event>);

/// The wire side of one live connection.
pub(crate) enum Link {
    /// A child process.
    Stdio(StdioLink),
    /// A driver task speaking HTTP or WebSocket.
    Net(NetLink),
}

impl Link {
    /// Resolves when the connection ended by itself (process exit, stream or socket closed).
    /// Cancel-safe; not to be awaited again after it resolved.
    pub(crate) async fn closed(&mut self) {
        match self {
            Link::Stdio(l) => {
                let _ = (&mut l.stdout_closed).await;
            }
            Link::Net(n) => n.closed().await,
        }
    }

    /// Ends the connection on the gateway's initiative; returns how it ended, in words.
    pub(crate) async fn terminate(&mut self, grace: Duration) -> String {
        match self {
            Link::Stdio(l) => l.terminate(grace).await,
            Link::Net(n) => n.terminate(grace).await,
        }
    }

    /// After [`Link::closed`]: why the connection ended, in words.
    pub(crate) async fn reap(&mut self) -> String {
        match self {
            Link::Stdio(l) => l.reap().await,
            Link::Net(n) => n.reason.clone().unwrap_or_else(|| "disconnected".into()),
        }
    }
}

/// Handle of a network transport's driver task.
pub(crate) struct NetLink {
    /// Receives the driver's reason when the connection ends by itself.
    closed: oneshot::Receiver<String>,
    reason: Option<String>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl NetLink {
    /// Spawns `driver`, which must end when `stop` is cancelled and report an unprompted end
    /// on its `oneshot::Sender`.
    pub(crate) fn spawn<F>(
        driver: impl FnOnce(CancellationToken, oneshot::Sender<String>) -> F,
    ) -> Self
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let stop = CancellationToken::new();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(driver(stop.clone(), tx));
        Self {
            closed: rx,
            reason: None,
            stop,
            task: Some(task),
        }
    }

    async fn closed(&mut self) {
        if self.reason.is_some() {
            return std::future::pending().await;
        }
        let reason = (&mut self.closed)
            .await
            .unwrap_or_else(|_| "the transport task ended".into());
        self.reason = Some(reason);
    }

    async fn terminate(&mut self, grace: Duration) -> String {
        self.stop.cancel();
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(grace, &mut task).await.is_err()
        {
            task.abort();
        }
        "disconnected by the gateway".into()
    }
}

impl Drop for NetLink {
    fn drop(&mut self) {
        // Whatever path the supervisor took, the driver never outlives its link.
        self.stop.cancel();
    }
}

/// Opens a connection over the configured transport.
///
/// Network transports that need a handshake before any message can flow (the legacy SSE
/// `endpoint` event, the WebSocket upgrade) complete it here, within `cfg.timeout`.
pub(crate) async fn open(cfg: &UpstreamConfig) -> Result<Opened, String> {
    match &cfg.transport {
        Transport::Stdio(s) => stdio::spawn(s, &cfg.id, cfg.max_message_bytes)
            .await
            .map(|(conn, link, events)| (conn, Link::Stdio(link), events))
            .map_err(|e| format!("could not start `{}`: {e}", s.command)),
        Transport::StreamableHttp(h) => streamable_http::open(h, cfg),
        Transport::Sse(h) => sse::open(h, cfg).await,
        Transport::Websocket(h) => websocket::open(h, cfg).await,
    }
}

/// A new connection plus the receivers its transport drains.
pub(crate) fn new_connection(
    server: &Arc<str>,
    max_message: usize,
) -> (
    Arc<Connection>,
    mpsc::UnboundedReceiver<Bytes>,
    mpsc::UnboundedReceiver<Event>,
) {
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    (
        Arc::new(Connection::new(server.clone(), out_tx, ev_tx).with_max_message(max_message)),
        out_rx,
        ev_rx,
    )
}

/// The configured extra headers, checked once.
pub(crate) fn header_map(cfg: &HttpConfig) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::with_capacity(cfg.headers.len());
    for (k, v) in &cfg.headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("header name {k:?} is not a valid HTTP header name"))?;
        let mut value = HeaderValue::from_str(v)
            .map_err(|_| format!("the value of header {k:?} is not a valid HTTP header value"))?;
        value.set_sensitive(true);
        map.insert(name, value);
    }
    Ok(map)
}

/// The HTTP client of one upstream: pooled connections, HTTP/2 where the server offers it,
/// a bounded connect time, and no overall request timeout because event streams stay open
/// (each call's deadline is the upstream `Timeout` layer's job).
///
/// Redirects are not followed: an MCP endpoint is configured, not discovered, and following
/// them kept a copy of every request for a possible replay (measured: 12 % of the gateway's
/// CPU on the Streamable HTTP path). A 3xx answer fails with the `Location` to configure.
pub(crate) fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| format!("could not build the HTTP client: {e}"))
}
