//! A deterministic MCP server over stdio, used by the gateway's integration tests and benches
//! for fault injection.
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
//! wait up to N ms for in-flight requests, then exit 0; default 1000), `--ttl-ms N` (`ttlMs` of
//! stateless list/discover results; default 0).
//!
//! Tools: see `BUILTIN_TOOLS`. Dynamic tools added by `add_tool` keep their exact name.
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
[--garbage-on-start] [--exit-on-stdin-close] [--drain-ms N] [--ttl-ms N]\n";

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
            "--garbage-on-start" => cfg.garbage_on_start = true,
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

/// Shared server state.
struct Server {
    cfg: Config,
    out: mpsc::UnboundedSender<Out>,
    /// In-flight requests by serialized id (so `1` and `"1"` differ).
    inflight: Mutex<HashMap<String, InFlight>>,
    /// Open `subscriptions/listen` streams that asked for `toolsListChanged`, id by key.
    subscriptions: Mutex<HashMap<String, Value>>,
    /// Names added by `add_tool`, in insertion order.
    dynamic_tools: Mutex<Vec<String>>,
    cancelled: AtomicU64,
    calls_answered: AtomicU64,
    legacy_seen: AtomicBool,
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
    ("big", "Returns a text of `bytes` 'x' characters", &[("bytes", "integer")]),
];

impl Server {
    /// Queues one JSON message for stdout.
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

    /// `serverInfo` / `io.modelcontextprotocol/serverInfo`.
    fn server_info(&self) -> Value {
        json!({ "name": self.cfg.name, "version": env!("CARGO_PKG_VERSION") })
    }

    /// Handles one line read from stdin.
    fn on_line(self: &Arc<Self>, line: &str) {
        let line = line.trim();
        if line.is_empty() {
            return;
        }
        let msg: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                let error = err(-32700, "Parse error").with_data(json!(e.to_string()));
                return self.send(&error.into_response(Value::Null));
            }
        };
        let id = msg.get("id").cloned();
        let Some(method) = msg.get("method").and_then(Value::as_str) else {
            if msg.get("result").is_some() || msg.get("error").is_some() {
                return; // a response from the client: nothing asked for one
            }
            let error = err(-32600, "Invalid Request");
            return self.send(&error.into_response(id.unwrap_or(Value::Null)));
        };
        let params = msg.get("params").cloned().unwrap_or(Value::Null);
        match id {
            None if method == "notifications/cancelled" => {
                self.cancelled.fetch_add(1, Ordering::SeqCst);
                let key = params.get("requestId").map(Value::to_string);
                let entry = key.and_then(|k| lock(&self.inflight).remove(&k));
                if let Some(entry) = entry {
                    entry.abort.abort(); // outside the lock
                }
            }
            None => {} // other notifications need no action
            Some(id) => self.spawn_request(method.to_string(), id, params),
        }
    }

    /// Runs a request in its own task, registered so that it can be cancelled.
    fn spawn_request(self: &Arc<Self>, method: String, id: Value, params: Value) {
        let key = id.to_string();
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
            srv.run_request(method, id, params).await;
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
    async fn run_request(self: Arc<Self>, method: String, id: Value, params: Value) {
        let outcome = match self.era(&method, &params) {
            Ok(modern) => self
                .dispatch(&method, &id, &params, modern)
                .await
                .map(|r| if modern { self.decorate(r, &method) } else { r }),
            Err(e) => Err(e),
        };
        let response = match outcome {
            Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
            Err(e) => e.into_response(id),
        };
        self.send(&response);
        if method == "tools/call" {
            let answered = self.calls_answered.fetch_add(1, Ordering::SeqCst) + 1;
            if self.cfg.crash_after == Some(answered) {
                eprintln!("mcp-test-server: crashing after {answered} tools/call answers");
                let _ = self.out.send(Out::Exit(1));
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
            "tools/call" => self.call_tool(params).await,
            "subscriptions/listen" if modern => self.listen(id, params).await,
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
        let dynamic = lock(&self.dynamic_tools);
        let dynamic = dynamic
            .iter()
            .map(|n| tool(n.clone(), "Answers \"dynamic <name>\"", &[]));
        builtin.chain(extra).chain(dynamic).collect()
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
    async fn listen(&self, id: &Value, params: &Value) -> Result<Value, RpcError> {
        let wants_tools = params
            .pointer("/notifications/toolsListChanged")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if wants_tools {
            lock(&self.subscriptions).insert(id.to_string(), id.clone());
        }
        let honored = if wants_tools {
            json!({ "toolsListChanged": true })
        } else {
            json!({})
        };
        self.notify(
            "notifications/subscriptions/acknowledged",
            json!({ "notifications": honored, "_meta": { META_SUBSCRIPTION_ID: id } }),
        );
        std::future::pending().await
    }

    /// Announces a change of the tool list (see the module docs for who gets what).
    fn tools_changed(&self) {
        let streams: Vec<Value> = lock(&self.subscriptions).values().cloned().collect();
        if streams.is_empty() || self.legacy_seen.load(Ordering::SeqCst) {
            self.notify("notifications/tools/list_changed", Value::Null);
        }
        for id in streams {
            self.notify(
                "notifications/tools/list_changed",
                json!({ "_meta": { META_SUBSCRIPTION_ID: id } }),
            );
        }
    }

    /// `tools/call`.
    async fn call_tool(&self, params: &Value) -> Result<Value, RpcError> {
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
                let _ = self.out.send(Out::Exit(1));
                std::future::pending().await
            }
            "garbage" => {
                let _ = self.out.send(Out::Line(GARBAGE.into()));
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
                        self.notify(
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
            "big" => {
                let bytes = arg(&args, "bytes", Value::as_u64)?;
                Ok(text_result("x".repeat(bytes as usize)))
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
    let srv = Arc::new(Server {
        cfg,
        out: tx,
        inflight: Mutex::default(),
        subscriptions: Mutex::default(),
        dynamic_tools: Mutex::default(),
        cancelled: AtomicU64::new(0),
        calls_answered: AtomicU64::new(0),
        legacy_seen: AtomicBool::new(false),
    });

    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match stdin.read_until(b'\n', &mut buf).await {
            Ok(0) => break,
            Ok(_) => srv.on_line(&String::from_utf8_lossy(&buf)),
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
    let _ = srv.out.send(Out::Exit(0));
    let _ = writer.await;
    std::process::exit(0);
}
