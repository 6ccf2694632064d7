//! End-to-end load harness: throughput and latency of the gateway against calling its
//! upstream directly, a bare axum floor, an in-process layer stack and any other MCP
//! gateway; idle memory and memory per MCP session.
//!
//! ```text
//! cargo build --release --example mcp_test_server   # built on first use if missing
//! cargo run --release --example load_harness -- [--quick] [--json out.json]
//! cargo run --release --example load_harness -- --rss --sessions 10000 [--json mem.json]
//! cargo run --release --example load_harness -- --target-mcp http://127.0.0.1:8000/mcp \
//!     --target-label supergateway --target-tool echo
//! ```
//!
//! The load generator is a minimal HTTP/1.1 client written here on Tokio: one keep-alive
//! connection per concurrent worker, each worker sending its next request as soon as the
//! previous answer is complete (closed loop). It understands `Content-Length` and chunked
//! bodies, so event-stream answers of other gateways work too. Every answer is checked: a
//! non-2xx status, or a body without the echoed marker text, counts as an error. The load
//! generator, the gateway and the upstream share the machine's cores, as they would on a
//! developer laptop; numbers are for comparing cases in one run, not absolute.
//!
//! Cases (`--cases a,b,...`; default all but `target`):
//!
//! - `floor`: a bare axum handler in this process that parses the REST body and answers
//!   JSON: the physical limit of HTTP on this machine.
//! - `direct-http`: the test server's Streamable HTTP `/mcp` (`mcp_test_server --http 0`),
//!   initialize once per worker, then `tools/call` with `Mcp-Session-Id`.
//! - `inproc-rest`: the public layers (`AuthLayer` api-key → `RateLimitLayer` →
//!   `McpMetricsLayer` with request log → `ToolRouter`) over a trivial in-process tower
//!   service, behind a REST handler like the gateway's. `Gateway` itself has no way to take
//!   an in-process upstream (its upstreams come only from the config's transports), so this
//!   composes the same layers by hand.
//! - `gw-stdio-rest`, `gw-stdio-mcp`, `gw-http-rest`, `gw-http-mcp`: an in-process
//!   [`mcp_gateway::Gateway`] with the full default stack (api-key auth, rate limit of
//!   10⁹ per minute, metrics, request log) in front of the test server over stdio or over
//!   Streamable HTTP (the same process as `direct-http`), called through
//!   `POST /api/v1/tools/call` or `POST /mcp`.
//! - `relay`: `direct-http` through a byte-for-byte TCP relay in this process (one upstream
//!   connection per client connection, nothing parsed): the least any gateway can add on
//!   this machine, one more loopback exchange and one more wake-up each way. It runs on the
//!   gateways' runtime with `--gateway-threads`. Not in the default cases.
//! - `proxy`: `direct-http` through a minimal HTTP/1.1 proxy on hyper (server and client
//!   connections, one upstream connection per client connection, request and answer passed
//!   on as they are, nothing else): what terminating HTTP on both sides costs before any
//!   gateway logic, between `relay` and the gateway. Runs where `relay` runs; not in the
//!   default cases.
//! - `target`: `--target-mcp URL`, any MCP Streamable HTTP endpoint (another gateway), same
//!   client as `direct-http`; `--target-tool` names the tool (default `echo`, with arguments
//!   `{"text": ...}`), `--target-header 'Name: value'` adds headers.
//!
//! Other options: `--duration SECS` (default 5, `--quick` 1; a warm-up of a fifth of it, at
//! least 0.2 s, is run first and not counted), `--concurrency 1,16,64,256`, `--label TEXT`
//! (recorded in the JSON), `--server-bin PATH` (the test server binary),
//! `--upstream-generation session|both` (`--generation` of the Streamable HTTP test server;
//! with `session`, the default, the gateway opens one session upstream, as the direct client
//! does, so both paths cost the upstream the same; with `both` the gateway picks the
//! stateless 2026-07-28 protocol, which costs this test server much more per call),
//! `--gateway-threads N` (run the `gw-*` gateways on a Tokio runtime of their own, apart
//! from the load generator's: one current-thread scheduler for `1`, `N` workers otherwise;
//! the CPU of its threads is then reported on its own as the gateway's, with no
//! subtraction; default `0`, one runtime for everything).
//!
//! Every point also reports CPU time per completed call, read from `/proc` over exactly the
//! measured window: of this process (load generator + whatever runs in-process: the
//! gateway, the floor) and of its child processes (the test servers). Throughput ratios on
//! a small machine are partly physics (the gateway path does twice the HTTP work of the
//! direct path on the same cores); the CPU a call costs is not, so the "gateway" column of
//! the CPU table (this process's CPU per call minus `direct-http`'s at the same
//! concurrency) is the gateway's own cost per call.
//!
//! Memory modes: `--rss` starts a gateway with 3 stdio test servers in a child process
//! (this binary with `--serve-gateway 3`) and reports its `VmRSS` once it is up and idle;
//! `--sessions N` opens N MCP sessions on that gateway (`initialize` +
//! `notifications/initialized` each), keeps them, reports the RSS growth per session, then
//! checks that every session still answers `ping` and `tools/list`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use mcp_gateway::auth::{
    AccessControl, AccessControlLayer, AccessPolicy, ApiKeys, AuthLayer, Identity,
};
use mcp_gateway::config::{Config, Format};
use mcp_gateway::core::{McpError, McpRequest, McpResponse};
use mcp_gateway::metrics::{McpMetrics, McpMetricsLayer, Recorder};
use mcp_gateway::rate_limit::RateLimitLayer;
use mcp_gateway::router::ToolRouter;
use mcp_gateway::{Gateway, Started};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tower::{Layer, ServiceExt, service_fn};

/// The API key every gateway in this harness accepts.
const API_KEY: &str = "bench-key";
/// Marker text sent as the echo tool's argument; every answer must contain it.
const MARKER: &str = "hello-bench";
/// Protocol revision the MCP client asks for.
const PROTOCOL: &str = "2025-06-18";
/// Cases run by default.
const DEFAULT_CASES: [&str; 7] = [
    "floor",
    "direct-http",
    "inproc-rest",
    "gw-stdio-rest",
    "gw-stdio-mcp",
    "gw-http-rest",
    "gw-http-mcp",
];

/// Command-line options.
#[derive(Debug, Clone)]
struct Opts {
    duration: Duration,
    json: Option<PathBuf>,
    levels: Vec<usize>,
    cases: Option<Vec<String>>,
    label: String,
    target_mcp: Option<String>,
    target_label: String,
    target_tool: String,
    target_headers: Vec<(String, String)>,
    rss: bool,
    sessions: Option<usize>,
    server_bin: Option<PathBuf>,
    upstream_generation: String,
    serve_gateway: Option<usize>,
    gateway_threads: usize,
}

/// Parses `std::env::args` by hand.
fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        duration: Duration::from_secs(5),
        json: None,
        levels: vec![1, 16, 64, 256],
        cases: None,
        label: String::new(),
        target_mcp: None,
        target_label: "target".into(),
        target_tool: "echo".into(),
        target_headers: Vec::new(),
        rss: false,
        sessions: None,
        server_bin: None,
        upstream_generation: "session".into(),
        serve_gateway: None,
        gateway_threads: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--quick" => o.duration = Duration::from_secs(1),
            "--duration" => {
                let s: f64 = value()?.parse().map_err(|e| format!("--duration: {e}"))?;
                o.duration = Duration::from_secs_f64(s);
            }
            "--json" => o.json = Some(value()?.into()),
            "--concurrency" => {
                o.levels = value()?
                    .split(',')
                    .map(|c| c.trim().parse().map_err(|e| format!("--concurrency: {e}")))
                    .collect::<Result<_, _>>()?;
            }
            "--cases" => o.cases = Some(value()?.split(',').map(str::to_string).collect()),
            "--label" => o.label = value()?,
            "--target-mcp" => o.target_mcp = Some(value()?),
            "--target-label" => o.target_label = value()?,
            "--target-tool" => o.target_tool = value()?,
            "--target-header" => {
                let h = value()?;
                let (k, v) = h
                    .split_once(':')
                    .ok_or_else(|| format!("--target-header {h:?}: want 'Name: value'"))?;
                o.target_headers
                    .push((k.trim().to_string(), v.trim().to_string()));
            }
            "--rss" => o.rss = true,
            "--sessions" => {
                o.sessions = Some(value()?.parse().map_err(|e| format!("--sessions: {e}"))?)
            }
            "--server-bin" => o.server_bin = Some(value()?.into()),
            "--upstream-generation" => o.upstream_generation = value()?,
            "--gateway-threads" => {
                o.gateway_threads = value()?
                    .parse()
                    .map_err(|e| format!("--gateway-threads: {e}"))?
            }
            "--serve-gateway" => {
                o.serve_gateway = Some(value()?.parse().map_err(|e| format!("{a}: {e}"))?)
            }
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

#[tokio::main]
async fn main() {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!(
                "{e}\nusage: load_harness [--quick] [--duration S] [--json FILE] \
                 [--concurrency 1,16,64,256] [--cases a,b] [--label TEXT] [--target-mcp URL \
                 [--target-label NAME] [--target-tool NAME] [--target-header 'K: V']] [--rss] \
                 [--sessions N] [--server-bin PATH] [--gateway-threads N]"
            );
            std::process::exit(if e.is_empty() { 0 } else { 2 });
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(io::stderr)
        .init();
    let result = if let Some(n) = opts.serve_gateway {
        serve_gateway(&opts, n).await
    } else if opts.rss || opts.sessions.is_some() {
        memory(&opts).await
    } else {
        load(&opts).await
    };
    if let Err(e) = result {
        eprintln!("load_harness: {e}");
        std::process::exit(1);
    }
}

/// Boxed error for the harness's plumbing.
type Error = Box<dyn std::error::Error + Send + Sync>;

// ---------------------------------------------------------------------------------------
// Minimal HTTP/1.1 client
// ---------------------------------------------------------------------------------------

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    host: String,
    stream: TcpStream,
    /// Bytes read but not consumed yet.
    buf: Vec<u8>,
    /// The request being written.
    out: Vec<u8>,
    /// Body of the last answer.
    body: Vec<u8>,
    /// The server asked to close, or the body ran to EOF.
    dead: bool,
}

/// Status and the headers the harness cares about.
struct Head {
    status: u16,
    session: Option<String>,
}

/// Position of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Conn {
    async fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            host: addr.to_string(),
            stream,
            buf: Vec::with_capacity(16 * 1024),
            out: Vec::with_capacity(1024),
            body: Vec::with_capacity(16 * 1024),
            dead: false,
        })
    }

    /// Reads more bytes into `buf`; EOF is an error.
    async fn fill(&mut self) -> io::Result<()> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            self.dead = true;
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    /// Makes sure `buf` holds at least `n` bytes.
    async fn want(&mut self, n: usize) -> io::Result<()> {
        while self.buf.len() < n {
            self.fill().await?;
        }
        Ok(())
    }

    /// Sends a POST with `headers` and `body`, and reads the whole answer into `self.body`.
    async fn post(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Head> {
        self.out.clear();
        let mut head = String::with_capacity(256);
        let _ = write!(
            head,
            "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
             accept: application/json, text/event-stream\r\ncontent-length: {}\r\n",
            self.host,
            body.len()
        );
        for (k, v) in headers {
            let _ = write!(head, "{k}: {v}\r\n");
        }
        head.push_str("\r\n");
        self.out.extend_from_slice(head.as_bytes());
        self.out.extend_from_slice(body);
        self.stream.write_all(&self.out).await?;
        self.read_answer().await
    }

    async fn read_answer(&mut self) -> io::Result<Head> {
        let end = loop {
            if let Some(p) = find(&self.buf, b"\r\n\r\n") {
                break p + 4;
            }
            self.fill().await?;
        };
        let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
        let text = std::str::from_utf8(&self.buf[..end]).map_err(|_| bad("non-UTF-8 head"))?;
        let mut lines = text.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad status line"))?;
        let (mut length, mut chunked, mut session) = (None, false, None);
        for line in lines {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                length = v.parse::<usize>().ok();
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                chunked = v.eq_ignore_ascii_case("chunked");
            } else if k.eq_ignore_ascii_case("mcp-session-id") {
                session = Some(v.to_string());
            } else if k.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close") {
                self.dead = true;
            }
        }
        self.buf.drain(..end);
        self.body.clear();
        if chunked {
            loop {
                let line_end = loop {
                    if let Some(p) = find(&self.buf, b"\r\n") {
                        break p;
                    }
                    self.fill().await?;
                };
                let size_text = std::str::from_utf8(&self.buf[..line_end])
                    .map_err(|_| bad("bad chunk size"))?;
                let size_text = size_text.split(';').next().unwrap_or("").trim();
                let size =
                    usize::from_str_radix(size_text, 16).map_err(|_| bad("bad chunk size"))?;
                self.buf.drain(..line_end + 2);
                if size == 0 {
                    // Trailers, up to an empty line.
                    loop {
                        let p = loop {
                            if let Some(p) = find(&self.buf, b"\r\n") {
                                break p;
                            }
                            self.fill().await?;
                        };
                        self.buf.drain(..p + 2);
                        if p == 0 {
                            break;
                        }
                    }
                    break;
                }
                self.want(size + 2).await?;
                self.body.extend_from_slice(&self.buf[..size]);
                self.buf.drain(..size + 2);
            }
        } else if let Some(n) = length {
            self.want(n).await?;
            self.body.extend_from_slice(&self.buf[..n]);
            self.buf.drain(..n);
        } else if !(status == 204 || status == 304 || (100..200).contains(&status)) {
            // No length: the body runs to EOF.
            loop {
                match self.fill().await {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(e),
                }
            }
            self.body.append(&mut self.buf);
            self.dead = true;
        }
        Ok(Head { status, session })
    }
}

// ---------------------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------------------

/// What a worker sends.
#[derive(Clone, Debug)]
enum Plan {
    /// `POST path` with a fixed body (REST `tools/call`).
    Rest {
        addr: SocketAddr,
        path: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// MCP Streamable HTTP: initialize, then `tools/call` of `tool` in the session.
    Mcp {
        addr: SocketAddr,
        path: String,
        headers: Vec<(String, String)>,
        tool: String,
    },
}

/// One worker's connection, ready for `call`.
struct Worker {
    conn: Conn,
    session: Option<String>,
    version: String,
    next_id: u64,
}

/// The `initialize` request body.
fn initialize_body(id: u64) -> String {
    json!({
        "jsonrpc": "2.0", "id": id, "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "load_harness", "version": "0.1.0"}
        }
    })
    .to_string()
}

/// Headers of `plan` plus the session's.
fn with_session<'a>(
    base: &'a [(String, String)],
    session: Option<&'a str>,
    version: &'a str,
) -> Vec<(&'a str, &'a str)> {
    let mut h: Vec<(&str, &str)> = base.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    if let Some(s) = session {
        h.push(("mcp-session-id", s));
    }
    if !version.is_empty() {
        h.push(("mcp-protocol-version", version));
    }
    h
}

/// The JSON-RPC payload of an answer that may be an event stream: the last `data:` line
/// holding a response, else the body itself.
fn rpc_payload(body: &[u8]) -> Option<Value> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Some(v);
    }
    let text = std::str::from_utf8(body).ok()?;
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .rfind(|v| v.get("id").is_some())
}

/// Opens an MCP session on `conn`: `initialize` then `notifications/initialized`.
/// Returns (session id, negotiated version).
async fn open_session(
    conn: &mut Conn,
    path: &str,
    headers: &[(String, String)],
    id: u64,
) -> Result<(Option<String>, String), Error> {
    let h = with_session(headers, None, "");
    let head = conn.post(path, &h, initialize_body(id).as_bytes()).await?;
    if head.status != 200 {
        return Err(format!(
            "initialize: HTTP {} {}",
            head.status,
            String::from_utf8_lossy(&conn.body)
        )
        .into());
    }
    let answer = rpc_payload(&conn.body).ok_or("initialize: no JSON-RPC answer")?;
    let version = answer
        .pointer("/result/protocolVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("initialize failed: {answer}"))?
        .to_string();
    let session = head.session;
    let h = with_session(headers, session.as_deref(), &version);
    let note = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let head = conn.post(path, &h, note).await?;
    if !(200..300).contains(&head.status) {
        return Err(format!("notifications/initialized: HTTP {}", head.status).into());
    }
    Ok((session, version))
}

impl Plan {
    fn addr(&self) -> SocketAddr {
        match self {
            Plan::Rest { addr, .. } | Plan::Mcp { addr, .. } => *addr,
        }
    }

    /// Connects (and opens the MCP session).
    async fn worker(&self) -> Result<Worker, Error> {
        let mut conn = Conn::connect(self.addr()).await?;
        let (session, version) = match self {
            Plan::Rest { .. } => (None, String::new()),
            Plan::Mcp { path, headers, .. } => open_session(&mut conn, path, headers, 0).await?,
        };
        Ok(Worker {
            conn,
            session,
            version,
            next_id: 1,
        })
    }

    /// One call; `Ok(true)` when the answer is a success carrying the marker.
    async fn call(&self, w: &mut Worker) -> io::Result<bool> {
        let head = match self {
            Plan::Rest {
                path,
                headers,
                body,
                ..
            } => {
                let h: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                w.conn.post(path, &h, body).await?
            }
            Plan::Mcp {
                path,
                headers,
                tool,
                ..
            } => {
                w.next_id += 1;
                let body = format!(
                    r#"{{"jsonrpc":"2.0","id":{},"method":"tools/call","params":{{"name":"{tool}","arguments":{{"text":"{MARKER}"}}}}}}"#,
                    w.next_id
                );
                let h = with_session(headers, w.session.as_deref(), &w.version);
                w.conn.post(path, &h, body.as_bytes()).await?
            }
        };
        let body = &w.conn.body;
        Ok((200..300).contains(&head.status)
            && find(body, MARKER.as_bytes()).is_some()
            && find(body, br#""isError":true"#).is_none())
    }
}

/// Results of one case at one concurrency.
#[derive(Debug, Clone, Default)]
struct Stats {
    requests: u64,
    errors: u64,
    rps: f64,
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
    max_us: f64,
    /// Calls that completed inside the measured window (successful or not): the
    /// denominator of the CPU figures.
    completed: u64,
    /// CPU time of this process (load generator + in-process gateway or floor) per
    /// completed call, in µs.
    cpu_self_us: f64,
    /// CPU time of the child processes (the test servers: the Streamable HTTP one and the
    /// gateway's stdio ones) per completed call, in µs.
    cpu_children_us: f64,
    /// CPU time of the gateways' own runtime threads per completed call, in µs (with
    /// `--gateway-threads`; 0 without).
    cpu_gateway_us: f64,
}

/// Runs `plan` with `conc` workers: a warm-up, then `dur` of measurement.
async fn run_load(plan: Arc<Plan>, conc: usize, dur: Duration) -> Result<Stats, Error> {
    let warmup = (dur / 5).max(Duration::from_millis(200));
    // Connect and open sessions first, a few at a time, outside the measured window.
    let mut workers = Vec::with_capacity(conc);
    for chunk in (0..conc).collect::<Vec<_>>().chunks(32) {
        let opened = futures::future::join_all(chunk.iter().map(|_| plan.worker())).await;
        for w in opened {
            workers.push(w?);
        }
    }
    let t0 = Instant::now() + Duration::from_millis(20);
    let (start, end) = (t0 + warmup, t0 + warmup + dur);
    // CPU time over exactly the measured window, sampled by a task of its own.
    let sampler = tokio::spawn(async move {
        tokio::time::sleep_until(start.into()).await;
        let before = cpu_sample();
        tokio::time::sleep_until(end.into()).await;
        let after = cpu_sample();
        (
            after.0.saturating_sub(before.0),
            after.1.saturating_sub(before.1),
            after.2.saturating_sub(before.2),
        )
    });
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|mut w| {
            let plan = plan.clone();
            tokio::spawn(async move {
                let mut lat: Vec<u64> = Vec::with_capacity(1 << 14);
                let (mut errors, mut completed) = (0u64, 0u64);
                tokio::time::sleep_until(t0.into()).await;
                loop {
                    let t = Instant::now();
                    if t >= end {
                        break;
                    }
                    let ok = plan.call(&mut w).await;
                    let done = Instant::now();
                    let counted = t >= start && done <= end;
                    completed += u64::from(done >= start && done <= end);
                    match ok {
                        Ok(true) if counted => lat.push((done - t).as_nanos() as u64),
                        Ok(true) => {}
                        Ok(false) => errors += u64::from(counted),
                        Err(_) => {
                            errors += u64::from(counted);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                    if w.conn.dead {
                        match plan.worker().await {
                            Ok(n) => w = n,
                            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                        }
                    }
                }
                (lat, errors, completed)
            })
        })
        .collect();
    let mut all = Vec::new();
    let (mut errors, mut completed) = (0, 0);
    for t in tasks {
        let (lat, e, c) = t.await?;
        all.extend(lat);
        errors += e;
        completed += c;
    }
    let (cpu_self, cpu_children, cpu_gateway) = sampler.await?;
    let per_call = |ticks: u64| {
        if completed == 0 {
            f64::NAN
        } else {
            ticks as f64 * 1e6 / USER_HZ / completed as f64
        }
    };
    all.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return f64::NAN;
        }
        let i = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1;
        all[i] as f64 / 1000.0
    };
    Ok(Stats {
        requests: all.len() as u64,
        errors,
        rps: all.len() as f64 / dur.as_secs_f64(),
        p50_us: pct(0.50),
        p90_us: pct(0.90),
        p99_us: pct(0.99),
        max_us: all.last().map_or(f64::NAN, |&m| m as f64 / 1000.0),
        completed,
        cpu_self_us: per_call(cpu_self),
        cpu_children_us: per_call(cpu_children),
        cpu_gateway_us: per_call(cpu_gateway),
    })
}

/// Clock ticks per second of `/proc/*/stat` times (`USER_HZ`, 100 on every Linux ABI).
const USER_HZ: f64 = 100.0;

/// `utime + stime` of process `pid` (all its threads, living and exited), in clock ticks.
fn proc_cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut f = rest.split(' ');
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = f.nth(11)?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU ticks used so far by this process, by its live child processes (the test servers;
/// read from `/proc/self/task/*/children`) and by the live threads of the gateways' own
/// runtime (`--gateway-threads`; zero without it). Zeros where `/proc` is unavailable.
fn cpu_sample() -> (u64, u64, u64) {
    let own = proc_cpu_ticks("self").unwrap_or(0);
    let (mut children, mut gateway) = (0, 0);
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            children += list
                .split_whitespace()
                .filter_map(proc_cpu_ticks)
                .sum::<u64>();
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim_end() == GATEWAY_THREAD {
                let tid = task.file_name();
                let path = format!("self/task/{}", tid.to_string_lossy());
                gateway += proc_cpu_ticks(&path).unwrap_or(0);
            }
        }
    }
    (own, children, gateway)
}

// ---------------------------------------------------------------------------------------
// Servers under test
// ---------------------------------------------------------------------------------------

/// Path of the `mcp_test_server` example, next to this binary; built when missing.
fn test_server(opts: &Opts) -> Result<PathBuf, Error> {
    if let Some(p) = &opts.server_bin {
        return Ok(p.clone());
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().ok_or("no parent dir of the harness binary")?;
    let path = dir.join("mcp_test_server");
    if !path.exists() {
        let release = dir.parent().is_some_and(|d| d.ends_with("release"));
        let target = dir
            .parent()
            .and_then(Path::parent)
            .ok_or("unexpected binary location")?;
        eprintln!("building mcp_test_server ...");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "--example", "mcp_test_server"])
            .args(release.then_some("--release"))
            .env("CARGO_TARGET_DIR", target)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()?;
        if !status.success() || !path.exists() {
            return Err(format!(
                "{} missing: run `cargo build --release --example mcp_test_server`",
                path.display()
            )
            .into());
        }
    }
    Ok(path)
}

/// The test server over Streamable HTTP on a free loopback port: (process, `/mcp` URL).
async fn spawn_http_server(bin: &Path, generation: &str) -> Result<(Child, String), Error> {
    let mut child = Command::new(bin)
        .args(["--http", "0", "--generation", generation])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await?
        .map_err(|e| format!("test server: {e}"))?
        .ok_or("test server exited")?;
    let url = line
        .strip_prefix("http ")
        .ok_or_else(|| format!("unexpected test server output {line:?}"))?
        .to_string();
    Ok((child, url))
}

/// Splits `http://host:port/path` into a resolved address and the path.
async fn split_url(url: &str) -> Result<(SocketAddr, String), Error> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let host = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    let addr = tokio::net::lookup_host(&host)
        .await?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    Ok((addr, path))
}

/// A gateway config with the full default stack: api-key auth, a rate limit too high to
/// bite, metrics and the request log; `servers` is YAML list items.
fn gateway_config(servers: &str) -> Result<Config, Error> {
    let yaml = format!(
        "host: 127.0.0.1\nport: 0\nlogLevel: warn\n\
         auth:\n  strategy: api-key\n  apiKeys: [\"{API_KEY}\"]\n\
         rateLimit: {{ limit: 1000000000, windowSeconds: 60 }}\n\
         monitor: {{ requestLog: true, requestLogSize: 1000, prometheus: true }}\n\
         servers:\n{servers}"
    );
    Ok(Config::parse(
        &yaml,
        Format::Yaml,
        Path::new("<load_harness>"),
        |k| std::env::var(k).ok(),
    )?)
}

/// A stdio test server entry. `maxConcurrency` is raised from its default of 10 so the
/// gateway's per-server bound does not limit the 256-worker runs.
fn stdio_entry(id: &str, bin: &Path) -> String {
    format!(
        "  - id: {id}\n    command: {:?}\n    maxConcurrency: 1024\n",
        bin.display().to_string()
    )
}

/// Name of the threads of the gateways' own runtime (`--gateway-threads`): their CPU time
/// is the gateway's, read per thread from `/proc/self/task`.
const GATEWAY_THREAD: &str = "mcp-gw";

/// With `--gateway-threads N`, a runtime of the gateways' own on threads named
/// [`GATEWAY_THREAD`]: one thread (Tokio's current-thread scheduler) for `1`, a
/// multi-thread runtime of `N` workers otherwise. The runtime lives as long as the process.
fn gateway_runtime(threads: usize) -> Result<Option<tokio::runtime::Handle>, Error> {
    if threads == 0 {
        return Ok(None);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(GATEWAY_THREAD.into())
        .spawn(move || {
            let mut b = if threads == 1 {
                tokio::runtime::Builder::new_current_thread()
            } else {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(threads);
                b
            };
            let rt = match b.enable_all().thread_name(GATEWAY_THREAD).build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = tx.send(Ok(rt.handle().clone()));
            // A current-thread runtime runs its tasks only inside `block_on`.
            rt.block_on(std::future::pending::<()>());
        })?;
    Ok(Some(rx.recv()??))
}

/// Starts a gateway, on `rt` when given, and checks its servers came up.
async fn start_gateway_on(
    rt: Option<&tokio::runtime::Handle>,
    cfg: Config,
) -> Result<(Gateway, Started), Error> {
    // The gateway spawns its tasks on the runtime `start` runs on.
    on(rt, start_gateway(cfg)).await
}

/// Starts a gateway and checks its servers came up.
async fn start_gateway(cfg: Config) -> Result<(Gateway, Started), Error> {
    let gw = Gateway::new(cfg)?;
    let started = gw.start().await?;
    for s in &started.servers {
        let line = s.to_string();
        if !line.contains('✓') {
            return Err(format!("gateway server not up: {line}").into());
        }
    }
    Ok((gw, started))
}

/// Body of the REST call.
#[derive(Deserialize)]
struct CallBody<'a> {
    tool: String,
    #[serde(default)]
    #[allow(dead_code)]
    server: Option<String>,
    #[serde(default, borrow)]
    arguments: Option<&'a RawValue>,
}

/// Splices a REST answer `{"server", "tool", "result"}` with a raw result.
fn rest_answer(server: &str, tool: &str, result: &str) -> Response {
    let mut out = Vec::with_capacity(result.len() + 64 + tool.len());
    out.extend_from_slice(br#"{"server":"#);
    serde_json::to_writer(&mut out, server).expect("vec write");
    out.extend_from_slice(br#","tool":"#);
    serde_json::to_writer(&mut out, tool).expect("vec write");
    out.extend_from_slice(br#","result":"#);
    out.extend_from_slice(result.as_bytes());
    out.push(b'}');
    ([(header::CONTENT_TYPE, "application/json")], out).into_response()
}

/// The floor: parse the REST body, answer JSON.
async fn floor_handler(body: Bytes) -> Response {
    match serde_json::from_slice::<CallBody<'_>>(&body) {
        Ok(b) => rest_answer("floor", &b.tool, b.arguments.map_or("null", RawValue::get)),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

/// Serves `app` on a free loopback port in the background.
async fn serve(app: Router) -> Result<SocketAddr, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

/// Starts the `relay` case: a byte-for-byte TCP relay to `upstream`, one upstream
/// connection per client connection. It parses nothing, so what it adds over calling the
/// upstream directly is the least any gateway on this machine can add: one more loopback
/// TCP exchange, and one more process wake-up each way.
async fn relay(upstream: SocketAddr) -> Result<SocketAddr, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut down, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut up) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = down.set_nodelay(true);
                let _ = up.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
            });
        }
    });
    Ok(addr)
}

/// Starts the `proxy` case: an HTTP/1.1 proxy to `upstream` on hyper's server and client
/// connections, one upstream connection per client connection. Each request goes upstream
/// as it came (method, target, headers, streamed body) and each answer comes back as it
/// came: the cost of parsing and writing HTTP on both sides, with no gateway logic.
async fn proxy(upstream: SocketAddr) -> Result<SocketAddr, Error> {
    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((down, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(up) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = down.set_nodelay(true);
                let _ = up.set_nodelay(true);
                let Ok((sender, conn)) =
                    hyper::client::conn::http1::handshake::<_, Incoming>(TokioIo::new(up)).await
                else {
                    return;
                };
                tokio::spawn(conn);
                let sender = Arc::new(tokio::sync::Mutex::new(sender));
                let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let sender = sender.clone();
                    async move { sender.lock().await.send_request(req).await }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(down), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// Runs `fut` on `rt` when given (the gateways' own runtime), else here.
async fn on<T: Send + 'static>(
    rt: Option<&tokio::runtime::Handle>,
    fut: impl std::future::Future<Output = Result<T, Error>> + Send + 'static,
) -> Result<T, Error> {
    match rt {
        Some(rt) => rt.spawn(fut).await?,
        None => fut.await,
    }
}

/// The in-process upstream: answers every `tools/call` with its arguments as
/// `structuredContent`.
fn echo_upstream() -> Echo {
    tower::util::BoxCloneSyncService::new(service_fn(|req: McpRequest| async move {
        let args = req
            .params()
            .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
            .and_then(|p| p.get("arguments").cloned())
            .unwrap_or(Value::Null);
        let result = format!(r#"{{"content":[],"structuredContent":{args}}}"#);
        Ok::<_, McpError>(McpResponse::new(
            RawValue::from_string(result).expect("valid JSON"),
        ))
    }))
}

/// The in-process upstream's service type.
type Echo = tower::util::BoxCloneSyncService<McpRequest, McpResponse, McpError>;
/// The MCP plane of the `inproc-rest` case, as in the gateway: metrics → access → router.
type InprocMcp = McpMetrics<AccessControl<ToolRouter<Echo>>>;

/// REST `tools/call` of the `inproc-rest` case, as the gateway's handler does it.
async fn inproc_handler(
    State(mcp): State<InprocMcp>,
    caller: Option<axum::Extension<Arc<Identity>>>,
    body: Bytes,
) -> Response {
    let b: CallBody<'_> = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let mut req = McpRequest::call_tool(&b.tool, b.arguments);
    req.identity = caller.map(|axum::Extension(i)| i);
    req.transport = "rest";
    match mcp.oneshot(req).await {
        Ok(res) => rest_answer(
            res.server.as_deref().unwrap_or("-"),
            &b.tool,
            res.result.get(),
        ),
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// The `inproc-rest` case: the gateway's layers composed by hand over [`echo_upstream`].
fn inproc_app() -> Router {
    let recorder = Recorder::new(1000);
    let router = ToolRouter::builder()
        .server("inproc", echo_upstream())
        .build();
    router.set_tools("inproc", ["echo"]);
    let access = AccessControlLayer::new(Arc::new(AccessPolicy::allow_by_default()));
    let mcp = McpMetricsLayer::new(recorder).layer(access.layer(router));
    let auth = AuthLayer::api_keys(ApiKeys::new().key("bench", API_KEY, ["user"]));
    let limit = RateLimitLayer::new(1_000_000_000, Duration::from_secs(60));
    Router::new()
        .route("/api/v1/tools/call", post(inproc_handler))
        .with_state(mcp)
        .layer(limit)
        .layer(auth)
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// A REST plan calling `tool` with the marker.
fn rest_plan(addr: SocketAddr, tool: &str) -> Plan {
    Plan::Rest {
        addr,
        path: "/api/v1/tools/call".into(),
        headers: vec![("x-api-key".into(), API_KEY.into())],
        body: format!(r#"{{"tool":"{tool}","arguments":{{"text":"{MARKER}"}}}}"#).into_bytes(),
    }
}

/// An MCP plan on a gateway.
fn gw_mcp_plan(addr: SocketAddr, tool: &str) -> Plan {
    Plan::Mcp {
        addr,
        path: "/mcp".into(),
        headers: vec![("x-api-key".into(), API_KEY.into())],
        tool: tool.into(),
    }
}

// ---------------------------------------------------------------------------------------
// Load mode
// ---------------------------------------------------------------------------------------

/// One row of the results.
struct Row {
    case: String,
    concurrency: usize,
    stats: Stats,
}

async fn load(opts: &Opts) -> Result<(), Error> {
    let mut cases: Vec<String> = match &opts.cases {
        Some(c) => c.clone(),
        None if opts.target_mcp.is_some() => {
            vec!["direct-http".into(), "gw-stdio-mcp".into(), "target".into()]
        }
        None => DEFAULT_CASES.iter().map(|s| s.to_string()).collect(),
    };
    cases.retain(|c| !c.is_empty());
    let needs = |p: &str| cases.iter().any(|c| c.starts_with(p));
    let bin = test_server(opts)?;

    // Everything is started up front, so the cases run back to back.
    let mut plans: Vec<(String, Plan)> = Vec::new();
    let mut _keep = Vec::new();
    let mut gateways = Vec::new();
    let http_url = if needs("direct-http") || needs("gw-http") || needs("relay") || needs("proxy") {
        let (child, url) = spawn_http_server(&bin, &opts.upstream_generation).await?;
        _keep.push(child);
        Some(url)
    } else {
        None
    };
    let gw_rt = gateway_runtime(opts.gateway_threads)?;
    let stdio_gw = if needs("gw-stdio") {
        let cfg = gateway_config(&stdio_entry("stdio", &bin))?;
        let (gw, started) = start_gateway_on(gw_rt.as_ref(), cfg).await?;
        gateways.push(gw);
        Some(started.addr)
    } else {
        None
    };
    let http_gw = match (&http_url, needs("gw-http")) {
        (Some(url), true) => {
            let entry = format!(
                "  - id: http\n    transport: streamable-http\n    url: {url:?}\n    maxConcurrency: 1024\n"
            );
            let (gw, started) = start_gateway_on(gw_rt.as_ref(), gateway_config(&entry)?).await?;
            gateways.push(gw);
            Some(started.addr)
        }
        _ => None,
    };
    for case in &cases {
        let plan = match case.as_str() {
            "floor" => {
                let app = Router::new().route("/api/v1/tools/call", post(floor_handler));
                rest_plan(serve(app).await?, "echo")
            }
            "inproc-rest" => rest_plan(serve(inproc_app()).await?, "echo"),
            "relay" | "proxy" => {
                let (addr, path) = split_url(http_url.as_deref().ok_or("no http server")?).await?;
                let addr = match case.as_str() {
                    "relay" => on(gw_rt.as_ref(), relay(addr)).await?,
                    _ => on(gw_rt.as_ref(), proxy(addr)).await?,
                };
                Plan::Mcp {
                    addr,
                    path,
                    headers: Vec::new(),
                    tool: "echo".into(),
                }
            }
            "direct-http" => {
                let (addr, path) = split_url(http_url.as_deref().ok_or("no http server")?).await?;
                Plan::Mcp {
                    addr,
                    path,
                    headers: Vec::new(),
                    tool: "echo".into(),
                }
            }
            "gw-stdio-rest" => rest_plan(stdio_gw.ok_or("no stdio gateway")?, "echo"),
            "gw-stdio-mcp" => gw_mcp_plan(stdio_gw.ok_or("no stdio gateway")?, "stdio__echo"),
            "gw-http-rest" => rest_plan(http_gw.ok_or("no http gateway")?, "echo"),
            "gw-http-mcp" => gw_mcp_plan(http_gw.ok_or("no http gateway")?, "http__echo"),
            "target" => {
                let url = opts
                    .target_mcp
                    .as_deref()
                    .ok_or("case target needs --target-mcp URL")?;
                let (addr, path) = split_url(url).await?;
                Plan::Mcp {
                    addr,
                    path,
                    headers: opts.target_headers.clone(),
                    tool: opts.target_tool.clone(),
                }
            }
            other => return Err(format!("unknown case {other}").into()),
        };
        let name = if case == "target" {
            opts.target_label.clone()
        } else {
            case.clone()
        };
        plans.push((name, plan));
    }

    println!(
        "load_harness {}: {} s per point, concurrency {:?}, {} cores",
        opts.label,
        opts.duration.as_secs_f64(),
        opts.levels,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<16} {:>5} {:>10} {:>9} {:>9} {:>9} {:>7} {:>11} {:>11}",
        "case",
        "conc",
        "req/s",
        "p50 µs",
        "p90 µs",
        "p99 µs",
        "errors",
        "cpu µs/req",
        "upstr µs/req"
    );
    let mut rows = Vec::new();
    for (name, plan) in &plans {
        let plan = Arc::new(plan.clone());
        for &c in &opts.levels {
            let stats = match run_load(plan.clone(), c, opts.duration).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("{name} at {c}: {e}");
                    Stats {
                        errors: u64::MAX,
                        ..Stats::default()
                    }
                }
            };
            println!(
                "{:<16} {:>5} {:>10.0} {:>9.1} {:>9.1} {:>9.1} {:>7} {:>11.1} {:>11.1}",
                name,
                c,
                stats.rps,
                stats.p50_us,
                stats.p90_us,
                stats.p99_us,
                stats.errors,
                stats.cpu_self_us,
                stats.cpu_children_us
            );
            rows.push(Row {
                case: name.clone(),
                concurrency: c,
                stats,
            });
        }
    }
    // Added latency is read at concurrency 1 (no queueing), throughput at 64.
    let summary_1 = summarize(&rows, 1);
    let summary = summarize(&rows, 64);
    for (c, summary) in [(1, &summary_1), (64, &summary)] {
        if summary.is_empty() {
            continue;
        }
        println!("\nat concurrency {c} (added = case − direct-http; ratios of req/s):");
        println!(
            "{:<16} {:>12} {:>12} {:>10} {:>10}",
            "case", "added p50 µs", "added p99 µs", "vs direct", "vs floor"
        );
        for s in summary {
            let f = |k: &str, digits: usize| {
                s.get(k)
                    .and_then(Value::as_f64)
                    .map_or("-".to_string(), |v| format!("{v:.digits$}"))
            };
            println!(
                "{:<16} {:>12} {:>12} {:>10} {:>10}",
                s["case"].as_str().unwrap_or(""),
                f("added_p50_us", 1),
                f("added_p99_us", 1),
                f("throughput_vs_direct", 2),
                f("throughput_vs_floor", 2)
            );
        }
    }
    let cpu = cpu_summary(&rows);
    if !cpu.is_empty() {
        println!(
            "\nCPU per call (µs of CPU time per completed call; gateway = this process's \
             CPU per call − direct-http's at the same concurrency, i.e. the gateway's own \
             cost with the load generator's subtracted):"
        );
        println!(
            "{:<16} {:>5} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "case", "conc", "harness", "upstream", "total", "gateway", "gw threads"
        );
        for s in &cpu {
            let f = |k: &str| {
                s.get(k)
                    .and_then(Value::as_f64)
                    .map_or("-".to_string(), |v| format!("{v:.1}"))
            };
            println!(
                "{:<16} {:>5} {:>10} {:>10} {:>10} {:>10} {:>10}",
                s["case"].as_str().unwrap_or(""),
                s["concurrency"],
                f("harness_us"),
                f("upstream_us"),
                f("total_us"),
                f("gateway_us"),
                f("gateway_threads_us")
            );
        }
    }
    if let Some(path) = &opts.json {
        let results: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "case": r.case, "concurrency": r.concurrency,
                    "requests": r.stats.requests, "errors": r.stats.errors,
                    "rps": r.stats.rps, "p50_us": r.stats.p50_us, "p90_us": r.stats.p90_us,
                    "p99_us": r.stats.p99_us, "max_us": r.stats.max_us,
                    "completed": r.stats.completed,
                    "cpu_self_us_per_req": finite(r.stats.cpu_self_us),
                    "cpu_children_us_per_req": finite(r.stats.cpu_children_us),
                    "cpu_gateway_threads_us_per_req": finite(r.stats.cpu_gateway_us),
                })
            })
            .collect();
        let doc = json!({
            "label": opts.label,
            "duration_s": opts.duration.as_secs_f64(),
            "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "results": results,
            "summary_at_1": summary_1,
            "summary_at_64": summary,
            "cpu_per_call": cpu,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
        println!("wrote {}", path.display());
    }
    for gw in gateways {
        gw.stop().await;
    }
    Ok(())
}

/// Added latency and throughput ratios at concurrency `c` for every case but the baselines.
fn summarize(rows: &[Row], c: usize) -> Vec<Value> {
    let at = |name: &str| {
        rows.iter()
            .find(|r| r.case == name && r.concurrency == c)
            .map(|r| &r.stats)
    };
    let (direct, floor) = (at("direct-http"), at("floor"));
    rows.iter()
        .filter(|r| r.concurrency == c && r.case != "direct-http" && r.case != "floor")
        .map(|r| {
            let s = &r.stats;
            json!({
                "case": r.case,
                "added_p50_us": direct.map(|d| s.p50_us - d.p50_us),
                "added_p99_us": direct.map(|d| s.p99_us - d.p99_us),
                "throughput_vs_direct": direct.map(|d| s.rps / d.rps),
                "throughput_vs_floor": floor.map(|f| s.rps / f.rps),
            })
        })
        .collect()
}

/// `Some(v)` for a finite number (JSON has no NaN).
fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// CPU per completed call of every row, and the gateway's own share: this process's CPU
/// per call minus that of `direct-http` at the same concurrency. Both runs pay for the
/// load generator in this process; only the gateway cases also run the gateway here, so
/// the difference is what the gateway itself spends on one call, whatever the other
/// processes on the machine are doing to throughput.
fn cpu_summary(rows: &[Row]) -> Vec<Value> {
    rows.iter()
        .filter(|r| r.stats.completed > 0)
        .map(|r| {
            let s = &r.stats;
            let direct = rows
                .iter()
                .find(|d| d.case == "direct-http" && d.concurrency == r.concurrency)
                .filter(|_| {
                    r.case.starts_with("gw-") || r.case == "inproc-rest" || on_gw_rt(&r.case)
                });
            json!({
                "case": r.case,
                "concurrency": r.concurrency,
                "harness_us": finite(s.cpu_self_us),
                "upstream_us": finite(s.cpu_children_us),
                "total_us": finite(s.cpu_self_us + s.cpu_children_us),
                "gateway_us": direct.and_then(|d| finite(s.cpu_self_us - d.stats.cpu_self_us)),
                "gateway_threads_us": ((r.case.starts_with("gw-") || on_gw_rt(&r.case))
                    && s.cpu_gateway_us > 0.0)
                    .then(|| finite(s.cpu_gateway_us))
                    .flatten(),
            })
        })
        .collect()
}

/// The in-process stand-ins that run on the gateways' runtime with `--gateway-threads`.
fn on_gw_rt(case: &str) -> bool {
    case == "relay" || case == "proxy"
}

// ---------------------------------------------------------------------------------------
// Memory modes
// ---------------------------------------------------------------------------------------

/// `VmRSS` (and `VmHWM`) of process `pid` in KiB.
fn vm_rss(pid: u32) -> Result<(u64, u64), Error> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

/// `--serve-gateway N` (child process of the memory modes): a gateway with `n` stdio test
/// servers; prints `addr <addr>`, serves until stdin closes.
async fn serve_gateway(opts: &Opts, n: usize) -> Result<(), Error> {
    let bin = test_server(opts)?;
    let servers: String = (0..n)
        .map(|i| stdio_entry(&format!("s{i}"), &bin))
        .collect();
    let (gw, started) = start_gateway(gateway_config(&servers)?).await?;
    println!("addr {}", started.addr);
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    gw.stop().await;
    Ok(())
}

async fn memory(opts: &Opts) -> Result<(), Error> {
    let exe = std::env::current_exe()?;
    let bin = test_server(opts)?;
    let mut child = Command::new(exe)
        .args(["--serve-gateway", "3", "--server-bin"])
        .arg(&bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().ok_or("child has no pid")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let line = tokio::time::timeout(
        Duration::from_secs(60),
        BufReader::new(stdout).lines().next_line(),
    )
    .await??
    .ok_or("gateway child exited")?;
    let addr: SocketAddr = line
        .strip_prefix("addr ")
        .ok_or_else(|| format!("unexpected child output {line:?}"))?
        .parse()?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle, idle_hwm) = vm_rss(pid)?;
    println!(
        "gateway with 3 stdio servers, up and idle: VmRSS {:.1} MiB (VmHWM {:.1} MiB)",
        idle as f64 / 1024.0,
        idle_hwm as f64 / 1024.0
    );
    let mut doc = json!({
        "label": opts.label,
        "idle_rss_kib": idle,
        "idle_hwm_kib": idle_hwm,
    });
    if let Some(n) = opts.sessions {
        doc["sessions"] = sessions(addr, pid, n, idle).await?;
    }
    drop(child.stdin.take());
    let _ = tokio::time::timeout(Duration::from_secs(15), child.wait()).await;
    if let Some(path) = &opts.json {
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Opens `n` sessions on the gateway at `addr` (process `pid`), measures, verifies.
async fn sessions(addr: SocketAddr, pid: u32, n: usize, idle: u64) -> Result<Value, Error> {
    const CONNS: usize = 64;
    let headers = Arc::new(vec![("x-api-key".to_string(), API_KEY.to_string())]);
    let t = Instant::now();
    let tasks: Vec<_> = (0..CONNS.min(n))
        .map(|k| {
            let headers = headers.clone();
            let count = n / CONNS + usize::from(k < n % CONNS);
            tokio::spawn(async move {
                let mut conn = Conn::connect(addr).await?;
                let mut out = Vec::with_capacity(count);
                for i in 0..count {
                    if conn.dead {
                        conn = Conn::connect(addr).await?;
                    }
                    let (s, v) = open_session(&mut conn, "/mcp", &headers, i as u64).await?;
                    out.push((s.ok_or("initialize gave no Mcp-Session-Id")?, v));
                }
                Ok::<_, Error>((conn, out))
            })
        })
        .collect();
    let mut conns = Vec::new();
    for t in tasks {
        conns.push(t.await??);
    }
    let opened: usize = conns.iter().map(|(_, s)| s.len()).sum();
    let open_secs = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (held, hwm) = vm_rss(pid)?;
    let per = (held.saturating_sub(idle) as f64 * 1024.0) / opened as f64;
    println!(
        "{opened} sessions opened in {open_secs:.2} s: VmRSS {:.1} MiB (+{:.1} MiB, {per:.0} bytes per session), VmHWM {:.1} MiB",
        held as f64 / 1024.0,
        held.saturating_sub(idle) as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    // Every session answers ping and tools/list.
    let t = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|(mut conn, list)| {
            let headers = headers.clone();
            tokio::spawn(async move {
                let (mut errors, mut first_error) = (0usize, None);
                for (i, (sid, version)) in list.iter().enumerate() {
                    for method in ["ping", "tools/list"] {
                        if conn.dead {
                            conn = Conn::connect(addr).await?;
                        }
                        let body = format!(
                            r#"{{"jsonrpc":"2.0","id":{},"method":"{method}","params":{{}}}}"#,
                            i + 100_000
                        );
                        let h = with_session(&headers, Some(sid), version);
                        let head = conn.post("/mcp", &h, body.as_bytes()).await?;
                        let ok = head.status == 200
                            && rpc_payload(&conn.body).is_some_and(|v| {
                                v.get("result").is_some()
                                    && (method == "ping"
                                        || v.pointer("/result/tools")
                                            .and_then(Value::as_array)
                                            .is_some_and(|t| !t.is_empty()))
                            });
                        if !ok {
                            errors += 1;
                            first_error.get_or_insert_with(|| {
                                format!(
                                    "{method}: HTTP {} {}",
                                    head.status,
                                    String::from_utf8_lossy(&conn.body)
                                )
                            });
                        }
                    }
                }
                Ok::<_, Error>((errors, first_error))
            })
        })
        .collect();
    let mut errors = 0;
    let mut first = None;
    for t in tasks {
        let (e, f) = t.await??;
        errors += e;
        first = first.or(f);
    }
    let verify_secs = t.elapsed().as_secs_f64();
    let (after, hwm_after) = vm_rss(pid)?;
    println!(
        "verified {opened} sessions (ping + tools/list) in {verify_secs:.2} s: {errors} errors{}; VmRSS after {:.1} MiB, VmHWM {:.1} MiB",
        first
            .as_deref()
            .map(|f| format!(" (first: {f})"))
            .unwrap_or_default(),
        after as f64 / 1024.0,
        hwm_after as f64 / 1024.0
    );
    Ok(json!({
        "requested": n,
        "opened": opened,
        "open_secs": open_secs,
        "rss_kib": held,
        "hwm_kib": hwm,
        "bytes_per_session": per,
        "verify_errors": errors,
        "verify_secs": verify_secs,
        "rss_after_verify_kib": after,
        "hwm_after_verify_kib": hwm_after,
    }))
}
