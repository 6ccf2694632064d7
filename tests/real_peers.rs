//! End-to-end tests against real MCP peers: the reference `server-filesystem` and
//! `server-everything` (TypeScript SDK, session generation over stdio) and a Python SDK 2.x
//! server speaking the stateless 2026-07-28 revision. Install them with
//! `scripts/install-peers.sh`.

mod common;
use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// YAML entry for `server-filesystem` rooted at `root`.
fn fs_yaml(id: &str, root: &Path) -> String {
    format!(
        "  - id: {id}\n    command: node\n    args: [{:?}, {:?}]\n",
        fs_server_js().display().to_string(),
        root.display().to_string()
    )
}

/// YAML entry for the Python SDK peer (running `script`, normally `py_server()`).
fn py_yaml(id: &str, script: &Path) -> String {
    format!(
        "  - id: {id}\n    command: {:?}\n    args: [{:?}]\n",
        peers_python().display().to_string(),
        script.display().to_string()
    )
}

/// YAML entry for `server-everything` over stdio.
fn everything_yaml(id: &str) -> String {
    format!(
        "  - id: {id}\n    command: node\n    args: [{:?}, \"stdio\"]\n",
        everything_js().display().to_string()
    )
}

/// A temp dir (canonical path, as server-filesystem resolves it) holding `hello.txt`.
fn fs_root() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = std::fs::canonicalize(dir.path()).expect("canonical tempdir");
    std::fs::write(root.join("hello.txt"), "hello from the fs root\nline two\n").unwrap();
    (dir, root)
}

/// The entry of `id` in `GET /api/v1/servers`.
async fn server_entry(gw: &TestGateway, id: &str) -> Value {
    let (status, v) = gw.get("/api/v1/servers").await;
    assert_eq!(status, 200, "{v}");
    v["servers"]
        .as_array()
        .expect("servers array")
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("server {id} not listed in {v}"))
        .clone()
}

/// Polls `GET /api/v1/servers` until `id` is healthy (start() normally waited already).
async fn wait_healthy(gw: &TestGateway, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = server_entry(gw, id).await;
        if s["status"] == "healthy" {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "server {id} never became healthy: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Names of the tools `GET /api/v1/tools?server=<id>` lists.
async fn tool_names(gw: &TestGateway, id: &str) -> Vec<String> {
    let (status, v) = gw.get(&format!("/api/v1/tools?server={id}")).await;
    assert_eq!(status, 200, "{v}");
    v["tools"]
        .as_array()
        .expect("tools array")
        .iter()
        .map(|t| {
            assert_eq!(t["server"], id, "{t}");
            t["name"].as_str().expect("tool name").to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_server_over_stdio() {
    require_peers();
    let (_dir, root) = fs_root();
    let gw = TestGateway::start(config(&format!("servers:\n{}", fs_yaml("fs", &root)))).await;

    // Server list: healthy, 14 tools, negotiated revision and serverInfo.
    let s = wait_healthy(&gw, "fs").await;
    assert_eq!(s["toolCount"], 14, "{s}");
    assert_eq!(s["protocolVersion"], "2025-11-25", "{s}");
    assert_eq!(s["serverInfo"]["name"], "secure-filesystem-server", "{s}");
    assert_eq!(s["transport"], "stdio", "{s}");

    // Tool catalog with the server's own inputSchema.
    let (status, v) = gw.get("/api/v1/tools?server=fs").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["count"], 14, "{v}");
    let read = v["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "read_text_file")
        .unwrap_or_else(|| panic!("read_text_file not listed: {v}"));
    assert_eq!(read["qualifiedName"], "fs__read_text_file", "{read}");
    assert_eq!(read["inputSchema"]["type"], "object", "{read}");
    assert!(
        read["inputSchema"]["properties"]["path"].is_object(),
        "{read}"
    );

    // Read a file inside the root: exact contents.
    let file = root.join("hello.txt");
    let (status, v) = gw
        .call(json!({"tool": "read_text_file", "arguments": {"path": file}}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["server"], "fs", "{v}");
    assert_eq!(v["tool"], "read_text_file", "{v}");
    assert_ne!(v["result"]["isError"], true, "{v}");
    assert_eq!(text(&v), "hello from the fs root\nline two\n");

    // A path outside the root is a tool error (200, isError), not a gateway failure.
    let (status, v) = gw
        .call(json!({"tool": "read_text_file", "arguments": {"path": "/etc/hostname"}}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["isError"], true, "{v}");
    let msg = text(&v).to_lowercase();
    assert!(
        msg.contains("access denied") || msg.contains("outside allowed directories"),
        "{v}"
    );

    // write_file then read_text_file round trip.
    let new = root.join("sub-note.md");
    let content = "# Note\nwritten through the gateway ✓\n";
    let (status, v) = gw
        .call(json!({"tool": "write_file", "server": "fs", "arguments": {"path": new, "content": content}}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_ne!(v["result"]["isError"], true, "{v}");
    assert_eq!(std::fs::read_to_string(&new).unwrap(), content);
    let (status, v) = gw
        .call(json!({"tool": "read_text_file", "arguments": {"path": new}}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(text(&v), content);

    // list_allowed_directories names the root.
    let (status, v) = gw
        .call(json!({"tool": "list_allowed_directories", "arguments": {}}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_ne!(v["result"]["isError"], true, "{v}");
    assert!(text(&v).contains(&root.display().to_string()), "{v}");

    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_server_stateless_revision() {
    require_peers();
    let gw = TestGateway::start(config(&format!(
        "servers:\n{}",
        py_yaml("py", &py_server())
    )))
    .await;

    let s = wait_healthy(&gw, "py").await;
    assert_eq!(s["protocolVersion"], "2026-07-28", "{s}");
    assert_eq!(s["serverInfo"]["name"], "py-peer", "{s}");
    assert_eq!(s["toolCount"], 2, "{s}");
    let mut names = tool_names(&gw, "py").await;
    names.sort();
    assert_eq!(names, ["add", "greet"]);

    let (status, v) = gw
        .call(json!({"tool": "add", "arguments": {"a": 2, "b": 3}}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["server"], "py", "{v}");
    assert_ne!(v["result"]["isError"], true, "{v}");
    assert_eq!(v["result"]["structuredContent"]["result"], 5, "{v}");
    assert_eq!(text(&v), "5");

    let (status, v) = gw
        .call(json!({"tool": "greet", "server": "py", "arguments": {"name": "Ada"}}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(text(&v), "Hello, Ada!");

    // The gateway's catalog knows py's tools: an unknown name is the gateway's 404.
    let (status, v) = gw
        .call(json!({"tool": "no_such_tool", "server": "py", "arguments": {}}))
        .await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["error"]["code"], "unknown_tool", "{v}");

    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_real_servers_behind_one_gateway() {
    require_peers();
    let (_dir, root) = fs_root();
    let yaml = format!(
        "servers:\n{}{}{}",
        fs_yaml("fs", &root),
        py_yaml("py", &py_server()),
        everything_yaml("everything")
    );
    let gw = TestGateway::start(config(&yaml)).await;
    for id in ["fs", "py", "everything"] {
        wait_healthy(&gw, id).await;
    }
    let ev = server_entry(&gw, "everything").await;
    assert_eq!(ev["serverInfo"]["name"], "mcp-servers/everything", "{ev}");

    // Every server's tools are in the unfiltered catalog.
    let fs_tools = tool_names(&gw, "fs").await;
    let py_tools = tool_names(&gw, "py").await;
    let ev_tools = tool_names(&gw, "everything").await;
    assert_eq!(fs_tools.len(), 14);
    assert_eq!(py_tools.len(), 2);
    assert!(ev_tools.iter().any(|t| t == "echo"), "{ev_tools:?}");
    let (status, all) = gw.get("/api/v1/tools").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(
        all["count"].as_u64().unwrap() as usize,
        fs_tools.len() + py_tools.len() + ev_tools.len(),
        "{all}"
    );
    for id in ["fs", "py", "everything"] {
        assert!(
            all["tools"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["server"] == id),
            "{id}"
        );
    }

    // server-everything's echo, by bare name and by qualified name.
    let (status, v) = gw
        .call(json!({"tool": "echo", "arguments": {"message": "ping"}}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["server"], "everything", "{v}");
    assert_eq!(text(&v), "Echo: ping");
    let (status, v) = gw
        .call(json!({"tool": "everything__echo", "arguments": {"message": "q"}}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(text(&v), "Echo: q");

    // 50 concurrent calls mixed across the three servers.
    let file = root.join("hello.txt");
    let calls = (0..50u64).map(|i| {
        let gw = &gw;
        let file = &file;
        async move {
            let (body, want) = match i % 3 {
                0 => (
                    json!({"tool": "read_text_file", "arguments": {"path": file}}),
                    "hello from the fs root\nline two\n".to_string(),
                ),
                1 => (
                    json!({"tool": "add", "arguments": {"a": i, "b": 1000}}),
                    (i + 1000).to_string(),
                ),
                _ => (
                    json!({"tool": "echo", "server": "everything", "arguments": {"message": format!("m{i}")}}),
                    format!("Echo: m{i}"),
                ),
            };
            let (status, v) = gw.call(body).await;
            assert_eq!(status, 200, "call {i}: {v}");
            assert_ne!(v["result"]["isError"], true, "call {i}: {v}");
            assert_eq!(text(&v), want, "call {i}: {v}");
        }
    });
    futures::future::join_all(calls).await;

    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_terminates_real_child_processes() {
    require_peers();
    let (_dir, root) = fs_root();
    // A copy of the Python peer inside the unique temp dir, so both children's command
    // lines carry the temp dir path.
    let py_copy = root.join("py_server.py");
    std::fs::copy(py_server(), &py_copy).unwrap();
    let yaml = format!(
        "servers:\n{}{}",
        fs_yaml("fs", &root),
        py_yaml("py", &py_copy)
    );
    let gw = TestGateway::start(config(&yaml)).await;
    wait_healthy(&gw, "fs").await;
    wait_healthy(&gw, "py").await;

    let marker = root.display().to_string();
    let before = pgrep(&marker);
    assert_eq!(
        before.len(),
        2,
        "expected the node and python children, got {before:?}"
    );
    let (status, v) = gw
        .call(json!({"tool": "greet", "arguments": {"name": "Bye"}}))
        .await;
    assert_eq!(status, 200, "{v}");

    gw.gateway.stop().await;
    let after = pgrep(&marker);
    assert!(
        after.is_empty(),
        "children still running after stop(): {after:?} (were {before:?})"
    );
}

/// `GET /api/v1/servers/{id}?items=1` lists the prompts, resources and resource templates of
/// a real server, cut by the access rules like the lists on `/mcp`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servers_prompts_and_resources_over_rest() {
    require_peers();
    let yaml = format!(
        "access:\n  - roles: [\"*\"]\n    allow: [\"*\"]\n    deny: [\"prompt:everything__simple-prompt\"]\nservers:\n{}{}",
        everything_yaml("everything"),
        test_server_yaml("t", &[], "")
    );
    let gw = TestGateway::start(config(&yaml)).await;
    wait_healthy(&gw, "everything").await;
    let (status, v) = gw.get("/api/v1/servers/everything?items=1").await;
    assert_eq!(status, 200, "{v}");
    let names = |key: &str, field: &str| -> Vec<String> {
        v[key]
            .as_array()
            .unwrap_or_else(|| panic!("no {key}: {v}"))
            .iter()
            .map(|p| p[field].as_str().unwrap().to_string())
            .collect()
    };
    let prompts = names("prompts", "name");
    assert!(prompts.iter().any(|p| p == "args-prompt"), "{prompts:?}");
    assert!(!prompts.iter().any(|p| p == "simple-prompt"), "{prompts:?}");
    assert!(!names("resources", "uri").is_empty(), "{v}");
    assert!(v["resourceTemplates"].is_array(), "{v}");
    assert!(v.get("itemErrors").is_none(), "{v}");
    // Without `items` nothing is asked of the server; a server without prompts lists none.
    let (_, plain) = gw.get("/api/v1/servers/everything").await;
    assert!(plain.get("prompts").is_none(), "{plain}");
    let (_, t) = gw.get("/api/v1/servers/t?items=1").await;
    assert_eq!(t["prompts"], serde_json::json!([]), "{t}");
    assert_eq!(gw.get("/api/v1/servers/t?items=2").await.0, 400);
    gw.stop().await;
}
