//! Soak and chaos runs against a real `mcp-gateway` process: memory and file descriptors
//! that stay flat over a million calls, and calls that never hang or vanish while its
//! upstreams, Redis and clients misbehave.
//!
//! ```text
//! cargo build --release --bin mcp-gateway --example mcp_test_server --example soak
//! target/release/examples/soak soak  [--calls 1000000] [--rate 1500] [--json soak.json]
//! target/release/examples/soak chaos [--seconds 120] [--rate 300] [--json chaos.json]
//! ```
//!
//! `scripts/soak.sh` builds and runs both. Each run starts the release `mcp-gateway`
//! binary (next to this example's directory) with a config of four upstreams, all
//! `mcp_test_server`: over stdio in the session generation (`stdio_s`) and in the
//! stateless one (`stdio_x`), over Streamable HTTP in the session generation (`http_s`)
//! and serving both (`http_x`, where the gateway picks 2026-07-28). Calls rotate over three
//! fronts — `POST /api/v1/tools/call`, `/mcp` inside a 2025-11-25 session, `/mcp` as a
//! 2026-07-28 client — and the four servers; each is an `echo` of a unique text that the
//! answer must carry. The load is paced: `--concurrency` workers (default 32) each wait for
//! their own tick, so the rate stays at `--rate` calls per second whatever the latency.
//!
//! `soak` makes `--calls` calls and samples the gateway's resident memory (`VmRSS`) and open
//! file descriptors every `--sample-every` calls (default 10⁵). The first sample is taken
//! after the first 10⁵ calls (warm-up: pools, the request log and allocator arenas fill);
//! it passes when no call failed and the last sample of each is within 5 % of the first.
//!
//! `chaos` runs the gateway in cluster mode on a local `redis-server` (rate limits in
//! Redis, `failMode: open`) with a 3 s upstream timeout, keeps the paced load going for
//! `--seconds`, and every 1–3 s does one of: `kill -9` a stdio server, `SIGSTOP` the
//! session-generation HTTP upstream for 4 s then `SIGCONT`, restart Redis, or open client
//! connections that it drops mid-request, mid-body or mid-event-stream. Every call must
//! either succeed or get a clear error (a JSON error with a code, over HTTP or JSON-RPC),
//! none may take longer than the timeout plus 2 s, and none may end without an answer.
//! Afterwards every server must answer again on every front, the gateway's log must hold
//! no panic, its children must be exactly its two live stdio servers (no zombie), its
//! descriptors must be back to where they were before the load, and after `SIGTERM` it
//! must exit cleanly with no server left behind.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

type Error = Box<dyn std::error::Error + Send + Sync>;

const KEY: &str = "soak-key";
const SESSION: &str = "2025-11-25";
const STATELESS: &str = "2026-07-28";
const ACCEPT: &str = "application/json, text/event-stream";
/// Upstream ids, in the order calls rotate over them.
const SERVERS: [&str; 4] = ["stdio_s", "stdio_x", "http_s", "http_x"];
/// Call fronts, in the order calls rotate over them.
const FRONTS: [Front; 3] = [Front::Rest, Front::Session, Front::Stateless];
/// Upstream timeout of the chaos run, ms.
const CHAOS_TIMEOUT_MS: u64 = 3000;
/// How much longer than the upstream timeout a call may take before it counts as hung.
const HANG_SLACK: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Front {
    Rest,
    Session,
    Stateless,
}

impl Front {
    fn label(self) -> &'static str {
        match self {
            Front::Rest => "rest",
            Front::Session => "mcp-2025",
            Front::Stateless => "mcp-2026",
        }
    }
}

struct Opts {
    chaos: bool,
    calls: u64,
    seconds: u64,
    rate: f64,
    concurrency: usize,
    sample_every: u64,
    json: Option<PathBuf>,
}

fn parse_args() -> Result<Opts, String> {
    let mut args = std::env::args().skip(1);
    let chaos = match args.next().as_deref() {
        Some("soak") => false,
        Some("chaos") => true,
        _ => return Err("usage: soak soak|chaos [options]; see the file's header".into()),
    };
    let mut o = Opts {
        chaos,
        calls: 1_000_000,
        seconds: 120,
        rate: if chaos { 300.0 } else { 1500.0 },
        concurrency: 32,
        sample_every: 100_000,
        json: None,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let num = |v: String| v.parse::<f64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--calls" => o.calls = num(value()?)? as u64,
            "--seconds" => o.seconds = num(value()?)? as u64,
            "--rate" => o.rate = num(value()?)?.max(1.0),
            "--concurrency" => o.concurrency = (num(value()?)? as usize).max(1),
            "--sample-every" => o.sample_every = (num(value()?)? as u64).max(1),
            "--json" => o.json = Some(PathBuf::from(value()?)),
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
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let run = if opts.chaos {
        chaos(&opts).await
    } else {
        soak(&opts).await
    };
    match run {
        Ok(report) => {
            if let Some(path) = &opts.json {
                let text = serde_json::to_string_pretty(&report.json).unwrap_or_default();
                if let Err(e) = std::fs::write(path, text) {
                    eprintln!("{}: {e}", path.display());
                }
            }
            if !report.passed {
                eprintln!("FAILED");
                std::process::exit(1);
            }
            println!("PASSED");
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

struct Report {
    passed: bool,
    json: Value,
}

// ---------------------------------------------------------------------------------------
// The gateway and its upstreams
// ---------------------------------------------------------------------------------------

struct Redis {
    port: u16,
    child: Child,
}

impl Redis {
    async fn start(port: u16) -> Result<Redis, Error> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("redis-server: {e} (scripts/install-peers.sh installs it)"))?;
        wait_port(port).await?;
        Ok(Redis { port, child })
    }

    async fn restart(&mut self) -> Result<(), Error> {
        self.child.kill().await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        *self = Redis::start(self.port).await?;
        Ok(())
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    gateway: Child,
    pid: u32,
    base: String,
    log: PathBuf,
    /// `(id, process, port)` of the Streamable HTTP upstreams.
    http: Vec<(&'static str, Child, u16)>,
    redis: Option<Redis>,
}

fn free_port() -> Result<u16, Error> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_port(port: u16) -> Result<(), Error> {
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(format!("nothing listens on 127.0.0.1:{port}").into())
}

/// The release binaries: this example sits in `target/release/examples/`.
fn binaries() -> Result<(PathBuf, PathBuf), Error> {
    let exe = std::env::current_exe()?;
    let examples = exe.parent().ok_or("no example directory")?;
    let server = examples.join("mcp_test_server");
    let gateway = examples
        .parent()
        .ok_or("no target directory")?
        .join("mcp-gateway");
    for bin in [&server, &gateway] {
        if !bin.exists() {
            return Err(format!(
                "{} is missing: cargo build --release --bin mcp-gateway --example mcp_test_server",
                bin.display()
            )
            .into());
        }
    }
    Ok((gateway, server))
}

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

impl Fixture {
    async fn start(cluster: bool, timeout_ms: u64, concurrency: usize) -> Result<Fixture, Error> {
        let (gateway_bin, server_bin) = binaries()?;
        let dir = tempfile::tempdir()?;
        let (http_s, url_s) = spawn_http_server(&server_bin, "session").await?;
        let (http_x, url_x) = spawn_http_server(&server_bin, "both").await?;
        let redis = match cluster {
            true => Some(Redis::start(free_port()?).await?),
            false => None,
        };
        let port = free_port()?;
        let mut yaml = format!(
            "host: 127.0.0.1\nport: {port}\nlogLevel: warn\nshutdownTimeout: 5000\n\
             auth:\n  strategy: api-key\n  apiKeys: [\"{KEY}\"]\n\
             monitor: {{ requestLog: true, requestLogSize: 1000, prometheus: true }}\n\
             rateLimit:\n  limit: 1000000000\n  windowSeconds: 60\n"
        );
        if let Some(r) = &redis {
            let url = format!("redis://127.0.0.1:{}/", r.port);
            write!(
                yaml,
                "  backend: redis\n  redisUrl: {url}\n  failMode: open\n\
                 cluster:\n  replica: chaos\n  redisUrl: {url}\n  \
                 sessionKey: \"chaos-session-key-of-at-least-32-characters\"\n"
            )?;
        }
        yaml.push_str("servers:\n");
        let common = format!(
            "    timeout: {timeout_ms}\n    maxConcurrency: {}\n",
            concurrency * 4
        );
        let bin = server_bin.display().to_string();
        for (id, generation) in [("stdio_s", "session"), ("stdio_x", "stateless")] {
            write!(
                yaml,
                "  - id: {id}\n    command: {bin:?}\n    args: [\"--generation\", \"{generation}\"]\n{common}"
            )?;
        }
        for (id, url) in [("http_s", &url_s), ("http_x", &url_x)] {
            write!(
                yaml,
                "  - id: {id}\n    transport: streamable-http\n    url: {url:?}\n{common}"
            )?;
        }
        let config = dir.path().join("mcp-gateway.yml");
        std::fs::write(&config, &yaml)?;
        let log = dir.path().join("gateway.log");
        let out = std::fs::File::create(&log)?;
        let gateway = Command::new(&gateway_bin)
            .arg("start")
            .arg("-c")
            .arg(&config)
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()?;
        let pid = gateway.id().ok_or("gateway exited at once")?;
        let base = format!("http://127.0.0.1:{port}");
        let probe = reqwest::Client::new();
        let ready = async {
            loop {
                let r = probe.get(format!("{base}/readyz")).send().await;
                if r.is_ok_and(|r| r.status().is_success()) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(30), ready)
            .await
            .is_err()
        {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("the gateway never became ready:\n{text}").into());
        }
        Ok(Fixture {
            _dir: dir,
            gateway,
            pid,
            base,
            log,
            http: vec![
                ("http_s", http_s, port_of(&url_s)),
                ("http_x", http_x, port_of(&url_x)),
            ],
            redis,
        })
    }

    fn http_pid(&self, id: &str) -> Option<u32> {
        self.http.iter().find(|(i, ..)| *i == id)?.1.id()
    }

    /// Established connections from the gateway to each HTTP upstream: its keep-alive pool.
    fn upstream_sockets(&self) -> Vec<(&'static str, usize)> {
        let table = socket_report(self.pid);
        self.http
            .iter()
            .map(|(id, _, port)| {
                let peer = format!("127.0.0.1:{port} ");
                let n = table
                    .lines()
                    .filter(|l| l.starts_with("ESTAB") && l.contains(&peer))
                    .count();
                (*id, n)
            })
            .collect()
    }
}

/// The port of a `http://127.0.0.1:PORT/…` URL.
fn port_of(url: &str) -> u16 {
    url.split(':')
        .nth(2)
        .and_then(|rest| rest.split('/').next()?.parse().ok())
        .unwrap_or(0)
}

/// Resident set size of `pid`, bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Open file descriptors of `pid`.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// `(pid, state)` of every child process of `parent` (state `Z` is a zombie).
fn children(parent: u32) -> Vec<(u32, char)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
        let Some(tail) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut fields = tail.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        if fields.next().and_then(|p| p.parse::<u32>().ok()) == Some(parent) {
            out.push((pid, state));
        }
    }
    out
}

/// The TCP sockets `pid` holds, as `ss` shows them: what a descriptor leak is made of.
fn socket_report(pid: u32) -> String {
    let out = std::process::Command::new("ss")
        .args(["-tanp"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let tag = format!("pid={pid},");
    out.lines()
        .filter(|l| l.contains(&tag))
        .collect::<Vec<_>>()
        .join("\n")
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| Some(s[s.rfind(')')? + 1..].trim_start().starts_with('Z')))
        .is_some_and(|zombie| !zombie)
}

fn signal(pid: u32, sig: &str) {
    let _ = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status();
}

// ---------------------------------------------------------------------------------------
// One call and what came of it
// ---------------------------------------------------------------------------------------

/// What became of one call.
enum Outcome {
    /// The echo came back.
    Ok,
    /// A clear error: HTTP or JSON-RPC, with a code (the bucket names status and code).
    Clear(String),
    /// No answer, or an answer that is neither the echo nor a clear error.
    Lost(String),
    /// Longer than the timeout plus slack.
    Hung,
}

/// A load worker's connection state: its client and, on the session front, its session.
struct Caller {
    http: reqwest::Client,
    base: String,
    session: Option<String>,
}

fn rpc(id: u64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

fn stateless_body(id: u64, method: &str, mut params: Value) -> Value {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": STATELESS,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "soak", "version": "1.0.0"},
    });
    rpc(id, method, params)
}

/// The JSON-RPC message answering `id` in a JSON or event-stream body.
fn rpc_answer(content_type: &str, body: &str, id: u64) -> Option<Value> {
    if !content_type.starts_with("text/event-stream") {
        return serde_json::from_str(body).ok();
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v["id"] == id)
}

/// An error that names a code, as the gateway's REST errors and JSON-RPC errors do.
fn error_code(v: &Value) -> Option<String> {
    let e = &v["error"];
    let code = match &e["code"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    e["message"].as_str().filter(|m| !m.is_empty())?;
    Some(code)
}

impl Caller {
    async fn open_session(&mut self) -> Result<(), String> {
        let init = rpc(
            0,
            "initialize",
            json!({"protocolVersion": SESSION, "capabilities": {},
                   "clientInfo": {"name": "soak", "version": "1.0.0"}}),
        );
        let r = self
            .post(&init, &[])
            .await
            .map_err(|e| format!("initialize: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("initialize: HTTP {}", r.status()));
        }
        let sid = r
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .ok_or("initialize: no Mcp-Session-Id")?
            .to_string();
        let _ = r.bytes().await;
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let r = self
            .post(&note, &[("mcp-session-id", &sid)])
            .await
            .map_err(|e| format!("initialized: {e}"))?;
        let _ = r.bytes().await;
        self.session = Some(sid);
        Ok(())
    }

    async fn post(
        &self,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> reqwest::Result<reqwest::Response> {
        let mut req = self
            .http
            .post(format!("{}/mcp", self.base))
            .header("x-api-key", KEY)
            .header("accept", ACCEPT)
            .header("content-type", "application/json")
            .body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await
    }

    /// Call number `k`: `echo` of a unique text on the front and server its number picks.
    async fn call(&mut self, k: u64) -> Outcome {
        let front = FRONTS[(k % 3) as usize];
        let server = SERVERS[((k / 3) % 4) as usize];
        let tool = format!("{server}__echo");
        let text = format!("soak-{k}");
        let args = json!({"text": text});
        if front == Front::Session
            && self.session.is_none()
            && let Err(e) = self.open_session().await
        {
            return Outcome::Lost(e);
        }
        let sent = match front {
            Front::Rest => {
                self.http
                    .post(format!("{}/api/v1/tools/call", self.base))
                    .header("x-api-key", KEY)
                    .json(&json!({"tool": tool, "arguments": args}))
                    .send()
                    .await
            }
            Front::Session => {
                let sid = self.session.clone().unwrap_or_default();
                let body = rpc(k, "tools/call", json!({"name": tool, "arguments": args}));
                let h = [
                    ("mcp-session-id", sid.as_str()),
                    ("mcp-protocol-version", SESSION),
                ];
                self.post(&body, &h).await
            }
            Front::Stateless => {
                let body =
                    stateless_body(k, "tools/call", json!({"name": tool, "arguments": args}));
                let h = [
                    ("mcp-protocol-version", STATELESS),
                    ("mcp-method", "tools/call"),
                    ("mcp-name", tool.as_str()),
                ];
                self.post(&body, &h).await
            }
        };
        let response = match sent {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Outcome::Hung,
            Err(e) => return Outcome::Lost(format!("{}: {e}", front.label())),
        };
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = match response.text().await {
            Ok(b) => b,
            Err(e) if e.is_timeout() => return Outcome::Hung,
            Err(e) => return Outcome::Lost(format!("{} body: {e}", front.label())),
        };
        if front == Front::Session && status == 404 {
            // The session is gone (expired or revoked): a clear answer; open a new one.
            self.session = None;
        }
        let answer = match front {
            Front::Rest => serde_json::from_str::<Value>(&body).ok(),
            _ => rpc_answer(&content_type, &body, k),
        };
        let Some(answer) = answer else {
            return Outcome::Lost(format!("{} HTTP {status}: unreadable body", front.label()));
        };
        if let Some(code) = error_code(&answer) {
            return Outcome::Clear(format!("{} HTTP {} {code}", front.label(), status.as_u16()));
        }
        if !status.is_success() {
            return Outcome::Lost(format!(
                "{} HTTP {status} without an error code",
                front.label()
            ));
        }
        let result = &answer["result"];
        let echoed = result["content"][0]["text"].as_str() == Some(text.as_str());
        match (echoed, result["isError"].as_bool()) {
            (true, _) => Outcome::Ok,
            (false, Some(true)) => Outcome::Clear(format!("{} tool error", front.label())),
            (false, _) => Outcome::Lost(format!(
                "{} HTTP {status}: wrong answer {answer}",
                front.label()
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The paced load
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Tally {
    ok: u64,
    clear: BTreeMap<String, u64>,
    lost: BTreeMap<String, u64>,
    hung: u64,
    /// Latencies (µs) of the calls since the last sample.
    window: Vec<u32>,
    /// Slowest call, µs.
    max_us: u64,
}

impl Tally {
    fn failures(&self) -> u64 {
        self.clear.values().sum::<u64>() + self.lost.values().sum::<u64>() + self.hung
    }
}

struct Load {
    next: AtomicU64,
    done: AtomicU64,
    stop: AtomicBool,
    limit: u64,
    tally: Mutex<Tally>,
    /// Workers keep their connection open after their last call until this turns true, so
    /// the last sample sees the same sockets as the others.
    release: tokio::sync::watch::Sender<bool>,
}

/// Starts `opts.concurrency` paced workers; they stop after `limit` calls or on `stop`.
fn start_load(
    base: &str,
    opts: &Opts,
    timeout: Duration,
    limit: u64,
) -> (Arc<Load>, Vec<tokio::task::JoinHandle<()>>) {
    let load = Arc::new(Load {
        next: AtomicU64::new(0),
        done: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        limit,
        tally: Mutex::new(Tally::default()),
        release: tokio::sync::watch::channel(false).0,
    });
    let period = Duration::from_secs_f64(opts.concurrency as f64 / opts.rate);
    let workers = opts.concurrency;
    let handles = (0..workers)
        .map(|w| {
            let load = load.clone();
            // One client per worker with one pooled connection: each worker holds exactly
            // one connection to the gateway, so descriptor counts compare across samples.
            let http = reqwest::Client::builder()
                .timeout(timeout)
                .pool_max_idle_per_host(1)
                .build()
                .expect("an HTTP client");
            let mut caller = Caller {
                http,
                base: base.to_string(),
                session: None,
            };
            tokio::spawn(async move {
                // Workers start spread over one period, so the calls are evenly spaced.
                let offset = period.mul_f64(w as f64 / workers as f64);
                tokio::time::sleep(offset).await;
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if load.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let k = load.next.fetch_add(1, Ordering::Relaxed);
                    if k >= load.limit {
                        break;
                    }
                    let t0 = Instant::now();
                    let outcome = caller.call(k).await;
                    let us = t0.elapsed().as_micros() as u64;
                    let mut t = load.tally.lock().unwrap();
                    match outcome {
                        Outcome::Ok => t.ok += 1,
                        Outcome::Clear(b) => *t.clear.entry(b).or_default() += 1,
                        Outcome::Lost(b) => *t.lost.entry(b).or_default() += 1,
                        Outcome::Hung => t.hung += 1,
                    }
                    t.window.push(us.min(u32::MAX as u64) as u32);
                    t.max_us = t.max_us.max(us);
                    drop(t);
                    load.done.fetch_add(1, Ordering::Relaxed);
                }
                let mut release = load.release.subscribe();
                let _ = release.wait_for(|r| *r).await;
                drop(caller);
            })
        })
        .collect();
    (load, handles)
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

// ---------------------------------------------------------------------------------------
// soak
// ---------------------------------------------------------------------------------------

async fn soak(opts: &Opts) -> Result<Report, Error> {
    let fx = Fixture::start(false, 30_000, opts.concurrency).await?;
    println!(
        "soak: {} calls at {} calls/s, {} workers, gateway pid {}",
        opts.calls, opts.rate, opts.concurrency, fx.pid
    );
    println!(
        "| calls | elapsed s | calls/s | p50 ms | p99 ms | RSS MiB | fds | pooled | other fds | failures |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let (load, workers) = start_load(&fx.base, opts, Duration::from_secs(60), opts.calls);
    let t0 = Instant::now();
    let mut samples = Vec::new();
    let mut next = opts.sample_every.min(opts.calls);
    let mut last = (Instant::now(), 0u64);
    while next <= opts.calls {
        let done = load.done.load(Ordering::Relaxed);
        if done < next {
            if workers.iter().all(|w| w.is_finished()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let (rss, fds) = (rss(fx.pid), fds(fx.pid));
        // Keep-alive connections to the HTTP upstreams come and go with the load's bursts
        // (bounded by the calls in flight); what must stay flat is everything else.
        let pooled = fx.upstream_sockets().iter().map(|p| p.1).sum::<usize>();
        let mut window = std::mem::take(&mut load.tally.lock().unwrap().window);
        window.sort_unstable();
        let failures = load.tally.lock().unwrap().failures();
        let now = Instant::now();
        let rate = (done - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        last = (now, done);
        println!(
            "| {done} | {:.0} | {rate:.0} | {:.2} | {:.2} | {:.1} | {fds} | {pooled} | {} | {failures} |",
            t0.elapsed().as_secs_f64(),
            percentile(&window, 0.5) as f64 / 1000.0,
            percentile(&window, 0.99) as f64 / 1000.0,
            rss as f64 / 1048576.0,
            fds - pooled,
        );
        samples.push(json!({
            "calls": done, "elapsed_s": t0.elapsed().as_secs_f64(), "calls_per_s": rate,
            "p50_ms": percentile(&window, 0.5) as f64 / 1000.0,
            "p99_ms": percentile(&window, 0.99) as f64 / 1000.0,
            "rss_bytes": rss, "fds": fds, "pooled": pooled, "other_fds": fds - pooled,
            "failures": failures,
        }));
        next += opts.sample_every;
    }
    load.release.send_replace(true);
    for w in workers {
        w.await?;
    }
    let t = load.tally.lock().unwrap();
    let failures = t.failures();
    let (first, lastv) = (samples.first().cloned(), samples.last().cloned());
    let mut passed = failures == 0;
    let mut verdicts = Vec::new();
    if let (Some(a), Some(b)) = (first, lastv) {
        for key in ["rss_bytes", "other_fds"] {
            let (x, y) = (
                a[key].as_f64().unwrap_or(0.0),
                b[key].as_f64().unwrap_or(0.0),
            );
            let change = if x > 0.0 { (y - x) / x * 100.0 } else { 0.0 };
            let ok = change.abs() <= 5.0;
            passed &= ok;
            verdicts.push(format!(
                "{key}: {x} → {y} ({change:+.2} %){}",
                if ok { "" } else { " > 5 %" }
            ));
        }
    }
    println!(
        "ok {} · failures {failures} · slowest call {:.1} ms",
        t.ok,
        t.max_us as f64 / 1000.0
    );
    for (bucket, n) in t.clear.iter().chain(t.lost.iter()) {
        println!("  {n} × {bucket}");
    }
    let most_pooled = samples
        .iter()
        .filter_map(|s| s["pooled"].as_u64())
        .max()
        .unwrap_or(0);
    if most_pooled > (opts.concurrency * 2) as u64 {
        passed = false;
        verdicts.push(format!(
            "pooled upstream connections: {most_pooled}, over twice the workers"
        ));
    }
    for v in &verdicts {
        println!("{v}");
    }
    let panicked = std::fs::read_to_string(&fx.log)?.contains("panicked");
    if panicked {
        println!("the gateway's log holds a panic");
        passed = false;
    }
    Ok(Report {
        passed,
        json: json!({
            "mode": "soak", "calls": opts.calls, "rate": opts.rate,
            "concurrency": opts.concurrency, "ok": t.ok, "failures": failures,
            "clear_errors": t.clear, "lost": t.lost, "hung": t.hung,
            "slowest_ms": t.max_us as f64 / 1000.0, "samples": samples,
            "verdicts": verdicts, "panic_in_log": panicked,
        }),
    })
}

// ---------------------------------------------------------------------------------------
// chaos
// ---------------------------------------------------------------------------------------

/// A small xorshift generator: the chaos schedule needs no more, and its seed is printed
/// so a run can be repeated (`SOAK_SEED`).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Opens client connections and drops them mid-request, mid-body and mid-event-stream.
async fn drop_clients(port: u16, rng: &mut Rng) -> usize {
    let auth = format!("x-api-key: {KEY}\r\n");
    let progress = stateless_body(
        7,
        "tools/call",
        json!({"name": "stdio_x__progress", "arguments": {"steps": 40}}),
    );
    let mut progress = progress;
    // `stateless_body` replaces `_meta`; the progress token goes back in.
    progress["params"]["_meta"]["progressToken"] = json!("p");
    let progress = progress.to_string();
    let sleep = json!({"tool": "stdio_s__sleep", "arguments": {"ms": 800}}).to_string();
    let mut dropped = 0;
    for _ in 0..8 {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else {
            continue;
        };
        let request = match rng.below(4) {
            // Half a request head.
            0 => format!("POST /api/v1/tools/call HTTP/1.1\r\nhost: x\r\n{auth}"),
            // A whole head, half the body.
            1 => format!(
                "POST /api/v1/tools/call HTTP/1.1\r\nhost: x\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\n\r\n{}",
                sleep.len(),
                &sleep[..sleep.len() / 2]
            ),
            // A whole call, dropped while the upstream works on it.
            2 => format!(
                "POST /api/v1/tools/call HTTP/1.1\r\nhost: x\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\n\r\n{sleep}",
                sleep.len()
            ),
            // An event stream of progress notifications, dropped after its first bytes.
            _ => format!(
                "POST /mcp HTTP/1.1\r\nhost: x\r\n{auth}content-type: application/json\r\naccept: {ACCEPT}\r\n\
                 mcp-protocol-version: {STATELESS}\r\nmcp-method: tools/call\r\nmcp-name: stdio_x__progress\r\n\
                 content-length: {}\r\n\r\n{progress}",
                progress.len()
            ),
        };
        if s.write_all(request.as_bytes()).await.is_err() {
            continue;
        }
        let mut buf = [0u8; 512];
        let wait = Duration::from_millis(50 + rng.below(300));
        let _ = tokio::time::timeout(wait, s.read(&mut buf)).await;
        dropped += 1;
    }
    dropped
}

async fn chaos(opts: &Opts) -> Result<Report, Error> {
    let mut fx = Fixture::start(true, CHAOS_TIMEOUT_MS, opts.concurrency).await?;
    let port: u16 = fx.base.rsplit(':').next().unwrap_or_default().parse()?;
    let seed = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| (std::process::id() as u64 * 2_654_435_761) | 1);
    let mut rng = Rng(seed);
    let fds_before = fds(fx.pid);
    let pooled_before = fx.upstream_sockets().iter().map(|p| p.1).sum::<usize>();
    println!(
        "chaos: {} s at {} calls/s, {} workers, seed {seed}, gateway pid {} ({fds_before} fds)",
        opts.seconds, opts.rate, opts.concurrency, fx.pid
    );
    let timeout = Duration::from_millis(CHAOS_TIMEOUT_MS) + HANG_SLACK;
    let (load, workers) = start_load(&fx.base, opts, timeout, u64::MAX);
    let mut seen: BTreeSet<u32> = BTreeSet::new();
    let mut actions: BTreeMap<&str, u64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(opts.seconds);
    tokio::time::sleep(Duration::from_secs(2)).await;
    while Instant::now() < deadline {
        seen.extend(children(fx.pid).iter().map(|c| c.0));
        match rng.below(4) {
            0 => {
                let live: Vec<u32> = children(fx.pid)
                    .into_iter()
                    .filter(|c| c.1 != 'Z')
                    .map(|c| c.0)
                    .collect();
                if !live.is_empty() {
                    signal(live[rng.below(live.len() as u64) as usize], "-KILL");
                    *actions.entry("kill -9 a stdio server").or_default() += 1;
                }
            }
            1 => {
                if let Some(pid) = fx.http_pid("http_s") {
                    signal(pid, "-STOP");
                    tokio::time::sleep(Duration::from_secs(4)).await;
                    signal(pid, "-CONT");
                    *actions
                        .entry("SIGSTOP an HTTP upstream for 4 s")
                        .or_default() += 1;
                }
            }
            2 => {
                if let Some(r) = fx.redis.as_mut() {
                    r.restart().await?;
                    *actions.entry("restart Redis").or_default() += 1;
                }
            }
            _ => {
                let n = drop_clients(port, &mut rng).await;
                *actions.entry("drop client connections").or_default() += n as u64;
            }
        }
        tokio::time::sleep(Duration::from_millis(1000 + rng.below(2000))).await;
    }
    load.stop.store(true, Ordering::Relaxed);
    load.release.send_replace(true);
    for w in workers {
        w.await?;
    }
    seen.extend(children(fx.pid).iter().map(|c| c.0));
    let mut passed = true;
    let mut findings = Vec::new();
    let t = std::mem::take(&mut *load.tally.lock().unwrap());
    println!("actions: {actions:?}");
    println!(
        "calls: {} ok, {} clear errors, {} lost, {} hung; slowest {:.0} ms",
        t.ok,
        t.clear.values().sum::<u64>(),
        t.lost.values().sum::<u64>(),
        t.hung,
        t.max_us as f64 / 1000.0
    );
    for (bucket, n) in &t.clear {
        println!("  clear: {n} × {bucket}");
    }
    for (bucket, n) in &t.lost {
        println!("  LOST: {n} × {bucket}");
    }
    if !t.lost.is_empty() || t.hung > 0 {
        passed = false;
        findings.push("calls lost or hung".to_string());
    }

    // Recovery: every server answers again on every front.
    let mut caller = Caller {
        http: reqwest::Client::builder().timeout(timeout).build()?,
        base: fx.base.clone(),
        session: None,
    };
    let recovered_by = Instant::now() + Duration::from_secs(20);
    for k in 0..12u64 {
        loop {
            if matches!(caller.call(k).await, Outcome::Ok) {
                break;
            }
            if Instant::now() > recovered_by {
                passed = false;
                findings.push(format!(
                    "{} → {} does not answer after the chaos",
                    FRONTS[(k % 3) as usize].label(),
                    SERVERS[((k / 3) % 4) as usize]
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    drop(caller);

    // Children: exactly the two stdio servers, alive; no zombie.
    let now = children(fx.pid);
    let zombies = now.iter().filter(|c| c.1 == 'Z').count();
    let live = now.len() - zombies;
    println!(
        "children now: {live} live, {zombies} zombie; {} stdio processes seen",
        seen.len()
    );
    if live != 2 || zombies > 0 {
        passed = false;
        findings.push(format!(
            "children: {live} live (2 expected), {zombies} zombies"
        ));
    }

    // Descriptors: back to where they were once the clients' connections are closed. The
    // keep-alive pools to the HTTP upstreams are the one thing allowed to have grown: a
    // SIGSTOPped upstream makes every worker open a connection to it, and those go back to
    // the pool when it wakes. They are counted apart, and each pool must stay within the
    // most calls that were ever in flight at once (the workers plus the dropped clients).
    let pooled = |fx: &Fixture| fx.upstream_sockets().iter().map(|p| p.1).sum::<usize>();
    let mut fds_after = fds(fx.pid);
    let mut pooled_after = pooled(&fx);
    for _ in 0..100 {
        if fds_after - pooled_after <= fds_before - pooled_before + 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        fds_after = fds(fx.pid);
        pooled_after = pooled(&fx);
    }
    let pools = fx.upstream_sockets();
    println!(
        "fds: {fds_before} before the load ({pooled_before} pooled upstream connections), \
         {fds_after} after ({pooled_after} pooled: {pools:?})"
    );
    let bound = opts.concurrency + 8;
    if fds_after - pooled_after > fds_before - pooled_before + 2
        || pools.iter().any(|p| p.1 > bound)
    {
        println!("{}", socket_report(fx.pid));
        passed = false;
        findings.push(format!(
            "descriptors: {fds_before} before, {fds_after} after; pools {pools:?} (bound {bound})"
        ));
    }

    // A clean stop: SIGTERM, exit 0, no server left behind.
    signal(fx.pid, "-TERM");
    let status = tokio::time::timeout(Duration::from_secs(15), fx.gateway.wait()).await;
    let clean = matches!(&status, Ok(Ok(s)) if s.success());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let survivors: Vec<u32> = seen.iter().copied().filter(|p| alive(*p)).collect();
    println!("stop: {status:?}; surviving servers: {survivors:?}");
    if !clean || !survivors.is_empty() {
        passed = false;
        findings.push(format!("stop: {status:?}, survivors {survivors:?}"));
    }
    let log = std::fs::read_to_string(&fx.log)?;
    let panicked = log.contains("panicked");
    if panicked {
        passed = false;
        findings.push("the gateway's log holds a panic".into());
    }
    for f in &findings {
        println!("FINDING: {f}");
    }
    Ok(Report {
        passed,
        json: json!({
            "mode": "chaos", "seconds": opts.seconds, "rate": opts.rate, "seed": seed,
            "concurrency": opts.concurrency, "actions": actions, "ok": t.ok,
            "clear_errors": t.clear, "lost": t.lost, "hung": t.hung,
            "slowest_ms": t.max_us as f64 / 1000.0, "fds_before": fds_before,
            "fds_after": fds_after, "stdio_processes_seen": seen.len(),
            "findings": findings,
        }),
    })
}
