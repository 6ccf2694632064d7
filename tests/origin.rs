//! DNS-rebinding defence on every front end: a request from a foreign web page is refused
//! before it runs anything or reveals anything, on the REST API as on `/mcp`.

mod common;

use common::{TestGateway, config, test_server_yaml};
use serde_json::{Value, json};

async fn send(
    gw: &TestGateway,
    method: reqwest::Method,
    path: &str,
    origin: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let mut req = gw.http.request(method, gw.url(path));
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    if let Some(b) = body {
        // text/plain: a cross-site POST a browser sends without a CORS preflight.
        req = req.header("content-type", "text/plain").body(b.to_string());
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn foreign_origins_are_refused_on_rest_and_mcp() {
    let yaml = format!(
        "corsOrigins: [\"https://app.example.com\"]\nservers:\n{}",
        test_server_yaml("t", &[], "")
    );
    let gw = TestGateway::start(config(&yaml)).await;
    let call = json!({"tool": "echo", "arguments": {"text": "x"}}).to_string();
    let evil = Some("http://evil.example");
    use reqwest::Method;

    // The tool does not run for a foreign page.
    let (s, v) = send(&gw, Method::POST, "/api/v1/tools/call", evil, Some(&call)).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["code"], "forbidden_origin", "{v}");
    let (_, log) = gw.get("/api/v1/requests").await;
    assert_eq!(log["count"], 0, "the refused call ran: {log}");
    // Nor does anything that reveals.
    for path in [
        "/api/v1/tools",
        "/api/v1/servers",
        "/api/v1/requests",
        "/metrics",
    ] {
        let (s, v) = send(&gw, Method::GET, path, evil, None).await;
        assert_eq!(s, 403, "{path}: {v}");
    }
    // Allowed and loopback origins, and no Origin at all, pass.
    for origin in [
        Some("https://app.example.com"),
        Some("http://localhost:5173"),
        None,
    ] {
        let (s, v) = send(&gw, Method::POST, "/api/v1/tools/call", origin, Some(&call)).await;
        assert_eq!(s, 200, "{origin:?}: {v}");
    }
    // The probes stay open (a load balancer or orchestrator may send anything).
    let (s, _) = send(&gw, Method::GET, "/healthz", evil, None).await;
    assert_eq!(s, 200);
    // /mcp answers in JSON-RPC.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
    .to_string();
    let (s, v) = send(&gw, Method::POST, "/mcp", evil, Some(&init)).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["code"], -32600, "{v}");
    gw.stop().await;
}

/// With authentication on, a foreign page learns nothing from it: 403 before any 401.
#[tokio::test]
async fn the_origin_is_checked_before_credentials() {
    let yaml = format!(
        "auth:\n  strategy: api-key\n  apiKeys: [\"k-0123456789abcdef\"]\nservers:\n{}",
        test_server_yaml("t", &[], "")
    );
    let gw = TestGateway::start(config(&yaml)).await;
    for path in ["/api/v1/tools", "/mcp"] {
        let (s, v) = send(
            &gw,
            reqwest::Method::GET,
            path,
            Some("http://evil.example"),
            None,
        )
        .await;
        assert_eq!(s, 403, "{path}: {v}");
        let (s, _) = send(&gw, reqwest::Method::GET, path, None, None).await;
        assert_eq!(s, 401, "{path}");
    }
    gw.stop().await;
}
