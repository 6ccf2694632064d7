//! Configuration reload while the gateway serves: `SIGHUP`, `POST /api/v1/admin/reload` and
//! the file watch all apply a new configuration without a restart and without failing a
//! call. Kept servers keep their process; a removed server is drained, then stopped with its
//! process group; keys and access rules change at the swap; an invalid file changes nothing.

mod common;
use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::process::Child;

const ADMIN: &str = "reload-admin-key";
const BOB_A: &str = "reload-bob-key-a";
const BOB_B: &str = "reload-bob-key-b";
/// Drain bound of the removed server.
const SHUTDOWN_MS: u64 = 3000;

/// Two configurations: `a` has the server `extra`, Bob's key `BOB_A` and may call
/// `keep2__add`; `b` has no `extra`, Bob's key is `BOB_B` and `keep2__add` is denied him.
fn gw_yaml(port: u16, names: &Names, a: bool) -> String {
    let server = |id: &str, name: &str| {
        format!(
            "  - id: {id}\n    command: {:?}\n    args: [\"--name\", {name:?}]\n",
            test_server().display().to_string()
        )
    };
    let mut servers = server("keep1", &names.keep1) + &server("keep2", &names.keep2);
    if a {
        servers += &server("extra", &names.extra);
    }
    let (bob, bob_rule) = if a {
        (BOB_A, "allow: [\"*\"]")
    } else {
        (BOB_B, "allow: [\"*\"]\n    deny: [\"keep2__add\"]")
    };
    format!(
        "port: {port}\nhost: 127.0.0.1\nshutdownTimeout: {SHUTDOWN_MS}\nauth:\n  strategy: api-key\n  apiKeys:\n    - {{name: admin, key: {ADMIN}, roles: [admin]}}\n    - {{name: bob, key: {bob}, roles: [user]}}\naccess:\n  - roles: [admin]\n    allow: [\"*\"]\n  - roles: [user]\n    {bob_rule}\nservers:\n{servers}"
    )
}

/// The `--name` of each test server, found with `pgrep`.
struct Names {
    keep1: String,
    keep2: String,
    extra: String,
}

impl Names {
    fn new(tag: &str) -> Names {
        let name = |s: &str| unique(&format!("reload-{tag}-{s}"));
        Names {
            keep1: name("keep1"),
            keep2: name("keep2"),
            extra: name("extra"),
        }
    }
}

/// Writes `text` the way editors save: to a temporary file, then renamed over `path`.
fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("yml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

struct Gw {
    child: Child,
    base: String,
    log: PathBuf,
    http: reqwest::Client,
}

impl Gw {
    fn spawn(dir: &Path, port: u16, extra_args: &[&str]) -> Gw {
        let log = dir.join("gateway.log");
        let child = spawn_gateway(&dir.join("gw.yml"), &log, extra_args, &[]);
        Gw {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            http: reqwest::Client::new(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn get(&self, path: &str, key: &str) -> (u16, Value) {
        match self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(key)
            .send()
            .await
        {
            Ok(r) => {
                let s = r.status().as_u16();
                (s, r.json().await.unwrap_or_default())
            }
            Err(_) => (0, Value::Null),
        }
    }

    async fn post(&self, path: &str, key: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .expect("POST");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or_default())
    }

    /// How many tools of server `extra` are listed.
    async fn extra_tools(&self) -> usize {
        let (_, v) = self.get("/api/v1/tools", ADMIN).await;
        v["tools"]
            .as_array()
            .map_or(0, |t| t.iter().filter(|t| t["server"] == "extra").count())
    }

    async fn generation(&self) -> u64 {
        self.get("/api/v1/health", ADMIN).await.1["config"]["generation"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Waits until the gateway is up with `n` healthy servers.
    async fn ready(&self, n: u64) {
        let t0 = Instant::now();
        loop {
            let (s, v) = self.get("/api/v1/health", ADMIN).await;
            if s == 200 && v["servers"]["healthy"] == n {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "gateway not ready: {v}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_generation(&self, at_least: u64) {
        let t0 = Instant::now();
        while self.generation().await < at_least {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "generation {at_least} never came\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }
}

/// One MCP session on `/mcp` (session generation), with its id.
async fn mcp_session(gw: &Gw) -> String {
    let r = gw
        .http
        .post(format!("{}/mcp", gw.base))
        .bearer_auth(ADMIN)
        .header("accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "reload-test", "version": "1"}}}),
        )
        .send()
        .await
        .expect("initialize");
    assert_eq!(r.status(), 200);
    let sid = r.headers()["mcp-session-id"].to_str().unwrap().to_string();
    let _ = r.text().await;
    let r = gw
        .http
        .post(format!("{}/mcp", gw.base))
        .bearer_auth(ADMIN)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &sid)
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    sid
}

/// One `tools/call` on `/mcp`; the result's text, or why it failed.
async fn mcp_call(gw: &Gw, sid: &str, id: u64, tool: &str, args: Value) -> Result<String, String> {
    let r = gw
        .http
        .post(format!("{}/mcp", gw.base))
        .bearer_auth(ADMIN)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", sid)
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": args}}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let body = r.text().await.map_err(|e| e.to_string())?;
    // JSON, or an SSE stream whose last `data:` line is the answer.
    let json = body
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or(&body);
    let v: Value = serde_json::from_str(json).map_err(|_| format!("{status}: {body}"))?;
    match v["result"]["content"][0]["text"].as_str() {
        Some(t) if status == 200 && v["result"]["isError"] != true => Ok(t.to_string()),
        _ => Err(format!("{status}: {v}")),
    }
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    failures: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    fn record(&self, r: Result<String, String>, want: &str) {
        match r {
            Ok(t) if t.contains(want) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            other => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut f = self.failures.lock().unwrap();
                if f.len() < 10 {
                    f.push(format!("{other:?}"));
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_reloads_under_load_fail_no_call() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.yml");
    let port = free_port();
    let names = Names::new("load");
    save(&path, &gw_yaml(port, &names, true));
    let gw = Arc::new(Gw::spawn(dir.path(), port, &[]));
    gw.ready(3).await;
    assert_eq!(gw.generation().await, 1);
    let pid1 = pgrep(&names.keep1);
    let pid2 = pgrep(&names.keep2);
    assert_eq!((pid1.len(), pid2.len()), (1, 1), "{pid1:?} {pid2:?}");

    // An MCP client listening on its session stream for list changes.
    let listener_sid = mcp_session(&gw).await;
    let stream = gw
        .http
        .get(format!("{}/mcp", gw.base))
        .bearer_auth(ADMIN)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &listener_sid)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let list_changed = Arc::new(AtomicU64::new(0));
    let heard = list_changed.clone();
    tokio::spawn(async move {
        use futures::StreamExt;
        let mut body = stream.bytes_stream();
        while let Some(Ok(chunk)) = body.next().await {
            let n = String::from_utf8_lossy(&chunk)
                .matches("notifications/tools/list_changed")
                .count();
            heard.fetch_add(n as u64, Ordering::Relaxed);
        }
    });

    // A steady, bounded stream of calls to the servers present in both configurations:
    // two REST clients and two MCP sessions, one call at a time each.
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut clients = Vec::new();
    for c in 0..4u64 {
        let (gw, stop, tally) = (gw.clone(), stop.clone(), tally.clone());
        clients.push(tokio::spawn(async move {
            let sid = if c >= 2 {
                Some(mcp_session(&gw).await)
            } else {
                None
            };
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let (tool, args, want) = if i.is_multiple_of(2) {
                    (
                        "keep1__echo",
                        json!({"text": format!("c{c}-{i}")}),
                        format!("c{c}-{i}"),
                    )
                } else {
                    ("keep2__add", json!({"a": i, "b": 1}), (i + 1).to_string())
                };
                let r = match &sid {
                    None => {
                        let (s, v) = gw
                            .post(
                                "/api/v1/tools/call",
                                ADMIN,
                                json!({"tool": tool, "arguments": args}),
                            )
                            .await;
                        match v["result"]["content"][0]["text"].as_str() {
                            Some(t) if s == 200 => Ok(t.to_string()),
                            _ => Err(format!("{s}: {v}")),
                        }
                    }
                    Some(sid) => mcp_call(&gw, sid, i, tool, args).await,
                };
                tally.record(r, &want);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }

    let mut gone_within = Vec::new();
    let mut reload_ms = Vec::new();
    for round in 1..=20u32 {
        // Odd rounds drop `extra`, even rounds bring it back.
        let with_extra = round.is_multiple_of(2);
        save(&path, &gw_yaml(port, &names, with_extra));
        let t0 = Instant::now();
        if !round.is_multiple_of(2) {
            let ok = std::process::Command::new("kill")
                .args(["-HUP", &gw.pid().to_string()])
                .status()
                .unwrap()
                .success();
            assert!(ok);
            gw.wait_generation(u64::from(round) + 1).await;
        } else {
            let (s, v) = gw.post("/api/v1/admin/reload", ADMIN, json!({})).await;
            assert_eq!(s, 200, "{v}");
            assert_eq!(v["result"], "ok", "{v}");
            assert_eq!(v["generation"], u64::from(round) + 1, "{v}");
            assert_eq!(v["servers"]["added"], json!(["extra"]), "{v}");
            assert_eq!(v["servers"]["unchanged"], json!(["keep1", "keep2"]), "{v}");
            reload_ms.push(v["durationMs"].as_f64().unwrap());
        }
        if with_extra {
            // The added server is started and discovered: its tools are listed.
            let t = Instant::now();
            loop {
                let (_, v) = gw.get("/api/v1/tools?server=extra", ADMIN).await;
                if v["count"].as_u64().unwrap_or(0) > 0 {
                    break;
                }
                assert!(
                    t.elapsed() < Duration::from_secs(20),
                    "extra's tools never came: {v}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // Bob's key and rule are those of `a`; he holds no admin role.
            assert_eq!(gw.get("/api/v1/tools", BOB_B).await.0, 401);
            let (s, v) = gw.post("/api/v1/admin/reload", BOB_A, json!({})).await;
            assert_eq!((s, &v["error"]["code"]), (403, &json!("admin_only")), "{v}");
            let (s, v) = gw
                .post(
                    "/api/v1/tools/call",
                    BOB_A,
                    json!({"tool": "keep2__add", "arguments": {"a": 1, "b": 2}}),
                )
                .await;
            assert_eq!(s, 200, "{v}");
        } else {
            // The removed server's process group is gone within `shutdownTimeout`.
            loop {
                if pgrep(&names.extra).is_empty() {
                    gone_within.push(t0.elapsed());
                    break;
                }
                assert!(
                    t0.elapsed() < Duration::from_millis(SHUTDOWN_MS + 1500),
                    "extra still running {:?} after the reload\n{}",
                    t0.elapsed(),
                    gw.log()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(gw.extra_tools().await, 0);
            // The rotated-out key stops working at the swap; the new one works, under the
            // new rule.
            assert_eq!(gw.get("/api/v1/tools", BOB_A).await.0, 401);
            let (s, v) = gw
                .post(
                    "/api/v1/tools/call",
                    BOB_B,
                    json!({"tool": "keep2__add", "arguments": {"a": 1, "b": 2}}),
                )
                .await;
            assert_eq!(s, 403, "{v}");
            let (s, v) = gw
                .post(
                    "/api/v1/tools/call",
                    BOB_B,
                    json!({"tool": "keep1__echo", "arguments": {"text": "hi"}}),
                )
                .await;
            assert_eq!(s, 200, "{v}");
        }
        assert_eq!(
            pgrep(&names.keep1),
            pid1,
            "keep1 restarted in round {round}"
        );
        assert_eq!(
            pgrep(&names.keep2),
            pid2,
            "keep2 restarted in round {round}"
        );
        if round == 10 {
            // An invalid file in the middle of the stream: an unknown key and a duplicate id.
            let bad = gw_yaml(port, &names, true).replace("shutdownTimeout:", "shutdownTimout:")
                + &format!(
                    "  - id: keep1\n    command: {:?}\n",
                    test_server().display().to_string()
                );
            save(&path, &bad);
            let (s, v) = gw.post("/api/v1/admin/reload", ADMIN, json!({})).await;
            assert_eq!(s, 400, "{v}");
            assert_eq!(v["error"]["code"], "invalid_config", "{v}");
            let errors = v["error"]["reload"]["errors"].to_string();
            assert!(errors.contains("shutdownTimout"), "{errors}");
            assert!(errors.contains("gw.yml"), "{errors}");
            assert!(
                errors.contains("line 3") || errors.contains(":3"),
                "{errors}"
            );
            assert_eq!(v["error"]["reload"]["generation"], 11, "{v}");
            // The same through SIGHUP: logged, nothing changes.
            std::process::Command::new("kill")
                .args(["-HUP", &gw.pid().to_string()])
                .status()
                .unwrap();
            let t = Instant::now();
            while gw.log().matches("configuration reload refused").count() < 2 {
                assert!(t.elapsed() < Duration::from_secs(10), "{}", gw.log());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(gw.log().contains("shutdownTimout"), "{}", gw.log());
            assert_eq!(gw.generation().await, 11);
            assert_eq!(
                gw.get("/api/v1/tools?server=extra", ADMIN).await.1["count"]
                    .as_u64()
                    .map(|n| n > 0),
                Some(true)
            );
            let (_, metrics) = (
                0,
                gw.http
                    .get(format!("{}/metrics", gw.base))
                    .bearer_auth(ADMIN)
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap(),
            );
            assert!(
                metrics
                    .lines()
                    .any(|l| l.starts_with("mcp_gateway_config_reloads_total{")
                        && l.contains("result=\"error\"")
                        && l.ends_with(" 2")),
                "{}",
                metrics
                    .lines()
                    .filter(|l| l.contains("reload"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            // Put the valid `a` back (unchanged content for the gateway: generation 11).
            save(&path, &gw_yaml(port, &names, true));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let (ok, failed) = (
        tally.ok.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    assert_eq!(
        failed,
        0,
        "{failed} failed calls of {}: {:?}\n{}",
        ok + failed,
        tally.failures.lock().unwrap(),
        gw.log()
    );
    assert!(ok > 100, "only {ok} calls were made");
    assert!(
        list_changed.load(Ordering::Relaxed) >= 10,
        "the MCP client heard {} tools/list_changed",
        list_changed.load(Ordering::Relaxed)
    );
    let metrics = gw
        .http
        .get(format!("{}/metrics", gw.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("mcp_gateway_config_reloads_total{")
                && l.contains("result=\"ok\"")
                && l.ends_with(" 20")),
        "{metrics}"
    );
    eprintln!(
        "calls: {ok} ok across 20 reloads; admin reload took {:?} ms; removed server gone after {:?}",
        reload_ms, gone_within
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_flight_on_a_removed_server_finishes() {
    let yaml = format!(
        "servers:\n{}{}",
        test_server_yaml("stay", &[], ""),
        test_server_yaml("slow", &["--name", &unique("reload-slow")], "")
    );
    let gw = TestGateway::start(config(&yaml)).await;
    let gateway = gw.gateway.clone();
    let call = {
        let http = gw.http.clone();
        let url = gw.url("/api/v1/tools/call");
        tokio::spawn(async move {
            let r = http
                .post(url)
                .json(&json!({"tool": "slow__sleep", "arguments": {"ms": 1500}}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = gateway.reload_with(config_without_slow()).await;
    assert!(report.applied(), "{report:?}");
    assert_eq!(report.servers.removed, vec!["slow".to_string()]);
    // New calls no longer find it...
    let (s, _) = gw
        .call(json!({"tool": "slow__echo", "arguments": {"text": "x"}}))
        .await;
    assert_eq!(s, 404);
    // ...but the one in flight finishes with its real result.
    let (s, v) = call.await.unwrap();
    assert_eq!(s, 200, "{v}");
    assert_eq!(text(&v), "slept 1500");
    gw.stop().await;
}

fn config_without_slow() -> mcp_gateway::Config {
    config(&format!("servers:\n{}", test_server_yaml("stay", &[], "")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_watch_picks_up_a_rename_save() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.yml");
    let port = free_port();
    let names = Names::new("watch");
    save(&path, &gw_yaml(port, &names, false));
    let gw = Gw::spawn(dir.path(), port, &["--watch"]);
    gw.ready(2).await;
    save(&path, &gw_yaml(port, &names, true));
    let t0 = Instant::now();
    loop {
        let (_, v) = gw.get("/api/v1/tools?server=extra", ADMIN).await;
        if v["count"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no reload: {v}\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gw.generation().await, 2);
    // A change of the port cannot apply live: reported, the rest applies.
    save(&path, &gw_yaml(free_port(), &names, false));
    gw.wait_generation(3).await;
    assert!(
        gw.log().contains("port changed in the configuration"),
        "{}",
        gw.log()
    );
    assert_eq!(gw.extra_tools().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_counts_survive_a_key_rotation() {
    let yaml = |other: &str| {
        format!(
            "auth:\n  strategy: api-key\n  apiKeys:\n    - {{name: kept, key: kept-key-123}}\n    - {{name: other, key: {other}}}\nrateLimit: {{limit: 5, windowSeconds: 3600}}\nservers:\n{}",
            test_server_yaml("t", &[], "")
        )
    };
    let gw = TestGateway::start(config(&yaml("old-key-456"))).await;
    let remaining = |key: &'static str| {
        let (http, url) = (gw.http.clone(), gw.url("/api/v1/tools"));
        async move {
            let r = http.get(url).bearer_auth(key).send().await.unwrap();
            let left = r
                .headers()
                .get("x-ratelimit-remaining")
                .map(|v| v.to_str().unwrap().to_string());
            (r.status().as_u16(), left)
        }
    };
    for _ in 0..3 {
        assert_eq!(remaining("kept-key-123").await.0, 200);
    }
    let report = gw.gateway.reload_with(config(&yaml("new-key-789"))).await;
    assert!(report.applied(), "{report:?}");
    assert_eq!(report.generation, 2);
    // The rotated-out key is refused; the kept key's budget goes on where it was.
    assert_eq!(remaining("old-key-456").await.0, 401);
    assert_eq!(remaining("new-key-789").await, (200, Some("4".into())));
    assert_eq!(remaining("kept-key-123").await, (200, Some("1".into())));
    // The server was kept: nothing restarted.
    assert_eq!(report.servers.unchanged, vec!["t".to_string()]);
    gw.stop().await;
}
