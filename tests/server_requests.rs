//! Server→client requests relayed through the MCP endpoint, against the real
//! `@modelcontextprotocol/server-everything` (its `trigger-sampling-request` tool asks its
//! client for `sampling/createMessage`):
//! - a 2025 session client gets the request on the call's SSE answer, POSTs its result, and
//!   the tool's result carries it;
//! - a 2026-07-28 client gets an `input_required` result with a `requestState`, retries with
//!   `inputResponses`, and gets the final result (Multi Round-Trip Requests);
//! - a client that did not declare `sampling` makes the upstream get an error instead.

mod common;
use common::*;
use futures::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;

fn gateway_config() -> mcp_gateway::Config {
    config(&format!(
        "servers:\n  - id: ev\n    command: node\n    args: [{:?}, \"stdio\"]\n",
        everything_js().display().to_string()
    ))
}

const ACCEPT: &str = "application/json, text/event-stream";

fn meta(caps: Value) -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": caps,
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
    })
}

fn sampling_args() -> Value {
    json!({"prompt": "What is 2+2?", "maxTokens": 20})
}

#[tokio::test]
async fn session_client_answers_sampling_on_the_sse_answer() {
    require_peers();
    let gw = TestGateway::start(gateway_config()).await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {"sampling": {}},
        "clientInfo": {"name": "t", "version": "1"}}});
    let res = gw
        .http
        .post(gw.url("/mcp"))
        .header("accept", ACCEPT)
        .json(&init)
        .send()
        .await
        .unwrap();
    let sid = res.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "ev__trigger-sampling-request", "arguments": sampling_args()}});
    let res = gw
        .http
        .post(gw.url("/mcp"))
        .header("accept", ACCEPT)
        .header("mcp-session-id", &sid)
        .json(&call)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut body = res.bytes_stream();
    let mut buf = String::new();
    let mut answered = false;
    let final_result = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let chunk = body.next().await.expect("stream ended early").unwrap();
            buf.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = buf.find("\n\n") {
                let event: String = buf.drain(..end + 2).collect();
                let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) else { continue };
                let msg: Value = serde_json::from_str(data).unwrap();
                if msg["method"] == "sampling/createMessage" {
                    assert!(!answered, "asked once");
                    assert!(msg["id"].is_string(), "the gateway's own id: {msg}");
                    let answer = json!({"jsonrpc": "2.0", "id": msg["id"], "result": {
                        "role": "assistant", "content": {"type": "text", "text": "four, from the client"},
                        "model": "test-model", "stopReason": "endTurn"}});
                    let r = gw.http.post(gw.url("/mcp")).header("accept", ACCEPT)
                        .header("mcp-session-id", &sid).json(&answer).send().await.unwrap();
                    assert_eq!(r.status(), 202);
                    answered = true;
                } else if msg["id"] == 2 {
                    return msg;
                }
            }
        }
    })
    .await
    .expect("the call finished");
    assert!(answered, "the sampling request reached the client");
    let text = final_result["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("four, from the client"), "{final_result}");
    gw.stop().await;
}

#[tokio::test]
async fn stateless_client_gets_input_required_and_retries() {
    require_peers();
    let gw = TestGateway::start(gateway_config()).await;
    let post = |body: Value| {
        let name = body["params"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        gw.http
            .post(gw.url("/mcp"))
            .header("accept", ACCEPT)
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", name)
            .json(&body)
            .send()
    };
    let first = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "ev__trigger-sampling-request", "arguments": sampling_args(),
        "_meta": meta(json!({"sampling": {}}))}});
    let v: Value = post(first).await.unwrap().json().await.unwrap();
    let result = &v["result"];
    assert_eq!(result["resultType"], "input_required", "{v}");
    let (key, request) = result["inputRequests"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .unwrap();
    assert_eq!(request["method"], "sampling/createMessage", "{v}");
    let state = result["requestState"].as_str().unwrap().to_string();

    // A retry from someone who lost the state learns nothing.
    let bogus = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "ev__trigger-sampling-request", "arguments": sampling_args(),
        "requestState": "not-a-state", "inputResponses": {},
        "_meta": meta(json!({"sampling": {}}))}});
    let v: Value = post(bogus).await.unwrap().json().await.unwrap();
    assert_eq!(v["error"]["code"], -32602, "{v}");

    let retry = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "ev__trigger-sampling-request", "arguments": sampling_args(),
        "requestState": state,
        "inputResponses": {key.as_str(): {"role": "assistant",
            "content": {"type": "text", "text": "four, via MRTR"}, "model": "m", "stopReason": "endTurn"}},
        "_meta": meta(json!({"sampling": {}}))}});
    let v: Value = post(retry).await.unwrap().json().await.unwrap();
    assert_eq!(v["id"], 3, "{v}");
    assert_eq!(v["result"]["resultType"], "complete", "{v}");
    let text = v["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("four, via MRTR"), "{v}");
    gw.stop().await;
}

#[tokio::test]
async fn client_without_sampling_makes_the_upstream_get_an_error() {
    require_peers();
    let gw = TestGateway::start(gateway_config()).await;
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "ev__trigger-sampling-request", "arguments": sampling_args(),
        "_meta": meta(json!({}))}});
    let v: Value = gw
        .http
        .post(gw.url("/mcp"))
        .header("accept", ACCEPT)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "ev__trigger-sampling-request")
        .json(&call)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // server-everything reports the failed sampling as a tool error or a JSON-RPC error;
    // either way nothing hangs and no input is requested.
    assert_ne!(v["result"]["resultType"], "input_required", "{v}");
    let failed = v.get("error").is_some() || v["result"]["isError"] == true;
    assert!(failed, "{v}");
    gw.stop().await;
}
