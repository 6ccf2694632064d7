//! A client gets through the gateway what it gets from the server directly, on either
//! protocol generation (issue 21).
//!
//! The upstream is `tests/peers/py_everything.py`, a server on the PyPI `mcp` 2.x SDK that
//! serves the 2025 session generation and the stateless 2026-07-28 revision on one
//! endpoint. `tests/peers/py_everything_check.py` drives it with the SDK's own client — in
//! 2026-07-28 (`auto`) and in the session generation (`legacy`) — and checks sampling,
//! elicitation (defaults, enums, titled enums), a two-round MRTR tool, log messages during a
//! call, progress, the capabilities the server sees, and resources;
//! `tests/clients/ts_everything_check*.mjs` do the same with the TypeScript SDK's clients of
//! both generations. The same checks run here against the gateway's `/mcp`, for each
//! `protocol` the gateway can speak upstream.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;

const ACCEPT: &str = "application/json, text/event-stream";

/// Starts py_everything over Streamable HTTP on a free loopback port.
async fn py_everything(args: &[&str]) -> (tokio::process::Child, String) {
    let mut cmd = tokio::process::Command::new(peers_python());
    cmd.arg(root().join("tests/peers/py_everything.py"))
        .args(args)
        .args(["--http", "0"]);
    spawn_announced(cmd).await
}

fn gateway_yaml(url: &str, protocol: &str) -> String {
    format!(
        "toolNaming: bare\nservers:\n  - id: ev\n    transport: streamable-http\n    \
         url: {url:?}\n    toolPrefix: \"\"\n    protocol: {protocol}\n    timeout: 30000\n"
    )
}

/// Runs the Python SDK client's checks against `url` in `mode`; panics with its output.
async fn sdk_checks(url: &str, mode: &str) -> String {
    let out = tokio::process::Command::new(peers_python())
        .arg(root().join("tests/peers/py_everything_check.py"))
        .args(["--url", url, "--mode", mode])
        .output()
        .await
        .expect("run py_everything_check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{mode} client through {url}:\n{text}");
    text
}

/// Runs the TypeScript SDK clients' checks against `url`: `@modelcontextprotocol/sdk` 1.x
/// (the session generation) and `@modelcontextprotocol/client` 2.x (2026-07-28).
async fn ts_checks(url: &str) -> String {
    let mut all = String::new();
    for script in ["ts_everything_check.mjs", "ts_everything_check_2026.mjs"] {
        let out = tokio::process::Command::new("node")
            .arg(root().join("tests/clients").join(script))
            .arg(url)
            .output()
            .await
            .expect("run node");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{script} through {url}:\n{text}");
        all.push_str(&text);
    }
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_clients_of_both_generations_get_what_they_get_directly() {
    require_peers();
    let (_server, url) = py_everything(&[]).await;
    // Directly first: the checks themselves hold against the server.
    for mode in ["auto", "legacy"] {
        sdk_checks(&url, mode).await;
    }
    ts_checks(&url).await;
    for protocol in ["auto", "stateless", "session"] {
        let gw = TestGateway::start(config(&gateway_yaml(&url, protocol))).await;
        let mcp = gw.url("/mcp");
        for mode in ["auto", "legacy"] {
            let out = sdk_checks(&mcp, mode).await;
            eprintln!("protocol {protocol}: {}", out.trim());
        }
        let out = ts_checks(&mcp).await;
        eprintln!("protocol {protocol}: {}", out.trim());
        gw.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_with_only_resources_is_served() {
    require_peers();
    let (_server, url) = py_everything(&["--resources-only"]).await;
    for protocol in ["auto", "session"] {
        let gw = TestGateway::start(config(&gateway_yaml(&url, protocol))).await;
        let (status, servers) = gw.get("/api/v1/servers").await;
        assert_eq!(status, 200, "{servers}");
        let ev = &servers["servers"][0];
        assert_eq!(ev["status"], "healthy", "protocol {protocol}: {servers}");
        assert_eq!(ev["toolCount"], 0, "{servers}");
        let v: Value = stateless_post(
            &gw,
            "resources/read",
            Some("static://hello"),
            "2026-07-28",
            json!({"uri": "static://hello"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert_eq!(v["result"]["contents"][0]["text"], "hello", "{v}");
        // Health probes find it alive though it has no ping (2026) and no tools.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (_, h) = gw.get("/api/v1/health").await;
        assert_eq!(h["servers"]["healthy"], 1, "{h}");
        gw.stop().await;
    }
}

/// A 2026-07-28 request with `_meta` and the routing headers.
fn stateless_post(
    gw: &TestGateway,
    method: &str,
    name: Option<&str>,
    version: &str,
    params: Value,
) -> reqwest::RequestBuilder {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": version,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
    });
    let mut req = gw
        .http
        .post(gw.url("/mcp"))
        .header("accept", ACCEPT)
        .header("mcp-protocol-version", version)
        .header("mcp-method", method)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}));
    if let Some(n) = name {
        req = req.header("mcp-name", n);
    }
    req
}

#[tokio::test]
async fn stateless_errors_carry_the_spec_codes_and_statuses() {
    let cfg = config(&format!(
        "servers:\n{}",
        test_server_yaml("t", &["--generation", "stateless"], "")
    ));
    let gw = TestGateway::start(cfg).await;
    let check = |r: reqwest::Response, status: u16, code: i64| async move {
        let got = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            (got, v["error"]["code"].as_i64()),
            (status, Some(code)),
            "{v}"
        );
    };
    // Header/body mismatch is judged before the version.
    let r = stateless_post(
        &gw,
        "tools/call",
        Some("t__other"),
        "2099-01-01",
        json!({"name": "t__echo"}),
    )
    .send()
    .await
    .unwrap();
    check(r, 400, -32020).await;
    // A version the gateway does not speak, headers in order: -32022.
    let r = stateless_post(
        &gw,
        "tools/call",
        Some("t__echo"),
        "2099-01-01",
        json!({"name": "t__echo"}),
    )
    .send()
    .await
    .unwrap();
    check(r, 400, -32022).await;
    // Methods 2026-07-28 removed: 404 with -32601.
    for method in [
        "initialize",
        "resources/subscribe",
        "resources/unsubscribe",
        "ping",
    ] {
        let r = stateless_post(&gw, method, None, "2026-07-28", json!({"uri": "x://y"}))
            .send()
            .await
            .unwrap();
        check(r, 404, -32601).await;
    }
    // An unknown tool is invalid params: 400.
    let r = stateless_post(
        &gw,
        "tools/call",
        Some("t__nope"),
        "2026-07-28",
        json!({"name": "t__nope", "arguments": {}}),
    )
    .send()
    .await
    .unwrap();
    check(r, 400, -32602).await;
    // A repeated routing header is a mismatch.
    let r = stateless_post(
        &gw,
        "tools/call",
        Some("t__echo"),
        "2026-07-28",
        json!({"name": "t__echo"}),
    )
    .header("mcp-name", "t__echo")
    .send()
    .await
    .unwrap();
    check(r, 400, -32020).await;
    // The session generation still works beside it.
    let r = gw
        .http
        .post(gw.url("/mcp"))
        .header("accept", ACCEPT)
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("mcp-session-id"));
    gw.stop().await;
}

#[tokio::test]
async fn mcp_param_headers_must_match_the_arguments() {
    let cfg = config(&format!(
        "servers:\n{}",
        test_server_yaml("h", &["--generation", "stateless", "--header-tool"], "")
    ));
    let gw = TestGateway::start(cfg).await;
    let args = json!({"name": "h__route", "arguments":
        {"region": "eu west", "options": {"limit": 5}, "confirm": true}});
    let send = |extra: &'static [(&'static str, &'static str)]| {
        let mut r = stateless_post(
            &gw,
            "tools/call",
            Some("h__route"),
            "2026-07-28",
            args.clone(),
        );
        for (k, v) in extra {
            r = r.header(*k, *v);
        }
        r.send()
    };
    let all: &[(&str, &str)] = &[
        ("mcp-param-region", "=?base64?ZXUgd2VzdA==?="),
        ("mcp-param-limit", "5.0"),
        ("mcp-param-confirm", "true"),
    ];
    let r = send(all).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(text(&v), "region=eu west limit=5 confirm=true", "{v}");
    for bad in [
        // One header missing.
        &[("mcp-param-region", "eu west"), ("mcp-param-limit", "5")][..],
        // A value that differs from the body.
        &[
            ("mcp-param-region", "us"),
            ("mcp-param-limit", "5"),
            ("mcp-param-confirm", "true"),
        ][..],
        &[
            ("mcp-param-region", "eu west"),
            ("mcp-param-limit", "6"),
            ("mcp-param-confirm", "true"),
        ][..],
        // A malformed sentinel.
        &[
            ("mcp-param-region", "=?base64?***?="),
            ("mcp-param-limit", "5"),
            ("mcp-param-confirm", "true"),
        ][..],
    ] {
        let r = send(bad).await.unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            (status, v["error"]["code"].as_i64()),
            (400, Some(-32020)),
            "{bad:?}: {v}"
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_header_mismatch_from_the_upstream_is_retried_once_after_relisting() {
    let (_server, url) = http_test_server(&["--generation", "stateless", "--header-tool"]).await;
    let cfg = config(&format!(
        "servers:\n  - id: h\n    transport: streamable-http\n    url: {url:?}\n"
    ));
    let gw = TestGateway::start(cfg).await;
    let route = json!({"tool": "h__route", "arguments": {"region": "eu", "confirm": false}});
    let (status, v) = gw.call(route.clone()).await;
    assert_eq!(
        (status, text(&v)),
        (200, "region=eu limit=- confirm=false"),
        "{v}"
    );
    // The server renames the annotation without telling anyone: the gateway's tool list is
    // stale, its next call is refused with -32020, and it must re-list and retry.
    let (status, v) = gw
        .call(json!({"tool": "h__flip_header", "arguments": {}}))
        .await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = gw.call(route).await;
    assert_eq!(
        (status, text(&v)),
        (200, "region=eu limit=- confirm=false"),
        "{v}"
    );
    gw.stop().await;
}

/// `resources/list` of the gateway as a 2026-07-28 client sees it.
async fn list_resources(gw: &TestGateway) -> Value {
    stateless_post(gw, "resources/list", None, "2026-07-28", json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// How many `resources/list` the upstream has served.
async fn lists_served(gw: &TestGateway) -> u64 {
    let v: Value = stateless_post(
        gw,
        "resources/read",
        Some("static://lists"),
        "2026-07-28",
        json!({"uri": "static://lists"}),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let text = v["result"]["contents"][0]["text"]
        .as_str()
        .unwrap_or_default();
    text.trim_start_matches("lists=")
        .parse()
        .unwrap_or_else(|_| panic!("{v}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn lists_are_cached_as_their_server_allows_and_labelled_for_the_caller() {
    require_peers();
    let (_server, url) = py_everything(&["--list-ttl", "60000"]).await;
    let gw = TestGateway::start(config(&gateway_yaml(&url, "stateless"))).await;
    let first = list_resources(&gw).await;
    let served = lists_served(&gw).await;
    // Fresh and public upstream, no access rules: the gateway's answer is public too, and
    // the next lists come from its cache (the server serves no more of them).
    assert_eq!(first["result"]["cacheScope"], "public", "{first}");
    assert_eq!(first["result"]["ttlMs"], 60000, "{first}");
    for _ in 0..3 {
        let again = list_resources(&gw).await;
        assert_eq!(
            again["result"]["resources"], first["result"]["resources"],
            "{again}"
        );
    }
    assert_eq!(
        lists_served(&gw).await,
        served,
        "cached lists are not fetched again"
    );
    gw.stop().await;

    // With access rules, what a caller sees is cut for that caller: private.
    let yaml = format!(
        "{}auth:\n  strategy: api-key\n  apiKeys:\n    - {{ name: a, key: key-a-0123456789, roles: [r] }}\n\
         access:\n  - roles: [r]\n    allow: [\"*\"]\n",
        gateway_yaml(&url, "stateless")
    );
    let gw = TestGateway::start(config(&yaml)).await;
    let v: Value = stateless_post(&gw, "resources/list", None, "2026-07-28", json!({}))
        .header("x-api-key", "key-a-0123456789")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["result"]["cacheScope"], "private", "{v}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_client_capability_is_a_400_as_from_the_server() {
    require_peers();
    let (_server, url) = py_everything(&[]).await;
    let gw = TestGateway::start(config(&gateway_yaml(&url, "stateless"))).await;
    // The caller declares no sampling: the server answers -32021, which the spec sends with
    // HTTP 400, through the gateway as directly.
    for target in [url.clone(), gw.url("/mcp")] {
        let r = gw
            .http
            .post(&target)
            .header("accept", ACCEPT)
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "sample")
            .json(
                &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
                "name": "sample", "arguments": {"prompt": "x"},
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {},
                    "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
                }}}),
            )
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            (status, v["error"]["code"].as_i64()),
            (400, Some(-32021)),
            "{target}: {v}"
        );
    }
    gw.stop().await;
}
