//! Request detail and replay end to end: captured bodies redacted before they are stored
//! (and the secret nowhere in answers, metrics or the gateway's log), replays with
//! replaced and merge-patched arguments and their diffs, who may see and replay what,
//! the per-entry and total bounds of captured bodies, the queued / upstream timing
//! breakdown, and the `mcp-gateway requests` CLI against a running gateway.

mod common;
use common::*;
use serde_json::{Value, json};
use std::time::Duration;

const SECRET: &str = "s3cr3t";
const ALICE: &str = "alice-key-0001";
const BOB: &str = "bob-key-0002";
const ROOT: &str = "root-key-0003";
const AUDITOR: &str = "auditor-key-0004";

/// A client for one caller.
struct As<'a> {
    gw: &'a TestGateway,
    key: &'a str,
}

impl As<'_> {
    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let res = req.header("x-api-key", self.key).send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.gw.http.get(self.gw.url(path))).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.gw.http.post(self.gw.url(path)).json(&body))
            .await
    }

    async fn call(&self, tool: &str, arguments: Value) -> (u16, Value) {
        self.post(
            "/api/v1/tools/call",
            json!({"tool": tool, "arguments": arguments}),
        )
        .await
    }

    /// The id of this caller's newest log entry.
    async fn last_id(&self) -> u64 {
        let (status, v) = self.get("/api/v1/requests?limit=1").await;
        assert_eq!(status, 200, "{v}");
        v["requests"][0]["id"].as_u64().expect("an entry")
    }

    async fn detail(&self, id: u64) -> (u16, Value) {
        self.get(&format!("/api/v1/requests/{id}")).await
    }

    async fn replay(&self, id: u64, body: Value) -> (u16, Value) {
        self.post(&format!("/api/v1/requests/{id}/replay"), body)
            .await
    }
}

fn auth_yaml() -> String {
    format!(
        "auth:\n  strategy: api-key\n  adminRoles: [admin, auditor]\n  apiKeys:\n\
         \x20   - {{ name: alice, key: {ALICE}, roles: [user] }}\n\
         \x20   - {{ name: bob, key: {BOB}, roles: [user] }}\n\
         \x20   - {{ name: root, key: {ROOT}, roles: [admin] }}\n\
         \x20   - {{ name: auditor, key: {AUDITOR}, roles: [auditor] }}\n\
         defaultAccess: allow\n\
         access:\n  - {{ roles: [auditor], deny: [\"t__echo\"] }}\n"
    )
}

fn error_code(v: &Value) -> &str {
    v["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {v}"))
}

#[tokio::test]
async fn captured_calls_are_redacted_and_replayed_by_who_may() {
    let yaml = format!(
        "{}monitor:\n  captureBodies: all\nservers:\n{}",
        auth_yaml(),
        test_server_yaml("t", &[], "")
    );
    let gw = TestGateway::start(config(&yaml)).await;
    let (alice, bob, root, auditor) = (
        As {
            gw: &gw,
            key: ALICE,
        },
        As { gw: &gw, key: BOB },
        As { gw: &gw, key: ROOT },
        As {
            gw: &gw,
            key: AUDITOR,
        },
    );

    // A call with a secret in its arguments: stored with the secret redacted.
    let (status, v) = alice
        .call(
            "t__echo",
            json!({"text": "hi", "path": "/tmp/x", "token": SECRET}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let a = alice.last_id().await;
    let (status, d) = alice.detail(a).await;
    assert_eq!(status, 200, "{d}");
    let r = &d["request"];
    assert_eq!(
        r["arguments"],
        json!({"text": "hi", "path": "/tmp/x", "token": "[REDACTED]"}),
        "{d}"
    );
    assert_eq!(
        r["capture"],
        json!({"arguments": "redacted", "result": "full", "redacted": ["/arguments/token"]})
    );
    assert_eq!(r["result"]["content"][0]["text"], "hi");
    for (k, want) in [
        ("id", json!(a)),
        ("method", json!("tools/call")),
        ("server", json!("t")),
        ("tool", json!("echo")),
        ("qualifiedName", json!("t__echo")),
        ("identity", json!("alice")),
        ("transport", json!("rest")),
        ("outcome", json!("ok")),
        ("status", json!(200)),
        ("retries", json!(0)),
    ] {
        assert_eq!(r[k], want, "{k} in {d}");
    }
    assert!(
        r["protocol"].as_str().is_some_and(|p| p.starts_with("20")),
        "{d}"
    );
    assert!(r.get("replayOf").is_none());
    let t = &r["timings"];
    let ms = |k: &str| t[k].as_f64().unwrap_or_else(|| panic!("{k} in {t}"));
    assert!(
        ms("queuedMs") + ms("upstreamMs") <= ms("totalMs") + 0.001,
        "{t}"
    );

    // The secret is in no answer, no metric.
    let mut seen = Vec::new();
    for who in [&alice, &root] {
        seen.push(who.get("/api/v1/requests").await.1.to_string());
        seen.push(who.detail(a).await.1.to_string());
    }
    seen.push(root.get("/api/v1/metrics").await.1.to_string());
    seen.push(root.get("/metrics").await.1.to_string());
    for s in &seen {
        assert!(!s.contains(SECRET), "the secret leaked: {s}");
    }

    // Redacted arguments are not what was sent: no replay without new ones.
    let (status, v) = alice.replay(a, json!({})).await;
    assert_eq!((status, error_code(&v)), (409, "not_replayable"), "{v}");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("redacted") && m.contains("/arguments/token"),
        "{m}"
    );
    let (status, v) = alice.replay(a, json!({"patch": {"text": "x"}})).await;
    assert_eq!(status, 409, "a patch cannot restore a redacted value: {v}");
    // An empty body is the same as `{}`.
    let res = gw
        .http
        .post(gw.url(&format!("/api/v1/requests/{a}/replay")))
        .header("x-api-key", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    // With the arguments given in full, it goes.
    let (status, v) = alice
        .replay(
            a,
            json!({"arguments": {"text": "bye", "path": "/tmp/x", "token": "n3w-s3cr3t"}}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["replayOf"], a);
    assert_eq!(v["result"]["content"][0]["text"], "bye");
    assert_eq!(
        v["diff"],
        json!({"added": [], "removed": [], "changed": [
            {"path": "/content/0/text", "from": "hi", "to": "bye"}]})
    );
    let (_, log) = root.get("/api/v1/requests").await;
    assert!(!log.to_string().contains("n3w-s3cr3t"), "{log}");
    // Malformed replay bodies.
    for (body, want) in [
        (json!({"arguments": {}, "patch": {}}), "not both"),
        (json!({"arguments": [1]}), "JSON object"),
        (json!({"argumnets": {}}), "unknown field"),
    ] {
        let (status, v) = alice.replay(a, body).await;
        assert_eq!(status, 400, "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(want),
            "{v}"
        );
    }

    // A call captured whole: replay with a patch changes one argument.
    let (status, _) = alice
        .call("t__echo", json!({"text": "one", "path": "/p"}))
        .await;
    assert_eq!(status, 200);
    let b = alice.last_id().await;
    let (status, v) = alice.replay(b, json!({"patch": {"text": "two"}})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["content"][0]["text"], "two");
    assert_eq!(
        v["diff"],
        json!({"added": [], "removed": [], "changed": [
            {"path": "/content/0/text", "from": "one", "to": "two"}]})
    );
    assert_eq!(
        (v["server"].as_str(), v["tool"].as_str()),
        (Some("t"), Some("echo"))
    );
    let c = v["id"].as_u64().expect("the replay's own entry");
    assert!(c > b);
    let (_, d) = alice.detail(c).await;
    let r = &d["request"];
    assert_eq!(r["replayOf"], b, "{d}");
    assert_eq!(r["identity"], "alice");
    assert_eq!(r["arguments"], json!({"text": "two", "path": "/p"}));
    assert_eq!(r["capture"]["arguments"], "full");
    // The list carries the mark too, and `after` polls what is new.
    let (_, log) = alice.get(&format!("/api/v1/requests?after={b}")).await;
    let ids: Vec<u64> = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [c], "{log}");
    assert_eq!(log["requests"][0]["replayOf"], b);
    // Replayed unchanged: no differences.
    let (status, v) = alice.replay(b, json!(null)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["diff"],
        json!({"added": [], "removed": [], "changed": []})
    );

    // Another caller's call: not without an admin role.
    let (status, v) = bob.replay(b, json!({})).await;
    assert_eq!((status, error_code(&v)), (403, "admin_only"), "{v}");
    let (status, v) = bob.detail(b).await;
    assert_eq!((status, error_code(&v)), (403, "admin_only"), "{v}");
    let (_, log) = bob.get("/api/v1/requests").await;
    assert_eq!(log["count"], 0, "bob sees only his own: {log}");
    // An admin may, and the replay is theirs.
    let (status, v) = root.replay(b, json!({})).await;
    assert_eq!(status, 200, "{v}");
    let (_, d) = root.detail(v["id"].as_u64().unwrap()).await;
    assert_eq!(d["request"]["identity"], "root", "{d}");
    // An admin whose access rules deny the tool: the replayer's rules apply.
    let (status, v) = auditor.replay(b, json!({})).await;
    assert_eq!((status, error_code(&v)), (403, "forbidden"), "{v}");
    let denied = v["error"]["replay"]["id"].as_u64().expect("logged");
    assert_eq!(v["error"]["replay"]["replayOf"], b);
    let (_, d) = root.detail(denied).await;
    assert_eq!(
        (
            d["request"]["outcome"].as_str(),
            d["request"]["replayOf"].as_u64()
        ),
        (Some("forbidden"), Some(b)),
        "{d}"
    );

    // A failing call replays to the same failure, shaped like tools/call's.
    let (status, _) = alice.call("t__error", json!({})).await;
    assert_eq!(status, 502);
    let e = alice.last_id().await;
    let (status, v) = alice.replay(e, json!({})).await;
    assert_eq!((status, error_code(&v)), (502, "upstream_error"), "{v}");
    assert!(v["error"]["upstream"]["code"].is_number(), "{v}");
    assert_eq!(v["error"]["replay"]["replayOf"], e);
    // A tool error is a result: replayed, and compared.
    alice.call("t__fail", json!({})).await;
    let f = alice.last_id().await;
    let (status, v) = alice.replay(f, json!({})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["isError"], true);
    assert_eq!(v["diff"]["changed"], json!([]));

    // Unknown ids.
    for id in ["999999", "abc", "-1"] {
        let (status, v) = alice.get(&format!("/api/v1/requests/{id}")).await;
        assert_eq!((status, error_code(&v)), (404, "unknown_request"), "{v}");
        let (status, _) = alice
            .post(&format!("/api/v1/requests/{id}/replay"), json!({}))
            .await;
        assert_eq!(status, 404);
    }
    // Authentication covers the new routes.
    let (status, _) = gw.get(&format!("/api/v1/requests/{b}")).await;
    assert_eq!(status, 401);
    gw.stop().await;
}

#[tokio::test]
async fn capture_bounds_and_modes_hold() {
    let yaml = format!(
        "monitor:\n  captureBodies: all\n  maxBodyBytes: 256\n  captureBytes: 1024\n\
         \x20 redactPointers: [\"/arguments/note\", \"/result/content/*/annotations\"]\n\
         servers:\n{}",
        test_server_yaml("t", &[], "")
    );
    let gw = TestGateway::start(config(&yaml)).await;
    // Larger than maxBodyBytes: cut, marked, not replayable as it was.
    let big = "x".repeat(1000);
    let (status, _) = gw
        .call(json!({"tool": "echo", "arguments": {"text": big}}))
        .await;
    assert_eq!(status, 200);
    let (_, log) = gw.get("/api/v1/requests?limit=1").await;
    let id = log["requests"][0]["id"].as_u64().unwrap();
    let (_, d) = gw.get(&format!("/api/v1/requests/{id}")).await;
    let r = &d["request"];
    assert_eq!(
        (
            r["capture"]["arguments"].as_str(),
            r["capture"]["result"].as_str()
        ),
        (Some("truncated"), Some("truncated")),
        "{d}"
    );
    let cut = r["arguments"].as_str().expect("kept as a string");
    assert!(cut.ends_with('…') && cut.len() <= 256 + 3, "{cut}");
    let (status, v) = gw
        .post_raw(&format!("/api/v1/requests/{id}/replay"), "{}")
        .await;
    assert_eq!(status, 409, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("maxBodyBytes")
    );
    // Replayed with new arguments: no diff against a cut result, and it says why.
    let (status, v) = gw
        .post_raw(
            &format!("/api/v1/requests/{id}/replay"),
            json!({"arguments": {"text": "short"}}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["diff"], Value::Null);
    assert!(
        v["diffUnavailable"].as_str().unwrap().contains("cut"),
        "{v}"
    );

    // Pointers redact what no key pattern names.
    gw.call(json!({"tool": "echo", "arguments": {"text": "a", "note": "private"}}))
        .await;
    let (_, log) = gw.get("/api/v1/requests?limit=1").await;
    assert_eq!(
        log["requests"][0]["arguments"]["note"], "[REDACTED]",
        "{log}"
    );

    // Many calls: the total stays within captureBytes, the oldest bodies go first.
    for i in 0..12 {
        let (status, _) = gw
            .call(json!({"tool": "echo", "arguments": {"text": format!("{i:03}{}", "y".repeat(100))}}))
            .await;
        assert_eq!(status, 200);
    }
    let (_, log) = gw.get("/api/v1/requests?limit=100").await;
    let entries = log["requests"].as_array().unwrap();
    let bytes: usize = entries
        .iter()
        .flat_map(|e| [&e["arguments"], &e["result"]])
        .filter(|b| !b.is_null())
        .map(|b| b.to_string().len())
        .sum();
    assert!(bytes <= 1024, "{bytes} bytes of bodies kept");
    assert_eq!(
        entries[0]["capture"]["arguments"], "full",
        "the newest keeps its own"
    );
    let oldest = entries.last().unwrap();
    assert_eq!(oldest["capture"]["arguments"], "dropped", "{oldest}");
    assert!(oldest.get("arguments").is_none());
    // Dropped once, dropped for good: the states go newest-kept, oldest-dropped.
    let states: Vec<&str> = entries
        .iter()
        .map(|e| e["capture"]["arguments"].as_str().unwrap())
        .collect();
    let first_dropped = states.iter().position(|s| *s == "dropped").unwrap();
    assert!(
        states[first_dropped..].iter().all(|s| *s == "dropped"),
        "{states:?}"
    );
    let (status, v) = gw
        .post_raw(&format!("/api/v1/requests/{}/replay", oldest["id"]), "{}")
        .await;
    assert_eq!(status, 409, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("captureBytes")
    );
    gw.stop().await;

    // `errors`: only calls that did not end `ok` keep their bodies.
    let yaml = format!(
        "monitor:\n  captureBodies: errors\nservers:\n{}",
        test_server_yaml("t", &[], "")
    );
    let gw = TestGateway::start(config(&yaml)).await;
    gw.call(json!({"tool": "echo", "arguments": {"text": "fine"}}))
        .await;
    gw.call(json!({"tool": "fail", "arguments": {"why": "test"}}))
        .await;
    let (_, log) = gw.get("/api/v1/requests").await;
    let (failed, ok) = (&log["requests"][0], &log["requests"][1]);
    assert_eq!(
        ok["capture"],
        json!({"arguments": "none", "result": "none"}),
        "{log}"
    );
    assert!(ok.get("arguments").is_none());
    assert_eq!(failed["outcome"], "tool_error");
    assert_eq!(failed["arguments"], json!({"why": "test"}));
    assert_eq!(failed["result"]["isError"], true);
    let (status, v) = gw
        .post_raw(&format!("/api/v1/requests/{}/replay", ok["id"]), "{}")
        .await;
    assert_eq!(status, 409, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not captured")
    );
    gw.stop().await;

    // `logBodies: true`, the older spelling, still means `all`.
    let yaml = format!(
        "monitor:\n  logBodies: true\nservers:\n{}",
        test_server_yaml("t", &[], "")
    );
    let gw = TestGateway::start(config(&yaml)).await;
    gw.call(json!({"tool": "echo", "arguments": {"text": "kept"}}))
        .await;
    let (_, log) = gw.get("/api/v1/requests").await;
    assert_eq!(log["requests"][0]["arguments"], json!({"text": "kept"}));
    gw.stop().await;
}

#[tokio::test]
async fn timings_show_the_wait_for_a_concurrency_slot() {
    let yaml = format!(
        "servers:\n{}",
        test_server_yaml("t", &[], "    maxConcurrency: 1\n")
    );
    let gw = TestGateway::start(config(&yaml)).await;
    // Two calls of 600 ms each race for the server's one slot: whichever gets it second
    // waits for the other (sent 50 ms apart so that the first one is usually first, but
    // nothing below depends on which one wins).
    let sleep = || gw.call(json!({"tool": "sleep", "arguments": {"ms": 600}}));
    let second = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        sleep().await
    };
    let ((s1, _), (s2, _)) = tokio::join!(sleep(), second);
    assert_eq!((s1, s2), (200, 200));
    let (_, log) = gw.get("/api/v1/requests?tool=sleep").await;
    let entries = log["requests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{log}");
    let timings = |e: &Value| {
        let t = &e["timings"];
        let ms = |k: &str| t[k].as_f64().unwrap_or_else(|| panic!("{k} in {e}"));
        (ms("queuedMs"), ms("upstreamMs"), ms("totalMs"))
    };
    let (a, b) = (timings(&entries[0]), timings(&entries[1]));
    let (ran, waited) = if a.0 < b.0 { (a, b) } else { (b, a) };
    for (q, u, t) in [ran, waited] {
        assert!(q >= 0.0 && q + u <= t + 0.001, "{q} + {u} > {t}");
        assert!(u >= 600.0, "the upstream slept 600 ms, took {u}");
    }
    // The one that waited did so for most of the other's 600 ms.
    assert!(
        waited.0 >= 300.0,
        "queued only {} ms behind a 600 ms call: {log}",
        waited.0
    );
    assert!(waited.2 >= waited.0 + 600.0, "{waited:?}");
    gw.stop().await;
}

/// A free loopback port (bound and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `mcp-gateway requests ...` with `env`; returns (success, stdout, stderr).
async fn cli(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = tokio::process::Command::new(gateway_bin());
    cmd.arg("requests")
        .args(args)
        .env_remove("MCP_GATEWAY_API_KEY")
        .env_remove("MCP_GATEWAY_URL")
        .env_remove("MCP_GATEWAY_CONFIG")
        .env_remove("MCP_GATEWAY_PORT")
        .env_remove("MCP_GATEWAY_HOST");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the CLI finishes")
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_requests_cli_lists_shows_and_replays() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = dir.path().join("gw.yml");
    // Debug logging: the secret must not reach the gateway's log even then.
    std::fs::write(
        &cfg,
        format!(
            "port: {port}\nhost: 127.0.0.1\nlogLevel: debug\n\
             auth:\n  strategy: api-key\n  apiKeys:\n    - {{ name: root, key: {ROOT}, roles: [admin] }}\n\
             monitor:\n  captureBodies: all\nservers:\n{}",
            test_server_yaml("t", &[], "")
        ),
    )
    .unwrap();
    let log_path = dir.path().join("gw.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let mut gateway = tokio::process::Command::new(gateway_bin())
        .args(["start", "-c"])
        .arg(&cfg)
        .env_remove("MCP_GATEWAY_PORT")
        .env_remove("MCP_GATEWAY_HOST")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .kill_on_drop(true)
        .spawn()
        .expect("start mcp-gateway");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut ready = false;
    // Up to a minute: a loaded machine may take its time to start both processes.
    for _ in 0..600 {
        let r = http
            .get(format!("{base}/api/v1/tools"))
            .bearer_auth(ROOT)
            .send()
            .await;
        if let Ok(r) = r
            && let Ok(v) = r.json::<Value>().await
            && v["count"].as_u64().unwrap_or(0) > 0
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ready,
        "gateway up: {}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    let call = |args: Value| {
        http.post(format!("{base}/api/v1/tools/call"))
            .bearer_auth(ROOT)
            .json(&json!({"tool": "t__echo", "arguments": args}))
            .send()
    };
    assert!(
        call(json!({"text": "one", "token": SECRET}))
            .await
            .unwrap()
            .status()
            .is_success()
    );
    assert!(
        call(json!({"text": "two", "path": "/p"}))
            .await
            .unwrap()
            .status()
            .is_success()
    );

    let url = ["--url", base.as_str()];
    // Without a key: refused, and told how to fix it.
    let (ok, _, err) = cli(&url, &[]).await;
    assert!(
        !ok && err.contains("401") && err.contains("--api-key"),
        "{err}"
    );
    // With --api-key: a table.
    let (ok, out, err) = cli(&[&url[..], &["--api-key", ROOT]].concat(), &[]).await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("OUTCOME"),
        "{out}"
    );
    assert_eq!(lines.len(), 3, "header and two calls: {out}");
    assert!(
        lines[1].contains("echo") && lines[1].contains("root") && lines[1].contains("ok"),
        "{out}"
    );
    let first: u64 = lines[1].split_whitespace().next().unwrap().parse().unwrap();
    let second: u64 = lines[2].split_whitespace().next().unwrap().parse().unwrap();
    assert!(first < second, "oldest first: {out}");
    // The key from the environment, the address from the config file, JSON out.
    let cfg_arg = cfg.to_str().unwrap();
    let (ok, out, err) = cli(
        &["-c", cfg_arg, "--json", "--tool", "echo"],
        &[("MCP_GATEWAY_API_KEY", ROOT)],
    )
    .await;
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v.as_array().map(Vec::len), Some(2), "{v}");
    let (ok, out, _) = cli(
        &["-c", cfg_arg, "--status", "error"],
        &[("MCP_GATEWAY_API_KEY", ROOT)],
    )
    .await;
    assert!(ok && out.contains("no requests logged that match"), "{out}");

    // show: the detail, redacted.
    let env = [
        ("MCP_GATEWAY_API_KEY", ROOT),
        ("MCP_GATEWAY_URL", base.as_str()),
    ];
    let (ok, out, err) = cli(&["show", &first.to_string()], &env).await;
    assert!(ok, "{err}");
    for want in [
        "Request",
        "caller      root",
        "t__echo",
        "timings",
        "queued",
        "[REDACTED]",
        "redacted: /arguments/token",
        "Arguments:",
        "Result:",
    ] {
        assert!(out.contains(want), "{want:?} in {out}");
    }
    let (ok, out, _) = cli(&["show", &first.to_string(), "--json"], &env).await;
    assert!(ok);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["request"]["id"], first);
    let (ok, _, err) = cli(&["show", "999999"], &env).await;
    assert!(!ok && err.contains("404"), "{err}");

    // replay: redacted arguments need new ones; a patch changes one and shows the diff.
    let (ok, _, err) = cli(&["replay", &first.to_string()], &env).await;
    assert!(
        !ok && err.contains("409") && err.contains("redacted"),
        "{err}"
    );
    let (ok, out, err) = cli(
        &[
            "replay",
            &second.to_string(),
            "--patch",
            r#"{"text": "three"}"#,
        ],
        &env,
    )
    .await;
    assert!(ok, "{err}");
    assert!(
        out.contains("Replayed request") && out.contains(r#"~ /content/0/text: "two" → "three""#),
        "{out}"
    );
    let (ok, out, err) = cli(
        &[
            "replay",
            &first.to_string(),
            "--arguments",
            r#"{"text": "four", "token": "x"}"#,
            "--json",
        ],
        &env,
    )
    .await;
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            v["replayOf"].as_u64(),
            v["result"]["content"][0]["text"].as_str()
        ),
        (Some(first), Some("four"))
    );
    assert_eq!(v["diff"]["changed"][0]["to"], "four");
    let (ok, _, err) = cli(&["replay", "1", "--patch", "{nope"], &env).await;
    assert!(!ok && err.contains("--patch is not JSON"), "{err}");

    // --follow prints what is logged after it started.
    let mut follow = tokio::process::Command::new(gateway_bin())
        .args([
            "requests",
            "--follow",
            "--limit",
            "1",
            "--url",
            &base,
            "--api-key",
            ROOT,
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(follow.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    // The header and the newest entry, then the new call once it is logged.
    for _ in 0..2 {
        seen.push(lines.next_line().await.unwrap().unwrap());
    }
    assert!(
        call(json!({"text": "followed"}))
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("a new line")
        .unwrap()
        .unwrap();
    assert!(line.contains("echo"), "{seen:?} then {line}");
    follow.kill().await.unwrap();

    gateway.kill().await.unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("listening on"), "{log}");
    assert!(
        !log.contains(SECRET),
        "the secret reached the gateway's log:\n{log}"
    );
}
