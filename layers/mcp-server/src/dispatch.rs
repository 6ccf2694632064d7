//! `POST /mcp`: one JSON-RPC message in, routed to the stateless or the session transport,
//! and the dispatch of every request method to its handler.

use super::*;

#[derive(Deserialize)]
pub(crate) struct Envelope<'a> {
    #[serde(default, rename = "_meta", borrow)]
    pub(crate) meta: Option<BTreeMap<Cow<'a, str>, &'a RawValue>>,
    #[serde(default, borrow)]
    pub(crate) name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) uri: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) arguments: Option<&'a RawValue>,
}

/// Reads a request body of at most `maxBodyBytes`; a larger one is refused with a 413 and a
/// JSON-RPC error naming the limit.
pub(crate) async fn read_body(options: &EndpointOptions, body: Body) -> Result<Bytes, Response> {
    let limit = options.max_body_bytes;
    let bytes = mcp_gateway_core::body::read_limited(body, limit)
        .await
        .map_err(|e| {
            let (status, why) = match e {
                BodyError::TooLarge => (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body exceeds {limit} bytes (maxBodyBytes)"),
                ),
                BodyError::TimedOut(d) => (
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request body did not arrive within {} ms (bodyTimeout)",
                        d.as_millis()
                    ),
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
        })?;
    if mcp_gateway_core::body::nested_deeper_than(&bytes, options.max_json_depth) {
        return Err(rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            JsonRpcError::new(
                jsonrpc::INVALID_REQUEST,
                format!(
                    "the request nests arrays and objects more than {} levels deep (maxJsonDepth)",
                    options.max_json_depth
                ),
            ),
        ));
    }
    Ok(bytes)
}

/// `POST /mcp`: the handler [`routes`] serves, for a front end that routes requests itself.
pub async fn post_mcp<S: McpService>(
    State(ep): State<Arc<Endpoint<S>>>,
    caller: Caller,
    req: axum::extract::Request,
) -> Response {
    // The request whole: a `HeaderMap` extractor copies every header, and the `Bytes`
    // extractor applies axum's own 2 MiB limit instead of `maxBodyBytes`.
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    let identity = caller.map(|axum::Extension(i)| i);
    if !origin_allowed(&ep.options, &headers) {
        return forbidden_origin();
    }
    let body = match read_body(&ep.options, body).await {
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
    // A request is of the stateless generation when its envelope or its version header says
    // so; `initialize` too (it then gets the spec's 404: the method is gone in 2026-07-28).
    let stateless =
        meta_version.is_some() || header_version.is_some_and(|v| !protocol::is_session_version(v));

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
        if method == "tools/call"
            && let Err(resp) =
                check_param_headers(&ep, &headers, msg.id.as_ref(), envelope.as_ref())
        {
            return resp.into_response();
        }
        if let Err(resp) = check_version(msg.id.as_ref(), meta_version.as_deref().unwrap_or("")) {
            return resp.into_response();
        }
        let Some(id) = msg.id else {
            // No client notifications are defined for this revision; accept and ignore.
            return StatusCode::ACCEPTED.into_response();
        };
        let caps = envelope
            .as_ref()
            .and_then(|e| e.meta.as_ref())
            .and_then(|m| m.get(protocol::META_CLIENT_CAPABILITIES))
            .and_then(|c| mcp_gateway_core::relay::relayable_capabilities(c.get()));
        let ctx = Ctx {
            stateless: true,
            session: None,
            identity,
            can_ask: caps.is_some(),
            caps,
            log_level: envelope
                .as_ref()
                .and_then(|e| e.meta.as_ref())
                .and_then(|m| m.get(protocol::META_LOG_LEVEL))
                .and_then(|v| serde_json::from_str::<&str>(v.get()).ok())
                .and_then(LogLevel::parse),
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
            // Log messages can only come from a server that declared `logging`: a call to
            // any other keeps the plain JSON path (no stream, no relay registered).
            let logs = method == "tools/call"
                && envelope
                    .as_ref()
                    .and_then(|e| e.name.as_deref())
                    .and_then(|n| ep.catalog.snapshot().get(n).map(|t| t.slot))
                    .is_some_and(|slot| ep.catalog.logs(slot));
            let ctx = Ctx {
                stateless: false,
                can_ask: session.can_relay(),
                caps: session.relay_capabilities(),
                log_level: session.log_level().filter(|_| logs),
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

// ---------------------------------------------------------------------------------------
// Dispatch

pub(crate) struct Ctx {
    pub(crate) stateless: bool,
    pub(crate) session: Option<Arc<Session>>,
    pub(crate) identity: Option<Arc<mcp_gateway_core::Identity>>,
    /// The client can answer sampling / elicitation requests relayed from upstreams.
    pub(crate) can_ask: bool,
    /// The least severe log message the client wants (`None`: none at all).
    pub(crate) log_level: Option<LogLevel>,
    /// What of the client's capabilities a 2026-07-28 upstream is told (see
    /// [`mcp_gateway_core::relay::relayable_capabilities`]).
    pub(crate) caps: Option<Arc<str>>,
    /// The caller's W3C trace to continue (from `traceparent` or `_meta.traceparent`).
    pub(crate) trace: Option<CallerTrace>,
}

/// A caller's `traceparent` and where it came from.
pub(crate) struct CallerTrace {
    pub(crate) value: String,
    /// From `_meta`: the HTTP request's span has not seen it.
    pub(crate) from_meta: bool,
}

/// The trace to continue: the `traceparent` header, else `_meta.traceparent`.
pub(crate) fn trace_of(
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

/// Answers one request: JSON for simple answers, an SSE stream when there is something to
/// send before the result (progress, log messages, relayed server requests) or for
/// `subscriptions/listen`.
pub(crate) async fn answer<S: McpService>(
    ep: &Arc<Endpoint<S>>,
    ctx: Ctx,
    id: RequestId,
    method: &str,
    params: Option<&RawValue>,
) -> Response {
    if ctx.stateless && method == "subscriptions/listen" {
        return listen(ep, id, params, ctx.identity);
    }
    let relayable = method == "tools/call";
    let wants_progress = relayable && params.is_some_and(|p| p.get().contains("\"progressToken\""));
    let retry = ctx.stateless && relayable && mrtr::is_retry(params);
    // A 2026-07-28 client asks for log messages per request; a session client gets them
    // from servers that log, so its calls to those take the path that can stream (and
    // answer JSON when nothing came before the result).
    let wants_logs = relayable && ctx.log_level.is_some();
    if !(wants_progress || retry || wants_logs || (relayable && ctx.can_ask)) {
        return match dispatch(ep, &ctx, &id, method, params, None).await {
            Ok(r) => json_response(StatusCode::OK, jsonrpc::result_frame(&id, r.get())),
            Err(e) => {
                let status = match ctx.stateless {
                    true => stateless_status(e.code),
                    false => StatusCode::OK,
                };
                rpc_error(status, Some(&id), e)
            }
        };
    }
    if ctx.stateless {
        // Requests from upstreams become `input_required` results (MRTR); progress and log
        // messages, when asked for, stream first.
        let streams = wants_progress || wants_logs;
        let owner = ctx.identity.as_ref().map(|i| i.subject.clone());
        let level = ctx.log_level;
        let (tx, rx) = mpsc::channel(64);
        let mut notify = move |frame: Vec<u8>| -> bool {
            !streams || tx.try_send(sse_event(&frame)).is_ok() || !tx.is_closed()
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
            if streams {
                // Stream: drive in the background so notifications flow while it runs.
                // An error before any event is answered as JSON with its HTTP status.
                let ep = ep.clone();
                let (ftx, frx) = mpsc::channel(64);
                tokio::spawn(async move {
                    let mut notify = |frame: Vec<u8>| {
                        ftx.try_send(Streamed::Event(sse_event(&frame))).is_ok() || !ftx.is_closed()
                    };
                    let last = match mrtr::drive(&ep, running, owner, level, &mut notify).await {
                        mrtr::Outcome::Done(r) => r,
                        mrtr::Outcome::InputRequired(r) => Ok(stateless_result(r)),
                    };
                    let _ = ftx.send(Streamed::Last(last)).await;
                });
                return lazy_answer(frx, id, true).await;
            }
            mrtr::drive(ep, running, owner, level, &mut notify).await
        };
        drop(rx);
        return match outcome {
            mrtr::Outcome::Done(Ok(r)) => {
                json_response(StatusCode::OK, jsonrpc::result_frame(&id, r.get()))
            }
            mrtr::Outcome::Done(Err(e)) => rpc_error(stateless_status(e.code), Some(&id), e),
            mrtr::Outcome::InputRequired(r) => json_response(
                StatusCode::OK,
                jsonrpc::result_frame(&id, stateless_result(r).get()),
            ),
        };
    }
    // Session generation: progress, log messages and relayed server requests go on an SSE
    // answer before the result. The answer becomes a stream only when the first of them
    // arrives; a call that sends none is answered with plain JSON.
    let (tx, rx) = mpsc::channel::<Streamed>(64);
    let task_ep = ep.clone();
    let params = params.map(ToOwned::to_owned);
    let method = method.to_string();
    let task_id = id.clone();
    tokio::spawn(async move {
        let (ep, id) = (task_ep, task_id);
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
                        && tx.send(Streamed::Event(frame)).await.is_err() {
                            return; // client went away: dropping `call` cancels upstream
                        }
                }
            }
        };
        while let Ok(m) = relay.try_recv() {
            if let Some(frame) = relay_frame(&session, ctx.can_ask, m) {
                let _ = tx.send(Streamed::Event(frame)).await;
            }
        }
        let _ = tx.send(Streamed::Last(result)).await;
    });
    lazy_answer(rx, id, false).await
}

/// The answer to a call whose messages arrive on `rx`: plain JSON when the result comes
/// first (an error then gets its HTTP status: the 2026-07-28 one when `stateless`), an event
/// stream from the first message before it on.
async fn lazy_answer(mut rx: mpsc::Receiver<Streamed>, id: RequestId, stateless: bool) -> Response {
    match rx.recv().await {
        Some(Streamed::Last(Ok(r))) => {
            json_response(StatusCode::OK, jsonrpc::result_frame(&id, r.get()))
        }
        Some(Streamed::Last(Err(e))) => {
            let status = match stateless {
                true => stateless_status(e.code),
                false => StatusCode::OK,
            };
            rpc_error(status, Some(&id), e)
        }
        Some(Streamed::Event(first)) => {
            let events =
                futures::stream::unfold((Some(first), rx, id), |(first, mut rx, id)| async move {
                    let bytes = match first {
                        Some(b) => b,
                        None => match rx.recv().await? {
                            Streamed::Event(b) => b,
                            Streamed::Last(Ok(r)) => {
                                sse_event(&jsonrpc::result_frame(&id, r.get()))
                            }
                            Streamed::Last(Err(e)) => {
                                sse_event(&jsonrpc::error_frame(Some(&id), &e))
                            }
                        },
                    };
                    Some((Ok::<_, Infallible>(bytes), (None, rx, id)))
                });
            sse_stream_response(Body::from_stream(events))
        }
        None => rpc_error(
            StatusCode::OK,
            Some(&id),
            JsonRpcError::new(jsonrpc::INTERNAL_ERROR, "the call was dropped"),
        ),
    }
}

/// What a call sends its client: events before the result, then the result itself.
enum Streamed {
    Event(Bytes),
    Last(Result<Box<RawValue>, JsonRpcError>),
}

/// Runs one request and returns its raw result or JSON-RPC error.
pub(crate) async fn dispatch<S: McpService>(
    ep: &Arc<Endpoint<S>>,
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
        "ping" if !ctx.stateless => Ok(raw(&json!({}))),
        "logging/setLevel" if !ctx.stateless => {
            let r = set_log_level(ctx, params);
            if r.is_ok() {
                aggregate::forward_log_level(ep).await;
            }
            r
        }
        "tools/list" => list_tools(ep, ctx, params),
        "tools/call" => call_tool(ep, ctx, id, params, relay).await,
        "resources/list" | "resources/templates/list" | "prompts/list" => {
            aggregate::list(ep, method, ctx.identity.as_ref()).await
        }
        "prompts/get" => aggregate::get_prompt(ep, params, ctx.identity.as_ref()).await,
        "resources/read" => aggregate::by_uri(ep, method, params, ctx.identity.as_ref()).await,
        // Removed in 2026-07-28 (subscriptions/listen replaces them): 404 there.
        "resources/subscribe" | "resources/unsubscribe" if !ctx.stateless => {
            let session = ctx
                .session
                .as_ref()
                .expect("session-generation requests have a session");
            let uri = params
                .and_then(|p| serde_json::from_str::<Envelope<'_>>(p.get()).ok())
                .and_then(|e| e.uri.map(Cow::into_owned))
                .ok_or_else(|| {
                    JsonRpcError::new(jsonrpc::INVALID_PARAMS, format!("{method} needs a uri"))
                })?;
            let who = ctx.identity.as_ref();
            match method {
                "resources/subscribe" => subscriptions::subscribe(ep, session, &uri, who).await,
                _ => subscriptions::unsubscribe(ep, session, &uri, who).await,
            }
        }
        "completion/complete" => aggregate::complete(ep, params, ctx.identity.as_ref()).await,
        other => Err(JsonRpcError::new(
            jsonrpc::METHOD_NOT_FOUND,
            format!("Method not found: {other}"),
        )),
    };
    let result = match (result, ctx.stateless) {
        (Err(e), true) => return Err(stateless_error(e)),
        (r, _) => r?,
    };
    Ok(match (ctx.stateless, method) {
        // The one cacheable result that passes through from a single server: an older
        // server gives it no freshness hints, which a 2026-07-28 result must carry.
        (true, "resources/read") => stateless_result(with_cache_hints(result)),
        (true, _) => stateless_result(result),
        (false, _) => result,
    })
}

pub(crate) fn list_tools<S: McpService>(
    ep: &Endpoint<S>,
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
    let snapshot = ep.catalog.snapshot();
    let identity = ctx.identity.as_deref();
    let visible: Vec<&mcp_gateway_router::ExposedTool> = snapshot
        .tools()
        .iter()
        .filter(|t| ep.visible(identity, &t.server, &t.tool))
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
    // The catalog announces its changes (list_changed), so the list is not cached for a
    // time; it is shared only while no access rule makes it differ per caller.
    out.push(',');
    out.push_str(
        &aggregate::Freshness {
            ttl_ms: 0,
            public: ep.lists_are_shared(),
        }
        .members(),
    );
    out.push('}');
    Ok(RawValue::from_string(out).expect("built from valid JSON"))
}

pub(crate) async fn call_tool<S: McpService>(
    ep: &Arc<Endpoint<S>>,
    ctx: &Ctx,
    id: &RequestId,
    params: Option<&RawValue>,
    relay: Option<RelaySink>,
) -> Result<Box<RawValue>, JsonRpcError> {
    // A session-generation client cannot read an `input_required` result: the gateway asks
    // it the upstream's questions as server→client requests on its stream and retries for it
    // (2026-07-28 clients get the result as it is and retry themselves).
    let bridge = relay.clone().filter(|_| !ctx.stateless);
    let mut result = call_tool_once(ep, ctx, id, params, relay.clone()).await?;
    let Some(sink) = bridge else {
        return Ok(result);
    };
    for _ in 0..mrtr::MAX_ROUNDS {
        let Some(mut round) = mrtr::InputRound::of(&result) else {
            return Ok(result);
        };
        let state = round.request_state.take();
        let answers = round.ask(&sink).await?;
        let retry = mrtr::retry_params(params, answers, state)?;
        result = call_tool_once(ep, ctx, id, Some(&retry), relay.clone()).await?;
    }
    Err(JsonRpcError::new(
        jsonrpc::INTERNAL_ERROR,
        format!(
            "the server asked for input more than {} times in one call",
            mrtr::MAX_ROUNDS
        ),
    ))
}

/// `logging/setLevel`: the session's calls relay log messages at this level and above
/// (and ask 2026-07-28 upstreams for them at this level, per request); session-generation
/// servers are set to the most verbose level any session wants.
fn set_log_level(ctx: &Ctx, params: Option<&RawValue>) -> Result<Box<RawValue>, JsonRpcError> {
    #[derive(Deserialize)]
    struct SetLevel {
        level: String,
    }
    let level = params
        .and_then(|p| serde_json::from_str::<SetLevel>(p.get()).ok())
        .and_then(|p| LogLevel::parse(&p.level))
        .ok_or_else(|| {
            JsonRpcError::new(
                jsonrpc::INVALID_PARAMS,
                "logging/setLevel needs a level: debug, info, notice, warning, error, critical, alert or emergency",
            )
        })?;
    if let Some(s) = &ctx.session {
        s.set_log_level(level);
    }
    Ok(raw(&json!({})))
}

/// One `tools/call` through the MCP plane.
async fn call_tool_once<S: McpService>(
    ep: &Arc<Endpoint<S>>,
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
    // The router's resolving layer, at the top of the plane, decides the server and the
    // name the server knows, from the one catalog.
    req.identity = ctx.identity.clone();
    if let Some(r) = relay {
        let r = r
            .with_capabilities(ctx.caps.clone())
            .with_log_level(ctx.log_level);
        req.extensions.insert(r);
    }
    let span = tracing::debug_span!(
        "tools/call",
        transport = "mcp",
        tool = %name,
        server = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        outcome = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let trace = crate::continue_trace(
        &span,
        ctx.trace.as_ref().map(|t| t.value.as_str()),
        ctx.trace.as_ref().is_some_and(|t| t.from_meta),
    );
    if let Some(t) = &trace {
        span.record("trace_id", t.trace_id());
    }
    req.ids = mcp_gateway_core::RequestIds {
        request_id: Some(id.to_string()),
        trace_id: trace.as_ref().map(|t| t.trace_id().to_string()),
    };
    if let Some(t) = trace {
        req.extensions.insert(t);
    }
    let call = tracing::Instrument::instrument(ep.mcp.clone().oneshot(req), span.clone());
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
    let server = match &outcome {
        Some(Ok(res)) => res.server.as_deref(),
        Some(Err(e)) => e.server().map(|s| &**s),
        None => None,
    };
    span.record("server", server.unwrap_or("-"));
    match outcome {
        Some(Ok(res)) => Ok(res.result),
        Some(Err(e)) => Err(e.to_jsonrpc()),
        None => Err(JsonRpcError::new(
            REQUEST_CANCELLED,
            "request cancelled by the client",
        )),
    }
}
