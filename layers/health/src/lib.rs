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
//!
//! ```
//! use mcp_gateway_core::{McpError, McpRequest, McpResponse};
//! use mcp_gateway_health::{Health, HealthLayer, HealthPolicy, HealthState};
//! use std::time::Duration;
//! use tower::{Layer, ServiceExt, service_fn};
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let health = Health::new("fs", HealthPolicy { unhealthy_after: 2, ..Default::default() });
//! let server = HealthLayer::new(health.clone()).layer(service_fn(|_req: McpRequest| async {
//!     let result = serde_json::value::RawValue::from_string("{}".into()).unwrap();
//!     Ok::<_, McpError>(McpResponse::new(result))
//! }));
//! health.probe_failed("no answer");
//! health.probe_failed("no answer");
//! assert_eq!(health.state(), HealthState::Unhealthy);
//! // The circuit is open: calls fail at once with 503 instead of waiting for a timeout.
//! let err = server.clone().oneshot(McpRequest::new("tools/list", None)).await.unwrap_err();
//! assert_eq!(err.http_status(), 503);
//! // One good probe closes it again.
//! health.probe_succeeded(Duration::from_millis(3));
//! assert!(server.oneshot(McpRequest::new("tools/list", None)).await.is_ok());
//! # }
//! ```

mod layer;
mod state;
mod upstream;

pub use upstream::watch_upstream;

pub use layer::{HealthFuture, HealthGate, HealthLayer};
pub use state::{Health, HealthPolicy, HealthSnapshot, HealthState, Probe, spawn_prober};
