//! [`OriginLayer`]: refuses a request from a foreign web page, as a defence against DNS
//! rebinding: a page on `http://evil.example` that resolves to `127.0.0.1` can send a
//! `text/plain` POST, which needs no CORS preflight, to a gateway on localhost. Requests
//! without `Origin` (not from a browser), from loopback origins or from the allowed ones
//! pass; anything else gets 403 before authentication or the handler run.
//!
//! ```
//! use http::{Request, Response};
//! use mcp_gateway_auth::OriginLayer;
//! use tower::{service_fn, Layer, ServiceExt};
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let svc = OriginLayer::new(["https://app.example.com"]).layer(service_fn(|_req: Request<String>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new("ran".to_string()))
//! }));
//! let from = |origin: &str| Request::post("/api/v1/tools/call").header("origin", origin).body(String::new()).unwrap();
//! assert_eq!(svc.clone().oneshot(from("https://app.example.com")).await.unwrap().status(), 200);
//! assert_eq!(svc.clone().oneshot(from("http://localhost:5173")).await.unwrap().status(), 200);
//! assert_eq!(svc.oneshot(from("http://evil.example")).await.unwrap().status(), 403);
//! # }
//! ```

use futures::future::{Either, Ready, ready};
use http::{HeaderValue, Request, Response, StatusCode, header};
use mcp_gateway_core::ErrorFormat;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Refuses requests whose `Origin` is neither loopback nor allowed; see the
/// [module docs](crate::origin).
#[derive(Clone, Debug)]
pub struct OriginLayer {
    allowed: Arc<[String]>,
    format: ErrorFormat,
}

impl OriginLayer {
    /// Allows loopback origins and `allowed` (`"*"`: any origin).
    pub fn new<I, S>(allowed: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            allowed: allowed.into_iter().map(Into::into).collect(),
            format: ErrorFormat::Json,
        }
    }

    /// How refusals are written (REST JSON by default, or a JSON-RPC error).
    #[must_use]
    pub fn error_format(mut self, format: ErrorFormat) -> Self {
        self.format = format;
        self
    }
}

impl<S> Layer<S> for OriginLayer {
    type Service = Origin<S>;
    fn layer(&self, inner: S) -> Origin<S> {
        Origin {
            inner,
            layer: self.clone(),
        }
    }
}

/// Service of [`OriginLayer`].
#[derive(Clone, Debug)]
pub struct Origin<S> {
    inner: S,
    layer: OriginLayer,
}

const MESSAGE: &str =
    "Origin not allowed; add it to corsOrigins to let this web page use the gateway";

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Origin<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Response<ResBody>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if mcp_gateway_core::origin::origin_allowed(&self.layer.allowed, req.headers()) {
            return Either::Left(self.inner.call(req));
        }
        tracing::debug!(path = req.uri().path(), "refused a foreign Origin");
        let body = match self.layer.format {
            ErrorFormat::Json => serde_json::json!({
                "error": {"code": "forbidden_origin", "message": MESSAGE}
            }),
            ErrorFormat::JsonRpc => serde_json::json!({
                "jsonrpc": "2.0", "id": null,
                "error": {"code": mcp_gateway_core::jsonrpc::INVALID_REQUEST, "message": MESSAGE}
            }),
        };
        let mut res = Response::new(ResBody::from(body.to_string()));
        *res.status_mut() = StatusCode::FORBIDDEN;
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Either::Right(ready(Ok(res)))
    }
}
