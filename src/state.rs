//! The running gateway's shared state: upstreams, the MCP-plane service stack, metrics.

use crate::config::{Config, ProtocolKind, ServerConfig, TransportKind};
use mcp_gateway_auth::{AccessControl, AccessControlLayer, AccessPolicy};
use mcp_gateway_core::ToolPolicy;
use mcp_gateway_health::{Health, HealthGate, HealthLayer, HealthPolicy, HealthState};
use mcp_gateway_metrics::{McpMetrics, McpMetricsLayer, PrometheusExporter, Recorder};
use mcp_gateway_rate_limit::McpRateLimit;
use mcp_gateway_router::{Catalog, Resolve, ResolveLayer, ToolEntry, ToolRouter};
use mcp_gateway_upstream::{
    Credential, HttpConfig, ProtocolChoice, StdioConfig, Transport, Upstream, UpstreamConfig,
    UpstreamStack, UpstreamStatus,
};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;
use tower::Layer;

/// The MCP-plane stack every front end calls: the route of a tool call is resolved once
/// against the catalog, then metrics around access control around the router around the
/// per-server upstream stacks. Access control sits inside the metrics so refused calls are
/// counted (outcome `forbidden`) and logged with the caller.
pub type McpService = Resolve<McpMetrics<AccessControl<ToolRouter<ServerStack>>>>;

/// One server's stack as the router sees it: per-tool rate limits, then the health circuit
/// breaker, over the upstream.
pub type ServerStack = McpRateLimit<HealthGate<UpstreamStack>>;

/// One configured server and, when it runs, its upstream.
pub(crate) struct ServerSlot {
    pub(crate) config: ServerConfig,
    pub(crate) upstream: Option<Upstream>,
    /// Why there is no upstream (disabled, unsupported transport).
    pub(crate) inactive: Option<&'static str>,
    /// Its health, when health checks are on.
    pub(crate) health: Option<Arc<Health>>,
}

/// How one server came up, as printed at start.
#[derive(Clone, Debug)]
pub struct ServerReport {
    /// Server id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What happened.
    pub outcome: StartOutcome,
}

/// Result of starting one server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartOutcome {
    /// Ready with this many tools.
    Ready(usize),
    /// Failed (it keeps retrying in the background).
    Failed(String),
    /// Still starting when the wait ended.
    Starting,
    /// Disabled in config.
    Disabled,
}

impl std::fmt::Display for ServerReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.outcome {
            StartOutcome::Ready(n) => write!(
                f,
                "✓ {} — {n} tool{} available",
                self.name,
                if *n == 1 { "" } else { "s" }
            ),
            StartOutcome::Failed(r) => write!(f, "✗ {} — {r}", self.name),
            StartOutcome::Starting => write!(f, "… {} — still starting", self.name),
            StartOutcome::Disabled => write!(f, "- {} — disabled", self.name),
        }
    }
}

pub(crate) struct AppState {
    pub(crate) config: Config,
    pub(crate) servers: Vec<ServerSlot>,
    /// The one catalog: tool names for REST and `/mcp` alike.
    pub(crate) catalog: Catalog,
    pub(crate) mcp: McpService,
    pub(crate) recorder: Recorder,
    pub(crate) started: Instant,
    pub(crate) started_at: SystemTime,
    pub(crate) stop: CancellationToken,
    /// Who may see and call which item; the same layer the MCP plane runs.
    pub(crate) access: AccessControlLayer,
    /// Who may see and call which tool; `None` allows everything.
    pub(crate) policy: Option<Arc<dyn ToolPolicy>>,
    /// The MCP endpoint, once built (for its session count).
    pub(crate) endpoint:
        std::sync::OnceLock<std::sync::Weak<mcp_gateway_mcp_server::Endpoint<McpService>>>,
    /// This replica's place among several (sealed sessions, Redis).
    pub(crate) cluster: Arc<mcp_gateway_cluster::Cluster>,
    /// Every metric as OpenTelemetry instruments, for `GET /metrics` (`None` when
    /// `monitor.prometheus` is off: then no call records into it).
    pub(crate) exporter: Option<PrometheusExporter>,
}

impl AppState {
    /// True when `identity` may see / call `tool` on `server`.
    pub(crate) fn allows(
        &self,
        identity: Option<&mcp_gateway_core::Identity>,
        server: &str,
        tool: &str,
    ) -> bool {
        self.access
            .visible(identity, mcp_gateway_core::ItemKind::Tool, server, tool)
    }

    /// Live downstream MCP sessions.
    pub(crate) fn mcp_sessions(&self) -> usize {
        self.endpoint
            .get()
            .and_then(std::sync::Weak::upgrade)
            .map_or(0, |e| e.session_count())
    }

    /// Spawns every enabled upstream and wires the MCP plane (needs a Tokio runtime).
    pub(crate) fn spawn(config: Config, policy: Option<Arc<AccessPolicy>>) -> Arc<AppState> {
        let recorder = Recorder::new(if config.monitor.request_log {
            config.monitor.request_log_size
        } else {
            0
        });
        let tool_limits = config
            .rate_limit
            .as_ref()
            .map(|rl| crate::limits::tool_layer(rl, &recorder))
            .unwrap_or_default();
        let mut builder = ToolRouter::builder().naming(match config.tool_naming {
            crate::config::ToolNaming::Prefixed => mcp_gateway_router::ToolNaming::Prefixed,
            crate::config::ToolNaming::Bare => mcp_gateway_router::ToolNaming::Bare,
        });
        let mut servers = Vec::with_capacity(config.servers.len());
        for s in &config.servers {
            let (upstream, inactive) = if !s.enabled {
                (None, Some("disabled in config"))
            } else {
                match upstream_config(s, config.max_message_bytes) {
                    Some(cfg) => (Some(Upstream::spawn(cfg)), None),
                    None => (
                        None,
                        Some("this transport is not supported by this version of mcp-gateway"),
                    ),
                }
            };
            let health = upstream
                .as_ref()
                .and_then(|_| health_policy(&config, s))
                .map(|p| Health::new(s.id.as_str(), p));
            let breaker = health
                .clone()
                .map_or_else(HealthLayer::disabled, HealthLayer::new);
            builder = match (&upstream, inactive, &s.tool_prefix) {
                (Some(u), _, Some(prefix)) => builder.server_with_prefix(
                    s.id.as_str(),
                    prefix.as_str(),
                    tool_limits.layer(breaker.layer(u.stack())),
                ),
                (Some(u), _, None) => {
                    builder.server(s.id.as_str(), tool_limits.layer(breaker.layer(u.stack())))
                }
                (None, reason, _) => builder.unavailable(s.id.as_str(), reason.unwrap_or("down")),
            };
            servers.push(ServerSlot {
                config: s.clone(),
                upstream,
                inactive,
                health,
            });
        }
        let router = builder.build();
        let policy = policy.map(|p| p as Arc<dyn ToolPolicy>);
        let access = AccessControlLayer::new(
            policy
                .clone()
                .unwrap_or_else(|| Arc::new(AccessPolicy::allow_by_default())),
        );
        let catalog = router.catalog().clone();
        let mcp = ResolveLayer::new(catalog.clone())
            .layer(McpMetricsLayer::new(recorder.clone()).layer(access.layer(router)));
        let cluster = Arc::new(mcp_gateway_cluster::Cluster::new(config.cluster.as_ref()));
        let exporter = if config.monitor.prometheus {
            match PrometheusExporter::new(&recorder, config.monitor.max_series) {
                Ok(e) => Some(e),
                Err(e) => {
                    tracing::error!("metrics: {e}; GET /metrics will answer 503");
                    None
                }
            }
        } else {
            None
        };
        let state = Arc::new(AppState {
            config,
            servers,
            catalog,
            mcp,
            recorder,
            started: Instant::now(),
            started_at: SystemTime::now(),
            stop: CancellationToken::new(),
            access,
            policy,
            endpoint: std::sync::OnceLock::new(),
            cluster,
            exporter,
        });
        for slot in &state.servers {
            if let Some(u) = &slot.upstream {
                tokio::spawn(sync_catalog(u.clone(), Arc::downgrade(&state)));
                tokio::spawn(forward_resource_updates(u.clone(), Arc::downgrade(&state)));
                if let Some(h) = &slot.health {
                    mcp_gateway_health::watch_upstream(u.clone(), h.clone(), state.stop.clone());
                }
            }
        }
        configure_recorder(&state);
        if let Some(e) = &state.exporter {
            let gauges: std::sync::Weak<dyn mcp_gateway_metrics::GatewayGauges> =
                Arc::downgrade(&state) as _;
            e.register_gateway(gauges);
        }
        tokio::spawn(expire_log(state.clone()));
        state
    }

    pub(crate) fn slot(&self, id: &str) -> Option<&ServerSlot> {
        self.servers.iter().find(|s| s.config.id == id)
    }

    /// Waits (up to `limit`) for every server's first start and reports each.
    pub(crate) async fn startup_report(&self, limit: Duration) -> Vec<ServerReport> {
        let waits = self.servers.iter().map(|slot| async move {
            let outcome = match (&slot.upstream, slot.inactive) {
                (Some(u), _) => {
                    let st = u.wait_started(limit).await;
                    match st.state {
                        mcp_gateway_upstream::State::Ready => StartOutcome::Ready(st.tool_count),
                        mcp_gateway_upstream::State::Starting => StartOutcome::Starting,
                        _ => StartOutcome::Failed(st.reason.unwrap_or_else(|| "failed".into())),
                    }
                }
                (None, Some("disabled in config")) => StartOutcome::Disabled,
                (None, reason) => StartOutcome::Failed(reason.unwrap_or("down").into()),
            };
            ServerReport {
                id: slot.config.id.clone(),
                name: slot.config.display_name().to_string(),
                outcome,
            }
        });
        futures::future::join_all(waits).await
    }

    /// Stops every upstream (terminating child processes).
    pub(crate) async fn shutdown_upstreams(&self) {
        self.stop.cancel();
        let stops = self
            .servers
            .iter()
            .filter_map(|s| s.upstream.as_ref())
            .map(|u| u.shutdown());
        futures::future::join_all(stops).await;
    }
}

fn upstream_config(s: &ServerConfig, max_message: usize) -> Option<UpstreamConfig> {
    // Validation guarantees a url for network transports; header values are already
    // `${VAR}`-substituted.
    let http = || HttpConfig {
        url: s.url.clone().unwrap_or_default(),
        headers: s.headers.clone(),
    };
    let transport = match s.transport {
        TransportKind::Stdio => Transport::Stdio(StdioConfig {
            command: s.command.clone().unwrap_or_default(),
            args: s.args.clone(),
            env: s.env.clone(),
            cwd: s.cwd.clone(),
        }),
        TransportKind::StreamableHttp => Transport::StreamableHttp(http()),
        TransportKind::Sse => Transport::Sse(http()),
        TransportKind::Websocket => Transport::Websocket(http()),
    };
    let mut cfg = UpstreamConfig::new(s.id.as_str(), transport);
    cfg.name = s.display_name().to_string();
    cfg.timeout = s.timeout();
    cfg.max_concurrency = s.max_concurrency;
    cfg.max_message_bytes = s.max_message_bytes.unwrap_or(max_message);
    cfg.protocol = match s.protocol {
        ProtocolKind::Auto => ProtocolChoice::Auto,
        ProtocolKind::Session => ProtocolChoice::Session,
        ProtocolKind::Stateless => ProtocolChoice::Stateless,
    };
    cfg.credentials = s
        .credentials
        .iter()
        .map(|c| Credential {
            subjects: c.subjects.clone(),
            roles: c.roles.clone(),
            keys: c.keys.clone(),
            headers: c.headers.clone(),
        })
        .collect();
    Some(cfg)
}

/// Applies `monitor` (request-log bodies, redaction, retention, series bound) to the
/// recorder.
fn configure_recorder(st: &AppState) {
    let m = &st.config.monitor;
    st.recorder
        .configure(&mcp_gateway_metrics::RecorderOptions {
            capture: match m.capture() {
                crate::config::CaptureBodies::None => mcp_gateway_metrics::CaptureMode::None,
                crate::config::CaptureBodies::Errors => mcp_gateway_metrics::CaptureMode::Errors,
                crate::config::CaptureBodies::All => mcp_gateway_metrics::CaptureMode::All,
            },
            redact: m.redact.clone(),
            redact_pointers: m.redact_pointers.clone(),
            body_limit: m.max_body_bytes,
            capture_bytes: m.capture_bytes,
            retention: Duration::from_secs(m.retention_hours.max(1) * 3600),
            max_series: m.max_series,
        });
}

impl mcp_gateway_metrics::GatewayGauges for AppState {
    fn mcp_sessions(&self) -> u64 {
        AppState::mcp_sessions(self) as u64
    }

    fn servers(&self) -> Vec<mcp_gateway_metrics::ServerGauges> {
        self.servers
            .iter()
            .map(|slot| mcp_gateway_metrics::ServerGauges {
                server: slot.config.id.clone(),
                // Up means connected; how well it answers is the health gauge.
                up: matches!(status_word(slot).0, "healthy" | "degraded" | "unhealthy"),
                restarts: slot.upstream.as_ref().map(|u| u.status().restarts),
                health: slot.health.as_ref().map(|h| {
                    let t = h.snapshot().transitions;
                    mcp_gateway_metrics::ServerHealth {
                        state: h.state().as_str(),
                        transitions: [t.healthy, t.degraded, t.unhealthy],
                    }
                }),
            })
            .collect()
    }
}

/// The health policy of server `s` (its `healthCheck` over the gateway's), `None` when
/// checks are off.
fn health_policy(config: &Config, s: &ServerConfig) -> Option<HealthPolicy> {
    let h = s.health_check.as_ref().map_or_else(
        || config.health_check.clone(),
        |h| h.over(&config.health_check),
    );
    if h.enabled == Some(false) {
        return None;
    }
    let d = HealthPolicy::default();
    Some(HealthPolicy {
        interval: h.interval_seconds.map_or(d.interval, Duration::from_secs),
        timeout: h.timeout_ms.map_or(d.timeout, Duration::from_millis),
        degraded_latency: h
            .degraded_latency_ms
            .map_or(d.degraded_latency, Duration::from_millis),
        unhealthy_after: h.unhealthy_after.unwrap_or(d.unhealthy_after),
        restart_after: h.restart_after.unwrap_or(d.restart_after),
    })
}

/// Keeps the catalog in step with an upstream: its tool list (the catalog announces
/// changes) and whether it is ready with which capabilities.
async fn sync_catalog(u: Upstream, state: std::sync::Weak<AppState>) {
    let mut rx = u.subscribe();
    let mut seen = None;
    let (stop, catalog) = match state.upgrade() {
        Some(s) => (s.stop.clone(), s.catalog.clone()),
        None => return,
    };
    loop {
        // The gateway was dropped without being stopped.
        if state.strong_count() == 0 {
            return;
        }
        let (version, ready, caps) = {
            let st = rx.borrow_and_update();
            (
                st.tools_version,
                st.state == mcp_gateway_upstream::State::Ready,
                st.capabilities.clone(),
            )
        };
        catalog.set_server_state(u.id(), ready, caps);
        if seen != Some(version) {
            seen = Some(version);
            if version > 0 {
                let tools = u.tools();
                catalog.set_tools(
                    u.id(),
                    tools.iter().map(|t| ToolEntry {
                        name: Arc::from(t.name.as_str()),
                        raw: Arc::from(t.raw.clone()),
                    }),
                );
            }
        }
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            _ = stop.cancelled() => return,
        }
    }
}

/// Hands an upstream's resource updates to the catalog, where the MCP endpoint finds them.
async fn forward_resource_updates(u: Upstream, state: std::sync::Weak<AppState>) {
    let mut rx = u.resource_updates();
    let (stop, catalog) = match state.upgrade() {
        Some(s) => (s.stop.clone(), s.catalog.clone()),
        None => return,
    };
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Ok(uri) => catalog.publish_resource_update(u.id().clone(), uri),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(server = %u.id(), missed = n, "resource updates dropped");
                }
                Err(_) => return,
            },
            _ = stop.cancelled() => return,
        }
    }
}

/// Drops request-log entries older than the retention window.
async fn expire_log(state: Arc<AppState>) {
    let retention = Duration::from_secs(state.config.monitor.retention_hours.max(1) * 3600);
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => state.recorder.log().expire(retention),
            _ = state.stop.cancelled() => return,
        }
    }
}

/// Status words used by the REST API.
pub(crate) fn status_word(slot: &ServerSlot) -> (&'static str, Option<UpstreamStatus>) {
    match &slot.upstream {
        None if !slot.config.enabled => ("disabled", None),
        None => ("down", None),
        Some(u) => {
            let st = u.status();
            let health = slot.health.as_ref().map(|h| h.state());
            let w = match st.state {
                mcp_gateway_upstream::State::Ready => match health {
                    Some(HealthState::Unhealthy) => "unhealthy",
                    Some(HealthState::Degraded) => "degraded",
                    _ => "healthy",
                },
                mcp_gateway_upstream::State::Starting => "starting",
                mcp_gateway_upstream::State::Down => "down",
                mcp_gateway_upstream::State::Stopped => "stopped",
            };
            (w, Some(st))
        }
    }
}
