//! "Embed as a library": the gateway's router nested in an axum app of our own, the router
//! driven without a socket, and the MCP-plane service called directly.

mod common;
use axum::Router;
use axum::body::Body;
use axum::routing::get;
use common::*;
use http_body_util::BodyExt;
use mcp_gateway::Gateway;
use mcp_gateway::core::{McpError, McpRequest};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tower::ServiceExt;

fn gateway() -> Gateway {
    let yaml = format!("servers:\n{}", test_server_yaml("t", &[], ""));
    Gateway::new(config(&yaml)).expect("valid config")
}

/// Sends `req` to `router` in-process and returns status and JSON (or string) body.
async fn oneshot(router: Router, req: http::Request<Body>) -> (u16, Value) {
    let res = router.oneshot(req).await.expect("infallible");
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8(bytes.to_vec()).expect("utf-8 body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn nested_in_own_axum_app() {
    let gateway = gateway();
    let reports = gateway.connect().await;
    assert_eq!(reports.len(), 1);
    reports_tools(&reports);

    let app = Router::new()
        .route("/hello", get(|| async { "hello from the host app" }))
        .nest("/gateway", gateway.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn({
        let stop = stop.clone();
        async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
                .unwrap();
        }
    });
    let http = reqwest::Client::new();
    let url = |p: &str| format!("http://{addr}{p}");

    // The host app's own route.
    let res = http.get(url("/hello")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "hello from the host app");

    // A tool call through the nested gateway.
    let res = http
        .post(url("/gateway/api/v1/tools/call"))
        .header("content-type", "application/json")
        .body(json!({"tool": "echo", "arguments": {"text": "nested"}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["server"], "t", "{v}");
    assert_eq!(text(&v), "nested");

    // Other gateway routes under the prefix.
    let res = http
        .get(url("/gateway/api/v1/servers"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["servers"][0]["status"], "healthy", "{v}");
    let res = http.get(url("/gateway/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);

    // Unknown paths under the prefix get the gateway's JSON 404 (its fallback); unknown
    // paths elsewhere get the host app's own (empty) 404, and the gateway's routes are not
    // reachable without the prefix.
    let res = http.get(url("/gateway/nope")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_found", "{v}");
    for path in ["/nope", "/api/v1/servers"] {
        let res = http.get(url(path)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
        assert_eq!(
            res.text().await.unwrap(),
            "",
            "{path}: host app 404 expected"
        );
    }

    stop.cancel();
    server.await.unwrap();
    gateway.stop().await;
}

/// Tool count of the first report (so the test does not hard-code the test server's list).
fn reports_tools(reports: &[mcp_gateway::ServerReport]) -> usize {
    match reports[0].outcome {
        mcp_gateway::StartOutcome::Ready(n) => {
            assert!(n > 0, "no tools");
            n
        }
        ref other => panic!("test server not ready: {other:?}"),
    }
}

#[tokio::test]
async fn router_oneshot_without_socket() {
    let gateway = gateway();
    gateway.connect().await;

    let req = http::Request::get("/api/v1/health")
        .body(Body::empty())
        .unwrap();
    let (status, v) = oneshot(gateway.router(), req).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "healthy", "{v}");

    let req = http::Request::post("/api/v1/tools/call")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"tool": "echo", "server": "t", "arguments": {"text": "no socket"}}).to_string(),
        ))
        .unwrap();
    let (status, v) = oneshot(gateway.router(), req).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(text(&v), "no socket");

    let req = http::Request::post("/api/v1/tools/call")
        .body(Body::from(r#"{"tool": "nope"}"#))
        .unwrap();
    let (status, v) = oneshot(gateway.router(), req).await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["error"]["code"], "unknown_tool", "{v}");

    gateway.stop().await;
}

#[tokio::test]
async fn mcp_service_called_directly() {
    let gateway = gateway();
    gateway.connect().await;

    let args = RawValue::from_string(r#"{"text":"direct"}"#.into()).unwrap();
    let res = gateway
        .mcp_service()
        .oneshot(McpRequest::call_tool("echo", Some(&args)))
        .await
        .expect("echo succeeds");
    assert_eq!(res.server.as_deref(), Some("t"));
    let result: Value = serde_json::from_str(res.result.get()).unwrap();
    assert_eq!(result["content"][0]["text"], "direct", "{result}");

    // Explicit server, and the errors a caller gets as values.
    let res = gateway
        .mcp_service()
        .oneshot(McpRequest::call_tool("echo", Some(&args)).with_server("t"))
        .await
        .expect("echo on t succeeds");
    assert_eq!(res.server.as_deref(), Some("t"));
    let err = gateway
        .mcp_service()
        .oneshot(McpRequest::call_tool("nope", None))
        .await
        .expect_err("unknown tool");
    assert!(matches!(err, McpError::UnknownTool { .. }), "{err:?}");
    assert_eq!(err.http_status(), 404);
    let err = gateway
        .mcp_service()
        .oneshot(McpRequest::call_tool("echo", Some(&args)).with_server("ghost"))
        .await
        .expect_err("unknown server");
    assert!(matches!(err, McpError::UnknownServer(_)), "{err:?}");

    gateway.stop().await;
}

/// Three `GET /api/v1/health` from `from` (a loopback address) to `addr`: their statuses.
async fn three_from(from: &str, addr: std::net::SocketAddr) -> Vec<u16> {
    let client = reqwest::Client::builder()
        .local_address(from.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let res = client
            .get(format!("http://{addr}/api/v1/health"))
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
    }
    statuses
}

/// An embedder who serves `Gateway::router()` with the peer address (as the README shows)
/// or `Gateway::service()` with hyper gets one budget per client IP for anonymous callers,
/// as the standalone binary does.
#[tokio::test]
async fn embedders_get_per_ip_budgets() {
    let yaml = format!(
        "rateLimit: {{ limit: 2, windowSeconds: 60 }}\nservers:\n{}",
        test_server_yaml("t", &[], "")
    );
    let gateway = Gateway::new(config(&yaml)).expect("valid config");
    gateway.connect().await;

    // axum::serve with the peer address.
    let app = gateway.router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        axum::serve(listener, app).await.unwrap();
    });
    assert_eq!(three_from("127.0.0.1", addr).await, [200, 200, 429]);
    assert_eq!(three_from("127.0.0.2", addr).await, [200, 200, 429]);

    // hyper directly, over Gateway::service().
    let service = gateway.service::<hyper::body::Incoming>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, peer) = listener.accept().await.unwrap();
            let service = service.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |mut req: http::Request<_>| {
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    service.clone().oneshot(req)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    // The same limiter as above: 127.0.0.1 and .2 spent their budgets, .3 has its own.
    assert_eq!(three_from("127.0.0.1", addr).await, [429, 429, 429]);
    assert_eq!(three_from("127.0.0.3", addr).await, [200, 200, 429]);
    gateway.stop().await;
}
