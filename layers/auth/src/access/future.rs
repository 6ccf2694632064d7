use super::service::ListFilter;
use mcp_gateway_core::{McpError, McpResponse};
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pin_project! {
    /// Response future of [`AccessControl`](super::AccessControl): the inner call, or a
    /// refusal answered at once.
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] future: F, filter: Option<ListFilter> },
        Refused { error: Option<McpError> },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn inner(future: F, filter: Option<ListFilter>) -> Self {
        Self {
            kind: Kind::Inner { future, filter },
        }
    }

    pub(crate) fn refused(error: McpError) -> Self {
        Self {
            kind: Kind::Refused { error: Some(error) },
        }
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<McpResponse, McpError>>,
{
    type Output = Result<McpResponse, McpError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future, filter } => match (future.poll(cx), filter) {
                (Poll::Ready(Ok(res)), Some(f)) => Poll::Ready(Ok(f.apply(res))),
                (other, _) => other,
            },
            KindProj::Refused { error } => {
                Poll::Ready(Err(error.take().expect("polled after completion")))
            }
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
