//! Wires `rateLimit` from the config into a [`RateLimitLayer`] over the gateway's routes.
//!
//! Callers are keyed by the `Arc<Identity>` an auth layer (running outside this one) put in
//! the request extensions, else by peer IP. Probes (`/healthz`, `/readyz`) and the
//! Prometheus scrape (`/metrics`) are never limited. Decisions are counted in the
//! [`Recorder`] (`mcp_gateway_rate_limit_*` metrics).

use crate::config::{RateLimitBackend, RateLimitConfig, RateLimitFailMode};
use axum::body::Body;
use mcp_gateway_metrics::{RateLimitDecision, Recorder};
use mcp_gateway_rate_limit::{
    Event, FailMode, IdentityOrIp, KeyExtractor, Overrides, RateKey, RateLimitLayer,
};
use std::time::Duration;

/// Paths that are never rate limited.
const EXEMPT: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The gateway's rate limiter.
pub(crate) type Limiter = RateLimitLayer<GatewayKeys>;

/// [`IdentityOrIp`], except for the exempt paths.
#[derive(Clone, Debug)]
pub(crate) struct GatewayKeys(IdentityOrIp);

impl KeyExtractor<Body> for GatewayKeys {
    fn extract(&self, req: &http::Request<Body>) -> Option<RateKey> {
        if EXEMPT.contains(&req.uri().path()) {
            None
        } else {
            Some(self.0.key_for(req.extensions()))
        }
    }
}

/// The layer for `cfg` (validated by `Config::validate`); needs a Tokio runtime for Redis.
pub(crate) fn layer(cfg: &RateLimitConfig, recorder: Recorder) -> Limiter {
    let mut overrides = Overrides::new();
    for o in &cfg.overrides {
        if let Some(s) = &o.subject {
            overrides = overrides.subject(s.clone(), o.limit);
        } else if let Some(r) = &o.role {
            overrides = overrides.role(r.clone(), o.limit);
        }
    }
    let mut builder = RateLimitLayer::builder(cfg.limit, Duration::from_secs(cfg.window_seconds))
        .max_keys(cfg.max_keys)
        .fail_mode(match cfg.fail_mode {
            RateLimitFailMode::Open => FailMode::Open,
            RateLimitFailMode::Closed => FailMode::Closed,
        })
        .on_decision(move |e| {
            recorder.record_rate_limit(match e {
                Event::Allowed => RateLimitDecision::Allowed,
                Event::Limited => RateLimitDecision::Limited,
                Event::FallbackOpen => RateLimitDecision::FallbackOpen,
                Event::FallbackClosed => RateLimitDecision::FallbackClosed,
            })
        });
    if cfg.backend == RateLimitBackend::Redis
        && let Some(url) = &cfg.redis_url
    {
        builder = builder.redis(url.clone());
    }
    let keys = IdentityOrIp::new(cfg.per_key).overrides(overrides);
    builder
        .build()
        .expect("rateLimit was validated with the config")
        .key_extractor(GatewayKeys(keys))
}
