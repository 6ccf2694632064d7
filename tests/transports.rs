//! The upstream transports end to end: the project's test server over Streamable HTTP
//! (session and stateless generations), legacy HTTP+SSE, WebSocket and stdio, each driven
//! through the gateway's REST API with the same checks — discovery with pagination, calls,
//! concurrent calls, a timeout that cancels upstream, the server killed mid-call (an error,
//! never a hang) and recovery when it comes back — plus what is specific to each wire:
//! `x-mcp-header` mirroring, configured headers, WebSocket close frames and subprotocol
//! fallback, progress relayed from an HTTP upstream to an MCP client of the gateway.

mod common;
use base64::Engine;
use common::*;
use mcp_gateway::config::{Config, Format};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How the test server is reached.
#[derive(Clone, Copy, Debug)]
enum Wire {
    /// Streamable HTTP, session generation (`initialize`, `Mcp-Session-Id`).
    Http,
    /// Streamable HTTP, stateless 2026-07-28 (`server/discover`, `Mcp-Method` / `Mcp-Name`).
    HttpStateless,
    /// Legacy HTTP+SSE (2024-11-05 style, session generation).
    Sse,
    /// WebSocket; the server speaks both generations, so the gateway picks the stateless one.
    Ws,
    /// A child process of the gateway; both generations, so the stateless one is picked.
    Stdio,
}

impl Wire {
    fn flag(self) -> &'static str {
        match self {
            Wire::Http | Wire::HttpStateless => "--http",
            Wire::Sse => "--sse",
            Wire::Ws => "--ws",
            Wire::Stdio => unreachable!("stdio servers are started by the gateway"),
        }
    }

    fn transport(self) -> &'static str {
        match self {
            Wire::Http | Wire::HttpStateless => "streamable-http",
            Wire::Sse => "sse",
            Wire::Ws => "websocket",
            Wire::Stdio => "stdio",
        }
    }

    fn generation(self) -> &'static str {
        match self {
            Wire::Http | Wire::Sse => "session",
            Wire::HttpStateless => "stateless",
            Wire::Ws | Wire::Stdio => "both",
        }
    }

    fn stateless(self) -> bool {
        matches!(self, Wire::HttpStateless | Wire::Ws | Wire::Stdio)
    }
}

/// A test server listening on 127.0.0.1, restartable on the same port — or, for
/// [`Wire::Stdio`], the command line the gateway runs (and restarts by itself).
struct NetServer {
    wire: Wire,
    args: Vec<String>,
    /// `None` for stdio: the gateway owns that process.
    child: Option<Child>,
    url: String,
    port: u16,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl NetServer {
    async fn start(wire: Wire, extra: &[&str]) -> NetServer {
        let dir = tempfile::tempdir().unwrap();
        let stderr = dir.path().join("stderr.log");
        let mut args: Vec<String> = vec!["--generation".into(), wire.generation().into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        if let Wire::Stdio = wire {
            // A name unique to this test, to find the process the gateway started.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let name = format!("stdio-suite-{}-{nanos}", std::process::id());
            args.extend(["--name".to_string(), name]);
            return NetServer {
                wire,
                args,
                child: None,
                url: String::new(),
                port: 0,
                stderr,
                _dir: dir,
            };
        }
        let (child, url) = spawn_server(wire, &args, 0, &stderr).await;
        let port = url
            .rsplit_once(':')
            .and_then(|(_, rest)| rest.split('/').next())
            .and_then(|p| p.parse().ok())
            .expect("port in url");
        NetServer {
            wire,
            args,
            child: Some(child),
            url,
            port,
            stderr,
            _dir: dir,
        }
    }

    /// Kills the server (for stdio, the process the gateway started, found by its name).
    async fn kill(&mut self) {
        match &mut self.child {
            Some(child) => {
                let _ = child.kill().await;
            }
            None => {
                let name = self.args.last().expect("--name NAME").clone();
                let pids = pgrep(&name);
                assert!(!pids.is_empty(), "no process named {name}");
                for pid in pids {
                    let _ = std::process::Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                }
            }
        }
    }

    /// Starts the server again on the same port; for stdio the gateway restarts it itself.
    async fn restart(&mut self) {
        if self.child.is_none() {
            return;
        }
        self.kill().await;
        let (child, url) = spawn_server(self.wire, &self.args, self.port, &self.stderr).await;
        assert_eq!(url, self.url, "restarted on the same port");
        self.child = Some(child);
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// YAML entry pointing the gateway at this server.
    fn yaml(&self, id: &str, timeout_ms: u64) -> String {
        if let Wire::Stdio = self.wire {
            let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
            let extra = format!("    timeout: {timeout_ms}\n    maxConcurrency: 50\n");
            return test_server_yaml(id, &args, &extra);
        }
        format!(
            "  - id: {id}\n    transport: {}\n    url: {:?}\n    timeout: {timeout_ms}\n    maxConcurrency: 50\n",
            self.wire.transport(),
            self.url
        )
    }
}

/// Starts the test server on `port` (0: any) and reads the URL it prints.
async fn spawn_server(wire: Wire, args: &[String], port: u16, stderr: &PathBuf) -> (Child, String) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(stderr)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut child = Command::new(test_server())
            .args(args)
            .args([wire.flag(), &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.try_clone().unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn test server");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        match tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await {
            Ok(Ok(Some(line))) => {
                let url = line.split_once(' ').expect("`kind url` line").1.to_string();
                return (child, url);
            }
            // The old process may still hold the port for a moment after being killed.
            _ if port != 0 && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("test server printed no url: {other:?}"),
        }
    }
}

/// The entry of `id` in `GET /api/v1/servers`.
async fn entry(gw: &TestGateway, id: &str) -> Value {
    let (status, v) = gw.get("/api/v1/servers").await;
    assert_eq!(status, 200, "{v}");
    v["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} not in {v}"))
}

/// Waits until server `id` is healthy, or fails after `limit`.
async fn wait_healthy(gw: &TestGateway, id: &str, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let s = entry(gw, id).await;
        if s["status"] == "healthy" {
            return s;
        }
        assert!(Instant::now() < deadline, "{id} never became healthy: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Calls a tool of server `t` and returns (status, body, elapsed).
async fn call(gw: &TestGateway, tool: &str, args: Value) -> (u16, Value, Duration) {
    let started = Instant::now();
    let (status, v) = gw
        .call(json!({"tool": tool, "server": "t", "arguments": args}))
        .await;
    (status, v, started.elapsed())
}

/// The checks every transport must pass.
async fn core_suite(wire: Wire) {
    let mut srv = NetServer::start(wire, &["--page-size", "5", "--tools", "7"]).await;
    let gw = TestGateway::start(config(&format!("servers:\n{}", srv.yaml("t", 3000)))).await;

    // Discovery across 4 pages: 12 built-in tools + tool_0..tool_6.
    let s = wait_healthy(&gw, "t", Duration::from_secs(10)).await;
    assert_eq!(s["toolCount"], 19, "{s}");
    assert_eq!(s["transport"], wire.transport(), "{s}");
    let want = if wire.stateless() {
        "2026-07-28"
    } else {
        "2025-11-25"
    };
    assert_eq!(s["protocolVersion"], want, "{s}");

    // Calls, results passed through, errors mapped.
    let (status, v, _) = call(&gw, "echo", json!({"text": "héllo"})).await;
    assert_eq!((status, text(&v)), (200, "héllo"), "{v}");
    let (status, v, _) = call(&gw, "tool_6", json!({})).await;
    assert_eq!((status, text(&v)), (200, "tool_6"), "{v}");
    let (status, v, _) = call(&gw, "error", json!({})).await;
    assert_eq!(status, 502, "{v}");
    assert!(v.to_string().contains("upstream error on purpose"), "{v}");
    // A non-JSON message on the stream is skipped; the answer after it still arrives.
    let (status, v, _) = call(&gw, "garbage", json!({})).await;
    assert_eq!((status, text(&v)), (200, "ok"), "{v}");
    let (status, v, _) = call(&gw, "big", json!({"bytes": 300_000})).await;
    assert_eq!((status, text(&v).len()), (200, 300_000));

    // Concurrent calls overlap instead of queueing one by one.
    let started = Instant::now();
    let calls = (0..20).map(|i| {
        let gw = &gw;
        async move { call(gw, "sleep", json!({"ms": 300 + i})).await }
    });
    for (i, (status, v, _)) in futures::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(
            (status, text(&v)),
            (200, format!("slept {}", 300 + i).as_str())
        );
    }
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "20 calls took {:?}",
        started.elapsed()
    );

    // A call past the timeout is a 504 and is cancelled upstream.
    let (status, v, took) = call(&gw, "sleep", json!({"ms": 10_000})).await;
    assert_eq!(status, 504, "{v}");
    assert!(took < Duration::from_millis(5000), "timeout took {took:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, v, _) = call(&gw, "cancelled_count", json!({})).await;
        if text(&v) != "0" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the upstream never saw the cancellation"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The server dies mid-call: the call fails promptly instead of hanging.
    let pending = {
        let gw = &gw;
        async move { call(gw, "sleep", json!({"ms": 2500})).await }
    };
    let kill = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        srv.kill().await;
    };
    let ((status, v, took), ()) = tokio::join!(pending, kill);
    assert!(status == 502 || status == 503, "{status} {v}");
    assert!(
        took < Duration::from_millis(2000),
        "error after {took:?}: {v}"
    );

    // While it is down calls fail fast; once it is back the gateway recovers by itself. (A
    // stdio server is restarted by the gateway after a short backoff, so it may be back.)
    let (status, v, took) = call(&gw, "echo", json!({"text": "down"})).await;
    let back = matches!(wire, Wire::Stdio) && status == 200;
    assert!(status == 502 || status == 503 || back, "{status} {v}");
    assert!(took < Duration::from_millis(2000), "{took:?}");
    srv.restart().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, v, _) = call(&gw, "echo", json!({"text": "back"})).await;
        if status == 200 {
            assert_eq!(text(&v), "back");
            break;
        }
        assert!(Instant::now() < deadline, "never recovered: {status} {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        wait_healthy(&gw, "t", Duration::from_secs(5)).await["toolCount"],
        19
    );
    gw.stop().await;
}

#[tokio::test]
async fn streamable_http_session_server() {
    core_suite(Wire::Http).await;
}

#[tokio::test]
async fn streamable_http_stateless_server() {
    core_suite(Wire::HttpStateless).await;
}

#[tokio::test]
async fn legacy_sse_server() {
    core_suite(Wire::Sse).await;
}

#[tokio::test]
async fn websocket_server() {
    core_suite(Wire::Ws).await;
}

#[tokio::test]
async fn stdio_server() {
    core_suite(Wire::Stdio).await;
}

/// A server that restarted forgets the session: the next call gets 404, the gateway
/// re-initializes and retries it without the caller noticing; on shutdown it DELETEs the
/// session.
#[tokio::test]
async fn streamable_http_renews_an_expired_session_and_deletes_it_at_shutdown() {
    let mut srv = NetServer::start(Wire::Http, &[]).await;
    let gw = TestGateway::start(config(&format!("servers:\n{}", srv.yaml("t", 5000)))).await;
    wait_healthy(&gw, "t", Duration::from_secs(10)).await;
    let (status, v, _) = call(&gw, "echo", json!({"text": "one"})).await;
    assert_eq!((status, text(&v)), (200, "one"), "{v}");

    srv.restart().await;
    let (status, v, _) = call(&gw, "echo", json!({"text": "two"})).await;
    assert_eq!(
        (status, text(&v)),
        (200, "two"),
        "the 404 reached the caller: {v}"
    );
    assert_eq!(
        entry(&gw, "t").await["restarts"],
        0,
        "renewed without a reconnect"
    );
    // Calls to the new process run in the renewed session, not a fresh one per call.
    let (status, v, _) = call(&gw, "echo", json!({"text": "three"})).await;
    assert_eq!((status, text(&v)), (200, "three"), "{v}");

    gw.stop().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !srv.stderr().contains("deleted") {
        assert!(
            Instant::now() < deadline,
            "no DELETE at shutdown: {}",
            srv.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// HTTP 500 and a malformed event stream fail the call with a clear upstream error; the
/// server stays usable.
#[tokio::test]
async fn streamable_http_errors_fail_the_call_not_the_server() {
    for (fault, expect) in [
        ("status-500", "HTTP 500"),
        ("bad-sse", "malformed message in the event stream"),
    ] {
        let srv = NetServer::start(Wire::Http, &["--http-fault", fault]).await;
        let gw = TestGateway::start(config(&format!("servers:\n{}", srv.yaml("t", 5000)))).await;
        wait_healthy(&gw, "t", Duration::from_secs(10)).await;
        let (status, v, took) = call(&gw, "error", json!({})).await;
        assert_eq!(status, 502, "{fault}: {v}");
        assert_eq!(v["error"]["code"], "upstream_error", "{fault}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(expect),
            "{fault}: {v}"
        );
        assert!(took < Duration::from_secs(2), "{fault}: {took:?}");
        let (status, v, _) = call(&gw, "echo", json!({"text": "still here"})).await;
        assert_eq!((status, text(&v)), (200, "still here"), "{fault}: {v}");
        gw.stop().await;
    }
}

/// An answer on an event stream the server keeps open after the response reaches the
/// caller at once, and the connection's stream is read to its end without holding up
/// later calls.
#[tokio::test]
async fn answers_on_a_lingering_event_stream_return_at_once() {
    let srv = NetServer::start(Wire::Http, &["--http-fault", "sse-linger"]).await;
    let gw = TestGateway::start(config(&format!("servers:\n{}", srv.yaml("t", 10_000)))).await;
    wait_healthy(&gw, "t", Duration::from_secs(10)).await;
    for i in 0..4 {
        let (status, v, took) = call(&gw, "echo", json!({"text": format!("n{i}")})).await;
        assert_eq!((status, text(&v)), (200, format!("n{i}").as_str()), "{v}");
        // The server ends each stream 3 s after its answer.
        assert!(took < Duration::from_secs(2), "call {i} took {took:?}");
    }
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let (status, v, _) = call(&gw, "echo", json!({"text": "after"})).await;
    assert_eq!((status, text(&v)), (200, "after"), "{v}");
    gw.stop().await;
}

/// An unreachable server does not block start-up: it is shown down and picked up once it
/// listens.
#[tokio::test]
async fn unreachable_server_is_down_then_recovers() {
    for wire in [Wire::Http, Wire::Sse, Wire::Ws] {
        let mut srv = NetServer::start(wire, &[]).await;
        srv.kill().await;
        let started = Instant::now();
        let gw = TestGateway::start(config(&format!("servers:\n{}", srv.yaml("t", 2000)))).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{wire:?}: start blocked"
        );
        let s = entry(&gw, "t").await;
        assert_ne!(s["status"], "healthy", "{wire:?}: {s}");
        let (status, v, _) = call(&gw, "echo", json!({"text": "x"})).await;
        assert!(status == 502 || status == 503, "{wire:?}: {status} {v}");
        srv.restart().await;
        wait_healthy(&gw, "t", Duration::from_secs(15)).await;
        let (status, v, _) = call(&gw, "echo", json!({"text": "up"})).await;
        assert_eq!((status, text(&v)), (200, "up"), "{wire:?}: {v}");
        gw.stop().await;
    }
}

/// A third-party server process on a loopback port; its whole process group is killed on
/// drop (supergateway runs the stdio server as a child).
struct PeerProcess {
    child: std::process::Child,
}

impl PeerProcess {
    fn spawn(program: &str, args: &[String], env: &[(&str, String)]) -> PeerProcess {
        use std::os::unix::process::CommandExt;
        let child = std::process::Command::new(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(root().join("tests/peers"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        PeerProcess { child }
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &group])
            .status();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago (the peers take their port as an argument).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
async fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "{what} never listened on {port}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Node with the loopback preload, running `script` with `args`.
fn node_peer(script: &str, args: &[&str], env: &[(&str, String)]) -> PeerProcess {
    let mut all = vec![
        "--require".to_string(),
        root().join("tests/peers/loopback.js").display().to_string(),
        root()
            .join("tests/peers/node_modules")
            .join(script)
            .display()
            .to_string(),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    PeerProcess::spawn("node", &all, env)
}

/// Real third-party servers over every network transport, listed and called through
/// `POST /api/v1/tools/call`: server-everything over Streamable HTTP and legacy SSE, the
/// Python SDK 2.x in stateless 2026-07-28 mode over Streamable HTTP, and supergateway's
/// WebSocket endpoint in front of server-everything over stdio.
#[tokio::test]
async fn real_peers_over_network_transports() {
    require_peers();
    let everything = "@modelcontextprotocol/server-everything/dist/index.js";
    let supergateway = "supergateway/dist/index.js";
    assert!(
        root()
            .join("tests/peers/node_modules")
            .join(supergateway)
            .exists(),
        "supergateway is missing: run scripts/install-peers.sh"
    );
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let _peers = [
        node_peer(
            everything,
            &["streamableHttp"],
            &[("PORT", ports[0].to_string())],
        ),
        node_peer(everything, &["sse"], &[("PORT", ports[1].to_string())]),
        PeerProcess::spawn(
            &peers_python().display().to_string(),
            &[
                root()
                    .join("tests/peers/py_http_server.py")
                    .display()
                    .to_string(),
                ports[2].to_string(),
            ],
            &[],
        ),
        node_peer(
            supergateway,
            &[
                "--stdio",
                &format!("node {}", everything_js().display()),
                "--outputTransport",
                "ws",
                "--port",
                &ports[3].to_string(),
            ],
            &[],
        ),
    ];
    for (port, what) in ports.iter().zip(["ev-http", "ev-sse", "py-http", "ev-ws"]) {
        wait_listening(*port, what).await;
    }
    let yaml = format!(
        "servers:
  - {{id: ev-http, transport: streamable-http, url: 'http://127.0.0.1:{}/mcp', timeout: 20000}}
  - {{id: ev-sse, transport: sse, url: 'http://127.0.0.1:{}/sse', timeout: 20000}}
  - {{id: py-http, transport: streamable-http, url: 'http://127.0.0.1:{}/mcp', timeout: 20000}}
  - {{id: ev-ws, transport: websocket, url: 'ws://127.0.0.1:{}/message', timeout: 20000}}
",
        ports[0], ports[1], ports[2], ports[3]
    );
    let gw = TestGateway::start(config(&yaml)).await;
    for (id, version) in [
        ("ev-http", "2025-11-25"),
        ("ev-sse", "2025-11-25"),
        ("py-http", "2026-07-28"),
        ("ev-ws", "2025-11-25"),
    ] {
        let s = wait_healthy(&gw, id, Duration::from_secs(30)).await;
        assert_eq!(s["protocolVersion"], version, "{s}");
        assert!(s["toolCount"].as_u64().unwrap() >= 2, "{s}");
    }
    for id in ["ev-http", "ev-sse", "ev-ws"] {
        let calls = (0..5).map(|i| {
            let gw = &gw;
            async move {
                let body = json!({"tool": "echo", "server": id, "arguments": {"message": format!("{id} {i}")}});
                (i, gw.call(body).await)
            }
        });
        for (i, (status, v)) in futures::future::join_all(calls).await {
            assert_eq!(status, 200, "{id}: {v}");
            assert_eq!(text(&v), format!("Echo: {id} {i}"), "{id}");
        }
    }
    let (status, v) = gw
        .call(json!({"tool": "greet", "server": "py-http", "arguments": {"name": "Ada"}}))
        .await;
    assert_eq!((status, text(&v)), (200, "Hello, Ada!"), "{v}");
    let (status, v) = gw
        .call(json!({"tool": "add", "server": "py-http", "arguments": {"a": 2, "b": 3}}))
        .await;
    assert_eq!((status, text(&v)), (200, "5"), "{v}");
    gw.stop().await;
}

/// A strict 2026-07-28 server announces list changes only on `subscriptions/listen`
/// streams; the gateway keeps one open, so a tool added at run time becomes callable.
#[tokio::test]
async fn stateless_list_changes_arrive_through_subscriptions_listen() {
    let yaml = format!(
        "servers:\n{}",
        test_server_yaml("t", &["--generation", "stateless", "--strict-listen"], "")
    );
    let gw = TestGateway::start(config(&yaml)).await;
    let s = wait_healthy(&gw, "t", Duration::from_secs(10)).await;
    assert_eq!(s["protocolVersion"], "2026-07-28", "{s}");
    let (status, v, _) = call(&gw, "add_tool", json!({"name": "late_tool"})).await;
    assert_eq!(status, 200, "{v}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, v, _) = call(&gw, "late_tool", json!({})).await;
        if status == 200 {
            assert_eq!(text(&v), "dynamic late_tool");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "late_tool never became callable: {status} {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gw.stop().await;
}

/// Parses a YAML config like [`config`], with `${VAR}` looked up in `env` instead of the
/// process environment (tests must not set environment variables).
fn config_with_env(yaml: &str, env: &[(&str, &str)]) -> Config {
    let mut cfg = Config::parse(yaml, Format::Yaml, Path::new("test.yml"), |k| {
        env.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.to_string())
    })
    .unwrap_or_else(|e| panic!("test config invalid: {e}"));
    cfg.port = 0;
    cfg.host = "127.0.0.1".into();
    cfg
}

/// Waits until `check` holds for the entry of server `id`, or fails after `limit`.
async fn wait_entry(
    gw: &TestGateway,
    id: &str,
    limit: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let s = entry(gw, id).await;
        if check(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{id}: condition never met: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the server's stderr contains `needle`.
async fn wait_stderr(srv: &NetServer, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = srv.stderr();
        if log.contains(needle) {
            return log;
        }
        assert!(Instant::now() < deadline, "{needle:?} never logged:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A stateless Streamable HTTP server whose tool annotates parameters with `x-mcp-header`
/// gets them mirrored into `Mcp-Param-*` headers (Base64 sentinel for non-ASCII values and
/// for values that look like the sentinel, omitted when absent or null); the server checks
/// every header against the body like a real 2026-07-28 server. Tools whose annotations
/// are invalid are left out of the catalog.
#[tokio::test]
async fn stateless_http_mirrors_x_mcp_header_parameters_and_drops_invalid_tools() {
    let srv = NetServer::start(Wire::HttpStateless, &["--header-tool"]).await;
    let gw = TestGateway::start(config(&format!("servers:\n{}", srv.yaml("t", 5000)))).await;
    let s = wait_healthy(&gw, "t", Duration::from_secs(10)).await;
    // 12 built-ins + `route` and `flip_header`; `bad_number` and `bad_items` are excluded.
    assert_eq!(s["toolCount"], 14, "{s}");
    let (status, v) = gw.get("/api/v1/tools?server=t").await;
    assert_eq!(status, 200, "{v}");
    let names: Vec<&str> = v["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"route"), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("bad_")), "{names:?}");
    let (status, v, _) = call(&gw, "bad_number", json!({"ratio": 0.5})).await;
    assert_ne!(status, 200, "an excluded tool must not be callable: {v}");

    // The server really checks: a call without the mirrored headers is refused.
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
    });
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "route", "arguments": {"region": "us-west1"}, "_meta": meta}});
    let res = gw
        .http
        .post(&srv.url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "route")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32020, "{v}");

    // Through the gateway every form of value passes that check.
    let b64 = |s: &str| {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    };
    let cases = [
        (
            json!({"region": "us-west1", "options": {"limit": 5}, "confirm": true}),
            "region=us-west1 limit=5 confirm=true",
            vec![
                "header mcp-param-region: us-west1".to_string(),
                "header mcp-param-limit: 5".into(),
                "header mcp-param-confirm: true".into(),
            ],
        ),
        (
            json!({"region": "Zürich 東京", "options": {"limit": -7}, "confirm": false}),
            "region=Zürich 東京 limit=-7 confirm=false",
            vec![
                format!("header mcp-param-region: {}", b64("Zürich 東京")),
                "header mcp-param-limit: -7".into(),
                "header mcp-param-confirm: false".into(),
            ],
        ),
        (
            json!({"region": "=?base64?literal?=", "options": {"limit": null}, "note": " x "}),
            "region==?base64?literal?= limit=null confirm=-",
            vec![format!(
                "header mcp-param-region: {}",
                b64("=?base64?literal?=")
            )],
        ),
    ];
    for (args, want, headers) in cases {
        let before = srv.stderr().len();
        let (status, v, _) = call(&gw, "route", args.clone()).await;
        assert_eq!((status, text(&v)), (200, want), "{args}: {v}");
        let log = srv.stderr()[before..].to_string();
        for h in &headers {
            assert!(log.contains(h.as_str()), "{args}: {h:?} not sent:\n{log}");
        }
        let sent = log.matches("header mcp-param-").count();
        assert_eq!(
            sent,
            headers.len(),
            "{args}: absent/null values send no header:\n{log}"
        );
    }
    gw.stop().await;
}

/// Configured `headers` (here `Authorization: Bearer ${TOKEN}`) go with every request of
/// every network transport: POSTs, the GET streams, the session DELETE and the WebSocket
/// upgrade. A server configured with the wrong token is shown down with the 401.
#[tokio::test]
async fn configured_headers_reach_the_upstream_on_every_network_transport() {
    for wire in [Wire::Http, Wire::HttpStateless, Wire::Sse, Wire::Ws] {
        let srv = NetServer::start(wire, &["--require-token", "s3cret"]).await;
        let with_token = |id: &str, var: &str| {
            format!(
                "{}    headers:\n      Authorization: \"Bearer ${{{var}}}\"\n",
                srv.yaml(id, 3000)
            )
        };
        let yaml = format!(
            "servers:\n{}{}",
            with_token("t", "UPSTREAM_TOKEN"),
            with_token("bad", "WRONG_TOKEN")
        );
        let cfg = config_with_env(
            &yaml,
            &[("UPSTREAM_TOKEN", "s3cret"), ("WRONG_TOKEN", "nope")],
        );
        let gw = TestGateway::start(cfg).await;
        wait_healthy(&gw, "t", Duration::from_secs(10)).await;
        let (status, v, _) = call(&gw, "echo", json!({"text": "authorized"})).await;
        assert_eq!((status, text(&v)), (200, "authorized"), "{wire:?}: {v}");
        // A list change travels on the server-to-client channel (GET stream, listen
        // stream, event stream or socket), which must carry the token as well.
        let (status, v, _) = call(&gw, "add_tool", json!({"name": "after_auth"})).await;
        assert_eq!(status, 200, "{wire:?}: {v}");
        let deadline = Instant::now() + Duration::from_secs(5);
        while call(&gw, "after_auth", json!({})).await.0 != 200 {
            assert!(
                Instant::now() < deadline,
                "{wire:?}: the list change never arrived"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let s = wait_entry(&gw, "bad", Duration::from_secs(10), |s| {
            s["error"].as_str().is_some_and(|e| e.contains("401"))
        })
        .await;
        assert_ne!(s["status"], "healthy", "{wire:?}: {s}");
        gw.stop().await;
        // Every 401 the server gave went to the wrongly configured entry.
        let log = srv.stderr();
        let refused: Vec<&str> = log.lines().filter(|l| l.contains(": 401 for ")).collect();
        assert!(!refused.is_empty(), "{wire:?}: {log}");
        assert!(
            refused.iter().all(|l| l.contains("Bearer nope")),
            "{wire:?}: a request went without the configured header:\n{log}"
        );
    }
}

/// A WebSocket server that closes the connection with a close frame (not a crash): calls in
/// flight fail at once with the close code, and the gateway reconnects by itself.
#[tokio::test]
async fn websocket_close_frame_fails_calls_fast_and_reconnects() {
    let srv = NetServer::start(Wire::Ws, &["--ws-close-after-ms", "1500"]).await;
    let gw = TestGateway::start(config(&format!("servers:\n{}", srv.yaml("t", 20_000)))).await;
    wait_healthy(&gw, "t", Duration::from_secs(10)).await;
    let (status, v, took) = call(&gw, "sleep", json!({"ms": 10_000})).await;
    assert_eq!(status, 502, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("closed the websocket (code 1001")),
        "{v}"
    );
    assert!(took < Duration::from_secs(3), "failed after {took:?}");
    assert!(srv.stderr().contains("closing the websocket on purpose"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, v, _) = call(&gw, "echo", json!({"text": "again"})).await;
        if status == 200 {
            assert_eq!(text(&v), "again");
            break;
        }
        assert!(Instant::now() < deadline, "never reconnected: {status} {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = wait_healthy(&gw, "t", Duration::from_secs(5)).await;
    assert!(s["restarts"].as_u64().unwrap() >= 1, "{s}");
    gw.stop().await;
}

/// A WebSocket server that accepts the upgrade without selecting the offered `mcp`
/// subprotocol: the gateway repeats the upgrade without the offer and works normally.
#[tokio::test]
async fn websocket_without_subprotocol_falls_back() {
    let srv = NetServer::start(Wire::Ws, &["--ws-no-subprotocol"]).await;
    let gw = TestGateway::start(config(&format!("servers:\n{}", srv.yaml("t", 5000)))).await;
    let s = wait_healthy(&gw, "t", Duration::from_secs(10)).await;
    assert_eq!(s["toolCount"], 12, "{s}");
    let (status, v, _) = call(&gw, "echo", json!({"text": "no subprotocol"})).await;
    assert_eq!((status, text(&v)), (200, "no subprotocol"), "{v}");
    let log = wait_stderr(&srv, "offering subprotocols []").await;
    let first = log
        .find("offering subprotocols [mcp]")
        .expect("`mcp` offered first");
    assert!(
        first < log.find("offering subprotocols []").unwrap(),
        "{log}"
    );
    assert_eq!(entry(&gw, "t").await["restarts"], 0);
    gw.stop().await;
}

/// Progress from an HTTP upstream (notifications on its event-stream answer) reaches an MCP
/// client of the gateway's `/mcp` endpoint with the client's own token, then the result.
#[tokio::test]
async fn progress_from_an_http_upstream_reaches_the_mcp_client() {
    for wire in [Wire::Http, Wire::HttpStateless] {
        let srv = NetServer::start(wire, &[]).await;
        let gw = TestGateway::start(config(&format!("servers:\n{}", srv.yaml("t", 5000)))).await;
        wait_healthy(&gw, "t", Duration::from_secs(10)).await;
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
            "name": "t__progress",
            "arguments": {"steps": 3},
            "_meta": {
                "progressToken": "client-token",
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "progress-test", "version": "1"},
            },
        }});
        let res = gw
            .http
            .post(gw.url("/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "t__progress")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{wire:?}");
        let ctype = res.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ctype.starts_with("text/event-stream"), "{wire:?}: {ctype}");
        let text = res.text().await.unwrap();
        let messages: Vec<Value> = text
            .split("\n\n")
            .filter_map(|ev| {
                let data: Vec<&str> = ev
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                (!data.is_empty()).then(|| serde_json::from_str(&data.join("\n")).unwrap())
            })
            .collect();
        let (last, progress) = messages.split_last().expect("messages");
        let steps: Vec<u64> = progress
            .iter()
            .map(|p| {
                assert_eq!(p["method"], "notifications/progress", "{wire:?}: {p}");
                assert_eq!(
                    p["params"]["progressToken"], "client-token",
                    "{wire:?}: {p}"
                );
                p["params"]["progress"].as_u64().unwrap()
            })
            .collect();
        assert_eq!(steps, [1, 2, 3], "{wire:?}: {text}");
        assert_eq!(last["id"], 7, "{wire:?}: {last}");
        assert_eq!(
            last["result"]["content"][0]["text"], "progress done (3 steps)",
            "{wire:?}: {last}"
        );
        gw.stop().await;
    }
}

/// Per-caller credentials: the first `credentials` entry that applies to the caller puts its
/// headers on that caller's calls; other callers get the server's own `headers`; the
/// caller's own gateway key never reaches the upstream.
#[tokio::test]
async fn per_caller_credentials_reach_the_upstream_with_their_callers_calls() {
    for wire in [Wire::Http, Wire::HttpStateless] {
        let srv = NetServer::start(wire, &["--whoami"]).await;
        let yaml = format!(
            "auth:\n  strategy: api-key\n  apiKeys:\n    - {{ name: alice, key: alice-gw-key }}\n    - {{ name: bob, key: bob-gw-key, roles: [ops] }}\n    - {{ name: carol, key: carol-gw-key }}\nservers:\n{}    headers:\n      Authorization: \"Bearer shared\"\n    credentials:\n      - {{ subjects: [alice], headers: {{ Authorization: \"Bearer ${{ALICE_UPSTREAM}}\" }} }}\n      - {{ roles: [ops], headers: {{ Authorization: \"Bearer ops-token\", X-Team: ops }} }}\n",
            srv.yaml("t", 3000)
        );
        let cfg = config_with_env(&yaml, &[("ALICE_UPSTREAM", "alice-token")]);
        let gw = TestGateway::start(cfg).await;
        let whoami = |key: &'static str| {
            let http = gw.http.clone();
            let url = gw.url("/api/v1/tools/call");
            async move {
                let v: Value = http
                    .post(url)
                    .bearer_auth(key)
                    .json(&json!({"tool": "t__whoami", "arguments": {}}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                text(&v).to_string()
            }
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while whoami("carol-gw-key").await.is_empty() {
            assert!(Instant::now() < deadline, "{wire:?}: server never ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Concurrent callers each get their own credential.
        let (a, b, c) = tokio::join!(
            whoami("alice-gw-key"),
            whoami("bob-gw-key"),
            whoami("carol-gw-key")
        );
        assert_eq!(a, "Bearer alice-token", "{wire:?}");
        assert_eq!(b, "Bearer ops-token", "{wire:?}");
        assert_eq!(c, "Bearer shared", "{wire:?}");
        gw.stop().await;
        assert!(
            !srv.stderr().contains("gw-key"),
            "{wire:?}: a gateway key reached the upstream"
        );
    }
}

/// A caller's W3C `traceparent` continues to the upstream: as a header to a Streamable HTTP
/// server, in `_meta` to a stdio server; same trace id, the gateway's own parent span id.
/// Without one, nothing is sent.
#[tokio::test]
async fn traceparent_reaches_http_and_stdio_upstreams() {
    let http_srv = NetServer::start(Wire::Http, &["--whoami"]).await;
    let yaml = format!(
        "servers:\n{}{}",
        http_srv.yaml("h", 3000),
        test_server_yaml("s", &["--whoami"], "")
    );
    let gw = TestGateway::start(config(&yaml)).await;
    wait_healthy(&gw, "h", Duration::from_secs(10)).await;
    wait_healthy(&gw, "s", Duration::from_secs(10)).await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let incoming = format!("00-{trace}-00f067aa0ba902b7-01");
    let traced = |tool: &'static str| {
        let req = gw
            .http
            .post(gw.url("/api/v1/tools/call"))
            .header("traceparent", incoming.clone())
            .json(&json!({"tool": tool, "arguments": {}}));
        async move {
            let v: Value = req.send().await.unwrap().json().await.unwrap();
            text(&v).to_string()
        }
    };
    for tool in ["h__trace", "s__trace"] {
        let seen = traced(tool).await;
        let parts: Vec<&str> = seen.split('-').collect();
        assert_eq!(parts.len(), 4, "{tool}: {seen}");
        assert_eq!(
            (parts[0], parts[1], parts[3]),
            ("00", trace, "01"),
            "{tool}: {seen}"
        );
        assert_ne!(
            parts[2], "00f067aa0ba902b7",
            "{tool}: the gateway's own span"
        );
        let (_, v) = gw.call(json!({"tool": tool, "arguments": {}})).await;
        assert_eq!(text(&v), "-", "{tool}: nothing without a caller trace");
    }
    // A 2026-07-28 MCP client may carry it in `_meta`.
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
    "name": "s__trace", "arguments": {},
    "_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
        "traceparent": incoming,
    }}});
    let v: Value = gw
        .http
        .post(gw.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "s__trace")
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seen = v["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(seen.starts_with(&format!("00-{trace}-")), "{v}");
    // The request log ties each traced call to its trace.
    let (_, log) = gw.get("/api/v1/requests?tool=trace").await;
    let traced: Vec<&Value> = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["traceId"] == trace)
        .collect();
    assert_eq!(traced.len(), 3, "{log:#}");
    assert!(
        traced
            .iter()
            .any(|e| e["transport"] == "mcp" && e["requestId"] == "1"),
        "{log:#}"
    );
    gw.stop().await;
}

/// Redirects are not followed (an MCP endpoint is configured, not discovered): the server
/// is shown down with the `Location` to configure instead.
#[tokio::test]
async fn a_redirecting_server_names_the_url_to_configure() {
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(|| async {
            (
                axum::http::StatusCode::TEMPORARY_REDIRECT,
                [(
                    axum::http::header::LOCATION,
                    "http://127.0.0.1:9/elsewhere/mcp",
                )],
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let yaml = format!(
        "servers:\n  - id: r\n    transport: streamable-http\n    url: http://{addr}/mcp\n    timeout: 3000\n"
    );
    let gw = TestGateway::start(config(&yaml)).await;
    let s = wait_entry(&gw, "r", Duration::from_secs(10), |s| {
        s["error"]
            .as_str()
            .is_some_and(|e| e.contains("redirects to"))
    })
    .await;
    let e = s["error"].as_str().unwrap();
    assert!(
        e.contains("http://127.0.0.1:9/elsewhere/mcp") && e.contains("307"),
        "{e}"
    );
    gw.stop().await;
}

/// A message over `maxMessageBytes` fails its call with a clear error well before the
/// call's timeout, on every transport, and the server stays usable (issue 20, item 2). A
/// stdio server that writes without a newline is restarted once it passes four times the
/// limit, instead of being buffered without bound.
#[tokio::test]
async fn oversized_messages_fail_the_call_not_the_gateway() {
    for wire in [
        Wire::Stdio,
        Wire::Http,
        Wire::HttpStateless,
        Wire::Sse,
        Wire::Ws,
    ] {
        let srv = NetServer::start(wire, &[]).await;
        let yaml = format!(
            "maxMessageBytes: 1048576\nservers:\n{}",
            srv.yaml("t", 8000)
        );
        let gw = TestGateway::start(config(&yaml)).await;
        wait_healthy(&gw, "t", Duration::from_secs(10)).await;
        let (status, v, _) = call(&gw, "big", json!({"bytes": 900_000})).await;
        assert_eq!((status, text(&v).len()), (200, 900_000), "{wire:?}");
        let (status, v, took) = call(&gw, "big", json!({"bytes": 3_000_000})).await;
        assert_eq!(status, 502, "{wire:?}: {v}");
        assert_eq!(v["error"]["code"], "upstream_error", "{wire:?}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("maxMessageBytes")
                || v["error"]["message"].as_str().unwrap().contains("too long"),
            "{wire:?}: {v}"
        );
        assert!(took < Duration::from_secs(5), "{wire:?}: {took:?}");
        wait_healthy(&gw, "t", Duration::from_secs(10)).await;
        let (status, v, _) = call(&gw, "echo", json!({"text": "after"})).await;
        assert_eq!((status, text(&v)), (200, "after"), "{wire:?}: {v}");
        if let Wire::Stdio = wire {
            let before = entry(&gw, "t").await["restarts"].as_u64().unwrap();
            let (status, v, took) =
                call(&gw, "big", json!({"bytes": 50_000_000, "flood": true})).await;
            assert_eq!(status, 502, "{v}");
            assert!(v.to_string().contains("without a newline"), "{v}");
            assert!(took < Duration::from_secs(5), "{took:?}");
            let deadline = Instant::now() + Duration::from_secs(10);
            while entry(&gw, "t").await["restarts"].as_u64().unwrap() == before {
                assert!(
                    Instant::now() < deadline,
                    "the flooding server was not restarted"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            wait_healthy(&gw, "t", Duration::from_secs(10)).await;
            let (status, v, _) = call(&gw, "echo", json!({"text": "again"})).await;
            assert_eq!((status, text(&v)), (200, "again"), "{v}");
        }
        gw.stop().await;
    }
}
