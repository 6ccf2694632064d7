//! Scale-out: three `mcp-gateway` processes sharing one real Redis, driven as if behind a
//! round-robin load balancer with no stickiness.
//!
//! - The official TypeScript SDK client opens a session on one replica and lists, calls,
//!   gets progress, answers a sampling request and cancels a call through the others (every
//!   HTTP request goes to the next replica); then it deletes the session, and no replica
//!   accepts it any more.
//! - A per-key limit of N calls holds across the three replicas together, and still holds
//!   after one replica is killed while the other two keep serving.

mod common;
use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

const ALICE: &str = "alice-key-0123456789abcdef";
const BOB: &str = "bob-key-0123456789abcdef";
/// Bob's budget across the whole cluster.
const BOB_LIMIT: usize = 12;

fn cluster_yaml(redis: &str) -> String {
    let ev = everything_js().display().to_string();
    format!(
        r#"host: 127.0.0.1
port: ${{PORT}}
logLevel: debug
auth:
  strategy: api-key
  apiKeys:
    - {{ name: alice, key: {ALICE} }}
    - {{ name: bob, key: {BOB} }}
rateLimit:
  limit: 100000
  windowSeconds: 3600
  perKey: true
  backend: redis
  redisUrl: {redis}
  overrides:
    - {{ subject: bob, limit: {BOB_LIMIT} }}
  tools:
    - {{ match: "t__add", limit: 2 }}
cluster:
  replica: ${{REPLICA}}
  sessionKey: "test-session-key-with-at-least-32-characters"
  redisUrl: {redis}
servers:
{}  - id: ev
    command: node
    args: [{ev:?}, "stdio"]
"#,
        test_server_yaml("t", &[], "")
    )
}

struct Replica {
    name: String,
    port: u16,
    child: Child,
    log: PathBuf,
}

impl Replica {
    fn spawn(dir: &Path, name: &str) -> Replica {
        let port = free_port();
        let log = dir.join(format!("{name}.log"));
        let child = spawn_gateway(
            &dir.join("gw.yml"),
            &log,
            &[],
            &[("PORT", &port.to_string()), ("REPLICA", name)],
        );
        Replica {
            name: name.into(),
            port,
            child,
            log,
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the replica answers /readyz and both servers have their tools.
    async fn ready(&self, http: &reqwest::Client) {
        for _ in 0..300 {
            if let Ok(r) = http
                .get(format!("{}/api/v1/health", self.base()))
                .bearer_auth(ALICE)
                .send()
                .await
                && r.status().is_success()
            {
                let v: Value = r.json().await.unwrap_or_default();
                if v["servers"]["healthy"] == 2 {
                    assert_eq!(v["replica"], self.name, "{v}");
                    assert_eq!(v["cluster"]["sealedSessions"], true, "{v}");
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("replica {} never became ready:\n{}", self.name, self.log());
    }
}

async fn call(http: &reqwest::Client, base: &str, key: &str, text: &str) -> (u16, Value) {
    let res = http
        .post(format!("{base}/api/v1/tools/call"))
        .bearer_auth(key)
        .json(&json!({"tool": "t__echo", "arguments": {"text": text}}))
        .send()
        .await
        .expect("POST /api/v1/tools/call");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or_default())
}

async fn run_ts_client(bases: &[String]) -> Value {
    let script = root().join("tests/clients/ts_cluster.mjs");
    let child = Command::new("node")
        .arg(&script)
        .arg(bases.join(","))
        .arg(ALICE)
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run node");
    let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("the TypeScript client finishes within 90 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON from the client\n{stdout}\n{stderr}"));
    let v: Value = serde_json::from_str(line).unwrap();
    assert!(
        out.status.success() && v.get("fatal").is_none(),
        "client failed: {}\nstderr: {stderr}",
        v.get("fatal").unwrap_or(&v)
    );
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_sessions_and_one_rate_limit() {
    require_peers();
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gw.yml"), cluster_yaml(&redis.url())).unwrap();
    let mut replicas: Vec<Replica> = ["gw-a", "gw-b", "gw-c"]
        .iter()
        .map(|n| Replica::spawn(dir.path(), n))
        .collect();
    let http = reqwest::Client::new();
    for r in &replicas {
        r.ready(&http).await;
    }
    let bases: Vec<String> = replicas.iter().map(Replica::base).collect();

    // --- A session-generation SDK client through all three replicas.
    let out = run_ts_client(&bases).await;
    let errors = out["errors"].as_array().unwrap();
    let logs = || {
        replicas
            .iter()
            .map(|r| r.log())
            .collect::<Vec<_>>()
            .join("\n-----\n")
    };
    assert!(errors.is_empty(), "client errors: {errors:?}\n{}", logs());
    let hits = out["hits"].as_array().unwrap();
    let posts: Vec<&Value> = hits.iter().filter(|h| h["http"] == "POST").collect();
    let replicas_seen: std::collections::BTreeSet<&str> =
        posts.iter().filter_map(|h| h["replica"].as_str()).collect();
    assert_eq!(
        replicas_seen.len(),
        3,
        "POSTs spread over all replicas: {hits:#?}"
    );
    assert!(
        hits.iter()
            .all(|h| h["status"] != 404 && h["status"].as_u64().is_some_and(|s| s < 500)),
        "no request was refused (no 'session not found'): {hits:#?}"
    );
    let init = posts.iter().find(|h| h["method"] == "initialize").unwrap();
    let init_replica = init["replica"].as_str().unwrap();
    assert!(
        posts
            .iter()
            .any(|h| h["method"] == "tools/call" && h["replica"] != init_replica),
        "tools were called on replicas other than the one that initialized: {hits:#?}"
    );
    assert!(out["tools"].as_array().unwrap().len() > 12, "{out}");
    for i in 0..6 {
        assert_eq!(
            out["calls"][format!("echo{i}")],
            format!("hello {i}"),
            "{out}"
        );
    }
    assert_eq!(out["calls"]["sum"], "The sum of 20 and 22 is 42.", "{out}");
    let progress = &out["progress"];
    assert_eq!(progress["wire"], json!([1, 2, 3, 4, 5]), "{progress}");
    assert!(progress["text"].as_str().is_some(), "{progress}");
    // The sampling answer was POSTed to another replica than the one holding the call.
    let sampling = &out["sampling"];
    assert_eq!(sampling["sampled"], 1, "{sampling}");
    assert!(
        sampling["text"]
            .as_str()
            .is_some_and(|t| t.contains("sampled by the client")),
        "{sampling}\n{}",
        logs()
    );
    assert_eq!(out["cancel"]["aborted"], true, "{out}");

    // The cancellation reached the replica running the sleep: it ended long before 15 s.
    let mut sleep_entries = Vec::new();
    for b in &bases {
        let v: Value = http
            .get(format!("{b}/api/v1/requests?tool=sleep"))
            .bearer_auth(ALICE)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        sleep_entries.extend(v["requests"].as_array().cloned().unwrap_or_default());
    }
    assert_eq!(sleep_entries.len(), 1, "{sleep_entries:#?}");
    let ms = sleep_entries[0]["durationMs"].as_f64().unwrap_or(f64::MAX);
    assert!(
        ms < 10_000.0,
        "cancelled sleep ran {ms} ms: {sleep_entries:#?}"
    );

    // The client deleted its session: no replica accepts it any more.
    let sid = out["sessionId"].as_str().expect("session id").to_string();
    assert!(sid.starts_with("s1."), "sealed session ids are used: {sid}");
    for b in &bases {
        let res = http
            .post(format!("{b}/mcp"))
            .bearer_auth(ALICE)
            .header("mcp-session-id", &sid)
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{b} still accepts the deleted session");
    }

    // --- One rate limit for the whole cluster: bob may make BOB_LIMIT calls in all.
    let mut admitted = 0;
    let mut limited = 0;
    for i in 0..6 {
        let (status, body) = call(&http, &bases[i % 3], BOB, "before").await;
        match status {
            200 => admitted += 1,
            429 => limited += 1,
            s => panic!("unexpected {s}: {body}"),
        }
    }
    assert_eq!((admitted, limited), (6, 0));
    // A replica dies; the other two keep serving and keep counting against the same budget.
    let victim = replicas.pop().unwrap();
    let mut victim_child = victim.child;
    victim_child.kill().await.unwrap();
    let survivors = &bases[..2];
    let calls = (0..20).map(|i| {
        let http = http.clone();
        let base = survivors[i % 2].clone();
        async move { call(&http, &base, BOB, "after").await }
    });
    for (status, body) in futures::future::join_all(calls).await {
        match status {
            200 => {
                assert_eq!(text(&body), "after", "{body}");
                admitted += 1;
            }
            429 => {
                assert_eq!(body["error"]["code"], "rate_limited", "{body}");
                limited += 1;
            }
            s => panic!("unexpected {s}: {body}"),
        }
    }
    assert_eq!(admitted, BOB_LIMIT, "admitted across the cluster");
    assert_eq!(limited, 26 - BOB_LIMIT);
    // Alice has her own budget and is served by both survivors.
    for b in survivors {
        let (status, body) = call(&http, b, ALICE, "still here").await;
        assert_eq!((status, text(&body)), (200, "still here"), "{body}");
    }
    // A per-tool budget is shared by the replicas too (one Redis round trip per call).
    let add = |base: String| {
        let http = http.clone();
        async move {
            http.post(format!("{base}/api/v1/tools/call"))
                .bearer_auth(ALICE)
                .json(&json!({"tool": "t__add", "arguments": {"a": 1, "b": 2}}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let statuses = vec![
        add(survivors[0].clone()).await,
        add(survivors[1].clone()).await,
        add(survivors[0].clone()).await,
    ];
    assert_eq!(statuses, [200, 200, 429]);
    let dead = call_fails(&http, &bases[2]).await;
    assert!(dead, "the killed replica no longer answers");
}

async fn call_fails(http: &reqwest::Client, base: &str) -> bool {
    http.get(format!("{base}/healthz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .is_err()
}

/// Two in-process replicas whose Redis is down at first: sessions still move between them
/// (sealed ids fail open), and once Redis comes up a deleted session is refused everywhere.
#[tokio::test]
async fn replicas_serve_without_redis_and_recover_when_it_returns() {
    let port = free_port();
    let yaml = |name: &str| {
        format!(
            "cluster:\n  replica: {name}\n  sessionKey: \"another-session-key-of-32-characters-or-more\"\n  redisUrl: redis://127.0.0.1:{port}/\nservers:\n{}",
            test_server_yaml("t", &[], "")
        )
    };
    let a = TestGateway::start(config(&yaml("a"))).await;
    let b = TestGateway::start(config(&yaml("b"))).await;
    let http = reqwest::Client::new();
    let post = |gw: &TestGateway, sid: Option<&str>, body: Value| {
        let mut req = http
            .post(gw.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(sid) = sid {
            req = req.header("mcp-session-id", sid);
        }
        req.send()
    };
    let open = |gw: &TestGateway| {
        post(
            gw,
            None,
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"}}}),
        )
    };
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});

    // Redis is down: a session opened on a is served by b all the same.
    let res = open(&a).await.unwrap();
    assert_eq!(res.headers()["x-mcp-gateway-replica"], "a");
    let sid = res.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let res = post(&b, Some(&sid), list.clone()).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-mcp-gateway-replica"], "b");
    // Deleting it on b while Redis is down holds on b (fail open elsewhere, documented).
    let del = http
        .delete(b.url("/mcp"))
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    let res = post(&b, Some(&sid), list.clone()).await.unwrap();
    assert_eq!(res.status(), 404);
    let deleted_in_outage = sid;

    // Redis comes up: both replicas reconnect by themselves and share revocations, the one
    // made while it was away included (issue 20, item 9).
    let mut redis = RedisServer::start_on(port);
    let refused_by = |gw: &'static str, sid: String| {
        let gw = if gw == "a" { &a } else { &b };
        let post = &post;
        let list = list.clone();
        async move {
            for _ in 0..100 {
                if post(gw, Some(&sid), list.clone()).await.unwrap().status() == 404 {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        }
    };
    assert!(
        refused_by("a", deleted_in_outage.clone()).await,
        "a session deleted while Redis was down is still served by a after it returned"
    );
    let res = open(&a).await.unwrap();
    let sid = res.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        post(&b, Some(&sid), list.clone()).await.unwrap().status(),
        200
    );
    let del = http
        .delete(b.url("/mcp"))
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    // a holds the session in memory: the revocation reaches it through Redis, on the
    // channel or, if a's channel was still reconnecting, by the check it makes on reconnect.
    let mut refused_everywhere = false;
    for _ in 0..100 {
        if post(&a, Some(&sid), list.clone()).await.unwrap().status() == 404 {
            refused_everywhere = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        refused_everywhere,
        "a deleted session was still served by a"
    );

    // Redis restarts without its data: the replicas record the revocations they know
    // again, so a replica that never saw either session refuses both.
    redis.kill();
    let _redis = RedisServer::start_on(port);
    let c = TestGateway::start(config(&yaml("c"))).await;
    for gone in [deleted_in_outage, sid] {
        let mut refused = false;
        for _ in 0..100 {
            if post(&c, Some(&gone), list.clone()).await.unwrap().status() == 404 {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            refused,
            "a fresh replica adopted a deleted session after Redis lost its data"
        );
    }
    let (status, _) = a.get("/api/v1/health").await;
    assert_eq!(status, 200);
    c.stop().await;
    a.stop().await;
    b.stop().await;
}

/// The worked example in examples/cluster/ is a valid configuration.
#[test]
fn the_cluster_example_config_validates() {
    let out = std::process::Command::new(gateway_bin())
        .args(["validate", "-c"])
        .arg(root().join("examples/cluster/gateway.yml"))
        .env("REPLICA", "gw-a")
        .env("MCP_GATEWAY_SESSION_KEY", "k".repeat(44))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A legacy HTTP+SSE client whose `POST /messages` lands on another replica than its
/// stream: the message is handed over through Redis and answered on the stream.
#[tokio::test]
async fn legacy_messages_reach_the_replica_holding_the_stream() {
    use futures::StreamExt;
    let redis = RedisServer::start();
    let yaml = |name: &str| {
        format!(
            "cluster:\n  replica: {name}\n  sessionKey: \"legacy-session-key-of-32-characters-or-more\"\n  redisUrl: {}\nservers:\n{}",
            redis.url(),
            test_server_yaml("t", &[], "")
        )
    };
    let a = TestGateway::start(config(&yaml("a"))).await;
    let b = TestGateway::start(config(&yaml("b"))).await;
    let http = reqwest::Client::new();
    let res = http.get(a.url("/sse")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let mut stream = res.bytes_stream();
    let mut buf = String::new();
    // Reads SSE data lines until one satisfies `want`.
    async fn next_data(
        stream: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
        buf: &mut String,
        want: impl Fn(&str) -> bool,
    ) -> String {
        loop {
            while let Some(end) = buf.find("\n\n") {
                let event: String = buf.drain(..end + 2).collect();
                if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: "))
                    && want(data)
                {
                    return data.to_string();
                }
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .expect("an event within 10 s")
                .expect("stream open")
                .unwrap();
            buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    let endpoint = next_data(&mut stream, &mut buf, |d| d.contains("sessionId=")).await;
    assert!(endpoint.contains("sessionId=s1."), "{endpoint}");
    // Every message goes to b; the answers arrive on a's stream.
    let post = |body: Value| http.post(b.url(&endpoint)).json(&body).send();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2024-11-05", "capabilities": {},
        "clientInfo": {"name": "legacy", "version": "1"}}});
    assert_eq!(post(init).await.unwrap().status(), 202);
    let answer = next_data(&mut stream, &mut buf, |d| d.contains("\"id\":1")).await;
    assert!(answer.contains("protocolVersion"), "{answer}");
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "t__echo", "arguments": {"text": "via b"}}});
    assert_eq!(post(call).await.unwrap().status(), 202);
    let answer = next_data(&mut stream, &mut buf, |d| d.contains("\"id\":2")).await;
    assert!(answer.contains("via b"), "{answer}");
    // Without Redis, b cannot hand messages over and says so.
    drop(redis);
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "ping"});
    let res = post(call).await.unwrap();
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another gateway replica"),
        "{body}"
    );
    a.stop().await;
    b.stop().await;
}
