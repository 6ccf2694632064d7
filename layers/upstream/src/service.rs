//! The tower `Service` that forwards MCP-plane requests to an upstream's live connection.

use crate::connection::{PendingGuard, Reply};
use crate::supervisor::Shared;
use mcp_gateway_core::{McpError, McpRequest, McpResponse};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::oneshot;
use tower::Service;

/// Forwards each [`McpRequest`] to the upstream's current connection.
///
/// Always ready: backpressure comes from the `ConcurrencyLimit` that [`crate::Upstream::stack`]
/// puts in front. A server that is down, starting or stopped answers at once with
/// [`McpError::Unavailable`], never by hanging.
#[derive(Clone, Debug)]
pub struct McpUpstreamService {
    pub(crate) shared: Arc<Shared>,
}

impl Service<McpRequest> for McpUpstreamService {
    type Response = McpResponse;
    type Error = McpError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), McpError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: McpRequest) -> ResponseFuture {
        let server = self.shared.config.id.clone();
        let Some(conn) = self.shared.connection() else {
            return ResponseFuture::failed(self.shared.unavailable());
        };
        let relay = req.extensions.get::<mcp_gateway_core::relay::RelaySink>();
        let headers = self.shared.headers_for(req.identity.as_deref());
        match conn.send_request_with(req.method(), req.params(), relay, headers) {
            Ok((rx, guard)) => ResponseFuture {
                state: State::Waiting { rx, guard, server },
            },
            Err(e) => ResponseFuture::failed(e),
        }
    }
}

/// Future of [`McpUpstreamService`]; dropping it before the reply cancels the call upstream.
#[derive(Debug)]
pub struct ResponseFuture {
    state: State,
}

enum State {
    Failed(Option<McpError>),
    Waiting {
        rx: oneshot::Receiver<Reply>,
        guard: PendingGuard,
        server: Arc<str>,
    },
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            State::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
            State::Waiting { server, .. } => {
                f.debug_struct("Waiting").field("server", server).finish()
            }
        }
    }
}

impl ResponseFuture {
    fn failed(e: McpError) -> Self {
        Self {
            state: State::Failed(Some(e)),
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<McpResponse, McpError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            State::Failed(e) => Poll::Ready(Err(e.take().expect("polled after completion"))),
            State::Waiting { rx, guard, server } => {
                let reply = match Pin::new(rx).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(r) => r,
                };
                guard.disarm();
                let reply = reply.unwrap_or_else(|_| {
                    Err(McpError::Upstream {
                        server: server.clone(),
                        reason: "connection closed".into(),
                    })
                });
                Poll::Ready(reply.map(|result| McpResponse {
                    result,
                    server: Some(server.clone()),
                }))
            }
        }
    }
}
