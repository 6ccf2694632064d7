//! One catalog names every tool and prompt: for each naming setting, the REST API's
//! `qualifiedName`, the name `/mcp` lists and the name `POST /api/v1/tools/call` and `/mcp`
//! accept are the same string, and prompts follow the same policy as tools.

mod common;

use common::{
    TestGateway, config, everything_js, peers_python, require_peers, root, test_server_yaml,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// A 2026-07-28 request to `/mcp` (no session), with the mirrored headers.
async fn mcp(gw: &TestGateway, method: &str, mut params: Value) -> Value {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let mut req = gw
        .http
        .post(gw.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method);
    if let Some(name) = params["name"].as_str() {
        req = req.header("mcp-name", name);
    }
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let res = req.body(body.to_string()).send().await.expect("POST /mcp");
    assert_eq!(res.status(), 200);
    res.json().await.expect("JSON answer")
}

/// Every item's `member` of a list answer.
fn names(list: &Value, key: &str, member: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {list}"))
        .iter()
        .map(|t| t[member].as_str().unwrap().to_string())
        .collect()
}

/// Checks that REST and `/mcp` show the same names, that each is accepted by both front
/// ends and reaches the server REST says offers it, and returns name → server.
async fn same_names_everywhere(gw: &TestGateway) -> BTreeMap<String, String> {
    let (status, rest) = gw.get("/api/v1/tools").await;
    assert_eq!(status, 200, "{rest}");
    let by_rest: BTreeMap<String, String> = rest["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["qualifiedName"].as_str().unwrap().to_string(),
                t["server"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let listed = mcp(gw, "tools/list", json!({})).await;
    let mut on_mcp = names(&listed["result"], "tools", "name");
    on_mcp.sort();
    let on_rest: Vec<String> = by_rest.keys().cloned().collect();
    assert_eq!(on_rest, on_mcp, "REST and /mcp name tools differently");
    for (name, server) in &by_rest {
        if !name.ends_with("echo") {
            continue;
        }
        let (status, v) = gw
            .call(json!({"tool": name, "arguments": {"text": name, "message": name}}))
            .await;
        assert_eq!(status, 200, "{name}: {v}");
        assert_eq!(&v["server"], server, "{name}: {v}");
        let v = mcp(
            gw,
            "tools/call",
            json!({"name": name, "arguments": {"text": name, "message": name}}),
        )
        .await;
        assert!(v["result"]["content"].is_array(), "{name}: {v}");
        let (_, log) = gw.get("/api/v1/requests?limit=1").await;
        assert_eq!(&log["requests"][0]["server"], server, "{name}: {log}");
    }
    by_rest
}

#[tokio::test]
async fn prefixed_names_are_one_string_everywhere() {
    let yaml = format!(
        "servers:\n{}{}",
        test_server_yaml("alpha", &[], ""),
        test_server_yaml("beta", &[], ""),
    );
    let gw = TestGateway::start(config(&yaml)).await;
    let names = same_names_everywhere(&gw).await;
    assert_eq!(names["alpha__echo"], "alpha");
    assert_eq!(names["beta__echo"], "beta");
    gw.stop().await;
}

#[tokio::test]
async fn bare_names_with_a_collision_are_one_string_everywhere() {
    let yaml = format!(
        "toolNaming: bare\nservers:\n{}{}",
        test_server_yaml("alpha", &[], ""),
        test_server_yaml("beta", &[], ""),
    );
    let gw = TestGateway::start(config(&yaml)).await;
    let names = same_names_everywhere(&gw).await;
    // The first server keeps the contested name; the second is qualified.
    assert_eq!(names["echo"], "alpha");
    assert_eq!(names["beta__echo"], "beta");
    assert!(!names.contains_key("alpha__echo"), "{names:?}");
    gw.stop().await;
}

#[tokio::test]
async fn a_custom_tool_prefix_is_one_string_everywhere() {
    let yaml = format!(
        "servers:\n{}{}",
        test_server_yaml("alpha", &[], ""),
        test_server_yaml("beta", &[], "    toolPrefix: b\n"),
    );
    let gw = TestGateway::start(config(&yaml)).await;
    let names = same_names_everywhere(&gw).await;
    assert_eq!(names["b__echo"], "beta");
    assert!(!names.contains_key("beta__echo"), "{names:?}");
    // The id-qualified name is not an alias of the custom one, on either front end.
    let (status, v) = gw.call(json!({"tool": "beta__echo"})).await;
    assert_eq!(status, 404, "{v}");
    gw.stop().await;
}

/// Prompts are named by the same policy: the prefix a server's tools get is the prefix its
/// prompts get, and the contested name stays with the first server.
#[tokio::test]
async fn prompts_follow_the_tools_naming() {
    require_peers();
    let server = |id: &str, extra: &str| {
        format!(
            "  - id: {id}\n    command: node\n    args: [{:?}, \"stdio\"]\n{extra}",
            everything_js().display().to_string()
        )
    };
    for (naming, extra, want_tool, want_prompt) in [
        ("", "", "ev2__echo", "ev2__simple-prompt"),
        ("toolNaming: bare\n", "", "ev2__echo", "ev2__simple-prompt"),
        ("", "    toolPrefix: p\n", "p__echo", "p__simple-prompt"),
    ] {
        let yaml = format!(
            "{naming}servers:\n{}{}",
            server("ev1", ""),
            server("ev2", extra)
        );
        let gw = TestGateway::start(config(&yaml)).await;
        let tools = same_names_everywhere(&gw).await;
        assert_eq!(tools[want_tool], "ev2", "{yaml}: {tools:?}");
        let listed = mcp(&gw, "prompts/list", json!({})).await;
        let prompts = names(&listed["result"], "prompts", "name");
        assert!(
            prompts.iter().any(|p| p == want_prompt),
            "{yaml}: {prompts:?}"
        );
        // ev1's names: bare exactly when its tools are bare.
        let ev1_tool = if naming.is_empty() {
            "ev1__echo"
        } else {
            "echo"
        };
        let ev1_prompt = if naming.is_empty() {
            "ev1__simple-prompt"
        } else {
            "simple-prompt"
        };
        assert_eq!(tools[ev1_tool], "ev1", "{yaml}: {tools:?}");
        assert!(
            prompts.iter().any(|p| p == ev1_prompt),
            "{yaml}: {prompts:?}"
        );
        for name in [want_prompt, ev1_prompt] {
            let v = mcp(&gw, "prompts/get", json!({ "name": name })).await;
            assert!(v["result"]["messages"].is_array(), "{name}: {v}");
        }
        gw.stop().await;
    }
}

/// A name that is valid as it is keeps it (a sanitized `delete.all` never takes a real
/// `delete_all`'s name), and an access rule written for the name clients see covers the tool
/// whose upstream name had to be sanitized (issue 20, item 7).
#[tokio::test]
async fn valid_names_keep_their_name_and_rules_cover_sanitized_ones() {
    require_peers();
    let yaml = format!(
        "access:\n  - {{ roles: [\"*\"], allow: [\"*\"], deny: [\"weird__write_*\"] }}\nservers:\n  - id: weird\n    command: {:?}\n    args: [{:?}]\n",
        peers_python().display().to_string(),
        root()
            .join("tests/peers/py_odd_names.py")
            .display()
            .to_string(),
    );
    let gw = TestGateway::start(config(&yaml)).await;
    let (status, rest) = gw.get("/api/v1/tools").await;
    assert_eq!(status, 200, "{rest}");
    let listed_rest: Vec<&str> = rest["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["qualifiedName"].as_str().unwrap())
        .collect();
    assert!(listed_rest.contains(&"weird__delete_all"), "{rest}");
    assert!(listed_rest.contains(&"weird__delete_all_2"), "{rest}");
    assert!(
        !listed_rest.contains(&"weird__write_file"),
        "a denied tool is listed: {rest}"
    );
    for (name, ran) in [
        ("weird__delete_all", "delete_all"),
        ("weird__delete_all_2", "delete.all"),
    ] {
        let (status, v) = gw.call(json!({"tool": name, "arguments": {}})).await;
        assert_eq!(status, 200, "{name}: {v}");
        assert_eq!(common::text(&v), ran, "{name}: {v}");
        let v = mcp(&gw, "tools/call", json!({"name": name, "arguments": {}})).await;
        assert_eq!(v["result"]["content"][0]["text"], ran, "{name}: {v}");
    }
    let (status, v) = gw
        .call(json!({"tool": "weird__write_file", "arguments": {}}))
        .await;
    assert_eq!(status, 403, "{v}");
    let listed = mcp(&gw, "tools/list", json!({})).await;
    let on_mcp = names(&listed["result"], "tools", "name");
    assert!(
        !on_mcp.iter().any(|n| n == "weird__write_file"),
        "{on_mcp:?}"
    );
    let v = mcp(
        &gw,
        "tools/call",
        json!({"name": "weird__write_file", "arguments": {}}),
    )
    .await;
    assert!(
        v["error"].is_object() || v["result"]["isError"] == true,
        "{v}"
    );
    gw.stop().await;
}
