//! Embedding mcp-gateway in an axum app of your own.
//!
//! The gateway is a library first: [`Gateway::router`] returns a plain `axum::Router` with
//! the REST API (`/api/v1/...`), `/metrics` and the probes, which this example nests under
//! `/gateway` next to the host app's own routes, and [`Gateway::mcp_service`] returns the
//! MCP-plane `tower::Service` (metrics → router → upstreams) that a handler can call
//! directly, without HTTP.
//!
//! ```text
//! cargo run --example embed                   # built-in config: server-everything via npx
//! cargo run --example embed -- my-config.yml  # any mcp-gateway config file
//!
//! curl localhost:3000/hello
//! curl localhost:3000/gateway/api/v1/tools
//! curl -X POST localhost:3000/gateway/api/v1/tools/call \
//!      -H 'content-type: application/json' \
//!      -d '{"tool": "echo", "arguments": {"message": "hi"}}'
//! curl 'localhost:3000/echo?message=hi'       # calls the MCP plane directly
//! ```
//!
//! The app listens on the config's `host` and `port` (the built-in config uses
//! 127.0.0.1:3000). Ctrl-C stops the HTTP server, then [`Gateway::stop`] terminates the
//! upstream processes.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use mcp_gateway::config::{Config, Format};
use mcp_gateway::core::McpRequest;
use mcp_gateway::{Gateway, McpService};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::path::Path;
use tower::ServiceExt;

/// Used when no config file is given: server-everything, fetched by npx.
const BUILT_IN: &str = r#"
port: 3000
host: 127.0.0.1
servers:
  - id: everything
    name: Everything
    command: npx
    args: ["-y", "@modelcontextprotocol/server-everything", "stdio"]
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    let config = match std::env::args_os().nth(1) {
        Some(path) => Config::load(Path::new(&path))?,
        None => Config::parse(BUILT_IN, Format::Yaml, Path::new("<built-in>"), |k| {
            std::env::var(k).ok()
        })?,
    };
    let addr = format!("{}:{}", config.host, config.port);
    let gateway = Gateway::new(config)?;

    // Start the upstream servers and wait for each to come up (or fail; failed servers
    // keep retrying in the background).
    for report in gateway.connect().await {
        println!("{report}");
    }

    let app = Router::new()
        .route("/hello", get(|| async { "hello from the host app\n" }))
        .route("/echo", get(echo).with_state(gateway.mcp_service()))
        .nest("/gateway", gateway.router());

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    // With the peer address, anonymous callers get a rate-limit budget each (by IP).
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;

    gateway.stop().await;
    Ok(())
}

/// `GET /echo?message=...`: calls the `echo` tool through the MCP plane, no HTTP hop.
async fn echo(
    State(mcp): State<McpService>,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    let message = q.get("message").map_or("hello", String::as_str);
    let args = serde_json::json!({ "message": message }).to_string();
    let args = RawValue::from_string(args).expect("valid JSON");
    match mcp
        .oneshot(McpRequest::call_tool("echo", Some(&args)))
        .await
    {
        Ok(res) => (StatusCode::OK, format!("{}\n", res.result.get())),
        Err(e) => (
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_GATEWAY),
            format!("{e}\n"),
        ),
    }
}
