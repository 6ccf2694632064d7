//! The legacy HTTP+SSE transport (2024-11-05): `GET /sse` and `POST /messages`.

use super::*;

// ---------------------------------------------------------------------------------------
// Legacy HTTP+SSE (2024-11-05)

pub(crate) async fn get_sse<S: McpService>(
    State(ep): State<Arc<Endpoint<S>>>,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    if !origin_allowed(&ep.options, &headers) {
        return forbidden_origin();
    }
    let owner = caller.map(|axum::Extension(i)| i.subject.clone());
    let sealed = ep.cluster.seal("2024-11-05", owner.as_deref(), false, true);
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
pub(crate) struct MessagesQuery {
    #[serde(rename = "sessionId")]
    pub(crate) session_id: Option<String>,
}

pub(crate) async fn post_messages<S: McpService>(
    State(ep): State<Arc<Endpoint<S>>>,
    caller: Caller,
    Query(q): Query<MessagesQuery>,
    req: axum::extract::Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    if !origin_allowed(&ep.options, &headers) {
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
        Replica(mcp_gateway_cluster::SessionState),
    }
    let holder = match ep.sessions.get(sid, owner).filter(|s| s.legacy) {
        Some(s) => Holder::Here(s),
        // The stream may be held by another replica: the message is handed over.
        None => match ep
            .cluster
            .peek(sid, owner)
            .filter(|s| s.legacy && s.replica != ep.cluster.replica)
        {
            Some(state) => Holder::Replica(state),
            None => return unknown(),
        },
    };
    let body = match read_body(&ep.options, body).await {
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
        .cluster
        .publish(mcp_gateway_cluster::BusMessage::Message {
            session: mcp_gateway_cluster::tag(sid),
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
pub(crate) async fn legacy_message<S: McpService>(
    ep: Arc<Endpoint<S>>,
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
                caps: session.relay_capabilities(),
                log_level: session.log_level(),
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
