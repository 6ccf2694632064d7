//! Wires `rateLimit` from the config into a [`RateLimitLayer`] over the gateway's routes.
//!
//! Callers are keyed by the `Arc<Identity>` an auth layer (running outside this one) put in
//! the request extensions, else by peer IP. Probes (`/healthz`, `/readyz`) and the
//! Prometheus scrape (`/metrics`) are never limited. Decisions are counted in the
//! [`Recorder`] (`mcp_gateway_rate_limit_*` metrics).

use crate::config::{ApiKey, RateLimitBackend, RateLimitConfig, RateLimitFailMode};
use axum::body::Body;
use mcp_gateway_metrics::{RateLimitDecision, Recorder};
use mcp_gateway_rate_limit::{
    Event, FailMode, IdentityOrIp, KeyExtractor, McpRateLimitLayer, Overrides, RateKey,
    RateLimitBuilder, RateLimitLayer,
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

/// The layer for `cfg` (validated by `Config::validate`), with the `rateLimit` of named API
/// keys as subject overrides; needs a Tokio runtime for Redis. `previous`, the limiter of
/// the configuration being replaced: when its budget settings are the same, its counters
/// carry over (callers keep what they used; new overrides and keys apply at once).
pub(crate) fn layer(
    cfg: &RateLimitConfig,
    api_keys: &[ApiKey],
    recorder: Recorder,
    previous: Option<(&RateLimitConfig, &Limiter)>,
) -> Limiter {
    let mut overrides = Overrides::new();
    for o in &cfg.overrides {
        if let Some(s) = &o.subject {
            overrides = overrides.subject(s.clone(), o.limit);
        } else if let Some(r) = &o.role {
            overrides = overrides.role(r.clone(), o.limit);
        }
    }
    for key in api_keys {
        if let ApiKey::Named(k) = key
            && let Some(limit) = k.rate_limit
            && !cfg
                .overrides
                .iter()
                .any(|o| o.subject.as_deref() == Some(k.name.as_str()))
        {
            overrides = overrides.subject(k.name.clone(), limit);
        }
    }
    let keys = IdentityOrIp::new(cfg.per_key).overrides(overrides);
    if let Some((was, limiter)) = previous
        && same_budget(was, cfg)
    {
        return limiter.clone().key_extractor(GatewayKeys(keys));
    }
    builder(
        cfg,
        cfg.limit,
        cfg.window_seconds,
        "mcp-gateway:rl:",
        recorder,
    )
    .build()
    .expect("rateLimit was validated with the config")
    .key_extractor(GatewayKeys(keys))
}

/// The per-tool limits of `cfg.tools`, each its own budget on the same backend.
pub(crate) fn tool_layer(cfg: &RateLimitConfig, recorder: &Recorder) -> McpRateLimitLayer {
    let mut layer = McpRateLimitLayer::new();
    for (i, t) in cfg.tools.iter().enumerate() {
        let window = t.window_seconds.unwrap_or(cfg.window_seconds);
        let prefix = format!("mcp-gateway:rl:tool{i}:");
        let limiter = builder(cfg, t.limit, window, &prefix, recorder.clone())
            .build()
            .expect("rateLimit.tools was validated with the config");
        layer = layer.rule(&t.pattern, t.per_key.unwrap_or(cfg.per_key), &limiter);
    }
    layer
}

/// True when limiters of `a` and `b` count alike (the same window, limit and store), so
/// one's counters are valid for the other.
fn same_budget(a: &RateLimitConfig, b: &RateLimitConfig) -> bool {
    (
        a.limit,
        a.window_seconds,
        a.max_keys,
        &a.backend,
        &a.redis_url,
        &a.fail_mode,
    ) == (
        b.limit,
        b.window_seconds,
        b.max_keys,
        &b.backend,
        &b.redis_url,
        &b.fail_mode,
    )
}

/// A limiter builder with `cfg`'s backend, sizing and fail mode.
fn builder(
    cfg: &RateLimitConfig,
    limit: u64,
    window_seconds: u64,
    redis_prefix: &str,
    recorder: Recorder,
) -> RateLimitBuilder {
    let mut builder = RateLimitLayer::builder(limit, Duration::from_secs(window_seconds))
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
        builder = builder.redis(url.clone()).redis_prefix(redis_prefix);
    }
    builder
}
