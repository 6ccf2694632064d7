//! A lean HTTP/1.1 client for the per-call POSTs to a plain `http://` Streamable HTTP
//! upstream: hyper's `client::conn::http1` over a small pool of keep-alive TCP connections,
//! each driven by the task that is using it rather than by a task of its own.
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
//!
//! Why no task per connection: hyper's examples spawn each connection's `Connection`
//! future, so every call crosses two tasks: the caller queues the request and wakes the
//! connection's task, which writes it, waits for the socket, reads the answer and wakes
//! the caller again, often on the other worker thread. Here the caller polls the
//! connection itself while it waits for its answer and reads its body, so a call is one
//! task from the client's socket to the upstream's and back. A connection waiting in the
//! pool is polled by nobody; one the server closed meanwhile is found out (and dropped) when
//! it is next checked out, by polling it once before use, and the oldest idle ones are
//! closed as newer ones come back.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST};
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::{Body, Incoming};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
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

/// One keep-alive connection: the handle requests go in by, and the connection's own state
/// machine, which whoever holds the link polls (see the module note). Boxed once per
/// connection, so that a call moves a pointer rather than hyper's ~700-byte state.
pub(crate) struct Link {
    sender: SendRequest<Full<Bytes>>,
    /// `None` once the connection has ended.
    conn: Option<Connection<TokioIo<TcpStream>, Full<Bytes>>>,
}

impl Link {
    /// Lets the connection make progress: write a queued request, read an answer, notice
    /// that the server closed it. Registers `cx` for the connection's socket.
    fn drive(&mut self, cx: &mut Context<'_>) {
        if let Some(conn) = &mut self.conn
            && let Poll::Ready(end) = Pin::new(conn).poll(cx)
        {
            if let Err(e) = end {
                tracing::trace!(error = %e, "upstream connection ended");
            }
            // Dropping it also fails whatever request it still held, so its caller wakes.
            self.conn = None;
        }
    }

    /// True while the connection can take another request.
    fn is_open(&self) -> bool {
        self.conn.is_some() && !self.sender.is_closed()
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
    /// Idle connections with the time each came back, most recently used last.
    idle: Mutex<VecDeque<(Box<Link>, Instant)>>,
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
            idle: Mutex::new(VecDeque::new()),
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
            let (mut link, fresh) = match self.checkout().await {
                Some(l) => (l, false),
                None => (self.connect().await?, true),
            };
            let mut answer = pin!(link.sender.try_send_request(req));
            let answer = poll_fn(|cx| {
                link.drive(cx);
                answer.as_mut().poll(cx)
            })
            .await;
            match answer {
                Ok(res) => {
                    let (parts, body) = res.into_parts();
                    let body = H1Body {
                        body,
                        link: Some(link),
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
    async fn checkout(&self) -> Option<Box<Link>> {
        loop {
            let (mut link, since) = self.idle.lock().expect("pool lock poisoned").pop_back()?;
            if since.elapsed() >= IDLE_TIMEOUT {
                continue;
            }
            // Polling it first reads the end of a connection the server closed while it sat
            // here, and lets one checked in the moment its answer ended say it is idle.
            let ready = poll_fn(|cx| {
                link.drive(cx);
                if link.conn.is_none() {
                    return Poll::Ready(false);
                }
                link.sender.poll_ready(cx).map(|r| r.is_ok())
            })
            .await;
            if ready {
                return Some(link);
            }
        }
    }

    /// Puts a connection whose last answer was read to the end back in the pool, and closes
    /// the idle ones that have waited longer than [`IDLE_TIMEOUT`].
    fn checkin(&self, link: Box<Link>) {
        if !link.is_open() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle.lock().expect("pool lock poisoned");
        while idle
            .front()
            .is_some_and(|(_, since)| now.duration_since(*since) >= IDLE_TIMEOUT)
        {
            idle.pop_front();
        }
        if idle.len() < MAX_IDLE {
            idle.push_back((link, now));
        }
    }

    /// Opens a connection; it is driven by whoever uses it, with no task of its own.
    async fn connect(&self) -> Result<Box<Link>, H1Error> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.authority))
            .await
            .map_err(|_| H1Error::Connect(format!("timed out after {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| H1Error::Connect(e.to_string()))?;
        // Small requests and answers: waiting for Nagle only adds latency.
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        Ok(Box::new(Link {
            sender,
            conn: Some(conn),
        }))
    }
}

/// The body of an answer. Reading it drives its connection, which goes back to the pool
/// when the body is read to the end; dropped before that, the connection closes (hyper
/// cannot reuse a connection with an unread answer).
pub(crate) struct H1Body {
    body: Incoming,
    link: Option<Box<Link>>,
    pool: Arc<H1Client>,
}

impl H1Body {
    /// The next chunk of data; `None` at the end.
    pub(crate) async fn chunk(&mut self) -> Result<Option<Bytes>, hyper::Error> {
        poll_fn(|cx| self.poll_chunk(cx)).await
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, hyper::Error>> {
        loop {
            if let Some(link) = &mut self.link {
                link.drive(cx);
            }
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Poll::Ready(Ok(Some(data)));
                    }
                    // Trailers: nothing the gateway uses.
                }
                Some(Err(e)) => {
                    self.link = None;
                    return Poll::Ready(Err(e));
                }
                None => {
                    if let Some(link) = self.link.take() {
                        self.pool.checkin(link);
                    }
                    return Poll::Ready(Ok(None));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server that answers `per_conn` requests on each connection it accepts with `ok`,
    /// then closes it (`per_conn` of 0: never closes), and counts the connections.
    async fn server(per_conn: usize) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut answered = 0;
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        // Requests have a 2-byte body after the blank line.
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            if buf.len() < end + 6 {
                                break;
                            }
                            buf.drain(..end + 6);
                            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                                .await
                                .unwrap();
                            answered += 1;
                            if answered == per_conn {
                                return;
                            }
                        }
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                });
            }
        });
        (url, accepted)
    }

    async fn call(client: &Arc<H1Client>) -> Result<Vec<u8>, H1Error> {
        let req = client.request(http::Method::POST, Bytes::from_static(b"{}"));
        let mut res = client.send(req).await?;
        let mut out = Vec::new();
        while let Some(c) = res.body_mut().chunk().await? {
            out.extend_from_slice(&c);
        }
        Ok(out)
    }

    fn client(url: &str) -> Arc<H1Client> {
        H1Client::new(&reqwest::Url::parse(url).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn reuses_a_connection_it_drives_itself() {
        let (url, accepted) = server(0).await;
        let client = client(&url);
        for _ in 0..5 {
            assert_eq!(call(&client).await.unwrap(), b"ok");
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(client.idle.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_while_idle_is_replaced() {
        let (url, accepted) = server(1).await;
        let client = client(&url);
        assert_eq!(call(&client).await.unwrap(), b"ok");
        // Let the server's close arrive while the connection sits in the pool, polled by
        // nobody; the next call must notice it and open another.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(call(&client).await.unwrap(), b"ok");
        assert_eq!(call(&client).await.unwrap(), b"ok");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn concurrent_calls_get_connections_of_their_own() {
        let (url, accepted) = server(0).await;
        let client = client(&url);
        let calls: Vec<_> = (0..4)
            .map(|_| {
                let c = client.clone();
                tokio::spawn(async move { call(&c).await.unwrap() })
            })
            .collect();
        for c in calls {
            assert_eq!(c.await.unwrap(), b"ok");
        }
        let opened = accepted.load(std::sync::atomic::Ordering::SeqCst);
        assert!((1..=4).contains(&opened), "{opened} connections");
        assert_eq!(client.idle.lock().unwrap().len(), opened);
    }

    #[tokio::test]
    async fn an_answer_dropped_unread_closes_its_connection() {
        let (url, accepted) = server(0).await;
        let client = client(&url);
        let req = client.request(http::Method::POST, Bytes::from_static(b"{}"));
        drop(client.send(req).await.unwrap());
        assert!(client.idle.lock().unwrap().is_empty());
        assert_eq!(call(&client).await.unwrap(), b"ok");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_connect_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        drop(listener);
        let err = call(&client(&url)).await.unwrap_err();
        assert!(err.is_connect(), "{err}");
    }
}
