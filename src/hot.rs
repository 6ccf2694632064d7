//! The gateway's HTTP service. The two routes every tool call takes, `POST
//! /api/v1/tools/call` and `POST /mcp`, go straight to their front end's layer stack; every
//! other request goes to the axum `Router`. `Gateway::start`, `Gateway::router` and
//! `Gateway::service` all serve this one service.
//!
//! The answers are the same as the `Router`'s (the same handlers behind the same layers);
//! what is skipped is the `Router`'s own work on each request. It looks the path up,
//! clones and boxes the route's service at each of its two levels (the route and the
//! route's layers), runs the handler's extractors and adds the per-connection
//! `ConnectInfo` in a layer of its own. Here the path is compared with two literals, the
//! stack is cloned once, and the handler's future is boxed once. `callgrind` counts 9
//! allocations fewer per call, and 4 000 to 6 000 instructions (BENCHMARKS.md, *The two hot
//! routes outside the router*).

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use futures::future::Either;
use hyper::body::Incoming;
use mcp_gateway_core::body::TimedBody;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tower::Service;
use tower::util::Oneshot;

/// A hot route's layer stack over its handler.
pub(crate) trait HotService:
    Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> HotService for T where
    T: Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// The gateway's whole HTTP service: the hot routes' stacks and the router for everything
/// else. `Gateway::start` serves it per connection, `Gateway::router` hands it out as a
/// router's fallback, `Gateway::service` as it is: one path for every request, whoever
/// serves it. Cheap to clone.
pub(crate) struct GatewayService<R, M> {
    /// The routes of the configuration in force; a reload swaps them whole, and a request
    /// takes the one set it found.
    inner: Arc<arc_swap::ArcSwap<Hot<R, M>>>,
}

impl<R, M> Clone for GatewayService<R, M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

/// The routes of a [`GatewayService`].
pub(crate) struct Hot<R, M> {
    /// `POST /api/v1/tools/call` behind the REST API's layers.
    pub(crate) rest: R,
    /// `POST /mcp` behind the MCP endpoint's layers.
    pub(crate) mcp: M,
    /// Every route, the hot ones included (for their other methods).
    pub(crate) router: Router,
}

impl<R, M> GatewayService<R, M> {
    /// The service over `hot`.
    pub(crate) fn new(hot: Hot<R, M>) -> Self {
        Self {
            inner: Arc::new(arc_swap::ArcSwap::from_pointee(hot)),
        }
    }

    /// Serves `hot` from now on (a configuration reload); requests already running finish
    /// on the routes they had.
    pub(crate) fn swap(&self, hot: Hot<R, M>) {
        self.inner.store(Arc::new(hot));
    }
}

impl<R: HotService, M: HotService> GatewayService<R, M> {
    /// Sends `req` down its route.
    fn dispatch<B>(&self, req: http::Request<B>) -> HotFuture<R, M, B>
    where
        B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        // A guard, not a clone of the `Arc`: no reference count is touched.
        let hot = self.inner.load();
        match pick(&req) {
            Pick::Rest => Either::Left(Either::Left(Oneshot::new(
                hot.rest.clone(),
                req.map(Body::new),
            ))),
            Pick::Mcp => Either::Left(Either::Right(Oneshot::new(
                hot.mcp.clone(),
                req.map(Body::new),
            ))),
            Pick::Other => Either::Right(Oneshot::new(hot.router.clone(), req)),
        }
    }
}

impl<R, M, B> Service<http::Request<B>> for GatewayService<R, M>
where
    R: HotService,
    M: HotService,
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = HotFuture<R, M, B>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        // Every route is always ready: the stacks wait inside their futures.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        self.dispatch(req)
    }
}

/// One connection's service: the gateway's service, the peer's address and how long a
/// request body may stall (`connections.bodyTimeout`).
pub(crate) struct HotConn<R, M> {
    service: GatewayService<R, M>,
    peer: SocketAddr,
    body_timeout: Duration,
}

impl<R, M> HotConn<R, M> {
    /// The service for a connection from `peer`.
    pub(crate) fn new(
        service: GatewayService<R, M>,
        peer: SocketAddr,
        body_timeout: Duration,
    ) -> Self {
        Self {
            service,
            peer,
            body_timeout,
        }
    }
}

/// Which of the routes a request is for.
#[derive(Debug, PartialEq, Eq)]
enum Pick {
    Rest,
    Mcp,
    Other,
}

fn pick<B>(req: &http::Request<B>) -> Pick {
    if req.method() != http::Method::POST {
        return Pick::Other;
    }
    match req.uri().path() {
        "/api/v1/tools/call" => Pick::Rest,
        "/mcp" => Pick::Mcp,
        _ => Pick::Other,
    }
}

impl<R: HotService, M: HotService> hyper::service::Service<http::Request<Incoming>>
    for HotConn<R, M>
{
    type Response = Response;
    type Error = Infallible;
    type Future = HotFuture<R, M, TimedBody<Incoming>>;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        let mut req = req.map(|b| TimedBody::new(b, self.body_timeout));
        // Rate limits key anonymous callers on the peer address.
        req.extensions_mut().insert(ConnectInfo(self.peer));
        self.service.dispatch(req)
    }
}

/// The answer of a [`GatewayService`]: the chosen route's.
pub(crate) type HotFuture<R, M, B> =
    Either<Either<Oneshot<R, Request>, Oneshot<M, Request>>, Oneshot<Router, http::Request<B>>>;

/// A handler of the shape `async fn(State<T>, Caller, Request) -> impl IntoResponse` as a
/// service, without axum's extractor and boxing machinery: the caller's identity is read
/// from the request's extensions, where the authentication layer put it.
pub(crate) fn handler<T, F, Fut, O>(
    state: T,
    f: F,
) -> impl Service<
    Request,
    Response = Response,
    Error = Infallible,
    Future = futures::future::BoxFuture<'static, Result<Response, Infallible>>,
> + Clone
+ Send
+ Sync
+ 'static
where
    T: Clone + Send + Sync + 'static,
    F: Fn(axum::extract::State<T>, crate::api::Caller, Request) -> Fut
        + Clone
        + Send
        + Sync
        + 'static,
    Fut: Future<Output = O> + Send + 'static,
    O: axum::response::IntoResponse,
{
    tower::service_fn(move |req: Request| {
        let caller = req
            .extensions()
            .get::<Arc<mcp_gateway_core::Identity>>()
            .cloned()
            .map(axum::Extension);
        let answer = f(axum::extract::State(state.clone()), caller, req);
        // Boxed, as axum boxes a handler's future: the handlers' futures are kilobytes,
        // and each layer above would otherwise move it by value as it wraps it.
        let answer: futures::future::BoxFuture<'static, Result<Response, Infallible>> =
            Box::pin(async move { Ok(axum::response::IntoResponse::into_response(answer.await)) });
        answer
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_posts_to_the_two_paths_are_hot() {
        let req = |m: &str, p: &str| http::Request::builder().method(m).uri(p).body(()).unwrap();
        assert_eq!(pick(&req("POST", "/api/v1/tools/call")), Pick::Rest);
        assert_eq!(pick(&req("POST", "/mcp")), Pick::Mcp);
        assert_eq!(pick(&req("POST", "http://h:1/mcp?x=1")), Pick::Mcp);
        for (m, p) in [
            ("GET", "/mcp"),
            ("DELETE", "/mcp"),
            ("OPTIONS", "/api/v1/tools/call"),
            ("POST", "/mcp/"),
            ("POST", "/api/v1/tools"),
            ("POST", "/messages"),
        ] {
            assert_eq!(pick(&req(m, p)), Pick::Other, "{m} {p}");
        }
    }
}
