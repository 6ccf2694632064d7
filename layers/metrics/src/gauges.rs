//! The gateway's own series, read at scrape time: live MCP sessions, whether each server is
//! up, its restarts, and its health state and transitions.
//!
//! All are observable instruments whose callbacks read a [`GatewayGauges`] through a weak
//! reference, so they neither cost anything per call nor keep the gateway alive.

use crate::PrometheusExporter;
use opentelemetry::KeyValue;
use std::sync::Weak;

/// The health states, in the order [`ServerHealth::transitions`] counts them.
pub const HEALTH_STATES: [&str; 3] = ["healthy", "degraded", "unhealthy"];

/// What the gateway's own series read.
pub trait GatewayGauges: Send + Sync + 'static {
    /// Live downstream MCP sessions.
    fn mcp_sessions(&self) -> u64;
    /// One entry per configured server, in config order.
    fn servers(&self) -> Vec<ServerGauges>;
    /// Configuration reloads so far: applied and refused (invalid), and the generation in
    /// force (1 for the configuration the gateway started with).
    fn config_reloads(&self) -> ConfigReloads {
        ConfigReloads::default()
    }
}

/// Configuration reloads.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConfigReloads {
    /// Reloads applied.
    pub ok: u64,
    /// Reloads refused: the new configuration was invalid and nothing changed.
    pub error: u64,
    /// The configuration generation in force.
    pub generation: u64,
}

/// One server's gauges.
#[derive(Clone, Debug, Default)]
pub struct ServerGauges {
    /// Server id.
    pub server: String,
    /// Connected and ready (how well it answers is [`ServerGauges::health`]).
    pub up: bool,
    /// Restarts after failures, when it runs.
    pub restarts: Option<u64>,
    /// Its health, when health checks are on.
    pub health: Option<ServerHealth>,
}

/// One server's health.
#[derive(Clone, Debug, Default)]
pub struct ServerHealth {
    /// The current state, one of [`HEALTH_STATES`].
    pub state: &'static str,
    /// Transitions into each of [`HEALTH_STATES`].
    pub transitions: [u64; 3],
}

impl PrometheusExporter {
    /// Registers `mcp_gateway_mcp_sessions`, `mcp_gateway_upstream_up`,
    /// `mcp_gateway_upstream_restarts`, `mcp_gateway_upstream_health` and
    /// `mcp_gateway_upstream_health_transitions`, read from `source` at scrape time.
    pub fn register_gateway(&self, source: Weak<dyn GatewayGauges>) {
        let meter = self.meter();
        let label = |s: &ServerGauges| KeyValue::new("server", s.server.clone());
        let w = source.clone();
        meter
            .u64_observable_gauge("mcp_gateway_mcp_sessions")
            .with_description("Live downstream MCP sessions.")
            .with_callback(move |o| {
                if let Some(g) = w.upgrade() {
                    o.observe(g.mcp_sessions(), &[]);
                }
            })
            .build();
        let w = source.clone();
        meter
            .u64_observable_gauge("mcp_gateway_upstream_up")
            .with_description("1 when the server is connected and ready.")
            .with_callback(move |o| {
                let Some(g) = w.upgrade() else { return };
                for s in g.servers() {
                    o.observe(u64::from(s.up), &[label(&s)]);
                }
            })
            .build();
        let w = source.clone();
        meter
            .u64_observable_counter("mcp_gateway_upstream_restarts")
            .with_description("Restarts after failures.")
            .with_callback(move |o| {
                let Some(g) = w.upgrade() else { return };
                for s in g.servers() {
                    if let Some(n) = s.restarts {
                        o.observe(n, &[label(&s)]);
                    }
                }
            })
            .build();
        let w = source.clone();
        meter
            .u64_observable_gauge("mcp_gateway_upstream_health")
            .with_description("1 for the server's current health state (from its health checks).")
            .with_callback(move |o| {
                let Some(g) = w.upgrade() else { return };
                for s in g.servers() {
                    let Some(h) = &s.health else { continue };
                    for state in HEALTH_STATES {
                        o.observe(
                            u64::from(h.state == state),
                            &[label(&s), KeyValue::new("state", state)],
                        );
                    }
                }
            })
            .build();
        let w = source.clone();
        meter
            .u64_observable_counter("mcp_gateway_config_reloads")
            .with_description(
                "Configuration reloads, by result (ok: applied, error: invalid, nothing changed).",
            )
            .with_callback(move |o| {
                let Some(g) = w.upgrade() else { return };
                let r = g.config_reloads();
                o.observe(r.ok, &[KeyValue::new("result", "ok")]);
                o.observe(r.error, &[KeyValue::new("result", "error")]);
            })
            .build();
        let w = source.clone();
        meter
            .u64_observable_gauge("mcp_gateway_config_generation")
            .with_description(
                "The configuration generation in force (1 at start, one more per applied reload).",
            )
            .with_callback(move |o| {
                if let Some(g) = w.upgrade() {
                    o.observe(g.config_reloads().generation, &[]);
                }
            })
            .build();
        let w = source;
        meter
            .u64_observable_counter("mcp_gateway_upstream_health_transitions")
            .with_description("Health state changes, by the state entered.")
            .with_callback(move |o| {
                let Some(g) = w.upgrade() else { return };
                for s in g.servers() {
                    let Some(h) = &s.health else { continue };
                    for (to, n) in HEALTH_STATES.iter().zip(h.transitions) {
                        o.observe(n, &[label(&s), KeyValue::new("to", *to)]);
                    }
                }
            })
            .build();
    }
}
