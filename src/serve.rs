//! The HTTP server of `Gateway::start`, public as [`serve`] for any axum `Router`: an accept
//! loop that serves each connection with hyper (HTTP/1.1, and HTTP/2 with prior knowledge),
//! as `axum::serve` does, with two differences.
//!
//! - Each connection is polled through a [`Gated`], so the wake-ups a request raises on
//!   its own connection's task cost no hand-off between worker threads. hyper wakes the
//!   connection when the handler takes the request body, and an upstream connection
//!   driven by the call wakes it too. Under `axum::serve` each such wake-up queued the
//!   connection again as a yield and woke a second worker: one futex wake-up and one
//!   thread switch per request (see `mcp_gateway_core::wake`).
//! - Accepted sockets get `TCP_NODELAY`. An event stream writes small events one after
//!   another, and Nagle's algorithm would hold each until the client acknowledged the
//!   previous one.
//!
//! - Connections are bounded ([`Limits`]): a request's headers must arrive within
//!   `headerTimeout` of the connection's start or the previous answer (hyper's timer, plus
//!   a deadline on the first request that also covers protocol detection, which hyper
//!   leaves untimed); at most `max` connections are served, and beyond that a connection
//!   gets the probes only, for a second, so `/healthz` and `/readyz` keep answering while
//!   idle sockets hold every slot; beyond the overflow it is closed at once.
//! - An error answer to a request whose body was never read (401, 429 ... from the layers
//!   before the handler) carries `Connection: close`, since hyper then closes the
//!   connection: the client learns it before reusing it.
//!
//! Shutdown is graceful as with `axum::serve(..).with_graceful_shutdown(..)`: accepting
//! stops, each connection finishes the request it is serving and then closes, and [`serve`]
//! returns once all of them have.

use axum::Router;
use axum::extract::ConnectInfo;
use http::{HeaderValue, StatusCode, header};
use hyper::body::{Body as _, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use mcp_gateway_core::wake::Gated;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::Layer;

/// Bounds on client connections (`connections` in the config).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Connections served at once.
    pub(crate) max_connections: usize,
    /// Time to receive a request's headers (and the idle limit between requests).
    pub(crate) header_timeout: Duration,
}

impl Limits {
    /// `max` connections (`0`: three quarters of the open-file limit) and `header_timeout`.
    pub(crate) fn new(max: usize, header_timeout: Duration) -> Self {
        Self {
            max_connections: if max == 0 { auto_max() } else { max },
            header_timeout,
        }
    }
}

/// Three quarters of the soft open-file limit: the rest is left to upstream processes and
/// sockets, log files and the probes' overflow.
fn auto_max() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(1 << 20);
    usize::try_from(soft / 4 * 3)
        .unwrap_or(usize::MAX)
        .clamp(16, 1 << 20)
}

/// Raises the soft open-file limit to the hard one, so that the connection cap, not
/// `EMFILE` on `accept`, decides how many clients are served (many systems start programs
/// with a soft limit of 1 024). Returns the limit in force afterwards.
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!(error = %e, "cannot raise the open-file limit");
        }
    }
    getrlimit(Resource::Nofile).current
}

/// Connections beyond the cap that may wait for a probe request at once: an eighth of the
/// cap, between 4 and 64.
fn overflow_for(max: usize) -> usize {
    (max / 8).clamp(4, 64)
}
/// How long an overflow connection may take to send its probe and read the answer.
const OVERFLOW_TIME: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until `shutdown` completes and every open connection has
/// closed. Handlers see the peer address as `ConnectInfo<SocketAddr>`.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// let app = axum::Router::new().route("/", axum::routing::get(|| async { "hi" }));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// mcp_gateway::serve(listener, app, async {
///     let _ = tokio::signal::ctrl_c().await;
/// })
/// .await;
/// # Ok(()) }
/// ```
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let limits = Limits::new(0, Duration::from_secs(30));
    serve_with(listener, shutdown, limits, move |peer| {
        TowerToHyperService::new(axum::Extension(ConnectInfo(peer)).layer(app.clone()))
    })
    .await
}

/// The accept loop of [`serve`], with the service of each connection made by `make` from
/// the peer's address.
pub(crate) async fn serve_with<S, B>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: Limits,
    make: impl Fn(SocketAddr) -> S,
) where
    S: hyper::service::Service<
            http::Request<Incoming>,
            Response = http::Response<B>,
            Error = Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body<Data = bytes::Bytes> + From<&'static str> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let served = Arc::new(Semaphore::new(limits.max_connections));
    let overflow = Arc::new(Semaphore::new(overflow_for(limits.max_connections)));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    if !is_connection_error(&e) {
                        // Out of file descriptors, say: wait instead of spinning.
                        tracing::error!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (permit, probes_only) = match served.clone().try_acquire_owned() {
            Ok(p) => (p, false),
            Err(_) => match overflow.clone().try_acquire_owned() {
                Ok(p) => (p, true),
                Err(_) => {
                    tracing::debug!(%peer, "connection refused: at the connection limit");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let started = Arc::new(AtomicBool::new(false));
        let service = Gate {
            inner: make(peer),
            started: started.clone(),
            probes_only,
        };
        let watcher = graceful.watcher();
        let header_timeout = limits.header_timeout;
        tokio::spawn(Gated::new(async move {
            let _permit = permit;
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(!probes_only);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(watcher.watch(conn));
            let first = if probes_only {
                OVERFLOW_TIME
            } else {
                header_timeout
            };
            let result = tokio::select! {
                r = &mut conn => r,
                () = tokio::time::sleep(first) => {
                    if probes_only || !started.load(Ordering::Relaxed) {
                        // No request in time (or an overflow connection's second is up).
                        return;
                    }
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::trace!(error = %e, %peer, "connection ended with an error");
            }
        }));
    }
    drop(listener);
    graceful.shutdown().await;
}

/// A connection's service: notes that a request started, answers only the probes on an
/// overflow connection, and marks early error answers `Connection: close`.
struct Gate<S> {
    inner: S,
    started: Arc<AtomicBool>,
    probes_only: bool,
}

impl<S, B> hyper::service::Service<http::Request<Incoming>> for Gate<S>
where
    S: hyper::service::Service<
            http::Request<Incoming>,
            Response = http::Response<B>,
            Error = Infallible,
        >,
    B: From<&'static str>,
{
    type Response = http::Response<B>;
    type Error = Infallible;
    type Future = GateFuture<S::Future>;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        self.started.store(true, Ordering::Relaxed);
        if self.probes_only && !matches!(req.uri().path(), "/healthz" | "/readyz") {
            return GateFuture::Busy;
        }
        // hyper closes a connection whose request body was left unread.
        let close = req.version() <= http::Version::HTTP_11 && !req.body().is_end_stream();
        GateFuture::Inner {
            inner: self.inner.call(req),
            close,
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of a [`Gate`].
    #[project = GateProj]
    enum GateFuture<F> {
        Inner { #[pin] inner: F, close: bool },
        Busy,
    }
}

impl<F, B> Future for GateFuture<F>
where
    F: Future<Output = Result<http::Response<B>, Infallible>>,
    B: From<&'static str>,
{
    type Output = Result<http::Response<B>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            GateProj::Busy => Poll::Ready(Ok(busy())),
            GateProj::Inner { inner, close } => {
                let Ok(mut res) = std::task::ready!(inner.poll(cx));
                if *close
                    && matches!(
                        res.status(),
                        StatusCode::UNAUTHORIZED
                            | StatusCode::FORBIDDEN
                            | StatusCode::REQUEST_TIMEOUT
                            | StatusCode::PAYLOAD_TOO_LARGE
                            | StatusCode::TOO_MANY_REQUESTS
                    )
                {
                    res.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                Poll::Ready(Ok(res))
            }
        }
    }
}

/// The answer on an overflow connection to anything but a probe.
fn busy<B: From<&'static str>>() -> http::Response<B> {
    let mut res = http::Response::new(B::from(
        r#"{"error":{"code":"overloaded","message":"the gateway is at its connection limit (connections.max); retry shortly"}}"#,
    ));
    *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

/// Errors of one connection that failed while being accepted; the listener is fine.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}
