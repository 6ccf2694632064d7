//! End-to-end tests of the REST API against the deterministic test MCP server: discovery,
//! routing, concurrency, timeouts, crashes, garbage output, list changes, error mapping,
//! input validation, metrics, the request log, protocol generations and health probes.

mod common;
use common::*;
use serde_json::{Value, json};
use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` every 50 ms until it yields `Some`, panicking after `limit`.
async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET /api/v1/servers/{id}`, asserting 200.
async fn server(gw: &TestGateway, id: &str) -> Value {
    let (status, v) = gw.get(&format!("/api/v1/servers/{id}")).await;
    assert_eq!(status, 200, "{v}");
    v
}

/// Waits until server `id` is healthy and has restarted at least `restarts` times.
async fn wait_healthy(gw: &TestGateway, id: &str, restarts: u64) -> Value {
    wait_for(
        &format!("{id} healthy with restarts >= {restarts}"),
        Duration::from_secs(10),
        || async {
            let v = server(gw, id).await;
            (v["status"] == "healthy" && v["restarts"].as_u64().unwrap_or(0) >= restarts)
                .then_some(v)
        },
    )
    .await
}

/// The `error` object of an error answer, checking status and code.
fn error<'a>(status: u16, v: &'a Value, want_status: u16, want_code: &str) -> &'a Value {
    assert_eq!(status, want_status, "{v}");
    let e = &v["error"];
    assert_eq!(e["code"], want_code, "{v}");
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    e
}

fn message(e: &Value) -> &str {
    e["message"].as_str().unwrap()
}

/// Names of a tools array.
fn names(tools: &Value) -> Vec<String> {
    tools
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {tools}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// A path that certainly does not exist, as a server command.
const MISSING_COMMAND: &str = "/nonexistent/mcp-gateway-test/no-such-server";

#[tokio::test]
async fn discovery_follows_pagination_and_filters() {
    let yaml = format!(
        "servers:\n{}{}",
        test_server_yaml(
            "paged",
            &["--page-size", "3", "--tools", "7"],
            "    tags: [alpha, shared]\n"
        ),
        test_server_yaml("plain", &["--prefix", "p_"], "    tags: [beta, shared]\n"),
    );
    let gw = TestGateway::start(config(&yaml)).await;

    // 12 built-in tools + tool_0..tool_6, listed 3 per page upstream.
    let (status, v) = gw.get("/api/v1/tools?server=paged").await;
    assert_eq!(status, 200, "{v}");
    let paged = names(&v["tools"]);
    assert_eq!(paged.len(), 19, "{paged:?}");
    assert_eq!(v["count"], 19);
    for i in 0..7 {
        assert!(
            paged.contains(&format!("tool_{i}")),
            "tool_{i} missing: {paged:?}"
        );
    }
    for t in ["echo", "add", "sleep", "crash", "big"] {
        assert!(paged.contains(&t.to_string()), "{t} missing: {paged:?}");
    }
    let unique: std::collections::HashSet<_> = paged.iter().collect();
    assert_eq!(unique.len(), 19, "duplicates across pages: {paged:?}");
    for t in v["tools"].as_array().unwrap() {
        assert_eq!(t["server"], "paged");
        assert_eq!(
            t["qualifiedName"],
            format!("paged__{}", t["name"].as_str().unwrap())
        );
    }

    // Tool counts in the server list.
    let (status, v) = gw.get("/api/v1/servers").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["count"], 2);
    let list = v["servers"].as_array().unwrap();
    let paged_entry = list
        .iter()
        .find(|s| s["id"] == "paged")
        .expect("paged listed");
    assert_eq!(paged_entry["toolCount"], 19, "{paged_entry}");
    assert_eq!(paged_entry["status"], "healthy");
    assert_eq!(paged_entry["transport"], "stdio");
    assert_eq!(paged_entry["enabled"], true);
    assert_eq!(paged_entry["tags"], json!(["alpha", "shared"]));
    let plain_entry = list
        .iter()
        .find(|s| s["id"] == "plain")
        .expect("plain listed");
    assert_eq!(plain_entry["toolCount"], 12, "{plain_entry}");

    // One server in full, tools with their schemas.
    let v = server(&gw, "paged").await;
    assert_eq!(v["id"], "paged");
    assert_eq!(v["toolCount"], 19);
    let tools = v["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 19);
    let echo = tools
        .iter()
        .find(|t| t["name"] == "echo")
        .expect("echo in detail");
    assert_eq!(echo["inputSchema"]["type"], "object", "{echo}");
    assert_eq!(
        echo["inputSchema"]["properties"]["text"]["type"], "string",
        "{echo}"
    );
    assert_eq!(echo["inputSchema"]["required"], json!(["text"]), "{echo}");
    assert!(
        echo["description"]
            .as_str()
            .is_some_and(|d| d.contains("Echoes")),
        "{echo}"
    );

    // Filters.
    let (status, v) = gw.get("/api/v1/tools").await;
    assert_eq!(status, 200);
    assert_eq!(v["count"], 31, "all tools of both servers");
    let (_, v) = gw.get("/api/v1/tools?server=plain").await;
    let plain = names(&v["tools"]);
    assert_eq!(plain.len(), 12);
    assert!(plain.iter().all(|n| n.starts_with("p_")), "{plain:?}");
    let (_, v) = gw.get("/api/v1/tools?tag=alpha").await;
    assert_eq!(v["count"], 19, "{v}");
    assert!(
        v["tools"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["server"] == "paged")
    );
    let (_, v) = gw.get("/api/v1/tools?tag=beta").await;
    assert_eq!(v["count"], 12);
    let (_, v) = gw.get("/api/v1/tools?tag=shared").await;
    assert_eq!(v["count"], 31);
    let (status, v) = gw.get("/api/v1/tools?tag=nobody").await;
    assert_eq!(status, 200);
    assert_eq!(v["count"], 0);
    let (_, v) = gw.get("/api/v1/tools?server=paged&tag=beta").await;
    assert_eq!(v["count"], 0, "server and tag filters combine: {v}");

    // Unknown server.
    let (status, v) = gw.get("/api/v1/servers/ghost").await;
    let e = error(status, &v, 404, "unknown_server");
    assert!(message(e).contains("ghost"), "{v}");
    // Not UTF-8: the same JSON error shape, not a text answer (issue 20, item 11).
    let (status, v) = gw.get("/api/v1/servers/%ff%fe").await;
    error(status, &v, 404, "unknown_server");
    let (status, v) = gw.get("/api/v1/tools?server=ghost").await;
    let e = error(status, &v, 404, "unknown_server");
    assert!(message(e).contains("ghost"), "{v}");

    // The paged tools are callable.
    let (status, v) = gw.call(json!({"tool": "tool_6"})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(text(&v), "tool_6");
    gw.stop().await;
}

#[tokio::test]
async fn routing_bare_qualified_ambiguous_unknown_disabled_and_down() {
    let yaml = format!(
        "servers:\n{}{}{}{}  - id: broken\n    command: {MISSING_COMMAND:?}\n",
        test_server_yaml("a", &["--name", "server-a"], ""),
        test_server_yaml("b", &["--name", "server-b"], ""),
        test_server_yaml("c", &["--prefix", "c_"], ""),
        test_server_yaml("off", &[], "    enabled: false\n"),
    );
    let gw = TestGateway::start(config(&yaml)).await;

    // A bare name offered by one server routes to it.
    let (status, v) = gw
        .call(json!({"tool": "c_echo", "arguments": {"text": "to c"}}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["server"], "c");
    assert_eq!(v["tool"], "c_echo");
    assert_eq!(text(&v), "to c");

    // A bare name offered by a and b is ambiguous.
    let (status, v) = gw
        .call(json!({"tool": "echo", "arguments": {"text": "x"}}))
        .await;
    let e = error(status, &v, 409, "ambiguous_tool");
    let mut servers: Vec<&str> = e["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    servers.sort();
    assert_eq!(servers, ["a", "b"], "{v}");
    assert!(
        message(e).contains("echo") && message(e).contains("a, b"),
        "{v}"
    );

    // "server" picks.
    for id in ["a", "b"] {
        let (status, v) = gw
            .call(json!({"tool": "echo", "server": id, "arguments": {"text": id}}))
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["server"], id);
        assert_eq!(text(&v), id);
    }
    // "server" with a qualified name of that server also works.
    let (status, v) = gw
        .call(json!({"tool": "b__echo", "server": "b", "arguments": {"text": "qb"}}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["server"], "b");

    // Qualified names.
    let (status, v) = gw
        .call(json!({"tool": "a__echo", "arguments": {"text": "qualified"}}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["server"], "a");
    assert_eq!(text(&v), "qualified");
    let (status, v) = gw
        .call(json!({"tool": "c__c_add", "arguments": {"a": 2, "b": 3}}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["server"], "c");
    assert_eq!(text(&v), "5");

    // Unknown tools.
    let (status, v) = gw.call(json!({"tool": "no_such_tool"})).await;
    let e = error(status, &v, 404, "unknown_tool");
    assert!(message(e).contains("no_such_tool"), "{v}");
    let (status, v) = gw.call(json!({"tool": "c_nothing", "server": "c"})).await;
    let e = error(status, &v, 404, "unknown_tool");
    assert!(message(e).contains("c_nothing"), "{v}");
    let (status, v) = gw.call(json!({"tool": "a__nothing"})).await;
    let e = error(status, &v, 404, "unknown_tool");
    assert!(message(e).contains("a__nothing"), "{v}");
    let (status, v) = gw.call(json!({"tool": "echo", "server": "ghost"})).await;
    let e = error(status, &v, 404, "unknown_server");
    assert!(message(e).contains("ghost"), "{v}");

    // Disabled server: listed, never started, 503 when targeted.
    let off = server(&gw, "off").await;
    assert_eq!(off["status"], "disabled", "{off}");
    assert_eq!(off["enabled"], false, "{off}");
    assert_eq!(off["toolCount"], 0, "{off}");
    let (status, v) = gw
        .call(json!({"tool": "echo", "server": "off", "arguments": {"text": "x"}}))
        .await;
    let e = error(status, &v, 503, "upstream_unavailable");
    assert!(
        message(e).contains("off") && message(e).contains("disabled"),
        "{v}"
    );
    let (status, v) = gw
        .call(json!({"tool": "off__echo", "arguments": {"text": "x"}}))
        .await;
    error(status, &v, 503, "upstream_unavailable");

    // A server whose command does not exist is down with a reason.
    let broken = wait_for("broken reported down", Duration::from_secs(5), || async {
        let v = server(&gw, "broken").await;
        (v["status"] == "down").then_some(v)
    })
    .await;
    let reason = broken["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no reason: {broken}"));
    assert!(
        reason.contains("could not start") && reason.contains(MISSING_COMMAND),
        "{broken}"
    );
    let (_, all) = gw.get("/api/v1/servers").await;
    let listed = all["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "broken")
        .unwrap()
        .clone();
    assert!(
        listed["error"]
            .as_str()
            .is_some_and(|r| r.contains("could not start")),
        "{listed}"
    );
    let (status, v) = gw
        .call(json!({"tool": "echo", "server": "broken", "arguments": {"text": "x"}}))
        .await;
    let e = error(status, &v, 503, "upstream_unavailable");
    assert!(message(e).contains("broken"), "{v}");

    // The others keep working.
    let (status, v) = gw
        .call(json!({"tool": "a__add", "arguments": {"a": 40, "b": 2}}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(text(&v), "42");
    gw.stop().await;
}

#[tokio::test]
async fn hundred_concurrent_calls_each_get_their_own_reply() {
    let yaml = format!(
        "servers:\n{}",
        test_server_yaml("t", &["--delay-ms", "5"], "    maxConcurrency: 8\n"),
    );
    let gw = TestGateway::start(config(&yaml)).await;
    let calls = (0..100).map(|i| {
        let gw = &gw;
        async move {
            let want = format!("message #{i} {}", "·".repeat(i % 7));
            let (status, v) = gw
                .call(json!({"tool": "echo", "arguments": {"text": want}}))
                .await;
            (i, want, status, v)
        }
    });
    let results = futures::future::join_all(calls).await;
    assert_eq!(results.len(), 100);
    for (i, want, status, v) in results {
        assert_eq!(status, 200, "call {i}: {v}");
        assert_eq!(text(&v), want, "call {i} got another call's reply");
        assert_eq!(v["server"], "t");
    }
    let (_, m) = gw.get("/api/v1/metrics").await;
    assert_eq!(m["tools"][0]["calls"], 100, "{m}");
    gw.stop().await;
}

#[tokio::test]
async fn max_concurrency_queues_excess_calls() {
    let yaml = format!(
        "servers:\n{}",
        test_server_yaml("t", &[], "    maxConcurrency: 2\n")
    );
    let gw = TestGateway::start(config(&yaml)).await;
    let start = Instant::now();
    let calls = (0..4).map(|_| gw.call(json!({"tool": "sleep", "arguments": {"ms": 300}})));
    for (status, v) in futures::future::join_all(calls).await {
        assert_eq!(status, 200, "{v}");
        assert_eq!(text(&v), "slept 300");
    }
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(550),
        "4 × 300 ms with maxConcurrency 2 took only {took:?}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn timeout_answers_504_and_cancels_upstream() {
    let yaml = format!(
        "servers:\n{}",
        test_server_yaml("slow", &[], "    timeout: 300\n")
    );
    let gw = TestGateway::start(config(&yaml)).await;
    let start = Instant::now();
    let (status, v) = gw
        .call(json!({"tool": "sleep", "arguments": {"ms": 5000}}))
        .await;
    let took = start.elapsed();
    let e = error(status, &v, 504, "upstream_timeout");
    assert!(
        message(e).contains("slow") && message(e).contains("300 ms"),
        "{v}"
    );
    assert!(
        took < Duration::from_secs(3),
        "timeout answer took {took:?}"
    );
    assert!(
        took >= Duration::from_millis(250),
        "answered before the deadline: {took:?}"
    );

    // The server was told (notifications/cancelled) and is still usable.
    let (status, v) = gw.call(json!({"tool": "cancelled_count"})).await;
    assert_eq!(status, 200, "{v}");
    let n: u64 = text(&v).parse().unwrap();
    assert!(
        n >= 1,
        "notifications/cancelled never reached the server: {v}"
    );
    let (status, v) = gw
        .call(json!({"tool": "echo", "arguments": {"text": "still here"}}))
        .await;
    assert_eq!(status, 200, "{v}");

    let (_, log) = gw.get("/api/v1/requests?status=timeout").await;
    assert_eq!(log["count"], 1, "{log}");
    assert_eq!(log["requests"][0]["status"], 504);
    assert_eq!(log["requests"][0]["tool"], "sleep");
    gw.stop().await;
}

#[tokio::test]
async fn crash_fails_pending_calls_fast_and_server_restarts() {
    let yaml = format!(
        "servers:\n{}",
        test_server_yaml("t", &[], "    timeout: 10000\n")
    );
    let gw = TestGateway::start(config(&yaml)).await;
    let pending = async {
        let start = Instant::now();
        let r = gw
            .call(json!({"tool": "sleep", "arguments": {"ms": 8000}}))
            .await;
        (r, start.elapsed())
    };
    let crash = async {
        // Give the sleep call a head start so it is in flight when the process dies.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let start = Instant::now();
        let r = gw.call(json!({"tool": "crash"})).await;
        (r, start.elapsed())
    };
    let (((s_status, s_v), s_took), ((c_status, c_v), c_took)) = futures::join!(pending, crash);

    let e = error(c_status, &c_v, 502, "upstream_error");
    assert!(message(e).contains("process exited"), "{c_v}");
    assert!(
        c_took < Duration::from_secs(3),
        "crash answer took {c_took:?}"
    );
    let e = error(s_status, &s_v, 502, "upstream_error");
    assert!(message(e).contains("process exited"), "{s_v}");
    assert!(
        s_took < Duration::from_secs(4),
        "pending call hung for {s_took:?}"
    );

    // Restarted by the supervisor; calls work again.
    let v = wait_healthy(&gw, "t", 1).await;
    assert_eq!(v["toolCount"], 12, "{v}");
    let (status, v) = gw
        .call(json!({"tool": "echo", "arguments": {"text": "back"}}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(text(&v), "back");
    let (_, prom) = get_text(&gw, "/metrics", None).await;
    assert!(
        prom.contains("mcp_gateway_upstream_restarts_total{server=\"t\"} 1"),
        "{prom}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn crash_after_n_calls_restarts() {
    let yaml = format!(
        "servers:\n{}",
        test_server_yaml("t", &["--crash-after", "2"], "    timeout: 10000\n")
    );
    let gw = TestGateway::start(config(&yaml)).await;
    for i in 0..2 {
        let (status, v) = gw
            .call(json!({"tool": "add", "arguments": {"a": i, "b": 1}}))
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(text(&v), (i + 1).to_string());
    }
    // The process exits right after its second answer: the next call fails fast, one way or
    // another (in flight when it died: 502; after the gateway noticed: 503).
    let start = Instant::now();
    let (status, v) = gw
        .call(json!({"tool": "echo", "arguments": {"text": "x"}}))
        .await;
    assert!(status == 502 || status == 503, "{status} {v}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );

    wait_healthy(&gw, "t", 1).await;
    for i in 0..2 {
        let (status, v) = gw
            .call(json!({"tool": "echo", "arguments": {"text": format!("again {i}")}}))
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(text(&v), format!("again {i}"));
    }
    // ...and it crashes again after two more, and comes back again.
    wait_healthy(&gw, "t", 2).await;
    let (status, v) = gw
        .call(json!({"tool": "echo", "arguments": {"text": "third life"}}))
        .await;
    assert_eq!(status, 200, "{v}");
    gw.stop().await;
}

#[tokio::test]
async fn garbage_lines_on_stdout_are_skipped() {
    let yaml = format!(
        "servers:\n{}",
        test_server_yaml("g", &["--garbage-on-start"], "")
    );
    let gw = TestGateway::start(config(&yaml)).await;
    assert_eq!(gw.started.servers.len(), 1);
    assert_eq!(
        gw.started.servers[0].outcome,
        mcp_gateway::StartOutcome::Ready(12)
    );
    let (status, v) = gw
        .call(json!({"tool": "echo", "arguments": {"text": "after garbage"}}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(text(&v), "after garbage");
    for _ in 0..3 {
        let (status, v) = gw.call(json!({"tool": "garbage"})).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(text(&v), "ok");
    }
    let (status, v) = gw
        .call(json!({"tool": "add", "arguments": {"a": 1.5, "b": 2}}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(text(&v), "3.5");
    let v = server(&gw, "g").await;
    assert_eq!(v["status"], "healthy");
    assert_eq!(
        v["restarts"], 0,
        "garbage must not kill the connection: {v}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn list_changed_makes_new_tool_callable() {
    let yaml = format!("servers:\n{}", test_server_yaml("t", &[], ""));
    let gw = TestGateway::start(config(&yaml)).await;
    let (status, v) = gw.call(json!({"tool": "dyn"})).await;
    error(status, &v, 404, "unknown_tool");

    let (status, v) = gw
        .call(json!({"tool": "add_tool", "arguments": {"name": "dyn"}}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(text(&v), "added dyn");

    let listed = wait_for("dyn listed", Duration::from_secs(5), || async {
        let (_, v) = gw.get("/api/v1/tools?server=t").await;
        names(&v["tools"]).contains(&"dyn".to_string()).then_some(v)
    })
    .await;
    assert_eq!(listed["count"], 13);
    let v = wait_for("dyn callable", Duration::from_secs(5), || async {
        let (status, v) = gw.call(json!({"tool": "dyn"})).await;
        (status == 200).then_some(v)
    })
    .await;
    assert_eq!(text(&v), "dynamic dyn");
    assert_eq!(server(&gw, "t").await["toolCount"], 13);
    let (status, v) = gw.call(json!({"tool": "t__dyn"})).await;
    assert_eq!(status, 200, "{v}");
    gw.stop().await;
}

#[tokio::test]
async fn tool_error_is_200_rpc_error_is_502() {
    let yaml = format!("servers:\n{}", test_server_yaml("t", &[], ""));
    let gw = TestGateway::start(config(&yaml)).await;
    let (status, v) = gw.call(json!({"tool": "fail"})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["isError"], true, "{v}");
    assert_eq!(text(&v), "tool failed on purpose");
    assert_eq!(v["server"], "t");

    let (status, v) = gw.call(json!({"tool": "error"})).await;
    let e = error(status, &v, 502, "upstream_error");
    assert!(message(e).contains("upstream error on purpose"), "{v}");
    assert!(message(e).contains("'t'"), "{v}");
    assert_eq!(e["upstream"]["code"], -32000, "{v}");

    // Invalid arguments are the server's -32602: a client error.
    let (status, v) = gw
        .call(json!({"tool": "echo", "arguments": {"text": 5}}))
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(message(&v["error"]).contains("text"), "{v}");
    gw.stop().await;
}

#[tokio::test]
async fn bad_input_is_rejected_and_gateway_keeps_serving() {
    let yaml = format!(
        "maxBodyBytes: 2048\nservers:\n{}",
        test_server_yaml("t", &[], "")
    );
    let gw = TestGateway::start(config(&yaml)).await;
    let post = |body: &'static str| gw.post_raw("/api/v1/tools/call", body);

    let (status, v) = post(r#"{"tool": "echo", "arguments": {"text": "x"}"#).await;
    error(status, &v, 400, "malformed_json");
    let (status, v) = post("not json at all").await;
    error(status, &v, 400, "malformed_json");
    let (status, v) = post(r#"{"arguments": {"text": "x"}}"#).await;
    let e = error(status, &v, 400, "invalid_request");
    assert!(message(e).contains("tool"), "{v}");
    let (status, v) = post(r#"{"tool": "echo", "arguments": [1]}"#).await;
    let e = error(status, &v, 400, "invalid_request");
    assert!(
        message(e).contains("arguments") && message(e).contains("object"),
        "{v}"
    );
    let (status, v) = post(r#"{"tool": "echo", "arguments": "text"}"#).await;
    error(status, &v, 400, "invalid_request");
    let (status, v) = post(r#"{"tool": "echo", "arguments": {"text": "x"}, "extra": 1}"#).await;
    let e = error(status, &v, 400, "invalid_request");
    assert!(message(e).contains("extra"), "{v}");
    let (status, v) = post(r#"{"tool": 5}"#).await;
    error(status, &v, 400, "invalid_request");
    let (status, v) = post("[]").await;
    error(status, &v, 400, "invalid_request");
    let (status, v) = post("").await;
    let e = error(status, &v, 400, "invalid_request");
    assert!(message(e).contains("empty"), "{v}");

    // Nested deeper than maxJsonDepth (128): refused before any server sees it, on both
    // front ends (issue 20, item 11).
    let deep = format!(
        r#"{{"tool": "echo", "arguments": {{"text": "x", "n": {}1{}}}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let (status, v) = gw.post_raw("/api/v1/tools/call", deep).await;
    let e = error(status, &v, 400, "invalid_request");
    assert!(message(e).contains("maxJsonDepth"), "{v}");
    let rpc = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"t__echo","arguments":{{"n":{}1{}}}}}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let res = gw
        .http
        .post(gw.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(rpc)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let v: Value = res.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("maxJsonDepth"),
        "{v}"
    );
    // Deep but within the limit is passed through.
    let ok = format!(
        r#"{{"tool": "echo", "arguments": {{"text": "x", "n": {}1{}}}}}"#,
        "[".repeat(100),
        "]".repeat(100)
    );
    let (status, v) = gw.post_raw("/api/v1/tools/call", ok).await;
    assert_eq!(status, 200, "{v}");

    // Over maxBodyBytes.
    let big = json!({"tool": "echo", "arguments": {"text": "x".repeat(10 * 1024)}}).to_string();
    let (status, v) = gw.post_raw("/api/v1/tools/call", big).await;
    let e = error(status, &v, 413, "payload_too_large");
    assert!(message(e).contains("2048"), "{v}");
    // Just under the limit is fine.
    let fits = json!({"tool": "echo", "arguments": {"text": "y".repeat(1900)}}).to_string();
    assert!(fits.len() < 2048);
    let (status, v) = gw.post_raw("/api/v1/tools/call", fits).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(text(&v).len(), 1900);

    // Unknown endpoints.
    let (status, v) = gw.get("/api/v1/nope").await;
    error(status, &v, 404, "not_found");
    let (status, v) = gw
        .post_raw("/api/v2/tools/call", r#"{"tool": "echo"}"#)
        .await;
    error(status, &v, 404, "not_found");

    // Still serving, and "arguments": null counts as none.
    let (status, v) = gw
        .call(json!({"tool": "echo", "arguments": {"text": "alive"}}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(text(&v), "alive");
    let (status, v) = gw
        .call(json!({"tool": "cancelled_count", "arguments": null}))
        .await;
    assert_eq!(status, 200, "{v}");
    let (status, _) = gw.get("/healthz").await;
    assert_eq!(status, 200);
    gw.stop().await;
}

/// GET returning the body as text, with an optional Accept header.
async fn get_text(gw: &TestGateway, path: &str, accept: Option<&str>) -> (u16, String) {
    let mut req = gw.http.get(gw.url(path));
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let res = req.send().await.expect("GET");
    let status = res.status().as_u16();
    let ctype = res
        .headers()
        .get("content-type")
        .map(|h| h.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = res.text().await.unwrap();
    if status == 200 && body.starts_with('#') {
        assert!(
            ctype.starts_with("text/plain"),
            "prometheus text served as {ctype}"
        );
    }
    (status, body)
}

#[tokio::test]
async fn metrics_prometheus_and_request_log() {
    let yaml = format!("servers:\n{}", test_server_yaml("t", &[], ""));
    let gw = TestGateway::start(config(&yaml)).await;
    for i in 0..3 {
        let (status, _) = gw
            .call(json!({"tool": "echo", "arguments": {"text": format!("{i}")}}))
            .await;
        assert_eq!(status, 200);
    }
    assert_eq!(gw.call(json!({"tool": "fail"})).await.0, 200);
    assert_eq!(gw.call(json!({"tool": "error"})).await.0, 502);
    assert_eq!(
        gw.call(json!({"tool": "t__add", "arguments": {"a": 1, "b": 1}}))
            .await
            .0,
        200
    );
    assert_eq!(gw.call(json!({"tool": "nope"})).await.0, 404);

    // JSON metrics.
    let (status, m) = gw.get("/api/v1/metrics").await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["total"]["calls"], 7, "{m}");
    assert_eq!(m["total"]["errors"], 3, "{m}");
    let t = &m["servers"]["t"];
    assert_eq!(t["calls"], 6, "{m}");
    assert_eq!(t["outcomes"]["ok"], 4, "{m}");
    assert_eq!(t["outcomes"]["tool_error"], 1, "{m}");
    assert_eq!(t["outcomes"]["upstream_error"], 1, "{m}");
    assert!(
        (t["errorRate"].as_f64().unwrap() - 2.0 / 6.0).abs() < 1e-9,
        "{m}"
    );
    let tools = m["tools"].as_array().unwrap();
    let tool = |s: &str, n: &str| {
        tools
            .iter()
            .find(|x| x["server"] == s && x["tool"] == n)
            .unwrap_or_else(|| panic!("no {s}/{n} in {m}"))
    };
    let echo = tool("t", "echo");
    assert_eq!(echo["calls"], 3);
    assert_eq!(echo["errors"], 0);
    let lat = &echo["latencyMs"];
    for k in ["avg", "p50", "p95", "p99", "max"] {
        assert!(
            lat[k].as_f64().is_some_and(|x| x > 0.0),
            "latencyMs.{k}: {echo}"
        );
    }
    let (p50, p99, max) = (
        lat["p50"].as_f64().unwrap(),
        lat["p99"].as_f64().unwrap(),
        lat["max"].as_f64().unwrap(),
    );
    assert!(p50 <= p99 && p99 <= max * 1.25, "{lat}");
    assert_eq!(
        tool("t", "add")["calls"],
        1,
        "qualified call recorded under the bare name"
    );
    assert_eq!(tool("t", "error")["outcomes"]["upstream_error"], 1);
    assert_eq!(tool("-", "nope")["outcomes"]["client_error"], 1);
    assert_eq!(m["requestLog"]["enabled"], true);
    assert_eq!(m["requestLog"]["entries"], 7);

    // Prometheus text, three ways.
    let (s1, p1) = get_text(&gw, "/api/v1/metrics?format=prometheus", None).await;
    let (s2, p2) = get_text(&gw, "/api/v1/metrics", Some("text/plain")).await;
    let (s3, p3) = get_text(&gw, "/metrics", None).await;
    for (status, p) in [(s1, &p1), (s2, &p2), (s3, &p3)] {
        assert_eq!(status, 200, "{p}");
        for line in [
            "# TYPE mcp_gateway_tool_calls_total counter",
            // Labels in the exporter's order (sorted by name).
            r#"mcp_gateway_tool_calls_total{outcome="ok",server="t",tool="echo"} 3"#,
            r#"mcp_gateway_tool_calls_total{outcome="tool_error",server="t",tool="fail"} 1"#,
            r#"mcp_gateway_tool_calls_total{outcome="upstream_error",server="t",tool="error"} 1"#,
            r#"mcp_gateway_tool_call_duration_seconds_count{server="t",tool="echo"} 3"#,
            r#"mcp_gateway_upstream_up{server="t"} 1"#,
        ] {
            assert!(p.lines().any(|l| l == line), "missing {line:?} in\n{p}");
        }
    }
    // Accept: application/json keeps JSON.
    let (_, j) = get_text(&gw, "/api/v1/metrics", Some("application/json")).await;
    assert!(j.starts_with('{'), "{j}");

    // Request log: newest first.
    let (status, log) = gw.get("/api/v1/requests").await;
    assert_eq!(status, 200, "{log}");
    assert_eq!(log["enabled"], true);
    assert_eq!(log["count"], 7, "{log}");
    let entries = log["requests"].as_array().unwrap();
    let ids: Vec<u64> = entries.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "not newest first: {ids:?}"
    );
    let newest = &entries[0];
    assert_eq!(newest["tool"], "nope");
    assert_eq!(newest["outcome"], "client_error");
    assert_eq!(newest["status"], 404);
    assert!(
        newest["error"].as_str().is_some_and(|e| e.contains("nope")),
        "{newest}"
    );
    let oldest = &entries[6];
    assert_eq!(oldest["tool"], "echo");
    assert_eq!(oldest["server"], "t");
    assert_eq!(oldest["outcome"], "ok");
    assert_eq!(oldest["status"], 200);
    assert_eq!(oldest["transport"], "rest");
    assert_eq!(oldest["method"], "tools/call");
    for e in entries {
        assert!(e["durationMs"].as_f64().is_some_and(|d| d >= 0.0), "{e}");
        assert!(e["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{e}");
    }

    // Filters.
    let count = |q: &'static str| {
        let gw = &gw;
        async move {
            let (status, v) = gw.get(&format!("/api/v1/requests?{q}")).await;
            assert_eq!(status, 200, "{q}: {v}");
            assert_eq!(
                v["count"].as_u64().unwrap() as usize,
                v["requests"].as_array().unwrap().len()
            );
            v
        }
    };
    let v = count("server=t").await;
    assert_eq!(v["count"], 6);
    assert!(
        v["requests"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["server"] == "t")
    );
    let v = count("tool=echo").await;
    assert_eq!(v["count"], 3);
    let v = count("status=tool_error").await;
    assert_eq!(v["count"], 1);
    assert_eq!(v["requests"][0]["tool"], "fail");
    let v = count("status=502").await;
    assert_eq!(v["count"], 1);
    assert_eq!(v["requests"][0]["tool"], "error");
    let v = count("status=ok&tool=echo&server=t").await;
    assert_eq!(v["count"], 3);
    let v = count("limit=2").await;
    assert_eq!(v["count"], 2);
    assert_eq!(v["requests"][0]["id"].as_u64(), Some(ids[0]));
    assert_eq!(v["requests"][1]["id"].as_u64(), Some(ids[1]));
    let v = count("since=3600").await;
    assert_eq!(v["count"], 7);
    let v = count("server=nobody").await;
    assert_eq!(v["count"], 0);

    for bad in ["limit=abc", "limit=-1", "since=soon"] {
        let (status, v) = gw.get(&format!("/api/v1/requests?{bad}")).await;
        let e = error(status, &v, 400, "invalid_request");
        assert!(
            message(e).contains(bad.split('=').next().unwrap()),
            "{bad}: {v}"
        );
    }
    let (status, v) = gw.get("/api/v1/requests?bogus=1").await;
    let e = error(status, &v, 400, "invalid_request");
    assert!(message(e).contains("bogus"), "{v}");
    gw.stop().await;
}

#[tokio::test]
async fn prometheus_can_be_turned_off() {
    let gw = TestGateway::start(config(
        "monitor:\n  prometheus: false\n  requestLog: false\nservers: []\n",
    ))
    .await;
    let (status, v) = gw.get("/metrics").await;
    let e = error(status, &v, 404, "disabled");
    assert!(message(e).contains("prometheus"), "{v}");
    let (status, v) = gw.get("/api/v1/requests").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["enabled"], false);
    assert_eq!(v["count"], 0);
    let (status, v) = gw.get("/api/v1/metrics").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["requestLog"]["enabled"], false);
    assert_eq!(v["total"]["calls"], 0);
    gw.stop().await;
}

#[tokio::test]
async fn both_protocol_generations() {
    let yaml = format!(
        "servers:\n{}{}",
        test_server_yaml("old", &["--generation", "session", "--name", "old-gen"], ""),
        test_server_yaml(
            "new",
            &["--generation", "stateless", "--name", "new-gen"],
            ""
        ),
    );
    let gw = TestGateway::start(config(&yaml)).await;
    let old = server(&gw, "old").await;
    assert_eq!(old["status"], "healthy", "{old}");
    assert_eq!(old["protocolVersion"], "2025-11-25", "{old}");
    assert_eq!(old["serverInfo"]["name"], "old-gen", "{old}");
    let new = server(&gw, "new").await;
    assert_eq!(new["status"], "healthy", "{new}");
    assert_eq!(new["protocolVersion"], "2026-07-28", "{new}");
    assert_eq!(new["serverInfo"]["name"], "new-gen", "{new}");
    let (_, all) = gw.get("/api/v1/servers").await;
    let versions: Vec<&Value> = all["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["protocolVersion"])
        .collect();
    assert_eq!(versions, [&json!("2025-11-25"), &json!("2026-07-28")]);

    for id in ["old", "new"] {
        let (status, v) = gw
            .call(json!({"tool": "echo", "server": id, "arguments": {"text": id}}))
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(text(&v), id);
        let (status, v) = gw
            .call(json!({"tool": format!("{id}__add"), "arguments": {"a": 20, "b": 22}}))
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(text(&v), "42");
        let (status, v) = gw
            .call(json!({"tool": "cancelled_count", "server": id}))
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(text(&v), "0");
    }
    // The tool list of the stateless server changes too.
    let (status, _) = gw
        .call(json!({"tool": "new__add_tool", "arguments": {"name": "fresh"}}))
        .await;
    assert_eq!(status, 200);
    let v = wait_for("fresh callable", Duration::from_secs(5), || async {
        let (status, v) = gw.call(json!({"tool": "fresh"})).await;
        (status == 200).then_some(v)
    })
    .await;
    assert_eq!(v["server"], "new");
    gw.stop().await;
}

#[tokio::test]
async fn health_healthy_and_degraded() {
    let gw = TestGateway::start(config(&format!(
        "servers:\n{}",
        test_server_yaml("ok", &[], "")
    )))
    .await;
    let (status, h) = gw.get("/api/v1/health").await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["status"], "healthy", "{h}");
    assert_eq!(
        h["servers"],
        json!({"healthy": 1, "enabled": 1, "total": 1}),
        "{h}"
    );
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));
    assert!(h["uptime"].is_u64(), "{h}");
    assert!(
        h["startedAt"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{h}"
    );
    let res = gw.http.get(gw.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let res = gw.http.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.text().await.unwrap(), "ok");
    gw.stop().await;

    let yaml = format!(
        "servers:\n{}  - id: broken\n    command: {MISSING_COMMAND:?}\n{}",
        test_server_yaml("ok", &[], ""),
        test_server_yaml("off", &[], "    enabled: false\n"),
    );
    let gw = TestGateway::start(config(&yaml)).await;
    let (status, h) = gw.get("/api/v1/health").await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(
        h["servers"],
        json!({"healthy": 1, "enabled": 2, "total": 3}),
        "{h}"
    );
    // Readiness is about first starts, not failures: a failed server does not block it.
    let res = gw.http.get(gw.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    gw.stop().await;

    let gw = TestGateway::start(config(&format!(
        "servers:\n  - id: broken\n    command: {MISSING_COMMAND:?}\n"
    )))
    .await;
    let (_, h) = gw.get("/api/v1/health").await;
    assert_eq!(h["status"], "unhealthy", "{h}");
    assert_eq!(
        h["servers"],
        json!({"healthy": 0, "enabled": 1, "total": 1}),
        "{h}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn readyz_is_503_while_a_server_is_starting() {
    use tower::ServiceExt;
    let yaml = format!(
        "servers:\n{}",
        test_server_yaml("late", &["--startup-delay-ms", "1500"], "")
    );
    let gateway = mcp_gateway::Gateway::new(config(&yaml)).unwrap();
    // The router starts upstreams without waiting for them.
    let app = gateway.router();
    let get = |path: &'static str| {
        let app = app.clone();
        async move {
            let req = http::Request::get(path)
                .body(axum::body::Body::empty())
                .unwrap();
            let res = app.oneshot(req).await.unwrap();
            let status = res.status().as_u16();
            let body = axum::body::to_bytes(res.into_body(), 1 << 20)
                .await
                .unwrap();
            (status, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    let (status, body) = get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "starting", "{v}");
    assert!(message(&v["error"]).contains("late"), "{v}");
    let (_, body) = get("/api/v1/servers/late").await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "starting", "{v}");
    let (_, body) = get("/api/v1/health").await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "unhealthy", "{v}");

    wait_for("readyz 200", Duration::from_secs(10), || async {
        let (status, _) = get("/readyz").await;
        (status == 200).then_some(())
    })
    .await;
    let (_, body) = get("/api/v1/servers/late").await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "healthy", "{v}");
    gateway.stop().await;
}

#[tokio::test]
async fn queued_time_counts_against_the_timeout() {
    let yaml = format!(
        "servers:\n{}",
        test_server_yaml("t", &[], "    maxConcurrency: 1\n    timeout: 1000\n"),
    );
    let gw = TestGateway::start(config(&yaml)).await;
    let first = gw.call(json!({"tool": "sleep", "arguments": {"ms": 800}}));
    let second = async {
        // Queued behind the first for ~800 ms, then needs 800 ms more: over the 1000 ms deadline.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let start = Instant::now();
        (
            gw.call(json!({"tool": "sleep", "arguments": {"ms": 800}}))
                .await,
            start.elapsed(),
        )
    };
    let ((s1, v1), ((s2, v2), took)) = futures::join!(first, second);
    assert_eq!(s1, 200, "{v1}");
    let e = error(s2, &v2, 504, "upstream_timeout");
    assert!(message(e).contains("1000 ms"), "{v2}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    gw.stop().await;
}

#[tokio::test]
async fn wrong_method_answers_json_405() {
    let gw = TestGateway::start(config("servers: []\n")).await;
    for (method, path) in [
        (reqwest::Method::GET, "/api/v1/tools/call"),
        (reqwest::Method::POST, "/api/v1/servers"),
    ] {
        let res = gw
            .http
            .request(method.clone(), gw.url(path))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body = res.text().await.unwrap();
        assert_eq!(status, 405, "{method} {path}");
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{method} {path}: 405 body is not JSON ({e}): {body:?}"));
        assert!(v["error"]["code"].is_string(), "{v}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn rejected_query_string_answers_json_400() {
    let gw = TestGateway::start(config("servers: []\n")).await;
    for path in [
        "/api/v1/tools?server=t&server=u",
        "/api/v1/metrics?format=a&format=b",
    ] {
        let (status, v) = gw.get(path).await;
        assert_eq!(status, 400, "{path}: {v}");
        assert!(
            v["error"]["code"].is_string(),
            "{path}: query rejection is not JSON: {v}"
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn metrics_totals_leave_out_the_breakdown() {
    let yaml = format!("servers:\n{}", test_server_yaml("t", &[], ""));
    let gw = TestGateway::start(config(&yaml)).await;
    let (s, v) = gw
        .call(json!({"tool": "t__echo", "arguments": {"text": "x"}}))
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, full) = gw.get("/api/v1/metrics?bucket=1m").await;
    assert_eq!(s, 200, "{full}");
    assert_eq!(
        full["window"]["tools"].as_array().map(Vec::len),
        Some(1),
        "{full}"
    );
    let (s, v) = gw.get("/api/v1/metrics?bucket=1m&totals=1").await;
    assert_eq!(s, 200, "{v}");
    for key in ["servers", "tools", "methods"] {
        assert!(v.get(key).is_none(), "{key}: {v}");
        assert!(v["window"].get(key).is_none(), "{key}: {v}");
    }
    assert_eq!(v["window"]["calls"], full["window"]["calls"], "{v}");
    assert!(v["window"]["buckets"].is_array(), "{v}");
    assert_eq!(gw.get("/api/v1/metrics?totals=yes").await.0, 400);
    gw.stop().await;
}
