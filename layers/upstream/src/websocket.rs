//! The WebSocket transport: one JSON-RPC message per text frame, the de-facto form MCP
//! servers use (there is no official WebSocket transport), over `ws://` or `wss://` (rustls
//! with the webpki roots).
//!
//! The upgrade always offers subprotocol `mcp`, which some servers require. A server that
//! accepts the upgrade but answers with no subprotocol makes tungstenite refuse the
//! handshake; such servers exist, so the upgrade is then repeated once without the offer.
//! A ping goes out every [`KEEPALIVE`] so idle connections survive proxies, and a server
//! silent for three intervals is taken as gone. Any close — by the server, an error, a
//! missed keepalive — closes the link; the supervisor fails pending calls with the reason
//! and reconnects with backoff.

use crate::config::{HttpConfig, UpstreamConfig};
use crate::connection::Connection;
use crate::link::{self, Link, NetLink, Opened};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use mcp_gateway_core::redact::redact_url;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError, SubProtocolError};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;

/// Interval of keepalive pings.
pub(crate) const KEEPALIVE: Duration = Duration::from_secs(20);

/// Connects (within the call timeout, at most 30 s) and starts the frame loop.
pub(crate) async fn open(h: &HttpConfig, cfg: &UpstreamConfig) -> Result<Opened, String> {
    let url = reqwest::Url::parse(&h.url)
        .map_err(|e| format!("invalid url {:?}: {e}", redact_url(&h.url)))?;
    if !matches!(url.scheme(), "ws" | "wss") {
        return Err(format!(
            "url {:?} must be ws:// or wss://",
            redact_url(&h.url)
        ));
    }
    let headers = link::header_map(h)?;
    let request = |offer_mcp: bool| {
        let mut req = url
            .as_str()
            .into_client_request()
            .map_err(|e| format!("invalid url {url}: {e}"))?;
        req.headers_mut().extend(headers.clone());
        if offer_mcp {
            req.headers_mut()
                .insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("mcp"));
        }
        Ok::<_, String>(req)
    };
    let limit = cfg.timeout.min(Duration::from_secs(30));
    let connect = async {
        // A message over the limit ends the connection with a capacity error, never
        // buffered whole; tungstenite's frame limit stays at its default (16 MiB) or the
        // message limit, whichever is smaller.
        let ws_config = WebSocketConfig::default()
            .max_message_size(Some(cfg.max_message_bytes))
            .max_frame_size(Some(cfg.max_message_bytes.min(16 << 20)));
        let connect =
            |req| tokio_tungstenite::connect_async_with_config(req, Some(ws_config), false);
        match connect(request(true)?).await {
            Err(WsError::Protocol(ProtocolError::SecWebSocketSubProtocolError(
                SubProtocolError::NoSubProtocol,
            ))) => {
                tracing::info!(server = %cfg.id, "the server ignored subprotocol `mcp`; connecting without it");
                connect(request(false)?).await
            }
            other => other,
        }
        .map_err(|e| format!("cannot connect to {url}: {e}"))
    };
    let (ws, _response) = tokio::time::timeout(limit, connect).await.map_err(|_| {
        format!(
            "no websocket upgrade from {url} within {} ms",
            limit.as_millis()
        )
    })??;
    let (conn, out, events) = link::new_connection(&cfg.id, cfg.max_message_bytes);
    let driver_conn = conn.clone();
    let link = NetLink::spawn(move |stop, closed| drive(ws, driver_conn, out, stop, closed));
    Ok((conn, Link::Net(link), events))
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn drive(
    ws: Ws,
    conn: Arc<Connection>,
    mut out: mpsc::UnboundedReceiver<Bytes>,
    stop: CancellationToken,
    closed: oneshot::Sender<String>,
) {
    let (mut sink, mut stream) = ws.split();
    let mut keepalive =
        tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    let mut last_heard = Instant::now();
    let reason = loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => {
                let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(Message::Close(None))).await;
                break None;
            }
            msg = stream.next() => {
                last_heard = Instant::now();
                match msg {
                    None => break Some("the websocket connection ended".to_string()),
                    Some(Err(e)) => break Some(format!("websocket error: {e}")),
                    Some(Ok(Message::Text(text))) => incoming(&conn, text.as_bytes()),
                    // Not what the de-facto transport sends, but unambiguous enough to accept.
                    Some(Ok(Message::Binary(bytes))) => incoming(&conn, &bytes),
                    Some(Ok(Message::Close(frame))) => {
                        break Some(match frame {
                            Some(f) if f.reason.is_empty() => format!("the server closed the websocket (code {})", f.code),
                            Some(f) => format!("the server closed the websocket (code {}: {})", f.code, f.reason),
                            None => "the server closed the websocket".to_string(),
                        });
                    }
                    // tungstenite answers pings itself.
                    Some(Ok(_)) => {}
                }
            }
            frame = out.recv() => {
                let Some(frame) = frame else { break None };
                let text = match Utf8Bytes::try_from(frame) {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::error!(server = %conn.server(), error = %e, "dropping a frame that is not UTF-8");
                        continue;
                    }
                };
                if let Err(e) = sink.send(Message::Text(text)).await {
                    break Some(format!("sending on the websocket failed: {e}"));
                }
            }
            _ = keepalive.tick() => {
                if last_heard.elapsed() > KEEPALIVE * 3 {
                    break Some(format!("no answer to keepalive pings for {} s", last_heard.elapsed().as_secs()));
                }
                if let Err(e) = sink.send(Message::Ping(Bytes::new())).await {
                    break Some(format!("sending a keepalive ping failed: {e}"));
                }
            }
        }
    };
    if let Some(reason) = reason {
        let _ = closed.send(reason);
    }
}

fn incoming(conn: &Connection, frame: &[u8]) {
    if let Err(e) = conn.handle_incoming(frame) {
        tracing::warn!(server = %conn.server(), error = %e, "skipping a malformed websocket message");
    }
}
