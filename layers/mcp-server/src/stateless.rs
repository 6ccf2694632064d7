//! The stateless revision 2026-07-28: envelope and mirrored-header checks, `resultType`
//! and `serverInfo` on results, and `subscriptions/listen`.

use super::*;

/// Validates a 2026-07-28 request's envelope and mirrored headers before anything is routed.
pub(crate) fn check_stateless(
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
    // A routing header sent twice is ambiguous: which copy did access control see?
    for name in ["mcp-protocol-version", "mcp-method", "mcp-name"] {
        if headers.get_all(name).iter().nth(1).is_some() {
            return Err(mismatch(format!("{name} header is repeated")));
        }
    }
    let Some(version) = version else {
        return Err(invalid(format!(
            "params._meta must carry {:?}",
            protocol::META_PROTOCOL_VERSION
        )));
    };
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
        "tools/call" | "prompts/get" => Some(env.and_then(|e| e.name.as_deref())),
        "resources/read" => Some(env.and_then(|e| e.uri.as_deref())),
        _ => None,
    };
    if let Some(body_name) = body_name {
        let header_name = match headers.get("mcp-name") {
            None => return Err(mismatch("Mcp-Name header is missing".into())),
            Some(v) => mcp_gateway_core::param_headers::decode(v)
                .ok_or_else(|| mismatch("Mcp-Name header is not valid".into()))?,
        };
        if Some(header_name.as_str()) != body_name {
            return Err(mismatch(format!(
                "Mcp-Name header value {header_name:?} does not match body value {:?}",
                body_name.unwrap_or("")
            )));
        }
    }
    Ok(())
}

/// Refuses a 2026-07-28 request for a protocol version the gateway does not speak (-32022).
/// Judged last, once every header agrees with the body (as the spec's reference SDK does):
/// a mismatch is the more specific fault.
pub(crate) fn check_version(id: Option<&RequestId>, version: &str) -> Result<(), Reject> {
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
    Ok(())
}

/// Validates the `Mcp-Param-*` headers of a 2026-07-28 `tools/call` against its arguments,
/// for a tool whose input schema carries `x-mcp-header` annotations: the gateway reads the
/// body, so the spec makes it check that the headers (which proxies in front may route on)
/// say the same. Tools without annotations cost one lookup and a substring scan.
pub(crate) fn check_param_headers<S: McpService>(
    ep: &Endpoint<S>,
    headers: &HeaderMap,
    id: Option<&RequestId>,
    env: Option<&Envelope<'_>>,
) -> Result<(), Reject> {
    let Some(name) = env.and_then(|e| e.name.as_deref()) else {
        return Ok(());
    };
    let snapshot = ep.catalog.snapshot();
    let Some(tool) = snapshot.get(name) else {
        return Ok(()); // unknown tools are refused by the router
    };
    // A tool with broken annotations was kept out of the catalog by the upstream.
    let Ok(annotated) = mcp_gateway_core::param_headers::tool_headers(&tool.raw) else {
        return Ok(());
    };
    if annotated.is_empty() {
        return Ok(());
    }
    mcp_gateway_core::param_headers::validate(headers, env.and_then(|e| e.arguments), &annotated)
        .map_err(|m| {
            Reject(
                StatusCode::BAD_REQUEST,
                id.cloned(),
                JsonRpcError::new(jsonrpc::HEADER_MISMATCH, format!("Header mismatch: {m}")),
            )
        })
}

/// The HTTP status of a JSON-RPC error answered as JSON on the 2026-07-28 transport: the
/// spec's 400 for malformed requests, header mismatches, missing client capabilities and
/// unsupported versions, 404 for an unknown method, and 200 for the rest (as the
/// reference SDK maps them, so a client sees the same status through the gateway).
pub(crate) fn stateless_status(code: i64) -> StatusCode {
    match code {
        jsonrpc::PARSE_ERROR
        | jsonrpc::INVALID_REQUEST
        | jsonrpc::INVALID_PARAMS
        | jsonrpc::HEADER_MISMATCH
        | jsonrpc::MISSING_REQUIRED_CLIENT_CAPABILITY
        | jsonrpc::UNSUPPORTED_PROTOCOL_VERSION => StatusCode::BAD_REQUEST,
        jsonrpc::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    }
}

pub(crate) fn server_info() -> Value {
    json!({"name": "mcp-gateway", "version": env!("CARGO_PKG_VERSION")})
}

/// Adds what every 2026-07-28 result carries: `resultType` (when the upstream, an older
/// server, did not) and the gateway's `serverInfo` when there is no `_meta` yet.
pub(crate) fn stateless_result(result: Box<RawValue>) -> Box<RawValue> {
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

/// An error as a 2026-07-28 client may receive it. That revision retired `-32002` (resource
/// not found, now `-32602`) and forbids emitting it: a server's own `-32002` goes out as
/// `-32602`, and the gateway's "server unavailable" (the same number, marked by its `data`)
/// as an internal error (`-32603`) that keeps that `data`.
pub(crate) fn stateless_error(mut e: JsonRpcError) -> JsonRpcError {
    if e.code == mcp_gateway_core::jsonrpc::gateway::UPSTREAM_UNAVAILABLE {
        let ours = e
            .data
            .as_ref()
            .is_some_and(|d| d.get().contains("upstream_unavailable"));
        e.code = if ours {
            jsonrpc::INTERNAL_ERROR
        } else {
            jsonrpc::INVALID_PARAMS
        };
    }
    e
}

/// `result` with `"ttlMs":0,"cacheScope":"private"` (fresh for no time, for this caller
/// only: the safe reading of a result that says nothing) unless it carries a `ttlMs`.
pub(crate) fn with_cache_hints(result: Box<RawValue>) -> Box<RawValue> {
    let text = result.get();
    if text.contains("\"ttlMs\"") {
        return result;
    }
    let Some(rest) = text.trim_start().strip_prefix('{') else {
        return result;
    };
    let sep = if rest.trim_start().starts_with('}') {
        ""
    } else {
        ","
    };
    RawValue::from_string(format!(r#"{{"ttlMs":0,"cacheScope":"private"{sep}{rest}"#))
        .unwrap_or(result)
}

/// Most resources one `subscriptions/listen` stream follows.
const MAX_LISTEN_URIS: usize = 256;

/// `subscriptions/listen`: subscribes the stream to the resources it names (as its caller:
/// access rules apply), acknowledges what the gateway can honour, then keeps the stream
/// open with `notifications/tools/list_changed` and `notifications/resources/updated`,
/// each tagged with the subscription id.
pub(crate) fn listen<S: McpService>(
    ep: &Arc<Endpoint<S>>,
    id: RequestId,
    params: Option<&RawValue>,
    who: Option<Arc<Identity>>,
) -> Response {
    let wanted = params
        .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
        .and_then(|v| v.get("notifications").cloned())
        .unwrap_or(Value::Null);
    let wants_tools = wanted
        .get("toolsListChanged")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let uris: Vec<String> = wanted
        .get("resourceSubscriptions")
        .and_then(Value::as_array)
        .map(|a| {
            // Bounded: each URI is a subscription upstream. The acknowledgement names the
            // ones followed, so a client sees which were left out.
            a.iter()
                .filter_map(|u| u.as_str().map(String::from))
                .take(MAX_LISTEN_URIS)
                .collect()
        })
        .unwrap_or_default();
    let meta = json!({ "io.modelcontextprotocol/subscriptionId": id });
    let (tx, rx) = mpsc::channel(64);
    let mut changes = ep.catalog.subscribe();
    let shutdown = ep.shutdown.clone();
    let ep = ep.clone();
    tokio::spawn(async move {
        let mut honored = serde_json::Map::new();
        if wants_tools {
            honored.insert("toolsListChanged".into(), Value::Bool(true));
        }
        if !uris.is_empty() {
            let followed = subscriptions::listen(&ep, &tx, &id, &uris, who.as_ref()).await;
            honored.insert("resourceSubscriptions".into(), json!(followed));
        }
        // A long-lived stream holds on to what every configuration shares, not to this
        // one: a reload's new endpoint takes over, and this one can be let go.
        let shared = ep.shared.clone();
        drop(ep);
        let ack = jsonrpc::notification_frame(
            "notifications/subscriptions/acknowledged",
            Some(&json!({"notifications": honored, "_meta": meta}).to_string()),
        );
        if tx.send(sse_event(&ack)).await.is_ok() {
            let note = jsonrpc::notification_frame(
                "notifications/tools/list_changed",
                Some(&json!({"_meta": meta}).to_string()),
            );
            let mut tick = tokio::time::interval(KEEPALIVE);
            loop {
                tokio::select! {
                    r = changes.recv(), if wants_tools => match r {
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            if tx.send(sse_event(&note)).await.is_err() { break }
                        }
                        Err(_) => break,
                    },
                    _ = tick.tick() => if tx.send(Bytes::from_static(b":\n\n")).await.is_err() { break },
                    _ = tx.closed() => break,
                    _ = shutdown.cancelled() => break,
                }
            }
        }
        // The stream is gone: its subscriptions are released upstream.
        drop(tx);
        if !uris.is_empty()
            && let Some(ep) = shared.current()
        {
            subscriptions::sweep(&ep).await;
        }
    });
    sse_response(rx, None)
}
