//! The Redis backend: one sliding-window-counter budget shared by every replica.
//!
//! Each decision is one `EVALSHA` of [`SCRIPT`] (Redis runs scripts atomically, so replicas
//! never race): it reads Redis' own clock (`TIME`, so replica clocks do not matter), the
//! current and previous window counters `<prefix>{<key>}:<window index>`, and increments the
//! current one only when `previous × (1 − f) + current + 1 ≤ limit` — the same estimate as
//! the in-memory backend. Counters expire two windows after they were created.
//!
//! The connection is a [`ConnectionManager`] created lazily: a gateway starts even when Redis
//! is down and reconnects by itself when it comes back. While Redis is unreachable (errors
//! or no answer within the response timeout) the layer applies its [`FailMode`].

use crate::decision::Decision;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

/// What to do with a request when the shared backend cannot be reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FailMode {
    /// Admit it, uncounted (availability first). The answer carries only `X-RateLimit-Limit`.
    #[default]
    Open,
    /// Reject it with 503 and `Retry-After: 1` (protection first).
    Closed,
}

/// Sliding window counter in one atomic round trip. KEYS[1]: key base; ARGV: window in ms,
/// limit. Returns {allowed, current count, previous count, ms into the window}.
pub(crate) const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local idx = math.floor(now / window)
local into = now - idx * window
local ck = KEYS[1] .. ':' .. idx
local curr = tonumber(redis.call('GET', ck) or '0')
local prev = tonumber(redis.call('GET', KEYS[1] .. ':' .. (idx - 1)) or '0')
local allowed = 0
if prev * (window - into) / window + curr + 1 <= limit then
  curr = redis.call('INCR', ck)
  if curr == 1 then
    redis.call('PEXPIRE', ck, 2 * window + 1000)
  end
  allowed = 1
end
return {allowed, curr, prev, into}
";

/// Redis-side counters.
pub(crate) struct RedisWindow {
    conn: ConnectionManager,
    script: redis::Script,
    prefix: String,
    window: Duration,
}

impl std::fmt::Debug for RedisWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisWindow")
            .field("prefix", &self.prefix)
            .field("window", &self.window)
            .finish()
    }
}

impl RedisWindow {
    /// A lazily connecting backend; must be called inside a Tokio runtime.
    pub(crate) fn new(
        url: &str,
        prefix: String,
        window: Duration,
        timeout: Duration,
    ) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self {
            conn,
            script: redis::Script::new(SCRIPT),
            prefix,
            window,
        })
    }

    /// Decides one request for the key named `key` against `limit`.
    pub(crate) async fn check(&self, key: &str, limit: u64) -> redis::RedisResult<Decision> {
        let mut conn = self.conn.clone();
        let window_ms = self.window.as_millis().max(1) as u64;
        let (allowed, curr, prev, into): (i64, i64, i64, i64) = self
            .script
            .key(format!("{}{{{key}}}", self.prefix))
            .arg(window_ms)
            .arg(limit)
            .invoke_async(&mut conn)
            .await?;
        let fraction = into.max(0) as f64 / window_ms as f64;
        let (curr, prev) = (curr.max(0) as u64, prev.max(0) as u64);
        Ok(if allowed == 1 {
            let used = prev as f64 * (1.0 - fraction) + curr as f64;
            let remaining = (limit as f64 - used).floor().max(0.0) as u64;
            Decision::allowed(limit, remaining, fraction, self.window)
        } else {
            Decision::limited(limit, prev, curr, fraction, self.window)
        })
    }
}
