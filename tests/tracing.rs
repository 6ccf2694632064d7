//! OpenTelemetry spans: an in-memory exporter (`opentelemetry_sdk`'s test double) behind the
//! gateway's own `tracing-opentelemetry` layer sees the HTTP request, `tools/call` and
//! upstream-call spans with their attributes, chained under the caller's `traceparent`, and
//! the upstream is told the gateway's span as its parent. Then the `mcp-gateway` binary
//! exports over OTLP/HTTP to a collector run by the test, honouring `sampleRatio`.

mod common;

use common::{TestGateway, config, gateway_bin, http_test_server, test_server_yaml, text};
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tracing_subscriber::layer::SubscriberExt;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// The process-wide subscriber of this test binary: only the gateway's OpenTelemetry layer,
/// exporting each span as it ends into memory.
fn exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber =
            tracing_subscriber::registry().with(mcp_gateway::telemetry::otel_layer(&provider));
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
        // The provider must outlive the test; the layer keeps a tracer of it.
        std::mem::forget(provider);
        exporter
    })
}

fn attr(s: &SpanData, key: &str) -> Option<String> {
    s.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

/// Waits until a finished span matches `pred` (spans end when the response body is done).
async fn span_where(what: &str, pred: impl Fn(&SpanData) -> bool) -> SpanData {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let spans = exporter().get_finished_spans().unwrap();
        if let Some(s) = spans.iter().find(|s| pred(s)) {
            return s.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no span {what}; finished: {:#?}",
            spans
                .iter()
                .map(|s| (&s.name, &s.attributes))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `00-<trace>-<parent>-<flags>` split in its fields.
fn parts(tp: &str) -> (String, String, String) {
    let p: Vec<&str> = tp.split('-').collect();
    assert_eq!(p.len(), 4, "traceparent {tp:?}");
    (p[1].into(), p[2].into(), p[3].into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_in_memory_exporter_and_chain_to_the_upstream() {
    exporter();
    let (_http_child, url) = http_test_server(&["--whoami"]).await;
    let yaml = format!(
        "servers:\n  - id: h\n    transport: streamable-http\n    url: {url:?}\n{}",
        test_server_yaml("s", &["--whoami"], "")
    );
    let gw = TestGateway::start(config(&yaml)).await;

    // REST with a traceparent header, to the HTTP upstream.
    let incoming = format!("00-{TRACE}-{CALLER_SPAN}-01");
    let res = gw
        .http
        .post(gw.url("/api/v1/tools/call"))
        .header("traceparent", &incoming)
        .json(&json!({"tool": "h__trace", "arguments": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    let (trace, upstream_parent, flags) = parts(text(&v));
    assert_eq!((trace.as_str(), flags.as_str()), (TRACE, "01"), "{v}");

    let http = span_where("HTTP POST /api/v1/tools/call", |s| {
        s.name == "POST /api/v1/tools/call" && s.span_context.trace_id().to_string() == TRACE
    })
    .await;
    assert_eq!(http.span_kind, SpanKind::Server);
    assert_eq!(http.parent_span_id.to_string(), CALLER_SPAN);
    assert_eq!(
        attr(&http, "http.response.status_code").as_deref(),
        Some("200")
    );
    let call = span_where("tools/call (rest)", |s| {
        s.name == "tools/call" && attr(s, "transport").as_deref() == Some("rest")
    })
    .await;
    assert_eq!(call.span_context.trace_id().to_string(), TRACE);
    assert_eq!(call.parent_span_id, http.span_context.span_id());
    for (k, want) in [
        ("tool", "h__trace"),
        ("server", "h"),
        ("outcome", "ok"),
        ("trace_id", TRACE),
    ] {
        assert_eq!(attr(&call, k).as_deref(), Some(want), "{k} on {call:#?}");
    }
    // The upstream's parent is the gateway's tools/call span.
    assert_eq!(upstream_parent, call.span_context.span_id().to_string());
    let up = span_where("upstream call to h", |s| {
        s.name == "upstream call" && attr(s, "server").as_deref() == Some("h")
    })
    .await;
    assert_eq!(up.span_kind, SpanKind::Client);
    assert_eq!(up.parent_span_id, call.span_context.span_id());
    assert_eq!(up.span_context.trace_id().to_string(), TRACE);
    for (k, want) in [
        ("method", "tools/call"),
        ("tool", "trace"),
        ("outcome", "ok"),
    ] {
        assert_eq!(attr(&up, k).as_deref(), Some(want), "{k} on {up:#?}");
    }

    // A 2026-07-28 MCP call to the stdio upstream, its trace only in `_meta`.
    let other_trace = "0af7651916cd43dd8448eb211c80319c";
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
    "name": "s__trace", "arguments": {},
    "_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
        "traceparent": format!("00-{other_trace}-b7ad6b7169203331-01"),
    }}});
    let v: Value = gw
        .http
        .post(gw.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "s__trace")
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seen = v["result"]["content"][0]["text"].as_str().unwrap_or("-");
    let (trace, upstream_parent, _) = parts(seen);
    assert_eq!(trace, other_trace, "{v}");
    let call = span_where("tools/call (mcp)", |s| {
        s.name == "tools/call" && attr(s, "transport").as_deref() == Some("mcp")
    })
    .await;
    assert_eq!(call.span_context.trace_id().to_string(), other_trace);
    assert_eq!(call.parent_span_id.to_string(), "b7ad6b7169203331");
    assert_eq!(upstream_parent, call.span_context.span_id().to_string());
    assert_eq!(attr(&call, "server").as_deref(), Some("s"));

    // Without a caller trace the gateway starts one, tells the upstream, and logs it.
    let (status, v) = gw.call(json!({"tool": "h__trace", "arguments": {}})).await;
    assert_eq!(status, 200, "{v}");
    let (fresh, parent, flags) = parts(text(&v));
    assert_ne!(fresh, TRACE);
    assert_eq!(
        flags, "01",
        "sampled under the in-memory provider's default sampler"
    );
    let call = span_where("tools/call of the new trace", |s| {
        s.name == "tools/call" && s.span_context.trace_id().to_string() == fresh
    })
    .await;
    assert_eq!(parent, call.span_context.span_id().to_string());
    let (_, log) = gw.get("/api/v1/requests?tool=trace").await;
    assert!(
        log["requests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["traceId"] == fresh.as_str()),
        "{log}"
    );

    // A failed call is an error span with its outcome.
    let (status, _) = gw
        .post_raw(
            "/api/v1/tools/call",
            json!({"tool": "no_such_tool"}).to_string(),
        )
        .await;
    assert_eq!(status, 404);
    let failed = span_where("failed tools/call", |s| {
        s.name == "tools/call" && attr(s, "tool").as_deref() == Some("no_such_tool")
    })
    .await;
    assert!(matches!(failed.status, Status::Error { .. }), "{failed:#?}");
    assert_eq!(attr(&failed, "outcome").as_deref(), Some("unknown_tool"));
    gw.stop().await;
}

/// A minimal OTLP/HTTP collector on loopback: keeps every JSON export request's body.
async fn collector() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let store = got.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let store = store.clone();
            async move {
                assert_eq!(
                    headers.get("content-type").and_then(|v| v.to_str().ok()),
                    Some("application/json")
                );
                assert_eq!(
                    headers.get("x-collector-key").and_then(|v| v.to_str().ok()),
                    Some("k1")
                );
                store
                    .lock()
                    .unwrap()
                    .push(serde_json::from_str(&body).expect("OTLP JSON"));
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exports_sampled_spans_over_otlp() {
    use tokio::io::AsyncBufReadExt;
    let (endpoint, got) = collector().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gw.yml");
    // Ratio 0: a new trace is never recorded, but a caller's sampled one is followed.
    std::fs::write(
        &cfg,
        format!(
            "host: 127.0.0.1\nport: 0\nmonitor:\n  tracing:\n    endpoint: {endpoint:?}\n    \
             protocol: http/json\n    sampleRatio: 0.0\n    serviceName: gw-under-test\n    \
             headers:\n      x-collector-key: k1\nservers:\n{}",
            test_server_yaml("s", &["--whoami"], "")
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(gateway_bin())
        .args(["start", "-c"])
        .arg(&cfg)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut base = None;
    loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("gateway prints its address")
            .unwrap()
            .expect("a line");
        if let Some(rest) = line.split("listening on ").nth(1) {
            base = Some(rest.trim().to_string());
        }
        if line.contains("tools available") {
            break;
        }
    }
    let base = base.unwrap();
    let http = reqwest::Client::new();
    let call = |tp: Option<String>| {
        let mut req = http
            .post(format!("{base}/api/v1/tools/call"))
            .json(&json!({"tool": "s__trace", "arguments": {}}));
        if let Some(tp) = tp {
            req = req.header("traceparent", tp);
        }
        async move {
            let v: Value = req.send().await.unwrap().json().await.unwrap();
            text(&v).to_string()
        }
    };
    // Not sampled: the upstream still hears of the trace, flagged as not recorded.
    let unsampled = call(None).await;
    let (unsampled_trace, _, flags) = parts(&unsampled);
    assert_eq!(flags, "00", "{unsampled}");
    let seen = call(Some(format!("00-{TRACE}-{CALLER_SPAN}-01"))).await;
    let (_, upstream_parent, _) = parts(&seen);

    // SIGTERM flushes the batch before exit.
    let pid = child.id().unwrap();
    assert!(
        std::process::Command::new("kill")
            .arg(pid.to_string())
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");

    let exports = got.lock().unwrap().clone();
    let spans: Vec<&Value> =
        exports
            .iter()
            .flat_map(|e| e["resourceSpans"].as_array().into_iter().flatten())
            .inspect(|rs| {
                let attrs = rs["resource"]["attributes"].as_array().unwrap();
                assert!(
                    attrs.iter().any(|a| a["key"] == "service.name"
                        && a["value"]["stringValue"] == "gw-under-test"),
                    "{rs}"
                );
            })
            .flat_map(|rs| rs["scopeSpans"].as_array().into_iter().flatten())
            .flat_map(|ss| ss["spans"].as_array().into_iter().flatten())
            .collect();
    let names: Vec<&str> = spans.iter().filter_map(|s| s["name"].as_str()).collect();
    assert!(
        spans.iter().all(|s| s["traceId"] == TRACE),
        "only the sampled trace is exported, never {unsampled_trace}: {spans:#?}"
    );
    for want in ["POST /api/v1/tools/call", "tools/call", "upstream call"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let call_span = spans.iter().find(|s| s["name"] == "tools/call").unwrap();
    assert_eq!(call_span["spanId"], upstream_parent.as_str(), "{call_span}");
}
