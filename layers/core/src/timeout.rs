//! A timeout layer for the MCP plane whose error names the server that was too slow.
//!
//! Unlike `tower::timeout`, the error stays an [`McpError`], so the edge can answer 504 /
//! `-32003` without downcasting. The deadline covers waiting for readiness too: `Timeout` is
//! always ready itself and drives a clone of the inner service with `Oneshot`, so time spent
//! queued for a `ConcurrencyLimit` permit counts against the same deadline as the call.
//! Dropping the inner future on expiry is what lets an upstream send `notifications/cancelled`.
//!
//! ```
//! use mcp_gateway_core::timeout::TimeoutLayer;
//! use std::time::Duration;
//! let layer = TimeoutLayer::new("github", Duration::from_secs(30));
//! # let _ = layer;
//! ```

use crate::McpError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::util::Oneshot;
use tower::{Layer, Service};

/// Applies [`Timeout`] to a service.
#[derive(Clone, Debug)]
pub struct TimeoutLayer {
    server: Arc<str>,
    after: Duration,
}

impl TimeoutLayer {
    /// Fails calls to `server` that take longer than `after`.
    pub fn new(server: impl Into<Arc<str>>, after: Duration) -> Self {
        Self {
            server: server.into(),
            after,
        }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;
    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout {
            inner,
            server: self.server.clone(),
            after: self.after,
        }
    }
}

/// Fails a call with [`McpError::Timeout`] when the inner service takes too long.
#[derive(Clone, Debug)]
pub struct Timeout<S> {
    inner: S,
    server: Arc<str>,
    after: Duration,
}

impl<S, R> Service<R> for Timeout<S>
where
    S: Service<R, Error = McpError> + Clone,
{
    type Response = S::Response;
    type Error = McpError;
    type Future = ResponseFuture<Oneshot<S, R>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), McpError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: R) -> Self::Future {
        ResponseFuture {
            inner: Oneshot::new(self.inner.clone(), req),
            sleep: tokio::time::sleep(self.after),
            server: Some(self.server.clone()),
            after: self.after,
        }
    }
}

pin_project_lite::pin_project! {
    /// Future of [`Timeout`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: tokio::time::Sleep,
        server: Option<Arc<str>>,
        after: Duration,
    }
}

impl<F, T> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, McpError>>,
{
    type Output = Result<T, McpError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(r) = this.inner.poll(cx) {
            return Poll::Ready(r);
        }
        match this.sleep.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(McpError::Timeout {
                server: this.server.take().unwrap_or_else(|| Arc::from("?")),
                after: *this.after,
            })),
            Poll::Pending => Poll::Pending,
        }
    }
}
