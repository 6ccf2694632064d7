//! Protocol rules of the gateway's own MCP endpoint, checked on the wire with plain HTTP (no
//! SDK): the session generation at `/mcp` (version negotiation, `Mcp-Session-Id`, DELETE,
//! expiry, GET streams), the stateless 2026-07-28 generation (`server/discover`, mirrored
//! headers, `_meta` versions, `subscriptions/listen`), the legacy `/sse` + `/messages`
//! transport, Origin checks, id and progress-token remapping across many concurrent sessions,
//! and the tool naming policy.

mod common;
use common::*;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const STATELESS: &str = "2026-07-28";
const ACCEPT_BOTH: &str = "application/json, text/event-stream";
const HEADER_MISMATCH: i64 = -32020;
const UNSUPPORTED_VERSION: i64 = -32022;
const METHOD_NOT_FOUND: i64 = -32601;
const PARSE_ERROR: i64 = -32700;
const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// One test server `t`, plus extra YAML at the top level.
async fn gateway(top: &str, args: &[&str]) -> TestGateway {
    let yaml = format!("{top}servers:\n{}", test_server_yaml("t", args, ""));
    TestGateway::start(config(&yaml)).await
}

/// An HTTP answer: status, headers, and the body (JSON, or the SSE messages of a stream).
struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn is_sse(&self) -> bool {
        self.header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream"))
    }

    /// The JSON messages of an SSE body (`data:` of every event).
    fn sse(&self) -> Vec<Value> {
        assert!(self.is_sse(), "not an event stream: {:?}", self.headers);
        sse_events(&self.text)
            .into_iter()
            .map(|(_, data)| {
                serde_json::from_str(&data).unwrap_or_else(|e| panic!("bad data {data:?}: {e}"))
            })
            .collect()
    }

    /// The JSON-RPC answer: the body itself, or the last message of an SSE body.
    fn answer(&self) -> Value {
        if self.is_sse() {
            self.sse().pop().expect("an event stream with an answer")
        } else {
            self.json()
        }
    }

    /// Asserts an HTTP status and a JSON-RPC error code; returns the error object.
    fn error(&self, status: u16, code: i64) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        let v = self.json();
        assert_eq!(v["error"]["code"], code, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        v["error"].clone()
    }
}

/// `(event, data)` of every complete SSE event in `text` (comments and keep-alives skipped).
fn sse_events(text: &str) -> Vec<(String, String)> {
    text.split("\n\n").filter_map(parse_event).collect()
}

fn parse_event(raw: &str) -> Option<(String, String)> {
    let mut event = "message".to_string();
    let mut data: Vec<&str> = Vec::new();
    for line in raw.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            event = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    (!data.is_empty()).then(|| (event, data.join("\n")))
}

/// Sends a request with `headers` and reads the whole answer.
async fn send(req: reqwest::RequestBuilder, headers: &[(&str, &str)]) -> Reply {
    let mut req = req;
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.expect("HTTP request");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.expect("body");
    Reply {
        status,
        headers,
        text,
    }
}

/// `POST path` with a JSON body and the usual MCP `Accept`.
async fn post(gw: &TestGateway, path: &str, headers: &[(&str, &str)], body: &Value) -> Reply {
    post_text(gw, path, headers, &body.to_string()).await
}

async fn post_text(gw: &TestGateway, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let req = gw
        .http
        .post(gw.url(path))
        .header("content-type", "application/json")
        .header("accept", ACCEPT_BOTH)
        .body(body.to_string());
    send(req, headers).await
}

fn rpc(id: impl Into<Value>, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id.into(), "method": method, "params": params})
}

fn call_params(name: &str, args: Value) -> Value {
    json!({"name": name, "arguments": args})
}

/// `initialize` asking for `version`; returns (session id, result).
async fn initialize(gw: &TestGateway, version: &str, headers: &[(&str, &str)]) -> (String, Value) {
    let r = post(
        gw,
        "/mcp",
        headers,
        &rpc(
            0,
            "initialize",
            json!({
                "protocolVersion": version,
                "capabilities": {},
                "clientInfo": {"name": "endpoint-test", "version": "1.0.0"},
            }),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let sid = r
        .header("mcp-session-id")
        .unwrap_or_else(|| panic!("no Mcp-Session-Id in {:?}", r.headers))
        .to_string();
    let v = r.answer();
    assert_eq!(v["id"], 0, "{v}");
    (sid, v["result"].clone())
}

/// A ready session: `initialize` plus `notifications/initialized`.
async fn session(gw: &TestGateway) -> String {
    let (sid, _) = initialize(gw, "2025-11-25", &[]).await;
    let r = post(
        gw,
        "/mcp",
        &[("mcp-session-id", &sid)],
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    sid
}

/// A request inside session `sid`.
async fn in_session(gw: &TestGateway, sid: &str, body: &Value) -> Reply {
    post(
        gw,
        "/mcp",
        &[
            ("mcp-session-id", sid),
            ("mcp-protocol-version", "2025-11-25"),
        ],
        body,
    )
    .await
}

/// A 2026-07-28 request body: `params` plus the required `_meta`.
fn stateless_body(id: impl Into<Value>, method: &str, params: Value) -> Value {
    let mut params = params;
    let meta = &mut params["_meta"];
    if meta.is_null() {
        *meta = json!({});
    }
    meta["io.modelcontextprotocol/protocolVersion"] = json!(STATELESS);
    meta["io.modelcontextprotocol/clientCapabilities"] = json!({});
    meta["io.modelcontextprotocol/clientInfo"] =
        json!({"name": "endpoint-test", "version": "1.0.0"});
    rpc(id, method, params)
}

/// A 2026-07-28 request with the headers mirroring its body.
async fn stateless(gw: &TestGateway, id: i64, method: &str, params: Value) -> Reply {
    let name = params["name"].as_str().map(str::to_string);
    let mut headers = vec![("mcp-protocol-version", STATELESS), ("mcp-method", method)];
    if let Some(n) = &name {
        headers.push(("mcp-name", n));
    }
    post(gw, "/mcp", &headers, &stateless_body(id, method, params)).await
}

/// Text of the first content item of a JSON-RPC tool result.
fn result_text(v: &Value) -> &str {
    v["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text result in {v}"))
}

fn tool_names(result: &Value) -> Vec<String> {
    result["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {result}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// An open event stream, read incrementally.
struct Stream {
    res: reqwest::Response,
    buf: String,
}

impl Stream {
    async fn open(req: reqwest::RequestBuilder) -> Stream {
        let res = req.send().await.expect("open stream");
        assert_eq!(res.status().as_u16(), 200, "{:?}", res.headers());
        let ct = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert!(ct.starts_with("text/event-stream"), "content-type {ct:?}");
        Stream {
            res,
            buf: String::new(),
        }
    }

    /// The next event, `None` when the stream ended; panics after `limit`.
    async fn next(&mut self, limit: Duration) -> Option<(String, String)> {
        let deadline = Instant::now() + limit;
        loop {
            while let Some(pos) = self.buf.find("\n\n") {
                let raw: String = self.buf.drain(..pos + 2).collect();
                if let Some(ev) = parse_event(&raw) {
                    return Some(ev);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.res.chunk()).await {
                Err(_) => panic!("no event within {limit:?} (buffered: {:?})", self.buf),
                Ok(Ok(Some(chunk))) => self.buf.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(Ok(None)) => return None,
                Ok(Err(e)) => panic!("stream failed: {e}"),
            }
        }
    }

    /// The next JSON message.
    async fn message(&mut self, limit: Duration) -> Value {
        let (_, data) = self.next(limit).await.expect("stream ended early");
        serde_json::from_str(&data).unwrap_or_else(|e| panic!("bad data {data:?}: {e}"))
    }

    /// Skips messages until one satisfies `pred`.
    async fn until(&mut self, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self.message(left).await;
            if pred(&v) {
                return v;
            }
        }
    }

    /// Asserts the stream ends within `limit` (skipping whatever is still queued).
    async fn ends(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self
            .next(deadline.saturating_duration_since(Instant::now()))
            .await
            .is_some()
        {}
    }
}

/// `GET /mcp` stream of session `sid`.
async fn get_stream(gw: &TestGateway, sid: &str) -> Stream {
    Stream::open(
        gw.http
            .get(gw.url("/mcp"))
            .header("accept", "text/event-stream")
            .header("mcp-session-id", sid),
    )
    .await
}

/// Number of entries in the request log.
async fn logged_calls(gw: &TestGateway) -> u64 {
    let (status, v) = gw.get("/api/v1/requests").await;
    assert_eq!(status, 200, "{v}");
    v["count"].as_u64().unwrap()
}

/// `mcpSessions` of `/api/v1/health`.
async fn live_sessions(gw: &TestGateway) -> u64 {
    let (status, v) = gw.get("/api/v1/health").await;
    assert!(status == 200 || status == 503, "{v}");
    v["mcpSessions"]
        .as_u64()
        .unwrap_or_else(|| panic!("no mcpSessions in {v}"))
}

const SHORT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------
// Session generation

#[tokio::test]
async fn initialize_negotiates_the_asked_version() {
    let gw = gateway("", &[]).await;
    let mut ids = HashSet::new();
    for (asked, expected) in [
        ("2025-03-26", "2025-03-26"),
        ("2025-06-18", "2025-06-18"),
        ("2025-11-25", "2025-11-25"),
        ("1999-01-01", "2025-11-25"),
        ("not-a-version", "2025-11-25"),
    ] {
        let (sid, result) = initialize(&gw, asked, &[]).await;
        assert_eq!(
            result["protocolVersion"], expected,
            "asked {asked}: {result}"
        );
        assert_eq!(result["serverInfo"]["name"], "mcp-gateway", "{result}");
        assert_eq!(
            result["capabilities"]["tools"]["listChanged"], true,
            "{result}"
        );
        assert!(
            sid.len() >= 16 && sid.bytes().all(|b| (0x21..=0x7e).contains(&b)),
            "session id must be long visible ASCII: {sid:?}"
        );
        assert!(ids.insert(sid.clone()), "session id reused: {sid}");
        // The session works, with the negotiated version in the header.
        let r = post(
            &gw,
            "/mcp",
            &[("mcp-session-id", &sid), ("mcp-protocol-version", expected)],
            &rpc(1, "tools/list", json!({})),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let names = tool_names(&r.answer()["result"]);
        assert!(names.contains(&"t__echo".to_string()), "{names:?}");
    }
    // ping answers an empty result.
    let sid = session(&gw).await;
    let r = in_session(&gw, &sid, &rpc(2, "ping", json!({}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.answer(), json!({"jsonrpc": "2.0", "id": 2, "result": {}}));
    gw.stop().await;
}

#[tokio::test]
async fn session_id_rules_delete_and_protocol_version_header() {
    let gw = gateway("", &[]).await;
    let list = rpc(1, "tools/list", json!({}));

    // No session id: 400, with the request id echoed.
    let r = post(&gw, "/mcp", &[], &list).await;
    r.error(400, -32600);
    assert!(
        r.json()["id"] == 1 || r.json()["id"].is_null(),
        "{}",
        r.text
    );
    // Unknown session id: 404.
    let r = post(
        &gw,
        "/mcp",
        &[("mcp-session-id", "0123456789abcdef")],
        &list,
    )
    .await;
    r.error(404, -32600);

    let sid = session(&gw).await;
    assert_eq!(live_sessions(&gw).await, 1);
    let r = in_session(&gw, &sid, &list).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // MCP-Protocol-Version: a bad value is 400, the request is not executed.
    for bad in ["2099-01-01", "garbage", ""] {
        let r = post(
            &gw,
            "/mcp",
            &[("mcp-session-id", &sid), ("mcp-protocol-version", bad)],
            &rpc(
                2,
                "tools/call",
                call_params("t__echo", json!({"text": "x"})),
            ),
        )
        .await;
        assert_eq!(r.status, 400, "header {bad:?}: {}", r.text);
        assert!(r.json()["error"]["code"].is_i64(), "{}", r.text);
    }
    assert_eq!(logged_calls(&gw).await, 0, "a rejected call was executed");
    // Without the header the session's version is assumed.
    let r = post(&gw, "/mcp", &[("mcp-session-id", &sid)], &list).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Client notifications and responses: 202, no body needed.
    let r = in_session(
        &gw,
        &sid,
        &json!({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let r = in_session(
        &gw,
        &sid,
        &json!({"jsonrpc": "2.0", "id": 99, "result": {}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);

    // GET without Accept: text/event-stream is 406; with an unknown session 404.
    let r = send(
        gw.http
            .get(gw.url("/mcp"))
            .header("mcp-session-id", &sid)
            .header("accept", "application/json"),
        &[],
    )
    .await;
    assert_eq!(r.status, 406, "{}", r.text);
    let r = send(
        gw.http
            .get(gw.url("/mcp"))
            .header("mcp-session-id", "ffffffffffffffffffffffffffffffff")
            .header("accept", "text/event-stream"),
        &[],
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text);

    // DELETE: 204, then the session is gone for every method; DELETE without id is 400.
    let mut stream = get_stream(&gw, &sid).await;
    let del = |sid: Option<&str>| {
        let mut req = gw.http.delete(gw.url("/mcp"));
        if let Some(s) = sid {
            req = req.header("mcp-session-id", s);
        }
        send(req, &[])
    };
    let r = del(None).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = del(Some(&sid)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    stream.ends(SHORT).await;
    assert_eq!(live_sessions(&gw).await, 0);
    let r = in_session(&gw, &sid, &list).await;
    r.error(404, -32600);
    let r = del(Some(&sid)).await;
    assert_eq!(r.status, 404, "{}", r.text);
    let r = send(
        gw.http
            .get(gw.url("/mcp"))
            .header("mcp-session-id", &sid)
            .header("accept", "text/event-stream"),
        &[],
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text);
    gw.stop().await;
}

#[tokio::test]
async fn idle_sessions_expire_but_streaming_ones_stay() {
    let gw = gateway("sessionIdleTimeout: 1\n", &[]).await;
    let idle = session(&gw).await;
    let streaming = session(&gw).await;
    let stream = get_stream(&gw, &streaming).await;
    assert_eq!(live_sessions(&gw).await, 2);
    // Idle for more than twice the timeout.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let list = rpc(1, "tools/list", json!({}));
    let r = in_session(&gw, &streaming, &list).await;
    assert_eq!(
        r.status, 200,
        "a session with an open stream is not idle: {}",
        r.text
    );
    let r = in_session(&gw, &idle, &list).await;
    assert_eq!(
        r.status, 404,
        "session idle for 2.5 s with sessionIdleTimeout: 1 still answered: {:.120}",
        r.text
    );
    // Its memory is released: only the streaming session is left.
    let deadline = Instant::now() + SHORT;
    while live_sessions(&gw).await != 1 {
        assert!(Instant::now() < deadline, "expired session still counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(stream);
    gw.stop().await;
}

#[tokio::test]
async fn get_stream_receives_list_changed() {
    let gw = gateway("", &["--generation", "session"]).await;
    let sid = session(&gw).await;
    let mut stream = get_stream(&gw, &sid).await;
    let r = in_session(
        &gw,
        &sid,
        &rpc(
            1,
            "tools/call",
            call_params("t__add_tool", json!({"name": "fresh"})),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(result_text(&r.answer()), "added fresh");
    let note = stream
        .until(SHORT, |v| v["method"] == "notifications/tools/list_changed")
        .await;
    assert!(note.get("id").is_none(), "a notification has no id: {note}");
    // The new tool is listed and callable.
    let r = in_session(&gw, &sid, &rpc(2, "tools/list", json!({}))).await;
    let names = tool_names(&r.answer()["result"]);
    assert!(names.contains(&"t__fresh".to_string()), "{names:?}");
    let r = in_session(
        &gw,
        &sid,
        &rpc(3, "tools/call", call_params("t__fresh", json!({}))),
    )
    .await;
    assert_eq!(result_text(&r.answer()), "dynamic fresh");
    drop(stream);
    gw.stop().await;
}

#[tokio::test]
async fn cancellation_is_per_session() {
    let gw = gateway("", &[]).await;
    let a = session(&gw).await;
    let b = session(&gw).await;
    // The same JSON-RPC id in both sessions; only A's call is cancelled.
    let long = rpc(
        5,
        "tools/call",
        call_params("t__sleep", json!({"ms": 30000})),
    );
    let short = rpc(
        5,
        "tools/call",
        call_params("t__sleep", json!({"ms": 2000})),
    );
    let done_a = std::sync::atomic::AtomicBool::new(false);
    let call_a = async {
        let r = in_session(&gw, &a, &long).await;
        done_a.store(true, std::sync::atomic::Ordering::SeqCst);
        r
    };
    let call_b = in_session(&gw, &b, &short);
    let cancel = async {
        // Until A's call ends (the first notifications may come before it is registered).
        let deadline = Instant::now() + Duration::from_secs(10);
        tokio::time::sleep(Duration::from_millis(200)).await;
        while !done_a.load(std::sync::atomic::Ordering::SeqCst) {
            assert!(
                Instant::now() < deadline,
                "session A's call was not cancelled"
            );
            let r = in_session(
                &gw,
                &a,
                &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                        "params": {"requestId": 5, "reason": "test"}}),
            )
            .await;
            assert_eq!(r.status, 202, "{}", r.text);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let (ra, rb, ()) = tokio::join!(call_a, call_b, cancel);
    let va = ra.answer();
    assert!(
        va.get("error").is_some() || va["result"]["isError"] == true,
        "A's cancelled call: {va}"
    );
    assert_eq!(
        result_text(&rb.answer()),
        "slept 2000",
        "B's call: {}",
        rb.text
    );
    // The upstream saw exactly one cancellation.
    let deadline = Instant::now() + SHORT;
    loop {
        let r = in_session(
            &gw,
            &b,
            &rpc(
                6,
                "tools/call",
                call_params("t__cancelled_count", json!({})),
            ),
        )
        .await;
        let n = result_text(&r.answer()).to_string();
        if n == "1" {
            break;
        }
        assert!(
            Instant::now() < deadline && n == "0",
            "cancelled_count = {n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gw.stop().await;
}

#[tokio::test]
async fn concurrent_sessions_get_their_own_ids_progress_and_results() {
    const SESSIONS: usize = 50;
    let yaml = format!(
        "servers:\n{}",
        test_server_yaml("t", &[], "    maxConcurrency: 64\n")
    );
    let gw = TestGateway::start(config(&yaml)).await;
    let sids =
        futures::future::join_all((0..SESSIONS).map(|_| initialize(&gw, "2025-11-25", &[]))).await;
    let sids: Vec<String> = sids.into_iter().map(|(s, _)| s).collect();
    assert_eq!(sids.iter().collect::<HashSet<_>>().len(), SESSIONS);

    // Every session: JSON-RPC id 1, progressToken "same", a different number of steps.
    let steps = |i: usize| 2 + (i % 7) as u64;
    let calls = sids.iter().enumerate().map(|(i, sid)| {
        let gw = &gw;
        async move {
            let mut params = call_params("t__progress", json!({"steps": steps(i)}));
            params["_meta"] = json!({"progressToken": "same"});
            (i, in_session(gw, sid, &rpc(1, "tools/call", params)).await)
        }
    });
    // Meanwhile, stateless callers with the same id and token.
    let stateless_calls = (0..10u64).map(|k| {
        let gw = &gw;
        async move {
            let mut params = call_params("t__progress", json!({"steps": 3 + k % 3}));
            params["_meta"] = json!({"progressToken": "same"});
            let body = stateless_body(1, "tools/call", params);
            let r = post(
                gw,
                "/mcp",
                &[
                    ("mcp-protocol-version", STATELESS),
                    ("mcp-method", "tools/call"),
                    ("mcp-name", "t__progress"),
                ],
                &body,
            )
            .await;
            (3 + k % 3, r)
        }
    });
    let (session_results, stateless_results) = tokio::join!(
        futures::future::join_all(calls),
        futures::future::join_all(stateless_calls)
    );
    let check = |who: String, n: u64, r: &Reply| {
        assert_eq!(r.status, 200, "{who}: {}", r.text);
        let msgs = r.sse();
        let (last, progress) = msgs.split_last().expect("messages");
        assert_eq!(last["id"], 1, "{who}: {last}");
        assert_eq!(
            result_text(last),
            format!("progress done ({n} steps)"),
            "{who}"
        );
        let values: Vec<u64> = progress
            .iter()
            .map(|p| {
                assert_eq!(p["method"], "notifications/progress", "{who}: {p}");
                assert_eq!(p["params"]["progressToken"], "same", "{who}: {p}");
                assert_eq!(p["params"]["total"], n, "{who}: {p}");
                p["params"]["progress"].as_u64().unwrap()
            })
            .collect();
        assert_eq!(
            values,
            (1..=n).collect::<Vec<_>>(),
            "{who}: progress values"
        );
    };
    for (i, r) in &session_results {
        check(format!("session {i}"), steps(*i), r);
    }
    for (k, (n, r)) in stateless_results.iter().enumerate() {
        check(format!("stateless caller {k}"), *n, r);
        assert_eq!(r.answer()["result"]["resultType"], "complete");
    }

    // Plain JSON answers too: the same id in every session, each gets its own echo.
    let echoes = futures::future::join_all(sids.iter().enumerate().map(|(i, sid)| {
        let gw = &gw;
        async move {
            let r = in_session(
                gw,
                sid,
                &rpc(
                    "x",
                    "tools/call",
                    call_params("t__echo", json!({"text": format!("session {i}")})),
                ),
            )
            .await;
            (i, r)
        }
    }))
    .await;
    for (i, r) in echoes {
        let v = r.answer();
        assert_eq!(v["id"], "x", "{v}");
        assert_eq!(result_text(&v), format!("session {i}"));
    }
    gw.stop().await;
}

// ---------------------------------------------------------------------------------------
// Stateless 2026-07-28

#[tokio::test]
async fn stateless_discover_lists_and_calls() {
    let gw = gateway("", &["--generation", "stateless"]).await;
    let r = stateless(&gw, 1, "server/discover", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.answer();
    assert_eq!(v["id"], 1);
    let res = &v["result"];
    let versions = res["supportedVersions"]
        .as_array()
        .expect("supportedVersions");
    assert!(versions.contains(&json!(STATELESS)), "{res}");
    assert!(res["capabilities"]["tools"].is_object(), "{res}");
    assert_eq!(res["resultType"], "complete", "{res}");
    assert!(res["ttlMs"].as_u64().is_some(), "{res}");
    assert!(
        matches!(res["cacheScope"].as_str(), Some("public" | "private")),
        "{res}"
    );

    let r = stateless(&gw, 2, "tools/list", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let res = r.answer()["result"].clone();
    assert_eq!(res["resultType"], "complete", "{res}");
    assert!(res["ttlMs"].as_u64().is_some(), "{res}");
    assert!(
        matches!(res["cacheScope"].as_str(), Some("public" | "private")),
        "{res}"
    );
    let names = tool_names(&res);
    assert!(names.contains(&"t__echo".to_string()), "{names:?}");

    let r = stateless(
        &gw,
        3,
        "tools/call",
        call_params("t__echo", json!({"text": "hi"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.answer();
    assert_eq!(result_text(&v), "hi");
    assert_eq!(v["result"]["resultType"], "complete", "{v}");
    // No session is created by stateless requests.
    assert!(r.header("mcp-session-id").is_none());
    assert_eq!(live_sessions(&gw).await, 0);

    // Progress on a stateless call arrives on the answer's event stream.
    let mut params = call_params("t__progress", json!({"steps": 3}));
    params["_meta"] = json!({"progressToken": 42});
    let r = stateless(&gw, 4, "tools/call", params).await;
    let msgs = r.sse();
    let progress: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 3, "{msgs:?}");
    assert!(progress.iter().all(|p| p["params"]["progressToken"] == 42));
    assert_eq!(result_text(msgs.last().unwrap()), "progress done (3 steps)");

    // An unknown method: 404 with -32601.
    let r = stateless(&gw, 5, "no/such/method", json!({})).await;
    r.error(404, METHOD_NOT_FOUND);
    // A session-generation method is unknown in this generation.
    let r = stateless(&gw, 6, "ping", json!({})).await;
    r.error(404, METHOD_NOT_FOUND);
    gw.stop().await;
}

#[tokio::test]
async fn stateless_header_checks() {
    let gw = gateway("", &[]).await;
    let echo = stateless_body(
        1,
        "tools/call",
        call_params("t__echo", json!({"text": "x"})),
    );
    let full = [
        ("mcp-protocol-version", STATELESS),
        ("mcp-method", "tools/call"),
        ("mcp-name", "t__echo"),
    ];
    let without = |skip: &str| -> Vec<(&str, &str)> {
        full.iter().copied().filter(|(k, _)| *k != skip).collect()
    };
    for missing in ["mcp-protocol-version", "mcp-method", "mcp-name"] {
        let r = post(&gw, "/mcp", &without(missing), &echo).await;
        r.error(400, HEADER_MISMATCH);
        assert_eq!(r.json()["id"], 1, "{}", r.text);
    }
    // Headers that contradict the body.
    for (k, v) in [
        ("mcp-protocol-version", "2025-11-25"),
        ("mcp-method", "tools/list"),
        ("mcp-name", "t__add"),
    ] {
        let mut h = without(k);
        h.push((k, v));
        let r = post(&gw, "/mcp", &h, &echo).await;
        r.error(400, HEADER_MISMATCH);
    }
    assert_eq!(logged_calls(&gw).await, 0, "a rejected call was executed");

    // A mismatching Mcp-Name never routes: the body's tool is not run.
    let add = stateless_body(
        2,
        "tools/call",
        call_params("t__add_tool", json!({"name": "smuggled"})),
    );
    let r = post(
        &gw,
        "/mcp",
        &[
            ("mcp-protocol-version", STATELESS),
            ("mcp-method", "tools/call"),
            ("mcp-name", "t__echo"),
        ],
        &add,
    )
    .await;
    r.error(400, HEADER_MISMATCH);
    assert_eq!(
        logged_calls(&gw).await,
        0,
        "the mismatching call was executed"
    );
    let r = stateless(&gw, 3, "tools/list", json!({})).await;
    let names = tool_names(&r.answer()["result"]);
    assert!(!names.iter().any(|n| n.contains("smuggled")), "{names:?}");

    // The base64 form of Mcp-Name is accepted.
    let body = stateless_body(
        4,
        "tools/call",
        call_params("t__echo", json!({"text": "b64"})),
    );
    let r = post(
        &gw,
        "/mcp",
        &[
            ("mcp-protocol-version", STATELESS),
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?dF9fZWNobw==?="),
        ],
        &body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(result_text(&r.answer()), "b64");
    assert_eq!(logged_calls(&gw).await, 1);

    // An unsupported _meta version: -32022 with the supported ones.
    let mut body = stateless_body(5, "tools/list", json!({}));
    body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let r = post(
        &gw,
        "/mcp",
        &[
            ("mcp-protocol-version", "2099-01-01"),
            ("mcp-method", "tools/list"),
        ],
        &body,
    )
    .await;
    let e = r.error(400, UNSUPPORTED_VERSION);
    let supported = e["data"]["supported"].as_array().expect("data.supported");
    assert!(supported.contains(&json!(STATELESS)), "{e}");
    gw.stop().await;
}

#[tokio::test]
async fn subscriptions_listen_delivers_tagged_list_changed() {
    let gw = gateway("", &["--generation", "stateless"]).await;
    let body = stateless_body(
        "sub-1",
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true}}),
    );
    let mut stream = Stream::open(
        gw.http
            .post(gw.url("/mcp"))
            .header("content-type", "application/json")
            .header("accept", ACCEPT_BOTH)
            .header("mcp-protocol-version", STATELESS)
            .header("mcp-method", "subscriptions/listen")
            .body(body.to_string()),
    )
    .await;
    let ack = stream.message(SHORT).await;
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    assert_eq!(ack["params"]["_meta"][SUBSCRIPTION_ID], "sub-1", "{ack}");
    assert_eq!(
        ack["params"]["notifications"]["toolsListChanged"], true,
        "{ack}"
    );

    let r = stateless(
        &gw,
        2,
        "tools/call",
        call_params("t__add_tool", json!({"name": "fresh"})),
    )
    .await;
    assert_eq!(result_text(&r.answer()), "added fresh");
    let note = stream
        .until(SHORT, |v| v["method"] == "notifications/tools/list_changed")
        .await;
    assert_eq!(note["params"]["_meta"][SUBSCRIPTION_ID], "sub-1", "{note}");
    let r = stateless(&gw, 3, "tools/list", json!({})).await;
    let names = tool_names(&r.answer()["result"]);
    assert!(names.contains(&"t__fresh".to_string()), "{names:?}");
    drop(stream);
    gw.stop().await;
}

// ---------------------------------------------------------------------------------------
// Legacy HTTP+SSE

#[tokio::test]
async fn legacy_sse_transport() {
    let gw = gateway("", &[]).await;
    let mut stream = Stream::open(
        gw.http
            .get(gw.url("/sse"))
            .header("accept", "text/event-stream"),
    )
    .await;
    let (event, endpoint) = stream.next(SHORT).await.expect("endpoint event");
    assert_eq!(event, "endpoint");
    assert!(
        endpoint.starts_with("/messages?sessionId="),
        "endpoint {endpoint:?}"
    );

    let r = post(
        &gw,
        &endpoint,
        &[],
        &rpc(
            1,
            "initialize",
            json!({"protocolVersion": "2024-11-05", "capabilities": {},
                   "clientInfo": {"name": "legacy", "version": "1"}}),
        ),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let v = stream.message(SHORT).await;
    assert_eq!(v["id"], 1, "{v}");
    assert_eq!(v["result"]["protocolVersion"], "2024-11-05", "{v}");
    assert_eq!(v["result"]["serverInfo"]["name"], "mcp-gateway", "{v}");
    let r = post(
        &gw,
        &endpoint,
        &[],
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);

    let r = post(&gw, &endpoint, &[], &rpc(2, "tools/list", json!({}))).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let v = stream.message(SHORT).await;
    assert_eq!(v["id"], 2, "{v}");
    assert!(tool_names(&v["result"]).contains(&"t__echo".to_string()));

    let mut params = call_params("t__progress", json!({"steps": 3}));
    params["_meta"] = json!({"progressToken": "p"});
    let r = post(&gw, &endpoint, &[], &rpc(3, "tools/call", params)).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let mut progress = Vec::new();
    let answer = loop {
        let v = stream.message(SHORT).await;
        if v["method"] == "notifications/progress" {
            assert_eq!(v["params"]["progressToken"], "p", "{v}");
            progress.push(v["params"]["progress"].as_u64().unwrap());
        } else {
            break v;
        }
    };
    assert_eq!(progress, [1, 2, 3]);
    assert_eq!(answer["id"], 3, "{answer}");
    assert_eq!(result_text(&answer), "progress done (3 steps)");

    // Unknown or missing session ids; a /mcp session is not a legacy one.
    let list = rpc(4, "tools/list", json!({}));
    let r = post(&gw, "/messages?sessionId=nope", &[], &list).await;
    assert_eq!(r.status, 404, "{}", r.text);
    let r = post(&gw, "/messages", &[], &list).await;
    assert!(r.status == 404 || r.status == 400, "{}", r.text);
    let sid = session(&gw).await;
    let r = post(&gw, &format!("/messages?sessionId={sid}"), &[], &list).await;
    assert_eq!(r.status, 404, "{}", r.text);
    // Malformed JSON.
    let r = post_text(&gw, &endpoint, &[], "{not json").await;
    r.error(400, PARSE_ERROR);
    drop(stream);
    gw.stop().await;
}

// ---------------------------------------------------------------------------------------
// Framing, Origin

#[tokio::test]
async fn batches_and_malformed_json_are_rejected() {
    let gw = gateway("", &[]).await;
    let sid = session(&gw).await;
    let batch = json!([rpc(1, "tools/list", json!({})), rpc(2, "ping", json!({}))]);
    let r = post(&gw, "/mcp", &[("mcp-session-id", &sid)], &batch).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.json()["error"]["code"].is_i64(), "{}", r.text);
    for bad in ["{not json", "", "42", "{\"jsonrpc\":\"2.0\",\"id\":1,"] {
        let r = post_text(&gw, "/mcp", &[("mcp-session-id", &sid)], bad).await;
        assert_eq!(r.status, 400, "{bad:?}: {}", r.text);
        if bad.starts_with('{') {
            r.error(400, PARSE_ERROR);
        }
    }
    // The session still works.
    let r = in_session(&gw, &sid, &rpc(3, "tools/list", json!({}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    gw.stop().await;
}

#[tokio::test]
async fn request_bodies_are_limited_by_max_body_bytes() {
    // 3 MiB is over axum's own default limit for a buffered body (2 MiB) and under the
    // limit configured here.
    let gw = gateway("maxBodyBytes: 4194304\n", &[]).await;
    let sid = session(&gw).await;
    let text = "y".repeat(3 * 1024 * 1024);
    let call = rpc(
        2,
        "tools/call",
        call_params("t__echo", json!({ "text": text })),
    );
    let r = in_session(&gw, &sid, &call).await;
    assert_eq!(r.status, 200, "{}", &r.text[..r.text.len().min(300)]);
    assert_eq!(result_text(&r.answer()).len(), text.len());
    // Over the limit: a JSON-RPC error naming it, and the session goes on.
    let text = "z".repeat(5 * 1024 * 1024);
    let call = rpc(
        3,
        "tools/call",
        call_params("t__echo", json!({ "text": text })),
    );
    let r = in_session(&gw, &sid, &call).await;
    let e = r.error(413, -32600);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("4194304 bytes (maxBodyBytes)"),
        "{e}"
    );
    let r = in_session(&gw, &sid, &rpc(4, "tools/list", json!({}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(logged_calls(&gw).await, 1);
    // A legacy message for no session is refused as such, before its body is read.
    let r = post(&gw, "/messages?sessionId=nope", &[], &call).await;
    let e = r.error(404, -32600);
    assert!(
        e["message"].as_str().unwrap().contains("unknown sessionId"),
        "{e}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn origin_is_checked() {
    let gw = gateway("corsOrigins: [\"https://app.example.com\"]\n", &[]).await;
    let sid = session(&gw).await;
    let init = rpc(
        1,
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {},
               "clientInfo": {"name": "o", "version": "1"}}),
    );
    for evil in [
        "http://evil.example",
        "https://evil.example:443",
        "http://localhost.evil.example",
        "http://127.0.0.1.evil.example:3000",
    ] {
        let o = [("origin", evil)];
        let r = post(&gw, "/mcp", &o, &init).await;
        assert_eq!(r.status, 403, "POST /mcp from {evil}: {}", r.text);
        assert!(r.header("mcp-session-id").is_none());
        let r = post(
            &gw,
            "/mcp",
            &[("origin", evil), ("mcp-session-id", &sid)],
            &rpc(
                2,
                "tools/call",
                call_params("t__echo", json!({"text": "x"})),
            ),
        )
        .await;
        assert_eq!(
            r.status, 403,
            "POST /mcp in session from {evil}: {}",
            r.text
        );
        let r = send(
            gw.http
                .get(gw.url("/mcp"))
                .header("accept", "text/event-stream")
                .header("mcp-session-id", &sid),
            &o,
        )
        .await;
        assert_eq!(r.status, 403, "GET /mcp from {evil}: {}", r.text);
        let r = send(
            gw.http
                .delete(gw.url("/mcp"))
                .header("mcp-session-id", &sid),
            &o,
        )
        .await;
        assert_eq!(r.status, 403, "DELETE /mcp from {evil}: {}", r.text);
        let r = send(
            gw.http
                .get(gw.url("/sse"))
                .header("accept", "text/event-stream"),
            &o,
        )
        .await;
        assert_eq!(r.status, 403, "GET /sse from {evil}: {}", r.text);
        let r = stateless(&gw, 3, "tools/list", json!({})).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = post(
            &gw,
            "/mcp",
            &[
                ("origin", evil),
                ("mcp-protocol-version", STATELESS),
                ("mcp-method", "tools/list"),
            ],
            &stateless_body(3, "tools/list", json!({})),
        )
        .await;
        assert_eq!(r.status, 403, "stateless POST from {evil}: {}", r.text);
    }
    assert_eq!(logged_calls(&gw).await, 0, "a call from a bad origin ran");
    // The session survived the forbidden DELETEs.
    let r = in_session(&gw, &sid, &rpc(4, "tools/list", json!({}))).await;
    assert_eq!(r.status, 200, "{}", r.text);

    for good in [
        "http://localhost:3000",
        "http://127.0.0.1:8080",
        "http://[::1]:5173",
        "https://app.example.com",
    ] {
        let (sid, _) = initialize(&gw, "2025-11-25", &[("origin", good)]).await;
        let r = post(
            &gw,
            "/mcp",
            &[("origin", good), ("mcp-session-id", &sid)],
            &rpc(5, "tools/list", json!({})),
        )
        .await;
        assert_eq!(r.status, 200, "{good}: {}", r.text);
        let mut s = Stream::open(
            gw.http
                .get(gw.url("/sse"))
                .header("accept", "text/event-stream")
                .header("origin", good),
        )
        .await;
        let (event, _) = s.next(SHORT).await.expect("endpoint event");
        assert_eq!(event, "endpoint");
        let r = send(
            gw.http
                .delete(gw.url("/mcp"))
                .header("mcp-session-id", &sid),
            &[("origin", good)],
        )
        .await;
        assert_eq!(r.status, 204, "{good}: {}", r.text);
    }
    gw.stop().await;
}

// ---------------------------------------------------------------------------------------
// Tool naming

/// Names the gateway lists on `/mcp` (one session).
async fn listed(gw: &TestGateway) -> (String, Vec<String>) {
    let sid = session(gw).await;
    let r = in_session(gw, &sid, &rpc(1, "tools/list", json!({}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let names = tool_names(&r.answer()["result"]);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "tools/list is not in a deterministic order");
    assert_eq!(
        names.iter().collect::<HashSet<_>>().len(),
        names.len(),
        "duplicate names: {names:?}"
    );
    for n in &names {
        assert!(
            !n.is_empty()
                && n.len() <= 64
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "invalid tool name {n:?}"
        );
    }
    (sid, names)
}

/// Calls `name` on `/mcp` and returns the server the request log says ran it.
async fn served_by(gw: &TestGateway, sid: &str, name: &str) -> String {
    let r = in_session(
        gw,
        sid,
        &rpc(9, "tools/call", call_params(name, json!({"text": name}))),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(result_text(&r.answer()), name, "{}", r.text);
    let (_, log) = gw.get("/api/v1/requests?limit=1").await;
    let entry = &log["requests"][0];
    assert_eq!(entry["tool"], "echo", "{log}");
    entry["server"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn bare_naming_first_server_keeps_the_name() {
    let yaml = format!(
        "toolNaming: bare\nservers:\n{}{}{}{}",
        test_server_yaml("first", &[], ""),
        test_server_yaml("second", &[], ""),
        test_server_yaml("third", &[], "    toolPrefix: tp\n"),
        test_server_yaml("fourth", &["--prefix", "f_"], ""),
    );
    let gw = TestGateway::start(config(&yaml)).await;
    let (sid, names) = listed(&gw).await;
    for n in ["echo", "second__echo", "tp__echo", "f_echo"] {
        assert!(names.contains(&n.to_string()), "{n} missing: {names:?}");
    }
    for n in ["first__echo", "fourth__f_echo", "third__echo"] {
        assert!(!names.contains(&n.to_string()), "{n} listed: {names:?}");
    }
    // 12 built-in tools per server, none lost.
    assert_eq!(names.len(), 48, "{names:?}");
    assert_eq!(served_by(&gw, &sid, "echo").await, "first");
    assert_eq!(served_by(&gw, &sid, "second__echo").await, "second");
    assert_eq!(served_by(&gw, &sid, "tp__echo").await, "third");
    let r = in_session(
        &gw,
        &sid,
        &rpc(
            10,
            "tools/call",
            call_params("f_echo", json!({"text": "four"})),
        ),
    )
    .await;
    assert_eq!(result_text(&r.answer()), "four");
    gw.stop().await;
}

#[tokio::test]
async fn prefixed_naming_and_tool_prefix_override() {
    let yaml = format!(
        "servers:\n{}{}{}",
        test_server_yaml("alpha", &[], ""),
        test_server_yaml("beta", &[], "    toolPrefix: b\n"),
        test_server_yaml("gamma", &[], "    toolPrefix: \"\"\n"),
    );
    let gw = TestGateway::start(config(&yaml)).await;
    let (sid, names) = listed(&gw).await;
    for n in ["alpha__echo", "b__echo", "echo"] {
        assert!(names.contains(&n.to_string()), "{n} missing: {names:?}");
    }
    assert!(!names.contains(&"beta__echo".to_string()), "{names:?}");
    assert!(!names.contains(&"gamma__echo".to_string()), "{names:?}");
    assert_eq!(names.len(), 36, "{names:?}");
    assert_eq!(served_by(&gw, &sid, "alpha__echo").await, "alpha");
    assert_eq!(served_by(&gw, &sid, "b__echo").await, "beta");
    assert_eq!(served_by(&gw, &sid, "echo").await, "gamma");
    // An exposed name that does not exist is an error, not a guess.
    let r = in_session(
        &gw,
        &sid,
        &rpc(
            11,
            "tools/call",
            call_params("beta__echo", json!({"text": "x"})),
        ),
    )
    .await;
    let v = r.answer();
    assert!(
        v.get("error").is_some() || v["result"]["isError"] == true,
        "{v}"
    );
    gw.stop().await;
}

// ---------------------------------------------------------------------------------------
// Shutdown

#[tokio::test]
async fn stop_ends_open_notification_streams() {
    // shutdownTimeout bounds in-flight calls; idle notification streams (every connected
    // Streamable HTTP, legacy SSE or 2026-07-28 listening client has one) must not hold it up.
    let gw = gateway("shutdownTimeout: 8000\n", &[]).await;
    let sid = session(&gw).await;
    let mut get = get_stream(&gw, &sid).await;
    let mut sse = Stream::open(
        gw.http
            .get(gw.url("/sse"))
            .header("accept", "text/event-stream"),
    )
    .await;
    assert_eq!(sse.next(SHORT).await.expect("endpoint event").0, "endpoint");
    let mut listen = Stream::open(
        gw.http
            .post(gw.url("/mcp"))
            .header("content-type", "application/json")
            .header("accept", ACCEPT_BOTH)
            .header("mcp-protocol-version", STATELESS)
            .header("mcp-method", "subscriptions/listen")
            .body(
                stateless_body(
                    1,
                    "subscriptions/listen",
                    json!({"notifications": {"toolsListChanged": true}}),
                )
                .to_string(),
            ),
    )
    .await;
    listen.message(SHORT).await;
    let gateway = gw.gateway.clone();
    let streams_end = async {
        get.ends(SHORT).await;
        sse.ends(SHORT).await;
        listen.ends(SHORT).await;
    };
    tokio::join!(gateway.stop(), streams_end);
}
