//! The official MCP SDK clients against the gateway's aggregated endpoint: the TypeScript SDK
//! over Streamable HTTP and over legacy HTTP+SSE, the Python SDK 2.x in its default mode
//! (2026-07-28, `server/discover`) and in legacy mode (`initialize`). Each runs the scripted
//! scenario of `tests/clients/` as a child process (connect, list tools of upstreams of both
//! protocol generations, call them, receive progress, cancel a call, observe list_changed)
//! and the JSON it prints is checked here.
//!
//! Upstreams: the test server in the stateless generation (`sl`) and in the session generation
//! with prefix `s_` (`ss`), the Python SDK server (`py`) and `server-everything` (`ev`).
//! Needs the peers of `scripts/install-peers.sh`.

mod common;
use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// Longest a client scenario may take (they finish in a few seconds; the scripts stop
/// themselves at 60 s).
const CLIENT_LIMIT: Duration = Duration::from_secs(90);

fn clients_dir() -> PathBuf {
    root().join("tests/clients")
}

fn sdk_client_js() -> PathBuf {
    root().join("tests/peers/node_modules/@modelcontextprotocol/sdk/dist/esm/client/index.js")
}

/// Fails (never skips) when a peer the scenarios need is missing.
fn require_client_peers() {
    require_peers();
    for p in [everything_js(), sdk_client_js(), py_server()] {
        assert!(
            p.exists(),
            "{} is missing: run scripts/install-peers.sh",
            p.display()
        );
    }
}

/// The gateway with the four upstreams.
async fn gateway() -> TestGateway {
    require_client_peers();
    let yaml = format!(
        "servers:\n{}{}  - id: py\n    command: {:?}\n    args: [{:?}]\n  - id: ev\n    command: node\n    args: [{:?}, \"stdio\"]\n",
        test_server_yaml(
            "sl",
            &["--generation", "stateless", "--name", "stateless-gen"],
            ""
        ),
        test_server_yaml(
            "ss",
            &[
                "--generation",
                "session",
                "--prefix",
                "s_",
                "--name",
                "session-gen"
            ],
            ""
        ),
        peers_python().display().to_string(),
        py_server().display().to_string(),
        everything_js().display().to_string(),
    );
    let gw = TestGateway::start(config(&yaml)).await;
    for s in &gw.started.servers {
        assert!(
            matches!(s.outcome, mcp_gateway::StartOutcome::Ready(n) if n > 0),
            "server did not come up: {s}"
        );
    }
    gw
}

/// Runs a client script and returns the JSON it printed.
async fn run_client(program: PathBuf, args: Vec<String>) -> Value {
    let what = format!("{} {}", program.display(), args.join(" "));
    let child = tokio::process::Command::new(&program)
        .args(&args)
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let out = tokio::time::timeout(CLIENT_LIMIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {CLIENT_LIMIT:?}"))
        .expect("client output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let json = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or_else(|| panic!("{what} printed no JSON\nstdout: {stdout}\nstderr: {stderr}"));
    let v: Value = serde_json::from_str(json)
        .unwrap_or_else(|e| panic!("{what}: bad JSON ({e}): {json}\nstderr: {stderr}"));
    assert!(
        out.status.success() && v.get("fatal").is_none(),
        "{what} failed ({}): {}\nstderr: {stderr}",
        out.status,
        v.get("fatal").unwrap_or(&v)
    );
    v
}

async fn ts_client(gw: &TestGateway, transport: &str) -> Value {
    run_client(
        PathBuf::from("node"),
        vec![
            clients_dir().join("ts_client.mjs").display().to_string(),
            gw.url(""),
            transport.to_string(),
        ],
    )
    .await
}

async fn py_client(gw: &TestGateway, mode: &str) -> Value {
    run_client(
        peers_python(),
        vec![
            clients_dir().join("py_client.py").display().to_string(),
            gw.url(""),
            mode.to_string(),
        ],
    )
    .await
}

/// What differs between the client variants.
struct Expect {
    protocol_version: &'static str,
    /// The TypeScript SDK runs notification handlers in a microtask but settles responses
    /// synchronously: a progress notification read in the same chunk as the result (which
    /// the legacy SSE transport does) never reaches `onprogress`. The progress seen on the
    /// wire (`wire`) is then checked exactly and the callback's values as a prefix.
    last_progress_may_race: bool,
    cancel_outcome: &'static str,
}

fn progress_values(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|p| {
            p.get("progress")
                .unwrap_or(p)
                .as_f64()
                .unwrap_or_else(|| panic!("no progress value in {p}"))
        })
        .collect()
}

fn check_progress(out: &Value, key: &str, steps: u64, text: &str, expect: &Expect) {
    let p = &out["progress"][key];
    assert_eq!(p["text"], text, "{key} progress call: {p}");
    let all: Vec<f64> = (1..=steps).map(|i| i as f64).collect();
    let values = progress_values(&p["values"]);
    for v in p["values"].as_array().unwrap() {
        assert_eq!(v["total"].as_f64(), Some(steps as f64), "{key}: {p}");
    }
    if let Some(wire) = p.get("wire") {
        assert_eq!(
            progress_values(wire),
            all,
            "{key}: progress on the wire: {p}"
        );
    }
    if expect.last_progress_may_race {
        assert!(
            values.len() + 1 >= all.len() && all.starts_with(&values),
            "{key}: progress callback values {values:?}, expected {all:?} (the last may race)"
        );
    } else {
        assert_eq!(values, all, "{key}: progress callback values: {p}");
    }
}

fn check(out: &Value, expect: &Expect) {
    let who = format!(
        "{} {}",
        out["client"],
        out["transport"]
            .as_str()
            .or(out["mode"].as_str())
            .unwrap_or("")
    );
    assert_eq!(
        out["protocolVersion"], expect.protocol_version,
        "{who}: negotiated version"
    );
    assert_eq!(out["errors"], serde_json::json!([]), "{who}: steps failed");
    assert_eq!(out["serverInfo"]["name"], "mcp-gateway", "{who}: {out}");
    assert_eq!(
        out["capabilities"]["tools"]["listChanged"], true,
        "{who}: {}",
        out["capabilities"]
    );

    // Tools of every upstream, both generations, named <server>__<tool>.
    let tools: Vec<&str> = out["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{who}: no tools: {out}"))
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for t in [
        "sl__echo",
        "sl__progress",
        "ss__s_add",
        "py__greet",
        "py__add",
        "ev__get-sum",
        "ev__trigger-long-running-operation",
    ] {
        assert!(tools.contains(&t), "{who}: {t} not listed: {tools:?}");
    }
    let mut sorted = tools.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, tools, "{who}: tools not unique and in order");

    // Calls on each upstream.
    let calls = &out["calls"];
    for (key, text) in [
        ("stateless_echo", "hello stateless"),
        ("session_add", "5"),
        ("py_greet", "Hello, gateway!"),
        ("everything_sum", "The sum of 4 and 5 is 9."),
        ("after_cancel", "still here"),
    ] {
        assert_eq!(calls[key]["text"], text, "{who}: call {key}: {calls}");
        assert_eq!(calls[key]["isError"], false, "{who}: call {key}: {calls}");
    }
    assert_eq!(calls["tool_error"]["isError"], true, "{who}: {calls}");
    assert_eq!(
        calls["tool_error"]["text"], "tool failed on purpose",
        "{who}: {calls}"
    );

    // Progress, in order, with the client's own token.
    check_progress(
        out,
        "everything",
        4,
        "Long running operation completed. Duration: 1 seconds, Steps: 4.",
        expect,
    );
    check_progress(out, "stateless", 5, "progress done (5 steps)", expect);

    // The cancelled call ended on the client and the cancellation reached the upstream.
    let c = &out["cancel"];
    assert_eq!(c["outcome"], expect.cancel_outcome, "{who}: {c}");
    assert_eq!(c["reachedUpstream"], true, "{who}: cancellation: {c}");

    // list_changed through each upstream generation, then the new tool is listed and works.
    for server in ["sl", "ss"] {
        let lc = &out["listChanged"][server];
        let tool = lc["newTool"]
            .as_str()
            .unwrap_or_else(|| panic!("{who}: {lc}"));
        let upstream = tool.split_once("__").unwrap().1;
        assert_eq!(lc["addResult"], format!("added {upstream}"), "{who}: {lc}");
        assert_eq!(
            lc["notificationSeen"], true,
            "{who}: no tools/list_changed after add_tool on {server}: {lc}"
        );
        assert_eq!(lc["newToolListed"], true, "{who}: {lc}");
        assert_eq!(
            lc["newToolCall"],
            format!("dynamic {upstream}"),
            "{who}: {lc}"
        );
    }
}

#[tokio::test]
async fn typescript_streamable_http() {
    let gw = gateway().await;
    let out = ts_client(&gw, "streamable-http").await;
    check(
        &out,
        &Expect {
            protocol_version: "2025-11-25",
            last_progress_may_race: false,
            cancel_outcome: "rejected",
        },
    );
    assert!(
        out["sessionId"].as_str().is_some_and(|s| !s.is_empty()),
        "{out}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn typescript_legacy_sse() {
    let gw = gateway().await;
    let out = ts_client(&gw, "sse").await;
    check(
        &out,
        &Expect {
            protocol_version: "2025-11-25",
            last_progress_may_race: true,
            cancel_outcome: "rejected",
        },
    );
    gw.stop().await;
}

#[tokio::test]
async fn python_default_mode_speaks_2026_07_28() {
    let gw = gateway().await;
    let out = py_client(&gw, "auto").await;
    check(
        &out,
        &Expect {
            protocol_version: "2026-07-28",
            last_progress_may_race: false,
            cancel_outcome: "cancelled",
        },
    );
    // list_changed came through subscriptions/listen, acknowledged for tools.
    assert_eq!(out["listChanged"]["mechanism"], "subscriptions/listen");
    for server in ["sl", "ss"] {
        let lc = &out["listChanged"][server];
        assert_eq!(lc["honored"]["toolsListChanged"], true, "{lc}");
        assert_eq!(lc["events"][0], "ToolsListChanged", "{lc}");
    }
    // No session was opened for a stateless client.
    let (_, health) = gw.get("/api/v1/health").await;
    assert_eq!(health["mcpSessions"], 0, "{health}");
    gw.stop().await;
}

#[tokio::test]
async fn python_legacy_mode_uses_initialize() {
    let gw = gateway().await;
    let out = py_client(&gw, "legacy").await;
    check(
        &out,
        &Expect {
            protocol_version: "2025-11-25",
            last_progress_may_race: false,
            cancel_outcome: "cancelled",
        },
    );
    assert_eq!(out["listChanged"]["mechanism"], "message_handler");
    gw.stop().await;
}
