//! The session generation of Streamable HTTP (2025-03-26 … 2025-11-25): `initialize`,
//! `Mcp-Session-Id`, the GET stream and DELETE.

use super::*;

/// The session `sid` of `owner`: held here, or adopted from its sealed id.
pub(crate) async fn find_session<S: McpService>(
    ep: &Endpoint<S>,
    sid: &str,
    owner: Option<&str>,
) -> Option<Arc<Session>> {
    if let Some(s) = ep.sessions.get(sid, owner) {
        return Some(s);
    }
    let state = ep.cluster.adopt(sid, owner).await?;
    if state.legacy {
        // A legacy session lives with its SSE stream; only that replica can serve it.
        return None;
    }
    tracing::debug!(replica = %state.replica, "adopted a session opened on another replica");
    Some(ep.sessions.adopt(sid, &state))
}

pub(crate) async fn session_of<S: McpService>(
    ep: &Endpoint<S>,
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

/// Answers `initialize`: negotiates the version and opens a session.
pub(crate) fn initialize<S: McpService>(
    ep: &Endpoint<S>,
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
        ep.cluster.seal(
            &version,
            owner.as_deref(),
            crate::sessions::can_relay(&caps),
            false,
        )
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
// GET / DELETE /mcp (session generation)

pub(crate) async fn get_mcp<S: McpService>(
    State(ep): State<Arc<Endpoint<S>>>,
    caller: Caller,
    headers: HeaderMap,
) -> Response {
    let owner = caller.map(|axum::Extension(i)| i.subject.clone());
    if !origin_allowed(&ep.options, &headers) {
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
pub(crate) fn keepalive_stream(session: &Arc<Session>, first: Vec<Bytes>) -> mpsc::Receiver<Bytes> {
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

pub(crate) async fn delete_mcp<S: McpService>(
    State(ep): State<Arc<Endpoint<S>>>,
    caller: Caller,
    headers: HeaderMap,
) -> Response {
    let owner = caller.map(|axum::Extension(i)| i.subject.clone());
    if !origin_allowed(&ep.options, &headers) {
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
    if here || ep.cluster.adopt(id, owner.as_deref()).await.is_some() {
        // A sealed id must not be adopted again, here or on another replica.
        ep.cluster.revoke(id).await;
        StatusCode::NO_CONTENT.into_response()
    } else {
        rpc_error(
            StatusCode::NOT_FOUND,
            None,
            JsonRpcError::new(jsonrpc::INVALID_REQUEST, "unknown or expired session"),
        )
    }
}
