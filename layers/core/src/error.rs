//! The gateway's error type and its mapping to HTTP statuses and JSON-RPC codes.

use crate::jsonrpc::{self, JsonRpcError, gateway};
use std::sync::Arc;
use std::time::Duration;

/// Why a request on the MCP plane failed.
///
/// Converted to an HTTP status ([`McpError::http_status`]) or a JSON-RPC error
/// ([`McpError::to_jsonrpc`]) once, at the edge that answers the client.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum McpError {
    /// The request itself is malformed.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The request's params are malformed.
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// The method is not one the gateway can route.
    #[error("method not found: {0}")]
    MethodNotFound(String),
    /// No server offers this tool.
    #[error("unknown tool '{name}'{}", hint.as_deref().map(|h| format!(" ({h})")).unwrap_or_default())]
    UnknownTool {
        /// The tool name asked for.
        name: String,
        /// Extra help, e.g. which servers are down and might offer it.
        hint: Option<String>,
    },
    /// No server has this id.
    #[error("unknown server '{0}'")]
    UnknownServer(String),
    /// A bare tool name matches tools on several servers.
    #[error("tool '{name}' is offered by several servers ({}); pass \"server\" or call '<server>__{name}'", servers.join(", "))]
    AmbiguousTool {
        /// The tool name asked for.
        name: String,
        /// Ids of every server offering it.
        servers: Vec<String>,
    },
    /// The server is disabled, down or still starting.
    #[error("server '{server}' is unavailable: {reason}")]
    Unavailable {
        /// Server id.
        server: Arc<str>,
        /// Why, in words.
        reason: String,
    },
    /// The server did not answer in time.
    #[error("server '{server}' did not answer within {} ms", after.as_millis())]
    Timeout {
        /// Server id.
        server: Arc<str>,
        /// The timeout that elapsed.
        after: Duration,
    },
    /// The connection to the server failed (crash, broken pipe, bad frame).
    #[error("server '{server}' failed: {reason}")]
    Upstream {
        /// Server id.
        server: Arc<str>,
        /// Why, in words.
        reason: String,
    },
    /// The server answered with a JSON-RPC error.
    #[error("server '{server}' returned an error: {error}")]
    Rpc {
        /// Server id.
        server: Arc<str>,
        /// The error exactly as the server sent it.
        error: JsonRpcError,
    },
    /// The caller is not authenticated.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The caller is authenticated but not allowed.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The caller is over its rate limit.
    #[error("rate limit exceeded; retry after {retry_after_secs} s")]
    RateLimited {
        /// Seconds until budget frees up.
        retry_after_secs: u64,
        /// The server whose per-tool budget ran out (`None`: the caller's request budget).
        server: Option<Arc<str>>,
    },
    /// A bug or resource failure inside the gateway.
    #[error("internal error: {0}")]
    Internal(String),
}

impl McpError {
    /// The HTTP status that fits this error on the REST API.
    pub fn http_status(&self) -> u16 {
        match self {
            McpError::InvalidRequest(_) | McpError::InvalidParams(_) => 400,
            McpError::MethodNotFound(_) | McpError::UnknownTool { .. } => 404,
            McpError::UnknownServer(_) => 404,
            McpError::AmbiguousTool { .. } => 409,
            McpError::Unavailable { .. } => 503,
            McpError::Timeout { .. } => 504,
            McpError::Upstream { .. } => 502,
            McpError::Rpc { error, .. } => match error.code {
                jsonrpc::INVALID_PARAMS => 400,
                jsonrpc::METHOD_NOT_FOUND => 404,
                _ => 502,
            },
            McpError::Unauthorized(_) => 401,
            McpError::Forbidden(_) => 403,
            McpError::RateLimited { .. } => 429,
            McpError::Internal(_) => 500,
        }
    }

    /// A short machine-readable code for JSON error bodies (`"unknown_tool"`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            McpError::InvalidRequest(_) => "invalid_request",
            McpError::InvalidParams(_) => "invalid_params",
            McpError::MethodNotFound(_) => "method_not_found",
            McpError::UnknownTool { .. } => "unknown_tool",
            McpError::UnknownServer(_) => "unknown_server",
            McpError::AmbiguousTool { .. } => "ambiguous_tool",
            McpError::Unavailable { .. } => "upstream_unavailable",
            McpError::Timeout { .. } => "upstream_timeout",
            McpError::Upstream { .. } => "upstream_error",
            McpError::Rpc { .. } => "upstream_error",
            McpError::Unauthorized(_) => "unauthorized",
            McpError::Forbidden(_) => "forbidden",
            McpError::RateLimited { .. } => "rate_limited",
            McpError::Internal(_) => "internal_error",
        }
    }

    /// The upstream server involved, if any.
    pub fn server(&self) -> Option<&Arc<str>> {
        match self {
            McpError::Unavailable { server, .. }
            | McpError::Timeout { server, .. }
            | McpError::Upstream { server, .. }
            | McpError::Rpc { server, .. } => Some(server),
            McpError::RateLimited { server, .. } => server.as_ref(),
            _ => None,
        }
    }

    /// The JSON-RPC error to send to an MCP client.
    ///
    /// An upstream's own JSON-RPC error is relayed unchanged so clients see what the server said.
    pub fn to_jsonrpc(&self) -> JsonRpcError {
        let code = match self {
            McpError::InvalidRequest(_) => jsonrpc::INVALID_REQUEST,
            McpError::InvalidParams(_) | McpError::UnknownTool { .. } => jsonrpc::INVALID_PARAMS,
            McpError::UnknownServer(_) => jsonrpc::INVALID_PARAMS,
            McpError::MethodNotFound(_) => jsonrpc::METHOD_NOT_FOUND,
            McpError::AmbiguousTool { .. } => gateway::AMBIGUOUS_TOOL,
            McpError::Unavailable { .. } => gateway::UPSTREAM_UNAVAILABLE,
            McpError::Timeout { .. } => gateway::UPSTREAM_TIMEOUT,
            McpError::Upstream { .. } => gateway::UPSTREAM_ERROR,
            McpError::Rpc { error, .. } => return error.clone(),
            McpError::Unauthorized(_) | McpError::Forbidden(_) => gateway::UNAUTHORIZED,
            McpError::RateLimited { .. } => gateway::RATE_LIMITED,
            McpError::Internal(_) => jsonrpc::INTERNAL_ERROR,
        };
        let mut e = JsonRpcError::new(code, self.to_string());
        if let McpError::Unavailable { .. } = self {
            // Names the gateway as the source: a server's own `-32002` (resource not found
            // before 2026-07-28) carries no such data, and front ends tell them apart.
            e.data = serde_json::value::RawValue::from_string(
                r#"{"gatewayCode":"upstream_unavailable"}"#.into(),
            )
            .ok();
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_statuses_and_messages() {
        let e = McpError::AmbiguousTool {
            name: "read".into(),
            servers: vec!["a".into(), "b".into()],
        };
        assert_eq!(e.http_status(), 409);
        assert!(e.to_string().contains("a, b"));
        let t = McpError::Timeout {
            server: "fs".into(),
            after: Duration::from_millis(1500),
        };
        assert_eq!(t.http_status(), 504);
        assert_eq!(t.to_string(), "server 'fs' did not answer within 1500 ms");
        let r = McpError::Rpc {
            server: "fs".into(),
            error: JsonRpcError::new(-32602, "Unknown tool: x"),
        };
        assert_eq!(r.http_status(), 400);
        assert_eq!(r.to_jsonrpc().code, -32602);
    }
}
