//! [`ResponseFuture`] of [`crate::RateLimit`]: no allocation on the in-memory path.

use crate::decision::{Verdict, X_RATELIMIT_LIMIT};
use crate::layer::ErrorFormat;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use mcp_gateway_core::jsonrpc::gateway::RATE_LIMITED;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

pin_project! {
    /// Response future of [`crate::RateLimit`].
    pub struct ResponseFuture<F: Future> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F: Future> {
        // Admitted (or not limited at all): the inner call, then the headers.
        Inner { #[pin] fut: F, verdict: Option<Verdict> },
        // Answered by the limiter without calling the inner service.
        Rejected { output: Option<F::Output> },
        // Redis: decision and inner call in one boxed future.
        Deferred { fut: Boxed<F::Output> },
    }
}

impl<F: Future> ResponseFuture<F> {
    pub(crate) fn inner(fut: F, verdict: Option<Verdict>) -> Self {
        Self {
            kind: Kind::Inner { fut, verdict },
        }
    }

    pub(crate) fn rejected<R, E>(res: R) -> Self
    where
        F: Future<Output = Result<R, E>>,
    {
        Self {
            kind: Kind::Rejected {
                output: Some(Ok(res)),
            },
        }
    }

    pub(crate) fn deferred(fut: Boxed<F::Output>) -> Self {
        Self {
            kind: Kind::Deferred { fut },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { fut, verdict } => {
                let mut res = std::task::ready!(fut.poll(cx))?;
                if let Some(v) = verdict {
                    write_headers(v, res.headers_mut());
                }
                Poll::Ready(Ok(res))
            }
            KindProj::Rejected { output } => {
                Poll::Ready(output.take().expect("polled after completion"))
            }
            KindProj::Deferred { fut } => fut.as_mut().poll(cx),
        }
    }
}

/// Writes the `X-RateLimit-*` headers of an admitted request.
pub(crate) fn write_headers(v: &Verdict, headers: &mut HeaderMap) {
    match v {
        Verdict::Decided(d) => d.write_headers(headers),
        Verdict::FailedOpen { limit } => {
            headers.insert(
                X_RATELIMIT_LIMIT,
                mcp_gateway_core::header::int_header(*limit),
            );
        }
        Verdict::FailedClosed => {}
    }
}

/// The answer to a rejected request.
pub(crate) fn reject<B: From<Bytes>>(v: Verdict, format: ErrorFormat) -> Response<B> {
    let (status, code, message) = match v {
        Verdict::Decided(d) => (
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "rate limit exceeded; retry after {} s",
                d.retry_after_secs().unwrap_or(1)
            ),
        ),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "rate_limiter_unavailable",
            "the rate limiter's backend is unavailable; retry after 1 s".to_string(),
        ),
    };
    // Messages are built above from fixed text and numbers: nothing to escape.
    let body = match format {
        ErrorFormat::Json => {
            format!(r#"{{"error":{{"code":"{code}","message":"{message}"}}}}"#)
        }
        ErrorFormat::JsonRpc => format!(
            r#"{{"jsonrpc":"2.0","id":null,"error":{{"code":{RATE_LIMITED},"message":"{message}"}}}}"#
        ),
    };
    let mut res = Response::new(B::from(Bytes::from(body)));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    match v {
        Verdict::Decided(d) => d.write_headers(h),
        _ => {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
    }
    res
}
