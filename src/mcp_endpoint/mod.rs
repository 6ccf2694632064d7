//! The aggregated MCP endpoint: the gateway itself is an MCP server whose tools are every
//! upstream's tools, so a client adds one server (`http://localhost:4000/mcp`) and gets all.
//!
//! - **2026-07-28 (stateless)** on `POST /mcp`: `server/discover`, `_meta` on every request,
//!   `Mcp-Method` / `Mcp-Name` / `MCP-Protocol-Version` headers checked against the body
//!   before anything is routed (mismatch → 400 `HeaderMismatch` -32020), `resultType` on
//!   every result, `ttlMs` / `cacheScope` on lists, `subscriptions/listen` streams.
//! - **Session generation** (2025-03-26 … 2025-11-25) on `POST/GET/DELETE /mcp`:
//!   `initialize` issues an `Mcp-Session-Id`, required on every later request (400 without
//!   it, 404 when unknown or expired); a GET stream carries `list_changed` notifications.
//! - **Legacy HTTP+SSE** (2024-11-05): `GET /sse` + `POST /messages?sessionId=…`.
//!
//! Calls with a `progressToken` answer with an SSE stream: the upstream's progress
//! notifications (token put back to the client's own) and then the result. Tool calls go
//! through the same MCP-plane stack as the REST API. `Origin` is checked on every request:
//! loopback origins and `corsOrigins` pass, anything else gets 403 (DNS-rebinding defence).

mod aggregate;
mod catalog;
mod mrtr;
mod session;

use crate::body::BodyError;
use crate::state::AppState;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use catalog::Exposed;
use mcp_gateway_core::jsonrpc::{self, JsonRpcError, Message, RequestId};
use mcp_gateway_core::protocol::{self, STATELESS_VERSION};
use mcp_gateway_core::relay::RelaySink;
use mcp_gateway_core::{McpError, McpRequest};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use session::{Session, Sessions};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tower::ServiceExt;

/// Tools per `tools/list` page.
const PAGE_SIZE: usize = 200;
/// Keep-alive comment interval on long-lived SSE streams.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// JSON-RPC code for a request cancelled by the client.
const REQUEST_CANCELLED: i64 = -32800;

/// Shared state of the MCP endpoint.
pub(crate) struct Endpoint {
    state: Arc<AppState>,
    sessions: Sessions,
    exposed: RwLock<Arc<Exposed>>,
    origins: aggregate::Origins,
    /// Fired at shutdown: long-lived streams end so the server can drain.
    shutdown: tokio_util::sync::CancellationToken,
    /// 2026-07-28 calls waiting for their client's `inputResponses`, by `requestState`.
    parked: std::sync::Mutex<std::collections::HashMap<String, mrtr::Parked>>,
}

impl Endpoint {
    pub(crate) fn new(state: Arc<AppState>) -> Arc<Self> {
        let idle = Duration::from_secs(state.config.session_idle_timeout);
        let shutdown = tokio_util::sync::CancellationToken::new();
        let bus = state.cluster.subscribe(shutdown.clone());
        let ep = Arc::new(Self {
            exposed: RwLock::new(Arc::new(catalog::build(&state, u64::MAX))),
            sessions: Sessions::new(idle, &state.cluster.replica),
            origins: aggregate::Origins::default(),
            parked: std::sync::Mutex::new(std::collections::HashMap::new()),
            shutdown,
            state,
        });
        let _ = ep.state.endpoint.set(Arc::downgrade(&ep));
        tokio::spawn(housekeeping(Arc::downgrade(&ep)));
        if let Some(rx) = bus {
            tokio::spawn(from_other_replicas(Arc::downgrade(&ep), rx));
        }
        ep
    }

    /// Ends every long-lived stream (session GET streams, legacy SSE streams,
    /// `subscriptions/listen`) so a graceful shutdown is not held up by idle listeners.
    pub(crate) fn close_streams(&self) {
        self.shutdown.cancel();
        for s in self.sessions.all() {
            s.end_stream();
        }
    }

    /// Number of live downstream sessions.
    pub(crate) fn session_count(&self) -> usize {
        self.sessions.len()
    }

    fn exposed(&self) -> Arc<Exposed> {
        let epoch = self.state.catalog_epoch();
        {
            let cur = self.exposed.read().expect("lock");
            if cur.epoch == epoch {
                return cur.clone();
            }
        }
        let fresh = Arc::new(catalog::build(&self.state, epoch));
        *self.exposed.write().expect("lock") = fresh.clone();
        fresh
    }
}

/// Expires idle sessions and tells open session streams when the tool list changed.
async fn housekeeping(ep: std::sync::Weak<Endpoint>) {
    let Some(mut changes) = ep.upgrade().map(|e| e.state.subscribe_tool_changes()) else {
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let Some(ep) = ep.upgrade() else { return };
                mrtr::expire(&ep.parked);
                let n = ep.sessions.expire();
                if n > 0 {
                    tracing::debug!(expired = n, "dropped idle MCP sessions");
                }
            }
            r = changes.recv() => {
                if matches!(r, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    return;
                }
                let Some(ep) = ep.upgrade() else { return };
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
async fn from_other_replicas(
    ep: std::sync::Weak<Endpoint>,
    mut rx: mpsc::Receiver<crate::cluster::BusMessage>,
) {
    use crate::cluster::BusMessage;
    while let Some(m) = rx.recv().await {
        let Some(ep) = ep.upgrade() else { return };
        match m {
            BusMessage::Revoke { session } => {
                ep.state.cluster.remember_revoked(&session);
                ep.sessions.remove_tagged(&session);
            }
            BusMessage::Resync => {
                let tags: Vec<String> = ep
                    .sessions
                    .all()
                    .iter()
                    .filter_map(|s| s.tag.clone())
                    .collect();
                for tag in ep.state.cluster.revoked_among(&tags).await {
                    ep.state.cluster.remember_revoked(&tag);
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
                if to != ep.state.cluster.replica {
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
pub(crate) fn routes(ep: Arc<Endpoint>) -> Router {
    Router::new()
        .route("/mcp", post(post_mcp).get(get_mcp).delete(delete_mcp))
        .route("/sse", get(get_sse))
        .route("/messages", post(post_messages))
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
    let mut res = Response::new(Body::from_stream(stream));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if let Some(id) = session.and_then(|s| HeaderValue::from_str(s).ok()) {
        h.insert("mcp-session-id", id);
    }
    res
}

/// Whether a browser `Origin` may talk to the endpoint: absent, loopback, or configured.
fn origin_allowed(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    if state
        .config
        .cors_origins
        .iter()
        .any(|o| o == origin || o == "*")
    {
        return true;
    }
    let host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(origin);
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
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

// ---------------------------------------------------------------------------------------
// POST /mcp

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, rename = "_meta", borrow)]
    meta: Option<BTreeMap<Cow<'a, str>, &'a RawValue>>,
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    uri: Option<Cow<'a, str>>,
}

/// Reads a request body of at most `maxBodyBytes`; a larger one is refused with a 413 and a
/// JSON-RPC error naming the limit.
async fn read_body(state: &AppState, body: Body) -> Result<Bytes, Response> {
    let limit = state.config.max_body_bytes;
    crate::body::read_limited(body, limit).await.map_err(|e| {
        let (status, why) = match e {
            BodyError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body exceeds {limit} bytes (maxBodyBytes)"),
            ),
            BodyError::Read(e) => (
                StatusCode::BAD_REQUEST,
                format!("could not read the request body: {e}"),
            ),
        };
        rpc_error(
            status,
            None,
            JsonRpcError::new(jsonrpc::INVALID_REQUEST, why),
        )
    })
}

pub(crate) async fn post_mcp(
    State(ep): State<Arc<Endpoint>>,
    caller: crate::api::Caller,
    req: axum::extract::Request,
) -> Response {
    // The request whole: a `HeaderMap` extractor copies every header, and the `Bytes`
    // extractor applies axum's own 2 MiB limit instead of `maxBodyBytes`.
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    let identity = caller.map(|axum::Extension(i)| i);
    if !origin_allowed(&ep.state, &headers) {
        return forbidden_origin();
    }
    let body = match read_body(&ep.state, body).await {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            JsonRpcError::new(
                jsonrpc::INVALID_REQUEST,
                "JSON-RPC batches are not supported; send one message per request",
            ),
        );
    }
    let msg: Message<'_> = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                None,
                JsonRpcError::new(
                    jsonrpc::PARSE_ERROR,
                    format!("invalid JSON-RPC message: {e}"),
                ),
            );
        }
    };
    let method = msg.method.as_deref();
    let envelope = match msg
        .params
        .map(|p| serde_json::from_str::<Envelope<'_>>(p.get()))
    {
        Some(Ok(e)) => Some(e),
        Some(Err(e)) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                msg.id.as_ref(),
                JsonRpcError::new(
                    jsonrpc::INVALID_PARAMS,
                    format!("params must be an object: {e}"),
                ),
            );
        }
        None => None,
    };
    let meta_version = envelope
        .as_ref()
        .and_then(|e| e.meta.as_ref())
        .and_then(|m| m.get(protocol::META_PROTOCOL_VERSION))
        .and_then(|v| serde_json::from_str::<String>(v.get()).ok());
    let header_version = header_str(&headers, "mcp-protocol-version");
    let stateless = method != Some("initialize")
        && (meta_version.is_some() || header_version == Some(STATELESS_VERSION));

    if stateless {
        let Some(method) = method else {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                msg.id.as_ref(),
                JsonRpcError::new(
                    jsonrpc::INVALID_REQUEST,
                    "clients send no responses on the 2026-07-28 transport",
                ),
            );
        };
        if let Err(resp) = check_stateless(
            &headers,
            msg.id.as_ref(),
            method,
            envelope.as_ref(),
            meta_version.as_deref(),
        ) {
            return resp.into_response();
        }
        let Some(id) = msg.id else {
            // No client notifications are defined for this revision; accept and ignore.
            return StatusCode::ACCEPTED.into_response();
        };
        let can_ask = envelope
            .as_ref()
            .and_then(|e| e.meta.as_ref())
            .and_then(|m| m.get(protocol::META_CLIENT_CAPABILITIES))
            .and_then(|c| serde_json::from_str::<Value>(c.get()).ok())
            .is_some_and(|c| c.get("sampling").is_some() || c.get("elicitation").is_some());
        let ctx = Ctx {
            stateless: true,
            session: None,
            identity,
            can_ask,
            trace: trace_of(&headers, envelope.as_ref().and_then(|e| e.meta.as_ref())),
        };
        return answer(&ep, ctx, id, method, msg.params).await;
    }

    // Session generation.
    if method == Some("initialize") {
        let Some(id) = msg.id else {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                None,
                JsonRpcError::new(
                    jsonrpc::INVALID_REQUEST,
                    "initialize must be a request with an id",
                ),
            );
        };
        let owner = identity.as_ref().map(|i| i.subject.clone());
        let (result, session) = initialize(&ep, msg.params, false, owner);
        let mut res = json_response(StatusCode::OK, jsonrpc::result_frame(&id, result.get()));
        if let Ok(v) = HeaderValue::from_str(&session.id) {
            res.headers_mut().insert("mcp-session-id", v);
        }
        return res;
    }
    let owner = identity.as_ref().map(|i| i.subject.as_str());
    let session = match session_of(&ep, &headers, msg.id.as_ref(), owner).await {
        Ok(s) => s,
        Err(resp) => return resp.into_response(),
    };
    if let Some(v) = header_version
        && !protocol::is_session_version(v)
    {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            msg.id.as_ref(),
            JsonRpcError::new(
                jsonrpc::INVALID_REQUEST,
                format!(
                    "unsupported MCP-Protocol-Version {v:?}; this session speaks {}",
                    session.version()
                ),
            ),
        );
    }
    match (msg.id, method) {
        (Some(id), Some(method)) => {
            let ctx = Ctx {
                stateless: false,
                can_ask: session.can_relay(),
                session: Some(session),
                identity,
                trace: trace_of(&headers, envelope.as_ref().and_then(|e| e.meta.as_ref())),
            };
            answer(&ep, ctx, id, method, msg.params).await
        }
        (None, Some(method)) => {
            client_notification(&ep, &session, method, msg.params).await;
            StatusCode::ACCEPTED.into_response()
        }
        // The client's answer to a request the gateway relayed from an upstream.
        (Some(id), None) => {
            deliver_answer(&ep, &session, &id, msg.result, msg.error).await;
            StatusCode::ACCEPTED.into_response()
        }
        (None, None) => StatusCode::ACCEPTED.into_response(),
    }
}

/// The session `sid` of `owner`: held here, or adopted from its sealed id.
async fn find_session(ep: &Endpoint, sid: &str, owner: Option<&str>) -> Option<Arc<Session>> {
    if let Some(s) = ep.sessions.get(sid, owner) {
        return Some(s);
    }
    let state = ep.state.cluster.adopt(sid, owner).await?;
    if state.legacy {
        // A legacy session lives with its SSE stream; only that replica can serve it.
        return None;
    }
    tracing::debug!(replica = %state.replica, "adopted a session opened on another replica");
    Some(ep.sessions.adopt(sid, &state))
}

async fn session_of(
    ep: &Endpoint,
    headers: &HeaderMap,
    id: Option<&RequestId>,
    owner: Option<&str>,
) -> Result<Arc<Session>, Reject> {
    let Some(sid) = header_str(headers, "mcp-session-id") else {
        return Err(Reject(
            StatusCode::BAD_REQUEST,
            id.cloned(),
            JsonRpcError::new(
                jsonrpc::INVALID_REQUEST,
                "missing Mcp-Session-Id header: send initialize first (or use the 2026-07-28 protocol with _meta)",
            ),
        ));
    };
    find_session(ep, sid, owner).await.ok_or_else(|| {
        Reject(
            StatusCode::NOT_FOUND,
            id.cloned(),
            JsonRpcError::new(
                jsonrpc::INVALID_REQUEST,
                "unknown or expired session; send initialize again",
            ),
        )
    })
}

async fn client_notification(
    ep: &Endpoint,
    session: &Session,
    method: &str,
    params: Option<&RawValue>,
) {
    if method == "notifications/cancelled" {
        #[derive(Deserialize)]
        struct Cancelled {
            #[serde(rename = "requestId")]
            request_id: RequestId,
        }
        let Some(c) = params.and_then(|p| serde_json::from_str::<Cancelled>(p.get()).ok()) else {
            return;
        };
        if session.cancel(&c.request_id) {
            tracing::debug!(id = %c.request_id, "client cancelled a call");
        } else if let Some(tag) = &session.tag {
            // The call may be running on the replica that received it.
            ep.state
                .cluster
                .publish(crate::cluster::BusMessage::Cancel {
                    session: tag.clone(),
                    id: c.request_id,
                })
                .await;
        }
    }
}

/// Validates a 2026-07-28 request's envelope and mirrored headers before anything is routed.
fn check_stateless(
    headers: &HeaderMap,
    id: Option<&RequestId>,
    method: &str,
    env: Option<&Envelope<'_>>,
    version: Option<&str>,
) -> Result<(), Reject> {
    let invalid = |m: String| {
        Reject(
            StatusCode::BAD_REQUEST,
            id.cloned(),
            JsonRpcError::new(jsonrpc::INVALID_PARAMS, m),
        )
    };
    let mismatch = |m: String| {
        Reject(
            StatusCode::BAD_REQUEST,
            id.cloned(),
            JsonRpcError::new(jsonrpc::HEADER_MISMATCH, format!("Header mismatch: {m}")),
        )
    };
    let Some(version) = version else {
        return Err(invalid(format!(
            "params._meta must carry {:?}",
            protocol::META_PROTOCOL_VERSION
        )));
    };
    if version != STATELESS_VERSION {
        let mut e = JsonRpcError::new(
            jsonrpc::UNSUPPORTED_PROTOCOL_VERSION,
            "Unsupported protocol version",
        );
        e.data = RawValue::from_string(
            json!({"supported": [STATELESS_VERSION], "requested": version}).to_string(),
        )
        .ok();
        return Err(Reject(StatusCode::BAD_REQUEST, id.cloned(), e));
    }
    let has_caps = env
        .and_then(|e| e.meta.as_ref())
        .is_some_and(|m| m.contains_key(protocol::META_CLIENT_CAPABILITIES));
    if !has_caps {
        return Err(invalid(format!(
            "params._meta must carry {:?}",
            protocol::META_CLIENT_CAPABILITIES
        )));
    }
    match header_str(headers, "mcp-protocol-version") {
        Some(v) if v == version => {}
        Some(v) => {
            return Err(mismatch(format!(
                "MCP-Protocol-Version header {v:?} does not match body value {version:?}"
            )));
        }
        None => return Err(mismatch("MCP-Protocol-Version header is missing".into())),
    }
    match header_str(headers, "mcp-method") {
        Some(m) if m == method => {}
        Some(m) => {
            return Err(mismatch(format!(
                "Mcp-Method header {m:?} does not match body value {method:?}"
            )));
        }
        None => return Err(mismatch("Mcp-Method header is missing".into())),
    }
    let body_name = match method {
        "tools/call" | "prompts/get" => env.and_then(|e| e.name.as_deref()),
        "resources/read" => env.and_then(|e| e.uri.as_deref()),
        _ => return Ok(()),
    };
    let header_name = match headers.get("mcp-name") {
        None => return Err(mismatch("Mcp-Name header is missing".into())),
        Some(v) => {
            decode_header_value(v).ok_or_else(|| mismatch("Mcp-Name header is not valid".into()))?
        }
    };
    if Some(header_name.as_str()) != body_name {
        return Err(mismatch(format!(
            "Mcp-Name header value {header_name:?} does not match body value {:?}",
            body_name.unwrap_or("")
        )));
    }
    Ok(())
}

/// Decodes a header value, including the `=?base64?…?=` sentinel form.
fn decode_header_value(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    match s
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b64) => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
            String::from_utf8(bytes).ok()
        }
        None => Some(s.to_string()),
    }
}

fn server_info() -> Value {
    json!({"name": "mcp-gateway", "version": env!("CARGO_PKG_VERSION")})
}

/// Answers `initialize`: negotiates the version and opens a session.
fn initialize(
    ep: &Endpoint,
    params: Option<&RawValue>,
    legacy: bool,
    owner: Option<String>,
) -> (Box<RawValue>, Arc<Session>) {
    #[derive(Deserialize)]
    struct Init {
        #[serde(default, rename = "protocolVersion")]
        protocol_version: Option<String>,
        #[serde(default)]
        capabilities: Option<Value>,
    }
    let init = params.and_then(|p| serde_json::from_str::<Init>(p.get()).ok());
    let caps = init
        .as_ref()
        .and_then(|i| i.capabilities.clone())
        .unwrap_or(Value::Null);
    let asked = init.and_then(|i| i.protocol_version);
    let version = match asked.as_deref() {
        Some(v) if protocol::is_session_version(v) => v.to_string(),
        _ => protocol::LATEST_SESSION_VERSION.to_string(),
    };
    let sealed = if legacy {
        None
    } else {
        ep.state
            .cluster
            .seal(&version, owner.as_deref(), session::can_relay(&caps), false)
    };
    let session = ep.sessions.create(sealed, &version, legacy, owner);
    session.set_client_capabilities(&caps);
    let result = json!({
        "protocolVersion": version,
        "capabilities": aggregate::capabilities(ep),
        "serverInfo": server_info(),
        "instructions": "mcp-gateway: tools of several MCP servers behind one endpoint.",
    });
    (raw(&result), session)
}

// ---------------------------------------------------------------------------------------
// Dispatch

struct Ctx {
    stateless: bool,
    session: Option<Arc<Session>>,
    identity: Option<Arc<mcp_gateway_core::Identity>>,
    /// The client can answer sampling / elicitation requests relayed from upstreams.
    can_ask: bool,
    /// The caller's W3C trace to continue (from `traceparent` or `_meta.traceparent`).
    trace: Option<CallerTrace>,
}

/// A caller's `traceparent` and where it came from.
struct CallerTrace {
    value: String,
    /// From `_meta`: the HTTP request's span has not seen it.
    from_meta: bool,
}

/// The trace to continue: the `traceparent` header, else `_meta.traceparent`.
fn trace_of(
    headers: &HeaderMap,
    meta: Option<&BTreeMap<Cow<'_, str>, &RawValue>>,
) -> Option<CallerTrace> {
    if let Some(h) = header_str(headers, "traceparent") {
        return Some(CallerTrace {
            value: h.to_string(),
            from_meta: false,
        });
    }
    meta.and_then(|m| m.get("traceparent"))
        .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
        .map(|value| CallerTrace {
            value,
            from_meta: true,
        })
}

/// Answers one request: JSON for simple answers, an SSE stream when progress was asked for
/// or for `subscriptions/listen`.
async fn answer(
    ep: &Arc<Endpoint>,
    ctx: Ctx,
    id: RequestId,
    method: &str,
    params: Option<&RawValue>,
) -> Response {
    if ctx.stateless && method == "subscriptions/listen" {
        return listen(ep, id, params);
    }
    let relayable = method == "tools/call";
    let wants_progress = relayable && params.is_some_and(|p| p.get().contains("\"progressToken\""));
    let retry = ctx.stateless && relayable && mrtr::is_retry(params);
    if !(wants_progress || retry || (relayable && ctx.can_ask)) {
        return match dispatch(ep, &ctx, &id, method, params, None).await {
            Ok(r) => json_response(StatusCode::OK, jsonrpc::result_frame(&id, r.get())),
            Err(e) => {
                let status = if ctx.stateless && e.code == jsonrpc::METHOD_NOT_FOUND {
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::OK
                };
                rpc_error(status, Some(&id), e)
            }
        };
    }
    if ctx.stateless {
        // Requests from upstreams become `input_required` results (MRTR); progress, when
        // asked for, streams first.
        let owner = ctx.identity.as_ref().map(|i| i.subject.clone());
        let (tx, rx) = mpsc::channel(64);
        let mut notify = move |frame: Vec<u8>| -> bool {
            !wants_progress || tx.try_send(sse_event(&frame)).is_ok() || !tx.is_closed()
        };
        let outcome = if retry {
            mrtr::resume(ep, owner, params, &mut notify).await
        } else {
            let running = mrtr::spawn(
                ep,
                ctx,
                id.clone(),
                method.to_string(),
                params.map(ToOwned::to_owned),
            );
            if wants_progress {
                // Stream: drive in the background so notifications flow while it runs.
                let ep = ep.clone();
                let (ftx, frx) = mpsc::channel(64);
                tokio::spawn(async move {
                    let mut notify = |frame: Vec<u8>| {
                        ftx.try_send(sse_event(&frame)).is_ok() || !ftx.is_closed()
                    };
                    let frame = match mrtr::drive(&ep, running, owner, &mut notify).await {
                        mrtr::Outcome::Done(Ok(r)) => jsonrpc::result_frame(&id, r.get()),
                        mrtr::Outcome::Done(Err(e)) => jsonrpc::error_frame(Some(&id), &e),
                        mrtr::Outcome::InputRequired(r) => {
                            jsonrpc::result_frame(&id, stateless_result(r).get())
                        }
                    };
                    let _ = ftx.send(sse_event(&frame)).await;
                });
                return sse_response(frx, None);
            }
            mrtr::drive(ep, running, owner, &mut notify).await
        };
        drop(rx);
        return match outcome {
            mrtr::Outcome::Done(Ok(r)) => {
                json_response(StatusCode::OK, jsonrpc::result_frame(&id, r.get()))
            }
            mrtr::Outcome::Done(Err(e)) => rpc_error(StatusCode::OK, Some(&id), e),
            mrtr::Outcome::InputRequired(r) => json_response(
                StatusCode::OK,
                jsonrpc::result_frame(&id, stateless_result(r).get()),
            ),
        };
    }
    // Session generation: an SSE answer carries progress and relayed server requests, then
    // the result.
    let (tx, rx) = mpsc::channel(64);
    let ep = ep.clone();
    let params = params.map(ToOwned::to_owned);
    let method = method.to_string();
    tokio::spawn(async move {
        let (sink, mut relay) = RelaySink::channel();
        let call = dispatch(&ep, &ctx, &id, &method, params.as_deref(), Some(sink));
        tokio::pin!(call);
        let session = ctx
            .session
            .clone()
            .expect("session-generation requests have a session");
        let result = loop {
            tokio::select! {
                r = &mut call => break r,
                Some(m) = relay.recv() => {
                    if let Some(frame) = relay_frame(&session, ctx.can_ask, m)
                        && tx.send(frame).await.is_err() {
                            return; // client went away: dropping `call` cancels upstream
                        }
                }
            }
        };
        while let Ok(m) = relay.try_recv() {
            if let Some(frame) = relay_frame(&session, ctx.can_ask, m) {
                let _ = tx.send(frame).await;
            }
        }
        let frame = match result {
            Ok(r) => jsonrpc::result_frame(&id, r.get()),
            Err(e) => jsonrpc::error_frame(Some(&id), &e),
        };
        let _ = tx.send(sse_event(&frame)).await;
    });
    sse_response(rx, None)
}

/// The frame for a message an upstream sent during a call: a notification as is, or a
/// request re-issued under a gateway id whose answer is routed back (when the client can
/// take it; otherwise the upstream gets an error).
fn relay_frame(
    session: &Session,
    can_ask: bool,
    m: mcp_gateway_core::relay::ServerMessage,
) -> Option<Bytes> {
    let params = m.params.as_deref().map(RawValue::get);
    match m.reply {
        None => Some(sse_event(&jsonrpc::notification_frame(&m.method, params))),
        Some(reply) if can_ask => {
            let id = session.ask(reply);
            Some(sse_event(&jsonrpc::request_frame(
                &RequestId::String(id),
                &m.method,
                params,
            )))
        }
        Some(reply) => {
            let _ = reply.send(Err(JsonRpcError::new(
                jsonrpc::METHOD_NOT_FOUND,
                format!("the client did not declare support for '{}'", m.method),
            )));
            None
        }
    }
}

/// Routes a client's JSON-RPC response to the relayed request it answers.
async fn deliver_answer(
    ep: &Endpoint,
    session: &Session,
    id: &RequestId,
    result: Option<&RawValue>,
    error: Option<JsonRpcError>,
) {
    let answer = match (result, error) {
        (_, Some(e)) => Err(e),
        (Some(r), None) => Ok(r.to_owned()),
        (None, None) => Err(JsonRpcError::new(
            jsonrpc::INVALID_REQUEST,
            "response without result or error",
        )),
    };
    let relayed_elsewhere = matches!(id, RequestId::String(s)
        if s.starts_with("mcp-gateway-") && !s.starts_with(session.ask_prefix()));
    if relayed_elsewhere && let Some(tag) = &session.tag {
        // Another replica relayed that request and waits for this answer.
        let (result, error) = match answer {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(e)),
        };
        ep.state
            .cluster
            .publish(crate::cluster::BusMessage::Answer {
                session: tag.clone(),
                id: id.clone(),
                result,
                error,
            })
            .await;
    } else if !session.answer(id, answer) {
        tracing::debug!(id = %id, "answer to no pending relayed request");
    }
}

/// Runs one request and returns its raw result or JSON-RPC error.
async fn dispatch(
    ep: &Arc<Endpoint>,
    ctx: &Ctx,
    id: &RequestId,
    method: &str,
    params: Option<&RawValue>,
    relay: Option<RelaySink>,
) -> Result<Box<RawValue>, JsonRpcError> {
    let result = match method {
        "server/discover" if ctx.stateless => Ok(raw(&json!({
            "supportedVersions": [STATELESS_VERSION],
            "capabilities": aggregate::capabilities(ep),
            "instructions": "mcp-gateway: tools of several MCP servers behind one endpoint.",
            "ttlMs": 0,
            "cacheScope": "public",
        }))),
        "ping" | "logging/setLevel" if !ctx.stateless => Ok(raw(&json!({}))),
        "tools/list" => list_tools(ep, ctx, params),
        "tools/call" => call_tool(ep, ctx, id, params, relay).await,
        "resources/list" | "resources/templates/list" | "prompts/list" => {
            aggregate::list(ep, method, ctx.identity.as_deref()).await
        }
        "prompts/get" => aggregate::get_prompt(ep, params, ctx.identity.as_deref()).await,
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            aggregate::by_uri(ep, method, params, ctx.identity.as_deref()).await
        }
        "completion/complete" => aggregate::complete(ep, params, ctx.identity.as_deref()).await,
        other => Err(JsonRpcError::new(
            jsonrpc::METHOD_NOT_FOUND,
            format!("Method not found: {other}"),
        )),
    }?;
    Ok(if ctx.stateless {
        stateless_result(result)
    } else {
        result
    })
}

/// Adds what every 2026-07-28 result carries: `resultType` (when the upstream, an older
/// server, did not) and the gateway's `serverInfo` when there is no `_meta` yet.
fn stateless_result(result: Box<RawValue>) -> Box<RawValue> {
    #[derive(Deserialize)]
    struct Head {
        #[serde(default, rename = "resultType")]
        result_type: Option<serde::de::IgnoredAny>,
        #[serde(default, rename = "_meta")]
        meta: Option<serde::de::IgnoredAny>,
    }
    let text = result.get();
    let (has_type, has_meta) = if text.contains("\"resultType\"") || text.contains("\"_meta\"") {
        match serde_json::from_str::<Head>(text) {
            Ok(h) => (h.result_type.is_some(), h.meta.is_some()),
            Err(_) => return result,
        }
    } else {
        (false, false)
    };
    if has_type && has_meta {
        return result;
    }
    let Some(rest) = text.trim_start().strip_prefix('{') else {
        return result;
    };
    let mut out = String::with_capacity(text.len() + 120);
    out.push('{');
    if !has_type {
        out.push_str(r#""resultType":"complete","#);
    }
    if !has_meta {
        out.push_str(&format!(
            r#""_meta":{{"{}":{}}},"#,
            protocol::META_SERVER_INFO,
            server_info()
        ));
    }
    if rest.trim_start().starts_with('}') {
        out.pop();
    }
    out.push_str(rest);
    RawValue::from_string(out).unwrap_or(result)
}

fn list_tools(
    ep: &Endpoint,
    ctx: &Ctx,
    params: Option<&RawValue>,
) -> Result<Box<RawValue>, JsonRpcError> {
    #[derive(Deserialize)]
    struct ListParams {
        #[serde(default)]
        cursor: Option<String>,
    }
    let cursor = params
        .and_then(|p| serde_json::from_str::<ListParams>(p.get()).ok())
        .and_then(|p| p.cursor);
    let start = match cursor {
        None => 0,
        Some(c) => c.parse::<usize>().map_err(|_| {
            JsonRpcError::new(jsonrpc::INVALID_PARAMS, format!("invalid cursor {c:?}"))
        })?,
    };
    let exposed = ep.exposed();
    let identity = ctx.identity.as_deref();
    let visible: Vec<&catalog::ExposedTool> = exposed
        .tools
        .iter()
        .filter(|t| ep.state.allows(identity, &t.server, &t.upstream_name))
        .collect();
    let end = (start + PAGE_SIZE).min(visible.len());
    let mut out = String::with_capacity(256 * (end.saturating_sub(start)) + 64);
    out.push_str(r#"{"tools":["#);
    for (i, t) in visible.get(start..end).unwrap_or(&[]).iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(t.json.get());
    }
    out.push(']');
    if end < visible.len() {
        out.push_str(&format!(r#","nextCursor":"{end}""#));
    }
    // Lists can differ per caller once access rules apply, so they are never shared.
    out.push_str(r#","ttlMs":0,"cacheScope":"private"}"#);
    Ok(RawValue::from_string(out).expect("built from valid JSON"))
}

async fn call_tool(
    ep: &Arc<Endpoint>,
    ctx: &Ctx,
    id: &RequestId,
    params: Option<&RawValue>,
    relay: Option<RelaySink>,
) -> Result<Box<RawValue>, JsonRpcError> {
    let params = params.ok_or_else(|| {
        JsonRpcError::new(
            jsonrpc::INVALID_PARAMS,
            "tools/call needs params with a name",
        )
    })?;
    let mut req = McpRequest::new("tools/call", Some(params.to_owned()));
    let name = req
        .tool_name()
        .map_err(|e| e.to_jsonrpc())?
        .ok_or_else(|| JsonRpcError::new(jsonrpc::INVALID_PARAMS, "tools/call needs a name"))?
        .into_owned();
    let exposed = ep.exposed();
    match exposed.get(&name) {
        Some(t) => {
            if t.upstream_name != name {
                req.rename_tool(&t.upstream_name)
                    .map_err(|e| e.to_jsonrpc())?;
            }
            req.server = Some(t.server.clone());
        }
        None => {
            return Err(McpError::UnknownTool { name, hint: None }.to_jsonrpc());
        }
    }
    req.identity = ctx.identity.clone();
    if let Some(r) = relay {
        req.extensions.insert(r);
    }
    let span = tracing::debug_span!(
        "tools/call",
        transport = "mcp",
        tool = %name,
        server = %req.server.as_deref().unwrap_or("-"),
        trace_id = tracing::field::Empty,
        outcome = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let trace = crate::telemetry::continue_trace(
        &span,
        ctx.trace.as_ref().map(|t| t.value.as_str()),
        ctx.trace.as_ref().is_some_and(|t| t.from_meta),
    );
    if let Some(t) = &trace {
        span.record("trace_id", t.trace_id());
    }
    req.ids = mcp_gateway_metrics::RequestIds {
        request_id: Some(id.to_string()),
        trace_id: trace.as_ref().map(|t| t.trace_id().to_string()),
    };
    if let Some(t) = trace {
        req.extensions.insert(t);
    }
    let call = tracing::Instrument::instrument(ep.state.mcp.clone().oneshot(req), span.clone());
    let outcome = match &ctx.session {
        Some(s) => {
            let token = s.begin(id);
            let r = tokio::select! {
                r = call => Some(r),
                _ = token.cancelled() => None,
            };
            s.end(id);
            r
        }
        None => Some(call.await),
    };
    span.record(
        "outcome",
        match &outcome {
            Some(Ok(_)) => "ok",
            Some(Err(e)) => e.code(),
            None => "cancelled",
        },
    );
    if !matches!(outcome, Some(Ok(_))) {
        span.record("otel.status_code", "error");
    }
    match outcome {
        Some(Ok(res)) => Ok(res.result),
        Some(Err(e)) => Err(e.to_jsonrpc()),
        None => Err(JsonRpcError::new(
            REQUEST_CANCELLED,
            "request cancelled by the client",
        )),
    }
}

/// `subscriptions/listen`: acknowledges the notifications the gateway can honour, then
/// keeps the stream open and sends `notifications/tools/list_changed` tagged with the
/// subscription id.
fn listen(ep: &Arc<Endpoint>, id: RequestId, params: Option<&RawValue>) -> Response {
    let wants_tools = params
        .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
        .and_then(|v| {
            v.pointer("/notifications/toolsListChanged")
                .and_then(Value::as_bool)
        })
        .unwrap_or(false);
    let meta = json!({ "io.modelcontextprotocol/subscriptionId": id });
    let honored = if wants_tools {
        json!({"toolsListChanged": true})
    } else {
        json!({})
    };
    let ack = jsonrpc::notification_frame(
        "notifications/subscriptions/acknowledged",
        Some(&json!({"notifications": honored, "_meta": meta}).to_string()),
    );
    let (tx, rx) = mpsc::channel(16);
    let mut changes = ep.state.subscribe_tool_changes();
    let shutdown = ep.shutdown.clone();
    tokio::spawn(async move {
        if tx.send(sse_event(&ack)).await.is_err() {
            return;
        }
        let note = jsonrpc::notification_frame(
            "notifications/tools/list_changed",
            Some(&json!({"_meta": meta}).to_string()),
        );
        let mut tick = tokio::time::interval(KEEPALIVE);
        loop {
            tokio::select! {
                r = changes.recv(), if wants_tools => match r {
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        if tx.send(sse_event(&note)).await.is_err() { return }
                    }
                    Err(_) => return,
                },
                _ = tick.tick() => if tx.send(Bytes::from_static(b":\n\n")).await.is_err() { return },
                _ = tx.closed() => return,
                _ = shutdown.cancelled() => return,
            }
        }
    });
    sse_response(rx, None)
}

// ---------------------------------------------------------------------------------------
// GET / DELETE /mcp (session generation)

async fn get_mcp(
    State(ep): State<Arc<Endpoint>>,
    caller: crate::api::Caller,
    headers: HeaderMap,
) -> Response {
    let owner = caller.map(|axum::Extension(i)| i.subject.clone());
    if !origin_allowed(&ep.state, &headers) {
        return forbidden_origin();
    }
    let accepts_sse =
        header_str(&headers, "accept").is_some_and(|a| a.contains("text/event-stream"));
    if !accepts_sse {
        return rpc_error(
            StatusCode::NOT_ACCEPTABLE,
            None,
            JsonRpcError::new(
                jsonrpc::INVALID_REQUEST,
                "GET /mcp opens an event stream: send Accept: text/event-stream",
            ),
        );
    }
    if header_str(&headers, "mcp-session-id").is_none() {
        // 2026-07-28 clients have no GET stream; older ones must initialize first.
        return rpc_error(
            StatusCode::METHOD_NOT_ALLOWED,
            None,
            JsonRpcError::new(
                jsonrpc::INVALID_REQUEST,
                "GET needs an Mcp-Session-Id (2026-07-28 clients use subscriptions/listen)",
            ),
        );
    }
    let session = match session_of(&ep, &headers, None, owner.as_deref()).await {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let rx = keepalive_stream(&session, Vec::new());
    sse_response(rx, Some(&session.id))
}

/// Opens the session's server→client stream with `first` frames in front and keep-alives.
fn keepalive_stream(session: &Arc<Session>, first: Vec<Bytes>) -> mpsc::Receiver<Bytes> {
    let mut inner = session.open_stream();
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        for f in first {
            if tx.send(f).await.is_err() {
                return;
            }
        }
        let mut tick = tokio::time::interval(KEEPALIVE);
        tick.tick().await;
        loop {
            tokio::select! {
                f = inner.recv() => match f {
                    Some(f) => if tx.send(f).await.is_err() { return },
                    None => return,
                },
                _ = tick.tick() => if tx.send(Bytes::from_static(b":\n\n")).await.is_err() { return },
            }
        }
    });
    rx
}

async fn delete_mcp(
    State(ep): State<Arc<Endpoint>>,
    caller: crate::api::Caller,
    headers: HeaderMap,
) -> Response {
    let owner = caller.map(|axum::Extension(i)| i.subject.clone());
    if !origin_allowed(&ep.state, &headers) {
        return forbidden_origin();
    }
    let Some(id) = header_str(&headers, "mcp-session-id") else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            JsonRpcError::new(jsonrpc::INVALID_REQUEST, "missing Mcp-Session-Id header"),
        );
    };
    let here = ep.sessions.remove(id, owner.as_deref());
    if here || ep.state.cluster.adopt(id, owner.as_deref()).await.is_some() {
        // A sealed id must not be adopted again, here or on another replica.
        ep.state.cluster.revoke(id).await;
        StatusCode::NO_CONTENT.into_response()
    } else {
        rpc_error(
            StatusCode::NOT_FOUND,
            None,
            JsonRpcError::new(jsonrpc::INVALID_REQUEST, "unknown or expired session"),
        )
    }
}

// ---------------------------------------------------------------------------------------
// Legacy HTTP+SSE (2024-11-05)

async fn get_sse(
    State(ep): State<Arc<Endpoint>>,
    caller: crate::api::Caller,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    if !origin_allowed(&ep.state, &headers) {
        return forbidden_origin();
    }
    let owner = caller.map(|axum::Extension(i)| i.subject.clone());
    let sealed = ep
        .state
        .cluster
        .seal("2024-11-05", owner.as_deref(), false, true);
    let session = ep.sessions.create(sealed, "2024-11-05", true, owner);
    // Relative to wherever the gateway is mounted (it may be nested in another app).
    let base = uri.path().strip_suffix("sse").unwrap_or("/");
    let endpoint = format!(
        "event: endpoint\ndata: {base}messages?sessionId={}\n\n",
        session.id
    );
    let rx = keepalive_stream(&session, vec![Bytes::from(endpoint)]);
    sse_response(rx, None)
}

#[derive(Deserialize)]
struct MessagesQuery {
    #[serde(rename = "sessionId")]
    session_id: Option<String>,
}

async fn post_messages(
    State(ep): State<Arc<Endpoint>>,
    caller: crate::api::Caller,
    Query(q): Query<MessagesQuery>,
    req: axum::extract::Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    if !origin_allowed(&ep.state, &headers) {
        return forbidden_origin();
    }
    let identity = caller.map(|axum::Extension(i)| i);
    let owner = identity.as_ref().map(|i| i.subject.as_str());
    let unknown = || {
        rpc_error(
            StatusCode::NOT_FOUND,
            None,
            JsonRpcError::new(
                jsonrpc::INVALID_REQUEST,
                "unknown sessionId: open GET /sse first",
            ),
        )
    };
    // The session first: a message for no session is refused as such, whatever its size.
    let Some(sid) = q.session_id.as_deref() else {
        return unknown();
    };
    enum Holder {
        Here(Arc<Session>),
        Replica(crate::cluster::SessionState),
    }
    let holder = match ep.sessions.get(sid, owner).filter(|s| s.legacy) {
        Some(s) => Holder::Here(s),
        // The stream may be held by another replica: the message is handed over.
        None => match ep
            .state
            .cluster
            .peek(sid, owner)
            .filter(|s| s.legacy && s.replica != ep.state.cluster.replica)
        {
            Some(state) => Holder::Replica(state),
            None => return unknown(),
        },
    };
    let body = match read_body(&ep.state, body).await {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    let state = match holder {
        Holder::Here(session) => return legacy_message(ep, session, identity, body).await,
        Holder::Replica(state) => state,
    };
    if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            JsonRpcError::new(jsonrpc::PARSE_ERROR, "invalid JSON-RPC message"),
        );
    }
    let Ok(body) = String::from_utf8(body.to_vec()) else {
        return unknown();
    };
    let sent = ep
        .state
        .cluster
        .publish(crate::cluster::BusMessage::Message {
            session: crate::cluster::tag(sid),
            to: state.replica,
            identity: identity.as_deref().map(Into::into),
            body,
        })
        .await;
    if sent {
        StatusCode::ACCEPTED.into_response()
    } else {
        rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            JsonRpcError::new(
                jsonrpc::INTERNAL_ERROR,
                "this session's event stream is held by another gateway replica, which cannot be reached now; retry, or reconnect GET /sse",
            ),
        )
    }
}

/// Handles one legacy `POST /messages` body for a session whose stream is held here: the
/// answer travels on the SSE stream, the POST is only acknowledged.
async fn legacy_message(
    ep: Arc<Endpoint>,
    session: Arc<Session>,
    identity: Option<Arc<mcp_gateway_core::Identity>>,
    body: Bytes,
) -> Response {
    let msg: Message<'_> = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                None,
                JsonRpcError::new(
                    jsonrpc::PARSE_ERROR,
                    format!("invalid JSON-RPC message: {e}"),
                ),
            );
        }
    };
    let (Some(id), Some(method)) = (msg.id.clone(), msg.method.as_deref()) else {
        match (&msg.id, msg.method.as_deref()) {
            (_, Some(m)) => client_notification(&ep, &session, m, msg.params).await,
            (Some(id), None) => deliver_answer(&ep, &session, id, msg.result, msg.error).await,
            (None, None) => {}
        }
        return StatusCode::ACCEPTED.into_response();
    };
    let method = method.to_string();
    let params = msg.params.map(ToOwned::to_owned);
    tokio::spawn(async move {
        let frame = if method == "initialize" {
            let (result, fresh) = initialize(&ep, params.as_deref(), true, None);
            ep.sessions.remove(&fresh.id, None);
            let caps = params
                .as_deref()
                .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
                .and_then(|v| v.get("capabilities").cloned())
                .unwrap_or(Value::Null);
            session.set_client_capabilities(&caps);
            if let Ok(v) = serde_json::from_str::<Value>(result.get())
                && let Some(ver) = v["protocolVersion"].as_str()
            {
                *session.protocol_version.write().expect("lock") = ver.to_string();
            }
            jsonrpc::result_frame(&id, result.get())
        } else {
            let ctx = Ctx {
                stateless: false,
                can_ask: session.can_relay(),
                session: Some(session.clone()),
                identity,
                trace: None,
            };
            let (sink, mut relay) = RelaySink::channel();
            let call = dispatch(&ep, &ctx, &id, &method, params.as_deref(), Some(sink));
            tokio::pin!(call);
            let result = loop {
                tokio::select! {
                    r = &mut call => break r,
                    Some(m) = relay.recv() => {
                        if let Some(frame) = relay_frame(&session, ctx.can_ask, m) {
                            session.push(frame);
                        }
                    }
                }
            };
            // Progress sent just before the result may still be queued: it goes first.
            while let Ok(m) = relay.try_recv() {
                if let Some(frame) = relay_frame(&session, ctx.can_ask, m) {
                    session.push(frame);
                }
            }
            match result {
                Ok(r) => jsonrpc::result_frame(&id, r.get()),
                Err(e) => jsonrpc::error_frame(Some(&id), &e),
            }
        };
        session.push(sse_event(&frame));
    });
    StatusCode::ACCEPTED.into_response()
}

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
    fn decodes_base64_header_values() {
        let v = HeaderValue::from_static("=?base64?SGVsbG8sIOS4lueVjA==?=");
        assert_eq!(decode_header_value(&v).unwrap(), "Hello, 世界");
        assert_eq!(
            decode_header_value(&HeaderValue::from_static("plain")).unwrap(),
            "plain"
        );
    }
}
