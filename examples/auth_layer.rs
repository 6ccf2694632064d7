//! `AuthLayer` in front of a plain axum app that has nothing to do with MCP.
//!
//! ```text
//! cargo run --example auth_layer
//! curl -i localhost:3000/                                   # 200, open
//! curl -i localhost:3000/api/me                             # 401 + WWW-Authenticate
//! curl -i -H 'X-API-Key: reader-key' localhost:3000/api/me  # 200, "hello reader-bot"
//! curl -i -H 'Authorization: Bearer reader-key' -X POST localhost:3000/api/admin/reset  # 403
//! ```
//!
//! With `--check` it serves on a free port, runs those requests itself and exits.

use axum::extract::Extension;
use axum::routing::{get, post};
use axum::{Json, Router};
use mcp_gateway::auth::{ApiKeys, AuthLayer, Identity, hash_key};
use std::sync::Arc;

async fn me(Extension(who): Extension<Arc<Identity>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "hello": who.subject,
        "roles": who.roles,
    }))
}

fn app() -> Router {
    // Keys may be given as digests so the secret never sits in source or config.
    let keys = ApiKeys::new()
        .key("reader-bot", "reader-key", ["reader"])
        .hashed_key("ops", &hash_key("ops-key"), ["admin"])
        .expect("a valid sha256 digest");
    let auth = AuthLayer::api_keys(keys).realm("example");
    let admin = Router::new()
        .route("/api/admin/reset", post(|| async { "reset done" }))
        .layer(auth.clone().require_roles(["admin"]));
    let api = Router::new()
        .route("/api/me", get(me))
        .layer(auth.on_failure(|e| eprintln!("refused: {}", e.reason())));
    Router::new()
        .route("/", get(|| async { "public page" }))
        .merge(api)
        .merge(admin)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let check = std::env::args().any(|a| a == "--check");
    let addr = if check {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:3000"
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app()).await });
    if !check {
        println!("listening on http://{local}");
        return Ok(server.await??);
    }
    let http = reqwest::Client::new();
    let url = |p: &str| format!("http://{local}{p}");
    let cases = [
        ("GET", "/", None, 200),
        ("GET", "/api/me", None, 401),
        ("GET", "/api/me", Some("reader-key"), 200),
        ("GET", "/api/me", Some("wrong"), 401),
        ("POST", "/api/admin/reset", Some("reader-key"), 403),
        ("POST", "/api/admin/reset", Some("ops-key"), 200),
    ];
    for (method, path, key, want) in cases {
        let mut req = http.request(method.parse()?, url(path));
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        let res = req.send().await?;
        let status = res.status().as_u16();
        let challenge = res
            .headers()
            .get("www-authenticate")
            .map(|h| h.to_str().unwrap_or("").to_string());
        println!(
            "{method} {path} key={key:?} -> {status} {challenge:?} {}",
            res.text().await?
        );
        assert_eq!(status, want, "{method} {path}");
    }
    server.abort();
    Ok(())
}
