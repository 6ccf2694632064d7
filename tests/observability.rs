//! Observability: Prometheus series after a known sequence of calls (parsed with a real
//! exposition-format parser), the in-flight and session gauges, the request log (filters,
//! redacted bodies, bound), time buckets of `GET /api/v1/metrics`, and
//! `monitor.prometheus: false`.

mod common;

use common::{TestGateway, config, test_server_yaml};
use prometheus_parse::{Sample, Scrape, Value as PValue};
use serde_json::{Value, json};
use std::time::Duration;

const KEY: &str = "alice-key";

/// `GET path` with the API key; (status, body text).
async fn get(gw: &TestGateway, path: &str, accept: Option<&str>) -> (u16, String) {
    let mut req = gw.http.get(gw.url(path)).header("x-api-key", KEY);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let res = req.send().await.expect("GET");
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn get_json(gw: &TestGateway, path: &str) -> (u16, Value) {
    let (s, t) = get(gw, path, None).await;
    (s, serde_json::from_str(&t).unwrap_or(Value::String(t)))
}

/// `POST /api/v1/tools/call` with `key`.
async fn call(gw: &TestGateway, key: &str, body: Value) -> (u16, Value) {
    let res = gw
        .http
        .post(gw.url("/api/v1/tools/call"))
        .header("x-api-key", key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("POST");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Scrapes `/metrics` and parses it.
async fn scrape(gw: &TestGateway) -> Vec<Sample> {
    let (status, text) = get(gw, "/metrics", None).await;
    assert_eq!(status, 200, "{text}");
    Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("valid Prometheus text")
        .samples
}

/// The value of the one sample of `metric` whose labels are exactly `labels`.
fn value(samples: &[Sample], metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.metric == metric
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .collect();
    assert!(found.len() <= 1, "{metric}{labels:?} appears twice");
    found.first().map(|s| match &s.value {
        PValue::Counter(v) | PValue::Gauge(v) | PValue::Untyped(v) => *v,
        PValue::Histogram(h) => h
            .iter()
            .find(|b| b.less_than.is_infinite())
            .map_or(f64::NAN, |b| b.count),
        PValue::Summary(_) => f64::NAN,
    })
}

fn expect(samples: &[Sample], metric: &str, labels: &[(&str, &str)], want: f64) {
    let got = value(samples, metric, labels);
    assert_eq!(
        got,
        Some(want),
        "{metric}{labels:?}; series of {metric}: {:#?}",
        samples
            .iter()
            .filter(|s| s.metric == metric)
            .map(|s| (s.labels.to_string(), format!("{:?}", s.value)))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn prometheus_series_after_a_known_sequence_of_calls() {
    let yaml = format!(
        "auth:\n  strategy: api-key\n  adminRoles: [user]\n  apiKeys:\n    - {{ name: alice, key: {KEY}, roles: [user] }}\n\
         access:\n  - {{ roles: [user], allow: [\"t__*\"], deny: [\"t__add\"] }}\n\
         rateLimit:\n  limit: 1000\n  windowSeconds: 3600\n  tools:\n    - {{ match: \"t__echo\", limit: 2 }}\n\
         servers:\n{}",
        test_server_yaml("t", &[], "")
    );
    let gw = TestGateway::start(config(&yaml)).await;
    let echo = json!({"tool": "echo", "arguments": {"text": "hi"}});
    assert_eq!(call(&gw, KEY, echo.clone()).await.0, 200);
    assert_eq!(call(&gw, KEY, echo.clone()).await.0, 200);
    assert_eq!(
        call(&gw, KEY, echo.clone()).await.0,
        429,
        "third echo: over budget"
    );
    assert_eq!(call(&gw, KEY, json!({"tool": "fail"})).await.0, 200);
    assert_eq!(call(&gw, KEY, json!({"tool": "nope"})).await.0, 404);
    let (status, v) = call(
        &gw,
        KEY,
        json!({"tool": "add", "arguments": {"a": 1, "b": 2}}),
    )
    .await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(call(&gw, "wrong-key", echo.clone()).await.0, 401);

    // A call in flight shows in the gauge while it runs.
    let slow = {
        let (http, url) = (gw.http.clone(), gw.url("/api/v1/tools/call"));
        tokio::spawn(async move {
            http.post(url)
                .header("x-api-key", KEY)
                .header("content-type", "application/json")
                .body(json!({"tool": "sleep", "arguments": {"ms": 1500}}).to_string())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    let mut seen = None;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        seen = value(
            &scrape(&gw).await,
            "mcp_gateway_in_flight_calls",
            &[("server", "t")],
        );
        if seen == Some(1.0) {
            break;
        }
    }
    assert_eq!(seen, Some(1.0), "the sleeping call is in flight on t");
    assert_eq!(slow.await.unwrap(), 200);

    // An MCP session, counted by the sessions gauge.
    let res = gw
        .http
        .post(gw.url("/mcp"))
        .header("x-api-key", KEY)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "obs-test", "version": "1"}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("mcp-session-id"));

    let s = scrape(&gw).await;
    let calls = "mcp_gateway_tool_calls_total";
    expect(
        &s,
        calls,
        &[("server", "t"), ("tool", "echo"), ("outcome", "ok")],
        2.0,
    );
    expect(
        &s,
        calls,
        &[
            ("server", "t"),
            ("tool", "echo"),
            ("outcome", "rate_limited"),
        ],
        1.0,
    );
    expect(
        &s,
        calls,
        &[("server", "t"), ("tool", "fail"), ("outcome", "tool_error")],
        1.0,
    );
    expect(
        &s,
        calls,
        &[("server", "t"), ("tool", "sleep"), ("outcome", "ok")],
        1.0,
    );
    expect(
        &s,
        calls,
        &[
            ("server", "-"),
            ("tool", "nope"),
            ("outcome", "client_error"),
        ],
        1.0,
    );
    expect(
        &s,
        calls,
        &[("server", "t"), ("tool", "add"), ("outcome", "forbidden")],
        1.0,
    );
    assert_eq!(
        s.iter().filter(|x| x.metric == calls).count(),
        6,
        "no other tool series"
    );
    let reqs = "mcp_gateway_requests_total";
    let tc = ("method", "tools/call");
    expect(&s, reqs, &[("server", "t"), tc, ("outcome", "ok")], 3.0);
    expect(
        &s,
        reqs,
        &[("server", "t"), tc, ("outcome", "rate_limited")],
        1.0,
    );
    expect(
        &s,
        reqs,
        &[("server", "t"), tc, ("outcome", "forbidden")],
        1.0,
    );
    expect(
        &s,
        reqs,
        &[("server", "-"), tc, ("outcome", "client_error")],
        1.0,
    );
    // Latency histograms per server and tool: buckets, sum and count.
    let hist = "mcp_gateway_tool_call_duration_seconds";
    expect(&s, hist, &[("server", "t"), ("tool", "echo")], 3.0);
    expect(
        &s,
        &format!("{hist}_count"),
        &[("server", "t"), ("tool", "echo")],
        3.0,
    );
    let sleep_sum = value(
        &s,
        &format!("{hist}_sum"),
        &[("server", "t"), ("tool", "sleep")],
    );
    assert!(
        sleep_sum.is_some_and(|x| (1.5..5.0).contains(&x)),
        "{sleep_sum:?}"
    );
    let buckets = s
        .iter()
        .find(|x| x.metric == hist && x.labels.get("tool") == Some("sleep"))
        .map(|x| x.value.clone());
    let Some(PValue::Histogram(b)) = buckets else {
        panic!("no sleep histogram")
    };
    let le = |bound: f64| b.iter().find(|x| x.less_than == bound).unwrap().count;
    assert_eq!((le(1.0), le(2.5)), (0.0, 1.0), "{b:?}");
    // Gauges, upstreams, auth and rate limiting.
    expect(&s, "mcp_gateway_in_flight_calls", &[("server", "t")], 0.0);
    expect(&s, "mcp_gateway_mcp_sessions", &[], 1.0);
    expect(&s, "mcp_gateway_upstream_up", &[("server", "t")], 1.0);
    expect(
        &s,
        "mcp_gateway_upstream_restarts_total",
        &[("server", "t")],
        0.0,
    );
    expect(
        &s,
        "mcp_gateway_auth_failures_total",
        &[("reason", "invalid_api_key")],
        1.0,
    );
    expect(
        &s,
        "mcp_gateway_rate_limit_decisions_total",
        &[("result", "limited")],
        1.0,
    );
    expect(&s, "mcp_gateway_series_overflow_total", &[], 0.0);
    // No per-key or per-argument labels anywhere.
    for x in &s {
        for k in x.labels.keys() {
            assert!(
                [
                    "server", "tool", "method", "outcome", "reason", "result", "mode", "le",
                    "state", "to",
                ]
                .contains(&k.as_str()),
                "unexpected label {k} on {}",
                x.metric
            );
        }
    }
    // The JSON view agrees.
    let (_, m) = get_json(&gw, "/api/v1/metrics").await;
    assert_eq!(m["mcpSessions"], 1, "{m}");
    assert_eq!(m["inFlight"]["t"], 0, "{m}");
    assert_eq!(m["window"]["calls"], 7, "{m}");
    gw.stop().await;
}

#[tokio::test]
async fn tool_series_are_bounded() {
    let yaml = format!(
        "monitor: {{ maxSeries: 3 }}\nservers:\n{}",
        test_server_yaml("t", &[], "")
    );
    let gw = TestGateway::start(config(&yaml)).await;
    for (tool, args) in [
        ("echo", json!({"text": "x"})),
        ("add", json!({"a": 1, "b": 2})),
        ("fail", json!({})),
        ("sleep", json!({"ms": 1})),
    ] {
        gw.call(json!({"tool": tool, "arguments": args})).await;
    }
    let s = scrape(&gw).await;
    let calls = "mcp_gateway_tool_calls_total";
    expect(
        &s,
        calls,
        &[("server", "t"), ("tool", "echo"), ("outcome", "ok")],
        1.0,
    );
    expect(
        &s,
        calls,
        &[("server", "t"), ("tool", "add"), ("outcome", "ok")],
        1.0,
    );
    expect(
        &s,
        calls,
        &[
            ("server", "t"),
            ("tool", "_other"),
            ("outcome", "tool_error"),
        ],
        1.0,
    );
    expect(
        &s,
        calls,
        &[("server", "t"), ("tool", "_other"), ("outcome", "ok")],
        1.0,
    );
    expect(&s, "mcp_gateway_series_overflow_total", &[], 2.0);
    gw.stop().await;
}

#[tokio::test]
async fn request_log_filters_redacts_and_is_bounded() {
    let yaml = format!(
        "monitor:\n  logBodies: true\n  requestLogSize: 6\n  redact: [password, apiKey, ssn]\nservers:\n{}",
        test_server_yaml("t", &[], "")
    );
    let gw = TestGateway::start(config(&yaml)).await;
    let (status, _) = gw
        .call(json!({"tool": "echo", "arguments": {
            "text": "hello", "password": "hunter2",
            "nested": [{"APIKEY": "k-123", "keep": 1}, {"deeper": {"ssn": "078-05-1120"}}]
        }}))
        .await;
    assert_eq!(status, 200);
    let (_, log) = gw.get("/api/v1/requests?tool=echo").await;
    let e = &log["requests"][0];
    assert_eq!(
        e["arguments"],
        json!({"text": "hello", "password": "[REDACTED]",
               "nested": [{"APIKEY": "[REDACTED]", "keep": 1}, {"deeper": {"ssn": "[REDACTED]"}}]}),
        "{e}"
    );
    assert_eq!(e["result"]["content"][0]["text"], "hello", "{e}");
    let raw = log.to_string();
    for secret in ["hunter2", "k-123", "078-05-1120"] {
        assert!(!raw.contains(secret), "{secret} leaked: {raw}");
    }
    assert_eq!(e["requestId"], e["id"].to_string(), "generated request id");
    assert_eq!(e["transport"], "rest");
    assert!(e.get("traceId").is_none());

    // A large body is cut, and kept as a string.
    let big = "x".repeat(10_000);
    gw.call(json!({"tool": "echo", "arguments": {"text": big}}))
        .await;
    let (_, log) = gw.get("/api/v1/requests?limit=1").await;
    let args = log["requests"][0]["arguments"]
        .as_str()
        .expect("cut to a string");
    assert!(
        args.len() <= 4096 + 3 && args.ends_with('…'),
        "{}",
        args.len()
    );

    // More calls than the log keeps: the oldest go.
    for _ in 0..3 {
        gw.call(json!({"tool": "add", "arguments": {"a": 1, "b": 2}}))
            .await;
    }
    gw.call(json!({"tool": "fail"})).await;
    gw.call(json!({"tool": "nope"})).await;
    let (_, all) = gw.get("/api/v1/requests").await;
    assert_eq!(all["count"], 6, "bounded to requestLogSize: {all}");
    let tools: Vec<&str> = all["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["tool"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["nope", "fail", "add", "add", "add", "echo"]);

    let count = |q: &'static str| {
        let gw = &gw;
        async move {
            let (status, v) = gw.get(&format!("/api/v1/requests?{q}")).await;
            assert_eq!(status, 200, "{q}: {v}");
            v["count"].as_u64().unwrap()
        }
    };
    assert_eq!(count("server=t").await, 5);
    assert_eq!(count("server=-").await, 1);
    assert_eq!(count("tool=add").await, 3);
    assert_eq!(count("status=ok").await, 4);
    assert_eq!(count("status=tool_error").await, 1);
    assert_eq!(count("status=404").await, 1);
    assert_eq!(count("tool=add&limit=2").await, 2);
    assert_eq!(count("since=3600").await, 6);
    assert_eq!(count("server=t&tool=fail&status=tool_error").await, 1);
    gw.stop().await;
}

#[tokio::test]
async fn metrics_json_time_buckets_and_prometheus_off() {
    let yaml = format!(
        "monitor:\n  prometheus: false\n  retentionHours: 2\nservers:\n{}",
        test_server_yaml("t", &[], "")
    );
    let gw = TestGateway::start(config(&yaml)).await;
    for _ in 0..3 {
        gw.call(json!({"tool": "echo", "arguments": {"text": "x"}}))
            .await;
    }
    gw.call(json!({"tool": "fail"})).await;

    let (status, m) = gw.get("/api/v1/metrics?bucket=1m").await;
    assert_eq!(status, 200, "{m}");
    let w = &m["window"];
    assert_eq!(w["retentionMinutes"], 120, "{w}");
    assert_eq!(w["calls"], 4, "{w}");
    assert_eq!(w["errors"], 1, "{w}");
    assert_eq!(w["errorRate"], 0.25, "{w}");
    assert_eq!(w["bucketSeconds"], 60, "{w}");
    let buckets = w["buckets"].as_array().unwrap();
    assert!(!buckets.is_empty() && buckets.len() <= 2, "{w}");
    let sum: u64 = buckets.iter().map(|b| b["calls"].as_u64().unwrap()).sum();
    assert_eq!(sum, 4, "{w}");
    for b in buckets {
        assert!(
            b["start"].as_str().is_some_and(|s| s.ends_with(":00.000Z")),
            "{b}"
        );
        let l = &b["latencyMs"];
        let (p50, p95, p99) = (
            l["p50"].as_f64().unwrap(),
            l["p95"].as_f64().unwrap(),
            l["p99"].as_f64().unwrap(),
        );
        assert!(0.0 < p50 && p50 <= p95 && p95 <= p99, "{b}");
    }
    // The same per server and per (server, tool) pair.
    let t = &w["servers"]["t"];
    assert_eq!(
        (t["calls"].as_u64(), t["errors"].as_u64()),
        (Some(4), Some(1)),
        "{w}"
    );
    let per_server: u64 = t["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["calls"].as_u64().unwrap())
        .sum();
    assert_eq!(per_server, 4, "{t}");
    let tool = |name: &str| {
        w["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["server"] == "t" && x["tool"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no window for t/{name}: {w}"))
    };
    let echo = tool("echo");
    assert_eq!(
        (echo["calls"].as_u64(), echo["errorRate"].as_f64()),
        (Some(3), Some(0.0))
    );
    assert!(echo["latencyMs"]["p99"].as_f64().unwrap() > 0.0, "{echo}");
    assert!(!echo["buckets"].as_array().unwrap().is_empty(), "{echo}");
    let fail = tool("fail");
    assert_eq!(fail["outcomes"]["tool_error"], 1, "{fail}");
    assert_eq!(fail["errorRate"], 1.0, "{fail}");
    // Narrowed to one tool: only its pair, no per-server rows.
    let (_, m) = gw.get("/api/v1/metrics?tool=fail&server=t").await;
    let tools = m["window"]["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 1, "{m}");
    assert_eq!(tools[0]["tool"], "fail");
    assert!(m["window"].get("servers").is_none(), "{m}");
    let (_, m) = gw.get("/api/v1/metrics?bucket=1h").await;
    assert_eq!(m["window"]["buckets"].as_array().unwrap().len(), 1, "{m}");
    assert_eq!(m["window"]["bucketSeconds"], 3600);
    let (_, m) = gw.get("/api/v1/metrics").await;
    assert!(m["window"].get("buckets").is_none(), "only when asked: {m}");
    assert!(m["window"]["latencyMs"]["p99"].as_f64().unwrap() > 0.0);
    for bad in ["bucket=soon", "bucket=0m", "bucket=5s"] {
        let (status, v) = gw.get(&format!("/api/v1/metrics?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {v}");
    }
    // Bodies are not logged by default.
    let (_, log) = gw.get("/api/v1/requests").await;
    assert!(log["requests"][0].get("arguments").is_none(), "{log}");
    assert!(log["requests"][0].get("result").is_none(), "{log}");

    // Prometheus is off everywhere it is served.
    for (path, accept) in [
        ("/metrics", None),
        ("/api/v1/metrics?format=prometheus", None),
        ("/api/v1/metrics", Some("text/plain")),
    ] {
        let (status, text) = get(&gw, path, accept).await;
        assert_eq!(status, 404, "{path}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["error"]["code"], "disabled", "{path}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("monitor.prometheus"),
            "{v}"
        );
    }
    gw.stop().await;
}
