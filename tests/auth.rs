//! Authentication and tool-level access control through the whole gateway: two API keys
//! with different roles see different tool lists and are refused each other's tools over
//! REST and the MCP endpoint; missing / bad credentials get 401 with a challenge; probes
//! stay open; the OAuth mode serves RFC 9728 metadata and checks the token's audience;
//! access rules apply to prompts and resources (server-everything) as to tools.

mod common;
use common::*;
use mcp_gateway::auth::hash_key;
use mcp_gateway::auth::jsonwebtoken::{
    Algorithm, EncodingKey, Header, encode, get_current_timestamp,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const STATELESS: &str = "2026-07-28";

fn rbac_config() -> mcp_gateway::Config {
    config(&format!(
        "auth:\n  strategy: api-key\n  adminRoles: [reader, writer]\n  apiKeys:\n    - {{ name: alpha, key: alpha-key, roles: [reader] }}\n    - {{ name: beta, keyHash: \"{}\", roles: [writer] }}\naccess:\n  - {{ roles: [reader], allow: [\"ts__echo\"] }}\n  - {{ roles: [writer], allow: [\"ts__add\"] }}\nservers:\n{}",
        hash_key("beta-key"),
        test_server_yaml("ts", &[], "")
    ))
}

/// `method path` with headers; (status, headers, body as JSON or text).
async fn request(
    gw: &TestGateway,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = gw.http.request(method, gw.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(b.to_string());
    }
    let res = req.send().await.expect("HTTP request");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    // An SSE answer: the last `data:` line carries the JSON-RPC response.
    let json_text = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .unwrap_or(&text)
        .to_string();
    let v = serde_json::from_str(&json_text).unwrap_or(Value::String(text));
    (status, headers, v)
}

/// A 2026-07-28 MCP request (one POST, no session) as `key`.
async fn mcp(gw: &TestGateway, key: &str, id: i64, method: &str, params: Value) -> (u16, Value) {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": STATELESS,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "auth-test", "version": "1.0.0"},
    });
    let name = params["name"]
        .as_str()
        .or(params["uri"].as_str())
        .map(str::to_string);
    let bearer = format!("Bearer {key}");
    let mut headers = vec![
        ("authorization", bearer.as_str()),
        ("mcp-protocol-version", STATELESS),
        ("mcp-method", method),
    ];
    if let Some(n) = &name {
        headers.push(("mcp-name", n));
    }
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let (status, _, v) = request(gw, reqwest::Method::POST, "/mcp", &headers, Some(body)).await;
    (status, v)
}

async fn rest_tools(gw: &TestGateway, key: &str) -> Vec<String> {
    let (status, _, v) = request(
        gw,
        reqwest::Method::GET,
        "/api/v1/tools",
        &[("x-api-key", key)],
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let mut names: Vec<String> = v["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

async fn rest_call(gw: &TestGateway, key: &str, tool: &str, args: Value) -> (u16, Value) {
    let (status, _, v) = request(
        gw,
        reqwest::Method::POST,
        "/api/v1/tools/call",
        &[("authorization", &format!("Bearer {key}"))],
        Some(json!({"tool": tool, "arguments": args})),
    )
    .await;
    (status, v)
}

fn challenge(h: &reqwest::header::HeaderMap) -> &str {
    h.get("www-authenticate")
        .expect("a WWW-Authenticate challenge")
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn two_keys_see_and_call_different_tools() {
    let gw = TestGateway::start(rbac_config()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while rest_tools(&gw, "alpha-key").await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "test server never listed its tools"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // REST lists
    assert_eq!(rest_tools(&gw, "alpha-key").await, ["echo"]);
    assert_eq!(rest_tools(&gw, "beta-key").await, ["add"]);

    // REST calls: own tool works, the other's is 403
    let (s, v) = rest_call(&gw, "alpha-key", "ts__echo", json!({"text": "hi"})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(text(&v), "hi");
    let (s, v) = rest_call(&gw, "alpha-key", "ts__add", json!({"a": 1, "b": 2})).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["code"], "forbidden");
    let (s, v) = rest_call(&gw, "beta-key", "add", json!({"a": 1, "b": 2})).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = rest_call(&gw, "beta-key", "echo", json!({"text": "x"})).await;
    assert_eq!(
        s, 403,
        "bare names are checked against the server that would answer: {v}"
    );
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(!msg.contains("reader") && !msg.contains("writer"), "{msg}");

    // MCP tools/list per caller
    let names = |v: &Value| -> Vec<String> {
        v["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("no tools in {v}"))
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (s, v) = mcp(&gw, "alpha-key", 1, "tools/list", json!({})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(names(&v), ["ts__echo"]);
    let (_, v) = mcp(&gw, "beta-key", 2, "tools/list", json!({})).await;
    assert_eq!(names(&v), ["ts__add"]);

    // MCP tools/call: allowed, forbidden, unknown
    let (_, v) = mcp(
        &gw,
        "alpha-key",
        3,
        "tools/call",
        json!({"name": "ts__echo", "arguments": {"text": "yo"}}),
    )
    .await;
    assert_eq!(v["result"]["content"][0]["text"], "yo", "{v}");
    let (_, v) = mcp(
        &gw,
        "alpha-key",
        4,
        "tools/call",
        json!({"name": "ts__add", "arguments": {"a": 1, "b": 2}}),
    )
    .await;
    let err = &v["error"];
    assert!(err["code"].is_i64(), "{v}");
    assert_eq!(
        err["message"],
        "forbidden: this tool is not available to this caller"
    );
    let (_, v) = mcp(
        &gw,
        "beta-key",
        5,
        "tools/call",
        json!({"name": "ts__echo", "arguments": {"text": "x"}}),
    )
    .await;
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not available"),
        "{v}"
    );

    // Refusals are counted and logged under the key's name, never the key.
    let (_, _, m) = request(
        &gw,
        reqwest::Method::GET,
        "/api/v1/metrics",
        &[("x-api-key", "alpha-key")],
        None,
    )
    .await;
    assert!(
        m["total"]["outcomes"]["forbidden"].as_u64().unwrap() >= 4,
        "{m}"
    );
    let (_, _, log) = request(
        &gw,
        reqwest::Method::GET,
        "/api/v1/requests",
        &[("x-api-key", "beta-key")],
        None,
    )
    .await;
    let text = log.to_string();
    assert!(
        text.contains("\"alpha\"") && text.contains("\"beta\""),
        "{text}"
    );
    assert!(
        !text.contains("alpha-key") && !text.contains("beta-key"),
        "{text}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn missing_and_bad_credentials_get_401_with_a_challenge() {
    let gw = TestGateway::start(rbac_config()).await;
    // Probes stay open.
    for p in ["/healthz", "/readyz"] {
        let (s, _, _) = request(&gw, reqwest::Method::GET, p, &[], None).await;
        assert!(s == 200 || s == 503, "{p}: {s}");
        assert_ne!(s, 401, "{p}");
    }
    // REST: missing, wrong key, wrong scheme
    let (s, h, v) = request(&gw, reqwest::Method::GET, "/api/v1/tools", &[], None).await;
    assert_eq!(s, 401, "{v}");
    assert_eq!(v["error"]["code"], "missing_credentials");
    assert_eq!(challenge(&h), "Bearer realm=\"mcp-gateway\"");
    let (s, h, v) = request(
        &gw,
        reqwest::Method::GET,
        "/api/v1/servers",
        &[("x-api-key", "nope")],
        None,
    )
    .await;
    assert_eq!(s, 401, "{v}");
    assert_eq!(v["error"]["code"], "invalid_api_key");
    assert!(challenge(&h).contains("error=\"invalid_token\""));
    let (s, _, _) = request(
        &gw,
        reqwest::Method::POST,
        "/api/v1/tools/call",
        &[("authorization", "Basic YWxwaGEta2V5")],
        Some(json!({"tool": "ts__echo"})),
    )
    .await;
    assert_eq!(s, 401);
    // Unknown paths do not reveal themselves to strangers.
    let (s, _, _) = request(&gw, reqwest::Method::GET, "/nope", &[], None).await;
    assert_eq!(s, 401);
    // MCP endpoint
    let (s, _) = mcp(&gw, "wrong-key", 1, "tools/list", json!({})).await;
    assert_eq!(s, 401);
    let (s, h, v) = request(
        &gw,
        reqwest::Method::POST,
        "/mcp",
        &[],
        Some(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})),
    )
    .await;
    assert_eq!(s, 401, "{v}");
    assert!(challenge(&h).starts_with("Bearer "));
    let (s, _, _) = request(&gw, reqwest::Method::GET, "/sse", &[], None).await;
    assert_eq!(s, 401);
    // Counted by reason.
    let (_, _, m) = request(
        &gw,
        reqwest::Method::GET,
        "/api/v1/metrics",
        &[("x-api-key", "beta-key")],
        None,
    )
    .await;
    let f = &m["authFailures"];
    assert!(f["missing_credentials"].as_u64().unwrap() >= 3, "{m}");
    assert!(f["invalid_api_key"].as_u64().unwrap() >= 3, "{m}");
    gw.stop().await;
}

#[tokio::test]
async fn oauth_mode_serves_metadata_and_checks_audience() {
    let cfg = config(&format!(
        "auth:\n  strategy: oauth\n  jwt: {{ secret: s3cret, algorithms: [HS256], issuer: 'https://idp.test' }}\n  oauth:\n    resource: 'https://gw.test/mcp'\n    authorizationServers: ['https://idp.test']\n    scopesSupported: [tools]\naccess:\n  - {{ roles: [tools], allow: ['ts__*'] }}\nservers:\n{}",
        test_server_yaml("ts", &[], "")
    ));
    let gw = TestGateway::start(cfg).await;
    for p in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let (s, _, v) = request(&gw, reqwest::Method::GET, p, &[], None).await;
        assert_eq!(s, 200, "{p}: {v}");
        assert_eq!(v["resource"], "https://gw.test/mcp");
        assert_eq!(v["authorization_servers"][0], "https://idp.test");
    }
    let (s, h, _) = request(&gw, reqwest::Method::GET, "/api/v1/tools", &[], None).await;
    assert_eq!(s, 401);
    assert_eq!(
        challenge(&h),
        "Bearer resource_metadata=\"https://gw.test/.well-known/oauth-protected-resource/mcp\""
    );
    let token = |aud: &str| {
        let claims = json!({
            "sub": "svc", "iss": "https://idp.test", "aud": aud,
            "exp": get_current_timestamp() + 60, "scope": "tools",
        });
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap()
    };
    let (s, _, v) = request(
        &gw,
        reqwest::Method::GET,
        "/api/v1/tools",
        &[(
            "authorization",
            &format!("Bearer {}", token("https://gw.test/mcp")),
        )],
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, h, v) = request(
        &gw,
        reqwest::Method::GET,
        "/api/v1/tools",
        &[(
            "authorization",
            &format!("Bearer {}", token("https://other.test")),
        )],
        None,
    )
    .await;
    assert_eq!(s, 401, "{v}");
    assert_eq!(v["error"]["code"], "invalid_audience");
    assert!(challenge(&h).contains("error=\"invalid_token\""));
    gw.stop().await;
}

/// A session belongs to the caller that opened it: another key holding the session id
/// gets the same 404 as for an unknown session and cannot read, use or end it.
#[tokio::test]
async fn sessions_belong_to_the_caller_that_opened_them() {
    let gw = TestGateway::start(rbac_config()).await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let (status, h, v) = request(
        &gw,
        reqwest::Method::POST,
        "/mcp",
        &[("authorization", "Bearer alpha-key")],
        Some(init),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let sid = h["mcp-session-id"].to_str().unwrap().to_string();
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let (status, _, v) = request(
        &gw,
        reqwest::Method::POST,
        "/mcp",
        &[
            ("authorization", "Bearer alpha-key"),
            ("mcp-session-id", &sid),
        ],
        Some(list.clone()),
    )
    .await;
    assert_eq!(status, 200, "the owner uses its session: {v}");
    let (status, _, v) = request(
        &gw,
        reqwest::Method::POST,
        "/mcp",
        &[("x-api-key", "beta-key"), ("mcp-session-id", &sid)],
        Some(list),
    )
    .await;
    assert_eq!(status, 404, "another caller sees an unknown session: {v}");
    let (status, _, _) = request(
        &gw,
        reqwest::Method::GET,
        "/mcp",
        &[
            ("x-api-key", "beta-key"),
            ("mcp-session-id", &sid),
            ("accept", "text/event-stream"),
        ],
        None,
    )
    .await;
    assert_eq!(status, 404, "no stream for another caller");
    let (status, _, _) = request(
        &gw,
        reqwest::Method::DELETE,
        "/mcp",
        &[("x-api-key", "beta-key"), ("mcp-session-id", &sid)],
        None,
    )
    .await;
    assert_eq!(status, 404, "another caller cannot end it");
    let (status, _, _) = request(
        &gw,
        reqwest::Method::DELETE,
        "/mcp",
        &[
            ("authorization", "Bearer alpha-key"),
            ("mcp-session-id", &sid),
        ],
        None,
    )
    .await;
    assert_eq!(status, 204, "the owner ends it");
    gw.stop().await;
}

/// Access rules on prompts and resources: lists are filtered, forbidden items answer like
/// unknown ones (server-everything has both).
#[tokio::test]
async fn access_rules_cover_prompts_and_resources() {
    require_peers();
    let gw = TestGateway::start(config(&format!(
        "auth:\n  strategy: api-key\n  apiKeys:\n    - {{ name: alpha, key: alpha-key, roles: [reader] }}\n    - {{ name: beta, key: beta-key, roles: [writer] }}\naccess:\n  - {{ roles: [reader], allow: [\"ev__*\"], deny: [\"prompt:ev__args-*\", \"resource:ev__demo://resource/dynamic/*\"] }}\n  - {{ roles: [writer], allow: [\"tool:ev__*\"] }}\nservers:\n  - id: ev\n    command: node\n    args: [{:?}, \"stdio\"]\n",
        everything_js().display().to_string()
    )))
    .await;
    let names = |v: &Value, key: &str, field: &str| -> Vec<String> {
        v["result"][key]
            .as_array()
            .unwrap_or_else(|| panic!("no {key}: {v}"))
            .iter()
            .filter_map(|i| i[field].as_str().map(str::to_string))
            .collect()
    };
    // alpha: every prompt but args-prompt, static resources, no dynamic template.
    let (_, v) = mcp(&gw, "alpha-key", 1, "prompts/list", json!({})).await;
    let prompts = names(&v, "prompts", "name");
    assert!(
        prompts.contains(&"ev__simple-prompt".to_string()),
        "{prompts:?}"
    );
    assert!(
        !prompts.iter().any(|p| p.contains("args-prompt")),
        "{prompts:?}"
    );
    let (_, v) = mcp(&gw, "alpha-key", 2, "resources/list", json!({})).await;
    let uris = names(&v, "resources", "uri");
    let doc = uris
        .iter()
        .find(|u| u.starts_with("demo://resource/static/"))
        .unwrap_or_else(|| panic!("{uris:?}"))
        .clone();
    let (_, v) = mcp(&gw, "alpha-key", 3, "resources/templates/list", json!({})).await;
    let templates = names(&v, "resourceTemplates", "uriTemplate");
    assert!(
        !templates
            .iter()
            .any(|t| t.starts_with("demo://resource/dynamic/")),
        "{templates:?}"
    );
    let (status, v) = mcp(
        &gw,
        "alpha-key",
        4,
        "prompts/get",
        json!({"name": "ev__simple-prompt"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert!(v["result"]["messages"].is_array(), "{v}");
    let (_, v) = mcp(&gw, "alpha-key", 5, "resources/read", json!({"uri": doc})).await;
    assert!(v["result"]["contents"].is_array(), "{v}");
    // Forbidden items answer exactly like unknown ones.
    let (_, forbidden) = mcp(
        &gw,
        "alpha-key",
        6,
        "prompts/get",
        json!({"name": "ev__args-prompt", "arguments": {"city": "x"}}),
    )
    .await;
    let (_, unknown) = mcp(
        &gw,
        "alpha-key",
        6,
        "prompts/get",
        json!({"name": "ev__no-such-prompt"}),
    )
    .await;
    assert_eq!(
        forbidden["error"]["code"], unknown["error"]["code"],
        "{forbidden} {unknown}"
    );
    assert_eq!(
        forbidden["error"]["message"]
            .as_str()
            .unwrap()
            .replace("args-prompt", "X"),
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .replace("no-such-prompt", "X"),
    );
    let dynamic = "demo://resource/dynamic/text/1";
    let (_, v) = mcp(
        &gw,
        "alpha-key",
        7,
        "resources/read",
        json!({"uri": dynamic}),
    )
    .await;
    assert_eq!(
        v["error"]["message"],
        format!("Resource not found: {dynamic}"),
        "{v}"
    );

    // beta may only call tools: no prompts, no resources, nothing readable.
    let (_, v) = mcp(&gw, "beta-key", 8, "prompts/list", json!({})).await;
    assert!(names(&v, "prompts", "name").is_empty(), "{v}");
    let (_, v) = mcp(&gw, "beta-key", 9, "resources/list", json!({})).await;
    assert!(names(&v, "resources", "uri").is_empty(), "{v}");
    let (_, v) = mcp(&gw, "beta-key", 10, "resources/read", json!({"uri": doc})).await;
    assert_eq!(
        v["error"]["message"],
        format!("Resource not found: {doc}"),
        "{v}"
    );
    let (_, v) = mcp(
        &gw,
        "beta-key",
        11,
        "prompts/get",
        json!({"name": "ev__simple-prompt"}),
    )
    .await;
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown prompt"),
        "{v}"
    );
    let (_, v) = mcp(
        &gw,
        "beta-key",
        12,
        "tools/call",
        json!({"name": "ev__echo", "arguments": {"message": "hi"}}),
    )
    .await;
    assert_eq!(v["result"]["content"][0]["text"], "Echo: hi", "{v}");
    gw.stop().await;
}

/// Each front end answers refusals in its own shape: `/mcp` (hot POST and the other
/// methods alike) a JSON-RPC error, REST its JSON error, with the same 401 and challenge.
#[tokio::test]
async fn the_mcp_endpoint_refuses_in_json_rpc() {
    let gw = TestGateway::start(rbac_config()).await;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    for (method, body) in [
        (reqwest::Method::POST, Some(body)),
        (reqwest::Method::GET, None),
        (reqwest::Method::DELETE, None),
    ] {
        let (s, h, v) = request(&gw, method.clone(), "/mcp", &[], body).await;
        assert_eq!(s, 401, "{method} {v}");
        assert_eq!(challenge(&h), "Bearer realm=\"mcp-gateway\"");
        assert_eq!(v["jsonrpc"], "2.0", "{method} {v}");
        assert_eq!(v["error"]["code"], -32005, "{method} {v}");
        assert_eq!(v["error"]["data"]["reason"], "missing_credentials", "{v}");
    }
    let (s, _, v) = request(&gw, reqwest::Method::GET, "/api/v1/tools", &[], None).await;
    assert_eq!(s, 401, "{v}");
    assert_eq!(v["error"]["code"], "missing_credentials", "{v}");
    gw.stop().await;
}

/// Guessing keys is bounded per client IP (issue 20, item 11): after `auth.failureLimit`
/// failures in the window, that IP gets `429` with `Retry-After`, on REST and `/mcp`,
/// without its credentials being checked, until the window ends; a missing credential
/// (how every OAuth client starts) does not count.
#[tokio::test]
async fn failed_authentication_is_budgeted_per_ip() {
    let gw = TestGateway::start(config(&format!(
        "auth:\n  strategy: api-key\n  apiKeys:\n    - {{ name: a, key: good-key }}\n  failureLimit: {{ limit: 5, windowSeconds: 2 }}\nservers:\n{}",
        test_server_yaml("ts", &[], "")
    )))
    .await;
    let get = |key: &'static str| {
        let gw = &gw;
        async move {
            let headers: Vec<(&str, &str)> = if key.is_empty() {
                vec![]
            } else {
                vec![("x-api-key", key)]
            };
            request(gw, reqwest::Method::GET, "/api/v1/tools", &headers, None).await
        }
    };
    for _ in 0..8 {
        assert_eq!(get("").await.0, 401, "a missing key is not a guess");
    }
    for i in 0..5 {
        assert_eq!(get("wrong").await.0, 401, "guess {i}");
    }
    let (status, headers, v) = get("wrong").await;
    assert_eq!(status, 429, "{v}");
    assert_eq!(v["error"]["code"], "too_many_auth_failures", "{v}");
    assert!(headers.contains_key("retry-after"), "{headers:?}");
    // Not even the right key is checked until the window ends.
    assert_eq!(get("good-key").await.0, 429);
    let (status, _, v) = request(
        &gw,
        reqwest::Method::POST,
        "/mcp",
        &[
            ("x-api-key", "good-key"),
            ("accept", "application/json, text/event-stream"),
        ],
        Some(json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})),
    )
    .await;
    assert_eq!(status, 429, "{v}");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(get("good-key").await.0, 200);
    gw.stop().await;
}

/// The admin side of the REST API asks who is asking (issue 20, item 5): a caller without
/// a role in `auth.adminRoles` reads only their own calls in the request log, sees only the
/// tools they may use in server details, and gets 403 from the metrics JSON.
#[tokio::test]
async fn non_admins_see_only_their_own_calls_and_tools() {
    let gw = TestGateway::start(config(&format!(
        "auth:\n  strategy: api-key\n  adminRoles: [ops]\n  apiKeys:\n    - {{ name: alpha, key: alpha-key, roles: [reader] }}\n    - {{ name: root, key: root-key, roles: [ops] }}\naccess:\n  - {{ roles: [reader], allow: [\"ts__echo\"] }}\n  - {{ roles: [ops], allow: [\"*\"] }}\nservers:\n{}",
        test_server_yaml("ts", &[], "")
    )))
    .await;
    let as_ =
        |key: &'static str, method: reqwest::Method, path: &'static str, body: Option<Value>| {
            let gw = &gw;
            async move { request(gw, method, path, &[("x-api-key", key)], body).await }
        };
    let call = |key, tool: &str| {
        as_(
            key,
            reqwest::Method::POST,
            "/api/v1/tools/call",
            Some(json!({"tool": tool, "arguments": {"text": "x", "a": 1, "b": 2}})),
        )
    };
    assert_eq!(call("alpha-key", "ts__echo").await.0, 200);
    assert_eq!(call("root-key", "ts__add").await.0, 200);

    let (status, _, v) = as_("alpha-key", reqwest::Method::GET, "/api/v1/requests", None).await;
    assert_eq!(status, 200, "{v}");
    let who: Vec<&str> = v["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["identity"].as_str().unwrap_or("-"))
        .collect();
    assert!(!who.is_empty() && who.iter().all(|w| *w == "alpha"), "{v}");
    let (_, _, v) = as_("root-key", reqwest::Method::GET, "/api/v1/requests", None).await;
    let who: Vec<&str> = v["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["identity"].as_str().unwrap_or("-"))
        .collect();
    assert!(who.contains(&"alpha") && who.contains(&"root"), "{v}");

    let (status, _, v) = as_(
        "alpha-key",
        reqwest::Method::GET,
        "/api/v1/servers/ts",
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let tools: Vec<&str> = v["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["qualifiedName"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["ts__echo"], "{v}");
    assert_eq!(v["toolCount"], 1, "{v}");
    let (_, _, v) = as_("alpha-key", reqwest::Method::GET, "/api/v1/servers", None).await;
    assert_eq!(v["servers"][0]["toolCount"], 1, "{v}");
    let (_, _, v) = as_("root-key", reqwest::Method::GET, "/api/v1/servers/ts", None).await;
    assert!(v["tools"].as_array().unwrap().len() > 1, "{v}");

    let (status, _, v) = as_("alpha-key", reqwest::Method::GET, "/api/v1/metrics", None).await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["error"]["code"], "admin_only", "{v}");
    let (status, _, _) = as_("root-key", reqwest::Method::GET, "/api/v1/metrics", None).await;
    assert_eq!(status, 200);
    gw.stop().await;
}
