//! `mcp-gateway requests`: the request log of a running gateway, one request in detail,
//! and replaying a call, over the gateway's REST API (`/api/v1/requests...`).
//!
//! The gateway is found with `--url`, else the host and port of the config file (`-c`),
//! else `http://127.0.0.1:4000`; `--api-key` (or `MCP_GATEWAY_API_KEY`) is sent as
//! `Authorization: Bearer`, which the gateway takes for API keys and JWTs alike.

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// `mcp-gateway requests ...`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RequestsArgs {
    #[command(subcommand)]
    action: Option<Action>,
    #[command(flatten)]
    list: ListArgs,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Subcommand)]
enum Action {
    /// One request in detail: caller, timings, captured arguments and result.
    Show {
        /// The request's id (the ID column of the list).
        id: u64,
    },
    /// Send a logged tools/call again, as you (your access rules and rate limit apply),
    /// and compare its result with the original's.
    Replay {
        /// The request's id.
        id: u64,
        /// Arguments to send instead of the captured ones (a JSON object).
        #[arg(long, value_name = "JSON", conflicts_with = "patch")]
        arguments: Option<String>,
        /// A JSON merge patch (RFC 7396) applied to the captured arguments:
        /// `{"path": "/other"}` changes one, `{"key": null}` removes one.
        #[arg(long, value_name = "JSON")]
        patch: Option<String>,
    },
}

#[derive(Args)]
struct ListArgs {
    /// Only calls to this server.
    #[arg(long)]
    server: Option<String>,
    /// Only calls of this tool (the name the server knows).
    #[arg(long)]
    tool: Option<String>,
    /// Only this outcome (`ok`, `timeout`, ...), HTTP status (`504`), or `error` for every
    /// failure.
    #[arg(long)]
    status: Option<String>,
    /// How many of the newest requests to show.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Keep polling and print new requests as they are logged (Ctrl-C stops).
    #[arg(long, short)]
    follow: bool,
}

#[derive(Args)]
struct Conn {
    /// The gateway's base URL (default: host and port of the config file).
    #[arg(long, env = "MCP_GATEWAY_URL", global = true)]
    url: Option<String>,
    /// API key (or token) to authenticate with.
    #[arg(
        long,
        env = "MCP_GATEWAY_API_KEY",
        hide_env_values = true,
        global = true
    )]
    api_key: Option<String>,
    /// Config file to take the gateway's address from when --url is not given.
    #[arg(
        short,
        long,
        env = "MCP_GATEWAY_CONFIG",
        default_value = "mcp-gateway.yml",
        global = true
    )]
    config: PathBuf,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
}

/// Runs `mcp-gateway requests`.
pub fn run(args: RequestsArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcp-gateway: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let client = Client {
        http: reqwest::Client::new(),
        base: base_url(&args.conn),
        key: args.conn.api_key.clone(),
    };
    let json = args.conn.json;
    let res = rt.block_on(async {
        match args.action {
            None => list(&client, &args.list, json).await,
            Some(Action::Show { id }) => show(&client, id, json).await,
            Some(Action::Replay {
                id,
                arguments,
                patch,
            }) => replay(&client, id, arguments, patch, json).await,
        }
    });
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, message)) => {
            eprintln!("mcp-gateway: {message}");
            ExitCode::from(code)
        }
    }
}

/// An exit code and what to say.
struct Failure(u8, String);

struct Client {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl Client {
    /// Sends `req` and returns the JSON answer of a 2xx; anything else is a failure that
    /// quotes the gateway's error message.
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, Failure> {
        let req = match &self.key {
            Some(k) => req.bearer_auth(k),
            None => req,
        };
        let res = req
            .timeout(Duration::from_secs(300))
            .send()
            .await
            .map_err(|e| {
                Failure(
                    1,
                    format!(
                        "cannot reach the gateway at {}: {e} (is it running? set --url)",
                        self.base
                    ),
                )
            })?;
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(v);
        }
        let mut message = format!(
            "{status}: {}",
            v["error"]["message"].as_str().unwrap_or(&v.to_string())
        );
        if status == reqwest::StatusCode::UNAUTHORIZED && self.key.is_none() {
            message.push_str(" (pass --api-key or set MCP_GATEWAY_API_KEY)");
        }
        if let Some(id) = v["error"]["replay"]["id"].as_u64() {
            message.push_str(&format!(
                " (logged as request {id}: mcp-gateway requests show {id})"
            ));
        }
        Err(Failure(1, message))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// `--url`, else `http://<host>:<port>` of the config file, else the default address.
fn base_url(conn: &Conn) -> String {
    if let Some(u) = &conn.url {
        return u.trim_end_matches('/').to_string();
    }
    let default = "http://127.0.0.1:4000".to_string();
    if !conn.config.exists() {
        return default;
    }
    match mcp_gateway::Config::load(&conn.config) {
        Ok(c) => {
            // A wildcard address is reached on loopback.
            let host = match c.host.as_str() {
                "0.0.0.0" | "" => "127.0.0.1".to_string(),
                "::" | "[::]" => "[::1]".to_string(),
                h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
                h => h.to_string(),
            };
            format!("http://{host}:{}", c.port)
        }
        Err(e) => {
            eprintln!(
                "mcp-gateway: cannot read the address from {} ({e}); using {default}",
                conn.config.display()
            );
            default
        }
    }
}

async fn list(c: &Client, f: &ListArgs, json: bool) -> Result<(), Failure> {
    let mut query: Vec<(&str, String)> = vec![("limit", f.limit.to_string())];
    for (k, v) in [
        ("server", &f.server),
        ("tool", &f.tool),
        ("status", &f.status),
    ] {
        if let Some(v) = v {
            query.push((k, v.clone()));
        }
    }
    let fetch = |after: Option<u64>| {
        let mut q = query.clone();
        if let Some(a) = after {
            q.push(("after", a.to_string()));
            // Everything new since the last poll, not only the newest few.
            q[0].1 = "1000".into();
        }
        let q: Vec<String> = q
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        c.send(
            c.http
                .get(c.url(&format!("/api/v1/requests?{}", q.join("&")))),
        )
    };
    let v = fetch(None).await?;
    let mut entries = requests_of(&v);
    let mut last = entries.iter().filter_map(|e| e["id"].as_u64()).max();
    if json && !f.follow {
        println!("{}", pretty(&Value::Array(entries)));
        return Ok(());
    }
    let mut table = Table::new(json);
    if !json && entries.is_empty() && !f.follow {
        if v["enabled"] == false {
            println!("the gateway keeps no request log (monitor.requestLog: false)");
        } else {
            println!(
                "no requests logged{}",
                if query.len() > 1 { " that match" } else { "" }
            );
        }
        return Ok(());
    }
    entries.reverse();
    table.print(&entries);
    if !f.follow {
        return Ok(());
    }
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut new = requests_of(&fetch(Some(last.unwrap_or(0))).await?);
        if let Some(m) = new.iter().filter_map(|e| e["id"].as_u64()).max() {
            last = Some(m);
        }
        new.reverse();
        table.print(&new);
    }
}

/// `v` percent-encoded for a query string (everything but RFC 3986's unreserved bytes).
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

fn requests_of(v: &Value) -> Vec<Value> {
    v["requests"].as_array().cloned().unwrap_or_default()
}

/// The list, as a table whose header is printed once (or as JSON lines).
struct Table {
    json: bool,
    header: bool,
}

const COLUMNS: [(&str, usize); 8] = [
    ("ID", 6),
    ("TIME", 12),
    ("CALLER", 12),
    ("SERVER", 14),
    ("TOOL", 22),
    ("STATUS", 6),
    ("OUTCOME", 14),
    ("MS", 9),
];

impl Table {
    fn new(json: bool) -> Self {
        Self {
            json,
            header: false,
        }
    }

    fn print(&mut self, entries: &[Value]) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        for e in entries {
            if self.json {
                let _ = writeln!(out, "{e}");
                continue;
            }
            if !self.header {
                self.header = true;
                let head: Vec<String> = COLUMNS.iter().map(|(h, w)| format!("{h:<w$}")).collect();
                let _ = writeln!(out, "{} NOTE", head.join(" "));
            }
            let time = e["time"].as_str().unwrap_or("");
            // `2026-11-25T21:29:07.123Z` → `21:29:07.123`.
            let time = time
                .split_once('T')
                .map_or(time, |(_, t)| t.trim_end_matches('Z'));
            let tool = e["tool"].as_str().or(e["method"].as_str()).unwrap_or("-");
            let cells = [
                e["id"].to_string(),
                time.to_string(),
                e["identity"].as_str().unwrap_or("-").to_string(),
                e["server"].as_str().unwrap_or("-").to_string(),
                tool.to_string(),
                e["status"].to_string(),
                e["outcome"].as_str().unwrap_or("-").to_string(),
                format!("{:.1}", e["durationMs"].as_f64().unwrap_or(0.0)),
            ];
            let row: Vec<String> = cells
                .iter()
                .zip(COLUMNS)
                .map(|(c, (_, w))| format!("{:<w$}", clip(c, w)))
                .collect();
            let mut note = Vec::new();
            if let Some(of) = e["replayOf"].as_u64() {
                note.push(format!("replay of {of}"));
            }
            if let Some(err) = e["error"].as_str() {
                note.push(clip(err, 60));
            }
            let _ = writeln!(out, "{} {}", row.join(" "), note.join("; "));
        }
    }
}

/// `s` cut to `width` characters, ending in `…` when cut.
fn clip(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
    t.push('…');
    t
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// `text` with every line indented by two spaces.
fn indented(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn show(c: &Client, id: u64, json: bool) -> Result<(), Failure> {
    let v = c
        .send(c.http.get(c.url(&format!("/api/v1/requests/{id}"))))
        .await?;
    if json {
        println!("{}", pretty(&v));
        return Ok(());
    }
    let r = &v["request"];
    let s = |k: &str| r[k].as_str().map(str::to_string);
    let ms = |k: &str| {
        r["timings"][k]
            .as_f64()
            .map_or("-".to_string(), |m| format!("{m:.1} ms"))
    };
    println!(
        "Request {id}  ({}, {})",
        s("method").unwrap_or_default(),
        s("transport").unwrap_or_default()
    );
    let mut rows: Vec<(&str, String)> = vec![
        ("time", s("time").unwrap_or_default()),
        ("caller", s("identity").unwrap_or_else(|| "-".into())),
    ];
    let server = s("server").unwrap_or_else(|| "-".into());
    rows.push((
        "server",
        match s("protocol") {
            Some(p) => format!("{server}  (protocol {p})"),
            None => server,
        },
    ));
    if let Some(t) = s("tool") {
        rows.push((
            "tool",
            match s("qualifiedName").filter(|q| *q != t) {
                Some(q) => format!("{t}  (listed as {q})"),
                None => t,
            },
        ));
    }
    rows.push((
        "outcome",
        format!("{} ({})", s("outcome").unwrap_or_default(), r["status"]),
    ));
    if let Some(e) = s("error") {
        rows.push(("error", e));
    }
    rows.push(("request id", s("requestId").unwrap_or_default()));
    if let Some(t) = s("traceId") {
        rows.push(("trace id", t));
    }
    rows.push((
        "timings",
        format!(
            "queued {} · upstream {} · total {}",
            ms("queuedMs"),
            ms("upstreamMs"),
            ms("totalMs")
        ),
    ));
    rows.push(("retries", r["retries"].to_string()));
    if let Some(of) = r["replayOf"].as_u64() {
        rows.push(("replay of", of.to_string()));
    }
    let cap = &r["capture"];
    let mut capture = format!(
        "arguments {} · result {}",
        cap["arguments"].as_str().unwrap_or("none"),
        cap["result"].as_str().unwrap_or("none")
    );
    if let Some(paths) = cap["redacted"].as_array() {
        let paths: Vec<&str> = paths.iter().filter_map(Value::as_str).collect();
        capture.push_str(&format!("  (redacted: {})", paths.join(", ")));
    }
    rows.push(("capture", capture));
    for (k, v) in rows {
        println!("  {k:<11} {v}");
    }
    for (title, key) in [("Arguments", "arguments"), ("Result", "result")] {
        if !r[key].is_null() {
            println!("{title}:\n{}", indented(&pretty(&r[key])));
        }
    }
    Ok(())
}

async fn replay(
    c: &Client,
    id: u64,
    arguments: Option<String>,
    patch: Option<String>,
    json: bool,
) -> Result<(), Failure> {
    let parse = |flag: &str, text: &str| {
        serde_json::from_str::<Value>(text)
            .map_err(|e| Failure(2, format!("--{flag} is not JSON: {e}")))
    };
    let body = match (arguments, patch) {
        (Some(a), _) => json!({ "arguments": parse("arguments", &a)? }),
        (None, Some(p)) => json!({ "patch": parse("patch", &p)? }),
        (None, None) => json!({}),
    };
    let v = c
        .send(
            c.http
                .post(c.url(&format!("/api/v1/requests/{id}/replay")))
                .json(&body),
        )
        .await?;
    if json {
        println!("{}", pretty(&v));
        return Ok(());
    }
    println!(
        "Replayed request {id} as request {} (server {}, tool {})",
        v["id"],
        v["server"].as_str().unwrap_or("-"),
        v["tool"].as_str().unwrap_or("-")
    );
    println!("Result:\n{}", indented(&pretty(&v["result"])));
    match v["diff"].as_object() {
        None => println!(
            "No diff: {}",
            v["diffUnavailable"]
                .as_str()
                .unwrap_or("no original result")
        ),
        Some(d) => {
            let paths = |k: &str| -> Vec<String> {
                d.get(k)
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|p| p.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let (added, removed) = (paths("added"), paths("removed"));
            let changed = d
                .get("changed")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if added.is_empty() && removed.is_empty() && changed.is_empty() {
                println!("Same result as request {id}.");
                return Ok(());
            }
            println!("Diff against request {id}:");
            for c in &changed {
                println!(
                    "  ~ {}: {} → {}",
                    display_path(c["path"].as_str().unwrap_or("")),
                    clip(&c["from"].to_string(), 80),
                    clip(&c["to"].to_string(), 80)
                );
            }
            for p in added {
                println!("  + {}", display_path(&p));
            }
            for p in removed {
                println!("  - {}", display_path(&p));
            }
            if d.get("truncated") == Some(&Value::Bool(true)) {
                println!("  … more differences not listed");
            }
        }
    }
    Ok(())
}

/// A pointer for reading: the whole document is `(whole result)`.
fn display_path(p: &str) -> &str {
    if p.is_empty() { "(whole result)" } else { p }
}
