//! A budget of failed authentications per client IP: a client that keeps guessing keys or
//! tokens is answered `429` without its credentials being checked until its window ends.
//!
//! Requests from IPs without recent failures never take the lock: the common case reads
//! one atomic counter.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Most IPs tracked at once; past it, expired entries are dropped, and if none expired the
/// table starts over (a client with that many addresses is not stopped by a table anyway).
const MAX_TRACKED: usize = 65_536;

/// At most `limit` failed authentications per client IP in each `window`.
///
/// ```
/// use mcp_gateway_auth::FailureBudget;
/// use std::time::Duration;
/// let b = FailureBudget::new(2, Duration::from_secs(60));
/// let ip = "10.0.0.1".parse().unwrap();
/// assert!(b.blocked(ip).is_none());
/// b.record(ip);
/// b.record(ip);
/// assert!(b.blocked(ip).is_some());
/// assert!(b.blocked("10.0.0.2".parse().unwrap()).is_none());
/// ```
#[derive(Debug)]
pub struct FailureBudget {
    limit: u32,
    window: Duration,
    tracked: AtomicUsize,
    seen: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl FailureBudget {
    /// `limit` failures per IP in each `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            tracked: AtomicUsize::new(0),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// How long `ip` must wait, when it used up its failures.
    pub fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let seen = self.seen.lock().expect("failure budget lock poisoned");
        let (start, n) = *seen.get(&ip)?;
        let left = self.window.checked_sub(start.elapsed())?;
        (n >= self.limit).then_some(left)
    }

    /// Counts one failed authentication of `ip`.
    pub fn record(&self, ip: IpAddr) {
        let mut seen = self.seen.lock().expect("failure budget lock poisoned");
        let now = Instant::now();
        if seen.len() >= MAX_TRACKED && !seen.contains_key(&ip) {
            let window = self.window;
            seen.retain(|_, (start, _)| now.duration_since(*start) < window);
            if seen.len() >= MAX_TRACKED {
                seen.clear();
            }
        }
        let entry = seen.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        self.tracked.store(seen.len(), Ordering::Relaxed);
    }
}
