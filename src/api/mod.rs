//! The REST API (`/api/v1/...`), Prometheus `/metrics` and the liveness / readiness probes.
//!
//! Every error is JSON `{"error": {"code", "message"}}` with a fitting HTTP status; the
//! mapping from [`McpError`] happens once, in the `IntoResponse` of the API error type.

mod replay;

use crate::state::{AppState, status_word};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mcp_gateway_core::{McpError, McpRequest};
use mcp_gateway_metrics::LogQuery;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use tower::ServiceExt;

type AppRef = Arc<AppState>;

/// Builds the REST routes over the shared state (everything but the probes).
pub(crate) fn routes(state: AppRef) -> Router {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/servers", get(list_servers))
        .route("/api/v1/servers/{id}", get(get_server))
        .route("/api/v1/tools", get(list_tools))
        .route("/api/v1/tools/call", post(call_tool))
        .route("/api/v1/metrics", get(metrics))
        .route("/api/v1/requests", get(requests))
        .route("/api/v1/admin/reload", post(admin_reload))
        .route("/api/v1/requests/{id}", get(replay::detail))
        .route("/api/v1/requests/{id}/replay", post(replay::replay))
        .route("/metrics", get(prometheus))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// The liveness / readiness probes, which stay open when authentication is on.
pub(crate) fn probes(state: AppRef) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// An error answered as JSON.
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    extra: Vec<(&'static str, Value)>,
    retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extra: Vec::new(),
            retry_after: None,
        }
    }

    /// Adds a member to the error object.
    pub(crate) fn with(mut self, key: &'static str, value: Value) -> Self {
        self.extra.push((key, value));
        self
    }
}

impl From<McpError> for ApiError {
    fn from(e: McpError) -> Self {
        let status =
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let extra = match &e {
            McpError::AmbiguousTool { servers, .. } => vec![("servers", json!(servers))],
            McpError::Rpc { error, .. } => vec![("upstream", json!(error))],
            _ => Vec::new(),
        };
        let retry_after = match &e {
            McpError::RateLimited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        };
        Self {
            status,
            code: e.code(),
            message: e.to_string(),
            extra,
            retry_after,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut err = json!({"code": self.code, "message": self.message});
        for (k, v) in self.extra {
            err[k] = v;
        }
        let mut res = (self.status, Json(json!({ "error": err }))).into_response();
        if let Some(s) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        res
    }
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see /api/v1/health, /api/v1/servers, /api/v1/tools",
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

async fn health(State(st): State<AppRef>) -> Json<Value> {
    let enabled: Vec<_> = st.servers.iter().filter(|s| s.config.enabled).collect();
    let healthy = enabled
        .iter()
        .filter(|s| status_word(s).0 == "healthy")
        .count();
    let status = if healthy == enabled.len() {
        "healthy"
    } else if healthy == 0 && !enabled.is_empty() {
        "unhealthy"
    } else {
        "degraded"
    };
    Json(json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime": st.started.elapsed().as_secs(),
        "startedAt": mcp_gateway_metrics::rfc3339(st.started_at),
        "mcpSessions": st.mcp_sessions(),
        "replica": st.cluster.replica,
        "cluster": cluster_summary(&st),
        "config": {
            "generation": st.generation,
            "loadedAt": mcp_gateway_metrics::rfc3339(st.loaded_at),
        },
        "servers": {
            "healthy": healthy,
            "enabled": enabled.len(),
            "total": st.servers.len(),
        },
    }))
}

async fn ready(State(st): State<AppRef>) -> Response {
    let starting: Vec<&str> = st
        .servers
        .iter()
        .filter(|s| {
            s.upstream.as_ref().is_some_and(|u| {
                let status = u.status();
                status.state == mcp_gateway_upstream::State::Starting && status.restarts == 0
            })
        })
        .map(|s| s.config.id.as_str())
        .collect();
    let enabled = || st.servers.iter().filter(|s| s.config.enabled);
    let healthy = enabled().filter(|s| status_word(s).0 == "healthy").count();
    let total = enabled().count();
    let unready = match st.config.readiness {
        crate::config::Readiness::Started => None,
        crate::config::Readiness::Any if healthy == 0 && total > 0 => {
            Some("no server is healthy (readiness: any)".to_string())
        }
        crate::config::Readiness::All if healthy < total => Some(format!(
            "{healthy} of {total} servers healthy (readiness: all)"
        )),
        _ => None,
    };
    if let Some(why) = unready {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", why).into_response()
    } else if starting.is_empty() {
        (StatusCode::OK, "ready").into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "starting",
            format!("servers still starting: {}", starting.join(", ")),
        )
        .into_response()
    }
}

fn server_json(st: &AppState, slot: &crate::state::ServerSlot) -> Value {
    let (word, status) = status_word(slot);
    let c = &slot.config;
    let mut v = json!({
        "id": c.id,
        "name": c.display_name(),
        "transport": c.transport.as_str(),
        "status": word,
        "enabled": c.enabled,
        "tags": c.tags,
        "toolCount": slot.upstream.as_ref().map_or(0, |u| u.tools().len()),
    });
    match status {
        Some(s) => {
            v["lastCheck"] = json!(mcp_gateway_metrics::rfc3339(s.since));
            v["restarts"] = json!(s.restarts);
            if let Some(g) = &s.generation {
                v["protocolVersion"] = json!(g.version());
            }
            if let Some(info) = &s.server_info {
                v["serverInfo"] = serde_json::from_str(info.get()).unwrap_or(Value::Null);
            }
            if s.state != mcp_gateway_upstream::State::Ready
                && let Some(r) = s.reason
            {
                v["error"] = json!(r);
            }
            if let Some(h) = &slot.health {
                let snap = h.snapshot();
                if word == "unhealthy"
                    && let Some(e) = &snap.last_error
                {
                    v["error"] = json!(e);
                }
                v["health"] = serde_json::to_value(snap).unwrap_or(Value::Null);
            }
        }
        None => {
            if let Some(r) = slot.inactive {
                v["error"] = json!(r);
            }
        }
    }
    let _ = st;
    v
}

async fn list_servers(State(st): State<AppRef>, caller: Caller) -> Json<Value> {
    let who = non_admin(&st, &caller);
    let servers: Vec<Value> = st
        .servers
        .iter()
        .map(|s| {
            let mut v = server_json(&st, s);
            if let Some(who) = who {
                v["toolCount"] = json!(visible_tools(&st, s, Some(who)).len());
            }
            v
        })
        .collect();
    Json(json!({ "servers": servers, "count": servers.len() }))
}

async fn get_server(
    State(st): State<AppRef>,
    caller: Caller,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
    q: QueryResult,
) -> Result<Json<Value>, ApiError> {
    let items = match query_params(q, &["items"])?
        .get("items")
        .map(String::as_str)
    {
        None | Some("0" | "false") => false,
        Some("1" | "true") => true,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("items={other:?}: use 1 or 0"),
            ));
        }
    };
    // A segment that is not UTF-8 (`%ff`) names no server: the JSON error, not axum's text.
    let Path(id) = id.map_err(|e| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_server",
            format!("no such server: {}", e.body_text()),
        )
    })?;
    let slot = st
        .slot(&id)
        .ok_or_else(|| ApiError::from(McpError::UnknownServer(id.clone())))?;
    let mut v = server_json(&st, slot);
    // Only the tools this caller may use, as `GET /api/v1/tools` shows them.
    let tools = visible_tools(&st, slot, caller.as_ref().map(|e| &*e.0));
    if non_admin(&st, &caller).is_some() {
        v["toolCount"] = json!(tools.len());
    }
    v["tools"] = Value::Array(tools);
    if items {
        let who = caller.map(|axum::Extension(i)| i);
        for (key, list) in server_items(&st, slot, who).await {
            v[key] = list;
        }
    }
    Ok(Json(v))
}

/// How long `?items=1` waits for each list of a server.
const ITEMS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Pages of each list read at most.
const ITEMS_PAGES: usize = 10;

/// The prompts, resources and resource templates of `slot` that `who` may see, each as the
/// server lists it (asked of the server as `who`, so per-caller credentials apply; lists
/// the server does not offer are empty). A list that fails is left out and its error
/// given under `itemErrors`.
async fn server_items(
    st: &AppState,
    slot: &crate::state::ServerSlot,
    who: Option<Arc<mcp_gateway_core::Identity>>,
) -> Vec<(&'static str, Value)> {
    use mcp_gateway_core::ItemKind;
    let lists = [
        (
            "prompts",
            "prompts/list",
            "prompts",
            "name",
            ItemKind::Prompt,
        ),
        (
            "resources",
            "resources/list",
            "resources",
            "uri",
            ItemKind::Resource,
        ),
        (
            "resources",
            "resources/templates/list",
            "resourceTemplates",
            "uriTemplate",
            ItemKind::Resource,
        ),
    ];
    let mut out = Vec::new();
    let mut errors = serde_json::Map::new();
    let (upstream, caps) = match &slot.upstream {
        Some(u) => {
            let caps = u
                .status()
                .capabilities
                .and_then(|c| serde_json::from_str::<Value>(c.get()).ok())
                .unwrap_or(Value::Null);
            (Some(u), caps)
        }
        None => (None, Value::Null),
    };
    let server = slot.config.id.as_str();
    for (cap, method, key, field, kind) in lists {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        if let Some(u) = upstream.filter(|_| caps.get(cap).is_some()) {
            for _ in 0..ITEMS_PAGES {
                let params = cursor
                    .take()
                    .and_then(|c| RawValue::from_string(json!({ "cursor": c }).to_string()).ok());
                let mut req = McpRequest::new(method, params).with_server(server);
                req.identity = who.clone();
                let page = match tokio::time::timeout(ITEMS_TIMEOUT, u.service().oneshot(req)).await
                {
                    Ok(Ok(res)) => serde_json::from_str::<Value>(res.result.get())
                        .map_err(|e| format!("the server's {method} answer is not JSON: {e}")),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!(
                        "{method} took longer than {} s",
                        ITEMS_TIMEOUT.as_secs()
                    )),
                };
                let mut page = match page {
                    Ok(p) => p,
                    Err(e) => {
                        errors.insert(key.into(), Value::String(e));
                        break;
                    }
                };
                if let Some(Value::Array(list)) = page.get_mut(key).map(Value::take) {
                    items.extend(list.into_iter().filter(|item| {
                        item.get(field).and_then(Value::as_str).is_some_and(|name| {
                            st.access.visible(who.as_deref(), kind, server, name)
                        })
                    }));
                }
                cursor = page
                    .get("nextCursor")
                    .and_then(Value::as_str)
                    .map(String::from);
                if cursor.is_none() {
                    break;
                }
            }
        }
        if !errors.contains_key(key) {
            out.push((key, Value::Array(items)));
        }
    }
    if !errors.is_empty() {
        out.push(("itemErrors", Value::Object(errors)));
    }
    out
}

/// The tools of `slot` that `who` may use (all with no access rules).
fn visible_tools(
    st: &AppState,
    slot: &crate::state::ServerSlot,
    who: Option<&mcp_gateway_core::Identity>,
) -> Vec<Value> {
    tools_of(st, slot)
        .into_iter()
        .filter(|t| {
            st.allows(
                who,
                t["server"].as_str().unwrap_or(""),
                t["name"].as_str().unwrap_or(""),
            )
        })
        .collect()
}

/// The caller, when authentication is on and they hold none of `auth.adminRoles`: such a
/// caller sees only their own requests and no metrics. With `strategy: none` everyone is
/// an admin (there is no one else to tell apart).
fn non_admin<'a>(st: &AppState, caller: &'a Caller) -> Option<&'a mcp_gateway_core::Identity> {
    if st.config.auth.strategy == crate::config::AuthStrategy::None {
        return None;
    }
    let admins = &st.config.auth.admin_roles;
    match caller.as_ref().map(|e| &*e.0) {
        Some(who) if who.roles.iter().any(|r| admins.contains(r)) => None,
        Some(who) => Some(who),
        // Authentication is on but the request carries no identity: treat as nobody's.
        None => Some(anonymous()),
    }
}

fn anonymous() -> &'static mcp_gateway_core::Identity {
    static NOBODY: std::sync::OnceLock<mcp_gateway_core::Identity> = std::sync::OnceLock::new();
    NOBODY.get_or_init(|| mcp_gateway_core::Identity {
        subject: "\0anonymous".into(),
        ..Default::default()
    })
}

fn admin_only(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "admin_only",
        format!("{what}: this needs one of the roles in auth.adminRoles"),
    )
}

/// `POST /api/v1/admin/reload`: reads the configuration file again and applies it (the
/// same reload as `SIGHUP`); 200 with what changed, 400 with the problems of an invalid
/// file (nothing changed). Needs an admin role when authentication is on.
async fn admin_reload(State(st): State<AppRef>, caller: Caller) -> Response {
    if non_admin(&st, &caller).is_some() {
        return admin_only("reloading the configuration").into_response();
    }
    let report = match st.rt.reloader.get() {
        Some(reload) => reload().await,
        None => None,
    };
    let Some(report) = report else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this gateway cannot reload its configuration",
        )
        .into_response();
    };
    if report.applied() {
        return Json(report).into_response();
    }
    let err = ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_config",
        format!(
            "the configuration was not reloaded: {} problem(s); the configuration in force is unchanged",
            report.errors.len()
        ),
    );
    err.with("reload", json!(report)).into_response()
}

/// Tools of one server as JSON objects: the server's own tool object plus `server` and
/// `qualifiedName`, the one name the catalog gives it (the name `/mcp` shows and
/// `POST /api/v1/tools/call` takes).
fn tools_of(st: &AppState, slot: &crate::state::ServerSlot) -> Vec<Value> {
    let Some(index) = st.catalog.slot(&slot.config.id) else {
        return Vec::new();
    };
    st.catalog
        .snapshot()
        .server_tools(index)
        .map(|t| {
            let mut v: Value =
                serde_json::from_str(t.raw.get()).unwrap_or_else(|_| json!({"name": &*t.tool}));
            v["server"] = json!(slot.config.id);
            v["qualifiedName"] = json!(&*t.name);
            v
        })
        .collect()
}

struct ToolFilter {
    server: Option<String>,
    tag: Option<String>,
}

type QueryResult = Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>;

/// Query parameters as a map; unknown or repeated names are refused so a typo never
/// silently matches everything.
fn query_params(q: QueryResult, allowed: &[&str]) -> Result<BTreeMap<String, String>, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", m);
    let Query(pairs) = q.map_err(|e| bad(format!("bad query string: {}", e.body_text())))?;
    let mut map = BTreeMap::new();
    for (k, v) in pairs {
        if !allowed.contains(&k.as_str()) {
            return Err(bad(format!(
                "unknown query parameter {k:?}; use {}",
                allowed.join(", ")
            )));
        }
        if map.insert(k.clone(), v).is_some() {
            return Err(bad(format!("query parameter {k:?} given more than once")));
        }
    }
    Ok(map)
}

async fn list_tools(
    State(st): State<AppRef>,
    caller: Caller,
    q: QueryResult,
) -> Result<Json<Value>, ApiError> {
    let identity = caller.as_ref().map(|e| &*e.0);
    let mut m = query_params(q, &["server", "tag"])?;
    let f = ToolFilter {
        server: m.remove("server"),
        tag: m.remove("tag"),
    };
    if let Some(s) = &f.server
        && st.slot(s).is_none()
    {
        return Err(McpError::UnknownServer(s.clone()).into());
    }
    let tools: Vec<Value> = st
        .servers
        .iter()
        .filter(|s| f.server.as_ref().is_none_or(|id| &s.config.id == id))
        .filter(|s| f.tag.as_ref().is_none_or(|t| s.config.tags.contains(t)))
        .flat_map(|s| tools_of(&st, s))
        .filter(|t| {
            let (server, name) = (
                t["server"].as_str().unwrap_or(""),
                t["name"].as_str().unwrap_or(""),
            );
            st.allows(identity, server, name)
        })
        .collect();
    Ok(Json(json!({ "tools": tools, "count": tools.len() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallBody<'a> {
    #[serde(borrow)]
    tool: Cow<'a, str>,
    #[serde(default)]
    server: Option<String>,
    #[serde(default, borrow)]
    arguments: Option<&'a RawValue>,
}

/// A request body, bounded as every body the API reads: at most `maxBodyBytes`, arriving
/// within `bodyTimeout`, nested at most `maxJsonDepth` deep (checked before it is parsed).
pub(crate) async fn read_body(
    st: &AppState,
    body: axum::body::Body,
) -> Result<bytes::Bytes, ApiError> {
    use mcp_gateway_core::body::{BodyError, nested_deeper_than, read_limited};
    let bytes = read_limited(body, st.config.max_body_bytes)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "request body exceeds {} bytes (maxBodyBytes)",
                    st.config.max_body_bytes
                ),
            ),
            BodyError::TimedOut(d) => ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "the request body did not arrive within {} ms (bodyTimeout)",
                    d.as_millis()
                ),
            ),
            BodyError::Read(e) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("could not read body: {e}"),
            ),
        })?;
    if nested_deeper_than(&bytes, st.config.max_json_depth) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!(
                "the body nests arrays and objects more than {} levels deep (maxJsonDepth)",
                st.config.max_json_depth
            ),
        ));
    }
    Ok(bytes)
}

/// The caller established by an authentication layer, if any.
pub(crate) type Caller = mcp_gateway_mcp_server::Caller;

pub(crate) async fn call_tool(
    State(st): State<AppRef>,
    caller: Caller,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    // The request whole rather than a `HeaderMap` extractor, which would copy every header
    // for the two this handler reads.
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let bytes = read_body(&st, body).await?;
    if bytes.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            r#"empty body; send {"tool": "<name>", "arguments": {...}}"#,
        ));
    }
    let body: CallBody<'_> = serde_json::from_slice(&bytes).map_err(|e| {
        let code = if e.is_syntax() || e.is_eof() { "malformed_json" } else { "invalid_request" };
        ApiError::new(
            StatusCode::BAD_REQUEST,
            code,
            format!(r#"{e}; expected {{"tool": "<name>", "server": "<id>" (optional), "arguments": {{...}}}}"#),
        )
    })?;
    if let Some(a) = body.arguments
        && !a.get().trim_start().starts_with('{')
        && a.get().trim() != "null"
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "\"arguments\" must be a JSON object",
        ));
    }
    let args = body.arguments.filter(|a| a.get().trim() != "null");
    let mut req = McpRequest::call_tool(&body.tool, args);
    if let Some(s) = &body.server {
        req.server = Some(Arc::from(s.as_str()));
    }
    req.identity = caller.map(|axum::Extension(i)| i);
    req.transport = "rest";
    let span = tracing::debug_span!(
        "tools/call",
        transport = "rest",
        tool = %body.tool,
        server = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        outcome = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    // Continue the caller's W3C trace to the upstream; the HTTP request's span already took
    // the header as its parent.
    let trace = crate::telemetry::continue_trace(
        &span,
        headers.get("traceparent").and_then(|v| v.to_str().ok()),
        false,
    );
    if let Some(t) = &trace {
        span.record("trace_id", t.trace_id());
    }
    req.ids = mcp_gateway_metrics::RequestIds {
        request_id: headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(128).collect()),
        trace_id: trace.as_ref().map(|t| t.trace_id().to_string()),
    };
    if let Some(t) = trace {
        req.extensions.insert(t);
    }
    let res = tracing::Instrument::instrument(st.mcp.clone().oneshot(req), span.clone()).await;
    span.record("outcome", res.as_ref().map_or_else(|e| e.code(), |_| "ok"));
    if res.is_err() {
        span.record("otel.status_code", "error");
    }
    let res = res?;
    let server = res.server.as_deref().unwrap_or("-");
    span.record("server", server);
    // The tool result is spliced in raw, never parsed.
    const SERVER: &[u8] = br#"{"server":"#;
    const TOOL: &[u8] = br#","tool":"#;
    const RESULT: &[u8] = br#","result":"#;
    let result = res.result.get().as_bytes();
    // Exact when the names need no escapes: a body whose length equals its capacity
    // becomes `Bytes` without another allocation.
    let len = SERVER.len() + server.len() + 2 + TOOL.len() + body.tool.len() + 2;
    let mut out = Vec::with_capacity(len + RESULT.len() + result.len() + 1);
    out.extend_from_slice(SERVER);
    serde_json::to_writer(&mut out, server).expect("vec write");
    out.extend_from_slice(TOOL);
    serde_json::to_writer(&mut out, &body.tool).expect("vec write");
    out.extend_from_slice(RESULT);
    out.extend_from_slice(result);
    out.push(b'}');
    let json = HeaderValue::from_static("application/json");
    Ok(([(header::CONTENT_TYPE, json)], out).into_response())
}

/// What `/api/v1/health` says about scale-out (`null` when no `cluster:` is configured).
fn cluster_summary(st: &AppState) -> Value {
    if !st.cluster.enabled {
        return Value::Null;
    }
    json!({
        "sealedSessions": st.cluster.seals(),
        "redis": st.cluster.has_bus(),
    })
}

/// Width of a `?bucket=` in minutes.
fn bucket_minutes(b: &str) -> Option<u64> {
    let (n, unit) = b.split_at(b.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = n.parse().ok().filter(|n| *n > 0)?;
    match unit {
        "m" => Some(n),
        "h" => n.checked_mul(60),
        "d" => n.checked_mul(1440),
        _ => None,
    }
}

fn prometheus_disabled() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "disabled",
        "Prometheus metrics are off (monitor.prometheus: false); GET /api/v1/metrics serves JSON",
    )
    .into_response()
}

async fn metrics(
    State(st): State<AppRef>,
    caller: Caller,
    q: QueryResult,
    headers: HeaderMap,
) -> Response {
    if non_admin(&st, &caller).is_some() {
        return admin_only("the metrics cover every caller's calls").into_response();
    }
    let (format, bucket, server, tool, totals) =
        match query_params(q, &["format", "bucket", "server", "tool", "totals"]) {
            Ok(mut m) => (
                m.remove("format"),
                m.remove("bucket"),
                m.remove("server"),
                m.remove("tool"),
                m.remove("totals"),
            ),
            Err(e) => return e.into_response(),
        };
    let totals = match totals.as_deref() {
        None | Some("0" | "false") => false,
        Some("1" | "true") => true,
        Some(t) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("totals={t:?}: use 1 or 0"),
            )
            .into_response();
        }
    };
    if let Some(f) = format
        .as_deref()
        .filter(|f| !matches!(*f, "prometheus" | "json"))
    {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("format={f:?}: use json or prometheus"),
        )
        .into_response();
    }
    let bucket = match bucket.as_deref().map(|b| (b, bucket_minutes(b))) {
        None => None,
        Some((_, Some(m))) => Some(m),
        Some((b, None)) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("bucket={b:?}: use a width such as 1m, 5m, 15m, 1h or 1d"),
            )
            .into_response();
        }
    };
    let wants_text = format.as_deref() == Some("prometheus")
        || (format.is_none()
            && headers
                .get(header::ACCEPT)
                .and_then(|a| a.to_str().ok())
                .is_some_and(|a| a.contains("text/plain") && !a.contains("application/json")));
    if wants_text {
        if !st.config.monitor.prometheus {
            return prometheus_disabled();
        }
        return prometheus_text(&st);
    }
    let snap = st.recorder.snapshot();
    let mut v = serde_json::to_value(&snap).unwrap_or(Value::Null);
    // `totals=1`: the gateway's own numbers only, without a series per server and tool
    // (a dashboard's overview polls this; with a thousand tools the breakdown is most of
    // the answer).
    let window = if totals {
        if let Some(o) = v.as_object_mut() {
            o.remove("servers");
            o.remove("tools");
            o.remove("methods");
        }
        st.recorder.window_totals(bucket)
    } else {
        st.recorder
            .window(bucket, server.as_deref(), tool.as_deref())
    };
    v["window"] = serde_json::to_value(window).unwrap_or(Value::Null);
    v["mcpSessions"] = json!(st.mcp_sessions());
    v["requestLog"] = json!({
        "enabled": st.recorder.log().enabled(),
        "entries": st.recorder.log().len(),
    });
    v["replica"] = json!(st.cluster.replica);
    Json(v).into_response()
}

fn prometheus_text(st: &AppState) -> Response {
    let Some(exporter) = &st.exporter else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the metrics exporter could not be built (see the gateway's log)",
        )
        .into_response();
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        exporter.render(),
    )
        .into_response()
}

async fn prometheus(State(st): State<AppRef>) -> Response {
    if !st.config.monitor.prometheus {
        return prometheus_disabled();
    }
    prometheus_text(&st)
}

async fn requests(
    State(st): State<AppRef>,
    caller: Caller,
    q: QueryResult,
) -> Result<Json<Value>, ApiError> {
    let q = query_params(q, &["server", "tool", "status", "since", "limit", "after"])?;
    let bad = |k: &str, v: &str| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("query parameter {k}={v:?} must be a non-negative integer"),
        )
    };
    let mut query = LogQuery::default();
    for (k, v) in &q {
        match k.as_str() {
            "server" => query.server = Some(v.clone()),
            "tool" => query.tool = Some(v.clone()),
            "status" => query.status = Some(v.clone()),
            "since" => query.since = Some(v.parse().map_err(|_| bad(k, v))?),
            "limit" => query.limit = Some(v.parse().map_err(|_| bad(k, v))?),
            "after" => query.after = Some(v.parse().map_err(|_| bad(k, v))?),
            other => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!(
                        "unknown query parameter {other:?}; use server, tool, status, since (seconds), after (an id) or limit"
                    ),
                ));
            }
        }
    }
    // A caller without an admin role sees their own calls only.
    if let Some(who) = non_admin(&st, &caller) {
        query.subject = Some(who.subject.clone());
    }
    let log = st.recorder.log();
    let entries = log.query(&query);
    Ok(Json(json!({
        "enabled": log.enabled(),
        "count": entries.len(),
        "requests": entries,
    })))
}
