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
    /// The caller's request and trace ids, for the request log. A field rather than an
    /// extension for the same reason as `transport`; the metrics layer takes them.
    pub ids: RequestIds,
    /// Where a `tools/call` goes, decided once at the top of the MCP plane (the router's
    /// `Resolve` layer); metrics, access control, per-tool rate limits and the router read
    /// it instead of resolving the name again.
    pub route: Routing,
    /// Anything else a layer wants to pass down (trace context, downstream session, ...).
    pub extensions: http::Extensions,
    /// Where [`McpRequest::tool_name`] found a name without escapes in `params`, so the
    /// layers that each ask for it (metrics, access control, router) scan `params`, and the
    /// `arguments` in them, once. Reset whenever `params` change.
    name_at: OnceLock<Option<Range<usize>>>,
}

/// Marks a list request (in [`McpRequest::extensions`]) that a front end sends to name
/// items the same way for every caller, not to answer one: the access-control layer leaves
/// its answer whole, and the front end shows each caller only what the same policy lets them
/// see. Calls are refused as always.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CatalogListing;

/// The outcome of resolving the tool a `tools/call` names.
#[derive(Debug, Default)]
pub enum Routing {
    /// Not resolved (not a `tools/call`, or no resolving layer ran): each layer falls back
    /// to the request's explicit `server` and the name as given.
    #[default]
    Unresolved,
    /// The call goes to this server under this name.
    Routed(Route),
    /// No server can take it; the router answers with this error, after the layers above
    /// it (metrics, access control) have seen the call.
    Failed(Box<McpError>),
}

impl Routing {
    /// The route, when the call was resolved to one.
    pub fn route(&self) -> Option<&Route> {
        match self {
            Routing::Routed(r) => Some(r),
            _ => None,
        }
    }
}

/// Where a resolved `tools/call` goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Id of the server.
    pub server: Arc<str>,
    /// The tool's name as that server knows it (already written into the params).
    pub tool: Arc<str>,
    /// The server's position in the catalog it was resolved in (config order).
    pub slot: usize,
}

/// Ids that tie a request-log entry to the caller's request and trace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestIds {
    /// The caller's id for the request (the JSON-RPC id on `/mcp`, an `X-Request-Id`).
    pub request_id: Option<String>,
    /// W3C trace id (32 lowercase hex digits).
    pub trace_id: Option<String>,
}

impl RequestIds {
    /// The trace id of a W3C `traceparent` header value (`00-<trace id>-<span id>-<flags>`),
    /// if it is well formed and not all zeros.
    pub fn trace_id_of(traceparent: &str) -> Option<String> {
        crate::TraceContext::continue_from(traceparent).map(|t| t.trace_id().to_string())
    }

    /// True when neither id is known.
    pub fn is_empty(&self) -> bool {
        self.request_id.is_none() && self.trace_id.is_none()
    }
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
            ids: RequestIds::default(),
            route: Routing::Unresolved,
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
        let req = Self::new("tools/call", Some(params));
        // The name is written first, so where it is needs no scan: `{"name":"` is 9 bytes.
        if !needs_escape(name) {
            let _ = req.name_at.set(Some(9..9 + name.len()));
        }
        req
    }

    /// Renames the tool a `tools/call` names: the new name's JSON text replaces the old
    /// one's, and every other member of `params` stays as it was, byte for byte.
    ///
    /// Where [`McpRequest::tool_name`] already found the name, this costs one copy of
    /// `params` and no further scan for the name, now or by later layers.
    pub fn rename_tool(&mut self, name: &str) -> Result<(), McpError> {
        self.tool_name()?;
        let Some(params) = self.params.as_deref() else {
            return Err(no_tool_name());
        };
        match self.name_at.get().cloned().flatten() {
            // The old name's text between its quotes: the quotes stay where they are.
            Some(at) => {
                let text = params.get();
                let plain = !needs_escape(name);
                let mut out = String::with_capacity(text.len() - at.len() + name.len() + 2);
                out.push_str(&text[..at.start]);
                if plain {
                    out.push_str(name);
                } else {
                    let quoted = serde_json::to_string(name).expect("strings serialize");
                    out.push_str(&quoted[1..quoted.len() - 1]);
                }
                out.push_str(&text[at.end..]);
                let params = RawValue::from_string(out).expect("a JSON string spliced into JSON");
                self.set_params(Some(params));
                if plain {
                    let _ = self.name_at.set(Some(at.start..at.start + name.len()));
                }
            }
            None => {
                let p = rename_tool(params, name)?;
                self.set_params(Some(p));
            }
        }
        Ok(())
    }

    /// Renames the tool a `tools/call` names to that name without its first `len` bytes (a
    /// qualified name's `server__`): the router's rename, without building the new name.
    pub fn strip_tool_prefix(&mut self, len: usize) -> Result<(), McpError> {
        let Some(name) = self.tool_name()? else {
            return Err(no_tool_name());
        };
        if len >= name.len() || !name.is_char_boundary(len) {
            return Err(McpError::InvalidParams(format!(
                "tool name '{name}' is no longer than its qualifier"
            )));
        }
        let Some(at) = self.name_at.get().cloned().flatten() else {
            // The name has escapes: write the rest of it out again.
            let rest = name[len..].to_owned();
            return self.rename_tool(&rest);
        };
        let text = self.params.as_deref().map_or("", RawValue::get);
        let mut out = String::with_capacity(text.len() - len);
        out.push_str(&text[..at.start]);
        out.push_str(&text[at.start + len..]);
        let params = RawValue::from_string(out).expect("a JSON string cut inside its quotes");
        self.set_params(Some(params));
        let _ = self.name_at.set(Some(at.start..at.end - len));
        Ok(())
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

/// Whether serde_json writes `s` as a JSON string with escapes (a quote, a backslash or a
/// control character), so its text between the quotes is not `s` itself.
fn needs_escape(s: &str) -> bool {
    s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)
}

/// The error for a `tools/call` whose params name no tool.
fn no_tool_name() -> McpError {
    McpError::InvalidParams("tools/call needs params with a \"name\"".into())
}

/// Rewrites the `name` member of tool-call params, keeping every other member raw.
///
/// The new name is spliced in place of the old one's text: the params are scanned once
/// (other members are skipped, not built) and copied once, with no map of members.
/// [`McpRequest::rename_tool`] does the same on a request, with no scan at all when the
/// name's place is known.
pub fn rename_tool(params: &RawValue, name: &str) -> Result<Box<RawValue>, McpError> {
    #[derive(serde::Deserialize)]
    struct Named<'a> {
        #[serde(borrow)]
        name: &'a RawValue,
    }
    let text = params.get();
    // serde would also read a struct from an array (`["x"]`); params are an object.
    if !text.trim_start().starts_with('{') {
        return Err(McpError::InvalidParams(
            "tools/call params must be a JSON object".into(),
        ));
    }
    let old = serde_json::from_str::<Named<'_>>(text)
        .map_err(|e| McpError::InvalidParams(format!("tools/call params: {e}")))?
        .name
        .get();
    // `old` borrows from `text`: its position is the distance between the two.
    let at = old.as_ptr() as usize - text.as_ptr() as usize;
    let new = serde_json::to_string(name).expect("strings serialize");
    let mut out = String::with_capacity(text.len() - old.len() + new.len());
    out.push_str(&text[..at]);
    out.push_str(&new);
    out.push_str(&text[at + old.len()..]);
    Ok(RawValue::from_string(out).expect("a JSON value spliced into valid JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_in_place_and_keeps_where_the_name_is() {
        let raw = |t: &str| Some(RawValue::from_string(t.to_string()).unwrap());
        // Built by `call_tool`: the name's place is known without a scan.
        let mut r = McpRequest::call_tool("fs__read", None);
        assert_eq!(r.name_at.get(), Some(&Some(9..17)));
        r.rename_tool("read").unwrap();
        assert_eq!(r.params().unwrap().get(), r#"{"name":"read"}"#);
        assert_eq!(r.name_at.get(), Some(&Some(9..13)));
        assert_eq!(r.tool_name().unwrap().as_deref(), Some("read"));
        // Other members, spacing included, stay byte for byte; a name that needs escapes
        // is written with them, and read back decoded.
        let mut r = McpRequest::new(
            "tools/call",
            raw(r#"{ "arguments": {"name": "inner"}, "name" : "a__b", "_meta": {} }"#),
        );
        r.rename_tool("say \"hi\"\n").unwrap();
        assert_eq!(
            r.params().unwrap().get(),
            r#"{ "arguments": {"name": "inner"}, "name" : "say \"hi\"\n", "_meta": {} }"#
        );
        assert_eq!(r.tool_name().unwrap().as_deref(), Some("say \"hi\"\n"));
        // An old name with escapes has no known place: found by a scan, then replaced.
        let mut r = McpRequest::new("tools/call", raw(r#"{"name":"a\u0041","arguments":{}}"#));
        r.rename_tool("b").unwrap();
        assert_eq!(r.params().unwrap().get(), r#"{"name":"b","arguments":{}}"#);
        assert_eq!(r.tool_name().unwrap().as_deref(), Some("b"));
        // Nothing to rename is an error, as it is for `tool_name`.
        let mut r = McpRequest::new("tools/call", raw(r#"{"arguments":{}}"#));
        assert!(matches!(
            r.rename_tool("x"),
            Err(McpError::InvalidParams(_))
        ));
        let mut r = McpRequest::new("tools/call", None);
        assert!(matches!(
            r.rename_tool("x"),
            Err(McpError::InvalidParams(_))
        ));
    }

    #[test]
    fn strips_a_qualifier_in_place() {
        let raw = |t: &str| Some(RawValue::from_string(t.to_string()).unwrap());
        let mut r = McpRequest::call_tool("fs__read", None);
        r.strip_tool_prefix(4).unwrap();
        assert_eq!(r.params().unwrap().get(), r#"{"name":"read"}"#);
        assert_eq!(r.name_at.get(), Some(&Some(9..13)));
        assert_eq!(r.tool_name().unwrap().as_deref(), Some("read"));
        // Found by a scan first; the arguments stay as they were.
        let mut r = McpRequest::new(
            "tools/call",
            raw(r#"{"arguments":{"name":"fs__x"}, "name" : "fs__read"}"#),
        );
        r.strip_tool_prefix(4).unwrap();
        assert_eq!(
            r.params().unwrap().get(),
            r#"{"arguments":{"name":"fs__x"}, "name" : "read"}"#
        );
        // A name with escapes is decoded, cut and written out again.
        let mut r = McpRequest::new("tools/call", raw(r#"{"name":"fs__\u00e9t\u00e9"}"#));
        r.strip_tool_prefix(4).unwrap();
        assert_eq!(r.tool_name().unwrap().as_deref(), Some("été"));
        // Nothing left, a cut inside a character, or no name at all: an error, params kept.
        let mut r = McpRequest::call_tool("fs__", None);
        assert!(matches!(
            r.strip_tool_prefix(4),
            Err(McpError::InvalidParams(_))
        ));
        let mut r = McpRequest::call_tool("é", None);
        assert!(matches!(
            r.strip_tool_prefix(1),
            Err(McpError::InvalidParams(_))
        ));
        assert_eq!(r.tool_name().unwrap().as_deref(), Some("é"));
        let mut r = McpRequest::new("tools/call", raw(r#"{"arguments":{}}"#));
        assert!(matches!(
            r.strip_tool_prefix(1),
            Err(McpError::InvalidParams(_))
        ));
    }

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
