//! One rate-limit decision and the headers that report it.

use http::{HeaderMap, HeaderName};
use mcp_gateway_core::header::int_header;
use std::time::Duration;

/// `X-RateLimit-Limit`: requests allowed per window.
pub const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// `X-RateLimit-Remaining`: requests left before the limit is reached.
pub const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// `X-RateLimit-Reset`: seconds until budget frees (see [`Decision::reset_secs`]).
pub const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// The outcome of checking one request against its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The request may proceed (and was counted).
    pub allowed: bool,
    /// The budget per window that applied.
    pub limit: u64,
    /// Requests still admissible right now, after this one.
    pub remaining: u64,
    /// Seconds until budget frees: when limited, until one more request would be admitted
    /// (the `Retry-After`); otherwise until the current window ends and its count starts to
    /// age out.
    pub reset_secs: u64,
}

impl Decision {
    /// An admitted request; `fraction` is how far into the current window we are.
    pub(crate) fn allowed(limit: u64, remaining: u64, fraction: f64, window: Duration) -> Self {
        let reset = (1.0 - fraction.clamp(0.0, 1.0)) * window.as_secs_f64();
        Self {
            allowed: true,
            limit,
            remaining,
            reset_secs: (reset.ceil() as u64).max(1),
        }
    }

    /// A rejected request, given the previous and current window counts (without it).
    pub(crate) fn limited(
        limit: u64,
        prev: u64,
        curr: u64,
        fraction: f64,
        window: Duration,
    ) -> Self {
        let f = fraction.clamp(0.0, 1.0);
        let (l, p, c) = (limit as f64, prev as f64, curr as f64);
        // Admitted again once prev × (1 − f') + curr + 1 ≤ limit.
        let windows = if c + 1.0 <= l && p > 0.0 {
            // Within this window, once enough of the previous one has aged out.
            (1.0 - (l - c - 1.0) / p) - f
        } else {
            // Only after this window ends, once enough of it has aged out in the next one.
            (1.0 - f) + (1.0 - (l - 1.0) / c.max(1.0)).max(0.0)
        };
        let secs = windows.max(0.0) * window.as_secs_f64();
        Self {
            allowed: false,
            limit,
            remaining: 0,
            // Round up, plus a hair for float error, so a client retrying on time succeeds.
            reset_secs: ((secs - 1e-9).ceil() as u64).max(1),
        }
    }

    /// `Retry-After` seconds when limited.
    pub fn retry_after_secs(&self) -> Option<u64> {
        (!self.allowed).then_some(self.reset_secs)
    }

    /// Writes `X-RateLimit-Limit`, `-Remaining` and `-Reset` (and `Retry-After` when limited).
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        headers.insert(X_RATELIMIT_LIMIT, int_header(self.limit));
        headers.insert(X_RATELIMIT_REMAINING, int_header(self.remaining));
        headers.insert(X_RATELIMIT_RESET, int_header(self.reset_secs));
        if let Some(s) = self.retry_after_secs() {
            headers.insert(http::header::RETRY_AFTER, int_header(s));
        }
    }
}

/// What the layer concluded about one request, including backend failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The backend decided.
    Decided(Decision),
    /// The backend (Redis) failed and the fail mode admitted the request uncounted.
    FailedOpen {
        /// The budget that would have applied.
        limit: u64,
    },
    /// The backend (Redis) failed and the fail mode rejected the request.
    FailedClosed,
}

/// A decision, as reported to [`crate::RateLimitBuilder::on_decision`] observers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Admitted and counted.
    Allowed,
    /// Rejected: over budget.
    Limited,
    /// Backend unavailable; admitted uncounted (`failMode: open`).
    FallbackOpen,
    /// Backend unavailable; rejected (`failMode: closed`).
    FallbackClosed,
}

impl Verdict {
    pub(crate) fn event(&self) -> Event {
        match self {
            Verdict::Decided(d) if d.allowed => Event::Allowed,
            Verdict::Decided(_) => Event::Limited,
            Verdict::FailedOpen { .. } => Event::FallbackOpen,
            Verdict::FailedClosed => Event::FallbackClosed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_covers_both_cases() {
        let w = Duration::from_secs(60);
        // Current window full: wait for the rest of it plus the part of the next one in
        // which (limit - 1) / curr of it remains weighted.
        let d = Decision::limited(10, 0, 10, 0.5, w);
        assert_eq!(d.reset_secs, 30 + 6);
        // Previous window heavy, current light: wait inside this window.
        let d = Decision::limited(10, 10, 4, 0.5, w);
        // 10 × (1 − f') + 4 + 1 ≤ 10 → f' = 0.5: free right now (rounding), at least 1 s.
        assert_eq!(d.reset_secs, 1);
        let d = Decision::limited(10, 10, 4, 0.2, w);
        assert_eq!(d.reset_secs, 18);
        let mut h = HeaderMap::new();
        d.write_headers(&mut h);
        assert_eq!(h["retry-after"], "18");
        assert_eq!(h["x-ratelimit-remaining"], "0");
        let ok = Decision::allowed(10, 3, 0.25, w);
        assert_eq!(ok.reset_secs, 45);
        assert_eq!(ok.retry_after_secs(), None);
    }
}
