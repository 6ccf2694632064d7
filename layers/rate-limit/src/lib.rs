//! Rate limiting for any HTTP service: a tower layer keyed by caller, with a sliding window
//! in memory (lock-free count-min sketch with one cache line per key and window: one hash,
//! two lines per decision, fixed memory) or in Redis (one budget shared by every replica).
//!
//! - **Keys**: by default the authenticated [`Identity`](mcp_gateway_core::Identity) an auth
//!   layer put in the request extensions (`Arc<Identity>`), else the peer IP, else one
//!   anonymous budget ([`IdentityOrIp`]); any [`KeyExtractor`] (a closure works) can replace
//!   it, and returning `None` exempts a request (probes, scrapes). [`Overrides`] give chosen
//!   subjects or roles a budget of their own.
//! - **Semantics**: the sliding-window counter (previous window weighted by how much of it
//!   still overlaps the sliding window, plus the current one; details in the `window` module
//!   source) — no 2× burst at a window edge, never more than `limit` admitted per window
//!   even under concurrency.
//! - **Answers**: every admitted answer carries `X-RateLimit-Limit`, `X-RateLimit-Remaining`
//!   and `X-RateLimit-Reset`; a limited request gets `429 Too Many Requests` with
//!   `Retry-After` and a JSON body ([`ErrorFormat::Json`] or a JSON-RPC error,
//!   [`ErrorFormat::JsonRpc`]) and never reaches the inner service.
//! - **Redis**: one atomic Lua script round trip per decision; when Redis is unreachable the
//!   [`FailMode`] admits (open) or rejects with 503 (closed) and [`Event::FallbackOpen`] /
//!   [`Event::FallbackClosed`] are reported; the connection comes back by itself.
//!
//! Build the layer once: every clone shares the counters.
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use mcp_gateway_rate_limit::RateLimitLayer;
//! use std::time::Duration;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let limiter = RateLimitLayer::new(2, Duration::from_secs(60));
//! let svc = ServiceBuilder::new().layer(limiter).service(service_fn(|_req: Request<()>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::from("hello")))
//! }));
//! for expected in [StatusCode::OK, StatusCode::OK, StatusCode::TOO_MANY_REQUESTS] {
//!     let res = svc.clone().oneshot(Request::new(())).await.unwrap();
//!     assert_eq!(res.status(), expected);
//!     assert_eq!(res.headers()["x-ratelimit-limit"], "2");
//! }
//! # }
//! ```
//!

mod decision;
mod future;
mod key;
mod layer;
mod mcp;
mod redis;
mod service;
mod window;

pub use decision::{
    Decision, Event, Verdict, X_RATELIMIT_LIMIT, X_RATELIMIT_REMAINING, X_RATELIMIT_RESET,
};
pub use future::ResponseFuture;
pub use key::{IdentityOrIp, KeyExtractor, Overrides, RateKey};
pub use layer::{BuildError, ErrorFormat, RateLimitBuilder, RateLimitLayer, check_redis_url};
pub use mcp::{McpRateLimit, McpRateLimitFuture, McpRateLimitLayer};
pub use redis::FailMode;
pub use service::RateLimit;

#[cfg(test)]
mod tests;
