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

/// How long a reload waits for the servers it starts before it swaps (a server still
/// starting then is swapped in starting, as at the gateway's start).
const RELOAD_START_WAIT: Duration = Duration::from_secs(30);

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

/// What lives as long as the gateway, across configuration reloads: the metrics, the
/// cluster membership, the running upstreams, the MCP sessions (in the endpoint).
pub(crate) struct Runtime {
    pub(crate) recorder: Recorder,
    pub(crate) started: Instant,
    pub(crate) started_at: SystemTime,
    pub(crate) stop: CancellationToken,
    /// This replica's place among several (sealed sessions, Redis).
    pub(crate) cluster: Arc<mcp_gateway_cluster::Cluster>,
    /// Every metric as OpenTelemetry instruments, for `GET /metrics` (`None` when
    /// `monitor.prometheus` is off: then no call records into it).
    pub(crate) exporter: Option<PrometheusExporter>,
    /// The generation in force. A cycle (the state points back here) broken when the
    /// gateway is dropped or stopped.
    pub(crate) current: arc_swap::ArcSwapOption<AppState>,
    /// The catalog in force, where every upstream's discovery lands.
    catalog: arc_swap::ArcSwap<Catalog>,
    /// Bumped at each swap: the upstreams' catalog tasks hand their tools to the new
    /// catalog.
    generation: tokio::sync::watch::Sender<u64>,
    /// The upstreams running now, by server id.
    pub(crate) upstreams: std::sync::Mutex<std::collections::BTreeMap<String, Running>>,
    /// One reload at a time.
    pub(crate) reload_lock: tokio::sync::Mutex<()>,
    /// Reloads applied and refused.
    pub(crate) reloads: [std::sync::atomic::AtomicU64; 2],
    /// The gateway's reload, for `POST /api/v1/admin/reload` (set by the gateway).
    pub(crate) reloader: std::sync::OnceLock<crate::reload::Reloader>,
}

/// One running upstream and what was built around it.
pub(crate) struct Running {
    /// The server's configuration when it was started (what a restart is decided on).
    pub(crate) config: ServerConfig,
    /// The message bound it was started with.
    max_message: usize,
    pub(crate) upstream: Upstream,
    /// Its timeout and concurrency bound, built once: every generation shares one budget
    /// until these settings change.
    stack: (Duration, usize, UpstreamStack),
    /// Its health and the token of its prober.
    health: Option<(HealthPolicy, Arc<Health>, CancellationToken)>,
    /// Ends the tasks that follow it (catalog, resource updates, health).
    tasks: CancellationToken,
}

impl Running {
    /// Stops the upstream for good and the tasks around it.
    pub(crate) async fn stop(self) {
        self.tasks.cancel();
        self.upstream.shutdown().await;
    }
}

/// One generation of the running gateway: a configuration and everything built from it.
/// A request takes one generation and is served by it whole.
pub(crate) struct AppState {
    pub(crate) rt: Arc<Runtime>,
    pub(crate) config: Config,
    /// 1 for the configuration the gateway started with, one more per applied reload.
    pub(crate) generation: u64,
    pub(crate) loaded_at: SystemTime,
    pub(crate) servers: Vec<ServerSlot>,
    /// The one catalog: tool names for REST and `/mcp` alike.
    pub(crate) catalog: Catalog,
    pub(crate) mcp: McpService,
    /// Who may see and call which item; the same layer the MCP plane runs.
    pub(crate) access: AccessControlLayer,
    /// Authentication, ready to layer.
    pub(crate) auth: crate::config::AuthSetup,
    /// The request budget (its counters carry over reloads that keep its settings).
    pub(crate) limiter: Option<crate::limits::Limiter>,
    /// The per-tool budgets.
    tool_limits: mcp_gateway_rate_limit::McpRateLimitLayer,
    /// The MCP endpoint of this generation (sessions are shared by all).
    pub(crate) endpoint: Arc<mcp_gateway_mcp_server::Endpoint<McpService>>,
}

impl std::ops::Deref for AppState {
    type Target = Runtime;

    fn deref(&self) -> &Runtime {
        &self.rt
    }
}

/// What a reload did to the servers, by id.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ServerChanges {
    /// Started: new in the configuration (or newly enabled).
    pub added: Vec<String>,
    /// Drained and stopped: gone from the configuration (or disabled).
    pub removed: Vec<String>,
    /// Started anew with their new settings; the old process drained and stopped.
    pub restarted: Vec<String>,
    /// Kept running, with settings that need no restart changed.
    pub updated: Vec<String>,
    /// Kept running as they were.
    pub unchanged: Vec<String>,
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
        self.endpoint.session_count()
    }

    /// Spawns every enabled upstream and wires the MCP plane: the first generation (needs
    /// a Tokio runtime).
    pub(crate) fn spawn(plan: crate::config::Plan) -> Arc<AppState> {
        let config = &plan.config;
        let recorder = Recorder::new(if config.monitor.request_log {
            config.monitor.request_log_size
        } else {
            0
        });
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
        let rt = Arc::new(Runtime {
            recorder,
            started: Instant::now(),
            started_at: SystemTime::now(),
            stop: CancellationToken::new(),
            cluster: Arc::new(mcp_gateway_cluster::Cluster::new(config.cluster.as_ref())),
            exporter,
            current: arc_swap::ArcSwapOption::empty(),
            catalog: arc_swap::ArcSwap::from_pointee(Catalog::builder().build()),
            generation: tokio::sync::watch::channel(1).0,
            upstreams: std::sync::Mutex::new(std::collections::BTreeMap::new()),
            reload_lock: tokio::sync::Mutex::new(()),
            reloads: Default::default(),
            reloader: std::sync::OnceLock::new(),
        });
        let (state, _, _) = Self::build(&rt, plan, None, Default::default());
        state.install();
        if let Some(e) = &rt.exporter {
            let gauges: std::sync::Weak<dyn mcp_gateway_metrics::GatewayGauges> =
                Arc::downgrade(&rt) as _;
            e.register_gateway(gauges);
        }
        tokio::spawn(expire_log(Arc::downgrade(&rt)));
        state
    }

    /// The next generation, from `plan`: kept servers keep their process, changed ones
    /// start anew, removed ones are handed back to be drained and stopped. Nothing is
    /// visible to requests until the caller swaps it in.
    ///
    /// Servers that start anew (added, or changed in a way that needs a restart) are
    /// started first and waited for (up to `RELOAD_START_WAIT`), so the swap finds them
    /// ready with their tools: calls to a replaced server go to the old process until the
    /// new one can take them.
    pub(crate) async fn next(
        prev: &Arc<AppState>,
        plan: crate::config::Plan,
    ) -> (Arc<AppState>, ServerChanges, Vec<Running>) {
        let rt = &prev.rt;
        let config = &plan.config;
        let fresh: std::collections::BTreeMap<String, Running> = {
            let running = rt.upstreams.lock().expect("upstreams lock");
            config
                .servers
                .iter()
                .filter(|s| s.enabled)
                .filter(|s| {
                    running
                        .get(&s.id)
                        .is_none_or(|r| needs_restart(r, s, config))
                })
                .filter_map(|s| {
                    let ucfg = upstream_config(s, config.max_message_bytes)?;
                    let r = start(rt, s, ucfg, config.max_message_bytes, prev.generation + 1);
                    Some((s.id.clone(), r))
                })
                .collect()
        };
        futures::future::join_all(
            fresh
                .values()
                .map(|r| r.upstream.wait_started(RELOAD_START_WAIT)),
        )
        .await;
        Self::build(rt, plan, Some(prev), fresh)
    }

    fn build(
        rt: &Arc<Runtime>,
        plan: crate::config::Plan,
        prev: Option<&Arc<AppState>>,
        mut fresh: std::collections::BTreeMap<String, Running>,
    ) -> (Arc<AppState>, ServerChanges, Vec<Running>) {
        let config = plan.config;
        let rl_same = |p: &AppState| p.config.rate_limit == config.rate_limit;
        let tool_limits = match (prev, &config.rate_limit) {
            (Some(p), _) if rl_same(p) => p.tool_limits.clone(),
            (_, Some(rl)) => crate::limits::tool_layer(rl, &rt.recorder),
            (_, None) => Default::default(),
        };
        let limiter = config.rate_limit.as_ref().map(|rl| {
            crate::limits::layer(
                rl,
                &config.auth.api_keys,
                rt.recorder.clone(),
                prev.and_then(|p| Some((p.config.rate_limit.as_ref()?, p.limiter.as_ref()?))),
            )
        });
        let mut builder = ToolRouter::builder().naming(match config.tool_naming {
            crate::config::ToolNaming::Prefixed => mcp_gateway_router::ToolNaming::Prefixed,
            crate::config::ToolNaming::Bare => mcp_gateway_router::ToolNaming::Bare,
        });
        if let Some(p) = prev {
            builder = builder.after(&p.catalog);
        }
        let mut changes = ServerChanges::default();
        let mut drained = Vec::new();
        let mut running = std::mem::take(&mut *rt.upstreams.lock().expect("upstreams lock"));
        let mut servers = Vec::with_capacity(config.servers.len());
        let mut wanted = std::collections::BTreeSet::new();
        for s in &config.servers {
            let ucfg = s
                .enabled
                .then(|| upstream_config(s, config.max_message_bytes))
                .flatten();
            let inactive = match (&ucfg, s.enabled) {
                (_, false) => Some("disabled in config"),
                (None, true) => {
                    Some("this transport is not supported by this version of mcp-gateway")
                }
                (Some(_), true) => None,
            };
            let entry = ucfg.map(|ucfg| {
                wanted.insert(s.id.clone());
                let kept = running
                    .remove(&s.id)
                    .filter(|r| !needs_restart(r, s, &config));
                let mut r = match kept {
                    Some(r) => {
                        if prev.is_some() {
                            let same = r.config == *s;
                            (if same {
                                &mut changes.unchanged
                            } else {
                                &mut changes.updated
                            })
                            .push(s.id.clone());
                        }
                        r
                    }
                    None => {
                        if let Some(old) = running.remove(&s.id) {
                            drained.push(old);
                        }
                        if prev.is_some() {
                            let was = prev.is_some_and(|p| {
                                p.servers
                                    .iter()
                                    .any(|o| o.config.id == s.id && o.upstream.is_some())
                            });
                            (if was {
                                &mut changes.restarted
                            } else {
                                &mut changes.added
                            })
                            .push(s.id.clone());
                        }
                        fresh
                            .remove(&s.id)
                            .unwrap_or_else(|| start(rt, s, ucfg, config.max_message_bytes, 1))
                    }
                };
                r.refresh(&config, s);
                r
            });
            // A server that is now disabled or removed is drained below.
            if entry.is_none()
                && let Some(old) = running.remove(&s.id)
            {
                drained.push(old);
                changes.removed.push(s.id.clone());
            }
            let upstream = entry.as_ref().map(|r| r.upstream.clone());
            let health = entry
                .as_ref()
                .and_then(|r| r.health.as_ref().map(|h| h.1.clone()));
            builder = match &entry {
                Some(r) => {
                    if prev.is_some() {
                        let st = r.upstream.status();
                        let tools = (st.tools_version > 0).then(|| tool_entries(&r.upstream));
                        builder = builder.seed(
                            s.id.as_str(),
                            tools,
                            st.state == mcp_gateway_upstream::State::Ready,
                            st.capabilities.clone(),
                        );
                    }
                    let breaker = health
                        .clone()
                        .map_or_else(HealthLayer::disabled, HealthLayer::new);
                    let stack = tool_limits.layer(breaker.layer(r.stack.2.clone()));
                    match &s.tool_prefix {
                        Some(prefix) => {
                            builder.server_with_prefix(s.id.as_str(), prefix.as_str(), stack)
                        }
                        None => builder.server(s.id.as_str(), stack),
                    }
                }
                None => builder.unavailable(s.id.as_str(), inactive.unwrap_or("down")),
            };
            if let Some(r) = entry {
                running.insert(s.id.clone(), r);
            }
            servers.push(ServerSlot {
                config: s.clone(),
                upstream,
                inactive,
                health,
            });
        }
        // Started ahead for this generation but not taken (cannot happen: the same rules
        // chose them); stopped rather than leaked.
        drained.extend(std::mem::take(&mut fresh).into_values());
        // Servers no longer in the configuration.
        let gone: Vec<String> = running
            .keys()
            .filter(|id| !wanted.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            if let Some(old) = running.remove(&id) {
                drained.push(old);
                changes.removed.push(id);
            }
        }
        *rt.upstreams.lock().expect("upstreams lock") = running;
        let router = builder.build();
        let policy = plan.policy.map(|p| p as Arc<dyn ToolPolicy>);
        let access = AccessControlLayer::new(
            policy
                .clone()
                .unwrap_or_else(|| Arc::new(AccessPolicy::allow_by_default())),
        );
        let catalog = router.catalog().clone();
        let mcp = ResolveLayer::new(catalog.clone())
            .layer(McpMetricsLayer::new(rt.recorder.clone()).layer(access.layer(router)));
        let options = mcp_gateway_mcp_server::EndpointOptions {
            max_body_bytes: config.max_body_bytes,
            max_json_depth: config.max_json_depth,
            session_idle: Duration::from_secs(config.session_idle_timeout),
            allowed_origins: config.cors_origins.clone(),
            policy: policy.clone(),
            cluster: Some(rt.cluster.clone()),
        };
        let endpoint = match prev {
            None => mcp_gateway_mcp_server::Endpoint::new(mcp.clone(), catalog.clone(), options),
            Some(p) => {
                let access_changed = p.config.access != config.access
                    || p.config.default_access != config.default_access;
                p.endpoint
                    .reconfigure(mcp.clone(), catalog.clone(), options, access_changed)
            }
        };
        let generation = prev.map_or(1, |p| p.generation + 1);
        let state = Arc::new(AppState {
            rt: rt.clone(),
            config,
            generation,
            loaded_at: SystemTime::now(),
            servers,
            catalog,
            mcp,
            access,
            auth: plan.auth,
            limiter,
            tool_limits,
            endpoint,
        });
        (state, changes, drained)
    }

    /// Makes `self` the generation in force for the gateway's own tasks (the HTTP service
    /// is swapped by the gateway).
    pub(crate) fn install(self: &Arc<Self>) {
        self.rt.catalog.store(Arc::new(self.catalog.clone()));
        self.rt.current.store(Some(self.clone()));
        self.rt.generation.send_replace(self.generation);
        configure_recorder(self);
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
}

impl Runtime {
    /// Stops every upstream (terminating child processes) and lets the generation in force
    /// go.
    pub(crate) async fn shutdown_upstreams(&self) {
        self.stop.cancel();
        let all: Vec<Running> =
            std::mem::take(&mut *self.upstreams.lock().expect("upstreams lock"))
                .into_values()
                .collect();
        futures::future::join_all(all.into_iter().map(Running::stop)).await;
    }
}

/// Starts the upstream of `s` and the tasks that follow it, for the generation `generation`
/// (its discoveries land in the catalog once that generation is in force).
fn start(
    rt: &Arc<Runtime>,
    s: &ServerConfig,
    ucfg: UpstreamConfig,
    max_message: usize,
    generation: u64,
) -> Running {
    let upstream = Upstream::spawn(ucfg);
    let tasks = rt.stop.child_token();
    tokio::spawn(sync_catalog(
        upstream.clone(),
        Arc::downgrade(rt),
        tasks.clone(),
        generation,
    ));
    tokio::spawn(forward_resource_updates(
        upstream.clone(),
        Arc::downgrade(rt),
        tasks.clone(),
    ));
    let stack = (s.timeout(), s.max_concurrency, upstream.stack());
    Running {
        config: s.clone(),
        max_message: s.max_message_bytes.unwrap_or(max_message),
        upstream,
        stack,
        health: None,
        tasks,
    }
}

impl Running {
    /// Applies the settings of `s` that need no restart: the timeout and concurrency
    /// bound (a new budget), the health checks (a new prober).
    fn refresh(&mut self, config: &Config, s: &ServerConfig) {
        if (self.stack.0, self.stack.1) != (s.timeout(), s.max_concurrency) {
            self.stack = (
                s.timeout(),
                s.max_concurrency,
                self.upstream.stack_with(s.timeout(), s.max_concurrency),
            );
        }
        let policy = health_policy(config, s);
        if self.health.as_ref().map(|h| &h.0) != policy.as_ref() {
            if let Some((_, _, token)) = self.health.take() {
                token.cancel();
            }
            self.health = policy.map(|p| {
                let h = Health::new(s.id.as_str(), p.clone());
                let token = self.tasks.child_token();
                mcp_gateway_health::watch_upstream(self.upstream.clone(), h.clone(), token.clone());
                (p, h, token)
            });
        }
        self.config = s.clone();
    }
}

/// True when `new` (under `config`) cannot be applied to the upstream `r` without starting
/// it anew: anything but its name, tags, tool prefix, timeout, concurrency bound and health
/// checks (which apply live) changed.
fn needs_restart(r: &Running, new: &ServerConfig, config: &Config) -> bool {
    let norm = |s: &ServerConfig, max_message: usize| ServerConfig {
        name: None,
        tags: Vec::new(),
        tool_prefix: None,
        timeout: 0,
        max_concurrency: 0,
        health_check: None,
        max_message_bytes: Some(max_message),
        ..s.clone()
    };
    norm(&r.config, r.max_message)
        != norm(
            new,
            new.max_message_bytes.unwrap_or(config.max_message_bytes),
        )
}

/// The tools `u` last listed, as catalog entries.
fn tool_entries(u: &Upstream) -> Arc<[ToolEntry]> {
    u.tools()
        .iter()
        .map(|t| ToolEntry {
            name: Arc::from(t.name.as_str()),
            raw: Arc::from(t.raw.clone()),
        })
        .collect()
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

impl mcp_gateway_metrics::GatewayGauges for Runtime {
    fn mcp_sessions(&self) -> u64 {
        self.current
            .load()
            .as_ref()
            .map_or(0, |st| st.mcp_sessions() as u64)
    }

    fn servers(&self) -> Vec<mcp_gateway_metrics::ServerGauges> {
        let Some(st) = self.current.load_full() else {
            return Vec::new();
        };
        st.servers
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

    fn config_reloads(&self) -> mcp_gateway_metrics::ConfigReloads {
        use std::sync::atomic::Ordering::Relaxed;
        mcp_gateway_metrics::ConfigReloads {
            ok: self.reloads[0].load(Relaxed),
            error: self.reloads[1].load(Relaxed),
            generation: *self.generation.borrow(),
        }
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

/// Keeps the catalog in force in step with an upstream: its tool list and whether it is
/// ready with which capabilities. After a reload it hands them to the new catalog (which
/// announces nothing when they are the ones it was seeded with).
async fn sync_catalog(
    u: Upstream,
    rt: std::sync::Weak<Runtime>,
    stop: CancellationToken,
    from_generation: u64,
) {
    let mut rx = u.subscribe();
    let Some(mut generations) = rt.upgrade().map(|r| r.generation.subscribe()) else {
        return;
    };
    let mut seen = None;
    loop {
        let Some(catalog) = rt.upgrade().map(|r| r.catalog.load_full()) else {
            return;
        };
        let generation = *generations.borrow_and_update();
        // Started for a generation not in force yet: the catalog in force names another
        // process by this id (or none), so nothing is written until the swap.
        if generation < from_generation {
            drop(catalog);
            tokio::select! {
                r = generations.changed() => if r.is_err() { return },
                _ = stop.cancelled() => return,
            }
            continue;
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
        if seen != Some((generation, version)) {
            seen = Some((generation, version));
            if version > 0 {
                catalog.set_tools(u.id(), tool_entries(&u).iter().cloned());
            }
        }
        drop(catalog);
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            r = generations.changed() => if r.is_err() { return },
            _ = stop.cancelled() => return,
        }
    }
}

/// Hands an upstream's resource updates to the catalog in force, where the MCP endpoint
/// finds them.
async fn forward_resource_updates(
    u: Upstream,
    rt: std::sync::Weak<Runtime>,
    stop: CancellationToken,
) {
    let mut rx = u.resource_updates();
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Ok(uri) => match rt.upgrade() {
                    Some(rt) => rt.catalog.load().publish_resource_update(u.id().clone(), uri),
                    None => return,
                },
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(server = %u.id(), missed = n, "resource updates dropped");
                }
                Err(_) => return,
            },
            _ = stop.cancelled() => return,
        }
    }
}

/// Drops request-log entries older than the retention window (the generation in force's).
async fn expire_log(rt: std::sync::Weak<Runtime>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    let Some(stop) = rt.upgrade().map(|r| r.stop.clone()) else {
        return;
    };
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let Some(rt) = rt.upgrade() else { return };
                let Some(st) = rt.current.load_full() else { continue };
                let retention = Duration::from_secs(st.config.monitor.retention_hours.max(1) * 3600);
                rt.recorder.log().expire(retention);
            }
            _ = stop.cancelled() => return,
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
