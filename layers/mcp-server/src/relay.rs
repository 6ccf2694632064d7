//! What travels beside a call: client notifications (cancellation), messages an upstream
//! sends during a call relayed to the client, and the client's answers routed back.

use super::*;

pub(crate) async fn client_notification<S: McpService>(
    ep: &Endpoint<S>,
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
            ep.cluster
                .publish(mcp_gateway_cluster::BusMessage::Cancel {
                    session: tag.clone(),
                    id: c.request_id,
                })
                .await;
        }
    }
}

/// The frame for a message an upstream sent during a call: a notification as is, or a
/// request re-issued under a gateway id whose answer is routed back (when the client can
/// take it; otherwise the upstream gets an error).
pub(crate) fn relay_frame(
    session: &Session,
    can_ask: bool,
    m: mcp_gateway_core::relay::ServerMessage,
) -> Option<Bytes> {
    if !crate::mrtr::wanted(&m.method, m.params.as_deref(), session.log_level()) {
        return None;
    }
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
pub(crate) async fn deliver_answer<S: McpService>(
    ep: &Endpoint<S>,
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
        ep.cluster
            .publish(mcp_gateway_cluster::BusMessage::Answer {
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
