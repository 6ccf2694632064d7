//! The legacy HTTP+SSE transport of protocol revision 2024-11-05 (deprecated, still served by
//! many hosted servers): a GET opens an event stream whose first `endpoint` event names the
//! URL to POST messages to; every answer and server message arrives on that stream as a
//! `message` event, matched to its call by id in [`Connection`].
//!
//! The link is the event stream: when it ends (server restart, network failure, malformed
//! data) the link closes, pending calls fail with the reason, and the supervisor reconnects
//! with backoff. A POST that fails only fails its own call. The endpoint must be on the
//! same origin as the stream, so a server cannot redirect the configured headers (often a
//! bearer token) to another host.

use crate::config::{HttpConfig, UpstreamConfig};
use crate::connection::Connection;
use crate::link::{self, Link, NetLink, Opened};
use crate::sse_parse::{SseEvent, SseParser, error_chain, read_events_with};
use bytes::Bytes;
use mcp_gateway_core::McpError;
use mcp_gateway_core::jsonrpc::{Message, RequestId};
use mcp_gateway_core::redact::redact_url;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Bound on sending one notification, so a stuck server cannot stall the send queue.
const ONEWAY_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens the event stream and waits (within the call timeout, at most 30 s) for its
/// `endpoint` event.
pub(crate) async fn open(h: &HttpConfig, cfg: &UpstreamConfig) -> Result<Opened, String> {
    let url = reqwest::Url::parse(&h.url)
        .map_err(|e| format!("invalid url {:?}: {e}", redact_url(&h.url)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "url {:?} must be http:// or https://",
            redact_url(&h.url)
        ));
    }
    let headers = link::header_map(h)?;
    let client = link::http_client()?;
    let limit = cfg.timeout.min(Duration::from_secs(30));
    let (stream, parser, endpoint) = tokio::time::timeout(
        limit,
        connect(&client, &url, &headers, cfg.max_message_bytes),
    )
    .await
    .map_err(|_| format!("no endpoint event on {url} within {} ms", limit.as_millis()))??;
    tracing::debug!(server = %cfg.id, %endpoint, "legacy SSE endpoint");
    let (conn, out, events) = link::new_connection(&cfg.id, cfg.max_message_bytes);
    let sse = Arc::new(Sse {
        client,
        endpoint,
        headers,
        conn: conn.clone(),
    });
    let link = NetLink::spawn(move |stop, closed| sse.drive(stream, parser, out, stop, closed));
    Ok((conn, Link::Net(link), events))
}

/// GETs the stream and reads up to its `endpoint` event.
async fn connect(
    client: &reqwest::Client,
    url: &reqwest::Url,
    headers: &HeaderMap,
    max_event: usize,
) -> Result<(reqwest::Response, SseParser, reqwest::Url), String> {
    let mut response = client
        .get(url.clone())
        .headers(headers.clone())
        .header(ACCEPT, "text/event-stream")
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot reach {}: {}",
                redact_url(url.as_str()),
                error_chain(&e)
            )
        })?;
    if !response.status().is_success() {
        return Err(format!(
            "GET {} answered HTTP {}",
            redact_url(url.as_str()),
            response.status()
        ));
    }
    let ctype = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ctype.starts_with("text/event-stream") {
        return Err(format!(
            "GET {} answered {ctype:?}, not an event stream (is this a legacy SSE server?)",
            redact_url(url.as_str())
        ));
    }
    let mut parser = SseParser::new(max_event);
    let mut events = Vec::new();
    loop {
        let chunk = response
            .chunk()
            .await
            .map_err(|e| {
                format!(
                    "reading {} failed: {}",
                    redact_url(url.as_str()),
                    error_chain(&e)
                )
            })?
            .ok_or_else(|| {
                format!(
                    "the event stream of {} ended before its endpoint event",
                    redact_url(url.as_str())
                )
            })?;
        parser
            .push(&chunk, &mut events)
            .map_err(|e| e.to_string())?;
        if let Some(ev) = events.iter().find(|e| e.event == "endpoint") {
            let endpoint = url
                .join(ev.data.trim())
                .map_err(|e| format!("invalid endpoint {:?}: {e}", ev.data))?;
            if endpoint.origin() != url.origin() {
                return Err(format!(
                    "the server named endpoint {endpoint}, which is not on the origin of {url}"
                ));
            }
            return Ok((response, parser, endpoint));
        }
        events.clear();
    }
}

/// State shared by the driver and its POST tasks.
struct Sse {
    client: reqwest::Client,
    endpoint: reqwest::Url,
    headers: HeaderMap,
    conn: Arc<Connection>,
}

impl Sse {
    async fn drive(
        self: Arc<Self>,
        stream: reqwest::Response,
        parser: SseParser,
        mut out: mpsc::UnboundedReceiver<Bytes>,
        stop: CancellationToken,
        closed: oneshot::Sender<String>,
    ) {
        let conn = self.conn.clone();
        let mut reader = tokio::spawn(read_events_with(stream, parser, move |ev: SseEvent| {
            if ev.event == "message"
                && let Err(e) = conn.handle_incoming(ev.data.as_bytes())
            {
                tracing::warn!(server = %conn.server(), error = %e, "malformed message on the event stream");
            }
        }));
        let mut calls = JoinSet::new();
        let reason = loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break None,
                ended = &mut reader => break Some(match ended {
                    Ok(Ok(())) => "the server closed the event stream".to_string(),
                    Ok(Err(why)) => why,
                    Err(e) => format!("reading the event stream failed: {e}"),
                }),
                Some(_) = calls.join_next(), if !calls.is_empty() => {}
                frame = out.recv() => {
                    let Some(frame) = frame else { break None };
                    match request_id(&frame) {
                        Some(id) => {
                            calls.spawn(self.clone().call(frame, id));
                        }
                        None => {
                            if let Ok(Err(e)) = tokio::time::timeout(ONEWAY_TIMEOUT, self.post(frame)).await {
                                tracing::warn!(server = %self.conn.server(), error = %e, "sending a notification failed");
                            }
                        }
                    }
                }
            }
        };
        reader.abort();
        calls.abort_all();
        if let Some(reason) = reason {
            let _ = closed.send(reason);
        }
    }

    /// POSTs a request; its answer comes on the event stream, so only a failed POST is
    /// reported here, as that call's error.
    async fn call(self: Arc<Self>, frame: Bytes, id: u64) {
        if let Err(reason) = self.post(frame).await {
            self.conn.fail(
                id,
                McpError::Upstream {
                    server: self.conn.server().clone(),
                    reason,
                },
            );
        }
    }

    async fn post(&self, frame: Bytes) -> Result<(), String> {
        let response = self
            .client
            .post(self.endpoint.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(frame)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "cannot reach {}: {}",
                    redact_url(self.endpoint.as_str()),
                    error_chain(&e)
                )
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        let body: String = body.chars().take(200).collect();
        Err(format!(
            "POST {} answered HTTP {status}{}",
            self.endpoint.path(),
            if body.trim().is_empty() {
                String::new()
            } else {
                format!(
                    ": {}",
                    body.split_whitespace().collect::<Vec<_>>().join(" ")
                )
            }
        ))
    }
}

/// The id of a request frame (not of a notification or of our answer to a server request).
fn request_id(frame: &[u8]) -> Option<u64> {
    let msg: Message<'_> = serde_json::from_slice(frame).ok()?;
    match (msg.method, msg.id) {
        (Some(_), Some(RequestId::Number(n))) if n > 0 => Some(n as u64),
        _ => None,
    }
}
