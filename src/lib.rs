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
    config: Config,
    state: OnceLock<Arc<AppState>>,
    endpoint: OnceLock<Arc<mcp_gateway_mcp_server::Endpoint<McpService>>>,
    /// The HTTP service, once built (its type is the stack's, which has no name: kept as
    /// `Any` and given back as itself by [`once`]).
    http: OnceLock<Box<dyn std::any::Any + Send + Sync>>,
    auth: config::AuthSetup,
    /// The MCP plane's access policy, built once with the plan.
    policy: Option<Arc<mcp_gateway_auth::AccessPolicy>>,
    rate_limit: OnceLock<limits::Limiter>,
    http_stop: CancellationToken,
    http_task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("host", &self.inner.config.host)
            .field("port", &self.inner.config.port)
            .field("servers", &self.inner.config.servers.len())
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
        // Validated once, into the plan every layer takes its part from.
        let plan = config.plan(std::path::Path::new("<config>"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                config: plan.config,
                state: OnceLock::new(),
                endpoint: OnceLock::new(),
                http: OnceLock::new(),
                auth: plan.auth,
                policy: plan.policy,
                rate_limit: OnceLock::new(),
                http_stop: CancellationToken::new(),
                http_task: Mutex::new(None),
            }),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    fn state(&self) -> &Arc<AppState> {
        self.inner
            .state
            .get_or_init(|| AppState::spawn(self.inner.config.clone(), self.inner.policy.clone()))
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
        once(&self.inner.http, || hot::GatewayService::new(self.routes()))
    }

    /// The router, and the two routes every tool call takes as stacks of their own (see
    /// `hot.rs`).
    fn routes(&self) -> hot::Hot<impl hot::HotService, impl hot::HotService> {
        let state = self.state().clone();
        let cfg = &self.inner.config;
        let endpoint = self
            .inner
            .endpoint
            .get_or_init(|| {
                let ep = mcp_gateway_mcp_server::Endpoint::new(
                    state.mcp.clone(),
                    state.catalog.clone(),
                    mcp_gateway_mcp_server::EndpointOptions {
                        max_body_bytes: cfg.max_body_bytes,
                        max_json_depth: cfg.max_json_depth,
                        session_idle: Duration::from_secs(cfg.session_idle_timeout),
                        allowed_origins: cfg.cors_origins.clone(),
                        policy: state.policy.clone(),
                        cluster: Some(state.cluster.clone()),
                    },
                );
                let _ = state.endpoint.set(Arc::downgrade(&ep));
                ep
            })
            .clone();
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
        let auth = self.inner.auth.layer().map(|layer| {
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
        let limiter = cfg.rate_limit.as_ref().map(|rl| {
            self.inner
                .rate_limit
                .get_or_init(|| limits::layer(rl, &cfg.auth.api_keys, state.recorder.clone()))
                .clone()
        });
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
        if let Some(m) = &self.inner.auth.metadata {
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
        let rest = hot_stack(rest_front.clone()).service(hot::handler(state, api::call_tool));
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
        let cfg = &self.inner.config;
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
        if let Some(ep) = self.inner.endpoint.get() {
            ep.close_streams();
        }
        let task = self.inner.http_task.lock().expect("lock").take();
        if let Some(mut task) = task {
            let limit = Duration::from_millis(self.inner.config.shutdown_timeout);
            if tokio::time::timeout(limit, &mut task).await.is_err() {
                tracing::warn!(
                    "in-flight requests still running after {} ms; closing them",
                    limit.as_millis()
                );
                task.abort();
            }
        }
        if let Some(state) = self.inner.state.get() {
            state.shutdown_upstreams().await;
        }
    }
}
