//! A deterministic MCP server over stdio, Streamable HTTP, legacy HTTP+SSE and WebSocket,
//! used by the gateway's integration tests and benches for fault injection.
//!
//! With `--http PORT`, `--sse PORT` and/or `--ws PORT` it serves the network transports on
//! 127.0.0.1 instead of stdio (see the `net` module; port 0 picks a free one, printed on
//! stdout), with the same tools and knobs; `--http-fault status-500|bad-sse` makes the `error`
//! tool fail at the HTTP level instead.
//!
//! Newline-delimited JSON-RPC 2.0 on stdin/stdout; logs on stderr. Every request runs in its
//! own task, so answers may come back out of order; one writer task owns stdout, so lines
//! never interleave.
//!
//! ```text
//! cargo build --example mcp_test_server
//! echo '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' | target/debug/examples/mcp_test_server
//! ```
//!
//! Options (`--flag value` or `--flag=value`):
//! `--name NAME` (serverInfo name, default `mcp-test-server`), `--prefix P` (prefix of every
//! built-in tool name), `--generation session|stateless|both` (default both), `--page-size N`
//! (tools/list page size; default one page), `--tools N` (adds `tool_0`…`tool_{N-1}`, which
//! answer their own name), `--delay-ms N` (before every tools/call), `--startup-delay-ms N`
//! (before reading stdin), `--crash-after N` (exit 1 after answering N tools/call),
//! `--garbage-on-start`, `--exit-on-stdin-close` (the default), `--drain-ms N` (on stdin EOF,
//! wait up to N ms for in-flight requests, then exit 0; default 1000), `--strict-listen` (list
//! changes reach only `subscriptions/listen` streams, as on a strict 2026-07-28 server), `--ttl-ms N` (`ttlMs` of
//! stateless list/discover results; default 0), `--header-tool` (adds the `x-mcp-header` tools
//! of `HEADER_TOOLS`: `route`, whose annotations are valid, `bad_number` / `bad_items`,
//! whose annotations an HTTP client must reject, and `flip_header`, which silently renames
//! `route`'s `Region` annotation to `Zone`, so that a client's tool list goes stale).
//!
//! `--whoami` adds tool `whoami`: over Streamable HTTP it answers the `Authorization` header
//! of the POST that carried the call (`-` when there is none, and always over stdio); and
//! tool `trace`, which answers the `traceparent` header of that POST over Streamable HTTP,
//! else the call's `_meta.traceparent` (`-` when absent).
//!
//! Network-only options: `--require-token T` (every HTTP request, including the WebSocket
//! upgrade, must carry `Authorization: Bearer T`, else 401), `--ws-no-subprotocol` (the
//! WebSocket upgrade never selects a subprotocol, even when `mcp` is offered),
//! `--ws-close-after-ms N` (the first WebSocket connection is closed by the server with a
//! close frame, code 1001, N ms after it opened).
//!
//! Tools: see `BUILTIN_TOOLS`. Dynamic tools added by `add_tool` keep their exact name.
//!
//! Over stateless Streamable HTTP a `tools/call` is checked like a real 2026-07-28 server
//! does: `Mcp-Name` and the `Mcp-Param-*` headers of the tool's `x-mcp-header` parameters
//! must match the body after Base64-sentinel decoding (400 with -32020 `HeaderMismatch`
//! otherwise); the `Mcp-Param-*` headers of every call are logged on stderr.
//!
//! Generations: the session one (2024-11-05 … 2025-11-25: `initialize`, `ping`) and the
//! stateless 2026-07-28 one (`server/discover`, `subscriptions/listen`). With `both`, a request
//! is stateless when `params._meta` carries `io.modelcontextprotocol/protocolVersion`; another
//! version than 2026-07-28 gets -32022. Stateless results carry `resultType: "complete"` and
//! `_meta["io.modelcontextprotocol/serverInfo"]`; `tools/list` and `server/discover` also carry
//! `ttlMs` and `cacheScope` (the spec's `DiscoverResult` has no top-level `serverInfo`).
//! `notifications/tools/list_changed` goes out untagged when `initialize` was seen or no
//! `subscriptions/listen` stream is open, and tagged with `io.modelcontextprotocol/subscriptionId`
//! on each open stream that asked for `toolsListChanged`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

/// Printed by `--help` and on bad arguments; the module docs explain each option.
const USAGE: &str = "usage: mcp_test_server [--name NAME] [--prefix P] [--generation G] \
[--page-size N] [--tools N] [--delay-ms N] [--startup-delay-ms N] [--crash-after N] \
[--garbage-on-start] [--strict-listen] [--exit-on-stdin-close] [--drain-ms N] [--ttl-ms N] [--http PORT] \
[--sse PORT] [--ws PORT] [--http-fault status-500|bad-sse] [--header-tool] [--require-token T] \
[--ws-no-subprotocol] [--ws-close-after-ms N] [--whoami]\n";

/// The stateless protocol revision.
const STATELESS_VERSION: &str = "2026-07-28";
/// Session-generation revisions accepted by `initialize`; the last one is the fallback.
const SESSION_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// `_meta` key carrying the request's protocol version.
const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key carrying the server's identity on stateless results.
const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
/// `_meta` key tagging notifications delivered on a `subscriptions/listen` stream.
const META_SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
/// The non-JSON line written by `garbage` and `--garbage-on-start`.
const GARBAGE: &str = "this is not json";

/// Which protocol generations the server speaks.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
enum Generation {
    /// Only `initialize`-based revisions; `server/discover` is an unknown method.
    Session,
    /// Only 2026-07-28; `initialize` is an unknown method.
    Stateless,
    /// Both, chosen per request.
    #[default]
    Both,
}

/// Parsed command-line options.
#[derive(Debug, Default)]
struct Config {
    name: String,
    prefix: String,
    generation: Generation,
    page_size: Option<usize>,
    extra_tools: usize,
    delay_ms: u64,
    startup_delay_ms: u64,
    crash_after: Option<u64>,
    garbage_on_start: bool,
    drain_ms: u64,
    ttl_ms: u64,
    /// Like a strict 2026-07-28 server: list changes go only to `subscriptions/listen` streams.
    strict_listen: bool,
    http: Option<u16>,
    sse: Option<u16>,
    ws: Option<u16>,
    http_fault: Option<HttpFault>,
    /// Adds the `x-mcp-header` tools.
    header_tool: bool,
    whoami: bool,
    /// Bearer token every network request must carry.
    require_token: Option<String>,
    /// The WebSocket upgrade selects no subprotocol.
    ws_no_subprotocol: bool,
    /// Close the first WebSocket connection this many ms after it opened.
    ws_close_after_ms: Option<u64>,
}

/// What the `error` tool does over Streamable HTTP instead of its JSON-RPC error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HttpFault {
    /// Answer HTTP 500 with a plain-text body.
    Status500,
    /// Answer an event stream with undecodable data and end it without a response.
    BadSse,
    /// Answer every `tools/call` on an event stream that stays open for 3 s after the
    /// response.
    LingerSse,
}

/// Parses `std::env::args` by hand. `Err("")` means `--help`.
fn parse_args() -> Result<Config, String> {
    let name = "mcp-test-server".into();
    let mut cfg = Config {
        name,
        drain_ms: 1000,
        ..Config::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, mut inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg, None),
        };
        let mut value = || {
            inline
                .take()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        let num = |s: String| {
            s.parse::<u64>()
                .map_err(|_| format!("{flag}: not a non-negative integer: {s}"))
        };
        let port = |s: String| {
            s.parse::<u16>()
                .map_err(|_| format!("{flag}: not a port number: {s}"))
        };
        match flag.as_str() {
            "--name" => cfg.name = value()?,
            "--prefix" => cfg.prefix = value()?,
            "--generation" => {
                cfg.generation = match value()?.as_str() {
                    "session" => Generation::Session,
                    "stateless" => Generation::Stateless,
                    "both" => Generation::Both,
                    other => return Err(format!("--generation: unknown value {other}")),
                }
            }
            "--page-size" => cfg.page_size = Some(num(value()?)?.max(1) as usize),
            "--tools" => cfg.extra_tools = num(value()?)? as usize,
            "--delay-ms" => cfg.delay_ms = num(value()?)?,
            "--startup-delay-ms" => cfg.startup_delay_ms = num(value()?)?,
            "--crash-after" => cfg.crash_after = Some(num(value()?)?),
            "--drain-ms" => cfg.drain_ms = num(value()?)?,
            "--ttl-ms" => cfg.ttl_ms = num(value()?)?,
            "--http" => cfg.http = Some(port(value()?)?),
            "--sse" => cfg.sse = Some(port(value()?)?),
            "--ws" => cfg.ws = Some(port(value()?)?),
            "--http-fault" => {
                cfg.http_fault = match value()?.as_str() {
                    "status-500" => Some(HttpFault::Status500),
                    "bad-sse" => Some(HttpFault::BadSse),
                    "sse-linger" => Some(HttpFault::LingerSse),
                    other => return Err(format!("--http-fault: unknown value {other}")),
                }
            }
            "--require-token" => cfg.require_token = Some(value()?),
            "--ws-close-after-ms" => cfg.ws_close_after_ms = Some(num(value()?)?),
            "--header-tool" => cfg.header_tool = true,
            "--whoami" => cfg.whoami = true,
            "--ws-no-subprotocol" => cfg.ws_no_subprotocol = true,
            "--garbage-on-start" => cfg.garbage_on_start = true,
            "--strict-listen" => cfg.strict_listen = true,
            "--exit-on-stdin-close" => {}
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    Ok(cfg)
}

/// A message for the stdout writer task.
enum Out {
    /// One line of output (without its newline).
    Line(String),
    /// Bytes written as they are, with no newline (stdio only; a line elsewhere).
    Raw(String),
    /// Flush what was queued before, then exit the process with this code.
    Exit(i32),
}

/// A JSON-RPC error object; `data` is omitted when null.
struct RpcError {
    code: i64,
    message: String,
    data: Value,
}

/// A JSON-RPC error without `data`.
fn err(code: i64, message: impl Into<String>) -> RpcError {
    let (message, data) = (message.into(), Value::Null);
    RpcError {
        code,
        message,
        data,
    }
}

impl RpcError {
    /// Attaches `data` to the error.
    fn with_data(self, data: Value) -> Self {
        Self { data, ..self }
    }

    /// The full JSON-RPC error response for request `id`.
    fn into_response(self, id: Value) -> Value {
        let mut error = json!({ "code": self.code, "message": self.message });
        if !self.data.is_null() {
            error["data"] = self.data;
        }
        json!({ "jsonrpc": "2.0", "id": id, "error": error })
    }
}

/// A request task that a `notifications/cancelled` can abort.
struct InFlight {
    abort: AbortHandle,
    subscription: bool,
}

/// Where the messages for one client go: stdout, one WebSocket or legacy SSE connection,
/// or one Streamable HTTP answer. `conn` scopes request ids (two clients may both use id 1).
#[derive(Clone)]
struct Peer {
    conn: u64,
    out: mpsc::UnboundedSender<Out>,
}

impl Peer {
    /// Queues one JSON message.
    fn send(&self, msg: &Value) {
        let _ = self.out.send(Out::Line(msg.to_string()));
    }

    /// Sends a notification; `Value::Null` params are omitted.
    fn notify(&self, method: &str, params: Value) {
        let mut msg = json!({ "jsonrpc": "2.0", "method": method });
        if !params.is_null() {
            msg["params"] = params;
        }
        self.send(&msg);
    }

    /// Asks whoever drains this peer to exit the process (after flushing what came before).
    fn exit(&self, code: i32) {
        let _ = self.out.send(Out::Exit(code));
    }

    /// The in-flight table key of request `id` from this peer.
    fn key(&self, id: &Value) -> String {
        format!("{}:{id}", self.conn)
    }
}

/// Shared server state.
struct Server {
    cfg: Config,
    /// Peers that receive broadcast notifications (stdout, sockets, GET streams).
    listeners: Mutex<Vec<Peer>>,
    /// In-flight requests by peer and serialized id (so `1` and `"1"` differ).
    inflight: Mutex<HashMap<String, InFlight>>,
    /// Open `subscriptions/listen` streams that asked for `toolsListChanged`, by key.
    subscriptions: Mutex<HashMap<String, (Value, Peer)>>,
    /// Names added by `add_tool`, in insertion order.
    dynamic_tools: Mutex<Vec<String>>,
    /// `flip_header` was called: `route` mirrors `region` into `Mcp-Param-Zone` now.
    header_flipped: AtomicBool,
    cancelled: AtomicU64,
    calls_answered: AtomicU64,
    legacy_seen: AtomicBool,
    next_conn: AtomicU64,
}

/// Locks a mutex, ignoring poisoning (a panicking task must not wedge the server).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes a request from the in-flight tables when its task ends or is aborted.
struct Deregister {
    srv: Arc<Server>,
    key: String,
    subscription: bool,
}

impl Drop for Deregister {
    fn drop(&mut self) {
        lock(&self.srv.inflight).remove(&self.key);
        if self.subscription {
            lock(&self.srv.subscriptions).remove(&self.key);
        }
    }
}

/// A tool result with a single text content.
fn text_result(text: impl Into<String>) -> Value {
    json!({ "content": [{ "type": "text", "text": text.into() }] })
}

/// A required tool argument, read by `get`; -32602 when missing or of the wrong type.
fn arg<'a, T>(args: &'a Value, key: &str, get: fn(&'a Value) -> Option<T>) -> Result<T, RpcError> {
    let what = format!("Invalid arguments: `{key}` is missing or of the wrong type");
    args.get(key).and_then(get).ok_or_else(|| err(-32602, what))
}

/// A tool argument: (name, JSON Schema type). Every argument is required.
type Arg = (&'static str, &'static str);

/// An `inputSchema` for an object with the given (required) properties.
fn schema(args: &[Arg]) -> Value {
    let properties: serde_json::Map<String, Value> = args
        .iter()
        .map(|&(name, ty)| match ty {
            "integer" => (name.into(), json!({ "type": ty, "minimum": 0 })),
            _ => (name.into(), json!({ "type": ty })),
        })
        .collect();
    let required: Vec<&str> = args.iter().map(|a| a.0).collect();
    json!({ "type": "object", "properties": properties, "required": required })
}

/// One entry of a `tools/list` result.
fn tool(name: String, description: &str, args: &[Arg]) -> Value {
    json!({ "name": name, "description": description, "inputSchema": schema(args) })
}

/// The built-in tools: (name without prefix, description, arguments).
#[rustfmt::skip]
const BUILTIN_TOOLS: &[(&str, &str, &[Arg])] = &[
    ("echo", "Echoes `text` back", &[("text", "string")]),
    ("add", "Adds `a` and `b`", &[("a", "number"), ("b", "number")]),
    ("sleep", "Sleeps `ms` ms (cancellable), then answers \"slept <ms>\"", &[("ms", "integer")]),
    ("cancelled_count", "Number of notifications/cancelled received so far", &[]),
    ("fail", "Returns a result with isError: true", &[]),
    ("error", "Returns JSON-RPC error -32000", &[]),
    ("crash", "Exits the process with code 1 without replying", &[]),
    ("garbage", "Writes a non-JSON line to stdout, then answers \"ok\"", &[]),
    ("stderr", "Writes `text` to stderr, then answers \"ok\"", &[("text", "string")]),
    ("progress", "Sends notifications/progress per step, 10 ms apart", &[("steps", "integer")]),
    ("add_tool", "Adds tool `name`, sends notifications/tools/list_changed", &[("name", "string")]),
    ("big", "Returns a text of `bytes` 'x' characters; with `flood: true`, writes `bytes` bytes to stdout without a newline and hangs", &[("bytes", "integer")]),
];

/// The tools added by `--header-tool` (name without prefix, description, `inputSchema`).
fn header_tools(flipped: bool) -> [(&'static str, &'static str, Value); 4] {
    let region = if flipped { "Zone" } else { "Region" };
    [
        (
            "route",
            "Answers \"region=<region> limit=<options.limit> confirm=<confirm>\"; the three are mirrored into Mcp-Param-* headers",
            json!({
                "type": "object",
                "properties": {
                    "region": { "type": "string", "x-mcp-header": region },
                    "options": { "type": "object", "properties": {
                        "limit": { "type": "integer", "x-mcp-header": "Limit" },
                    }},
                    "confirm": { "type": "boolean", "x-mcp-header": "Confirm" },
                    "note": { "type": "string" },
                },
                "required": ["region"],
            }),
        ),
        (
            "bad_number",
            "Invalid: x-mcp-header on a number",
            json!({ "type": "object", "properties": {
                "ratio": { "type": "number", "x-mcp-header": "Ratio" },
            }}),
        ),
        (
            "bad_items",
            "Invalid: x-mcp-header inside array items",
            json!({ "type": "object", "properties": {
                "tags": { "type": "array", "items": { "type": "string", "x-mcp-header": "Tag" } },
            }}),
        ),
        (
            "flip_header",
            "Renames route's Region annotation to Zone without announcing it (a stale tool list)",
            json!({ "type": "object", "properties": {} }),
        ),
    ]
}

impl Server {
    /// A new server state (no listeners yet).
    fn new(cfg: Config) -> Arc<Server> {
        Arc::new(Server {
            cfg,
            listeners: Mutex::default(),
            inflight: Mutex::default(),
            subscriptions: Mutex::default(),
            dynamic_tools: Mutex::default(),
            header_flipped: AtomicBool::new(false),
            cancelled: AtomicU64::new(0),
            calls_answered: AtomicU64::new(0),
            legacy_seen: AtomicBool::new(false),
            next_conn: AtomicU64::new(1),
        })
    }

    /// A new peer id.
    fn conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers a peer for broadcast notifications (dropped once its receiver is gone).
    fn listen_on(&self, peer: Peer) {
        let mut l = lock(&self.listeners);
        l.retain(|p| !p.out.is_closed());
        l.push(peer);
    }

    /// Aborts request `key` if it is still in flight (cancellation); true if it was.
    fn abort(&self, key: &str) -> bool {
        let entry = lock(&self.inflight).remove(key);
        match entry {
            Some(entry) => {
                entry.abort.abort(); // outside the lock
                true
            }
            None => false,
        }
    }

    /// `serverInfo` / `io.modelcontextprotocol/serverInfo`.
    fn server_info(&self) -> Value {
        json!({ "name": self.cfg.name, "version": env!("CARGO_PKG_VERSION") })
    }

    /// Handles one message from `peer` (a line of stdin, a frame, a POST body).
    fn on_line(self: &Arc<Self>, line: &str, peer: &Peer) {
        let line = line.trim();
        if line.is_empty() {
            return;
        }
        let msg: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                let error = err(-32700, "Parse error").with_data(json!(e.to_string()));
                return peer.send(&error.into_response(Value::Null));
            }
        };
        let id = msg.get("id").cloned();
        let Some(method) = msg.get("method").and_then(Value::as_str) else {
            if msg.get("result").is_some() || msg.get("error").is_some() {
                return; // a response from the client: nothing asked for one
            }
            let error = err(-32600, "Invalid Request");
            return peer.send(&error.into_response(id.unwrap_or(Value::Null)));
        };
        let params = msg.get("params").cloned().unwrap_or(Value::Null);
        match id {
            None if method == "notifications/cancelled" => {
                self.cancelled.fetch_add(1, Ordering::SeqCst);
                if let Some(target) = params.get("requestId") {
                    self.abort(&peer.key(target));
                }
            }
            None => {} // other notifications need no action
            Some(id) => self.spawn_request(method.to_string(), id, params, peer.clone()),
        }
    }

    /// Runs a request in its own task, registered so that it can be cancelled.
    fn spawn_request(self: &Arc<Self>, method: String, id: Value, params: Value, peer: Peer) {
        let key = peer.key(&id);
        let subscription = method == "subscriptions/listen";
        let guard = Deregister {
            srv: Arc::clone(self),
            key: key.clone(),
            subscription,
        };
        let srv = Arc::clone(self);
        // Holding the lock across spawn: the task cannot deregister before it is registered.
        let mut inflight = lock(&self.inflight);
        let task = tokio::spawn(async move {
            let _guard = guard;
            srv.run_request(method, id, params, peer).await;
        });
        let entry = InFlight {
            abort: task.abort_handle(),
            subscription,
        };
        inflight.insert(key, entry);
    }

    /// True while a request other than a subscription stream is in flight.
    fn busy(&self) -> bool {
        lock(&self.inflight).values().any(|f| !f.subscription)
    }

    /// Processes one request and writes its answer.
    async fn run_request(self: Arc<Self>, method: String, id: Value, params: Value, peer: Peer) {
        let outcome = match self.era(&method, &params) {
            Ok(modern) => self
                .dispatch(&method, &id, &params, modern, &peer)
                .await
                .map(|r| if modern { self.decorate(r, &method) } else { r }),
            Err(e) => Err(e),
        };
        let response = match outcome {
            Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
            Err(e) => e.into_response(id),
        };
        peer.send(&response);
        if method == "tools/call" {
            let answered = self.calls_answered.fetch_add(1, Ordering::SeqCst) + 1;
            if self.cfg.crash_after == Some(answered) {
                eprintln!("mcp-test-server: crashing after {answered} tools/call answers");
                peer.exit(1);
            }
        }
    }

    /// Decides whether the request is served statelessly (`true`) or in the session
    /// generation (`false`), or rejects it.
    fn era(&self, method: &str, params: &Value) -> Result<bool, RpcError> {
        let version = params
            .get("_meta")
            .and_then(|m| m.get(META_PROTOCOL_VERSION))
            .and_then(Value::as_str);
        match self.cfg.generation {
            Generation::Session => return Ok(false),
            Generation::Both if method == "initialize" => return Ok(false),
            Generation::Both if version.is_none() && method != "server/discover" => {
                return Ok(false);
            }
            _ => {}
        }
        if method == "initialize" {
            let message = format!("Method not found: initialize (supported: {STATELESS_VERSION})");
            return Err(err(-32601, message).with_data(json!({ "supported": [STATELESS_VERSION] })));
        }
        match version {
            Some(STATELESS_VERSION) => Ok(true),
            Some(other) => Err(err(-32022, "Unsupported protocol version")
                .with_data(json!({ "supported": [STATELESS_VERSION], "requested": other }))),
            None => Err(err(
                -32602,
                format!("Missing _meta \"{META_PROTOCOL_VERSION}\""),
            )),
        }
    }

    /// Adds the fields every 2026-07-28 result carries.
    fn decorate(&self, mut result: Value, method: &str) -> Value {
        if let Some(obj) = result.as_object_mut() {
            obj.insert("resultType".into(), json!("complete"));
            if matches!(method, "tools/list" | "server/discover") {
                obj.insert("ttlMs".into(), json!(self.cfg.ttl_ms));
                obj.insert("cacheScope".into(), json!("public"));
            }
            let meta = obj.entry("_meta").or_insert_with(|| json!({}));
            if let Some(meta) = meta.as_object_mut() {
                meta.insert(META_SERVER_INFO.into(), self.server_info());
            }
        }
        result
    }

    /// Routes a request to its handler.
    async fn dispatch(
        &self,
        method: &str,
        id: &Value,
        params: &Value,
        modern: bool,
        peer: &Peer,
    ) -> Result<Value, RpcError> {
        let capabilities = json!({ "tools": { "listChanged": true } });
        match method {
            "initialize" => {
                self.legacy_seen.store(true, Ordering::SeqCst);
                let asked = params.get("protocolVersion").and_then(Value::as_str);
                let version = asked
                    .filter(|v| SESSION_VERSIONS.contains(v))
                    .unwrap_or(SESSION_VERSIONS[3]);
                Ok(json!({
                    "protocolVersion": version,
                    "capabilities": capabilities,
                    "serverInfo": self.server_info(),
                }))
            }
            "server/discover" if modern => Ok(json!({
                "supportedVersions": [STATELESS_VERSION],
                "capabilities": capabilities,
            })),
            "ping" | "logging/setLevel" => Ok(json!({})),
            "tools/list" => self.list_tools(params),
            "tools/call" => self.call_tool(params, peer).await,
            "subscriptions/listen" if modern => self.listen(id, params, peer).await,
            _ => Err(err(-32601, format!("Method not found: {method}"))),
        }
    }

    /// Every tool, in a deterministic order: built-ins, `tool_N`, dynamic ones.
    fn all_tools(&self) -> Vec<Value> {
        let p = &self.cfg.prefix;
        let builtin = BUILTIN_TOOLS
            .iter()
            .map(|t| tool(format!("{p}{}", t.0), t.1, t.2));
        let extra = (0..self.cfg.extra_tools).map(|i| format!("{p}tool_{i}"));
        let extra = extra.map(|name| tool(name, "Returns its own name", &[]));
        let flipped = self.header_flipped.load(Ordering::Relaxed);
        let headers = header_tools(flipped)
            .into_iter()
            .filter(|_| self.cfg.header_tool);
        let headers = headers.map(|(name, description, input_schema)| {
            json!({ "name": format!("{p}{name}"), "description": description, "inputSchema": input_schema })
        });
        let whoami = self.cfg.whoami.then(|| {
            [
                tool(
                    format!("{p}whoami"),
                    "Answers the Authorization header of the HTTP request that carried the call",
                    &[],
                ),
                tool(
                    format!("{p}trace"),
                    "Answers the traceparent the call came with (HTTP header, else _meta)",
                    &[],
                ),
            ]
        });
        let dynamic = lock(&self.dynamic_tools);
        let dynamic = dynamic
            .iter()
            .map(|n| tool(n.clone(), "Answers \"dynamic <name>\"", &[]));
        builtin
            .chain(extra)
            .chain(headers)
            .chain(whoami.into_iter().flatten())
            .chain(dynamic)
            .collect()
    }

    /// `tools/list`, paginated by `--page-size`; the cursor is the stringified offset.
    fn list_tools(&self, params: &Value) -> Result<Value, RpcError> {
        let tools = self.all_tools();
        let start = match params.get("cursor") {
            None | Some(Value::Null) => 0,
            Some(c) => c
                .as_str()
                .and_then(|s| s.parse::<usize>().ok())
                .filter(|&n| n <= tools.len())
                .ok_or_else(|| err(-32602, format!("Invalid cursor: {c}")))?,
        };
        let end = self
            .cfg
            .page_size
            .map_or(tools.len(), |size| (start + size).min(tools.len()));
        let mut result = json!({ "tools": &tools[start..end] });
        if end < tools.len() {
            result["nextCursor"] = json!(end.to_string());
        }
        Ok(result)
    }

    /// `subscriptions/listen`: acknowledges, then stays open until cancelled.
    async fn listen(&self, id: &Value, params: &Value, peer: &Peer) -> Result<Value, RpcError> {
        let wants_tools = params
            .pointer("/notifications/toolsListChanged")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if wants_tools {
            lock(&self.subscriptions).insert(peer.key(id), (id.clone(), peer.clone()));
        }
        let honored = if wants_tools {
            json!({ "toolsListChanged": true })
        } else {
            json!({})
        };
        peer.notify(
            "notifications/subscriptions/acknowledged",
            json!({ "notifications": honored, "_meta": { META_SUBSCRIPTION_ID: id } }),
        );
        std::future::pending().await
    }

    /// Announces a change of the tool list (see the module docs for who gets what).
    fn tools_changed(&self) {
        let streams: Vec<(Value, Peer)> = lock(&self.subscriptions).values().cloned().collect();
        if (streams.is_empty() && !self.cfg.strict_listen)
            || self.legacy_seen.load(Ordering::SeqCst)
        {
            let listeners: Vec<Peer> = lock(&self.listeners).clone();
            for peer in listeners {
                peer.notify("notifications/tools/list_changed", Value::Null);
            }
        }
        for (id, peer) in streams {
            peer.notify(
                "notifications/tools/list_changed",
                json!({ "_meta": { META_SUBSCRIPTION_ID: id } }),
            );
        }
    }

    /// `tools/call`.
    async fn call_tool(&self, params: &Value, peer: &Peer) -> Result<Value, RpcError> {
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| err(-32602, "Missing tool name"))?;
        let args = params
            .get("arguments")
            .cloned()
            .unwrap_or_else(|| json!({}));
        if self.cfg.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.cfg.delay_ms)).await;
        }
        if lock(&self.dynamic_tools).iter().any(|t| t == name) {
            return Ok(text_result(format!("dynamic {name}")));
        }
        let unknown = || err(-32602, format!("Unknown tool: {name}"));
        let base = name
            .strip_prefix(self.cfg.prefix.as_str())
            .ok_or_else(unknown)?;
        match base {
            "echo" => Ok(text_result(arg(&args, "text", Value::as_str)?)),
            "add" => {
                let int = |k| arg(&args, k, Value::as_i64);
                let float = |k| arg(&args, k, Value::as_f64);
                let sum = match (int("a").ok(), int("b").ok()) {
                    (Some(a), Some(b)) if a.checked_add(b).is_some() => (a + b).to_string(),
                    _ => (float("a")? + float("b")?).to_string(),
                };
                Ok(text_result(sum))
            }
            "sleep" => {
                let ms = arg(&args, "ms", Value::as_u64)?;
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(text_result(format!("slept {ms}")))
            }
            "cancelled_count" => Ok(text_result(
                self.cancelled.load(Ordering::SeqCst).to_string(),
            )),
            "fail" => Ok(json!({
                "content": [{ "type": "text", "text": "tool failed on purpose" }],
                "isError": true,
            })),
            "error" => Err(err(-32000, "upstream error on purpose")),
            "crash" => {
                eprintln!("mcp-test-server: crashing on purpose");
                peer.exit(1);
                std::future::pending().await
            }
            "garbage" => {
                let _ = peer.out.send(Out::Line(GARBAGE.into()));
                Ok(text_result("ok"))
            }
            "stderr" => {
                eprintln!("{}", arg(&args, "text", Value::as_str)?);
                Ok(text_result("ok"))
            }
            "progress" => {
                let steps = arg(&args, "steps", Value::as_u64)?;
                let token = params.pointer("/_meta/progressToken").cloned();
                for step in 1..=steps {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    if let Some(token) = &token {
                        peer.notify(
                            "notifications/progress",
                            json!({ "progressToken": token, "progress": step, "total": steps }),
                        );
                    }
                }
                Ok(text_result(format!("progress done ({steps} steps)")))
            }
            "add_tool" => {
                let new = arg(&args, "name", Value::as_str)?.to_string();
                {
                    let mut dynamic = lock(&self.dynamic_tools);
                    if !dynamic.contains(&new) {
                        dynamic.push(new.clone());
                    }
                }
                self.tools_changed();
                Ok(text_result(format!("added {new}")))
            }
            "big" if args.get("flood") == Some(&Value::Bool(true)) => {
                let bytes = arg(&args, "bytes", Value::as_u64)? as usize;
                let chunk = "x".repeat(1 << 20);
                let mut left = bytes;
                while left > 0 {
                    let n = left.min(chunk.len());
                    // `Out::Line` adds a newline; a raw write keeps the line open.
                    let _ = peer.out.send(Out::Raw(chunk[..n].to_string()));
                    left -= n;
                }
                std::future::pending().await
            }
            "big" => {
                let bytes = arg(&args, "bytes", Value::as_u64)?;
                Ok(text_result("x".repeat(bytes as usize)))
            }
            "whoami" if self.cfg.whoami => Ok(text_result("-")),
            "trace" if self.cfg.whoami => Ok(text_result(
                params
                    .pointer("/_meta/traceparent")
                    .and_then(Value::as_str)
                    .unwrap_or("-"),
            )),
            "flip_header" if self.cfg.header_tool => {
                self.header_flipped.store(true, Ordering::Relaxed);
                Ok(text_result(
                    "route now mirrors region into Mcp-Param-Zone".to_string(),
                ))
            }
            "route" | "bad_number" | "bad_items" if self.cfg.header_tool => {
                let show = |v: Option<&Value>| {
                    v.map_or("-".to_string(), |v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                };
                Ok(text_result(format!(
                    "region={} limit={} confirm={}",
                    show(args.get("region")),
                    show(args.pointer("/options/limit")),
                    show(args.get("confirm")),
                )))
            }
            other => {
                let extra = other
                    .strip_prefix("tool_")
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|&i| i < self.cfg.extra_tools && other == format!("tool_{i}"));
                match extra {
                    Some(_) => Ok(text_result(name)),
                    None => Err(unknown()),
                }
            }
        }
    }
}

/// The only task that writes stdout: one line per message, flushed whenever the queue is empty.
async fn writer(mut rx: mpsc::UnboundedReceiver<Out>) {
    let mut stdout = BufWriter::new(tokio::io::stdout());
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Out::Line(mut line) => {
                    line.push('\n');
                    if stdout.write_all(line.as_bytes()).await.is_err() {
                        std::process::exit(0); // the reader is gone
                    }
                }
                Out::Raw(bytes) => {
                    if stdout.write_all(bytes.as_bytes()).await.is_err() {
                        std::process::exit(0);
                    }
                }
                Out::Exit(code) => {
                    let _ = stdout.flush().await;
                    std::process::exit(code);
                }
            }
            next = rx.try_recv().ok();
        }
        if stdout.flush().await.is_err() {
            std::process::exit(0);
        }
    }
}

#[tokio::main]
async fn main() {
    let cfg = match parse_args() {
        Ok(cfg) => cfg,
        Err(e) if e.is_empty() => {
            eprint!("{USAGE}");
            std::process::exit(0);
        }
        Err(e) => {
            eprint!("mcp-test-server: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if cfg.http.is_some() || cfg.sse.is_some() || cfg.ws.is_some() {
        return net::serve(cfg).await;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(writer(rx));
    if cfg.garbage_on_start {
        let _ = tx.send(Out::Line(GARBAGE.into()));
    }
    if cfg.startup_delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(cfg.startup_delay_ms)).await;
    }
    eprintln!("mcp-test-server {} ready", cfg.name);
    let drain = Duration::from_millis(cfg.drain_ms);
    let srv = Server::new(cfg);
    let stdout = Peer { conn: 0, out: tx };
    srv.listen_on(stdout.clone());

    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match stdin.read_until(b'\n', &mut buf).await {
            Ok(0) => break,
            Ok(_) => srv.on_line(&String::from_utf8_lossy(&buf), &stdout),
            Err(e) => {
                eprintln!("mcp-test-server: stdin: {e}");
                break;
            }
        }
    }

    let deadline = Instant::now() + drain;
    while srv.busy() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stdout.exit(0);
    let _ = writer.await;
    std::process::exit(0);
}

/// The network front ends, each on its own 127.0.0.1 port: Streamable HTTP at `/mcp`
/// (`--http`), the legacy HTTP+SSE transport at `/sse` + `/messages` (`--sse`) and WebSocket
/// at `/ws` with subprotocol `mcp` (`--ws`). One [`Server`] serves them all, so tools, fault
/// knobs and counters are the same as over stdio. Each listener prints its URL on stdout
/// (`http http://127.0.0.1:PORT/mcp`), so port 0 works; `crash` exits the process.
mod net {
    use super::*;
    use axum::Router;
    use axum::body::{Body, Bytes};
    use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
    use axum::extract::{Query, State};
    use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post};
    use futures::StreamExt;

    /// `Mcp-Session-Id`.
    const SESSION: &str = "mcp-session-id";

    /// State of the network front ends.
    struct Net {
        srv: Arc<Server>,
        /// Streamable HTTP sessions: session id → peer scope.
        sessions: Mutex<HashMap<String, u64>>,
        /// Legacy SSE connections by the number in their endpoint URL.
        sse: Mutex<HashMap<u64, Peer>>,
        /// Set once `--ws-close-after-ms` has picked its connection.
        ws_close_armed: AtomicBool,
    }

    /// `app` behind the `--require-token` check, with its state.
    fn guarded(app: Router<Arc<Net>>, net: &Arc<Net>) -> Router {
        app.layer(axum::middleware::from_fn_with_state(
            net.clone(),
            require_token,
        ))
        .with_state(net.clone())
    }

    /// Binds every requested listener and serves until killed.
    pub(super) async fn serve(cfg: Config) {
        let (http, sse, ws) = (cfg.http, cfg.sse, cfg.ws);
        if cfg.startup_delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(cfg.startup_delay_ms)).await;
        }
        let name = cfg.name.clone();
        let net = Arc::new(Net {
            srv: Server::new(cfg),
            sessions: Mutex::default(),
            sse: Mutex::default(),
            ws_close_armed: AtomicBool::new(false),
        });
        let mut servers = Vec::new();
        if let Some(port) = http {
            let app = Router::new().route("/mcp", post(mcp_post).get(mcp_get).delete(mcp_delete));
            servers.push(listen(port, "http", "/mcp", guarded(app, &net)).await);
        }
        if let Some(port) = sse {
            let app = Router::new()
                .route("/sse", get(sse_get))
                .route("/messages", post(sse_post));
            servers.push(listen(port, "sse", "/sse", guarded(app, &net)).await);
        }
        if let Some(port) = ws {
            let app = Router::new().route("/ws", get(ws_get));
            servers.push(listen(port, "ws", "/ws", guarded(app, &net)).await);
        }
        eprintln!("mcp-test-server {name} ready");
        for s in servers {
            let _ = s.await;
        }
    }

    /// `--require-token`: 401 for any request without `Authorization: Bearer <token>`.
    async fn require_token(
        State(net): State<Arc<Net>>,
        req: axum::extract::Request,
        next: axum::middleware::Next,
    ) -> Response {
        if let Some(token) = &net.srv.cfg.require_token {
            let sent = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            if sent != Some(format!("Bearer {token}").as_str()) {
                eprintln!(
                    "mcp-test-server: 401 for {} {} (authorization {:?})",
                    req.method(),
                    req.uri().path(),
                    sent
                );
                return (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Bearer")],
                    "missing or wrong bearer token",
                )
                    .into_response();
            }
        }
        next.run(req).await
    }

    /// Binds 127.0.0.1:`port`, prints the URL, and serves `app` in a task.
    async fn listen(port: u16, kind: &str, path: &str, app: Router) -> tokio::task::JoinHandle<()> {
        let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("mcp-test-server: cannot listen on 127.0.0.1:{port}: {e}");
                std::process::exit(2);
            }
        };
        let addr = listener
            .local_addr()
            .expect("bound listener has an address");
        let scheme = if kind == "ws" { "ws" } else { "http" };
        println!("{kind} {scheme}://{addr}{path}");
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("mcp-test-server: {e}");
            }
        })
    }

    /// A JSON body with a status (and no session header).
    fn json_response(status: StatusCode, body: &Value) -> Response {
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }

    /// True when `line` is the response to request `id`.
    fn answers(line: &str, id: &Value) -> bool {
        serde_json::from_str::<Value>(line)
            .is_ok_and(|m| m.get("method").is_none() && m.get("id") == Some(id))
    }

    /// Aborts a stateless request whose client went away: on Streamable HTTP 2026-07-28,
    /// closing the response stream is the cancellation (counted by `cancelled_count`).
    struct CancelOnDrop {
        srv: Arc<Server>,
        key: Option<String>,
    }

    impl Drop for CancelOnDrop {
        fn drop(&mut self) {
            if let Some(key) = self.key.take()
                && self.srv.abort(&key)
            {
                self.srv.cancelled.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// Drains a peer's messages after its answer went out, so `--crash-after` still exits.
    fn drain_for_exit(mut rx: mpsc::UnboundedReceiver<Out>) {
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                if let Out::Exit(code) = msg {
                    tokio::time::sleep(Duration::from_millis(50)).await; // let the answer flush
                    std::process::exit(code);
                }
            }
        });
    }

    /// An event-stream response: `first`, then every line from `rx` as a `message` event,
    /// ending after the answer to `until` (never, when `None`).
    fn event_stream(
        first: Vec<String>,
        rx: mpsc::UnboundedReceiver<Out>,
        until: Option<Value>,
        guard: Option<CancelOnDrop>,
        on_close: Option<Box<dyn FnOnce() + Send>>,
    ) -> Body {
        struct St {
            queued: std::collections::VecDeque<String>,
            rx: mpsc::UnboundedReceiver<Out>,
            until: Option<Value>,
            guard: Option<CancelOnDrop>,
            done: bool,
            _on_close: Option<CloseHook>,
        }
        struct CloseHook(Option<Box<dyn FnOnce() + Send>>);
        impl Drop for CloseHook {
            fn drop(&mut self) {
                if let Some(f) = self.0.take() {
                    f();
                }
            }
        }
        let st = St {
            queued: first.into(),
            rx,
            until,
            guard,
            done: false,
            _on_close: on_close.map(|f| CloseHook(Some(f))),
        };
        let stream = futures::stream::unfold(st, |mut st| async move {
            if st.done {
                return None;
            }
            let line = match st.queued.pop_front() {
                Some(l) => l,
                None => match st.rx.recv().await? {
                    Out::Line(l) | Out::Raw(l) => l,
                    Out::Exit(code) => std::process::exit(code),
                },
            };
            if st.until.as_ref().is_some_and(|id| answers(&line, id)) {
                st.done = true;
                if let Some(mut g) = st.guard.take() {
                    g.key = None;
                }
            }
            // A line holding newlines would need several `data:` lines; JSON from serde has none.
            let event = format!("event: message\ndata: {line}\n\n");
            Some((Ok::<_, std::convert::Infallible>(Bytes::from(event)), st))
        });
        Body::from_stream(stream)
    }

    fn sse_response(body: Body, session: Option<&str>) -> Response {
        let mut r = Response::new(body);
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        if let Some(s) = session.and_then(|s| HeaderValue::from_str(s).ok()) {
            h.insert(SESSION, s);
        }
        r
    }

    /// A header value with the Base64 sentinel (`=?base64?…?=`) decoded; `None` when the
    /// header has invalid characters or undecodable Base64.
    fn decoded(value: &HeaderValue) -> Option<String> {
        let text = value.to_str().ok()?;
        match text
            .strip_prefix("=?base64?")
            .and_then(|t| t.strip_suffix("?="))
        {
            Some(b64) => {
                use base64::Engine;
                let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
                String::from_utf8(bytes).ok()
            }
            None => Some(text.to_string()),
        }
    }

    /// The `x-mcp-header` parameters of a schema: (header name, property path), following
    /// `properties` chains only.
    fn annotated(schema: &Value, path: &mut Vec<String>, out: &mut Vec<(String, Vec<String>)>) {
        if let Some(name) = schema.get("x-mcp-header").and_then(Value::as_str) {
            out.push((name.to_string(), path.clone()));
        }
        for (key, sub) in schema
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            path.push(key.clone());
            annotated(sub, path, out);
            path.pop();
        }
    }

    /// Checks the `Mcp-Param-*` headers of a `tools/call` against its arguments.
    fn param_mismatch(srv: &Server, headers: &HeaderMap, params: &Value) -> Option<String> {
        let name = params.get("name").and_then(Value::as_str)?;
        let tools = srv.all_tools();
        let schema = tools
            .iter()
            .find(|t| t["name"] == name)
            .map(|t| &t["inputSchema"])?;
        let mut params_of = Vec::new();
        annotated(schema, &mut Vec::new(), &mut params_of);
        let args = params.get("arguments").cloned().unwrap_or(Value::Null);
        for (param, path) in params_of {
            let value = path.iter().try_fold(&args, |v, k| v.get(k));
            let header = format!("mcp-param-{}", param.to_ascii_lowercase());
            let sent = headers.get(&header);
            let (value, sent) = match (value, sent) {
                (None | Some(Value::Null), _) => continue,
                (Some(v), None) => {
                    return Some(format!("{header} is missing but the body has {v}"));
                }
                (Some(v), Some(h)) => match decoded(h) {
                    Some(text) => (v, text),
                    None => return Some(format!("{header} has invalid characters")),
                },
            };
            let matches = match value {
                Value::String(s) => *s == sent,
                Value::Bool(b) => sent == b.to_string(),
                Value::Number(n) => sent.parse::<f64>().ok() == n.as_f64(),
                _ => false,
            };
            if !matches {
                return Some(format!(
                    "{header} value {sent:?} does not match body value {value}"
                ));
            }
        }
        None
    }

    /// The 2026-07-28 request-metadata check a server must make (`HeaderMismatch`).
    fn header_mismatch(
        srv: &Server,
        headers: &HeaderMap,
        method: &str,
        params: &Value,
    ) -> Option<String> {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let version = params
            .pointer("/_meta")
            .and_then(|m| m.get(META_PROTOCOL_VERSION))
            .and_then(Value::as_str);
        if get("mcp-protocol-version") != version {
            return Some(format!(
                "MCP-Protocol-Version header {:?} does not match the body's {version:?}",
                get("mcp-protocol-version")
            ));
        }
        if get("mcp-method") != Some(method) {
            return Some(format!(
                "Mcp-Method header {:?} does not match {method:?}",
                get("mcp-method")
            ));
        }
        let name = match method {
            "tools/call" | "prompts/get" => params.get("name").and_then(Value::as_str),
            "resources/read" => params.get("uri").and_then(Value::as_str),
            _ => return None,
        };
        let sent = headers.get("mcp-name").and_then(decoded);
        if sent.as_deref() != name {
            return Some(format!(
                "Mcp-Name header {:?} does not match {name:?}",
                get("mcp-name")
            ));
        }
        if method == "tools/call" {
            for (k, v) in headers {
                if k.as_str().starts_with("mcp-param-") {
                    eprintln!(
                        "mcp-test-server: header {k}: {}",
                        String::from_utf8_lossy(v.as_bytes())
                    );
                }
            }
            return param_mismatch(srv, headers, params);
        }
        None
    }

    /// `POST /mcp`: one message per request; JSON answer when the response comes first,
    /// otherwise an event stream carrying notifications before it.
    async fn mcp_post(State(net): State<Arc<Net>>, headers: HeaderMap, body: Bytes) -> Response {
        let srv = &net.srv;
        let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
            let e = err(-32700, "Parse error").into_response(Value::Null);
            return json_response(StatusCode::BAD_REQUEST, &e);
        };
        let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
        let id = msg.get("id").cloned();
        let params = msg.get("params").cloned().unwrap_or(Value::Null);
        let modern = method == "server/discover"
            || params
                .pointer("/_meta")
                .and_then(|m| m.get(META_PROTOCOL_VERSION))
                .is_some();
        let mut new_session = None;
        let conn = if modern && srv.cfg.generation != Generation::Session {
            if let Some(why) = header_mismatch(srv, &headers, method, &params) {
                let e = err(-32020, format!("Header mismatch: {why}"));
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &e.into_response(id.unwrap_or(Value::Null)),
                );
            }
            srv.conn_id()
        } else if method == "initialize" && srv.cfg.generation != Generation::Stateless {
            let conn = srv.conn_id();
            let sid = format!("session-{conn}-{}", std::process::id());
            lock(&net.sessions).insert(sid.clone(), conn);
            new_session = Some(sid);
            conn
        } else {
            let sid = headers.get(SESSION).and_then(|v| v.to_str().ok());
            match sid.map(|s| lock(&net.sessions).get(s).copied()) {
                Some(Some(conn)) => conn,
                Some(None) => {
                    let e = err(-32001, "Session not found").into_response(Value::Null);
                    return json_response(StatusCode::NOT_FOUND, &e);
                }
                None => {
                    let e = err(-32000, "Bad Request: No valid session ID provided");
                    return json_response(StatusCode::BAD_REQUEST, &e.into_response(Value::Null));
                }
            }
        };
        let text = String::from_utf8_lossy(&body);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let peer = Peer { conn, out: tx };
        let Some(id) = id.filter(|_| !method.is_empty()) else {
            srv.on_line(&text, &peer); // a notification or a response: nothing to answer
            return StatusCode::ACCEPTED.into_response();
        };
        let tool = params.get("name").and_then(Value::as_str).unwrap_or("");
        let header_tool = [
            ("whoami", header::AUTHORIZATION.as_str()),
            ("trace", "traceparent"),
        ]
        .into_iter()
        .find(|(t, _)| tool == format!("{}{t}", srv.cfg.prefix));
        if let (true, "tools/call", Some((_, name))) = (srv.cfg.whoami, method, header_tool) {
            let who = headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            let res = json!({"jsonrpc": "2.0", "id": id, "result": text_result(who)});
            return json_response(StatusCode::OK, &res);
        }
        if method == "tools/call" && tool == format!("{}error", srv.cfg.prefix) {
            match srv.cfg.http_fault {
                Some(HttpFault::Status500) => {
                    return (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal error on purpose",
                    )
                        .into_response();
                }
                Some(HttpFault::BadSse) => {
                    let body = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":\n\n";
                    return sse_response(Body::from(body), None);
                }
                Some(HttpFault::LingerSse) | None => {}
            }
        }
        let key = peer.key(&id);
        srv.on_line(&text, &peer);
        drop(peer);
        let guard = modern.then(|| CancelOnDrop {
            srv: srv.clone(),
            key: Some(key),
        });
        let first = match rx.recv().await {
            None => return StatusCode::ACCEPTED.into_response(),
            Some(Out::Exit(code)) => std::process::exit(code),
            Some(Out::Line(line) | Out::Raw(line)) => line,
        };
        if answers(&first, &id) {
            if let Some(mut g) = guard {
                g.key = None;
            }
            drain_for_exit(rx);
            if matches!(srv.cfg.http_fault, Some(HttpFault::LingerSse)) && method == "tools/call" {
                let event = Bytes::from(format!("event: message\ndata: {first}\n\n"));
                let linger = async {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    Ok(Bytes::new())
                };
                let body =
                    futures::stream::once(async { Ok::<_, std::convert::Infallible>(event) })
                        .chain(futures::stream::once(linger));
                return sse_response(Body::from_stream(body), new_session.as_deref());
            }
            let mut r = (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                first,
            )
                .into_response();
            if let Some(s) = new_session.and_then(|s| HeaderValue::from_str(&s).ok()) {
                r.headers_mut().insert(SESSION, s);
            }
            return r;
        }
        sse_response(
            event_stream(vec![first], rx, Some(id), guard, None),
            new_session.as_deref(),
        )
    }

    /// `GET /mcp`: the stream of server-initiated messages of a session.
    async fn mcp_get(State(net): State<Arc<Net>>, headers: HeaderMap) -> Response {
        if net.srv.cfg.generation == Generation::Stateless {
            return StatusCode::METHOD_NOT_ALLOWED.into_response();
        }
        let sid = headers.get(SESSION).and_then(|v| v.to_str().ok());
        let Some(conn) = sid.and_then(|s| lock(&net.sessions).get(s).copied()) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let (tx, rx) = mpsc::unbounded_channel();
        net.srv.listen_on(Peer { conn, out: tx });
        sse_response(event_stream(Vec::new(), rx, None, None, None), None)
    }

    /// `DELETE /mcp`: ends a session.
    async fn mcp_delete(State(net): State<Arc<Net>>, headers: HeaderMap) -> StatusCode {
        if net.srv.cfg.generation == Generation::Stateless {
            return StatusCode::METHOD_NOT_ALLOWED;
        }
        let sid = headers
            .get(SESSION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        match lock(&net.sessions).remove(sid) {
            Some(_) => {
                eprintln!("mcp-test-server: session {sid} deleted");
                StatusCode::OK
            }
            None => StatusCode::NOT_FOUND,
        }
    }

    /// `GET /sse`: a legacy connection; the first event names its POST endpoint.
    async fn sse_get(State(net): State<Arc<Net>>) -> Response {
        let conn = net.srv.conn_id();
        let (tx, rx) = mpsc::unbounded_channel();
        let peer = Peer { conn, out: tx };
        lock(&net.sse).insert(conn, peer.clone());
        net.srv.listen_on(peer);
        let endpoint = format!("event: endpoint\ndata: /messages?sessionId={conn}\n\n");
        let forget = {
            let net = net.clone();
            Box::new(move || {
                lock(&net.sse).remove(&conn);
            }) as Box<dyn FnOnce() + Send>
        };
        let events = event_stream(Vec::new(), rx, None, None, Some(forget));
        let body =
            futures::stream::once(async move { Ok::<_, axum::Error>(Bytes::from(endpoint)) })
                .chain(events.into_data_stream());
        sse_response(Body::from_stream(body), None)
    }

    /// `POST /messages?sessionId=N`: a message for legacy connection N; answers go on its stream.
    async fn sse_post(
        State(net): State<Arc<Net>>,
        Query(q): Query<HashMap<String, String>>,
        body: Bytes,
    ) -> Response {
        let conn = q.get("sessionId").and_then(|s| s.parse::<u64>().ok());
        let Some(peer) = conn.and_then(|c| lock(&net.sse).get(&c).cloned()) else {
            return (StatusCode::NOT_FOUND, "unknown session").into_response();
        };
        net.srv.on_line(&String::from_utf8_lossy(&body), &peer);
        (StatusCode::ACCEPTED, "Accepted").into_response()
    }

    /// `GET /ws`: upgrade, selecting subprotocol `mcp` when offered (unless
    /// `--ws-no-subprotocol`).
    async fn ws_get(
        State(net): State<Arc<Net>>,
        headers: HeaderMap,
        upgrade: WebSocketUpgrade,
    ) -> Response {
        let offered = headers
            .get(header::SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        eprintln!("mcp-test-server: websocket upgrade offering subprotocols [{offered}]");
        let upgrade = if net.srv.cfg.ws_no_subprotocol {
            upgrade
        } else {
            upgrade.protocols(["mcp"])
        };
        upgrade.on_upgrade(move |socket| ws_conn(net, socket))
    }

    /// One WebSocket client: one JSON-RPC message per text frame each way.
    async fn ws_conn(net: Arc<Net>, mut socket: WebSocket) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let peer = Peer {
            conn: net.srv.conn_id(),
            out: tx,
        };
        net.srv.listen_on(peer.clone());
        let close_after = net
            .srv
            .cfg
            .ws_close_after_ms
            .filter(|_| !net.ws_close_armed.swap(true, Ordering::SeqCst));
        let close_at = async {
            match close_after {
                Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(close_at);
        loop {
            tokio::select! {
                () = &mut close_at => {
                    eprintln!("mcp-test-server: closing the websocket on purpose");
                    let frame = axum::extract::ws::CloseFrame {
                        code: 1001,
                        reason: "going away on purpose".into(),
                    };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    break;
                }
                msg = socket.recv() => match msg {
                    Some(Ok(Message::Text(t))) => net.srv.on_line(t.as_str(), &peer),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
                out = rx.recv() => match out {
                    Some(Out::Line(line) | Out::Raw(line)) => {
                        if socket.send(Message::Text(line.into())).await.is_err() {
                            break;
                        }
                    }
                    Some(Out::Exit(code)) => std::process::exit(code),
                    None => break,
                },
            }
        }
    }
}
