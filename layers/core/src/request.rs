//! The MCP-plane request and response.

use crate::McpError;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

/// Who is calling, as established by an authentication layer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// Stable subject: the API key's name or the token's `sub`.
    pub subject: String,
    /// Roles or scopes granted to the caller.
    pub roles: Vec<String>,
    /// Tenant the caller belongs to, in multi-tenant mode.
    pub tenant: Option<String>,
    /// Name of the API key used, when the caller authenticated with one (never the key).
    pub key_name: Option<String>,
    /// The verified token's claims, when the caller authenticated with a JWT.
    pub claims: Option<Arc<serde_json::Value>>,
}

/// One JSON-RPC request travelling down the MCP plane.
///
/// `params` stays raw JSON; front ends build it once and the upstream writes it to the wire
/// unchanged (or with a cheap splice, see [`McpRequest::set_params`]).
#[derive(Debug)]
pub struct McpRequest {
    method: Cow<'static, str>,
    params: Option<Box<RawValue>>,
    /// Server explicitly chosen by the caller (`"server": "github"`), if any.
    pub server: Option<Arc<str>>,
    /// The authenticated caller, if an auth layer ran.
    pub identity: Option<Arc<Identity>>,
    /// The front end that received the request: `mcp` (the default) or `rest`. A field
    /// rather than an extension: REST calls carry no other extension, and the first one
    /// costs three allocations.
    pub transport: &'static str,
    /// Anything else a layer wants to pass down (trace context, downstream session, ...).
    pub extensions: http::Extensions,
    /// Where [`McpRequest::tool_name`] found a name without escapes in `params`, so the
    /// layers that each ask for it (metrics, access control, router) scan `params`, and the
    /// `arguments` in them, once. Reset whenever `params` change.
    name_at: OnceLock<Option<Range<usize>>>,
}

#[derive(Deserialize)]
struct NameOnly<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

#[derive(Deserialize)]
struct NameRaw<'a> {
    #[serde(borrow)]
    name: &'a RawValue,
}

impl McpRequest {
    /// A request for `method` with raw `params`.
    pub fn new(method: impl Into<Cow<'static, str>>, params: Option<Box<RawValue>>) -> Self {
        Self {
            method: method.into(),
            params,
            server: None,
            identity: None,
            transport: "mcp",
            extensions: http::Extensions::new(),
            name_at: OnceLock::new(),
        }
    }

    /// A `tools/call` for tool `name` with raw `arguments`.
    pub fn call_tool(name: &str, arguments: Option<&RawValue>) -> Self {
        #[derive(serde::Serialize)]
        struct Params<'a> {
            name: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            arguments: Option<&'a RawValue>,
        }
        // Serialized straight into a `RawValue`: `RawValue::from_string` would parse the
        // arguments again only to check what is already known to be JSON.
        let params = serde_json::value::to_raw_value(&Params { name, arguments })
            .expect("a name and raw JSON serialize");
        Self::new("tools/call", Some(params))
    }

    /// Sets the explicit target server.
    #[must_use]
    pub fn with_server(mut self, server: impl Into<Arc<str>>) -> Self {
        self.server = Some(server.into());
        self
    }

    /// The JSON-RPC method.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The JSON-RPC method as shared text: a copy without allocation for the methods the
    /// front ends name with a literal (`tools/call`, ...).
    pub fn method_text(&self) -> Cow<'static, str> {
        self.method.clone()
    }

    /// The raw params, if any.
    pub fn params(&self) -> Option<&RawValue> {
        self.params.as_deref()
    }

    /// Replaces the raw params.
    pub fn set_params(&mut self, params: Option<Box<RawValue>>) {
        self.params = params;
        self.name_at = OnceLock::new();
    }

    /// Takes the raw params out of the request.
    pub fn take_params(&mut self) -> Option<Box<RawValue>> {
        self.name_at = OnceLock::new();
        self.params.take()
    }

    /// The `name` member of the params of a `tools/call` (or `prompts/get`), borrowed.
    ///
    /// Only the top level is read; `arguments` are skipped, not parsed into a tree.
    pub fn tool_name(&self) -> Result<Option<Cow<'_, str>>, McpError> {
        let Some(p) = self.params.as_deref() else {
            return Ok(None);
        };
        let text = p.get();
        let at = self.name_at.get_or_init(|| {
            let raw = serde_json::from_str::<NameRaw<'_>>(text).ok()?.name.get();
            // A JSON string without escapes is its text between the quotes.
            let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
            if inner.contains('\\') {
                return None;
            }
            let start = inner.as_ptr() as usize - text.as_ptr() as usize;
            Some(start..start + inner.len())
        });
        if let Some(at) = at {
            return Ok(Some(Cow::Borrowed(&text[at.clone()])));
        }
        match serde_json::from_str::<NameOnly<'_>>(text) {
            Ok(n) => Ok(Some(n.name)),
            Err(e) => Err(McpError::InvalidParams(format!(
                "{} params need a string \"name\": {e}",
                self.method
            ))),
        }
    }
}

/// A successful answer from the MCP plane: the raw `result` and the server that produced it.
#[derive(Debug)]
pub struct McpResponse {
    /// The JSON-RPC `result`, raw.
    pub result: Box<RawValue>,
    /// Id of the upstream server that answered, when one did.
    pub server: Option<Arc<str>>,
}

impl McpResponse {
    /// A response carrying `result`.
    pub fn new(result: Box<RawValue>) -> Self {
        Self {
            result,
            server: None,
        }
    }
}

/// Decides which tools a caller may see and call (implemented by the access-control layer).
///
/// The MCP endpoint and the REST API use it to filter tool lists; the access-control layer on
/// the MCP plane uses it to refuse calls.
pub trait ToolPolicy: Send + Sync + std::fmt::Debug {
    /// True when `identity` (None: anonymous) may use `tool` on `server`.
    fn allows(&self, identity: Option<&Identity>, server: &str, tool: &str) -> bool;

    /// True when `identity` may see and use the prompt or resource (`name` is the prompt
    /// name, or the resource URI or URI template) of `server`. By default the same
    /// decision as for a tool of that name.
    fn allows_item(
        &self,
        identity: Option<&Identity>,
        kind: ItemKind,
        server: &str,
        name: &str,
    ) -> bool {
        let _ = kind;
        self.allows(identity, server, name)
    }

    /// True when every caller may use everything, so a caller can skip resolving which
    /// tool a call names for a decision that cannot refuse. False unless the policy knows.
    fn allows_everything(&self) -> bool {
        false
    }
}

/// What an access decision is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ItemKind {
    /// A tool, by name.
    Tool,
    /// A prompt, by name.
    Prompt,
    /// A resource, by URI (or a resource template, by URI template).
    Resource,
}

impl ItemKind {
    /// The prefix that limits an access pattern to this kind (`"prompt:"`, …).
    pub fn pattern_prefix(self) -> &'static str {
        match self {
            ItemKind::Tool => "tool:",
            ItemKind::Prompt => "prompt:",
            ItemKind::Resource => "resource:",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_reads_tool_calls() {
        let args = RawValue::from_string(r#"{"x":"a\"b"}"#.into()).unwrap();
        let r = McpRequest::call_tool("we\"ird", Some(&args));
        assert_eq!(r.tool_name().unwrap().as_deref(), Some("we\"ird"));
        let v: serde_json::Value = serde_json::from_str(r.params().unwrap().get()).unwrap();
        assert_eq!(v["arguments"]["x"], "a\"b");
        let bad = McpRequest::new(
            "tools/call",
            Some(RawValue::from_string(r#"{"name":3}"#.into()).unwrap()),
        );
        assert!(matches!(bad.tool_name(), Err(McpError::InvalidParams(_))));
    }

    #[test]
    fn tool_name_is_found_once_and_follows_new_params() {
        let raw = |t: &str| Some(RawValue::from_string(t.to_string()).unwrap());
        let mut r = McpRequest::new(
            "tools/call",
            raw(r#"{"arguments":{"name":"not this"},"name":"read_file"}"#),
        );
        // Asked twice: the second answer comes from where the first found it.
        assert_eq!(r.tool_name().unwrap().as_deref(), Some("read_file"));
        assert!(r.name_at.get().unwrap().is_some());
        assert_eq!(r.tool_name().unwrap().as_deref(), Some("read_file"));
        // New params (the router's rename) are read again.
        r.set_params(raw(r#"{"name":"fs__read_file","arguments":{}}"#));
        assert_eq!(r.tool_name().unwrap().as_deref(), Some("fs__read_file"));
        r.set_params(raw(r#"{"name":"x"}"#));
        assert_eq!(r.take_params().unwrap().get(), r#"{"name":"x"}"#);
        assert_eq!(r.tool_name().unwrap(), None);
        // Escapes are decoded, every time; bad names stay errors.
        for (params, name) in [
            (r#"{"name":"a\u0041\"b"}"#, Some("aA\"b")),
            (r#"{"name" : "spaced" }"#, Some("spaced")),
            (r#"{"name":""}"#, Some("")),
        ] {
            let r = McpRequest::new("tools/call", raw(params));
            assert_eq!(r.tool_name().unwrap().as_deref(), name, "{params}");
            assert_eq!(r.tool_name().unwrap().as_deref(), name, "{params}");
        }
        for params in [
            r#"{"name":null}"#,
            r#"{"other":1}"#,
            r#"{"name":"a","name":"b"}"#,
        ] {
            let r = McpRequest::new("tools/call", raw(params));
            assert!(r.tool_name().is_err(), "{params}");
            assert!(r.tool_name().is_err(), "{params}");
        }
    }
}
