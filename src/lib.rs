//! mcp-gateway: one endpoint in front of many MCP servers — route, authenticate,
//! rate-limit and monitor them.
//!
//! The standalone binary loads a [`Config`] and runs a [`Gateway`]; the same type embeds the
//! whole gateway in another program, and [`Gateway::router`] hands out the axum `Router`
//! to nest inside an existing app. Each concern is its own crate under `layers/`
//! (re-exported here) so it can also be used alone.
//!
//! ```no_run
//! use mcp_gateway::{Config, Gateway};
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::load("mcp-gateway.yml".as_ref())?;
//! let gateway = Gateway::new(config)?;
//! let started = gateway.start().await?;
//! println!("listening on {}", started.addr);
//! tokio::signal::ctrl_c().await?;
//! gateway.stop().await;
//! # Ok(()) }
//! ```

pub mod api;
mod hot;
mod limits;
mod reload;
mod serve;
mod state;
pub mod telemetry;

pub use config::is_loopback;
pub use config::{Config, ConfigError, ConfigErrors};
pub use mcp_gateway_auth as auth;
pub use mcp_gateway_config as config;
pub use mcp_gateway_core as core;
pub use mcp_gateway_metrics as metrics;
pub use mcp_gateway_rate_limit as rate_limit;
pub use mcp_gateway_router as router;
pub use mcp_gateway_upstream as upstream;
pub use reload::{ReloadReport, ServerChanges};
pub use serve::{raise_open_file_limit, serve};
pub use state::{McpService, ServerReport, StartOutcome};

use mcp_gateway_core::ErrorFormat;
use state::AppState;

/// One front end's authentication and rate limit, shaped for its answers.
type Front = (
    mcp_gateway_auth::OriginLayer,
    Option<mcp_gateway_auth::AuthLayer>,
    Option<limits::Limiter>,
);
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long `start` waits for servers to come up before reporting them as still starting.
const STARTUP_WAIT: Duration = Duration::from_secs(60);

/// A configured gateway: upstreams, the MCP plane, the REST API.
///
/// Cheap to clone; clones share one running gateway.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    /// The checked configuration, until the first generation is built from it.
    plan: Mutex<Option<config::Plan>>,
    /// Where the configuration was read from (what a reload reads again).
    source: Option<std::path::PathBuf>,
    /// The file's content when it was loaded, for the file watch.
    loaded: Mutex<Option<Vec<u8>>>,
    /// The runtime (upstreams, metrics, sessions) once started; it holds the generation
    /// in force.
    runtime: OnceLock<Arc<state::Runtime>>,
    /// The HTTP service, once built (its type is the stack's, which has no name: kept as
    /// `Any` and given back as itself by [`once`]).
    http: OnceLock<Box<dyn std::any::Any + Send + Sync>>,
    http_stop: CancellationToken,
    http_task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The runtime holds the generation in force, which holds the runtime.
        if let Some(rt) = self.runtime.get() {
            rt.current.store(None);
        }
    }
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let config = self.config();
        f.debug_struct("Gateway")
            .field("host", &config.host)
            .field("port", &config.port)
            .field("servers", &config.servers.len())
            .finish()
    }
}

/// What [`Gateway::start`] brought up.
#[derive(Debug, Clone)]
pub struct Started {
    /// The address the HTTP listener is bound to.
    pub addr: SocketAddr,
    /// One line per configured server.
    pub servers: Vec<ServerReport>,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `start` was called twice.
    #[error("the gateway is already started")]
    AlreadyStarted,
}

/// The value in `cell`, made by `make` on first use: a cache for a value whose type cannot
/// be named (an `impl Trait` stack), the same type at every call.
fn once<T: std::any::Any + Clone + Send + Sync>(
    cell: &OnceLock<Box<dyn std::any::Any + Send + Sync>>,
    make: impl FnOnce() -> T,
) -> T {
    cell.get_or_init(|| Box::new(make()))
        .downcast_ref::<T>()
        .expect("one type per cell")
        .clone()
}

impl Gateway {
    /// Validates `config` and prepares a gateway (nothing runs until [`Gateway::start`],
    /// [`Gateway::connect`] or [`Gateway::router`]).
    pub fn new(config: Config) -> Result<Self, ConfigErrors> {
        Self::build(config, None)
    }

    /// Loads and validates the configuration file at `path` and prepares a gateway that
    /// [`Gateway::reload`] reads again.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigErrors> {
        // Read before it is loaded: the file watch compares with this, so a change made
        // while the gateway starts is still seen.
        let seen = std::fs::read(path).ok();
        let gateway = Self::build(Config::load(path)?, Some(path.to_path_buf()))?;
        *gateway.inner.loaded.lock().expect("lock") = seen;
        Ok(gateway)
    }

    fn build(config: Config, source: Option<std::path::PathBuf>) -> Result<Self, ConfigErrors> {
        // Validated once, into the plan every layer takes its part from.
        let file = source
            .clone()
            .unwrap_or_else(|| std::path::PathBuf::from("<config>"));
        let plan = config.plan(&file)?;
        Ok(Self {
            inner: Arc::new(Inner {
                plan: Mutex::new(Some(plan)),
                source,
                loaded: Mutex::new(None),
                runtime: OnceLock::new(),
                http: OnceLock::new(),
                http_stop: CancellationToken::new(),
                http_task: Mutex::new(None),
            }),
        })
    }

    /// The configuration in force (the latest applied by [`Gateway::reload`]).
    pub fn config(&self) -> Config {
        match self
            .inner
            .runtime
            .get()
            .and_then(|rt| rt.current.load_full())
        {
            Some(st) => st.config.clone(),
            None => self
                .inner
                .plan
                .lock()
                .expect("lock")
                .as_ref()
                .map(|p| p.config.clone())
                .unwrap_or_default(),
        }
    }

    /// The configuration file a reload reads, when the gateway was made from one.
    pub fn source(&self) -> Option<&std::path::Path> {
        self.inner.source.as_deref()
    }

    /// The generation in force, started on first use (needs a Tokio runtime).
    fn state(&self) -> Arc<AppState> {
        let rt = self.inner.runtime.get_or_init(|| {
            let plan = self
                .inner
                .plan
                .lock()
                .expect("lock")
                .take()
                .expect("the plan is taken once");
            let st = AppState::spawn(plan);
            let weak = Arc::downgrade(&self.inner);
            let reloader: reload::Reloader = Box::new(move || {
                let weak = weak.clone();
                Box::pin(async move {
                    // `None`: the gateway was dropped while its routes are still served.
                    Some(
                        Gateway {
                            inner: weak.upgrade()?,
                        }
                        .reload()
                        .await,
                    )
                })
            });
            let _ = st.rt.reloader.set(reloader);
            st.rt.clone()
        });
        rt.current.load_full().expect("a generation is in force")
    }

    /// Reads the configuration file again and applies it (see [`Gateway::reload_with`]);
    /// what `SIGHUP`, the file watch and `POST /api/v1/admin/reload` do. A gateway made
    /// with [`Gateway::new`] has no file: the report says so.
    pub async fn reload(&self) -> ReloadReport {
        let st = self.state();
        let t0 = std::time::Instant::now();
        let Some(path) = self.inner.source.clone() else {
            let errs = ConfigErrors(vec![ConfigError {
                file: "<config>".into(),
                path: None,
                line: None,
                message: "this gateway was not made from a file; use Gateway::reload_with".into(),
            }]);
            return ReloadReport::refused(&st, &errs, None, t0);
        };
        match Config::load(&path) {
            Ok(config) => self.apply(st, config, Some(&path)).await,
            Err(errs) => ReloadReport::refused(&st, &errs, Some(&path), t0),
        }
    }

    /// Applies `config` while the gateway runs: checked whole first (an invalid one changes
    /// nothing), then swapped in at once. Servers are matched by id: unchanged ones keep
    /// their process, session and calls in flight; changed ones start anew; removed ones
    /// are stopped once their calls in flight finish (within `shutdownTimeout`). Keys that
    /// cannot change live (`port`, `host`, `cluster`, …) keep their value and are listed
    /// in the report.
    pub async fn reload_with(&self, config: Config) -> ReloadReport {
        let st = self.state();
        self.apply(st, config, None).await
    }

    async fn apply(
        &self,
        st: Arc<AppState>,
        config: Config,
        source: Option<&std::path::Path>,
    ) -> ReloadReport {
        reload::apply(st, config, source, |next| self.swap_http(next)).await
    }

    /// Puts the HTTP service of generation `st` in place (if the service was built yet;
    /// otherwise it is built from the generation in force when first needed).
    fn swap_http(&self, st: &Arc<AppState>) {
        if self.inner.http.get().is_some() {
            // Through `once` (never making anything here): the stored service is given
            // back with the routes' own type, which `swap` takes.
            once(&self.inner.http, || {
                hot::GatewayService::new(self.routes(st))
            })
            .swap(self.routes(st));
        }
    }

    /// The file watch of `reload: watch` or `start --watch`: reloads whenever the
    /// configuration file changes (runs until the gateway stops).
    pub fn watch(&self) {
        let Some(path) = self.inner.source.clone() else {
            return;
        };
        let weak = Arc::downgrade(&self.inner);
        let loaded = self.inner.loaded.lock().expect("lock").clone();
        tokio::spawn(reload::watch(
            path,
            loaded,
            move || {
                let weak = weak.clone();
                async move {
                    if let Some(inner) = weak.upgrade() {
                        Gateway { inner }.reload().await;
                    }
                }
            },
            self.inner.http_stop.clone(),
        ));
    }

    /// Starts the upstream servers (once) and waits for each to come up or fail.
    ///
    /// Must be called inside a Tokio runtime.
    pub async fn connect(&self) -> Vec<ServerReport> {
        self.state().startup_report(STARTUP_WAIT).await
    }

    /// The gateway's HTTP routes (REST API, MCP endpoint, `/metrics`, probes) as an axum
    /// `Router`, ready to be served or nested in another app: the same service as
    /// [`Gateway::service`] and [`Gateway::start`], hot routes included. Serve it with the
    /// peer address (`into_make_service_with_connect_info::<SocketAddr>()`, or
    /// [`serve`]) so anonymous callers get a rate-limit budget per IP. Starts the upstreams
    /// if they are not running.
    ///
    /// Must be called inside a Tokio runtime.
    pub fn router(&self) -> axum::Router {
        axum::Router::new().fallback_service(self.service::<axum::body::Body>())
    }

    /// The gateway's whole HTTP service as a tower `Service`, for embedders who serve with
    /// hyper (or anything tower) directly; put the peer address in the request extensions
    /// as `axum::extract::ConnectInfo<SocketAddr>` to key anonymous callers' rate limits
    /// by IP. Starts the upstreams if they are not running.
    ///
    /// Must be called inside a Tokio runtime.
    pub fn service<B>(
        &self,
    ) -> impl tower::Service<
        http::Request<B>,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
    where
        B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        self.http_service()
    }

    /// The one HTTP service: the hot routes' stacks and the router (see `hot.rs`), built on
    /// first use and shared by `start`, `router` and `service`.
    fn http_service(&self) -> hot::GatewayService<impl hot::HotService, impl hot::HotService> {
        once(&self.inner.http, || {
            hot::GatewayService::new(self.routes(&self.state()))
        })
    }

    /// The router, and the two routes every tool call takes as stacks of their own (see
    /// `hot.rs`), of generation `state`.
    fn routes(
        &self,
        state: &Arc<AppState>,
    ) -> hot::Hot<impl hot::HotService + use<>, impl hot::HotService + use<>> {
        let state = state.clone();
        let cfg = &state.config;
        let endpoint = state.endpoint.clone();
        let (api, mcp) = (
            api::routes(state.clone()),
            mcp_gateway_mcp_server::routes(endpoint.clone()),
        );
        // From the outside in: the HTTP span, the replica header, CORS, authentication (not
        // on the probes and the OAuth metadata), then the rate limit, which sits inside
        // authentication so it can key on the caller's identity; REST and MCP share one
        // budget but answer in their own format.
        //
        // Each group of routes gets its whole stack as one `Router::layer`: axum wraps
        // every route in a boxed service per `layer` call, and clones and boxes each level
        // again on every request (measured: two allocations and ~1 000 instructions per
        // level and call).
        let trace = tower_http::trace::TraceLayer::new_for_http()
            .make_span_with(telemetry::http_span)
            .on_response(
                |res: &http::Response<_>, _latency: std::time::Duration, span: &tracing::Span| {
                    span.record("http.response.status_code", res.status().as_u16());
                },
            );
        // Behind a load balancer, says which replica answered.
        let replica = state
            .cluster
            .enabled
            .then(|| http::HeaderValue::from_str(&state.cluster.replica).ok())
            .flatten()
            .map(|name| {
                tower_http::set_header::SetResponseHeaderLayer::overriding(
                    http::HeaderName::from_static("x-mcp-gateway-replica"),
                    name,
                )
            });
        let cors = (!cfg.cors_origins.is_empty()).then(|| {
            let origins: Vec<http::HeaderValue> = cfg
                .cors_origins
                .iter()
                .filter_map(|o| o.parse().ok())
                .collect();
            tower_http::cors::CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([http::Method::GET, http::Method::POST, http::Method::DELETE])
                .allow_headers(tower_http::cors::Any)
        });
        let open_stack = tower::ServiceBuilder::new()
            .layer(trace)
            .option_layer(replica)
            .option_layer(cors);
        let auth = state.auth.layer().map(|layer| {
            let recorder = state.recorder.clone();
            let layer = layer.on_failure(move |e| recorder.count_auth_failure(e.reason()));
            let f = &cfg.auth.failure_limit;
            if f.limit == 0 {
                return layer;
            }
            layer.failure_budget(Arc::new(mcp_gateway_auth::FailureBudget::new(
                f.limit,
                Duration::from_secs(f.window_seconds.max(1)),
            )))
        });
        let limiter = state.limiter.clone();
        // Each front end answers refusals in its own shape: REST JSON for the API, JSON-RPC
        // errors (status and headers unchanged) for the MCP endpoint. The layers share their
        // state (keys, budgets) across both. A foreign web page's request is refused first,
        // before it can learn anything from authentication (DNS-rebinding defence).
        let origins = mcp_gateway_auth::OriginLayer::new(cfg.cors_origins.iter().cloned());
        let front = |format: ErrorFormat| {
            (
                origins.clone().error_format(format),
                auth.clone().map(|a| a.error_format(format)),
                limiter.clone().map(|l| l.error_format(format)),
            )
        };
        let (rest_front, mcp_front) = (front(ErrorFormat::Json), front(ErrorFormat::JsonRpc));
        // A front end's layers, defined once: around its routes in the router and around
        // its hot handler alike.
        let layers = |(origin, auth, limiter): Front| {
            open_stack
                .clone()
                .layer(origin)
                .option_layer(auth)
                .option_layer(limiter)
                .into_inner()
        };
        let guarded = |routes: axum::Router, front: Front| routes.layer(layers(front));
        let mut open = api::probes(state.clone());
        // The dashboard's files are open (its login prompt must load); everything it shows
        // comes from the API, behind the REST front end's layers.
        if cfg.ui.enabled {
            open = open.merge(mcp_gateway_ui::router(&cfg.ui.path));
        }
        if let Some(m) = &state.auth.metadata {
            for path in m.well_known_paths() {
                open = open.route_service(&path, m.service());
            }
        }
        // The same layers around the two hot handlers, each as one stack. The router's
        // `layer` turns every answer into an axum `Response`; so does `map_response` here.
        let hot_stack = |front: Front| {
            tower::ServiceBuilder::new()
                .map_response(axum::response::IntoResponse::into_response)
                .layer(layers(front))
        };
        let rest =
            hot_stack(rest_front.clone()).service(hot::handler(state.clone(), api::call_tool));
        let mcp_hot = hot_stack(mcp_front.clone()).service(hot::handler(
            endpoint,
            mcp_gateway_mcp_server::post_mcp::<McpService>,
        ));
        let router = guarded(api, rest_front)
            .merge(guarded(mcp, mcp_front))
            .merge(open.layer(open_stack.into_inner()));
        hot::Hot {
            rest,
            mcp: mcp_hot,
            router,
        }
    }

    /// The MCP-plane service (metrics → access control → router → upstreams), for front ends
    /// of your own.
    pub fn mcp_service(&self) -> McpService {
        self.state().mcp.clone()
    }

    /// Starts upstreams, binds the listener and serves in the background.
    pub async fn start(&self) -> Result<Started, StartError> {
        let cfg = self.state().config.clone();
        let cfg = &cfg;
        let addr = format!("{}:{}", cfg.host, cfg.port);
        if self.inner.http_task.lock().expect("lock").is_some() {
            return Err(StartError::AlreadyStarted);
        }
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: addr.clone(),
                source,
            })?;
        let local = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?;
        let servers = self.connect().await;
        let service = self.http_service();
        let stop = self.inner.http_stop.clone();
        // Peer addresses key anonymous callers' rate limits: each connection passes its on.
        let limits = serve::Limits::new(
            cfg.connections.max,
            Duration::from_millis(cfg.connections.header_timeout),
        );
        let body_timeout = Duration::from_millis(cfg.connections.body_timeout);
        let task = tokio::spawn(serve::serve_with(
            listener,
            stop.cancelled_owned(),
            limits,
            move |peer| hot::HotConn::new(service.clone(), peer, body_timeout),
        ));
        *self.inner.http_task.lock().expect("lock") = Some(task);
        Ok(Started {
            addr: local,
            servers,
        })
    }

    /// Graceful stop: stop accepting, let in-flight calls finish (bounded by
    /// `shutdownTimeout`), then terminate every upstream process.
    pub async fn stop(&self) {
        self.inner.http_stop.cancel();
        let current = self
            .inner
            .runtime
            .get()
            .and_then(|rt| rt.current.load_full());
        if let Some(st) = &current {
            st.endpoint.close_streams();
        }
        let task = self.inner.http_task.lock().expect("lock").take();
        if let Some(mut task) = task {
            let limit = Duration::from_millis(
                current
                    .as_ref()
                    .map_or(10_000, |st| st.config.shutdown_timeout),
            );
            if tokio::time::timeout(limit, &mut task).await.is_err() {
                tracing::warn!(
                    "in-flight requests still running after {} ms; closing them",
                    limit.as_millis()
                );
                task.abort();
            }
        }
        drop(current);
        if let Some(rt) = self.inner.runtime.get() {
            rt.shutdown_upstreams().await;
        }
    }
}
