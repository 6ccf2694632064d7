//! Server→client requests for 2026-07-28 clients, bridged to Multi Round-Trip Requests.
//!
//! An older upstream asks its client something (`sampling/createMessage`,
//! `elicitation/create`) in the middle of a call. A stateless client cannot receive a
//! request, so the gateway parks the running call and answers with an `input_required`
//! result whose `requestState` names the parked call. The client retries with
//! `inputResponses`; the gateway hands them to the waiting upstream and carries on until the
//! call finishes or asks again. Parked calls belong to the caller that started them and
//! expire after [`PARK_TTL`]; an expired call is cancelled upstream.

use crate::{Ctx, Endpoint, McpService, dispatch};
use mcp_gateway_core::jsonrpc::{self, JsonRpcError, RequestId};
use mcp_gateway_core::relay::{RelaySink, Reply, ServerMessage};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

/// How long a parked call waits for the client's retry.
pub(crate) const PARK_TTL: Duration = Duration::from_secs(600);

type CallResult = Result<Box<RawValue>, JsonRpcError>;

/// A call running in the background, with what its upstream sends meanwhile.
pub(crate) struct Running {
    result: oneshot::Receiver<CallResult>,
    relay: mpsc::UnboundedReceiver<ServerMessage>,
    abort: AbortHandle,
}

/// A call waiting for the client to answer the requests it was sent.
pub(crate) struct Parked {
    running: Running,
    /// Requests awaiting an answer: key → (reply, method, params).
    asked: Vec<(String, Reply, String, Option<Box<RawValue>>)>,
    owner: Option<String>,
    expires: Instant,
}

impl Drop for Running {
    fn drop(&mut self) {
        // A call nobody will collect any more is cancelled upstream.
        self.abort.abort();
    }
}

/// How a driven call ended for now.
pub(crate) enum Outcome {
    /// Finished with this result or error.
    Done(CallResult),
    /// Parked: the result to send is an `input_required` result.
    InputRequired(Box<RawValue>),
}

/// Starts `method` in the background with a relay for its server messages.
pub(crate) fn spawn<S: McpService>(
    ep: &Arc<Endpoint<S>>,
    ctx: Ctx,
    id: RequestId,
    method: String,
    params: Option<Box<RawValue>>,
) -> Running {
    let (sink, relay) = RelaySink::channel();
    let (tx, result) = oneshot::channel();
    let ep = ep.clone();
    let task = tokio::spawn(async move {
        let r = dispatch(&ep, &ctx, &id, &method, params.as_deref(), Some(sink)).await;
        let _ = tx.send(r);
    });
    Running {
        result,
        relay,
        abort: task.abort_handle(),
    }
}

/// Drives a call until it finishes or asks its client something. Notifications go to
/// `notify` (false: the client is gone, and the call is dropped).
pub(crate) async fn drive<S: McpService>(
    ep: &Endpoint<S>,
    mut running: Running,
    owner: Option<String>,
    notify: &mut (dyn FnMut(Vec<u8>) -> bool + Send),
) -> Outcome {
    loop {
        tokio::select! {
            biased;
            m = running.relay.recv() => match m {
                Some(ServerMessage { reply: None, method, params }) => {
                    if !notify(jsonrpc::notification_frame(&method, params.as_deref().map(RawValue::get))) {
                        return Outcome::Done(Err(JsonRpcError::new(jsonrpc::INTERNAL_ERROR, "client went away")));
                    }
                }
                Some(ServerMessage { reply: Some(reply), method, params }) => {
                    let mut asked = vec![("input_1".to_string(), reply, method, params)];
                    while let Ok(m) = running.relay.try_recv() {
                        match m.reply {
                            Some(r) => asked.push((format!("input_{}", asked.len() + 1), r, m.method, m.params)),
                            None => {
                                notify(jsonrpc::notification_frame(&m.method, m.params.as_deref().map(RawValue::get)));
                            }
                        }
                    }
                    return Outcome::InputRequired(park(ep, Parked { running, asked, owner, expires: Instant::now() + PARK_TTL }));
                }
                // The sink is gone: the call has finished; its result is next.
                None => {
                    let r = (&mut running.result).await;
                    return Outcome::Done(r.unwrap_or_else(|_| Err(JsonRpcError::new(jsonrpc::INTERNAL_ERROR, "the call was dropped"))));
                }
            },
            r = &mut running.result => {
                while let Ok(m) = running.relay.try_recv() {
                    if m.reply.is_none() {
                        notify(jsonrpc::notification_frame(&m.method, m.params.as_deref().map(RawValue::get)));
                    }
                }
                return Outcome::Done(r.unwrap_or_else(|_| Err(JsonRpcError::new(jsonrpc::INTERNAL_ERROR, "the call was dropped"))));
            }
        }
    }
}

fn park<S: McpService>(ep: &Endpoint<S>, parked: Parked) -> Box<RawValue> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    let mut token = String::from(PARKED_PREFIX);
    token.extend(bytes.iter().map(|b| format!("{b:02x}")));
    let result = input_required(&parked.asked, &token);
    ep.parked.lock().expect("lock").insert(token, parked);
    result
}

fn input_required(
    asked: &[(String, Reply, String, Option<Box<RawValue>>)],
    token: &str,
) -> Box<RawValue> {
    let mut requests = serde_json::Map::new();
    for (key, _, method, params) in asked {
        let params: serde_json::Value = params
            .as_deref()
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or(json!({}));
        requests.insert(key.clone(), json!({"method": method, "params": params}));
    }
    let v =
        json!({"resultType": "input_required", "inputRequests": requests, "requestState": token});
    RawValue::from_string(v.to_string()).expect("serialized JSON is valid")
}

#[derive(Deserialize)]
struct Retry {
    #[serde(rename = "requestState")]
    request_state: String,
    #[serde(default, rename = "inputResponses")]
    input_responses: BTreeMap<String, Box<RawValue>>,
}

/// Prefix of the `requestState` of calls the gateway parked. Any other `requestState` was
/// minted by an upstream that speaks 2026-07-28 itself: it passes through untouched to the
/// server the tool routes to, so every round of its MRTR works on any replica.
pub(crate) const PARKED_PREFIX: &str = "mcpgw.p1.";

/// True when `params` carry a `requestState` the gateway minted (a retry of a parked call).
pub(crate) fn is_retry(params: Option<&RawValue>) -> bool {
    params.is_some_and(|p| p.get().contains(PARKED_PREFIX))
        && params
            .and_then(|p| serde_json::from_str::<Retry>(p.get()).ok())
            .is_some_and(|r| r.request_state.starts_with(PARKED_PREFIX))
}

/// Resumes a parked call with the client's answers.
pub(crate) async fn resume<S: McpService>(
    ep: &Endpoint<S>,
    owner: Option<String>,
    params: Option<&RawValue>,
    notify: &mut (dyn FnMut(Vec<u8>) -> bool + Send),
) -> Outcome {
    let bad = |m: &str| Outcome::Done(Err(JsonRpcError::new(jsonrpc::INVALID_PARAMS, m)));
    let Some(retry) = params.and_then(|p| serde_json::from_str::<Retry>(p.get()).ok()) else {
        return bad("invalid requestState / inputResponses");
    };
    let parked = ep.parked.lock().expect("lock").remove(&retry.request_state);
    let Some(mut parked) = parked else {
        return bad("requestState is unknown or expired; call the tool again without it");
    };
    if parked.owner != owner {
        // Not this caller's call: put it back untouched and reveal nothing.
        ep.parked
            .lock()
            .expect("lock")
            .insert(retry.request_state, parked);
        return bad("requestState is unknown or expired; call the tool again without it");
    }
    let mut missing = Vec::new();
    for (key, reply, method, params) in parked.asked.drain(..) {
        match retry.input_responses.get(&key) {
            Some(answer) => {
                let _ = reply.send(Ok(answer.clone()));
            }
            None => missing.push((key, reply, method, params)),
        }
    }
    if !missing.is_empty() {
        parked.asked = missing;
        parked.expires = Instant::now() + PARK_TTL;
        return Outcome::InputRequired(park(ep, parked));
    }
    let Parked { running, owner, .. } = parked;
    drive(ep, running, owner, notify).await
}

/// Drops parked calls whose client never came back (cancelling them upstream).
pub(crate) fn expire(parked: &std::sync::Mutex<HashMap<String, Parked>>) {
    let now = Instant::now();
    parked.lock().expect("lock").retain(|_, p| p.expires > now);
}
