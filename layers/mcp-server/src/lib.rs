//! The downstream MCP server of mcp-gateway: the gateway is itself an MCP server whose tools
//! are every upstream's tools, so a client adds one server (`http://localhost:4000/mcp`)
//! and gets all. [`Endpoint`] serves it over any MCP-plane service (a tower
//! `Service<McpRequest>`) and the [`Catalog`] of the tools behind it.
//!
//! - **2026-07-28 (stateless)** on `POST /mcp` (`stateless.rs`): `server/discover`, `_meta`
//!   on every request, `Mcp-Method` / `Mcp-Name` / `MCP-Protocol-Version` headers checked
//!   against the body before anything is routed (mismatch → 400 `HeaderMismatch` -32020),
//!   `resultType` on every result, `ttlMs` / `cacheScope` on lists, `subscriptions/listen`
//!   streams, server→client requests bridged to Multi Round-Trip Requests (`mrtr.rs`).
//! - **Session generation** (2025-03-26 … 2025-11-25) on `POST/GET/DELETE /mcp`
//!   (`session.rs`): `initialize` issues an `Mcp-Session-Id`, required on every later
//!   request (400 without it, 404 when unknown or expired); a GET stream carries
//!   `list_changed` notifications and relayed server requests (`relay.rs`).
//! - **Legacy HTTP+SSE** (2024-11-05, `legacy_sse.rs`): `GET /sse` + `POST /messages`.
//!
//! Requests are dispatched in `dispatch.rs`; resources, prompts and completions fan out
//! across servers in `aggregate.rs`. Calls with a `progressToken` answer with an SSE
//! stream: the upstream's progress notifications and then the result. `Origin` is checked
//! on every request: loopback origins and the allowed ones pass, anything else gets 403
//! (DNS-rebinding defence). Sessions can move between replicas through
//! [`mcp_gateway_cluster`].
//!
//! ```
//! use mcp_gateway_core::{McpError, McpRequest, McpResponse};
//! use mcp_gateway_mcp_server::{Endpoint, EndpointOptions};
//! use mcp_gateway_router::{ResolveLayer, ToolRouter};
//! use tower::{Layer, ServiceExt, service_fn};
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // An MCP plane with one server offering `echo`.
//! let echo = service_fn(|_req: McpRequest| async {
//!     let result = serde_json::value::RawValue::from_string(r#"{"content":[]}"#.into());
//!     Ok::<_, McpError>(McpResponse::new(result.unwrap()))
//! });
//! let router = ToolRouter::builder().server("demo", echo).build();
//! router.set_tools("demo", ["echo"]);
//! let plane = ResolveLayer::new(router.catalog().clone()).layer(router.clone());
//!
//! let endpoint = Endpoint::new(plane, router.catalog().clone(), EndpointOptions::default());
//! let app = mcp_gateway_mcp_server::routes(endpoint);
//! let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"demo__echo",
//!     "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",
//!              "io.modelcontextprotocol/clientCapabilities":{}}}}"#;
//! let req = http::Request::post("/mcp")
//!     .header("content-type", "application/json")
//!     .header("accept", "application/json, text/event-stream")
//!     .header("mcp-protocol-version", "2026-07-28")
//!     .header("mcp-method", "tools/call")
//!     .header("mcp-name", "demo__echo")
//!     .body(axum::body::Body::from(call))
//!     .unwrap();
//! let res = app.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), 200);
//! # }
//! ```

mod aggregate;
mod dispatch;
mod legacy_sse;
mod mrtr;
mod relay;
mod session;
mod sessions;
mod stateless;
mod subscriptions;
mod trace;

pub use dispatch::post_mcp;
pub use trace::{OneHeader, continue_trace};

/// Entry points of the fuzz targets (`fuzz/`), compiled only with `--cfg fuzzing`.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzz {
    /// Decodes an `Mcp-Name` / `Mcp-Param-*` value as the endpoint does.
    pub fn decode_header(v: &http::HeaderValue) -> Option<String> {
        mcp_gateway_core::param_headers::decode(v)
    }
}

/// The caller established by an authentication layer, if any.
pub type Caller = Option<axum::Extension<Arc<Identity>>>;

use dispatch::*;
use legacy_sse::*;
use relay::*;
use session::*;
use stateless::*;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mcp_gateway_cluster::Cluster;
use mcp_gateway_core::body::BodyError;
use mcp_gateway_core::jsonrpc::{self, JsonRpcError, Message, RequestId};
use mcp_gateway_core::protocol::{self, LogLevel, STATELESS_VERSION};
use mcp_gateway_core::relay::RelaySink;
use mcp_gateway_core::{Identity, McpError, McpRequest, McpResponse, ToolPolicy};
use mcp_gateway_router::Catalog;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use sessions::{Session, Sessions};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tower::ServiceExt;

/// Tools per `tools/list` page.
const PAGE_SIZE: usize = 200;
/// Keep-alive comment interval on long-lived SSE streams.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// JSON-RPC code for a request cancelled by the client.
const REQUEST_CANCELLED: i64 = -32800;

/// The MCP-plane service an [`Endpoint`] calls: any tower service from [`McpRequest`] to
/// [`McpResponse`] that can be shared across tasks.
pub trait McpService:
    tower::Service<McpRequest, Response = McpResponse, Error = McpError, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> McpService for T where
    T: tower::Service<McpRequest, Response = McpResponse, Error = McpError, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// How an [`Endpoint`] serves.
#[derive(Clone, Debug)]
pub struct EndpointOptions {
    /// Largest request body read (413 beyond it).
    pub max_body_bytes: usize,
    /// Deepest nesting of arrays and objects accepted in a request (400 beyond).
    pub max_json_depth: usize,
    /// Sessions unused this long are dropped.
    pub session_idle: Duration,
    /// Browser origins allowed besides loopback ones (`"*"`: any).
    pub allowed_origins: Vec<String>,
    /// Who may see which tool and prompt in the lists this endpoint names for everyone
    /// (`tools/list` from the catalog, `prompts/list`): the access-control layer's own
    /// policy; the layer itself cuts resource lists and refuses calls. `None`: everyone
    /// sees all.
    pub policy: Option<Arc<dyn ToolPolicy>>,
    /// This replica's place among several; `None`: a replica alone.
    pub cluster: Option<Arc<Cluster>>,
}

impl Default for EndpointOptions {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 * 1024 * 1024,
            max_json_depth: 128,
            session_idle: Duration::from_secs(1800),
            allowed_origins: Vec::new(),
            policy: None,
            cluster: None,
        }
    }
}

/// The MCP endpoint over MCP-plane service `S`; serve it with [`routes`] (or its
/// [`post_mcp`] handler alone).
///
/// One value is one configuration of the endpoint: the plane it calls, the catalog it
/// shows, the policy and limits it applies. [`Endpoint::reconfigure`] makes the next one,
/// which shares everything clients hold on to (sessions, streams, subscriptions): a request
/// is served by the endpoint it reached, whole, while later requests reach the new one.
pub struct Endpoint<S> {
    mcp: S,
    catalog: Catalog,
    policy: Option<Arc<dyn ToolPolicy>>,
    options: EndpointOptions,
    shared: Arc<Shared<S>>,
}

impl<S> std::ops::Deref for Endpoint<S> {
    type Target = Shared<S>;

    fn deref(&self) -> &Shared<S> {
        &self.shared
    }
}

/// What every configuration of an endpoint shares: the clients' state.
#[doc(hidden)]
pub struct Shared<S> {
    /// The endpoint in force, for the housekeeping tasks (a weak pointer: the endpoints
    /// own this, not the other way round).
    current: arc_swap::ArcSwap<std::sync::Weak<Endpoint<S>>>,
    cluster: Arc<Cluster>,
    sessions: Sessions,
    origins: aggregate::Origins,
    /// Fired at shutdown: long-lived streams end so the server can drain.
    shutdown: tokio_util::sync::CancellationToken,
    /// 2026-07-28 calls waiting for their client's `inputResponses`, by `requestState`.
    parked: std::sync::Mutex<std::collections::HashMap<String, mrtr::Parked>>,
    /// Clients' resource subscriptions.
    subscriptions: subscriptions::Subscriptions,
    /// The log level last sent to servers (0: none yet), see
    /// [`aggregate::forward_log_level`].
    upstream_log_level: std::sync::atomic::AtomicU8,
}

impl<S> Shared<S> {
    /// The endpoint in force, while one is.
    fn current(&self) -> Option<Arc<Endpoint<S>>> {
        self.current.load().upgrade()
    }
}

impl<S> std::fmt::Debug for Endpoint<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint<S>")
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

impl<S> std::fmt::Debug for Shared<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

impl<S: McpService> Endpoint<S> {
    /// An endpoint calling `mcp` for every request, showing the tools of `catalog`. Spawns
    /// its housekeeping, so it needs a Tokio runtime.
    pub fn new(mcp: S, catalog: Catalog, mut options: EndpointOptions) -> Arc<Self> {
        let cluster = options
            .cluster
            .take()
            .unwrap_or_else(|| Arc::new(Cluster::new(None)));
        let shutdown = tokio_util::sync::CancellationToken::new();
        let bus = cluster.subscribe(shutdown.clone());
        let shared = Arc::new(Shared {
            current: arc_swap::ArcSwap::from_pointee(std::sync::Weak::new()),
            sessions: Sessions::new(options.session_idle, &cluster.replica),
            cluster,
            origins: aggregate::Origins::default(),
            parked: std::sync::Mutex::new(std::collections::HashMap::new()),
            subscriptions: subscriptions::Subscriptions::default(),
            upstream_log_level: std::sync::atomic::AtomicU8::new(0),
            shutdown,
        });
        let ep = Arc::new(Self {
            mcp,
            policy: options.policy.take(),
            catalog,
            options,
            shared: shared.clone(),
        });
        shared.current.store(Arc::new(Arc::downgrade(&ep)));
        tokio::spawn(housekeeping(Arc::downgrade(&shared)));
        tokio::spawn(subscriptions::deliver_updates(Arc::downgrade(&shared)));
        if let Some(rx) = bus {
            tokio::spawn(from_other_replicas(Arc::downgrade(&shared), rx));
        }
        ep
    }

    /// The endpoint's next configuration: it calls `mcp`, shows `catalog` (build it
    /// [`after`](mcp_gateway_router::CatalogBuilder::after) this endpoint's catalog so
    /// clients keep hearing of changes), and applies `options` (its `cluster` and
    /// `session_idle` stay this endpoint's). Sessions, streams and subscriptions carry
    /// over; requests already running finish on this endpoint. From now on the
    /// housekeeping serves the new one.
    ///
    /// Clients are told what changed for them: `notifications/tools/list_changed` (session
    /// streams and `subscriptions/listen`) when the tools offered or who may see them
    /// changed, `notifications/prompts/list_changed` and
    /// `notifications/resources/list_changed` (session streams) when servers offering
    /// them came or went or `access_changed`.
    pub fn reconfigure(
        &self,
        mcp: S,
        catalog: Catalog,
        mut options: EndpointOptions,
        access_changed: bool,
    ) -> Arc<Self> {
        options.cluster = None;
        options.session_idle = self.options.session_idle;
        let next = Arc::new(Self {
            mcp,
            policy: options.policy.take(),
            catalog,
            options,
            shared: self.shared.clone(),
        });
        self.shared.current.store(Arc::new(Arc::downgrade(&next)));
        let tools = |c: &Catalog| {
            let snap = c.snapshot();
            snap.tools()
                .iter()
                .map(|t| (t.name.clone(), t.server.clone(), t.raw.get().to_string()))
                .collect::<Vec<_>>()
        };
        if access_changed || tools(&self.catalog) != tools(&next.catalog) {
            next.catalog.announce_change();
        }
        for (cap, method) in [
            ("prompts", "notifications/prompts/list_changed"),
            ("resources", "notifications/resources/list_changed"),
        ] {
            if access_changed || self.catalog.servers_with(cap) != next.catalog.servers_with(cap) {
                let frame = sse_event(&jsonrpc::notification_frame(method, None));
                for s in self.sessions.all() {
                    s.push(frame.clone());
                }
            }
        }
        next
    }

    /// Ends every long-lived stream (session GET streams, legacy SSE streams,
    /// `subscriptions/listen`) so a graceful shutdown is not held up by idle listeners.
    pub fn close_streams(&self) {
        self.shutdown.cancel();
        for s in self.sessions.all() {
            s.end_stream();
        }
    }

    /// Number of live downstream sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// True when `identity` may see item `name` of `server` in a list.
    fn visible_item(
        &self,
        identity: Option<&Identity>,
        kind: mcp_gateway_core::ItemKind,
        server: &str,
        name: &str,
    ) -> bool {
        self.policy
            .as_ref()
            .is_none_or(|p| p.allows_item(identity, kind, server, name))
    }

    /// True when `identity` may see tool `tool` of `server` in a list.
    fn visible(&self, identity: Option<&Identity>, server: &str, tool: &str) -> bool {
        self.visible_item(identity, mcp_gateway_core::ItemKind::Tool, server, tool)
    }
}

impl<S> Endpoint<S> {
    /// True when every caller sees the same lists (no access rule cuts them), so the
    /// gateway's own list answers may be `cacheScope: public`.
    fn lists_are_shared(&self) -> bool {
        self.policy.as_ref().is_none_or(|p| p.allows_everything())
    }
}

/// Expires idle sessions and tells open session streams when the tool list changed.
async fn housekeeping<S: McpService>(shared: std::sync::Weak<Shared<S>>) {
    let Some(mut changes) = shared
        .upgrade()
        .and_then(|s| s.current())
        .map(|e| e.catalog.subscribe())
    else {
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let Some(ep) = shared.upgrade().and_then(|s| s.current()) else { return };
                mrtr::expire(&ep.parked);
                let n = ep.sessions.expire();
                if n > 0 {
                    tracing::debug!(expired = n, "dropped idle MCP sessions");
                }
                subscriptions::sweep(&ep).await;
            }
            r = changes.recv() => {
                if matches!(r, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    return;
                }
                let Some(ep) = shared.upgrade() else { return };
                let frame = sse_event(&jsonrpc::notification_frame("notifications/tools/list_changed", None));
                for s in ep.sessions.all() {
                    s.push(frame.clone());
                }
            }
        }
    }
}

/// Acts on what other replicas publish: revocations, cancellations and answers for calls
/// running here, legacy messages for SSE streams held here.
async fn from_other_replicas<S: McpService>(
    shared: std::sync::Weak<Shared<S>>,
    mut rx: mpsc::Receiver<mcp_gateway_cluster::BusMessage>,
) {
    use mcp_gateway_cluster::BusMessage;
    while let Some(m) = rx.recv().await {
        let Some(ep) = shared.upgrade().and_then(|s| s.current()) else {
            return;
        };
        match m {
            BusMessage::Revoke { session } => {
                ep.cluster.remember_revoked(&session);
                ep.sessions.remove_tagged(&session);
            }
            BusMessage::Resync => {
                // In its own task: it may wait for Redis, and messages keep coming.
                let cluster = ep.cluster.clone();
                tokio::spawn(async move { cluster.republish().await });
                let tags: Vec<String> = ep
                    .sessions
                    .all()
                    .iter()
                    .filter_map(|s| s.tag.clone())
                    .collect();
                for tag in ep.cluster.revoked_among(&tags).await {
                    ep.cluster.remember_revoked(&tag);
                    ep.sessions.remove_tagged(&tag);
                }
            }
            BusMessage::Cancel { session, id } => {
                if let Some(s) = ep.sessions.by_tag(&session)
                    && s.cancel(&id)
                {
                    tracing::debug!(id = %id, "cancelled a call on behalf of another replica");
                }
            }
            BusMessage::Answer {
                session,
                id,
                result,
                error,
            } => {
                if let Some(s) = ep.sessions.by_tag(&session) {
                    let answer = match (result, error) {
                        (_, Some(e)) => Err(e),
                        (Some(r), None) => Ok(r),
                        (None, None) => continue,
                    };
                    s.answer(&id, answer);
                }
            }
            BusMessage::Message {
                session,
                to,
                identity,
                body,
            } => {
                if to != ep.cluster.replica {
                    continue;
                }
                let Some(s) = ep.sessions.by_tag(&session).filter(|s| s.legacy) else {
                    tracing::debug!("a forwarded legacy message names no stream held here");
                    continue;
                };
                let identity = identity.map(|w| Arc::new(mcp_gateway_core::Identity::from(w)));
                if s.owner() != identity.as_ref().map(|i| i.subject.as_str()) {
                    continue;
                }
                let _ = legacy_message(ep, s, identity, Bytes::from(body)).await;
            }
        }
    }
}

/// The routes: `/mcp`, `/sse`, `/messages`.
pub fn routes<S: McpService>(ep: Arc<Endpoint<S>>) -> Router {
    Router::new()
        .route(
            "/mcp",
            post(post_mcp::<S>)
                .get(get_mcp::<S>)
                .delete(delete_mcp::<S>),
        )
        .route("/sse", get(get_sse::<S>))
        .route("/messages", post(post_messages::<S>))
        .with_state(ep)
}

// ---------------------------------------------------------------------------------------
// Answers

fn sse_event(json: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(json.len() + 24);
    out.extend_from_slice(b"event: message\ndata: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn rpc_error(status: StatusCode, id: Option<&RequestId>, e: JsonRpcError) -> Response {
    json_response(status, jsonrpc::error_frame(id, &e))
}

fn sse_response(rx: mpsc::Receiver<Bytes>, session: Option<&str>) -> Response {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    let mut res = sse_stream_response(Body::from_stream(stream));
    if let Some(id) = session.and_then(|s| HeaderValue::from_str(s).ok()) {
        res.headers_mut().insert("mcp-session-id", id);
    }
    res
}

/// An event-stream answer with `body`.
fn sse_stream_response(body: Body) -> Response {
    let mut res = Response::new(body);
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    res
}

/// Whether a browser `Origin` may talk to the endpoint: absent, loopback, or allowed.
fn origin_allowed(options: &EndpointOptions, headers: &HeaderMap) -> bool {
    mcp_gateway_core::origin::origin_allowed(&options.allowed_origins, headers)
}

fn forbidden_origin() -> Response {
    rpc_error(
        StatusCode::FORBIDDEN,
        None,
        JsonRpcError::new(
            jsonrpc::INVALID_REQUEST,
            "Origin not allowed; add it to corsOrigins to let this web page use the gateway",
        ),
    )
}

/// An early answer: an HTTP status with a JSON-RPC error body.
struct Reject(StatusCode, Option<RequestId>, JsonRpcError);

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        rpc_error(self.0, self.1.as_ref(), self.2)
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `v` as raw JSON.
fn raw(v: &Value) -> Box<RawValue> {
    RawValue::from_string(v.to_string()).expect("serialized JSON is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_result_type_and_server_info() {
        let r = stateless_result(RawValue::from_string(r#"{"content":[]}"#.into()).unwrap());
        let v: Value = serde_json::from_str(r.get()).unwrap();
        assert_eq!(v["resultType"], "complete");
        assert_eq!(
            v["_meta"][protocol::META_SERVER_INFO]["name"],
            "mcp-gateway"
        );
        let r = stateless_result(
            RawValue::from_string(r#"{"resultType":"input_required","_meta":{}}"#.into()).unwrap(),
        );
        assert_eq!(r.get(), r#"{"resultType":"input_required","_meta":{}}"#);
        let r = stateless_result(RawValue::from_string("{}".into()).unwrap());
        let v: Value = serde_json::from_str(r.get()).unwrap();
        assert_eq!(v["resultType"], "complete");
    }

    #[test]
    fn a_2026_client_never_gets_32002() {
        let ours = McpError::Unavailable {
            server: "a".into(),
            reason: "down".into(),
        }
        .to_jsonrpc();
        assert_eq!(ours.code, -32002);
        assert_eq!(stateless_error(ours).code, jsonrpc::INTERNAL_ERROR);
        let theirs = JsonRpcError::new(-32002, "Resource not found");
        assert_eq!(stateless_error(theirs).code, jsonrpc::INVALID_PARAMS);
    }
}
