//! Upstream health through the whole gateway: a stdio server that hangs (SIGSTOP) goes
//! unhealthy within two check intervals, its calls fail fast with 503 instead of timing out,
//! `/readyz` follows `readiness`, and it is healthy again once it answers (SIGCONT); with
//! `restartAfter` a hung child is replaced and its tools come back.

mod common;
use common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// The one process started with `--name name`.
fn child(name: &str) -> u32 {
    let pids = pgrep(name);
    assert_eq!(pids.len(), 1, "processes named {name}: {pids:?}");
    pids[0]
}

/// Polls `/api/v1/servers/t` until `pred` holds (bounded: a failure names what was seen).
async fn wait_server(gw: &TestGateway, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let (_, v) = gw.get("/api/v1/servers/t").await;
        if pred(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "server never got there: {v:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_hung_server_fails_fast_and_recovers() {
    let name = unique("health-hang");
    let cfg = config(&format!(
        "readiness: all\nhealthCheck:\n  intervalSeconds: 1\n  timeoutMs: 1000\n  degradedLatencyMs: 5000\n  restartAfter: 0\nservers:\n{}",
        test_server_yaml("t", &["--name", &name], "    timeout: 10000\n")
    ));
    let gw = TestGateway::start(cfg).await;
    // Healthy once checked (a loaded machine may make a first check slow: wait it out).
    let v = wait_server(&gw, Duration::from_secs(20), |v| {
        v["health"]["checks"].as_u64() >= Some(1) && v["status"] == "healthy"
    })
    .await;
    assert_eq!(v["health"]["state"], "healthy", "{v:#}");
    assert_eq!(gw.get("/readyz").await.0, 200);
    let pid = child(&name);

    let (_, before) = gw.get("/api/v1/servers/t").await;
    let checks_before = before["health"]["checks"].as_u64().unwrap();
    signal(pid, "-STOP");
    // Unhealthy after two failed checks, i.e. within two intervals (counted in checks, not
    // in wall-clock time; a check may have been in flight when the server stopped).
    let v = wait_server(&gw, Duration::from_secs(15), |v| v["status"] == "unhealthy").await;
    let checks = v["health"]["checks"].as_u64().unwrap() - checks_before;
    assert!(checks <= 3, "{checks} checks to notice: {v:#}");
    assert_eq!(v["health"]["consecutiveFailures"], 2, "{v:#}");
    assert_eq!(v["health"]["state"], "unhealthy", "{v:#}");
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("1000 ms")),
        "{v:#}"
    );
    // Calls fail fast with 503 (the server's own timeout would answer 504 after 10 s).
    let (status, body) = gw
        .call(json!({"tool": "echo", "arguments": {"text": "x"}}))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "upstream_unavailable", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("fail fast")),
        "{body}"
    );
    let (status, body) = gw.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    let (_, health) = gw.get("/api/v1/health").await;
    assert_eq!(health["status"], "unhealthy", "{health}");
    let (_, text) = gw.get("/metrics").await;
    let text = text.as_str().unwrap_or_default().to_string();
    assert!(
        text.contains("mcp_gateway_upstream_health{server=\"t\",state=\"unhealthy\"} 1"),
        "{text}"
    );

    signal(pid, "-CONT");
    wait_server(&gw, Duration::from_secs(15), |v| v["status"] == "healthy").await;
    let (status, body) = gw
        .call(json!({"tool": "echo", "arguments": {"text": "back"}}))
        .await;
    assert_eq!(
        (status, text_of(&body)),
        (200, "back".to_string()),
        "{body}"
    );
    assert_eq!(gw.get("/readyz").await.0, 200);
    assert_eq!(child(&name), pid, "restartAfter: 0 never restarts");
    gw.stop().await;
}

#[tokio::test]
async fn a_hung_stdio_child_is_restarted() {
    let name = unique("health-restart");
    let cfg = config(&format!(
        "healthCheck:\n  intervalSeconds: 1\n  timeoutMs: 1000\n  degradedLatencyMs: 5000\n  restartAfter: 2\nservers:\n{}",
        test_server_yaml("t", &["--name", &name], "")
    ));
    let gw = TestGateway::start(cfg).await;
    wait_server(&gw, Duration::from_secs(20), |v| v["status"] == "healthy").await;
    let pid = child(&name);
    signal(pid, "-STOP");
    // Two failed checks → restarted: a new process, healthy again, tools back.
    let v = wait_server(&gw, Duration::from_secs(20), |v| {
        v["status"] == "healthy" && v["restarts"].as_u64() >= Some(1)
    })
    .await;
    assert!(v["toolCount"].as_u64() >= Some(12), "{v:#}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while pgrep(&name) == vec![pid] {
        assert!(Instant::now() < deadline, "the hung child was not replaced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = gw
        .call(json!({"tool": "echo", "arguments": {"text": "new child"}}))
        .await;
    assert_eq!(
        (status, text_of(&body)),
        (200, "new child".to_string()),
        "{body}"
    );
    assert!(!pgrep(&name).contains(&pid), "the hung child is gone");
    gw.stop().await;
}

fn text_of(v: &Value) -> String {
    text(v).to_string()
}
