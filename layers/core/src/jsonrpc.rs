//! JSON-RPC 2.0 message pieces and the error codes MCP uses.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::fmt;

/// Invalid JSON was received.
pub const PARSE_ERROR: i64 = -32700;
/// The JSON sent is not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// The method does not exist or is not available.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Invalid method parameters (MCP also uses it for an unknown tool).
pub const INVALID_PARAMS: i64 = -32602;
/// Internal JSON-RPC error.
pub const INTERNAL_ERROR: i64 = -32603;
/// Header and body disagree (2026-07-28 `HeaderMismatch`).
pub const HEADER_MISMATCH: i64 = -32020;
/// The request needs a capability the client did not declare (2026-07-28).
pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;
/// The requested protocol version is not supported (2026-07-28).
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// Gateway-specific server errors (the JSON-RPC "server error" range -32000..-32099).
pub mod gateway {
    /// The upstream server failed (transport error, crash, JSON-RPC error of its own).
    pub const UPSTREAM_ERROR: i64 = -32001;
    /// The upstream server is down, disabled or still starting.
    pub const UPSTREAM_UNAVAILABLE: i64 = -32002;
    /// The upstream did not answer within its timeout.
    pub const UPSTREAM_TIMEOUT: i64 = -32003;
    /// A bare tool name matches tools on several servers.
    pub const AMBIGUOUS_TOOL: i64 = -32004;
    /// The caller is not authenticated or not allowed.
    pub const UNAUTHORIZED: i64 = -32005;
    /// The caller exceeded its rate limit.
    pub const RATE_LIMITED: i64 = -32006;
}

/// A JSON-RPC request id: a number or a string.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    /// Numeric id.
    Number(i64),
    /// String id.
    String(String),
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestId::Number(n) => write!(f, "{n}"),
            RequestId::String(s) => write!(f, "{s:?}"),
        }
    }
}

/// The `error` member of a JSON-RPC response.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JsonRpcError {
    /// Error code.
    pub code: i64,
    /// Human-readable message.
    pub message: String,
    /// Optional structured detail, kept raw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
}

impl JsonRpcError {
    /// An error with a code and message and no data.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }
}

impl fmt::Display for JsonRpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

/// Any incoming JSON-RPC message, classified without parsing params or results.
///
/// A request has `id` and `method`, a notification only `method`, a response `id` and
/// either `result` or `error`.
#[derive(Debug, Deserialize)]
pub struct Message<'a> {
    /// Request or response id.
    #[serde(default)]
    pub id: Option<RequestId>,
    /// Method of a request or notification.
    #[serde(default, borrow)]
    pub method: Option<std::borrow::Cow<'a, str>>,
    /// Parameters of a request or notification, raw.
    #[serde(default, borrow)]
    pub params: Option<&'a RawValue>,
    /// Result of a successful response, raw.
    #[serde(default, borrow)]
    pub result: Option<&'a RawValue>,
    /// Error of a failed response.
    #[serde(default)]
    pub error: Option<JsonRpcError>,
}

/// Appends `s` to `out` as a JSON string literal.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaper is correct for every code point; writing into a Vec cannot fail.
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec never fails");
}

/// Serializes a request frame `{"jsonrpc":"2.0","id":..,"method":..,"params":..}`.
pub fn request_frame(id: &RequestId, method: &str, params: Option<&str>) -> Vec<u8> {
    const OPEN: &[u8] = br#"{"jsonrpc":"2.0","id":"#;
    const METHOD: &[u8] = br#","method":"#;
    const PARAMS: &[u8] = br#","params":"#;
    // The exact length when nothing needs escaping: a frame whose length equals its
    // capacity becomes `Bytes` without another allocation.
    let id_len = match id {
        RequestId::Number(n) => {
            (n.unsigned_abs().checked_ilog10().unwrap_or(0) as usize) + 1 + usize::from(*n < 0)
        }
        RequestId::String(s) => s.len() + 2,
    };
    let len = OPEN.len()
        + id_len
        + METHOD.len()
        + method.len()
        + 2
        + params.map_or(0, |p| PARAMS.len() + p.len())
        + 1;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(OPEN);
    serde_json::to_writer(&mut out, id).expect("writing to a Vec never fails");
    out.extend_from_slice(METHOD);
    write_json_str(&mut out, method);
    if let Some(p) = params {
        out.extend_from_slice(PARAMS);
        out.extend_from_slice(p.as_bytes());
    }
    out.push(b'}');
    out
}

/// Serializes a notification frame `{"jsonrpc":"2.0","method":..,"params":..}`.
pub fn notification_frame(method: &str, params: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + method.len() + params.map_or(0, str::len));
    out.extend_from_slice(br#"{"jsonrpc":"2.0","method":"#);
    write_json_str(&mut out, method);
    if let Some(p) = params {
        out.extend_from_slice(br#","params":"#);
        out.extend_from_slice(p.as_bytes());
    }
    out.push(b'}');
    out
}

/// Serializes a success response `{"jsonrpc":"2.0","id":..,"result":..}`, splicing the raw result.
pub fn result_frame(id: &RequestId, result: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + result.len());
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    serde_json::to_writer(&mut out, id).expect("writing to a Vec never fails");
    out.extend_from_slice(br#","result":"#);
    out.extend_from_slice(result.as_bytes());
    out.push(b'}');
    out
}

/// Serializes an error response; `id` is `null` when the request could not be read.
pub fn error_frame(id: Option<&RequestId>, error: &JsonRpcError) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + error.message.len());
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    serde_json::to_writer(&mut out, &id).expect("writing to a Vec never fails");
    out.extend_from_slice(br#","error":"#);
    serde_json::to_writer(&mut out, error).expect("writing to a Vec never fails");
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_messages() {
        let m: Message<'_> =
            serde_json::from_str(r#"{"jsonrpc":"2.0","id":7,"result":{"a":[1,2]}}"#).unwrap();
        assert_eq!(m.id, Some(RequestId::Number(7)));
        assert_eq!(m.result.unwrap().get(), r#"{"a":[1,2]}"#);
        let n: Message<'_> =
            serde_json::from_str(r#"{"jsonrpc":"2.0","method":"notifications/x"}"#).unwrap();
        assert!(n.id.is_none());
        assert_eq!(n.method.as_deref(), Some("notifications/x"));
        let e: Message<'_> = serde_json::from_str(
            r#"{"jsonrpc":"2.0","id":"a","error":{"code":-32601,"message":"nope"}}"#,
        )
        .unwrap();
        assert_eq!(e.error.unwrap().code, METHOD_NOT_FOUND);
    }

    #[test]
    fn frames_are_valid_json() {
        let f = request_frame(&RequestId::Number(1), "tools/list", Some("{}"));
        let v: serde_json::Value = serde_json::from_slice(&f).unwrap();
        assert_eq!(v["method"], "tools/list");
        let f = error_frame(None, &JsonRpcError::new(PARSE_ERROR, "bad \"json\""));
        let v: serde_json::Value = serde_json::from_slice(&f).unwrap();
        assert!(v["id"].is_null());
        assert_eq!(v["error"]["message"], "bad \"json\"");
        let f = result_frame(&RequestId::String("x".into()), r#"{"ok":true}"#);
        let v: serde_json::Value = serde_json::from_slice(&f).unwrap();
        assert_eq!(v["result"]["ok"], true);
    }

    #[test]
    fn request_frames_are_sized_exactly_when_nothing_is_escaped() {
        let ids = [
            RequestId::Number(0),
            RequestId::Number(9),
            RequestId::Number(10),
            RequestId::Number(-1),
            RequestId::Number(-10),
            RequestId::Number(i64::MAX),
            RequestId::Number(i64::MIN),
            RequestId::String("abc".into()),
        ];
        for id in &ids {
            for params in [None, Some(r#"{"name":"x"}"#)] {
                let f = request_frame(id, "tools/call", params);
                assert_eq!(f.len(), f.capacity(), "{id:?} {params:?}");
                let v: serde_json::Value = serde_json::from_slice(&f).unwrap();
                assert_eq!(v["id"], serde_json::to_value(id).unwrap());
            }
        }
        // Escapes only cost a larger buffer.
        let f = request_frame(&RequestId::String("a\"b".into()), "x\ty", None);
        let v: serde_json::Value = serde_json::from_slice(&f).unwrap();
        assert_eq!(
            (v["id"].as_str(), v["method"].as_str()),
            (Some("a\"b"), Some("x\ty"))
        );
    }
}
