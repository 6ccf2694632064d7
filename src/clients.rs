//! `mcp-gateway import` and `mcp-gateway connect`: the gateway and the AI clients' own MCP
//! configuration files, in both directions.

use mcp_gateway::config::import::{Client, Imported, import};
use mcp_gateway::config::{Config, Format};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The format of a config path by its extension; YAML when it has none we know.
fn fmt_of(path: &Path) -> Format {
    Format::from_path(path).unwrap_or(Format::Yaml)
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .map_or_else(|| PathBuf::from("."), PathBuf::from)
}

fn default_path(client: Client) -> PathBuf {
    let appdata = std::env::var_os("APPDATA").map(PathBuf::from);
    client.default_path(&home(), appdata.as_deref())
}

/// `import [--from C] [FILE] [-o OUT]`.
pub fn import_cmd(from: &str, file: Option<&Path>, out: &Path) -> ExitCode {
    let client = match from {
        "auto" => None,
        c => match Client::parse(c) {
            Some(c) => Some(c),
            None => {
                eprintln!("--from must be claude, cursor, vscode or auto");
                return ExitCode::from(2);
            }
        },
    };
    let path = match (file, client) {
        (Some(f), _) => f.to_path_buf(),
        (None, Some(c)) => default_path(c),
        (None, None) => {
            let found = [Client::Claude, Client::Cursor, Client::Vscode]
                .into_iter()
                .map(default_path)
                .find(|p| p.exists());
            match found {
                Some(p) => p,
                None => {
                    eprintln!("no Claude Desktop, Cursor or VS Code MCP file found; name one");
                    return ExitCode::from(1);
                }
            }
        }
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot read {}: {e}", path.display());
            return ExitCode::from(1);
        }
    };
    let imported = match import(&text, client) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::from(1);
        }
    };
    match write_config(out, &imported) {
        Ok(added) => {
            println!(
                "imported {added} server(s) from {} into {}",
                path.display(),
                out.display()
            );
        }
        Err(e) => {
            eprintln!("{}: {e}", out.display());
            return ExitCode::from(1);
        }
    }
    if !imported.variables.is_empty() {
        println!("set these variables before starting the gateway (values are not copied):");
        for v in &imported.variables {
            println!("  {}  ({})", v.name, v.replaces);
        }
    }
    for n in &imported.notes {
        println!("note: {n}");
    }
    // The structure must be valid whatever the variables will hold.
    let text = std::fs::read_to_string(out).unwrap_or_default();
    match Config::parse(&text, fmt_of(out), out, |_| Some("x".into())) {
        Ok(_) => ExitCode::SUCCESS,
        Err(errs) => {
            eprintln!("{errs}");
            ExitCode::from(1)
        }
    }
}

/// Writes `imported` into `out`: appended to its `servers` when it exists (servers whose id
/// is taken are left out), else as a new config. Returns how many servers went in.
fn write_config(out: &Path, imported: &Imported) -> Result<usize, String> {
    let mut entries: Vec<serde_json::Value> = Vec::new();
    for s in &imported.servers {
        entries.push(serde_json::to_value(s).map_err(|e| e.to_string())?);
    }
    if out.exists() {
        let text = std::fs::read_to_string(out).map_err(|e| e.to_string())?;
        let mut doc: serde_json::Value = match fmt_of(out) {
            Format::Json => serde_json::from_str(&text).map_err(|e| e.to_string())?,
            Format::Toml => toml::from_str(&text).map_err(|e| e.to_string())?,
            Format::Yaml => yaml_serde::from_str(&text).map_err(|e| e.to_string())?,
        };
        if doc.is_null() {
            doc = serde_json::json!({});
        }
        let list = doc
            .as_object_mut()
            .ok_or("not a config object")?
            .entry("servers")
            .or_insert_with(|| serde_json::json!([]));
        let list = list.as_array_mut().ok_or("`servers` is not a list")?;
        let taken: Vec<String> = list
            .iter()
            .filter_map(|s| s.get("id").and_then(|i| i.as_str()).map(String::from))
            .collect();
        let mut added = 0;
        for e in entries {
            let id = e["id"].as_str().unwrap_or_default().to_string();
            if taken.contains(&id) {
                println!("note: {id}: a server with this id is already configured; left as it is");
                continue;
            }
            list.push(e);
            added += 1;
        }
        let text = match fmt_of(out) {
            Format::Json => serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?,
            Format::Toml => toml::to_string(&doc).map_err(|e| e.to_string())?,
            Format::Yaml => yaml_serde::to_string(&doc).map_err(|e| e.to_string())?,
        };
        write_atomically(out, &text)?;
        return Ok(added);
    }
    let n = entries.len();
    let doc = serde_json::json!({"host": "127.0.0.1", "port": 4000, "servers": entries});
    let text = match fmt_of(out) {
        Format::Json => serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?,
        Format::Toml => toml::to_string(&doc).map_err(|e| e.to_string())?,
        // Straight from the server entries, so each keeps its fields in the usual order.
        Format::Yaml => format!(
            "# Imported by `mcp-gateway import`; ${{VAR}} values come from the environment.\n\
             host: 127.0.0.1\nport: 4000\nservers:\n{}",
            yaml_serde::to_string(&imported.servers).map_err(|e| e.to_string())?
        ),
    };
    write_atomically(out, &text)?;
    Ok(n)
}

/// Writes `text` to a file beside `path`, then renames it over `path`: a crash leaves the
/// old file or the new one, never half of either.
fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("import.tmp");
    std::fs::write(&tmp, text).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())
}

/// `connect CLIENT [--url U] [--api-key-env VAR] [--write]`.
pub fn connect_cmd(client: &str, url: &str, api_key_env: Option<&str>, write: bool) -> ExitCode {
    let Some(client) = Client::parse(client) else {
        eprintln!("the client must be claude, cursor or vscode");
        return ExitCode::from(2);
    };
    let headers = api_key_env.map(|v| match client {
        Client::Vscode => serde_json::json!({"x-api-key": format!("${{env:{v}}}")}),
        _ => serde_json::json!({"x-api-key": format!("${{{v}}}")}),
    });
    let (key, mut entry) = match client {
        // Claude Desktop speaks stdio only: `mcp-remote` bridges it to the gateway's URL.
        Client::Claude => {
            let mut args = vec![
                serde_json::json!("-y"),
                serde_json::json!("mcp-remote"),
                serde_json::json!(url),
            ];
            if let Some(v) = api_key_env {
                args.push(serde_json::json!("--header"));
                args.push(serde_json::json!(format!("x-api-key:${{{v}}}")));
            }
            (
                "mcpServers",
                serde_json::json!({"command": "npx", "args": args}),
            )
        }
        Client::Cursor => ("mcpServers", serde_json::json!({"url": url})),
        Client::Vscode => ("servers", serde_json::json!({"type": "http", "url": url})),
    };
    if let (Some(h), Client::Cursor | Client::Vscode) = (headers, client) {
        entry["headers"] = h;
    }
    let snippet = serde_json::json!({ key: { "mcp-gateway": entry.clone() } });
    if !write {
        println!("{}", serde_json::to_string_pretty(&snippet).expect("JSON"));
        return ExitCode::SUCCESS;
    }
    let path = default_path(client);
    let mut doc: serde_json::Value = match std::fs::read_to_string(&path) {
        Ok(text) => match serde_json::from_str(&text) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{}: not JSON ({e}); left as it is", path.display());
                return ExitCode::from(1);
            }
        },
        Err(_) => serde_json::json!({}),
    };
    if path.exists() {
        let backup = path.with_extension("json.bak");
        if let Err(e) = std::fs::copy(&path, &backup) {
            eprintln!("cannot back up {}: {e}", path.display());
            return ExitCode::from(1);
        }
        println!("backup: {}", backup.display());
    }
    let Some(obj) = doc.as_object_mut() else {
        eprintln!("{}: not a JSON object; left as it is", path.display());
        return ExitCode::from(1);
    };
    let list = obj.entry(key).or_insert_with(|| serde_json::json!({}));
    let Some(list) = list.as_object_mut() else {
        eprintln!(
            "{}: `{key}` is not an object; left as it is",
            path.display()
        );
        return ExitCode::from(1);
    };
    list.insert("mcp-gateway".into(), entry);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(&path, serde_json::to_string_pretty(&doc).expect("JSON")) {
        Ok(()) => {
            println!("added `mcp-gateway` ({url}) to {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot write {}: {e}", path.display());
            ExitCode::from(1)
        }
    }
}
