//! The network upstream transports end to end: the project's test server over Streamable HTTP
//! (session and stateless generations), legacy HTTP+SSE and WebSocket, each driven through
//! the gateway's REST API with the same checks — discovery with pagination, calls, concurrent
//! calls, a timeout that cancels upstream, the server killed mid-call (an error, never a hang)
//! and recovery when it comes back on the same port — plus the faults specific to each wire.

mod common;
use common::*;
use serde_json::{Value, json};
use std::path::PathBuf;
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
}

impl Wire {
    fn flag(self) -> &'static str {
        match self {
            Wire::Http | Wire::HttpStateless => "--http",
            Wire::Sse => "--sse",
            Wire::Ws => "--ws",
        }
    }

    fn transport(self) -> &'static str {
        match self {
            Wire::Http | Wire::HttpStateless => "streamable-http",
            Wire::Sse => "sse",
            Wire::Ws => "websocket",
        }
    }

    fn generation(self) -> &'static str {
        match self {
            Wire::Http | Wire::Sse => "session",
            Wire::HttpStateless => "stateless",
            Wire::Ws => "both",
        }
    }

    fn stateless(self) -> bool {
        matches!(self, Wire::HttpStateless | Wire::Ws)
    }
}

/// A test server listening on 127.0.0.1, restartable on the same port.
struct NetServer {
    wire: Wire,
    args: Vec<String>,
    child: Child,
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
        let (child, url) = spawn_server(wire, &args, 0, &stderr).await;
        let port = url
            .rsplit_once(':')
            .and_then(|(_, rest)| rest.split('/').next())
            .and_then(|p| p.parse().ok())
            .expect("port in url");
        NetServer {
            wire,
            args,
            child,
            url,
            port,
            stderr,
            _dir: dir,
        }
    }

    async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    async fn restart(&mut self) {
        self.kill().await;
        let (child, url) = spawn_server(self.wire, &self.args, self.port, &self.stderr).await;
        assert_eq!(url, self.url, "restarted on the same port");
        self.child = child;
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// YAML entry pointing the gateway at this server.
    fn yaml(&self, id: &str, timeout_ms: u64) -> String {
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

    // While it is down calls fail fast; once it is back the gateway recovers by itself.
    let (status, v, took) = call(&gw, "echo", json!({"text": "down"})).await;
    assert!(status == 502 || status == 503, "{status} {v}");
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
