//! Shared helpers for the integration tests: start a gateway in-process on a free loopback
//! port, locate the test MCP server and the real peers installed by
//! `scripts/install-peers.sh`.

#![allow(dead_code)]

use mcp_gateway::config::{Config, Format};
use mcp_gateway::{Gateway, Started};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Path of the `mcp_test_server` example binary, building it on first use.
pub fn test_server() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            // The gateway binary sits in target/<profile>/; examples in target/<profile>/examples/.
            let bin = PathBuf::from(env!("CARGO_BIN_EXE_mcp-gateway"));
            let path = bin
                .parent()
                .unwrap()
                .join("examples")
                .join("mcp_test_server");
            // `cargo test --test x` does not rebuild examples: make sure the binary is
            // current (a no-op taking a fraction of a second when it is). `--workspace`
            // resolves features as `scripts/test.sh`'s build does; without it the first
            // suite rebuilt the example with the root package's features alone.
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let release = bin.parent().is_some_and(|d| d.ends_with("release"));
            let status = std::process::Command::new(cargo)
                .args([
                    "build",
                    "--quiet",
                    "--workspace",
                    "--example",
                    "mcp_test_server",
                ])
                .args(release.then_some("--release"))
                .current_dir(root())
                .status()
                .expect("cargo build --example mcp_test_server");
            assert!(status.success(), "building the test server failed");
            assert!(path.exists(), "{} missing after the build", path.display());
            path
        })
        .clone()
}

/// A free loopback port (for a gateway process told its port in its config).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A name no other process has (for finding a test's child processes with `pgrep`).
pub fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{tag}-{}-{nanos}", std::process::id())
}

/// Starts the gateway binary on `config` with `args` and `env`, its output (both streams)
/// in `log`; killed when dropped. The port and host come from the config only.
pub fn spawn_gateway(
    config: &Path,
    log: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> tokio::process::Child {
    let file = std::fs::File::create(log).unwrap();
    tokio::process::Command::new(gateway_bin())
        .args(["start", "-c"])
        .arg(config)
        .args(args)
        .envs(env.iter().copied())
        .env_remove("MCP_GATEWAY_PORT")
        .env_remove("MCP_GATEWAY_HOST")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .kill_on_drop(true)
        .spawn()
        .expect("start mcp-gateway")
}

/// Path of the gateway binary.
pub fn gateway_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mcp-gateway"))
}

/// The real peers: node entry of server-filesystem and the Python SDK server.
pub fn fs_server_js() -> PathBuf {
    root().join("tests/peers/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js")
}

/// Python interpreter of the peers' virtualenv.
pub fn peers_python() -> PathBuf {
    root().join("tests/peers/.venv/bin/python")
}

/// Fails with a clear message when the real peers are not installed.
pub fn require_peers() {
    for p in [fs_server_js(), peers_python()] {
        assert!(
            p.exists(),
            "{} is missing: run scripts/install-peers.sh (scripts/test.sh does it for you)",
            p.display()
        );
    }
}

/// Parses a YAML config (with `port: 0` forced so tests never collide).
pub fn config(yaml: &str) -> Config {
    let mut cfg = Config::parse(yaml, Format::Yaml, Path::new("test.yml"), |k| {
        std::env::var(k).ok()
    })
    .unwrap_or_else(|e| panic!("test config invalid: {e}"));
    cfg.port = 0;
    cfg.host = "127.0.0.1".into();
    cfg
}

/// A YAML server entry running the test server with extra args.
pub fn test_server_yaml(id: &str, args: &[&str], extra: &str) -> String {
    let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "  - id: {id}\n    command: {:?}\n    args: [{}]\n{extra}",
        test_server().display().to_string(),
        args.join(", ")
    )
}

/// A started gateway plus an HTTP client pointed at it.
pub struct TestGateway {
    pub gateway: Gateway,
    pub started: Started,
    pub http: reqwest::Client,
}

impl TestGateway {
    pub async fn start(cfg: Config) -> TestGateway {
        let gateway = Gateway::new(cfg).expect("valid config");
        let started = gateway.start().await.expect("gateway starts");
        TestGateway {
            gateway,
            started,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.started.addr, path)
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let res = self.http.get(self.url(path)).send().await.expect("GET");
        let status = res.status().as_u16();
        let body = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
        )
    }

    pub async fn post_raw(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, serde_json::Value) {
        let res = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST");
        let status = res.status().as_u16();
        let body = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
        )
    }

    /// `POST /api/v1/tools/call`.
    pub async fn call(&self, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.post_raw("/api/v1/tools/call", body.to_string()).await
    }

    pub async fn stop(self) {
        self.gateway.stop().await;
    }
}

/// Text of the first content item of a tool result in a REST call answer.
pub fn text(v: &serde_json::Value) -> &str {
    v["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {v}"))
}

/// Entry file of `@modelcontextprotocol/server-everything` (its `bin`); run it with the
/// argument `stdio`.
pub fn everything_js() -> PathBuf {
    root().join("tests/peers/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
}

/// The Python SDK peer script (tools `greet(name)` and `add(a, b)`).
pub fn py_server() -> PathBuf {
    root().join("tests/peers/py_server.py")
}

/// Pids of processes whose full command line contains `pattern` (`pgrep -f`), excluding
/// this test process.
pub fn pgrep(pattern: &str) -> Vec<u32> {
    let out = std::process::Command::new("pgrep")
        .args(["-f", "--", pattern])
        .output()
        .expect("run pgrep");
    let me = std::process::id();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|&p| p != me)
        .collect()
}

/// A throwaway `redis-server` on a loopback port (no persistence), killed on drop.
/// `redis-server` comes from Debian, installed by `scripts/install-peers.sh`.
pub struct RedisServer {
    child: Option<std::process::Child>,
    pub port: u16,
}

impl RedisServer {
    /// Starts one on a free port.
    pub fn start() -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        Self::start_on(port)
    }

    /// Starts one on `port` and waits until it accepts connections.
    pub fn start_on(port: u16) -> RedisServer {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is missing: run scripts/install-peers.sh");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start on port {port}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        RedisServer {
            child: Some(child),
            port,
        }
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts the test server over Streamable HTTP on a free loopback port with extra args;
/// returns the process (killed on drop) and its MCP URL.
pub async fn http_test_server(args: &[&str]) -> (tokio::process::Child, String) {
    let mut cmd = tokio::process::Command::new(test_server());
    cmd.args(args).args(["--http", "0"]);
    spawn_announced(cmd).await
}

/// Spawns a server that prints one `kind url` line once it listens (the test server, the
/// Python peers); returns the process (killed on drop) and the URL.
pub async fn spawn_announced(mut cmd: tokio::process::Command) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the server");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
        .await
        .expect("the server prints its url")
        .unwrap()
        .expect("a `kind url` line");
    let url = line.split_once(' ').expect("`kind url` line").1.to_string();
    (child, url)
}
