//! Quick end-to-end check of the vertical slice with the test server.

mod common;
use common::*;
use serde_json::json;

#[tokio::test]
async fn rest_call_through_test_server() {
    let yaml = format!("servers:\n{}", test_server_yaml("t", &[], ""));
    let gw = TestGateway::start(config(&yaml)).await;
    let (status, v) = gw
        .call(json!({"tool": "echo", "arguments": {"text": "hi"}}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(text(&v), "hi");
    gw.stop().await;
}

/// The server speaks HTTP/2 to a client that starts with it (prior knowledge), as well as
/// HTTP/1.1, on the same port.
#[tokio::test]
async fn the_gateway_serves_http2_with_prior_knowledge() {
    let yaml = format!("servers:\n{}", test_server_yaml("t", &[], ""));
    let gw = TestGateway::start(config(&yaml)).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    for text_in in ["one", "two"] {
        let res = h2
            .post(gw.url("/api/v1/tools/call"))
            .json(&json!({"tool": "echo", "arguments": {"text": text_in}}))
            .send()
            .await
            .expect("HTTP/2 POST");
        assert_eq!(res.version(), reqwest::Version::HTTP_2);
        assert_eq!(res.status(), 200);
        let v: serde_json::Value = res.json().await.unwrap();
        assert_eq!(text(&v), text_in);
    }
    let (status, v) = gw
        .call(json!({"tool": "echo", "arguments": {"text": "h1"}}))
        .await;
    assert_eq!((status, text(&v)), (200, "h1"), "{v}");
    gw.stop().await;
}

/// `Gateway::start` serves `POST /api/v1/tools/call` and `POST /mcp` without the axum
/// router (src/hot.rs). Each answer must be the router's, layers included: the same
/// requests sent to `start`'s port and to `Gateway::router()` under `axum::serve` get the
/// same status, the same bodies and the same headers, from success to every refusal.
#[tokio::test]
async fn the_hot_routes_answer_as_the_router_does() {
    let yaml = format!(
        "auth:\n  strategy: api-key\n  apiKeys:\n    - {{ name: alpha, key: alpha-key }}\n\
         rateLimit: {{ limit: 1000, windowSeconds: 60 }}\n\
         corsOrigins: [\"https://app.example.com\"]\n\
         maxBodyBytes: 4096\n\
         servers:\n{}",
        test_server_yaml("t", &[], "")
    );
    let gw = TestGateway::start(config(&yaml)).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let routed = listener.local_addr().unwrap();
    let app = gw.gateway.router();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let hot = gw.started.addr;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}});
    let call = |tool: &str| json!({"tool": tool, "arguments": {"text": "hi"}}).to_string();
    let rest = "/api/v1/tools/call";
    // Expected status, path, API key, extra headers, body.
    type Case<'a> = (u16, &'a str, &'a str, Vec<(&'a str, &'a str)>, String);
    let cases: Vec<Case<'_>> = vec![
        (200, rest, "alpha-key", vec![], call("echo")),
        (401, rest, "", vec![], call("echo")),
        (401, rest, "wrong", vec![], call("echo")),
        (400, rest, "alpha-key", vec![], "{not json".into()),
        (404, rest, "alpha-key", vec![], call("no_such_tool")),
        (413, rest, "alpha-key", vec![], "x".repeat(5000)),
        (
            200,
            rest,
            "alpha-key",
            vec![
                ("origin", "https://app.example.com"),
                ("x-request-id", "r-1"),
            ],
            call("echo"),
        ),
        (200, "/mcp", "alpha-key", vec![], init.to_string()),
        (401, "/mcp", "", vec![], init.to_string()),
        (400, "/mcp", "alpha-key", vec![], "{not json".into()),
        (400, "/mcp", "alpha-key", vec![], "[]".into()),
        (
            403,
            "/mcp",
            "alpha-key",
            vec![("origin", "https://evil.example")],
            init.to_string(),
        ),
        (
            400,
            "/mcp",
            "alpha-key",
            vec![],
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": "x"}}})
            .to_string(),
        ),
    ];
    let http = reqwest::Client::new();
    for (status, path, key, headers, body) in cases {
        let mut answers = Vec::new();
        for addr in [hot, routed] {
            let mut req = http
                .post(format!("http://{addr}{path}"))
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(body.clone());
            if !key.is_empty() {
                req = req.header("x-api-key", key);
            }
            for (k, v) in &headers {
                req = req.header(*k, *v);
            }
            let res = req.send().await.expect("POST");
            let mut seen: Vec<(String, String)> = res
                .headers()
                .iter()
                // `connection: close` on an early 401 is the connection loop's, which
                // `axum::serve` does not share.
                .filter(|(k, _)| !matches!(k.as_str(), "date" | "mcp-session-id" | "connection"))
                .map(|(k, v)| {
                    let v = v.to_str().unwrap_or("?");
                    // The budget is shared, so the count left differs by one.
                    let v = if k == "x-ratelimit-remaining" { "n" } else { v };
                    (k.to_string(), v.to_string())
                })
                .collect();
            seen.sort();
            let has_session = res.headers().contains_key("mcp-session-id");
            answers.push((
                res.status().as_u16(),
                seen,
                has_session,
                res.text().await.unwrap(),
            ));
        }
        assert_eq!(
            answers[0], answers[1],
            "{path} {key:?} {headers:?} {body:.60}"
        );
        assert_eq!(answers[0].0, status, "{path} {key:?}: {}", answers[0].3);
        if !headers.is_empty() && headers[0].1 == "https://app.example.com" {
            let cors = (
                "access-control-allow-origin".to_string(),
                headers[0].1.to_string(),
            );
            assert!(answers[0].1.contains(&cors), "{:?}", answers[0].1);
        }
        if key == "alpha-key" && status == 200 {
            assert!(answers[0].1.iter().any(|(k, _)| k == "x-ratelimit-limit"));
        }
    }
    server.abort();
    gw.stop().await;
}
