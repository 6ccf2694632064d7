//! Rate limiting through the whole gateway: headers and 429 on REST and MCP, per-caller
//! budgets, anonymous callers keyed by IP over a real socket, and the Redis backend shared
//! by two gateways — including Redis dying and coming back.

mod common;
use axum::Router;
use axum::body::Body;
use common::*;
use http_body_util::BodyExt;
use mcp_gateway::Gateway;
use mcp_gateway::core::Identity;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

async fn send(router: &Router, mut req: http::Request<Body>, who: Option<&str>) -> Answer {
    if let Some(subject) = who {
        req.extensions_mut().insert(Arc::new(Identity {
            subject: subject.into(),
            ..Identity::default()
        }));
    }
    let res = router.clone().oneshot(req).await.expect("infallible");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    Answer {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

fn get(path: &str) -> http::Request<Body> {
    http::Request::get(path).body(Body::empty()).unwrap()
}

fn mcp_post() -> http::Request<Body> {
    http::Request::post("/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(Body::from(
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{}}"#,
        ))
        .unwrap()
}

#[tokio::test]
async fn rest_and_mcp_share_one_budget_per_caller() {
    let gateway = Gateway::new(config(
        "rateLimit: { limit: 3, windowSeconds: 60, overrides: [{ subject: ci, limit: 5 }] }\n",
    ))
    .unwrap();
    let router = gateway.router();

    for remaining in ["2", "1", "0"] {
        let a = send(&router, get("/api/v1/tools"), Some("alice")).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.header("x-ratelimit-limit"), Some("3"));
        assert_eq!(a.header("x-ratelimit-remaining"), Some(remaining));
        let reset: u64 = a.header("x-ratelimit-reset").unwrap().parse().unwrap();
        assert!((1..=60).contains(&reset), "{reset}");
    }
    // REST: 429, JSON error shape, Retry-After.
    let a = send(&router, get("/api/v1/tools"), Some("alice")).await;
    assert_eq!(a.status, 429);
    assert_eq!(a.body["error"]["code"], "rate_limited");
    let retry: u64 = a.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 120, "{retry}");
    assert_eq!(a.header("x-ratelimit-remaining"), Some("0"));
    // MCP: the same budget, answered as JSON-RPC.
    let m = send(&router, mcp_post(), Some("alice")).await;
    assert_eq!(m.status, 429);
    assert_eq!(m.body["jsonrpc"], "2.0");
    assert_eq!(m.body["error"]["code"], -32006);
    assert!(m.header("retry-after").is_some());

    // Another caller is unaffected; an override gets its own, larger budget.
    let b = send(&router, mcp_post(), Some("bob")).await;
    assert_ne!(b.status, 429, "{}", b.body);
    assert_eq!(b.header("x-ratelimit-remaining"), Some("2"));
    let ci = send(&router, get("/api/v1/health"), Some("ci")).await;
    assert_eq!(ci.header("x-ratelimit-limit"), Some("5"));

    // Probes and the Prometheus scrape are never limited nor annotated.
    for _ in 0..5 {
        let h = send(&router, get("/healthz"), Some("alice")).await;
        assert_eq!(h.status, 200);
        assert!(h.header("x-ratelimit-limit").is_none());
    }
    let p = send(&router, get("/metrics"), Some("alice")).await;
    let text = p.body.as_str().unwrap();
    assert!(
        text.contains("mcp_gateway_rate_limit_decisions_total{result=\"limited\"} 2"),
        "{text}"
    );
    assert!(text.contains("mcp_gateway_rate_limit_decisions_total{result=\"allowed\"} 5"));
    let j = send(&router, get("/api/v1/metrics"), None).await;
    assert_eq!(j.body["rateLimit"]["limited"], 2, "{}", j.body);
    gateway.stop().await;
}

#[tokio::test]
async fn anonymous_callers_are_keyed_by_peer_address() {
    let gw = TestGateway::start(config("rateLimit: { limit: 2, windowSeconds: 60 }\n")).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let res = gw.http.get(gw.url("/api/v1/health")).send().await.unwrap();
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429]);
    // Embedded without a socket there is no peer address: anonymous callers share one
    // budget of their own, separate from 127.0.0.1's.
    let router = gw.gateway.router();
    let a = send(&router, get("/api/v1/health"), None).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("x-ratelimit-remaining"), Some("1"));
    gw.stop().await;
}

fn redis_config(url: &str, fail_mode: &str) -> String {
    format!(
        "rateLimit: {{ limit: 5, windowSeconds: 60, backend: redis, redisUrl: \"{url}\", failMode: {fail_mode} }}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_budget_is_shared_by_two_gateways_and_survives_an_outage() {
    let mut redis = RedisServer::start();
    let open = Gateway::new(config(&redis_config(&redis.url(), "open"))).unwrap();
    let closed = Gateway::new(config(&redis_config(&redis.url(), "closed"))).unwrap();
    let (ra, rb) = (open.router(), closed.router());

    // One budget of 5 across both replicas.
    let mut admitted = 0;
    for i in 0..10 {
        let router = if i % 2 == 0 { &ra } else { &rb };
        let a = send(router, get("/api/v1/health"), Some("alice")).await;
        match a.status {
            200 => admitted += 1,
            429 => assert!(a.header("retry-after").is_some()),
            s => panic!("unexpected {s}: {}", a.body),
        }
    }
    assert_eq!(admitted, 5);
    let b = send(&rb, get("/api/v1/health"), Some("bob")).await;
    assert_eq!(b.status, 200);
    assert_eq!(b.header("x-ratelimit-remaining"), Some("4"));

    // Redis dies: fail open admits (uncounted), fail closed rejects with 503.
    redis.kill();
    let a = send(&ra, get("/api/v1/health"), Some("alice")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-ratelimit-limit"), Some("5"));
    assert!(a.header("x-ratelimit-remaining").is_none());
    let c = send(&rb, get("/api/v1/health"), Some("bob")).await;
    assert_eq!(c.status, 503, "{}", c.body);
    assert_eq!(c.body["error"]["code"], "rate_limiter_unavailable");
    assert_eq!(c.header("retry-after"), Some("1"));
    let m = send(&ra, get("/metrics"), None).await;
    assert!(
        m.body
            .as_str()
            .unwrap()
            .contains("mcp_gateway_rate_limit_fallbacks_total{mode=\"open\"} 1"),
        "{}",
        m.body
    );

    // Redis comes back (empty) on the same port: both gateways recover by themselves.
    let _redis = RedisServer::start_on(redis.port);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let c = send(&rb, get("/api/v1/health"), Some("carol")).await;
        if c.status == 200 {
            assert_eq!(c.header("x-ratelimit-limit"), Some("5"));
            assert!(c.header("x-ratelimit-remaining").is_some());
            break;
        }
        assert_eq!(c.status, 503);
        assert!(
            std::time::Instant::now() < deadline,
            "no recovery after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let a = send(&ra, get("/api/v1/health"), Some("carol")).await;
    assert_eq!(a.status, 200);
    assert!(a.header("x-ratelimit-remaining").is_some());
    open.stop().await;
    closed.stop().await;
}

fn rest_call(tool: &str, key: &str) -> http::Request<Body> {
    http::Request::post("/api/v1/tools/call")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"))
        .body(Body::from(format!(
            r#"{{"tool":"{tool}","arguments":{{"text":"x","a":1,"b":2}}}}"#
        )))
        .unwrap()
}

/// Per-tool and per-server budgets on `tools/call`, and a `rateLimit` on an API key object.
#[tokio::test]
async fn per_tool_limits_and_api_key_budgets() {
    let cfg = config(&format!(
        "auth:\n  strategy: api-key\n  apiKeys:\n    - {{ name: alice, key: alice-key, rateLimit: 50 }}\n    - {{ name: bob, key: bob-key }}\nrateLimit:\n  limit: 1000\n  windowSeconds: 3600\n  tools:\n    - {{ match: \"t__echo\", limit: 2 }}\n    - {{ match: \"t__*\", limit: 3, perKey: false }}\nservers:\n{}",
        test_server_yaml("t", &[], "")
    ));
    let gw = Gateway::new(cfg).unwrap();
    gw.start().await.unwrap();
    let router = gw.router();
    // The API key's own budget replaces the default one.
    let a = send(&router, rest_call("t__echo", "alice-key"), None).await;
    assert_eq!((a.status, a.header("x-ratelimit-limit")), (200, Some("50")));
    let b = send(&router, rest_call("t__echo", "bob-key"), None).await;
    assert_eq!(
        (b.status, b.header("x-ratelimit-limit")),
        (200, Some("1000"))
    );
    // echo: two per caller.
    assert_eq!(
        send(&router, rest_call("echo", "alice-key"), None)
            .await
            .status,
        200
    );
    let over = send(&router, rest_call("echo", "alice-key"), None).await;
    assert_eq!(over.status, 429, "{}", over.body);
    assert_eq!(over.body["error"]["code"], "rate_limited");
    assert!(
        over.header("retry-after")
            .is_some_and(|s| s.parse::<u64>().unwrap() > 0)
    );
    assert_eq!(
        send(&router, rest_call("t__echo", "bob-key"), None)
            .await
            .status,
        200
    );
    assert_eq!(
        send(&router, rest_call("t__echo", "bob-key"), None)
            .await
            .status,
        429
    );
    // The rest of server t: three calls for everybody together.
    assert_eq!(
        send(&router, rest_call("t__add", "alice-key"), None)
            .await
            .status,
        200
    );
    assert_eq!(
        send(&router, rest_call("t__add", "bob-key"), None)
            .await
            .status,
        200
    );
    assert_eq!(
        send(&router, rest_call("t__add", "alice-key"), None)
            .await
            .status,
        200
    );
    assert_eq!(
        send(&router, rest_call("t__add", "bob-key"), None)
            .await
            .status,
        429
    );
    // Over MCP the refusal is a JSON-RPC error, and the upstream never saw the call.
    let body = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"t__add","arguments":{"a":1,"b":2},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"}}}}"#;
    let req = http::Request::post("/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", "Bearer bob-key")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "t__add")
        .body(Body::from(body))
        .unwrap();
    let a = send(&router, req, None).await;
    assert_eq!(
        a.body["error"]["message"]
            .as_str()
            .map(|m| m.contains("rate limit")),
        Some(true),
        "{}",
        a.body
    );
    let log = send(&router, get("/api/v1/requests?tool=add"), None).await;
    assert_eq!(log.status, 401, "the request log needs a key too");
    let req = http::Request::get("/api/v1/requests?tool=add&status=429")
        .header("authorization", "Bearer bob-key")
        .body(Body::empty())
        .unwrap();
    let log = send(&router, req, None).await;
    assert_eq!(
        log.body["requests"].as_array().map(Vec::len),
        Some(2),
        "{}",
        log.body
    );
    gw.stop().await;
}
