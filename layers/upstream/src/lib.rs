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
//! ```
//! use mcp_gateway_core::McpRequest;
//! use mcp_gateway_upstream::{State, StdioConfig, Transport, Upstream, UpstreamConfig};
//! use std::time::Duration;
//! use tower::ServiceExt;
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // A tiny MCP server of the session generation on stdio (any real one works the same,
//! // e.g. `npx -y @modelcontextprotocol/server-filesystem /tmp`).
//! let server = r#"
//! import json, sys
//! for line in sys.stdin:
//!     m = json.loads(line)
//!     if "id" not in m: continue
//!     r = {"initialize": {"protocolVersion": m.get("params", {}).get("protocolVersion"),
//!                         "capabilities": {"tools": {}}, "serverInfo": {"name": "demo", "version": "1"}},
//!          "tools/list": {"tools": [{"name": "hello", "inputSchema": {"type": "object"}}]},
//!          "tools/call": {"content": [{"type": "text", "text": "hi"}]}}.get(m["method"])
//!     a = {"result": r} if r is not None else {"error": {"code": -32601, "message": "no"}}
//!     print(json.dumps({"jsonrpc": "2.0", "id": m["id"], **a}), flush=True)
//! "#;
//! let cfg = UpstreamConfig::new(
//!     "demo",
//!     Transport::Stdio(StdioConfig::new("python3").args(["-c", server])),
//! );
//! let upstream = Upstream::spawn(cfg);
//! let status = upstream.wait_started(Duration::from_secs(30)).await;
//! assert_eq!(status.state, State::Ready);
//! assert_eq!(upstream.tools()[0].name, "hello");
//! let res = upstream.stack().oneshot(McpRequest::call_tool("hello", None)).await.unwrap();
//! assert!(res.result.get().contains("hi"));
//! upstream.shutdown().await;
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
mod list_cache;
mod service;
mod sse;
mod sse_parse;
mod stdio;
mod streamable_http;
mod supervisor;
mod websocket;

pub use config::{
    Credential, DEFAULT_MAX_MESSAGE_BYTES, HttpConfig, ProtocolChoice, RestartPolicy, StdioConfig,
    Transport, UpstreamConfig,
};
pub use service::{McpUpstreamService, ResponseFuture};

/// Entry points of the fuzz targets (`fuzz/`), compiled only with `--cfg fuzzing`.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzz {
    /// Feeds `data` to the SSE parser in chunks cut at the bytes of `cuts`.
    pub fn sse(data: &[u8], cuts: &[u8], max: usize) {
        let mut p = crate::sse_parse::SseParser::new(max);
        let mut out = Vec::new();
        let mut rest = data;
        for &c in cuts {
            let at = (c as usize).min(rest.len());
            let (chunk, tail) = rest.split_at(at);
            if p.push(chunk, &mut out).is_err() {
                return;
            }
            rest = tail;
        }
        let _ = p.push(rest, &mut out);
        for ev in &out {
            assert!(ev.data.len() <= max, "an event over the limit was emitted");
        }
    }

    /// Scans `data` as the stdio framer scans an oversized line.
    pub fn stdio_scan(data: &[u8]) -> Option<u64> {
        crate::stdio::fuzz_scan(data)
    }

    /// `Mcp-Param-*` headers of a tool definition and one call's arguments.
    pub fn param_headers(tool: &str, arguments: &str) {
        let (Ok(tool), Ok(args)) = (
            serde_json::from_str::<Box<serde_json::value::RawValue>>(tool),
            serde_json::from_str::<Box<serde_json::value::RawValue>>(arguments),
        ) else {
            return;
        };
        if let Ok(h) = mcp_gateway_core::param_headers::tool_headers(&tool) {
            let _ = mcp_gateway_core::param_headers::render(Some(&args), &h);
        }
    }

    /// The header value the gateway sends for `v` (plain or the Base64 sentinel).
    pub fn header_safe(v: &str) -> http::HeaderValue {
        mcp_gateway_core::param_headers::header_safe(v)
    }
}
pub use supervisor::{State, Tool, Upstream, UpstreamStack, UpstreamStatus};
