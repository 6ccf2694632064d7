//! Upstream health for MCP servers.
//!
//! - [`Health`] holds one server's state — `healthy`, `degraded` (slow answers, or some
//!   failures) or `unhealthy` — fed by periodic probes ([`spawn_prober`]: MCP `ping`, or
//!   whatever probe the caller gives) and by the outcome of real calls.
//! - [`HealthLayer`] is the circuit breaker: while its server is unhealthy, calls fail at
//!   once with 503 instead of waiting for a timeout (open); the next probe is the half-open
//!   trial, and one success closes the circuit again. Consecutive call timeouts or transport
//!   failures open it without waiting for a probe.
//! - Transitions are logged and counted; [`HealthPolicy::restart_after`] lets the owner
//!   restart a server that stopped answering (the prober calls back).
//! - [`watch_upstream`] wires all of it to one `mcp-gateway-upstream` [`Upstream`]
//!   (`ping`, or `tools/list` for servers without it; restart through its supervisor).
//!
//! [`Upstream`]: mcp_gateway_upstream::Upstream

mod layer;
mod state;
mod upstream;

pub use upstream::watch_upstream;

pub use layer::{HealthFuture, HealthGate, HealthLayer};
pub use state::{Health, HealthPolicy, HealthSnapshot, HealthState, Probe, spawn_prober};
