//! Core types shared by every mcp-gateway layer: JSON-RPC 2.0 framing, the MCP-plane
//! request/response pair ([`McpRequest`] / [`McpResponse`]), the caller [`Identity`],
//! protocol-version constants and the gateway's error type ([`McpError`]).
//!
//! The MCP plane is a stack of tower services over [`McpRequest`]. Parameters and results
//! stay as raw JSON ([`serde_json::value::RawValue`]) so a tool result travels from the
//! upstream to the client without ever being parsed into a tree.
//!
//! ```
//! use mcp_gateway_core::{McpRequest, McpError};
//!
//! use serde_json::value::RawValue;
//!
//! let args = RawValue::from_string(r#"{"path":"/tmp/a"}"#.to_string()).unwrap();
//! let req = McpRequest::call_tool("read_file", Some(&args));
//! assert_eq!(req.method(), "tools/call");
//! assert_eq!(req.tool_name().unwrap().as_deref(), Some("read_file"));
//! let err = McpError::UnknownTool { name: "nope".into(), hint: None };
//! assert_eq!(err.http_status(), 404);
//! ```

pub mod body;
mod error;
pub mod glob;
pub mod header;
pub mod jsonrpc;
pub mod origin;
pub mod param_headers;
pub mod protocol;
pub mod redact;
pub mod relay;
mod request;
pub mod timeout;
pub mod timing;
pub mod trace;
pub mod wake;

pub use error::McpError;

/// How an HTTP-plane layer (authentication, rate limiting) writes the body of a refusal:
/// each front end picks its own, so a client sees errors in the shape it speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ErrorFormat {
    /// `{"error": {"code": "...", "message": ...}}` (REST APIs).
    #[default]
    Json,
    /// A JSON-RPC 2.0 error with `id: null` (MCP endpoints).
    JsonRpc,
}
pub use glob::Glob;
pub use jsonrpc::{JsonRpcError, RequestId};
pub use request::{
    CatalogListing, Identity, ItemKind, McpRequest, McpResponse, RequestIds, Route, Routing,
    ToolPolicy, rename_tool,
};
pub use trace::TraceContext;

/// Boxed error used where a layer must accept errors from arbitrary inner services.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
