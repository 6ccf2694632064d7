//! [`HealthLayer`]: the circuit breaker in front of one server's stack.

use crate::state::{Health, HealthState};
use mcp_gateway_core::{McpError, McpRequest, McpResponse};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Fails calls fast while `health` says the server is unhealthy, and reports transport
/// failures of the calls it lets through.
#[derive(Clone, Debug)]
pub struct HealthLayer {
    health: Option<Arc<Health>>,
}

impl HealthLayer {
    /// A breaker driven by `health`.
    pub fn new(health: Arc<Health>) -> Self {
        Self {
            health: Some(health),
        }
    }

    /// No breaker: every call passes (for servers without health checks).
    pub fn disabled() -> Self {
        Self { health: None }
    }
}

impl<S> Layer<S> for HealthLayer {
    type Service = HealthGate<S>;

    fn layer(&self, inner: S) -> HealthGate<S> {
        HealthGate {
            inner,
            health: self.health.clone(),
        }
    }
}

/// Service of [`HealthLayer`].
#[derive(Clone, Debug)]
pub struct HealthGate<S> {
    inner: S,
    health: Option<Arc<Health>>,
}

impl<S> Service<McpRequest> for HealthGate<S>
where
    S: Service<McpRequest, Response = McpResponse, Error = McpError>,
{
    type Response = McpResponse;
    type Error = McpError;
    type Future = HealthFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), McpError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: McpRequest) -> Self::Future {
        if let Some(h) = &self.health
            && h.state() == HealthState::Unhealthy
        {
            return HealthFuture::Open {
                error: Some(McpError::Unavailable {
                    server: h.server().clone(),
                    reason: h.reason(),
                }),
            };
        }
        HealthFuture::Closed {
            inner: self.inner.call(req),
            health: self.health.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// Future of [`HealthGate`].
    #[allow(missing_docs)]
    #[project = Proj]
    pub enum HealthFuture<F> {
        /// Circuit closed: the call runs.
        Closed { #[pin] inner: F, health: Option<Arc<Health>> },
        /// Circuit open: refused at once.
        Open { error: Option<McpError> },
    }
}

impl<F> Future for HealthFuture<F>
where
    F: Future<Output = Result<McpResponse, McpError>>,
{
    type Output = Result<McpResponse, McpError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            Proj::Closed { inner, health } => {
                let res = std::task::ready!(inner.poll(cx));
                if let (Err(e @ (McpError::Timeout { .. } | McpError::Upstream { .. })), Some(h)) =
                    (&res, health.as_ref())
                {
                    h.call_failed(&e.to_string());
                }
                Poll::Ready(res)
            }
            Proj::Open { error } => {
                Poll::Ready(Err(error.take().expect("polled after completion")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HealthPolicy;
    use tower::{ServiceExt, service_fn};

    #[tokio::test]
    async fn open_circuit_fails_fast_and_closes_after_a_good_probe() {
        let h = Health::new("s", HealthPolicy::default());
        let svc = HealthLayer::new(h.clone()).layer(service_fn(|_r: McpRequest| async {
            Ok::<_, McpError>(McpResponse::new(
                serde_json::value::RawValue::from_string("{}".into()).unwrap(),
            ))
        }));
        assert!(
            svc.clone()
                .oneshot(McpRequest::new("ping", None))
                .await
                .is_ok()
        );
        h.probe_failed("no answer");
        h.probe_failed("no answer");
        let e = svc
            .clone()
            .oneshot(McpRequest::new("ping", None))
            .await
            .unwrap_err();
        assert_eq!(e.http_status(), 503);
        assert!(e.to_string().contains("fail fast"), "{e}");
        h.probe_succeeded(std::time::Duration::from_millis(1));
        assert!(svc.oneshot(McpRequest::new("ping", None)).await.is_ok());
    }
}
