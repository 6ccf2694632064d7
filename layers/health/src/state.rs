//! One server's health: the state machine, its counters, and the prober task.

use serde::Serialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How a server is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    /// Answers probes in time.
    Healthy,
    /// Answers slowly, or some probes or calls failed.
    Degraded,
    /// Failed `unhealthy_after` probes in a row: calls fail fast until a probe succeeds.
    Unhealthy,
}

impl HealthState {
    /// Every state, in a fixed order.
    pub const ALL: [HealthState; 3] = [
        HealthState::Healthy,
        HealthState::Degraded,
        HealthState::Unhealthy,
    ];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Healthy => "healthy",
            HealthState::Degraded => "degraded",
            HealthState::Unhealthy => "unhealthy",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            0 => HealthState::Healthy,
            1 => HealthState::Degraded,
            _ => HealthState::Unhealthy,
        }
    }
}

/// When and how a server is probed, and what counts as sick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Time between probes.
    pub interval: Duration,
    /// A probe not answered within this fails.
    pub timeout: Duration,
    /// A probe answered slower than this makes the server degraded.
    pub degraded_latency: Duration,
    /// Consecutive failed probes that make the server unhealthy (calls then fail fast).
    pub unhealthy_after: u32,
    /// Consecutive failed probes after which the owner is asked to restart the server
    /// (0: never).
    pub restart_after: u32,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            degraded_latency: Duration::from_secs(2),
            unhealthy_after: 2,
            restart_after: 3,
        }
    }
}

/// A point-in-time view of a server's health, for APIs and metrics.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthSnapshot {
    /// Current state.
    pub state: HealthState,
    /// Latency of the last successful probe, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Failed probes (and failed calls) since the last success.
    pub consecutive_failures: u32,
    /// Probes made so far.
    pub checks: u64,
    /// When the last probe ended (Unix milliseconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_check_ms: Option<u64>,
    /// Why the last probe or call failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Transitions into each state so far.
    pub transitions: Transitions,
}

/// Transition counts by target state.
#[derive(Clone, Debug, Serialize)]
pub struct Transitions {
    /// Into healthy.
    pub healthy: u64,
    /// Into degraded.
    pub degraded: u64,
    /// Into unhealthy.
    pub unhealthy: u64,
}

/// One server's health; shared by its prober, its [`crate::HealthGate`] and observers.
#[derive(Debug)]
pub struct Health {
    server: Arc<str>,
    policy: HealthPolicy,
    state: AtomicU8,
    failures: AtomicU32,
    checks: AtomicU64,
    latency_us: AtomicU64,
    last_check_ms: AtomicU64,
    transitions: [AtomicU64; 3],
    last_error: Mutex<Option<String>>,
    /// Wakes the prober early (a call failed: check now rather than at the next tick).
    wake: Notify,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Health {
    /// A healthy server `server` watched with `policy`.
    pub fn new(server: impl Into<Arc<str>>, policy: HealthPolicy) -> Arc<Self> {
        Arc::new(Self {
            server: server.into(),
            policy,
            state: AtomicU8::new(0),
            failures: AtomicU32::new(0),
            checks: AtomicU64::new(0),
            latency_us: AtomicU64::new(u64::MAX),
            last_check_ms: AtomicU64::new(0),
            transitions: Default::default(),
            last_error: Mutex::new(None),
            wake: Notify::new(),
        })
    }

    /// The server's id.
    pub fn server(&self) -> &Arc<str> {
        &self.server
    }

    /// The policy.
    pub fn policy(&self) -> &HealthPolicy {
        &self.policy
    }

    /// Current state (one atomic load: cheap enough for every call).
    pub fn state(&self) -> HealthState {
        HealthState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Why the server is sick, in words (for the error a caller gets).
    pub fn reason(&self) -> String {
        let last = self.last_error.lock().expect("lock").clone();
        format!(
            "unhealthy: {} health checks failed in a row{}; calls fail fast until a check succeeds",
            self.failures.load(Ordering::Relaxed),
            last.map(|e| format!(" (last: {e})")).unwrap_or_default()
        )
    }

    fn set(&self, new: HealthState) {
        let old = HealthState::from_u8(self.state.swap(new as u8, Ordering::AcqRel));
        if old == new {
            return;
        }
        self.transitions[new as usize].fetch_add(1, Ordering::Relaxed);
        match new {
            HealthState::Healthy => {
                tracing::info!(server = %self.server, from = old.as_str(), "upstream healthy again")
            }
            HealthState::Degraded => {
                tracing::warn!(server = %self.server, from = old.as_str(), "upstream degraded")
            }
            HealthState::Unhealthy => {
                tracing::warn!(server = %self.server, from = old.as_str(), reason = %self.reason(), "upstream unhealthy: failing its calls fast")
            }
        }
    }

    /// A probe succeeded after `latency`: healthy, or degraded when slow (half-open → closed).
    pub fn probe_succeeded(&self, latency: Duration) {
        self.checks.fetch_add(1, Ordering::Relaxed);
        self.last_check_ms.store(unix_ms(), Ordering::Relaxed);
        self.latency_us
            .store(latency.as_micros() as u64, Ordering::Relaxed);
        self.failures.store(0, Ordering::Relaxed);
        if latency >= self.policy.degraded_latency {
            *self.last_error.lock().expect("lock") = Some(format!(
                "slow: answered in {} ms (degraded above {} ms)",
                latency.as_millis(),
                self.policy.degraded_latency.as_millis()
            ));
            self.set(HealthState::Degraded);
        } else {
            self.set(HealthState::Healthy);
        }
    }

    /// A probe failed; returns the consecutive failures so far.
    pub fn probe_failed(&self, why: &str) -> u32 {
        self.checks.fetch_add(1, Ordering::Relaxed);
        self.last_check_ms.store(unix_ms(), Ordering::Relaxed);
        *self.last_error.lock().expect("lock") = Some(why.to_string());
        let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        self.set(if n >= self.policy.unhealthy_after.max(1) {
            HealthState::Unhealthy
        } else {
            HealthState::Degraded
        });
        n
    }

    /// A real call failed in transport (timeout, broken connection): the server is at least
    /// degraded, and the prober checks at once instead of at its next tick.
    pub fn call_failed(&self, why: &str) {
        if self.state() == HealthState::Healthy {
            *self.last_error.lock().expect("lock") = Some(why.to_string());
            self.set(HealthState::Degraded);
        }
        self.wake.notify_one();
    }

    /// The server was restarted (or came back up): start from a clean slate.
    pub fn reset(&self) {
        self.failures.store(0, Ordering::Relaxed);
        self.set(HealthState::Healthy);
    }

    /// The current view.
    pub fn snapshot(&self) -> HealthSnapshot {
        let latency = self.latency_us.load(Ordering::Relaxed);
        let last = self.last_check_ms.load(Ordering::Relaxed);
        let t = |s: HealthState| self.transitions[s as usize].load(Ordering::Relaxed);
        HealthSnapshot {
            state: self.state(),
            latency_ms: (latency != u64::MAX).then(|| latency as f64 / 1000.0),
            consecutive_failures: self.failures.load(Ordering::Relaxed),
            checks: self.checks.load(Ordering::Relaxed),
            last_check_ms: (last != 0).then_some(last),
            last_error: self.last_error.lock().expect("lock").clone(),
            transitions: Transitions {
                healthy: t(HealthState::Healthy),
                degraded: t(HealthState::Degraded),
                unhealthy: t(HealthState::Unhealthy),
            },
        }
    }
}

/// A probe: resolves to `Ok` when the server answered, `Err(reason)` otherwise.
pub type Probe =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Probes `health`'s server every `interval` (and at once after a failed call) while
/// `ready()` says it is up, until `stop`. After `restart_after` consecutive failures it calls
/// `restart` (once per streak).
pub fn spawn_prober(
    health: Arc<Health>,
    probe: Probe,
    ready: impl Fn() -> bool + Send + 'static,
    restart: impl Fn() + Send + 'static,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let policy = health.policy().clone();
        let mut last_probe: Option<Instant> = None;
        loop {
            let wait = tokio::time::sleep(policy.interval);
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = wait => {}
                _ = health.wake.notified() => {
                    // Woken by a failed call: probe now, but not more often than the timeout.
                    if last_probe.is_some_and(|t| t.elapsed() < policy.timeout) {
                        continue;
                    }
                }
            }
            if !ready() {
                continue;
            }
            last_probe = Some(Instant::now());
            let started = Instant::now();
            let outcome = tokio::select! {
                _ = stop.cancelled() => return,
                r = tokio::time::timeout(policy.timeout, probe()) => r,
            };
            match outcome {
                Ok(Ok(())) => health.probe_succeeded(started.elapsed()),
                Ok(Err(why)) => {
                    let n = health.probe_failed(&why);
                    if policy.restart_after > 0 && n == policy.restart_after {
                        tracing::warn!(server = %health.server(), failures = n, "restarting an upstream that stopped answering");
                        restart();
                    }
                }
                Err(_) => {
                    let why = format!(
                        "no answer to the health check within {} ms",
                        policy.timeout.as_millis()
                    );
                    let n = health.probe_failed(&why);
                    if policy.restart_after > 0 && n == policy.restart_after {
                        tracing::warn!(server = %health.server(), failures = n, "restarting an upstream that stopped answering");
                        restart();
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    fn policy() -> HealthPolicy {
        HealthPolicy {
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(300),
            degraded_latency: Duration::from_millis(100),
            unhealthy_after: 2,
            restart_after: 3,
        }
    }

    #[test]
    fn states_follow_probes() {
        let h = Health::new("s", policy());
        assert_eq!(h.state(), HealthState::Healthy);
        h.probe_failed("boom");
        assert_eq!(
            h.state(),
            HealthState::Degraded,
            "one failure: intermittent"
        );
        h.probe_failed("boom");
        assert_eq!(h.state(), HealthState::Unhealthy);
        assert!(h.reason().contains("2 health checks failed") && h.reason().contains("boom"));
        h.probe_succeeded(Duration::from_millis(150));
        assert_eq!(h.state(), HealthState::Degraded, "back, but slow");
        h.probe_succeeded(Duration::from_millis(5));
        assert_eq!(h.state(), HealthState::Healthy);
        let s = h.snapshot();
        assert_eq!(
            (
                s.transitions.healthy,
                s.transitions.degraded,
                s.transitions.unhealthy
            ),
            (1, 2, 1)
        );
        assert_eq!(s.checks, 4);
        assert_eq!(s.consecutive_failures, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn prober_detects_a_hang_restarts_and_recovers() {
        let h = Health::new("s", policy());
        let hung = Arc::new(AtomicBool::new(false));
        let restarts = Arc::new(AtomicU32::new(0));
        let probe: Probe = {
            let hung = hung.clone();
            Arc::new(move || {
                let hung = hung.load(Ordering::Relaxed);
                Box::pin(async move {
                    if hung {
                        std::future::pending::<()>().await;
                    }
                    Ok(())
                })
            })
        };
        let stop = CancellationToken::new();
        let r = restarts.clone();
        spawn_prober(
            h.clone(),
            probe,
            || true,
            move || {
                r.fetch_add(1, Ordering::Relaxed);
            },
            stop.clone(),
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(h.state(), HealthState::Healthy);
        hung.store(true, Ordering::Relaxed);
        // Two intervals (plus the probe timeouts) later it is unhealthy.
        tokio::time::sleep(Duration::from_millis(2700)).await;
        assert_eq!(h.state(), HealthState::Unhealthy, "{:?}", h.snapshot());
        tokio::time::sleep(Duration::from_millis(1400)).await;
        assert_eq!(restarts.load(Ordering::Relaxed), 1, "{:?}", h.snapshot());
        hung.store(false, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(1400)).await;
        assert_eq!(h.state(), HealthState::Healthy);
        stop.cancel();
    }
}
