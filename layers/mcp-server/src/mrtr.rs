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
use mcp_gateway_core::protocol::LogLevel;
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
    level: Option<LogLevel>,
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
    level: Option<LogLevel>,
    notify: &mut (dyn FnMut(Vec<u8>) -> bool + Send),
) -> Outcome {
    loop {
        tokio::select! {
            biased;
            m = running.relay.recv() => match m {
                Some(ServerMessage { reply: None, method, params }) => {
                    if !wanted(&method, params.as_deref(), level) {
                        continue;
                    }
                    if !notify(jsonrpc::notification_frame(&method, params.as_deref().map(RawValue::get))) {
                        return Outcome::Done(Err(JsonRpcError::new(jsonrpc::INTERNAL_ERROR, "client went away")));
                    }
                }
                Some(ServerMessage { reply: Some(reply), method, params }) => {
                    let mut asked = vec![("input_1".to_string(), reply, method, params)];
                    while let Ok(m) = running.relay.try_recv() {
                        match m.reply {
                            Some(r) => asked.push((format!("input_{}", asked.len() + 1), r, m.method, m.params)),
                            None if wanted(&m.method, m.params.as_deref(), level) => {
                                notify(jsonrpc::notification_frame(&m.method, m.params.as_deref().map(RawValue::get)));
                            }
                            None => {}
                        }
                    }
                    return Outcome::InputRequired(park(ep, Parked { running, asked, owner, level, expires: Instant::now() + PARK_TTL }));
                }
                // The sink is gone: the call has finished; its result is next.
                None => {
                    let r = (&mut running.result).await;
                    return Outcome::Done(r.unwrap_or_else(|_| Err(JsonRpcError::new(jsonrpc::INTERNAL_ERROR, "the call was dropped"))));
                }
            },
            r = &mut running.result => {
                while let Ok(m) = running.relay.try_recv() {
                    if m.reply.is_none() && wanted(&m.method, m.params.as_deref(), level) {
                        notify(jsonrpc::notification_frame(&m.method, m.params.as_deref().map(RawValue::get)));
                    }
                }
                return Outcome::Done(r.unwrap_or_else(|_| Err(JsonRpcError::new(jsonrpc::INTERNAL_ERROR, "the call was dropped"))));
            }
        }
    }
}

/// True when a notification goes to its client: log messages only when it asked for them
/// (a 2026-07-28 `_meta` log level, a session's `logging/setLevel`), at or above that level.
pub(crate) fn wanted(method: &str, params: Option<&RawValue>, level: Option<LogLevel>) -> bool {
    method != "notifications/message"
        || level.is_some_and(|min| LogLevel::of_message(params).is_none_or(|l| l >= min))
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
    let Parked {
        running,
        owner,
        level,
        ..
    } = parked;
    drive(ep, running, owner, level, notify).await
}

/// Drops parked calls whose client never came back (cancelling them upstream).
pub(crate) fn expire(parked: &std::sync::Mutex<HashMap<String, Parked>>) {
    let now = Instant::now();
    parked.lock().expect("lock").retain(|_, p| p.expires > now);
}

/// Most input rounds the gateway bridges within one call for a session-generation client.
pub(crate) const MAX_ROUNDS: usize = 32;

/// One `input_required` result of a 2026-07-28 upstream, to be asked of a client that can
/// only receive server→client requests.
pub(crate) struct InputRound {
    requests: BTreeMap<String, InputRequest>,
    pub(crate) request_state: Option<String>,
}

#[derive(Deserialize)]
struct InputRequest {
    method: String,
    #[serde(default)]
    params: Option<Box<RawValue>>,
}

impl InputRound {
    /// The round `result` asks for, if it is an `input_required` result.
    pub(crate) fn of(result: &RawValue) -> Option<InputRound> {
        #[derive(Deserialize)]
        struct Head {
            #[serde(rename = "resultType")]
            result_type: String,
            #[serde(default, rename = "inputRequests")]
            input_requests: BTreeMap<String, InputRequest>,
            #[serde(default, rename = "requestState")]
            request_state: Option<String>,
        }
        if !result.get().contains("\"input_required\"") {
            return None;
        }
        let head: Head = serde_json::from_str(result.get()).ok()?;
        (head.result_type == "input_required").then_some(InputRound {
            requests: head.input_requests,
            request_state: head.request_state,
        })
    }

    /// Sends every request to the client through `sink` and collects the answers, keyed as
    /// the server keyed its requests. A client error fails the call with that error; a
    /// client that does not answer within [`PARK_TTL`] fails it too.
    pub(crate) async fn ask(
        self,
        sink: &RelaySink,
    ) -> Result<BTreeMap<String, Box<RawValue>>, JsonRpcError> {
        let mut waiting = Vec::with_capacity(self.requests.len());
        for (key, r) in self.requests {
            let (tx, rx) = oneshot::channel();
            let sent = sink.send(ServerMessage {
                method: r.method,
                params: r.params,
                reply: Some(tx),
            });
            if !sent {
                return Err(JsonRpcError::new(
                    jsonrpc::INTERNAL_ERROR,
                    "client went away",
                ));
            }
            waiting.push((key, rx));
        }
        let all = async {
            let mut answers = BTreeMap::new();
            for (key, rx) in waiting {
                match rx.await {
                    Ok(Ok(answer)) => {
                        answers.insert(key, answer);
                    }
                    Ok(Err(e)) => return Err(e),
                    Err(_) => {
                        return Err(JsonRpcError::new(
                            jsonrpc::INTERNAL_ERROR,
                            "the client's answer was lost",
                        ));
                    }
                }
            }
            Ok(answers)
        };
        tokio::time::timeout(PARK_TTL, all)
            .await
            .unwrap_or_else(|_| {
                Err(JsonRpcError::new(
                    jsonrpc::INTERNAL_ERROR,
                    "the client did not answer the server's request in time",
                ))
            })
    }
}

/// The params of the retry: the original ones with `inputResponses` and, when the server
/// sent one, its `requestState` (echoed exactly, as the spec requires).
pub(crate) fn retry_params(
    params: Option<&RawValue>,
    answers: BTreeMap<String, Box<RawValue>>,
    state: Option<String>,
) -> Result<Box<RawValue>, JsonRpcError> {
    let invalid = |e: serde_json::Error| JsonRpcError::new(jsonrpc::INVALID_PARAMS, e.to_string());
    let mut top: BTreeMap<String, Box<RawValue>> = match params {
        Some(p) => serde_json::from_str(p.get()).map_err(invalid)?,
        None => BTreeMap::new(),
    };
    top.insert(
        "inputResponses".into(),
        RawValue::from_string(serde_json::to_string(&answers).map_err(invalid)?)
            .map_err(invalid)?,
    );
    match state {
        Some(s) => top.insert("requestState".into(), crate::raw(&json!(s))),
        None => top.remove("requestState"),
    };
    RawValue::from_string(serde_json::to_string(&top).map_err(invalid)?).map_err(invalid)
}
