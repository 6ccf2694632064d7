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
//! Shutdown is graceful as with `axum::serve(..).with_graceful_shutdown(..)`: accepting
//! stops, each connection finishes the request it is serving and then closes, and [`serve`]
//! returns once all of them have.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use mcp_gateway_core::wake::Gated;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::Layer;

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
    serve_with(listener, shutdown, move |peer| {
        TowerToHyperService::new(axum::Extension(ConnectInfo(peer)).layer(app.clone()))
    })
    .await
}

/// The accept loop of [`serve`], with the service of each connection made by `make` from
/// the peer's address.
pub(crate) async fn serve_with<S, B>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    make: impl Fn(SocketAddr) -> S,
) where
    S: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<B>,
            Error = Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    if !is_connection_error(&e) {
                        // Out of file descriptors, say: wait instead of spinning.
                        tracing::error!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = make(peer);
        let watcher = graceful.watcher();
        tokio::spawn(Gated::new(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::trace!(error = %e, %peer, "connection ended with an error");
            }
        }));
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Errors of one connection that failed while being accepted; the listener is fine.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}
