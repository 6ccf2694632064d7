//! Tests of the `mcp-gateway` binary itself: `--version`, `--help`, `init`, `validate` and
//! `start` (status lines, REST, SIGTERM shutdown without orphans, env overrides).

mod common;
use common::*;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

/// The gateway binary with no `MCP_GATEWAY_*` variables inherited from the environment.
fn gw(dir: &Path) -> Command {
    let mut c = Command::new(gateway_bin());
    c.current_dir(dir);
    for v in [
        "MCP_GATEWAY_CONFIG",
        "MCP_GATEWAY_PORT",
        "MCP_GATEWAY_HOST",
        "MCP_GATEWAY_LOG_LEVEL",
        "RUST_LOG",
    ] {
        c.env_remove(v);
    }
    c
}

fn run(dir: &Path, args: &[&str]) -> Output {
    gw(dir).args(args).output().expect("run mcp-gateway")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `validate -c <file>` on `text` and returns stderr, asserting exit code 1.
fn validate_fails(dir: &Path, file: &str, text: &str) -> String {
    std::fs::write(dir.join(file), text).unwrap();
    let o = run(dir, &["validate", "-c", file]);
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{file} should be rejected; stdout: {} stderr: {err}",
        stdout(&o)
    );
    assert!(
        err.contains(file),
        "stderr does not name the file {file}: {err}"
    );
    assert!(err.contains("problem(s) found"), "{err}");
    err
}

#[test]
fn version_and_help() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), &["--version"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        format!("mcp-gateway {}", env!("CARGO_PKG_VERSION"))
    );
    let o = run(dir.path(), &["--help"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let help = stdout(&o);
    for word in ["init", "start", "validate", "--version"] {
        assert!(help.contains(word), "--help lacks {word}: {help}");
    }
    for sub in ["init", "start", "validate"] {
        let o = run(dir.path(), &[sub, "--help"]);
        assert!(o.status.success(), "{sub} --help: {}", stderr(&o));
        assert!(
            stdout(&o).contains("--config"),
            "{sub} --help: {}",
            stdout(&o)
        );
    }
    let o = run(dir.path(), &["frobnicate"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("frobnicate"), "{}", stderr(&o));
}

#[test]
fn init_writes_a_valid_config_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mcp-gateway.yml");
    let o = run(dir.path(), &["init"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("mcp-gateway.yml"), "{}", stdout(&o));
    let original = std::fs::read_to_string(&file).expect("init wrote mcp-gateway.yml");
    assert!(original.contains("servers:"), "{original}");

    // validate finds the default file by itself.
    let o = run(dir.path(), &["validate"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("valid (2 servers, 1 enabled)"),
        "{}",
        stdout(&o)
    );
    let o = run(dir.path(), &["validate", "-c", "mcp-gateway.yml"]);
    assert!(o.status.success(), "{}", stderr(&o));

    // A second init must not clobber the (edited) file.
    std::fs::write(&file, format!("{original}\n# my edit\n")).unwrap();
    let o = run(dir.path(), &["init"]);
    assert!(!o.status.success(), "second init succeeded");
    let err = stderr(&o);
    assert!(
        err.contains("--force") && err.contains("already exists"),
        "{err}"
    );
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .ends_with("# my edit\n"),
        "file was overwritten"
    );

    let o = run(dir.path(), &["init", "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);

    // Another path.
    let o = run(dir.path(), &["init", "-c", "other.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(dir.path(), &["validate", "-c", "other.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));

    // No file at all.
    let o = run(dir.path(), &["validate", "-c", "missing.yml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("missing.yml"), "{}", stderr(&o));
}

#[test]
fn validate_names_file_key_path_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let err = validate_fails(
        d,
        "unknown.yml",
        "port: 4000\nservers:\n  - id: a\n    command: x\n    comand: y\n",
    );
    assert!(err.contains("unknown.yml:5:"), "{err}");
    assert!(
        err.contains("servers[0].comand") && err.contains("unknown field"),
        "{err}"
    );

    let err = validate_fails(
        d,
        "type.yml",
        "port: 4000\nservers:\n  - id: a\n    command: x\n    timeout: soon\n",
    );
    assert!(err.contains("type.yml:5:"), "{err}");
    assert!(
        err.contains("servers[0].timeout") && err.contains("soon"),
        "{err}"
    );

    let err = validate_fails(
        d,
        "dup.yml",
        "servers:\n  - id: a\n    command: x\n  - id: a\n    command: y\n",
    );
    assert!(
        err.contains("servers[1].id") && err.contains("duplicate"),
        "{err}"
    );
    assert!(!err.contains("servers[0].id"), "{err}");

    let err = validate_fails(
        d,
        "nocmd.yml",
        "servers:\n  - id: a\n    command: x\n  - id: b\n    transport: stdio\n",
    );
    assert!(
        err.contains("servers[1].command") && err.contains("command"),
        "{err}"
    );

    let err = validate_fails(d, "port.yml", "logLevel: info\nport: 70000\n");
    assert!(
        err.contains("port.yml:2:") && err.contains("port") && err.contains("70000"),
        "{err}"
    );

    let err = validate_fails(
        d,
        "env.yml",
        "servers:\n  - id: a\n    command: x\n    env:\n      TOKEN: ${MCP_GW_TEST_SURELY_UNSET}\n",
    );
    assert!(err.contains("env.yml:5:"), "{err}");
    assert!(
        err.contains("servers[0].env.TOKEN") && err.contains("MCP_GW_TEST_SURELY_UNSET"),
        "{err}"
    );
    // ...and a default or a set variable fixes it.
    std::fs::write(
        d.join("envok.yml"),
        "servers:\n  - id: a\n    command: ${MCP_GW_TEST_SURELY_UNSET:-npx}\n",
    )
    .unwrap();
    let o = run(d, &["validate", "-c", "envok.yml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = gw(d)
        .args(["validate", "-c", "env.yml"])
        .env("MCP_GW_TEST_SURELY_UNSET", "set")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    // Every semantic problem at once.
    let err = validate_fails(
        d,
        "many.yml",
        "servers:\n  - id: a\n    command: x\n    timeout: 0\n  - id: a\n  - id: b__c\n    command: y\n",
    );
    for needle in [
        "servers[0].timeout",
        "servers[1].id",
        "servers[1].command",
        "servers[2].id",
        "4 problem(s) found",
    ] {
        assert!(err.contains(needle), "missing {needle}: {err}");
    }

    // The same checks in JSON and TOML.
    let err = validate_fails(
        d,
        "unknown.json",
        "{\n  \"port\": 4000,\n  \"servers\": [\n    {\"id\": \"a\", \"command\": \"x\", \"comand\": \"y\"}\n  ]\n}\n",
    );
    assert!(
        err.contains("unknown.json:4:") && err.contains("comand"),
        "{err}"
    );
    assert!(err.contains("servers[0]"), "{err}");
    let err = validate_fails(
        d,
        "type.toml",
        "port = 4000\n[[servers]]\nid = \"a\"\ncommand = \"x\"\ntimeout = \"soon\"\n",
    );
    assert!(
        err.contains("type.toml:5:") && err.contains("servers[0].timeout"),
        "{err}"
    );
    let err = validate_fails(d, "port.toml", "logLevel = \"info\"\nport = 70000\n");
    assert!(
        err.contains("port.toml:2:") && err.contains("port"),
        "{err}"
    );
    let err = validate_fails(
        d,
        "dup.json",
        r#"{"servers": [{"id": "a", "command": "x"}, {"id": "a", "command": "y"}]}"#,
    );
    assert!(err.contains("servers[1].id"), "{err}");

    // Unknown extension.
    let err = validate_fails(d, "config.ini", "port = 4000\n");
    assert!(err.contains("extension"), "{err}");
}

#[test]
fn validate_yaml_messages_do_not_repeat_the_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let err = validate_fails(
        dir.path(),
        "unknown.yml",
        "port: 4000\nservers:\n  - id: a\n    command: x\n    comand: y\n",
    );
    let line = err.lines().next().unwrap();
    assert_eq!(
        line.matches("servers[0]").count(),
        1,
        "key path repeated: {line}"
    );
    let err = validate_fails(dir.path(), "port.yml", "port: 70000\n");
    let line = err.lines().next().unwrap();
    assert!(!line.contains("port: port:"), "key path repeated: {line}");
}

#[test]
fn same_document_as_yaml_json_and_toml_validates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let yaml = "port: 4100\nhost: 127.0.0.1\nlogLevel: debug\nmaxBodyBytes: 65536\nmonitor:\n  prometheus: false\nservers:\n  - id: fs\n    command: npx\n    args: [\"-y\", \"server\"]\n    env: { TOKEN: \"${MCP_GW_TEST_TOKEN:-abc}\" }\n    tags: [files]\n    timeout: 5000\n  - id: off\n    command: npx\n    enabled: false\n";
    let json = r#"{
  "port": 4100, "host": "127.0.0.1", "logLevel": "debug", "maxBodyBytes": 65536,
  "monitor": {"prometheus": false},
  "servers": [
    {"id": "fs", "command": "npx", "args": ["-y", "server"], "env": {"TOKEN": "${MCP_GW_TEST_TOKEN:-abc}"}, "tags": ["files"], "timeout": 5000},
    {"id": "off", "command": "npx", "enabled": false}
  ]
}
"#;
    let toml = "port = 4100\nhost = \"127.0.0.1\"\nlogLevel = \"debug\"\nmaxBodyBytes = 65536\n\n[monitor]\nprometheus = false\n\n[[servers]]\nid = \"fs\"\ncommand = \"npx\"\nargs = [\"-y\", \"server\"]\nenv = { TOKEN = \"${MCP_GW_TEST_TOKEN:-abc}\" }\ntags = [\"files\"]\ntimeout = 5000\n\n[[servers]]\nid = \"off\"\ncommand = \"npx\"\nenabled = false\n";
    let mut parsed = Vec::new();
    for (name, text) in [("gw.yml", yaml), ("gw.json", json), ("gw.toml", toml)] {
        std::fs::write(d.join(name), text).unwrap();
        let o = run(d, &["validate", "-c", name]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert_eq!(
            stdout(&o).trim(),
            format!("{name}: valid (2 servers, 1 enabled)")
        );
        let cfg =
            mcp_gateway::Config::load(&d.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        parsed.push(cfg);
    }
    assert_eq!(parsed[0], parsed[1], "YAML and JSON differ");
    assert_eq!(parsed[1], parsed[2], "JSON and TOML differ");
    assert_eq!(parsed[0].servers[0].env["TOKEN"], "abc");
}

/// A running `mcp-gateway start` with its stdout lines.
struct Running {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    /// Lines read so far.
    seen: Vec<String>,
    stderr_file: std::path::PathBuf,
}

impl Running {
    fn spawn(dir: &Path, config: &str, env: &[(&str, String)]) -> Running {
        let mut cmd = gw(dir);
        cmd.args(["start", "-c", config])
            .envs(env.iter().map(|(k, v)| (k, v)));
        Running::spawn_cmd(dir, cmd)
    }

    /// `start -c config` under `prlimit --nofile=SOFT:HARD` (prlimit execs the gateway, so
    /// the pid is the gateway's).
    fn spawn_with_nofile(dir: &Path, config: &str, soft: u32, hard: u32) -> Running {
        let mut cmd = Command::new("prlimit");
        cmd.current_dir(dir)
            .arg(format!("--nofile={soft}:{hard}"))
            .arg("--")
            .arg(gateway_bin())
            .args(["start", "-c", config])
            .env_remove("MCP_GATEWAY_PORT")
            .env_remove("RUST_LOG");
        Running::spawn_cmd(dir, cmd)
    }

    fn spawn_cmd(dir: &Path, cmd: Command) -> Running {
        let stderr_file = dir.join("gateway.stderr");
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_file).unwrap())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn mcp-gateway start");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Running {
            child,
            lines,
            seen: Vec::new(),
            stderr_file,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("still running")
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_file).unwrap_or_default()
    }

    /// Reads stdout until a line contains `needle`; returns every line read so far.
    async fn read_until(&mut self, needle: &str) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !self.seen.iter().any(|l| l.contains(needle)) {
            match tokio::time::timeout_at(deadline, self.lines.next_line()).await {
                Ok(Ok(Some(l))) => self.seen.push(l),
                other => panic!(
                    "no line with {needle:?} ({other:?}); stdout so far: {:#?}\nstderr: {}",
                    self.seen,
                    self.stderr()
                ),
            }
        }
        self.seen.clone()
    }

    /// Sends SIGTERM and waits (bounded) for the exit; returns the exit code.
    async fn sigterm(&mut self) -> Option<i32> {
        let pid = self.pid();
        let ok = Command::new("kill").arg(pid.to_string()).status().unwrap();
        assert!(ok.success(), "kill {pid} failed");
        let start = Instant::now();
        let status = tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "gateway did not exit within 15 s of SIGTERM; stderr: {}",
                    self.stderr()
                )
            })
            .unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "SIGTERM shutdown took {:?}",
            start.elapsed()
        );
        // Drain the rest of stdout.
        while let Ok(Ok(Some(l))) =
            tokio::time::timeout(Duration::from_secs(2), self.lines.next_line()).await
        {
            self.seen.push(l);
        }
        status.code()
    }
}

/// Pids of processes whose command line contains `pattern`.
fn pgrep(pattern: &str) -> Vec<String> {
    let o = Command::new("pgrep")
        .args(["-f", pattern])
        .output()
        .expect("run pgrep");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// A YAML entry for a named test server.
fn entry(id: &str, name: &str, args: &[&str]) -> String {
    test_server_yaml(id, args, &format!("    name: {name}\n"))
}

#[tokio::test]
async fn start_reports_servers_serves_rest_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let tag = format!("orphan-check-{}-start", std::process::id());
    let config = format!(
        "port: {port}\nhost: 127.0.0.1\nservers:\n{}{}  - id: broken\n    name: Broken\n    command: /nonexistent/mcp-gateway-test/no-such-server\n{}",
        entry("alpha", "Alpha", &["--name", &format!("{tag}-alpha")]),
        entry(
            "beta",
            "Beta",
            &["--name", &format!("{tag}-beta"), "--tools", "3"]
        ),
        entry("off", "Off", &["--name", &format!("{tag}-off")])
            .replace("    name: Off\n", "    name: Off\n    enabled: false\n"),
    );
    std::fs::write(dir.path().join("gw.yml"), config).unwrap();
    let mut gw = Running::spawn(dir.path(), "gw.yml", &[]);
    let lines = gw.read_until("REST API").await;
    let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
    assert!(
        has(&format!(
            "mcp-gateway {} listening on http://127.0.0.1:{port}",
            env!("CARGO_PKG_VERSION"),
        )),
        "{lines:#?}"
    );
    // `workers: 0`, the default: one per core.
    assert!(
        has(&match std::thread::available_parallelism().unwrap().get() {
            1 => "  Runtime: 1 worker thread".to_string(),
            n => format!("  Runtime: {n} worker threads"),
        }),
        "{lines:#?}"
    );
    assert!(has("✓ Alpha — 12 tools available"), "{lines:#?}");
    assert!(has("✓ Beta — 15 tools available"), "{lines:#?}");
    let broken = lines
        .iter()
        .find(|l| l.contains("✗ Broken — "))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(
        broken.contains("could not start") && broken.contains("no-such-server"),
        "{broken}"
    );
    assert!(has("- Off — disabled"), "{lines:#?}");

    // REST works.
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let v: Value = http
        .get(format!("{base}/api/v1/servers"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["count"], 4, "{v}");
    let res = http
        .post(format!("{base}/api/v1/tools/call"))
        .json(&json!({"tool": "beta__tool_2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["result"]["content"][0]["text"], "tool_2", "{v}");

    // Two test servers run (the disabled one never started).
    let running = pgrep(&tag);
    assert_eq!(
        running.len(),
        2,
        "expected alpha and beta running: {running:?}"
    );
    assert!(pgrep(&format!("{tag}-off")).is_empty());

    let code = gw.sigterm().await;
    assert_eq!(
        code,
        Some(0),
        "stdout: {:#?}\nstderr: {}",
        gw.seen,
        gw.stderr()
    );
    assert!(
        gw.seen.iter().any(|l| l.contains("shutting down")),
        "{:#?}",
        gw.seen
    );
    let left = pgrep(&tag);
    assert!(
        left.is_empty(),
        "test servers left behind after SIGTERM: {left:?}"
    );
    assert!(
        http.get(format!("{base}/healthz")).send().await.is_err(),
        "still listening after exit"
    );
}

#[tokio::test]
async fn sigterm_lets_in_flight_calls_finish() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let tag = format!("orphan-check-{}-drain", std::process::id());
    let config = format!(
        "port: {port}\nservers:\n{}",
        entry("t", "Sleeper", &["--name", &tag])
    );
    std::fs::write(dir.path().join("gw.yml"), config).unwrap();
    let mut gw = Running::spawn(dir.path(), "gw.yml", &[]);
    gw.read_until("REST API").await;
    let url = format!("http://127.0.0.1:{port}/api/v1/tools/call");
    let call = tokio::spawn(async move {
        let res = reqwest::Client::new()
            .post(url)
            .json(&json!({"tool": "sleep", "arguments": {"ms": 1500}}))
            .send()
            .await
            .expect("in-flight call answered");
        let status = res.status().as_u16();
        (status, res.json::<Value>().await.unwrap())
    });
    // Let the call reach the server before the signal.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let code = gw.sigterm().await;
    let (status, v) = call.await.unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["content"][0]["text"], "slept 1500", "{v}");
    assert_eq!(code, Some(0), "stderr: {}", gw.stderr());
    assert!(pgrep(&tag).is_empty(), "test server left behind");
}

#[tokio::test]
async fn env_port_overrides_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let config_port = free_port();
    let env_port = std::iter::repeat_with(free_port)
        .find(|p| *p != config_port)
        .unwrap();
    let tag = format!("orphan-check-{}-env", std::process::id());
    let config = format!(
        "port: {config_port}\nservers:\n{}",
        entry("t", "T", &["--name", &tag])
    );
    std::fs::write(dir.path().join("gw.yml"), config).unwrap();
    // MCP_GATEWAY_WORKERS=1: the whole gateway on one thread (current-thread scheduler).
    let mut gw = Running::spawn(
        dir.path(),
        "gw.yml",
        &[
            ("MCP_GATEWAY_PORT", env_port.to_string()),
            ("MCP_GATEWAY_WORKERS", "1".to_string()),
        ],
    );
    let lines = gw.read_until("REST API").await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("listening on http://127.0.0.1:{env_port}"))),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l == "  Runtime: 1 worker thread"),
        "{lines:#?}"
    );
    let res = reqwest::get(format!("http://127.0.0.1:{env_port}/api/v1/health"))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    // Calls and the server's stdio traffic run on that one thread too.
    let http = reqwest::Client::new();
    for i in 0..20 {
        let res = http
            .post(format!("http://127.0.0.1:{env_port}/api/v1/tools/call"))
            .json(&json!({"tool": "echo", "arguments": {"text": format!("call {i}")}}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let v: Value = res.json().await.unwrap();
        assert_eq!(
            v["result"]["content"][0]["text"],
            format!("call {i}"),
            "{v}"
        );
    }
    assert!(
        reqwest::get(format!("http://127.0.0.1:{config_port}/healthz"))
            .await
            .is_err(),
        "config port should not be used"
    );
    assert_eq!(gw.sigterm().await, Some(0));
    assert!(pgrep(&tag).is_empty());

    // A bad override is a config error.
    let o = gw_cmd_output(dir.path(), &[("MCP_GATEWAY_PORT", "not-a-port")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("MCP_GATEWAY_PORT"), "{}", stderr(&o));
    let o = gw_cmd_output(dir.path(), &[("MCP_GATEWAY_WORKERS", "many")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("MCP_GATEWAY_WORKERS") && stderr(&o).contains("\"many\""),
        "{}",
        stderr(&o)
    );
}

/// `start -c gw.yml` run to completion (for configs that make it exit at once).
fn gw_cmd_output(dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut c = gw(dir);
    c.args(["start", "-c", "gw.yml"]).stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn start_fails_cleanly_on_bad_config_or_busy_port() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("gw.yml"),
        "servers:\n  - id: a\n    bogus: 1\n",
    )
    .unwrap();
    let o = gw_cmd_output(dir.path(), &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("gw.yml:3:") && stderr(&o).contains("bogus"),
        "{}",
        stderr(&o)
    );

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    std::fs::write(
        dir.path().join("gw.yml"),
        format!("port: {port}\nservers: []\n"),
    )
    .unwrap();
    let o = gw_cmd_output(dir.path(), &[]);
    assert_eq!(o.status.code(), Some(1), "stdout: {}", stdout(&o));
    assert!(
        stderr(&o).contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{}",
        stderr(&o)
    );
    drop(busy);

    // MCP_GATEWAY_CONFIG names the file.
    std::fs::write(dir.path().join("named.yml"), "servers: []\n").unwrap();
    let o = gw(dir.path())
        .arg("validate")
        .env("MCP_GATEWAY_CONFIG", "named.yml")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("named.yml: valid (0 servers, 0 enabled)"),
        "{}",
        stdout(&o)
    );
}

#[tokio::test]
async fn url_credentials_never_show() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // Nothing listens there: every attempt fails with an error that quotes the URL.
    let dead = free_port();
    let config = format!(
        "port: {port}\nhost: 127.0.0.1\nservers:\n\
         \x20 - id: leaky\n    transport: streamable-http\n    url: http://user:PASSWORD1@127.0.0.1:{dead}/mcp?token=TOKEN1\n\
         \x20 - id: leaky-sse\n    transport: sse\n    url: http://user:PASSWORD2@127.0.0.1:{dead}/sse?key=TOKEN2\n\
         \x20 - id: leaky-ws\n    transport: websocket\n    url: ws://user:PASSWORD3@127.0.0.1:{dead}/ws?key=TOKEN3\n"
    );
    std::fs::write(dir.path().join("gw.yml"), config).unwrap();
    let mut gw = Running::spawn(
        dir.path(),
        "gw.yml",
        &[("MCP_GATEWAY_LOG_LEVEL", "debug".into())],
    );
    let banner = gw.read_until("REST API").await.join("\n");
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let servers = http
        .get(format!("{base}/api/v1/servers"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let one = http
        .get(format!("{base}/api/v1/servers/leaky"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let call = http
        .post(format!("{base}/api/v1/tools/call"))
        .json(&json!({"tool": "leaky__x"}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    gw.sigterm().await;
    let logs = gw.stderr();
    for (what, text) in [
        ("banner", &banner),
        ("servers", &servers),
        ("server", &one),
        ("call", &call),
        ("log", &logs),
    ] {
        for secret in ["PASSWORD", "TOKEN"] {
            assert!(!text.contains(secret), "{what} shows {secret}: {text}");
        }
    }
    // The errors are still there, with the URL made safe to show.
    assert!(
        servers.contains("cannot reach http://***@127.0.0.1:") && servers.contains("token=***"),
        "{servers}"
    );
    assert!(logs.contains("***@127.0.0.1"), "{logs}");
}

#[tokio::test]
async fn stdio_servers_die_with_a_killed_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let tag = format!("orphan-check-{}-sigkill", std::process::id());
    // On stdin EOF this server waits ten minutes before it exits: only the parent-death
    // signal can end it in time.
    let config = format!(
        "port: {port}\nhost: 127.0.0.1\nservers:\n{}",
        entry(
            "stubborn",
            "Stubborn",
            &["--name", &tag, "--drain-ms", "600000"]
        ),
    );
    std::fs::write(dir.path().join("gw.yml"), config).unwrap();
    let mut gw = Running::spawn(dir.path(), "gw.yml", &[]);
    gw.read_until("REST API").await;
    assert_eq!(pgrep(&tag).len(), 1, "the server runs");
    let pid = gw.pid();
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    gw.child.wait().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !pgrep(&tag).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the server outlived the killed gateway: {:?}",
            pgrep(&tag)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The open-file limit of process `pid` as (soft, hard), from `/proc`.
fn nofile(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let n: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (n[0], n[1])
}

/// Reads one HTTP/1.1 answer (head and a `Content-Length` body) from `s`, or `None` when
/// the gateway closed the connection first.
async fn read_answer(s: &mut tokio::net::TcpStream) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Some(text);
            }
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                return (!buf.is_empty()).then(|| String::from_utf8_lossy(&buf).into_owned());
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Issue 20, items 3 and 11: under a soft open-file limit the gateway raises it to the
/// hard one; idle sockets beyond the connection cap never stop the probes; idle,
/// partial-header and stalled-body connections are closed in bounded time; and an error
/// answered before the body was read says `Connection: close`.
#[tokio::test]
async fn slow_and_idle_clients_are_bounded_and_the_probes_keep_answering() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = format!(
        "port: {port}\nhost: 127.0.0.1\nconnections: {{ headerTimeout: 10000, bodyTimeout: 1000 }}\n\
         auth:\n  strategy: api-key\n  apiKeys:\n    - {{ name: a, key: k1 }}\nservers:\n{}",
        test_server_yaml("t", &[], "")
    );
    std::fs::write(dir.path().join("gw.yml"), config).unwrap();
    // Soft 400 of hard 700: raised to 700, so the cap is 525.
    let mut gw = Running::spawn_with_nofile(dir.path(), "gw.yml", 400, 700);
    gw.read_until("REST API").await;
    assert_eq!(
        nofile(gw.pid()),
        (700, 700),
        "the soft limit was not raised"
    );
    let addr = format!("127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let base = format!("http://{addr}");

    // 800 idle sockets: more than the cap and its overflow.
    let mut idle = Vec::new();
    let connecting = Instant::now();
    for _ in 0..800 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    // The kernel may delay some handshakes by a SYN retransmit (1 s each).
    eprintln!("800 sockets connected in {:?}", connecting.elapsed());
    let probed = Instant::now();
    let mut healthy = false;
    while probed.elapsed() < Duration::from_secs(3) {
        // A new client per try: a fresh connection, as a probe makes.
        let c = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        if let Ok(r) = c.get(format!("{base}/healthz")).send().await
            && r.status() == 200
        {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        healthy,
        "/healthz did not answer with 800 idle sockets open; stderr: {}",
        gw.stderr()
    );
    // What is not a probe is refused clearly while the cap is reached.
    let c = reqwest::Client::new();
    if let Ok(r) = c
        .get(format!("{base}/api/v1/servers"))
        .header("x-api-key", "k1")
        .send()
        .await
    {
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        assert!(
            status == 503 && body.contains("overloaded"),
            "{status} {body}"
        );
    }
    // The idle sockets are closed once headerTimeout (10 s) passes.
    use tokio::io::AsyncReadExt;
    let mut byte = [0u8; 1];
    for s in idle.iter_mut().take(20) {
        let r = tokio::time::timeout(Duration::from_secs(15), s.read(&mut byte)).await;
        assert!(
            matches!(r, Ok(Ok(0)) | Ok(Err(_))),
            "an idle socket stayed open: {r:?}"
        );
    }
    drop(idle);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = http
        .get(format!("{base}/api/v1/servers"))
        .header("x-api-key", "k1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Partial headers: closed within headerTimeout.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /api/v1/servers HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(15), s.read(&mut byte)).await;
    assert!(
        matches!(r, Ok(Ok(_)) | Ok(Err(_))),
        "a partial header stayed open: {r:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // A stalled body: 408 after bodyTimeout, and the connection is closed.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"POST /api/v1/tools/call HTTP/1.1\r\nHost: x\r\nx-api-key: k1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"tool\"").await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), read_answer(&mut s))
        .await
        .expect("no answer to a stalled body")
        .expect("closed without an answer");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("request_timeout") && answer.contains("bodyTimeout"),
        "{answer}"
    );
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );

    // A 401 sent before the body was read says so.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"POST /api/v1/tools/call HTTP/1.1\r\nHost: x\r\nx-api-key: wrong\r\ncontent-type: application/json\r\ncontent-length: 30\r\n\r\n").await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), read_answer(&mut s))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    gw.sigterm().await;
}
