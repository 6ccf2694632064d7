//! [`RateLimitLayer`] and its builder.

use crate::decision::{Event, Verdict};
use crate::key::{IdentityOrIp, Overrides, RateKey};
use crate::redis::{FailMode, RedisWindow};
use crate::service::RateLimit;
use crate::window::SlidingWindow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tower::Layer;

pub use mcp_gateway_core::ErrorFormat;

/// Why a [`RateLimitLayer`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The limit is zero.
    #[error("the rate limit must be at least 1 request per window")]
    ZeroLimit,
    /// The window is shorter than one second.
    #[error("the rate-limit window must be at least 1 second (got {0:?})")]
    WindowTooShort(Duration),
    /// The Redis URL is invalid.
    #[error("invalid Redis URL: {0}")]
    Redis(#[source] redis::RedisError),
}

type Observer = Arc<dyn Fn(Event) + Send + Sync>;

pub(crate) enum Backend {
    Memory(SlidingWindow),
    Redis(RedisWindow),
}

/// State shared by every clone of a layer and its services.
pub(crate) struct Shared {
    pub(crate) backend: Backend,
    pub(crate) limit: u64,
    pub(crate) fail_mode: FailMode,
    observer: Option<Observer>,
    backend_down: AtomicBool,
}

impl Shared {
    /// Decides with the in-memory backend (`None` for Redis).
    pub(crate) fn check_now(&self, key: &RateKey, limit: u64) -> Option<Verdict> {
        match &self.backend {
            Backend::Memory(w) => Some(self.observe(Verdict::Decided(w.check(key, limit)))),
            Backend::Redis(_) => None,
        }
    }

    /// Decides with whatever backend is configured.
    pub(crate) async fn check(&self, key: &RateKey, limit: u64) -> Verdict {
        let redis = match &self.backend {
            Backend::Memory(w) => return self.observe(Verdict::Decided(w.check(key, limit))),
            Backend::Redis(r) => r,
        };
        let verdict = match redis.check(&key.name(), limit).await {
            Ok(d) => {
                if self.backend_down.swap(false, Ordering::Relaxed) {
                    tracing::info!("rate limiter: Redis is reachable again");
                }
                Verdict::Decided(d)
            }
            Err(e) => {
                if !self.backend_down.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, fail_mode = ?self.fail_mode,
                        "rate limiter: Redis unreachable; applying the fail mode until it returns");
                }
                match self.fail_mode {
                    FailMode::Open => Verdict::FailedOpen { limit },
                    FailMode::Closed => Verdict::FailedClosed,
                }
            }
        };
        self.observe(verdict)
    }

    fn observe(&self, v: Verdict) -> Verdict {
        if let Some(o) = &self.observer {
            o(v.event());
        }
        v
    }
}

/// Limits requests per key with a sliding window; see the [crate docs](crate).
///
/// Cheap to clone: clones share one set of counters (also across
/// [`RateLimitLayer::key_extractor`] and [`RateLimitLayer::error_format`] variants, so a REST
/// router and an MCP router can share one budget while answering in their own format).
#[derive(Clone)]
pub struct RateLimitLayer<K = IdentityOrIp> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) extractor: K,
    pub(crate) format: ErrorFormat,
}

impl<K: fmt::Debug> fmt::Debug for RateLimitLayer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backend = match &self.shared.backend {
            Backend::Memory(w) => format!("{w:?}"),
            Backend::Redis(r) => format!("{r:?}"),
        };
        f.debug_struct("RateLimitLayer")
            .field("limit", &self.shared.limit)
            .field("backend", &backend)
            .field("extractor", &self.extractor)
            .field("format", &self.format)
            .finish()
    }
}

impl RateLimitLayer {
    /// In-memory limiter: `limit` requests per `window` per caller ([`IdentityOrIp`]).
    ///
    /// # Panics
    ///
    /// When `limit` is 0 or `window` is shorter than a second; use
    /// [`RateLimitLayer::builder`] to get an error instead.
    pub fn new(limit: u64, window: Duration) -> Self {
        Self::builder(limit, window)
            .build()
            .expect("invalid rate limit")
    }

    /// A builder for the other settings (backend, sizing, fail mode, observer).
    pub fn builder(limit: u64, window: Duration) -> RateLimitBuilder {
        RateLimitBuilder {
            limit,
            window,
            max_keys: 65_536,
            redis_url: None,
            redis_prefix: "mcp-gateway:rl:".into(),
            redis_timeout: Duration::from_millis(250),
            fail_mode: FailMode::default(),
            per_key: true,
            overrides: Overrides::new(),
            observer: None,
        }
    }
}

impl<K> RateLimitLayer<K> {
    /// The same counters, with another way of choosing keys.
    pub fn key_extractor<K2>(self, extractor: K2) -> RateLimitLayer<K2> {
        RateLimitLayer {
            shared: self.shared,
            extractor,
            format: self.format,
        }
    }

    /// The same counters, answering rejections in `format`.
    #[must_use]
    pub fn error_format(mut self, format: ErrorFormat) -> Self {
        self.format = format;
        self
    }

    /// The default limit per window.
    pub fn limit(&self) -> u64 {
        self.shared.limit
    }

    /// Bytes held by the in-memory counters (0 for Redis); fixed at construction.
    pub fn memory_bytes(&self) -> usize {
        match &self.shared.backend {
            Backend::Memory(w) => w.memory_bytes(),
            Backend::Redis(_) => 0,
        }
    }

    /// Decides one request for `key` without a service around it (benches, custom front
    /// ends). Counts it when admitted.
    pub async fn check(&self, key: &RateKey) -> Verdict {
        let limit = key.limit().unwrap_or(self.shared.limit);
        self.shared.check(key, limit).await
    }

    /// Decides at once with the in-memory backend (what its services do on every request);
    /// `None` with the Redis backend, which needs [`RateLimitLayer::check`].
    pub fn check_now(&self, key: &RateKey) -> Option<Verdict> {
        let limit = key.limit().unwrap_or(self.shared.limit);
        self.shared.check_now(key, limit)
    }
}

impl<S, K: Clone> Layer<S> for RateLimitLayer<K> {
    type Service = RateLimit<S, K>;

    fn layer(&self, inner: S) -> RateLimit<S, K> {
        RateLimit {
            inner,
            shared: self.shared.clone(),
            extractor: self.extractor.clone(),
            format: self.format,
        }
    }
}

/// Settings of a [`RateLimitLayer`]; made by [`RateLimitLayer::builder`].
#[must_use]
pub struct RateLimitBuilder {
    limit: u64,
    window: Duration,
    max_keys: usize,
    redis_url: Option<String>,
    redis_prefix: String,
    redis_timeout: Duration,
    fail_mode: FailMode,
    per_key: bool,
    overrides: Overrides,
    observer: Option<Observer>,
}

impl fmt::Debug for RateLimitBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitBuilder")
            .field("limit", &self.limit)
            .field("window", &self.window)
            .field("max_keys", &self.max_keys)
            .field("redis", &self.redis_url.is_some())
            .field("fail_mode", &self.fail_mode)
            .finish()
    }
}

impl RateLimitBuilder {
    /// Size the in-memory estimator for about this many keys active per window
    /// (memory: 64 bytes × the next power of two; default 65 536 → 4 MiB).
    pub fn max_keys(mut self, n: usize) -> Self {
        self.max_keys = n;
        self
    }

    /// One budget per caller (default) or one shared by all, for the default extractor.
    pub fn per_key(mut self, per_key: bool) -> Self {
        self.per_key = per_key;
        self
    }

    /// Per-caller limits for the default extractor.
    pub fn overrides(mut self, overrides: Overrides) -> Self {
        self.overrides = overrides;
        self
    }

    /// Keep the counters in Redis at `url`, shared by every replica.
    pub fn redis(mut self, url: impl Into<String>) -> Self {
        self.redis_url = Some(url.into());
        self
    }

    /// Prefix of the Redis keys (default `mcp-gateway:rl:`).
    pub fn redis_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.redis_prefix = prefix.into();
        self
    }

    /// How long to wait for Redis before applying the fail mode (default 250 ms).
    pub fn redis_timeout(mut self, timeout: Duration) -> Self {
        self.redis_timeout = timeout;
        self
    }

    /// What to do when Redis is unreachable (default [`FailMode::Open`]).
    pub fn fail_mode(mut self, mode: FailMode) -> Self {
        self.fail_mode = mode;
        self
    }

    /// Called with every decision (for metrics); must be cheap.
    pub fn on_decision(mut self, f: impl Fn(Event) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(f));
        self
    }

    /// Validates and builds. With Redis this must run inside a Tokio runtime; the
    /// connection itself is made on first use.
    pub fn build(self) -> Result<RateLimitLayer, BuildError> {
        if self.limit == 0 {
            return Err(BuildError::ZeroLimit);
        }
        if self.window < Duration::from_secs(1) {
            return Err(BuildError::WindowTooShort(self.window));
        }
        let backend = match &self.redis_url {
            None => Backend::Memory(SlidingWindow::new(self.window, self.max_keys)),
            Some(url) => Backend::Redis(
                RedisWindow::new(url, self.redis_prefix, self.window, self.redis_timeout)
                    .map_err(BuildError::Redis)?,
            ),
        };
        Ok(RateLimitLayer {
            shared: Arc::new(Shared {
                backend,
                limit: self.limit,
                fail_mode: self.fail_mode,
                observer: self.observer,
                backend_down: AtomicBool::new(false),
            }),
            extractor: IdentityOrIp::new(self.per_key).overrides(self.overrides),
            format: ErrorFormat::default(),
        })
    }
}

/// Checks that `url` is a Redis URL this build can connect to, without connecting.
pub fn check_redis_url(url: &str) -> Result<(), BuildError> {
    redis::Client::open(url)
        .map(drop)
        .map_err(BuildError::Redis)
}
