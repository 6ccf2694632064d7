//! [`RateLimit`], the service made by [`crate::RateLimitLayer`].

use crate::decision::Verdict;
use crate::future::ResponseFuture;
use crate::key::{IdentityOrIp, KeyExtractor};
use crate::layer::{ErrorFormat, Shared};
use bytes::Bytes;
use http::{Request, Response};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::Service;

/// Checks each request against its budget before calling the inner service.
///
/// Admitted requests reach `S` and their answer gets `X-RateLimit-*` headers; limited ones
/// are answered here (429 + `Retry-After`) and never reach `S`.
#[derive(Clone)]
pub struct RateLimit<S, K = IdentityOrIp> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
    pub(crate) extractor: K,
    pub(crate) format: ErrorFormat,
}

impl<S: std::fmt::Debug, K: std::fmt::Debug> std::fmt::Debug for RateLimit<S, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("limit", &self.shared.limit)
            .field("extractor", &self.extractor)
            .field("format", &self.format)
            .finish()
    }
}

impl<S, K> RateLimit<S, K> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, K, B, ResBody> Service<Request<B>> for RateLimit<S, K>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    K: KeyExtractor<B>,
    B: Send + 'static,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let Some(key) = self.extractor.extract(&req) else {
            return ResponseFuture::inner(self.inner.call(req), None);
        };
        let limit = key.limit().unwrap_or(self.shared.limit);
        if let Some(verdict) = self.shared.check_now(&key, limit) {
            return match verdict {
                Verdict::Decided(d) if d.allowed => {
                    ResponseFuture::inner(self.inner.call(req), Some(verdict))
                }
                _ => ResponseFuture::rejected(crate::future::reject(verdict, self.format)),
            };
        }
        // Redis: decide first, then call the service that was polled ready.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        let format = self.format;
        ResponseFuture::deferred(Box::pin(async move {
            let verdict = shared.check(&key, limit).await;
            let admitted = match verdict {
                Verdict::Decided(d) => d.allowed,
                Verdict::FailedOpen { .. } => true,
                Verdict::FailedClosed => false,
            };
            if !admitted {
                return Ok(crate::future::reject(verdict, format));
            }
            let mut res = inner.call(req).await?;
            crate::future::write_headers(&verdict, res.headers_mut());
            Ok(res)
        }))
    }
}
