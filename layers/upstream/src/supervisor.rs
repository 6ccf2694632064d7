//! Runs one upstream: start, handshake, discovery, watch, restart with backoff.

use crate::config::{ProtocolChoice, Transport, UpstreamConfig};
use crate::connection::{Connection, Event};
use crate::link;
use crate::service::McpUpstreamService;
use mcp_gateway_core::McpError;
use mcp_gateway_core::jsonrpc;
use mcp_gateway_core::param_headers::{self, ParamTable};
use mcp_gateway_core::protocol::{self, Generation};
use mcp_gateway_core::timeout::{Timeout, TimeoutLayer};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower::Layer;
use tower::limit::ConcurrencyLimit;

/// The per-server stack: deadline outside, concurrency bound inside.
pub type UpstreamStack = Timeout<ConcurrencyLimit<McpUpstreamService>>;

/// Lifecycle state of an upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Starting or restarting: spawning, handshaking, discovering tools.
    Starting,
    /// Serving calls.
    Ready,
    /// Failed; a restart is scheduled.
    Down,
    /// Stopped for good (gateway shutdown).
    Stopped,
}

/// A point-in-time view of an upstream, published on every change.
#[derive(Clone, Debug)]
pub struct UpstreamStatus {
    /// Lifecycle state.
    pub state: State,
    /// Why it is down (or the last failure), in words.
    pub reason: Option<String>,
    /// Negotiated protocol generation, once known.
    pub generation: Option<Generation>,
    /// `serverInfo` the server reported (name, version), raw.
    pub server_info: Option<Arc<RawValue>>,
    /// `capabilities` the server advertised, raw.
    pub capabilities: Option<Arc<RawValue>>,
    /// When `state` last changed.
    pub since: SystemTime,
    /// Number of tools currently known.
    pub tool_count: usize,
    /// Bumped whenever the tool list changes.
    pub tools_version: u64,
    /// How many times the server was restarted after a failure.
    pub restarts: u64,
}

/// One tool offered by an upstream, kept as the raw JSON the server sent.
#[derive(Debug)]
pub struct Tool {
    /// The tool's name on its server.
    pub name: String,
    /// Its description, if any.
    pub description: Option<String>,
    /// The full tool object, raw (schemas, annotations and all).
    pub raw: Box<RawValue>,
}

pub(crate) struct Shared {
    pub(crate) config: UpstreamConfig,
    conn: RwLock<Option<Arc<Connection>>>,
    tools: RwLock<Arc<[Tool]>>,
    status: watch::Sender<UpstreamStatus>,
    restarts: AtomicU64,
    shutdown: CancellationToken,
    /// Asks the running connection to end so the server restarts (it stopped answering).
    restart: tokio::sync::Notify,
    /// `config.credentials`, each with its headers built once.
    credentials: Vec<(crate::config::Credential, Arc<http::HeaderMap>)>,
    /// Resource subscriptions of the gateway's clients, by URI, with their number: the
    /// server is subscribed once per URI however many clients are.
    subscriptions: std::sync::Mutex<BTreeMap<String, usize>>,
    /// The subscribed URIs changed (a 2026-07-28 server's listen stream is re-opened).
    subscriptions_changed: tokio::sync::Notify,
    /// `notifications/resources/updated` from the server, by URI.
    updates: tokio::sync::broadcast::Sender<Arc<str>>,
    /// Its list results, while they stay fresh.
    pub(crate) lists: crate::list_cache::ListCache,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("id", &self.config.id)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Counts a client's `resources/subscribe` (`add`) or `resources/unsubscribe` of `uri`;
    /// true when the server's own subscription changes (first subscriber, or last gone).
    pub(crate) fn count_subscription(&self, uri: &str, add: bool) -> bool {
        let mut subs = self.subscriptions.lock().expect("subscriptions poisoned");
        let changed = match (add, subs.get_mut(uri)) {
            (true, Some(n)) => {
                *n += 1;
                false
            }
            (true, None) => {
                subs.insert(uri.to_string(), 1);
                true
            }
            (false, Some(n)) if *n > 1 => {
                *n -= 1;
                false
            }
            (false, Some(_)) => {
                subs.remove(uri);
                true
            }
            (false, None) => false,
        };
        drop(subs);
        if changed {
            self.subscriptions_changed.notify_one();
        }
        changed
    }

    fn subscribed_uris(&self) -> Vec<String> {
        let subs = self.subscriptions.lock().expect("subscriptions poisoned");
        subs.keys().cloned().collect()
    }

    /// Which credential rule applies to `identity` (`None`: the server's own headers).
    pub(crate) fn credential_index(
        &self,
        identity: Option<&mcp_gateway_core::Identity>,
    ) -> Option<usize> {
        self.credentials
            .iter()
            .position(|(c, _)| c.applies_to(identity))
    }

    /// The extra headers for calls made by `identity`, if a credential rule applies.
    pub(crate) fn headers_for(
        &self,
        identity: Option<&mcp_gateway_core::Identity>,
    ) -> Option<Arc<http::HeaderMap>> {
        self.credentials
            .iter()
            .find(|(c, _)| c.applies_to(identity))
            .map(|(_, h)| h.clone())
    }

    pub(crate) fn connection(&self) -> Option<Arc<Connection>> {
        self.conn.read().expect("conn lock poisoned").clone()
    }

    pub(crate) fn unavailable(&self) -> McpError {
        let s = self.status.borrow();
        let reason = match s.state {
            State::Starting => "starting".to_string(),
            State::Stopped => "stopped".to_string(),
            _ => s.reason.clone().unwrap_or_else(|| "down".to_string()),
        };
        McpError::Unavailable {
            server: self.config.id.clone(),
            reason,
        }
    }

    fn set_state(&self, state: State, reason: Option<String>) {
        // The reason is shown in the servers API and logs; HTTP errors quote the URL.
        let reason = reason.map(|r| mcp_gateway_core::redact::redact_urls_in(&r).into_owned());
        self.status.send_modify(|s| {
            s.state = state;
            if reason.is_some() || state == State::Ready {
                s.reason = reason;
            }
            s.since = SystemTime::now();
            s.restarts = self.restarts.load(Ordering::Relaxed);
        });
    }

    fn set_tools(&self, tools: Vec<Tool>) {
        let n = tools.len();
        *self.tools.write().expect("tools lock poisoned") = tools.into();
        self.status.send_modify(|s| {
            s.tool_count = n;
            s.tools_version += 1;
        });
    }
}

/// Handle to one upstream server; cheap to clone.
#[derive(Clone, Debug)]
pub struct Upstream {
    shared: Arc<Shared>,
}

impl Upstream {
    /// Starts supervising the server described by `config` (requires a Tokio runtime).
    pub fn spawn(config: UpstreamConfig) -> Self {
        let (status, _) = watch::channel(UpstreamStatus {
            state: State::Starting,
            reason: None,
            generation: None,
            server_info: None,
            capabilities: None,
            since: SystemTime::now(),
            tool_count: 0,
            tools_version: 0,
            restarts: 0,
        });
        let credentials = config
            .credentials
            .iter()
            .map(|c| {
                let cfg = crate::config::HttpConfig {
                    url: String::new(),
                    headers: c.headers.clone(),
                };
                let map = crate::link::header_map(&cfg).unwrap_or_else(|e| {
                    tracing::error!(server = %config.id, error = %e, "credential headers skipped");
                    http::HeaderMap::new()
                });
                (c.clone(), Arc::new(map))
            })
            .collect();
        let shared = Arc::new(Shared {
            credentials,
            config,
            conn: RwLock::new(None),
            tools: RwLock::new(Arc::from(Vec::new())),
            status,
            restarts: AtomicU64::new(0),
            shutdown: CancellationToken::new(),
            restart: tokio::sync::Notify::new(),
            subscriptions: std::sync::Mutex::new(BTreeMap::new()),
            subscriptions_changed: tokio::sync::Notify::new(),
            updates: tokio::sync::broadcast::channel(64).0,
            lists: crate::list_cache::ListCache::default(),
        });
        tokio::spawn(supervise(shared.clone()));
        Self { shared }
    }

    /// The server's id.
    pub fn id(&self) -> &Arc<str> {
        &self.shared.config.id
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &UpstreamConfig {
        &self.shared.config
    }

    /// The bare forwarding service (no timeout, no concurrency bound).
    pub fn service(&self) -> McpUpstreamService {
        McpUpstreamService {
            shared: self.shared.clone(),
        }
    }

    /// The service wrapped in the configured timeout and concurrency limit.
    ///
    /// Build it once and clone it: clones share one concurrency budget.
    pub fn stack(&self) -> UpstreamStack {
        let cfg = &self.shared.config;
        self.stack_with(cfg.timeout, cfg.max_concurrency)
    }

    /// The service wrapped in `timeout` and a budget of `max_concurrency` calls at once,
    /// instead of the configured ones (a configuration reload that changes only these
    /// keeps the server running). A new budget: calls already holding a slot of another
    /// keep it.
    pub fn stack_with(&self, timeout: Duration, max_concurrency: usize) -> UpstreamStack {
        let limited = ConcurrencyLimit::new(self.service(), max_concurrency.max(1));
        TimeoutLayer::new(self.shared.config.id.clone(), timeout).layer(limited)
    }

    /// Current status.
    pub fn status(&self) -> UpstreamStatus {
        self.shared.status.borrow().clone()
    }

    /// The URIs of the server's `notifications/resources/updated`, for resources some client
    /// subscribed to through the gateway.
    pub fn resource_updates(&self) -> tokio::sync::broadcast::Receiver<Arc<str>> {
        self.shared.updates.subscribe()
    }

    /// A receiver that sees every status change (state, tools).
    pub fn subscribe(&self) -> watch::Receiver<UpstreamStatus> {
        self.shared.status.subscribe()
    }

    /// The tools currently known (the last list, even while the server is down).
    pub fn tools(&self) -> Arc<[Tool]> {
        self.shared
            .tools
            .read()
            .expect("tools lock poisoned")
            .clone()
    }

    /// Waits until the server is ready or has failed its first start, or `limit` passes.
    pub async fn wait_started(&self, limit: Duration) -> UpstreamStatus {
        let mut rx = self.subscribe();
        let _ = tokio::time::timeout(limit, rx.wait_for(|s| s.state != State::Starting)).await;
        self.status()
    }

    /// Restarts a server that is up but stopped answering: its pending calls fail, the
    /// process (or connection) is ended, and the usual restart with backoff follows. Does
    /// nothing while the server is not up.
    pub fn restart(&self) {
        self.shared.restart.notify_waiters();
    }

    /// Stops the server for good: pending calls fail, the process is terminated.
    pub async fn shutdown(&self) {
        self.shared.shutdown.cancel();
        let mut rx = self.subscribe();
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            rx.wait_for(|s| s.state == State::Stopped),
        )
        .await;
    }
}

enum Exit {
    Shutdown,
    Failed(String),
}

async fn supervise(shared: Arc<Shared>) {
    let mut attempt = 0u32;
    loop {
        let started = Instant::now();
        shared.set_state(State::Starting, None);
        let exit = run_once(&shared).await;
        *shared.conn.write().expect("conn lock poisoned") = None;
        match exit {
            Exit::Shutdown => break,
            Exit::Failed(reason) => {
                let reason = mcp_gateway_core::redact::redact_urls_in(&reason).into_owned();
                tracing::warn!(server = %shared.config.id, %reason, "upstream failed");
                shared.set_state(State::Down, Some(reason));
            }
        }
        if started.elapsed() >= shared.config.restart.reset_after {
            attempt = 0;
        }
        let delay = shared.config.restart.backoff(attempt);
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shared.shutdown.cancelled() => break,
        }
        shared.restarts.fetch_add(1, Ordering::Relaxed);
        tracing::info!(server = %shared.config.id, attempt, "restarting upstream");
    }
    shared.set_state(State::Stopped, None);
}

async fn run_once(shared: &Arc<Shared>) -> Exit {
    let cfg = &shared.config;
    // A new connection may be to a server whose lists changed meanwhile.
    shared.lists.clear();
    let opened = tokio::select! {
        r = link::open(cfg) => r,
        _ = shared.shutdown.cancelled() => return Exit::Shutdown,
    };
    let (conn, mut link, mut events) = match opened {
        Ok(x) => x,
        Err(reason) => return Exit::Failed(reason),
    };

    let setup = async {
        let info = handshake(&conn, cfg).await?;
        // A server that declares no `tools` (only resources or prompts, say) is served
        // for what it has: asking it for tools would only earn "Method not found".
        let tools = match info.has_capability("tools") {
            true => list_tools(&conn, cfg).await?,
            false => Vec::new(),
        };
        Ok::<_, McpError>((info, tools))
    };
    let outcome = tokio::select! {
        r = setup => Some(r),
        _ = link.closed() => None,
        _ = shared.shutdown.cancelled() => {
            conn.close("gateway shutting down");
            link.terminate(Duration::from_secs(2)).await;
            return Exit::Shutdown;
        }
    };
    let (info, tools) = match outcome {
        Some(Ok(x)) => x,
        Some(Err(e)) => {
            conn.close("startup failed");
            let how = link.terminate(Duration::from_millis(500)).await;
            return Exit::Failed(format!("{} ({how})", describe_setup_error(&e)));
        }
        None => {
            let how = link.reap().await;
            conn.close(&how);
            return Exit::Failed(format!("{how} during startup"));
        }
    };
    let generation = conn.generation().cloned();
    tracing::info!(
        server = %cfg.id,
        protocol = generation.as_ref().map(Generation::version).unwrap_or("?"),
        tools = tools.len(),
        "upstream ready"
    );
    shared.set_tools(tools);
    shared.status.send_modify(|s| {
        s.generation = generation;
        s.server_info = info.info.map(Arc::from);
        s.capabilities = info.capabilities.map(Arc::from);
    });
    *shared.conn.write().expect("conn lock poisoned") = Some(conn.clone());
    shared.set_state(State::Ready, None);

    // 2026-07-28 servers announce list changes and resource updates only on a
    // `subscriptions/listen` stream, which stays open (a request that is never answered)
    // for the life of the connection, and is opened anew when the subscribed URIs change.
    let stateless = conn.generation().is_some_and(Generation::is_stateless);
    let open_listen = |conn: &Arc<Connection>| {
        let params = raw(&serde_json::json!({"notifications": {
            "toolsListChanged": true, "resourcesListChanged": true, "promptsListChanged": true,
            "resourceSubscriptions": shared.subscribed_uris(),
        }}));
        match conn.send_request("subscriptions/listen", Some(&params), None) {
            Ok(pending) => Some(pending),
            Err(e) => {
                tracing::debug!(server = %cfg.id, error = %e, "subscriptions/listen not sent");
                None
            }
        }
    };
    let mut listen = if stateless { open_listen(&conn) } else { None };
    if !stateless {
        // A restarted server has forgotten the subscriptions of the clients still here.
        for uri in shared.subscribed_uris() {
            let params = raw(&serde_json::json!({ "uri": uri }));
            if let Err(e) = timed(
                cfg,
                cfg.timeout,
                conn.request("resources/subscribe", Some(&params)),
            )
            .await
            {
                tracing::warn!(server = %cfg.id, error = %e, "re-subscribing a resource failed");
            }
        }
    }

    loop {
        tokio::select! {
            _ = shared.subscriptions_changed.notified(), if stateless => {
                // Dropping the old stream's guard cancels it; the new one names every URI.
                listen = open_listen(&conn);
            }
            r = async { (&mut listen.as_mut().expect("guarded by the select condition").0).await }, if listen.is_some() => {
                // The server ended (or refused) the subscription; list changes will go unnoticed.
                tracing::debug!(server = %cfg.id, outcome = ?r.map(|r| r.map(|_| ())), "subscriptions/listen ended");
                if let Some((_, mut guard)) = listen.take() {
                    guard.disarm();
                }
            }
            ev = events.recv() => match ev {
                Some(Event::ToolsListChanged) => match list_tools(&conn, cfg).await {
                    Ok(tools) => {
                        tracing::info!(server = %cfg.id, tools = tools.len(), "tool list changed");
                        shared.set_tools(tools);
                    }
                    Err(e) => tracing::warn!(server = %cfg.id, error = %e, "re-listing tools failed"),
                },
                Some(Event::OtherListChanged(kind)) => {
                    tracing::debug!(server = %cfg.id, kind, "list changed");
                    shared.lists.invalidate(kind);
                }
                Some(Event::ResourceUpdated(uri)) => {
                    let _ = shared.updates.send(uri);
                }
                None => {}
            },
            _ = link.closed() => {
                *shared.conn.write().expect("conn lock poisoned") = None;
                let how = link.reap().await;
                conn.close(&how);
                return Exit::Failed(how);
            }
            _ = shared.restart.notified() => {
                *shared.conn.write().expect("conn lock poisoned") = None;
                conn.close("restarted: the server stopped answering health checks");
                let how = link.terminate(Duration::from_millis(500)).await;
                return Exit::Failed(format!("restarted after failing health checks ({how})"));
            }
            _ = shared.shutdown.cancelled() => {
                *shared.conn.write().expect("conn lock poisoned") = None;
                conn.close("gateway shutting down");
                link.terminate(Duration::from_secs(2)).await;
                return Exit::Shutdown;
            }
        }
    }
}

fn describe_setup_error(e: &McpError) -> String {
    match e {
        McpError::Rpc { error, .. } => format!("handshake refused: {error}"),
        McpError::Timeout { after, .. } => {
            format!("no answer to the handshake within {} ms", after.as_millis())
        }
        other => other.to_string(),
    }
}

async fn timed<F, T>(cfg: &UpstreamConfig, limit: Duration, f: F) -> Result<T, McpError>
where
    F: std::future::Future<Output = Result<T, McpError>>,
{
    tokio::time::timeout(limit, f).await.unwrap_or_else(|_| {
        Err(McpError::Timeout {
            server: cfg.id.clone(),
            after: limit,
        })
    })
}

#[derive(Deserialize)]
struct DiscoverResult {
    #[serde(default, rename = "supportedVersions")]
    supported_versions: Vec<String>,
    #[serde(default, rename = "_meta")]
    meta: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    capabilities: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct InitializeResult {
    #[serde(rename = "protocolVersion")]
    protocol_version: String,
    #[serde(default, rename = "serverInfo")]
    server_info: Option<Box<RawValue>>,
    #[serde(default)]
    capabilities: Option<Box<RawValue>>,
}

/// What the handshake learned about the server, raw.
struct Peer {
    info: Option<Box<RawValue>>,
    capabilities: Option<Box<RawValue>>,
}

impl Peer {
    /// True when the server's capabilities name `key` (`tools`, `resources`, …). A server
    /// that sent no capabilities at all is taken to have everything, as before.
    fn has_capability(&self, key: &str) -> bool {
        let Some(caps) = &self.capabilities else {
            return true;
        };
        serde_json::from_str::<BTreeMap<&str, &RawValue>>(caps.get())
            .map_or(true, |m| m.contains_key(key))
    }
}

/// Learns the server's generation: `server/discover` first (the 2026-07-28 probe); any
/// error other than a version mismatch, or silence, means an older server, which gets the
/// `initialize` handshake. Returns the raw `serverInfo` and `capabilities`.
async fn handshake(conn: &Arc<Connection>, cfg: &UpstreamConfig) -> Result<Peer, McpError> {
    let meta = serde_json::json!({
        protocol::META_PROTOCOL_VERSION: protocol::STATELESS_VERSION,
        protocol::META_CLIENT_CAPABILITIES: {},
        protocol::META_CLIENT_INFO: {"name": cfg.client_info.0, "version": cfg.client_info.1},
    });
    let params = raw(&serde_json::json!({ "_meta": meta }));
    if cfg.protocol == ProtocolChoice::Session {
        return initialize(conn, cfg).await;
    }
    // A slow-starting server (Python importing its SDK on a busy machine) must not be
    // mistaken for a legacy one, so the probe gets the full call timeout.
    let probe_limit = cfg.timeout;
    let mut probe = timed(
        cfg,
        probe_limit,
        conn.request("server/discover", Some(&params)),
    )
    .await;
    // A server refusing the version it then lists as supported gets one more try, as a
    // client negotiating from its `supported` list would.
    if let Err(McpError::Rpc { error, .. }) = &probe
        && error.code == jsonrpc::UNSUPPORTED_PROTOCOL_VERSION
        && supported_versions(error)
            .iter()
            .any(|v| v == protocol::STATELESS_VERSION)
    {
        probe = timed(
            cfg,
            probe_limit,
            conn.request("server/discover", Some(&params)),
        )
        .await;
    }
    match probe {
        Ok(result) => {
            let d: DiscoverResult =
                serde_json::from_str(result.get()).map_err(|e| McpError::Upstream {
                    server: cfg.id.clone(),
                    reason: format!("malformed server/discover result: {e}"),
                })?;
            if d.supported_versions
                .iter()
                .any(|v| v == protocol::STATELESS_VERSION)
            {
                conn.set_generation(
                    Generation::Stateless(protocol::STATELESS_VERSION.into()),
                    &cfg.client_info,
                );
                let info = d
                    .meta
                    .and_then(|mut m| m.remove(protocol::META_SERVER_INFO))
                    .map(|v| raw(&v));
                return Ok(Peer {
                    info,
                    capabilities: d.capabilities,
                });
            }
        }
        Err(McpError::Rpc { error, .. }) if error.code == jsonrpc::UNSUPPORTED_PROTOCOL_VERSION => {
            // A modern server that does not speak our modern revision; it will refuse
            // `initialize` too, so report the versions it offers.
            return Err(McpError::Upstream {
                server: cfg.id.clone(),
                reason: match supported_versions(&error) {
                    v if v.is_empty() => {
                        "server does not speak 2026-07-28 (versions not listed)".into()
                    }
                    v => format!("server speaks protocol versions {} only", v.join(", ")),
                },
            });
        }
        Err(McpError::Rpc { .. }) | Err(McpError::Timeout { .. }) => {}
        Err(e) => return Err(e),
    }
    if cfg.protocol == ProtocolChoice::Stateless {
        return Err(McpError::Upstream {
            server: cfg.id.clone(),
            reason: format!(
                "protocol: stateless, but the server does not offer {} in server/discover",
                protocol::STATELESS_VERSION
            ),
        });
    }
    initialize(conn, cfg).await
}

/// The versions an `UnsupportedProtocolVersion` error lists in `data.supported`.
fn supported_versions(error: &jsonrpc::JsonRpcError) -> Vec<String> {
    #[derive(Deserialize)]
    struct Data {
        #[serde(default)]
        supported: Vec<String>,
    }
    error
        .data
        .as_ref()
        .and_then(|d| serde_json::from_str::<Data>(d.get()).ok())
        .map(|d| d.supported)
        .unwrap_or_default()
}

/// The session generation's handshake: `initialize`, then `notifications/initialized`.
async fn initialize(conn: &Arc<Connection>, cfg: &UpstreamConfig) -> Result<Peer, McpError> {
    let params = raw(&serde_json::json!({
        "protocolVersion": protocol::LATEST_SESSION_VERSION,
        // The gateway relays sampling and elicitation to the client whose call asks for
        // them (roots are not declared: a server would let them replace its own config).
        "capabilities": {"sampling": {}, "elicitation": {"form": {}}},
        "clientInfo": {"name": cfg.client_info.0, "version": cfg.client_info.1},
    }));
    let result = timed(cfg, cfg.timeout, conn.request("initialize", Some(&params))).await?;
    let init: InitializeResult =
        serde_json::from_str(result.get()).map_err(|e| McpError::Upstream {
            server: cfg.id.clone(),
            reason: format!("malformed initialize result: {e}"),
        })?;
    if !protocol::is_session_version(&init.protocol_version) {
        return Err(McpError::Upstream {
            server: cfg.id.clone(),
            reason: format!(
                "server wants protocol version {}, which mcp-gateway does not speak",
                init.protocol_version
            ),
        });
    }
    conn.set_generation(Generation::Session(init.protocol_version), &cfg.client_info);
    conn.notify("notifications/initialized", None);
    Ok(Peer {
        info: init.server_info,
        capabilities: init.capabilities,
    })
}

#[derive(Deserialize)]
struct ListPage<'a> {
    #[serde(borrow)]
    tools: Vec<&'a RawValue>,
    #[serde(default, rename = "nextCursor")]
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct ToolHead {
    name: String,
    #[serde(default)]
    description: Option<String>,
}

/// Lists every tool, following `nextCursor` (bounded, and refusing a cursor loop).
async fn list_tools(conn: &Arc<Connection>, cfg: &UpstreamConfig) -> Result<Vec<Tool>, McpError> {
    const MAX_PAGES: usize = 1000;
    let mut tools = Vec::new();
    let mut cursor: Option<String> = None;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..MAX_PAGES {
        let params = cursor
            .as_ref()
            .map(|c| raw(&serde_json::json!({ "cursor": c })));
        let result = timed(
            cfg,
            cfg.timeout,
            conn.request("tools/list", params.as_deref()),
        )
        .await?;
        let page: ListPage<'_> =
            serde_json::from_str(result.get()).map_err(|e| McpError::Upstream {
                server: cfg.id.clone(),
                reason: format!("malformed tools/list result: {e}"),
            })?;
        for t in page.tools {
            match serde_json::from_str::<ToolHead>(t.get()) {
                Ok(h) => tools.push(Tool {
                    name: h.name,
                    description: h.description,
                    raw: t.to_owned(),
                }),
                Err(e) => {
                    tracing::warn!(server = %cfg.id, error = %e, "skipping a tool without a name")
                }
            }
        }
        match page.next_cursor {
            Some(c) if !c.is_empty() => {
                if !seen.insert(c.clone()) {
                    return Err(McpError::Upstream {
                        server: cfg.id.clone(),
                        reason: "tools/list pagination repeats a cursor".into(),
                    });
                }
                cursor = Some(c);
            }
            _ => return Ok(check_param_headers(conn, cfg, tools)),
        }
    }
    Err(McpError::Upstream {
        server: cfg.id.clone(),
        reason: format!("tools/list returned more than {MAX_PAGES} pages"),
    })
}

/// For a stateless (2026-07-28) Streamable HTTP server: leaves out, with a warning, every
/// tool whose `x-mcp-header` annotations are invalid (the spec's rule for HTTP clients), and
/// gives the connection the `Mcp-Param-*` headers of the others. Other transports and
/// generations have no such headers, so their tools pass unchecked.
fn check_param_headers(conn: &Connection, cfg: &UpstreamConfig, tools: Vec<Tool>) -> Vec<Tool> {
    let http = matches!(cfg.transport, Transport::StreamableHttp(_));
    if !http || !conn.generation().is_some_and(Generation::is_stateless) {
        return tools;
    }
    let mut table = ParamTable::new();
    let kept = tools
        .into_iter()
        .filter(|t| match param_headers::tool_headers(&t.raw) {
            Ok(headers) => {
                if !headers.is_empty() {
                    table.insert(t.name.as_str().into(), headers.into());
                }
                true
            }
            Err(reason) => {
                tracing::warn!(server = %cfg.id, tool = %t.name, %reason, "excluding a tool with an invalid x-mcp-header annotation");
                false
            }
        })
        .collect();
    conn.set_param_headers(table);
    kept
}

fn raw(v: &serde_json::Value) -> Box<RawValue> {
    RawValue::from_string(v.to_string()).expect("serialized JSON is valid")
}
