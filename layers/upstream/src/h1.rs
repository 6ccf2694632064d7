//! A lean HTTP/1.1 client for the per-call POSTs to a plain `http://` Streamable HTTP
//! upstream: hyper's `client::conn::http1` over a small pool of keep-alive TCP connections.
//!
//! Why not reqwest here: a profile of the gateway on this path put about 38 % of its samples
//! in reqwest and the hyper-util pool under it (URL handling, header-map merges, boxed
//! futures, pool checkout channels, body wrappers) for a request that is always the same
//! shape: one POST with a small JSON body to one configured origin. This client keeps only
//! what that needs. `https://` upstreams, the GET stream and `DELETE` still go through
//! reqwest (rustls), where TLS, HTTP/2 and everything else are handled.
//!
//! Behaviour kept from the reqwest client it replaces on this path: connections are
//! reused (keep-alive) and opened on demand, one per concurrent request; connecting is
//! bounded by [`CONNECT_TIMEOUT`]; idle connections are dropped after [`IDLE_TIMEOUT`];
//! a request that could not be written because a pooled connection had just closed is
//! retried once on a fresh connection; redirects are not followed (there is no redirect
//! logic at all); dropping a request or its answer mid-way closes that connection, which is
//! the 2026-07-28 cancellation signal.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST};
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Bound on opening one TCP connection (reqwest's `connect_timeout` before).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle connections older than this are not reused (reqwest's `pool_idle_timeout` before).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Most idle connections kept per upstream; more are closed when they come back.
const MAX_IDLE: usize = 256;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum H1Error {
    /// No connection could be opened: the server is unreachable.
    #[error("tcp connect error: {0}")]
    Connect(String),
    /// The exchange failed on an open connection.
    #[error("{0}")]
    Http(#[from] hyper::Error),
}

impl H1Error {
    /// True when the server could not be reached at all (the link should close).
    pub(crate) fn is_connect(&self) -> bool {
        matches!(self, H1Error::Connect(_))
    }
}

/// A client for one `http://host[:port]/path` endpoint.
pub(crate) struct H1Client {
    /// `host:port` to connect to (resolved on each new connection).
    authority: String,
    /// The `Host` header.
    host: HeaderValue,
    /// The request target, origin-form (`/path?query`).
    target: Uri,
    /// Idle connections, most recently used last.
    idle: Mutex<Vec<(SendRequest<Full<Bytes>>, Instant)>>,
}

impl H1Client {
    /// A client for `url`, which must be an `http://` URL; `None` for any other.
    pub(crate) fn new(url: &reqwest::Url) -> Option<Arc<H1Client>> {
        if url.scheme() != "http" {
            return None;
        }
        let host = url.host_str()?;
        let port = url.port_or_known_default()?;
        // `Url` keeps IPv6 literals bracketed, as both `host:port` forms want them.
        let authority = format!("{host}:{port}");
        let host_header = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        Some(Arc::new(H1Client {
            authority,
            host: HeaderValue::from_str(&host_header).ok()?,
            target: target.parse().ok()?,
            idle: Mutex::new(Vec::new()),
        }))
    }

    /// A request to the endpoint with `method`; the caller adds headers and sends it with
    /// [`H1Client::send`].
    pub(crate) fn request(&self, method: http::Method, body: Bytes) -> Request<Full<Bytes>> {
        // Set here rather than by hyper, whose `HeaderValue::from(len)` costs two allocations.
        let length = mcp_gateway_core::header::int_header(body.len() as u64);
        let mut req = Request::new(Full::new(body));
        // Room for the dozen headers a POST gets (12 is what a 16-slot table holds), so
        // filling them in never grows the map.
        *req.headers_mut() = http::HeaderMap::with_capacity(12);
        *req.method_mut() = method;
        *req.uri_mut() = self.target.clone();
        req.headers_mut().insert(HOST, self.host.clone());
        req.headers_mut().insert(CONTENT_LENGTH, length);
        req
    }

    /// Sends `req` on an idle connection or a new one. The answer's body must be read to
    /// its end for the connection to go back to the pool.
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut req: Request<Full<Bytes>>,
    ) -> Result<Response<H1Body>, H1Error> {
        // A pooled connection the server closed while idle refuses the request before
        // writing it: then try the next one, and finally a fresh connection.
        loop {
            let (mut sender, fresh) = match self.checkout().await {
                Some(s) => (s, false),
                None => (self.connect().await?, true),
            };
            match sender.try_send_request(req).await {
                Ok(res) => {
                    let (parts, body) = res.into_parts();
                    let body = H1Body {
                        body,
                        sender: Some(sender),
                        pool: self.clone(),
                    };
                    return Ok(Response::from_parts(parts, body));
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if !fresh => req = unsent,
                    _ => return Err(H1Error::Http(e.into_error())),
                },
            }
        }
    }

    /// The most recently used idle connection that is still open.
    async fn checkout(&self) -> Option<SendRequest<Full<Bytes>>> {
        loop {
            let (mut sender, since) = self.idle.lock().expect("pool lock poisoned").pop()?;
            if sender.is_closed() || since.elapsed() >= IDLE_TIMEOUT {
                continue;
            }
            // A connection checked in the moment its answer ended may not have told its
            // sender it is idle yet; that takes one turn of its task, not a round trip.
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    /// Puts a connection whose last answer was read to the end back in the pool.
    fn checkin(&self, sender: SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().expect("pool lock poisoned");
        if idle.len() < MAX_IDLE {
            idle.push((sender, Instant::now()));
        }
    }

    /// Opens a connection and spawns its driver task.
    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, H1Error> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.authority))
            .await
            .map_err(|_| H1Error::Connect(format!("timed out after {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| H1Error::Connect(e.to_string()))?;
        // Small requests and answers: waiting for Nagle only adds latency.
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::trace!(error = %e, "upstream connection ended");
            }
        });
        Ok(sender)
    }
}

/// The body of an answer; it returns its connection to the pool when read to the end, and
/// closes it when dropped before (hyper cannot reuse a connection with an unread answer).
pub(crate) struct H1Body {
    body: Incoming,
    sender: Option<SendRequest<Full<Bytes>>>,
    pool: Arc<H1Client>,
}

impl H1Body {
    /// The next chunk of data; `None` at the end.
    pub(crate) async fn chunk(&mut self) -> Result<Option<Bytes>, hyper::Error> {
        loop {
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                    // Trailers: nothing the gateway uses.
                }
                Some(Err(e)) => {
                    self.sender = None;
                    return Err(e);
                }
                None => {
                    if let Some(sender) = self.sender.take() {
                        self.pool.checkin(sender);
                    }
                    return Ok(None);
                }
            }
        }
    }
}
