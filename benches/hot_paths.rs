//! Criterion benches of the gateway's hot paths: route lookup, JSON-RPC frame handling and
//! the whole MCP-plane stack over an in-process upstream.
//!
//! `cargo bench --bench hot_paths`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mcp_gateway::core::jsonrpc::{Message, RequestId, request_frame, result_frame};
use mcp_gateway::core::{McpError, McpRequest, McpResponse};
use mcp_gateway::metrics::{McpMetricsLayer, PrometheusExporter, Recorder};
use mcp_gateway::router::ToolRouter;
use serde_json::value::RawValue;
use std::hint::black_box;
use tower::{Layer, Service, ServiceExt, service_fn};

type Echo = tower::util::BoxCloneService<McpRequest, McpResponse, McpError>;

fn echo() -> Echo {
    tower::util::BoxCloneService::new(service_fn(|_req: McpRequest| async {
        let result = RawValue::from_string(r#"{"content":[{"type":"text","text":"ok"}]}"#.into())
            .expect("valid");
        Ok::<_, McpError>(McpResponse {
            result,
            server: None,
        })
    }))
}

fn router_with(tools: usize) -> ToolRouter<Echo> {
    let servers = 10;
    let mut b = ToolRouter::builder();
    for s in 0..servers {
        b = b.server(format!("server{s}"), echo());
    }
    let r = b.build();
    for s in 0..servers {
        r.set_tools(
            &format!("server{s}"),
            (0..tools / servers).map(|t| format!("s{s}_tool_{t}")),
        );
    }
    r
}

fn route_lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("route_lookup");
    for tools in [10usize, 1_000, 10_000] {
        let r = router_with(tools);
        let name = format!("s3_tool_{}", tools / 10 - 1);
        g.bench_with_input(BenchmarkId::new("bare", tools), &name, |b, n| {
            b.iter(|| black_box(r.resolve_tool(black_box(n), None).is_ok()))
        });
        let q = format!("server3__{name}");
        g.bench_with_input(BenchmarkId::new("qualified", tools), &q, |b, n| {
            b.iter(|| black_box(r.resolve_tool(black_box(n), None).is_ok()))
        });
    }
    g.finish();
}

fn result_of(bytes: usize) -> String {
    let text = "x".repeat(bytes);
    serde_json::json!({"content": [{"type": "text", "text": text}]}).to_string()
}

fn frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("jsonrpc_frame");
    for size in [1024usize, 1024 * 1024] {
        let result = result_of(size);
        let line = String::from_utf8(result_frame(&RequestId::Number(42), &result)).expect("utf8");
        g.throughput(Throughput::Bytes(line.len() as u64));
        // Classifying an upstream response and taking its result raw: what the stdio reader
        // does for every line.
        g.bench_with_input(
            BenchmarkId::new("parse_response_raw", size),
            &line,
            |b, l| {
                b.iter(|| {
                    let m: Message<'_> = serde_json::from_str(black_box(l)).expect("valid");
                    black_box(m.result.expect("result").to_owned())
                })
            },
        );
        // The naive alternative: a full serde_json::Value tree.
        g.bench_with_input(
            BenchmarkId::new("parse_response_value", size),
            &line,
            |b, l| {
                b.iter(|| {
                    black_box(
                        serde_json::from_str::<serde_json::Value>(black_box(l)).expect("valid"),
                    )
                })
            },
        );
        let args = RawValue::from_string(result.clone()).expect("valid");
        g.bench_with_input(BenchmarkId::new("build_request", size), &args, |b, a| {
            b.iter(|| {
                let req = McpRequest::call_tool("read_file", Some(a));
                black_box(request_frame(
                    &RequestId::Number(7),
                    req.method(),
                    req.params().map(|p| p.get()),
                ))
            })
        });
    }
    g.finish();
}

fn mcp_plane(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let router = router_with(1_000);
    let stack = McpMetricsLayer::new(Recorder::new(1000)).layer(router.clone());
    let args = RawValue::from_string(r#"{"path":"/tmp/a.txt"}"#.into()).expect("valid");
    let mut g = c.benchmark_group("mcp_plane");
    g.bench_function("router_only", |b| {
        b.to_async(&rt).iter(|| {
            let mut r = router.clone();
            let req = McpRequest::call_tool("s3_tool_50", Some(&args));
            async move { black_box(r.call(req).await.is_ok()) }
        })
    });
    g.bench_function("metrics_router", |b| {
        b.to_async(&rt).iter(|| {
            let s = stack.clone();
            let req = McpRequest::call_tool("s3_tool_50", Some(&args));
            async move { black_box(s.oneshot(req).await.is_ok()) }
        })
    });
    // The gateway's default: the recorder also feeds the OpenTelemetry latency histogram
    // behind `GET /metrics`.
    let recorder = Recorder::new(1000);
    let _exporter = PrometheusExporter::new(&recorder, 10_000).expect("exporter");
    let exported = McpMetricsLayer::new(recorder).layer(router.clone());
    g.bench_function("metrics_otel_router", |b| {
        b.to_async(&rt).iter(|| {
            let s = exported.clone();
            let req = McpRequest::call_tool("s3_tool_50", Some(&args));
            async move { black_box(s.oneshot(req).await.is_ok()) }
        })
    });
    g.finish();
}

criterion_group!(benches, route_lookup, frames, mcp_plane);
criterion_main!(benches);
