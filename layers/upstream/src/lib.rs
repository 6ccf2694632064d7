//! `McpUpstreamService`: the bottom of the MCP plane, speaking to one MCP server.
//!
//! An [`Upstream`] owns one server: it starts or connects to it (a child process over stdio,
//! or Streamable HTTP, legacy HTTP+SSE or WebSocket — see [`Transport`]), learns which
//! protocol generation it speaks (`server/discover` for 2026-07-28 servers, the `initialize`
//! handshake for 2024-11-05 … 2025-11-25 ones), discovers its tools (following
//! `nextCursor`), and keeps it alive, restarting with exponential backoff when it dies.
//! [`McpUpstreamService`] is the tower `Service<McpRequest>` that forwards calls to whatever
//! connection is live: many requests in flight on one connection, matched by JSON-RPC id,
//! results kept as raw JSON.
//!
//! [`Upstream::stack`] wraps the service in the per-server limits from config:
//! `Timeout(ConcurrencyLimit(McpUpstreamService))`.
//!
//! ```no_run
//! # async fn demo() {
//! use mcp_gateway_core::McpRequest;
//! use mcp_gateway_upstream::{StdioConfig, Transport, Upstream, UpstreamConfig};
//! use tower::ServiceExt;
//!
//! let cfg = UpstreamConfig::new(
//!     "fs",
//!     Transport::Stdio(StdioConfig::new("npx").args(["-y", "@modelcontextprotocol/server-filesystem", "/tmp"])),
//! );
//! let upstream = Upstream::spawn(cfg);
//! upstream.wait_started(std::time::Duration::from_secs(30)).await;
//! let res = upstream.stack().oneshot(McpRequest::call_tool("list_allowed_directories", None)).await;
//! # let _ = res;
//! # }
//! ```
//!
//! Design notes: transports only frame bytes and manage their connection
//! (`stdio.rs`, `streamable_http.rs`, `sse.rs`, `websocket.rs`, behind one `link::Link`);
//! everything protocol-level — id matching, the pending-call table,
//! cancellation on drop, the handshake, discovery — lives once in `connection.rs` and
//! `supervisor.rs`, so later transports reuse it unchanged.

mod config;
mod connection;
mod h1;
mod link;
mod param_headers;
mod service;
mod sse;
mod sse_parse;
mod stdio;
mod streamable_http;
mod supervisor;
mod websocket;

pub use config::{Credential, HttpConfig, RestartPolicy, StdioConfig, Transport, UpstreamConfig};
pub use service::{McpUpstreamService, ResponseFuture};
pub use supervisor::{State, Tool, Upstream, UpstreamStack, UpstreamStatus};
