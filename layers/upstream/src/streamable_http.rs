//! The Streamable HTTP transport (2025-03-26 … 2025-11-25, and the stateless 2026-07-28
//! revision): every outgoing message is its own POST to one endpoint; the answer is a JSON
//! body or an event stream carrying notifications (progress, logs) before the response.
//!
//! Only framing and HTTP live here; id matching, cancellation and `_meta` stay in
//! [`Connection`]. What this module adds:
//!
//! - **Headers.** `Accept: application/json, text/event-stream` on every POST; the
//!   `Mcp-Session-Id` the server gave in its `initialize` answer and `MCP-Protocol-Version`
//!   on every later request; for a stateless server (learned by the supervisor's
//!   `server/discover` probe) no session but `MCP-Protocol-Version`, `Mcp-Method` and
//!   `Mcp-Name` (`params.name` of `tools/call` and `prompts/get`, `params.uri` of
//!   `resources/read`; Base64-sentinel encoded when not header-safe), plus on `tools/call`
//!   an `Mcp-Param-{Name}` header per `x-mcp-header` parameter of the tool (the table the
//!   supervisor builds from the tool list, see `param_headers.rs`). A `HeaderMismatch`
//!   (-32020) answer to a `tools/call` fails that call and makes the supervisor re-list tools.
//! - **Concurrency.** Requests run as independent POSTs on a pooled client, so many calls are
//!   in flight at once. Notifications and our answers to server requests are sent in order.
//!   The POSTs to an `http://` server go through the lean HTTP/1.1 client of `h1.rs`
//!   (measured: 18–29 % less gateway CPU per call than reqwest); `https://` ones, the GET
//!   stream and `DELETE` through reqwest with rustls.
//! - **Errors never hang a call.** A POST that fails, an HTTP error status, a malformed
//!   body or an event stream that ends without the response fails exactly that call with
//!   [`McpError::Upstream`] (or [`McpError::Rpc`] for a 4xx the server explained, which is
//!   also how the `server/discover` probe learns it talks to an older server). A connection
//!   that cannot be established at all closes the link: the supervisor marks the server down
//!   and reconnects with backoff.
//! - **Expired sessions.** A 404 to a request that carried a session id means the server
//!   forgot the session (typically it restarted). The transport repeats the `initialize`
//!   request it saw go out (same params, so the same negotiated version), sends
//!   `notifications/initialized`, retries the call once with the new session, and asks the
//!   supervisor to re-list tools. Doing it here rather than by closing the link keeps every
//!   other in-flight call and the server's "ready" state intact; concurrent 404s share one
//!   re-initialization. If it fails, the link closes and the supervisor starts over.
//! - **Server-initiated messages.** After the handshake of a session server, a GET stream
//!   carries server requests and notifications (405 means the server offers none); it is
//!   reopened with backoff when it drops. Stateless servers have no GET stream.
//! - **Cancellation.** A cancelled call's POST is dropped, which closes its response stream
//!   (the 2026-07-28 cancellation signal); session servers also get `notifications/cancelled`.
//! - **Shutdown** sends `DELETE` with the session id.

use crate::config::{HttpConfig, UpstreamConfig};
use crate::connection::{Connection, Direct, Event, Exchange, NOT_A_CALL};
use crate::h1::{H1Body, H1Client};
use crate::link::{self, Link, NetLink, Opened};
use crate::sse_parse::{
    ChunkSource, SseEvent, SseParser, error_chain, read_events, read_events_into,
};
use bytes::Bytes;
use mcp_gateway_core::McpError;
use mcp_gateway_core::jsonrpc::{self, JsonRpcError, Message, RequestId};
use mcp_gateway_core::param_headers::{self, header_safe};
use mcp_gateway_core::protocol::{self, Generation};
use mcp_gateway_core::redact::redact_url;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{AbortHandle, JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// Largest error body read for a message.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Bound on sending one notification, so a stuck server cannot stall the send queue.
const ONEWAY_TIMEOUT: Duration = Duration::from_secs(10);

// Header names as constants: a name given as `&str` is copied into a new allocation on
// every insert.
const SESSION_HEADER: HeaderName = HeaderName::from_static("mcp-session-id");
const VERSION_HEADER: HeaderName = HeaderName::from_static("mcp-protocol-version");
const METHOD_HEADER: HeaderName = HeaderName::from_static("mcp-method");
const NAME_HEADER: HeaderName = HeaderName::from_static("mcp-name");

/// Opens a Streamable HTTP link to `h.url`. No request is made yet: the supervisor's
/// handshake is the first POST, and its failure says why the server cannot be reached.
pub(crate) fn open(h: &HttpConfig, cfg: &UpstreamConfig) -> Result<Opened, String> {
    let url = reqwest::Url::parse(&h.url)
        .map_err(|e| format!("invalid url {:?}: {e}", redact_url(&h.url)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "url {:?} must be http:// or https://",
            redact_url(&h.url)
        ));
    }
    let (conn, out, events) = link::new_connection(&cfg.id, cfg.max_message_bytes);
    let (fatal, fatal_rx) = mpsc::unbounded_channel();
    let http = Arc::new(Http {
        client: link::http_client()?,
        h1: H1Client::new(&url),
        url,
        headers: link::header_map(h)?,
        conn: conn.clone(),
        session: RwLock::new(None),
        reinit: tokio::sync::Mutex::new(()),
        init_frame: Mutex::new(None),
        get_stream: Mutex::new(None),
        version: OnceLock::new(),
        fatal,
        settled: AtomicBool::new(false),
    });
    let direct: Weak<dyn Direct> = Arc::downgrade(&http) as _;
    conn.set_direct(direct);
    let link = NetLink::spawn(move |stop, closed| http.drive(out, fatal_rx, stop, closed));
    Ok((conn, Link::Net(link), events))
}

/// State shared by the driver and its POST tasks.
struct Http {
    client: reqwest::Client,
    /// The lean client for the POSTs of an `http://` upstream (see `h1.rs`); `None` for
    /// `https://`, whose POSTs go through `client`.
    h1: Option<Arc<H1Client>>,
    url: reqwest::Url,
    headers: HeaderMap,
    conn: Arc<Connection>,
    /// `Mcp-Session-Id` of the current session (session generation only).
    session: RwLock<Option<HeaderValue>>,
    /// Serializes re-initialization after a 404.
    reinit: tokio::sync::Mutex<()>,
    /// The `initialize` request as sent, repeated to renew an expired session.
    init_frame: Mutex<Option<Bytes>>,
    get_stream: Mutex<Option<JoinHandle<()>>>,
    /// `MCP-Protocol-Version` of the negotiated generation, made on the first POST after
    /// the handshake (a connection's generation is set once) instead of on every POST.
    version: OnceLock<Option<HeaderValue>>,
    /// Reasons the link cannot go on (the server cannot be reached), for the driver.
    fatal: mpsc::UnboundedSender<String>,
    /// Set once a session server accepted `notifications/initialized`: from then on requests
    /// no longer need to queue behind the driver's frames (see [`Direct`]).
    settled: AtomicBool,
}

/// Requests are POSTed by the caller's task once the handshake is over. The driver keeps the
/// handshake, notifications and answers to server requests (whose order matters) and the
/// requests sent before the server was ready.
impl Direct for Http {
    fn send_direct(self: Arc<Self>, frame: Bytes) -> Result<Exchange, Bytes> {
        if !(self.settled.load(Ordering::Acquire) || self.stateless()) {
            return Err(frame);
        }
        let head = Head::parse(&frame, self.stateless(), &self.conn);
        if head.request_id.is_none() {
            return Err(frame);
        }
        Ok(Box::pin(async move {
            self.call(frame, head).await;
        }))
    }
}

/// How long a call refused for a header mismatch waits for the tools to be listed anew
/// before its one retry.
const RELIST_WAIT: Duration = Duration::from_secs(10);

/// How many times one call's event stream is resumed after the server closed it early.
const MAX_RESUMES: u32 = 5;
/// Delay before resuming when the server named none (`retry:`).
const RESUME_DELAY: Duration = Duration::from_secs(1);
/// Longest delay before resuming, whatever the server asked for.
const MAX_RESUME_DELAY: Duration = Duration::from_secs(30);

/// What the transport needs to know about an outgoing frame.
#[derive(Debug, Default)]
struct Head {
    /// Id of a request (not of our answers to server requests).
    request_id: Option<u64>,
    method: Option<Cow<'static, str>>,
    /// `Mcp-Name` source (stateless servers only).
    name: Option<String>,
    /// `Mcp-Param-*` headers of a `tools/call` whose tool has `x-mcp-header` annotations
    /// (stateless servers only).
    params: Vec<(HeaderName, HeaderValue)>,
    /// `params.requestId` of a `notifications/cancelled`.
    cancels: Option<u64>,
    /// Headers chosen for this call's caller (per-caller credentials).
    caller: Option<Arc<http::HeaderMap>>,
}

#[derive(Deserialize)]
struct NameParams<'a> {
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    uri: Option<Cow<'a, str>>,
    #[serde(default, rename = "requestId")]
    request_id: Option<RequestId>,
    #[serde(default, borrow)]
    arguments: Option<&'a RawValue>,
}

impl Head {
    /// What the headers of `frame` need; `conn` knows the tools' `x-mcp-header` parameters.
    fn parse(frame: &[u8], stateless: bool, conn: &Connection) -> Head {
        let wants_params = |method: &str| match method {
            "tools/call" | "prompts/get" | "resources/read" => stateless,
            "notifications/cancelled" => true,
            _ => false,
        };
        // Almost every frame is a request the connection wrote itself, and almost none
        // needs its params here: read its id and method off the fixed prefix instead of
        // parsing the whole frame (arguments included) a second time.
        if let Some((id, method)) = request_lead(frame)
            && !wants_params(method)
        {
            return Head {
                caller: conn.take_call_headers(id),
                request_id: Some(id),
                method: Some(protocol::method_text(method)),
                ..Head::default()
            };
        }
        let Ok(msg) = serde_json::from_slice::<Message<'_>>(frame) else {
            return Head::default();
        };
        let method = msg.method.map(|m| protocol::method_text(&m));
        let request_id = match (&method, msg.id) {
            (Some(_), Some(RequestId::Number(n))) if n > 0 => Some(n as u64),
            _ => None,
        };
        let mut head = Head {
            caller: request_id.and_then(|id| conn.take_call_headers(id)),
            request_id,
            method,
            ..Head::default()
        };
        let wants = head.method.as_deref().is_some_and(wants_params);
        if let (true, Some(p)) = (wants, msg.params)
            && let Ok(p) = serde_json::from_str::<NameParams<'_>>(p.get())
        {
            head.name = match head.method.as_deref() {
                Some("resources/read") => p.uri.map(Cow::into_owned),
                _ => p.name.map(Cow::into_owned),
            };
            if let Some(RequestId::Number(n)) = p.request_id {
                head.cancels = u64::try_from(n).ok();
            }
            if let (Some("tools/call"), Some(name)) = (head.method.as_deref(), &head.name) {
                let table = conn.param_headers();
                if let Some(annotated) = table.get(name.as_str()) {
                    head.params = param_headers::render(p.arguments, annotated);
                }
            }
        }
        head
    }

    fn method(&self) -> &str {
        self.method.as_deref().unwrap_or("")
    }
}

impl Http {
    fn stateless(&self) -> bool {
        self.conn.generation().is_some_and(Generation::is_stateless)
    }

    fn session(&self) -> Option<HeaderValue> {
        self.session.read().expect("session lock poisoned").clone()
    }

    fn upstream(&self, reason: impl Into<String>) -> McpError {
        McpError::Upstream {
            server: self.conn.server().clone(),
            reason: reason.into(),
        }
    }

    /// Sends frames until stopped or the server cannot be reached.
    async fn drive(
        self: Arc<Self>,
        mut out: mpsc::UnboundedReceiver<Bytes>,
        mut fatal_rx: mpsc::UnboundedReceiver<String>,
        stop: CancellationToken,
        closed: oneshot::Sender<String>,
    ) {
        let mut calls: JoinSet<u64> = JoinSet::new();
        let mut running: HashMap<u64, AbortHandle> = HashMap::new();
        let fatal = loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break None,
                Some(reason) = fatal_rx.recv() => break Some(reason),
                Some(done) = calls.join_next(), if !calls.is_empty() => {
                    if let Ok(id) = done {
                        running.remove(&id);
                    }
                }
                frame = out.recv() => {
                    let Some(frame) = frame else { break None };
                    let head = Head::parse(&frame, self.stateless(), &self.conn);
                    if let Some(target) = head.cancels {
                        // Dropping the POST closes its response stream: for a stateless
                        // server that *is* the cancellation, and it never gets the notification.
                        if let Some(task) = running.remove(&target) {
                            task.abort();
                        }
                        if self.stateless() {
                            continue;
                        }
                    }
                    match head.request_id {
                        Some(id) => {
                            let task = calls.spawn(self.clone().call(frame, head));
                            running.insert(id, task);
                        }
                        None => {
                            let sent = tokio::time::timeout(ONEWAY_TIMEOUT, self.oneway(&frame, &head)).await;
                            if sent.is_err() {
                                tracing::warn!(server = %self.conn.server(), method = head.method(), "the server took too long to accept a notification");
                            }
                        }
                    }
                }
            }
        };
        calls.abort_all();
        if let Some(task) = self.get_stream.lock().expect("lock poisoned").take() {
            task.abort();
        }
        match fatal {
            Some(reason) => {
                let _ = closed.send(reason);
            }
            None => self.end_session().await,
        }
    }

    /// One request: POST it, hand its answer to the connection, fail it if none came.
    async fn call(self: Arc<Self>, frame: Bytes, head: Head) -> u64 {
        let id = head.request_id.expect("only requests are spawned as calls");
        let mut outcome = self.exchange(&frame, &head).await;
        if matches!(&outcome, Err(McpError::Rpc { error, .. }) if error.code == jsonrpc::HEADER_MISMATCH)
            && head.method() == "tools/call"
        {
            // The tool's `x-mcp-header` annotations may have changed: as the spec asks of a
            // client, re-list the tools and send the call once more with the headers the
            // server now expects.
            let mut listed = self.conn.param_headers_listed();
            listed.borrow_and_update();
            self.conn.emit(Event::ToolsListChanged);
            if tokio::time::timeout(RELIST_WAIT, listed.changed())
                .await
                .is_ok_and(|r| r.is_ok())
            {
                let mut again = Head::parse(&frame, self.stateless(), &self.conn);
                again.caller = head.caller.clone();
                outcome = self.exchange(&frame, &again).await;
            }
        }
        if let Err(e) = outcome {
            self.conn.fail(id, e);
        } else if self.conn.is_pending(id) {
            self.conn.fail(
                id,
                self.upstream("the server's answer did not contain a response to the request"),
            );
        }
        id
    }

    /// POSTs a frame (retrying once after renewing an expired session) and reads the answer.
    async fn exchange(&self, frame: &Bytes, head: &Head) -> Result<(), McpError> {
        let initialize = head.method() == "initialize";
        let mut renewed = false;
        loop {
            let session = if initialize { None } else { self.session() };
            let response = match self.post(frame, head, session.as_ref()).await {
                Ok(r) => r,
                Err(e) => {
                    let why = format!("cannot reach {}: {}", redact_url(self.url.as_str()), e.why);
                    if e.connect {
                        let _ = self.fatal.send(why.clone());
                    }
                    return Err(self.upstream(why));
                }
            };
            if response.status() == StatusCode::NOT_FOUND && session.is_some() {
                if renewed {
                    return Err(self.upstream(
                        "HTTP 404 again after renewing the expired session; giving up on this call",
                    ));
                }
                renewed = true;
                // Boxed, like every path a call rarely takes, to keep the exchange small.
                if let Err(why) = Box::pin(self.reinitialize(session)).await {
                    let why = format!("the session expired and re-initializing failed: {why}");
                    let _ = self.fatal.send(why.clone());
                    return Err(self.upstream(why));
                }
                continue;
            }
            if initialize && response.status().is_success() {
                *self.session.write().expect("session lock poisoned") =
                    response.headers().get(SESSION_HEADER).cloned();
                *self.init_frame.lock().expect("lock poisoned") = Some(frame.clone());
            }
            return self.answer(response, head).await;
        }
    }

    /// Sends a notification or an answer to a server request; only logs failures, since
    /// nobody waits for them.
    async fn oneway(self: &Arc<Self>, frame: &Bytes, head: &Head) {
        let session = self.session();
        let result = self.post(frame, head, session.as_ref()).await;
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                let why = format!("cannot reach {}: {}", redact_url(self.url.as_str()), e.why);
                tracing::warn!(server = %self.conn.server(), method = head.method(), "{why}");
                if e.connect {
                    let _ = self.fatal.send(why);
                }
                return;
            }
        };
        let status = response.status();
        if !status.is_success() {
            let e = self.http_error(response).await;
            tracing::warn!(server = %self.conn.server(), method = head.method(), error = %e, "the server refused a notification");
            return;
        }
        // Read the (normally empty) body to its end, so the connection can be reused.
        let _ = response.bytes(MAX_ERROR_BODY).await;
        if head.method() == "notifications/initialized" {
            self.settled.store(true, Ordering::Release);
        }
        if head.method() == "notifications/initialized" && session.is_some() {
            let mut slot = self.get_stream.lock().expect("lock poisoned");
            if slot.is_none() {
                *slot = Some(tokio::spawn(self.clone().get_stream()));
            }
        }
    }

    /// Keeps the GET stream for server-initiated messages open while the link lives (the
    /// driver aborts this task when it ends).
    async fn get_stream(self: Arc<Self>) {
        const MAX_DELAY: Duration = Duration::from_secs(30);
        let mut delay = Duration::from_secs(1);
        // Kept across reconnections: the next GET resumes after the last event id, after
        // the delay the server asked for.
        let mut parser = SseParser::new(self.conn.max_message());
        loop {
            let mut rb = self
                .client
                .get(self.url.clone())
                .headers(self.headers.clone())
                .header(ACCEPT, "text/event-stream");
            if let Some(last) = parser.last_event_id() {
                rb = rb.header("last-event-id", last);
            }
            if let Some(s) = self.session() {
                rb = rb.header(SESSION_HEADER, s);
            }
            if let Some(g) = self.conn.generation() {
                rb = rb.header(VERSION_HEADER, g.version());
            }
            match rb.send().await {
                Ok(r) if r.status() == StatusCode::METHOD_NOT_ALLOWED => {
                    tracing::debug!(server = %self.conn.server(), "the server offers no GET stream");
                    return;
                }
                Ok(r)
                    if r.status().is_success()
                        && media_is(content_type(&r).as_ref(), "text/event-stream") =>
                {
                    delay = Duration::from_secs(1);
                    parser.next_stream();
                    let ended = read_events_into(r, &mut parser, |ev| {
                        // Messages of the GET stream belong to no call: never relayed as if
                        // they were the call in flight's.
                        if ev.event == "message"
                            && let Err(e) = self.conn.handle_incoming_in(ev.data.as_bytes(), Some(NOT_A_CALL)) {
                                tracing::warn!(server = %self.conn.server(), error = %e, "malformed message on the GET stream");
                            }
                    })
                    .await;
                    if let Some(ms) = parser.retry_ms() {
                        delay = Duration::from_millis(ms).min(MAX_DELAY);
                    }
                    tracing::debug!(server = %self.conn.server(), ?ended, "the GET stream ended; reopening");
                }
                Ok(r) => {
                    tracing::debug!(server = %self.conn.server(), status = %r.status(), "the GET stream was refused");
                }
                Err(e) => {
                    tracing::debug!(server = %self.conn.server(), error = %error_chain(&e), "opening the GET stream failed");
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_DELAY);
        }
    }

    /// Opens the GET that resumes an event stream after event `last` (`Last-Event-ID`), with
    /// the caller's credential headers; `None` when the server does not resume it.
    async fn resume(&self, last: &str, caller: Option<&HeaderMap>) -> Option<reqwest::Response> {
        // The same credentials as the POST it resumes.
        let mut headers = self.headers.clone();
        if let Some(c) = caller {
            replace_headers(&mut headers, c);
        }
        let mut rb = self
            .client
            .get(self.url.clone())
            .headers(headers)
            .header(ACCEPT, "text/event-stream")
            .header("last-event-id", last);
        if let Some(s) = self.session() {
            rb = rb.header(SESSION_HEADER, s);
        }
        if let Some(g) = self.conn.generation() {
            rb = rb.header(VERSION_HEADER, g.version());
        }
        match rb.send().await {
            Ok(r)
                if r.status().is_success()
                    && media_is(content_type(&r).as_ref(), "text/event-stream") =>
            {
                Some(r)
            }
            Ok(r) => {
                tracing::debug!(server = %self.conn.server(), status = %r.status(), "the server did not resume the event stream");
                None
            }
            Err(e) => {
                tracing::debug!(server = %self.conn.server(), error = %error_chain(&e), "resuming the event stream failed");
                None
            }
        }
    }

    /// Sends one POST with every header the server's generation needs: through the lean
    /// HTTP/1.1 client for an `http://` upstream, through reqwest for `https://`.
    async fn post(
        &self,
        frame: &Bytes,
        head: &Head,
        session: Option<&HeaderValue>,
    ) -> Result<Reply, SendError> {
        match &self.h1 {
            Some(h1) => {
                let mut req = h1.request(http::Method::POST, frame.clone());
                self.post_headers(req.headers_mut(), head, session);
                match h1.send(req).await {
                    Ok(r) => Ok(Reply::H1(r)),
                    Err(e) => Err(SendError {
                        connect: e.is_connect(),
                        why: error_chain(&e),
                    }),
                }
            }
            None => {
                let mut headers = HeaderMap::new();
                self.post_headers(&mut headers, head, session);
                // Boxed: reqwest's future is large, and every exchange's state (moved into
                // a box per call) would otherwise have room for it.
                let send = self
                    .client
                    .post(self.url.clone())
                    .headers(headers)
                    .body(frame.clone())
                    .send();
                Box::pin(send)
                    .await
                    .map(Reply::Reqwest)
                    .map_err(|e| SendError {
                        connect: e.is_connect(),
                        why: error_chain(&e),
                    })
            }
        }
    }

    /// Fills in the headers of one POST.
    fn post_headers(&self, h: &mut HeaderMap, head: &Head, session: Option<&HeaderValue>) {
        h.reserve(self.headers.len() + 8);
        replace_headers(h, &self.headers);
        if let Some(caller) = head.caller.as_deref() {
            replace_headers(h, caller);
        }
        h.append(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.append(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        if let Some(s) = session {
            h.append(SESSION_HEADER, s.clone());
        }
        let stateless_headers = |h: &mut HeaderMap, version: Option<HeaderValue>| {
            if let Some(v) = version {
                h.append(VERSION_HEADER, v);
            }
            if let Some(m) = head
                .method
                .as_deref()
                .and_then(|m| HeaderValue::from_str(m).ok())
            {
                h.append(METHOD_HEADER, m);
            }
            if let Some(n) = &head.name {
                h.append(NAME_HEADER, header_safe(n));
            }
            for (name, value) in &head.params {
                h.append(name.clone(), value.clone());
            }
        };
        let negotiated = |g: &Generation| {
            self.version
                .get_or_init(|| HeaderValue::from_str(g.version()).ok())
                .clone()
        };
        match self.conn.generation() {
            Some(g @ Generation::Stateless(_)) => stateless_headers(h, negotiated(g)),
            Some(g @ Generation::Session(_)) => {
                if let Some(v) = negotiated(g) {
                    h.append(VERSION_HEADER, v);
                }
            }
            // The probe of the supervisor's handshake is a 2026-07-28 request.
            None if head.method() == "server/discover" => stateless_headers(
                h,
                Some(HeaderValue::from_static(protocol::STATELESS_VERSION)),
            ),
            None => {}
        }
    }

    /// Hands the messages of a 2xx answer to the connection; an error when the answer is
    /// unusable or ends before the response to a request.
    async fn answer(&self, response: Reply, head: &Head) -> Result<(), McpError> {
        if !response.status().is_success() {
            return Err(Box::pin(self.http_error(response)).await);
        }
        let ctype = content_type(&response);
        if media_is(ctype.as_ref(), "text/event-stream") {
            let mut malformed = None;
            let mut parser = SseParser::new(self.conn.max_message());
            let mut on_event = |ev: SseEvent| {
                if ev.event == "message"
                    && let Err(e) = self
                        .conn
                        .handle_incoming_in(ev.data.as_bytes(), head.request_id)
                {
                    tracing::warn!(server = %self.conn.server(), error = %e, "malformed message in an event stream");
                    malformed = Some(format!("malformed message in the event stream: {e}"));
                }
            };
            let mut ended = read_events_into(response, &mut parser, &mut on_event).await;
            let unanswered = |id: Option<u64>| id.is_some_and(|id| self.conn.is_pending(id));
            // A session-generation server may close the stream before it answers, having
            // given its events ids: the answer then comes on a GET that resumes after the
            // last one (2025-11-25 resumability), after the delay it asked for.
            let mut resumed = 0;
            while unanswered(head.request_id)
                && resumed < MAX_RESUMES
                && !self.stateless()
                && let Some(last) = parser.last_event_id().map(str::to_owned)
            {
                resumed += 1;
                let wait = parser
                    .retry_ms()
                    .map_or(RESUME_DELAY, Duration::from_millis);
                tokio::time::sleep(wait.min(MAX_RESUME_DELAY)).await;
                match self.resume(&last, head.caller.as_deref()).await {
                    Some(r) => {
                        parser.next_stream();
                        ended = read_events_into(r, &mut parser, &mut on_event).await;
                    }
                    None => break,
                }
            }
            let unanswered = unanswered(head.request_id);
            return match (unanswered, ended) {
                (true, Err(why)) => Err(self.upstream(why)),
                (true, Ok(())) => Err(self.upstream(malformed.unwrap_or_else(|| {
                    "the server closed the event stream without answering".into()
                }))),
                (false, _) => Ok(()),
            };
        }
        let body = response
            .bytes(self.conn.max_message())
            .await
            .map_err(|e| self.upstream(format!("reading the answer failed: {e}")))?;
        let text = body.trim_ascii();
        if text.is_empty() {
            return Ok(());
        }
        if !media_is(ctype.as_ref(), "application/json") {
            let ctype = ctype
                .as_ref()
                .map_or(Cow::Borrowed(""), |v| String::from_utf8_lossy(v.as_bytes()));
            return Err(self.upstream(format!(
                "unexpected content type {ctype:?} in the answer to {}",
                head.method()
            )));
        }
        let malformed = |e: serde_json::Error| self.upstream(format!("malformed JSON answer: {e}"));
        if text[0] == b'[' {
            let batch: Vec<&RawValue> = serde_json::from_slice(text).map_err(malformed)?;
            for m in batch {
                self.conn
                    .handle_incoming(m.get().as_bytes())
                    .map_err(malformed)?;
            }
            Ok(())
        } else {
            self.conn.handle_incoming(text).map_err(malformed)
        }
    }

    /// Turns an HTTP error status into the call's error: a 4xx is the server refusing this
    /// request ([`McpError::Rpc`], with its JSON-RPC error when it sent one), 401/403 and
    /// 5xx are failures of the server ([`McpError::Upstream`]).
    async fn http_error(&self, mut response: Reply) -> McpError {
        let status = response.status();
        let response_location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = Vec::new();
        while body.len() < MAX_ERROR_BODY {
            match response.next_chunk().await {
                Ok(Some(c)) => body.extend_from_slice(&c),
                _ => break,
            }
        }
        let rpc = serde_json::from_slice::<Message<'_>>(&body)
            .ok()
            .and_then(|m| m.error);
        let detail = match &rpc {
            Some(e) => e.message.clone(),
            None => snippet(&body),
        };
        let status_words = format!("HTTP {status}");
        if status.is_redirection() {
            let to = response_location.unwrap_or_else(|| "?".into());
            return self.upstream(format!(
                "{status_words}: the server redirects to {to}; configure that url for this server"
            ));
        }
        match status.as_u16() {
            401 | 403 => self.upstream(format!(
                "{status_words} (check the headers configured for this server){}",
                colon(&detail)
            )),
            400..=499 => McpError::Rpc {
                server: self.conn.server().clone(),
                error: rpc.unwrap_or_else(|| {
                    JsonRpcError::new(
                        jsonrpc::INVALID_REQUEST,
                        format!("{status_words}{}", colon(&detail)),
                    )
                }),
            },
            _ => self.upstream(format!("{status_words}{}", colon(&detail))),
        }
    }

    /// Repeats the `initialize` exchange after the server forgot session `stale`.
    async fn reinitialize(&self, stale: Option<HeaderValue>) -> Result<(), String> {
        let _one_at_a_time = self.reinit.lock().await;
        if self.session() != stale {
            return Ok(()); // another call renewed it meanwhile
        }
        let frame = self
            .init_frame
            .lock()
            .expect("lock poisoned")
            .clone()
            .ok_or("no initialize request to repeat")?;
        tracing::info!(server = %self.conn.server(), "session expired (HTTP 404); re-initializing");
        let init = Head {
            method: Some("initialize".into()),
            ..Head::default()
        };
        let response = self.post(&frame, &init, None).await.map_err(|e| e.why)?;
        if !response.status().is_success() {
            return Err(format!("initialize answered HTTP {}", response.status()));
        }
        let session = response.headers().get(SESSION_HEADER).cloned();
        let answer = first_response(response, self.conn.max_message()).await?;
        #[derive(Deserialize)]
        struct Answer {
            result: Option<Init>,
            error: Option<JsonRpcError>,
        }
        #[derive(Deserialize)]
        struct Init {
            #[serde(rename = "protocolVersion")]
            protocol_version: String,
        }
        let answer: Answer = serde_json::from_str(&answer)
            .map_err(|e| format!("malformed initialize answer: {e}"))?;
        let version = match (answer.result, answer.error) {
            (_, Some(e)) => return Err(format!("initialize refused: {e}")),
            (Some(r), None) => r.protocol_version,
            (None, None) => return Err("initialize answer without result".into()),
        };
        if self.conn.generation().map(Generation::version) != Some(version.as_str()) {
            return Err(format!("the new session speaks protocol version {version}"));
        }
        *self.session.write().expect("session lock poisoned") = session.clone();
        let initialized = Bytes::from(jsonrpc::notification_frame(
            "notifications/initialized",
            None,
        ));
        let head = Head {
            method: Some("notifications/initialized".into()),
            ..Head::default()
        };
        let response = self
            .post(&initialized, &head, session.as_ref())
            .await
            .map_err(|e| e.why)?;
        if !response.status().is_success() {
            return Err(format!(
                "notifications/initialized answered HTTP {}",
                response.status()
            ));
        }
        let _ = response.bytes(MAX_ERROR_BODY).await;
        // A server that lost our session may have restarted with other tools.
        self.conn.emit(Event::ToolsListChanged);
        Ok(())
    }

    /// Ends the session on the server (`DELETE`), best effort and briefly.
    async fn end_session(&self) {
        let Some(session) = self.session() else {
            return;
        };
        let mut rb = self
            .client
            .delete(self.url.clone())
            .headers(self.headers.clone())
            .header(SESSION_HEADER, session)
            .timeout(Duration::from_secs(2));
        if let Some(g) = self.conn.generation() {
            rb = rb.header(VERSION_HEADER, g.version());
        }
        match rb.send().await {
            Ok(r) => {
                tracing::debug!(server = %self.conn.server(), status = %r.status(), "session ended")
            }
            Err(e) => {
                tracing::debug!(server = %self.conn.server(), error = %error_chain(&e), "ending the session failed")
            }
        }
    }
}

/// The `Content-Type` of a response, lower-cased.
fn content_type(r: &impl HasHeaders) -> Option<HeaderValue> {
    // A handle on the received header, not a copy: this runs on every answer.
    r.header_map().get(CONTENT_TYPE).cloned()
}

/// True when `ct` names a media type that starts with `prefix`, compared without regard
/// to ASCII case (as media types are).
fn media_is(ct: Option<&HeaderValue>, prefix: &str) -> bool {
    ct.and_then(|v| v.as_bytes().get(..prefix.len()))
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// The data of the first JSON-RPC response in a JSON or event-stream answer.
async fn first_response(response: Reply, max: usize) -> Result<String, String> {
    if media_is(content_type(&response).as_ref(), "text/event-stream") {
        let mut found = None;
        read_events(response, max, |ev| {
            let is_response = serde_json::from_str::<Message<'_>>(&ev.data)
                .is_ok_and(|m| m.method.is_none() && m.id.is_some());
            if found.is_none() && ev.event == "message" && is_response {
                found = Some(ev.data);
            }
        })
        .await?;
        found.ok_or_else(|| "the event stream ended without an answer".into())
    } else {
        let body = response.bytes(max).await?;
        String::from_utf8(body.to_vec()).map_err(|_| "the answer is not UTF-8".into())
    }
}

/// Why a POST got no answer at all.
struct SendError {
    /// The server could not be reached (no connection): the link closes.
    connect: bool,
    /// The error with its causes.
    why: String,
}

/// An answer to a POST, from whichever client sent it.
enum Reply {
    /// From the lean HTTP/1.1 client (`http://` upstreams).
    H1(http::Response<H1Body>),
    /// From reqwest (`https://` upstreams).
    Reqwest(reqwest::Response),
}

impl Reply {
    fn status(&self) -> StatusCode {
        match self {
            Reply::H1(r) => r.status(),
            Reply::Reqwest(r) => r.status(),
        }
    }

    fn headers(&self) -> &HeaderMap {
        match self {
            Reply::H1(r) => r.headers(),
            Reply::Reqwest(r) => r.headers(),
        }
    }

    /// The whole body, refused once it passes `max` bytes (never buffered beyond that).
    async fn bytes(mut self, max: usize) -> Result<Bytes, String> {
        let mut all: Option<Bytes> = None;
        let mut more = Vec::new();
        while let Some(c) = self.next_chunk().await? {
            let len = all.as_ref().map_or(0, Bytes::len).max(more.len()) + c.len();
            if len > max {
                return Err(format!(
                    "the answer is larger than {max} bytes (maxMessageBytes)"
                ));
            }
            match &all {
                // The usual answer is one chunk: keep it without copying.
                None => all = Some(c),
                Some(first) => {
                    if more.is_empty() {
                        more.extend_from_slice(first);
                    }
                    more.extend_from_slice(&c);
                }
            }
        }
        Ok(if more.is_empty() {
            all.unwrap_or_default()
        } else {
            Bytes::from(more)
        })
    }
}

impl ChunkSource for Reply {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, String> {
        match self {
            Reply::H1(r) => r.body_mut().chunk().await.map_err(|e| error_chain(&e)),
            Reply::Reqwest(r) => r.chunk().await.map_err(|e| error_chain(&e)),
        }
    }
}

/// Responses whose headers [`content_type`] reads.
trait HasHeaders {
    fn header_map(&self) -> &HeaderMap;
}

impl HasHeaders for Reply {
    fn header_map(&self) -> &HeaderMap {
        self.headers()
    }
}

impl HasHeaders for reqwest::Response {
    fn header_map(&self) -> &HeaderMap {
        self.headers()
    }
}

/// Sets every header of `src` on `dst`, replacing values `dst` has under the same names
/// (what reqwest's `RequestBuilder::headers` did with the configured and caller headers).
fn replace_headers(dst: &mut HeaderMap, src: &HeaderMap) {
    for name in src.keys() {
        let mut values = src.get_all(name).iter();
        if let Some(first) = values.next() {
            dst.insert(name.clone(), first.clone());
        }
        for v in values {
            dst.append(name.clone(), v.clone());
        }
    }
}

/// The id and method of a request frame as [`jsonrpc::request_frame`] writes it
/// (`{"jsonrpc":"2.0","id":<positive integer>,"method":"<name without escapes>"` followed by
/// `,` or `}`); `None` for any other frame, which then gets a full parse.
fn request_lead(frame: &[u8]) -> Option<(u64, &str)> {
    let rest = frame.strip_prefix(br#"{"jsonrpc":"2.0","id":"#)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 18 || rest[0] == b'0' {
        return None;
    }
    let id = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let rest = rest[digits..].strip_prefix(br#","method":""#)?;
    let end = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
    if rest[end] != b'"' || !matches!(rest.get(end + 1), Some(b',' | b'}')) {
        return None;
    }
    Some((id, std::str::from_utf8(&rest[..end]).ok()?))
}

/// The first 200 characters of a body, on one line.
fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(200)]);
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn colon(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_headers_need_from_a_frame() {
        let (conn, _out, _events) =
            link::new_connection(&Arc::from("t"), crate::config::DEFAULT_MAX_MESSAGE_BYTES);
        let call = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"name":"no"}}}"#;
        let h = Head::parse(call, true, &conn);
        assert_eq!(
            (h.request_id, h.method.as_deref(), h.name.as_deref()),
            (Some(7), Some("tools/call"), Some("echo"))
        );
        assert_eq!(
            Head::parse(call, false, &conn).name,
            None,
            "session servers get no Mcp-Name"
        );
        let read =
            br#"{"jsonrpc":"2.0","id":8,"method":"resources/read","params":{"uri":"file:///a"}}"#;
        assert_eq!(
            Head::parse(read, true, &conn).name.as_deref(),
            Some("file:///a")
        );
        let cancel =
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7}}"#;
        let h = Head::parse(cancel, true, &conn);
        assert_eq!((h.request_id, h.cancels), (None, Some(7)));
        let answer = br#"{"jsonrpc":"2.0","id":3,"result":{}}"#;
        assert_eq!(
            Head::parse(answer, true, &conn).request_id,
            None,
            "our answers are not calls"
        );
        assert!(h.params.is_empty());
    }

    #[test]
    fn matches_media_types_without_regard_to_case() {
        let v = |s: &'static str| Some(HeaderValue::from_static(s));
        assert!(media_is(
            v("text/event-stream").as_ref(),
            "text/event-stream"
        ));
        assert!(media_is(
            v("Application/JSON; charset=utf-8").as_ref(),
            "application/json"
        ));
        assert!(!media_is(v("text/plain").as_ref(), "text/event-stream"));
        assert!(!media_is(v("text").as_ref(), "text/event-stream"));
        assert!(!media_is(None, "application/json"));
    }

    #[test]
    fn reads_the_lead_of_the_connections_own_frames_only() {
        let frame = jsonrpc::request_frame(&RequestId::Number(42), "tools/call", Some("{}"));
        assert_eq!(request_lead(&frame), Some((42, "tools/call")));
        let bare = jsonrpc::request_frame(&RequestId::Number(9), "ping", None);
        assert_eq!(request_lead(&bare), Some((9, "ping")));
        for other in [
            &br#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#[..],
            br#"{"jsonrpc":"2.0","id":-1,"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":"7","method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":07,"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":3,"result":{}}"#,
            br#"{"jsonrpc":"2.0","id":3,"method":"a\"b"}"#,
            br#"{"jsonrpc":"2.0","id":3,"method":"ping""#,
            br#"{"jsonrpc":"2.0","id":99999999999999999999,"method":"ping"}"#,
            br#"{"id":3,"jsonrpc":"2.0","method":"ping"}"#,
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7}}"#,
        ] {
            assert_eq!(
                request_lead(other),
                None,
                "{}",
                String::from_utf8_lossy(other)
            );
        }
        // The fast path and the full parse agree on what the headers need.
        let (conn, _out, _events) =
            link::new_connection(&Arc::from("t"), crate::config::DEFAULT_MAX_MESSAGE_BYTES);
        let escaped = br#"{"jsonrpc":"2.0","id":3,"method":"a\"b"}"#;
        let h = Head::parse(escaped, false, &conn);
        assert_eq!((h.request_id, h.method.as_deref()), (Some(3), Some("a\"b")));
        let h = Head::parse(&frame, false, &conn);
        assert_eq!(
            (h.request_id, h.method.as_deref()),
            (Some(42), Some("tools/call"))
        );
    }

    #[test]
    fn mirrors_annotated_arguments_of_known_tools_only() {
        let (conn, _out, _events) =
            link::new_connection(&Arc::from("t"), crate::config::DEFAULT_MAX_MESSAGE_BYTES);
        let tool = RawValue::from_string(
            serde_json::json!({"name": "sql", "inputSchema": {"type": "object", "properties": {
                "region": {"type": "string", "x-mcp-header": "Region"},
            }}})
            .to_string(),
        )
        .unwrap();
        let mut table = param_headers::ParamTable::new();
        table.insert(
            "sql".into(),
            param_headers::tool_headers(&tool).unwrap().into(),
        );
        conn.set_param_headers(table);
        let call = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sql","arguments":{"region":"eu-1","q":"x"}}}"#;
        let h = Head::parse(call, true, &conn);
        assert_eq!(h.params.len(), 1);
        assert_eq!(
            (h.params[0].0.as_str(), h.params[0].1.to_str().unwrap()),
            ("mcp-param-region", "eu-1")
        );
        assert!(Head::parse(call, false, &conn).params.is_empty());
        let other = br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"region":"eu-1"}}}"#;
        assert!(Head::parse(other, true, &conn).params.is_empty());
    }
}
