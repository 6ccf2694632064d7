//! Turns the MCP server lists of AI clients (Claude Desktop's and Cursor's `mcpServers`, VS
//! Code's `servers`) into gateway server entries.
//!
//! Secrets never reach the output in clear: every `env` value and every header value becomes
//! a `${VAR}` reference (the gateway substitutes them from its environment at load), and a
//! URL carrying a password or a query becomes one as well. The variables to set are
//! reported, with what they stand for, never with their values. Ids are made valid and
//! unique; entries marked disabled stay, with `enabled: false`.
//!
//! ```
//! use mcp_gateway_config::import::{import, Client};
//! let json = r#"{"mcpServers": {"github": {"command": "npx",
//!     "args": ["-y", "@modelcontextprotocol/server-github"],
//!     "env": {"GITHUB_TOKEN": "ghp_secret"}}}}"#;
//! let out = import(json, Some(Client::Claude)).unwrap();
//! assert_eq!(out.servers[0].id, "github");
//! assert_eq!(out.servers[0].env["GITHUB_TOKEN"], "${GITHUB_TOKEN}");
//! assert!(!format!("{:?}", out.servers).contains("ghp_secret"));
//! ```

use crate::{ServerConfig, TransportKind};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Which client's file it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    /// Claude Desktop (`claude_desktop_config.json`, `mcpServers`).
    Claude,
    /// Cursor (`~/.cursor/mcp.json`, `mcpServers`).
    Cursor,
    /// VS Code (`.vscode/mcp.json` or the user `mcp.json`, `servers`).
    Vscode,
}

impl Client {
    /// The client named `name` (`claude`, `cursor`, `vscode`).
    pub fn parse(name: &str) -> Option<Client> {
        match name {
            "claude" => Some(Client::Claude),
            "cursor" => Some(Client::Cursor),
            "vscode" | "code" => Some(Client::Vscode),
            _ => None,
        }
    }

    /// Where the client keeps its server list for this user, per OS (`home`: the user's
    /// home directory; `appdata`: `%APPDATA%` on Windows).
    pub fn default_path(
        self,
        home: &std::path::Path,
        appdata: Option<&std::path::Path>,
    ) -> std::path::PathBuf {
        let config_dir = |rest: &[&str]| {
            let mut p = if cfg!(target_os = "macos") {
                home.join("Library/Application Support")
            } else if cfg!(windows) {
                appdata.map_or_else(|| home.join("AppData/Roaming"), |a| a.to_path_buf())
            } else {
                home.join(".config")
            };
            for r in rest {
                p.push(r);
            }
            p
        };
        match self {
            Client::Claude => config_dir(&["Claude", "claude_desktop_config.json"]),
            Client::Cursor => home.join(".cursor").join("mcp.json"),
            Client::Vscode => config_dir(&["Code", "User", "mcp.json"]),
        }
    }
}

/// A `${VAR}` the imported config needs, and what it replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variable {
    /// The variable's name.
    pub name: String,
    /// What it stands for: `env FOO of server x`, `header Authorization of server y`, ….
    pub replaces: String,
}

/// What an import produced.
#[derive(Clone, Debug, Default)]
pub struct Imported {
    /// The servers, ordered by their name in the file.
    pub servers: Vec<ServerConfig>,
    /// The variables to set before starting the gateway.
    pub variables: Vec<Variable>,
    /// What could not be converted, or was changed on the way (one line each).
    pub notes: Vec<String>,
}

/// Converts a client's JSON file. `client` `None` recognises the shape (`mcpServers` or
/// `servers`).
pub fn import(json: &str, client: Option<Client>) -> Result<Imported, String> {
    let doc: Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let list = match (client, doc.get("mcpServers"), doc.get("servers")) {
        (Some(Client::Vscode), _, Some(s)) | (None, None, Some(s)) => s,
        (Some(Client::Claude | Client::Cursor) | None, Some(s), _) => s,
        _ => return Err("no `mcpServers` (Claude, Cursor) or `servers` (VS Code) object".into()),
    };
    let list = list
        .as_object()
        .ok_or("the server list is not an object of name → server")?;
    let mut out = Imported::default();
    let mut ids = BTreeSet::new();
    let mut taken: BTreeMap<String, String> = BTreeMap::new();
    for (name, entry) in list {
        let Some(entry) = entry.as_object() else {
            out.notes.push(format!("{name}: not an object; skipped"));
            continue;
        };
        let id = unique_id(name, &mut ids);
        if id != *name {
            out.notes.push(format!(
                "{name}: id {id:?} (ids are letters, digits, - and _)"
            ));
        }
        match server(&id, name, entry, &mut out, &mut taken) {
            Ok(s) => out.servers.push(s),
            Err(why) => out.notes.push(format!("{name}: {why}; skipped")),
        }
    }
    Ok(out)
}

fn server(
    id: &str,
    name: &str,
    entry: &Map<String, Value>,
    out: &mut Imported,
    taken: &mut BTreeMap<String, String>,
) -> Result<ServerConfig, String> {
    let mut s: ServerConfig = serde_json::from_value(serde_json::json!({ "id": id }))
        .expect("an id alone is a server entry");
    if name != id {
        s.name = Some(name.to_string());
    }
    let text = |k: &str| entry.get(k).and_then(Value::as_str);
    let kind = text("type").or_else(|| text("transport"));
    if let Some(url) = text("url").or_else(|| text("serverUrl")) {
        s.transport = match kind {
            Some("sse") => TransportKind::Sse,
            Some("ws" | "websocket") => TransportKind::Websocket,
            Some(_) => TransportKind::StreamableHttp,
            None if url.trim_end_matches('/').ends_with("/sse") => TransportKind::Sse,
            None => TransportKind::StreamableHttp,
        };
        s.url = Some(if has_secret(url) {
            let key = format!("{id}_URL");
            let var = variable(
                id,
                &key,
                url,
                &format!("the url of server {name}"),
                out,
                taken,
            );
            format!("${{{var}}}")
        } else {
            client_vars(url)
        });
        for (h, v) in entry
            .get("headers")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let value = v.as_str().unwrap_or_default();
            let var = variable(
                id,
                h,
                value,
                &format!("header {h} of server {name}"),
                out,
                taken,
            );
            s.headers.insert(h.clone(), format!("${{{var}}}"));
        }
    } else if let Some(command) = text("command") {
        if matches!(kind, Some(k) if k != "stdio") {
            return Err(format!(
                "type {:?} with a command",
                kind.unwrap_or_default()
            ));
        }
        s.transport = TransportKind::Stdio;
        s.command = Some(client_vars(command));
        let args: Vec<&str> = entry
            .get("args")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for (i, a) in args.into_iter().enumerate() {
            // A connection string with a password or a token in its query is a secret.
            let arg = if a.contains("://") && has_secret(a) {
                let key = format!("{id}_ARG{}", i + 1);
                let what = format!("argument {} of server {name}", i + 1);
                format!("${{{}}}", variable(id, &key, a, &what, out, taken))
            } else {
                client_vars(a)
            };
            s.args.push(arg);
        }
        if let Some(cwd) = text("cwd") {
            s.cwd = Some(client_vars(cwd).into());
        }
        for (k, v) in entry
            .get("env")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let value = match v {
                Value::String(v) => v.clone(),
                other => other.to_string(),
            };
            let var = variable(
                id,
                k,
                &value,
                &format!("env {k} of server {name}"),
                out,
                taken,
            );
            s.env.insert(k.clone(), format!("${{{var}}}"));
        }
        if entry.contains_key("envFile") {
            out.notes.push(format!(
                "{name}: envFile is not imported; set its variables in the gateway's environment"
            ));
        }
    } else {
        return Err("neither a command nor a url".into());
    }
    if entry.get("disabled").and_then(Value::as_bool) == Some(true)
        || entry.get("enabled").and_then(Value::as_bool) == Some(false)
    {
        s.enabled = false;
    }
    Ok(s)
}

/// A URL with a password or a query (where tokens tend to be) is a secret as a whole.
fn has_secret(url: &str) -> bool {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or("");
    authority.contains('@') || url.contains('?')
}

/// VS Code's `${env:VAR}` is the gateway's `${VAR}`; `${input:x}` (asked at start) becomes
/// `${X}`. Other text is kept.
fn client_vars(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = &rest[start + 2..start + end];
        let name = inner
            .strip_prefix("env:")
            .map(str::to_string)
            .or_else(|| inner.strip_prefix("input:").map(env_name));
        match name {
            Some(n) => out.push_str(&format!("${{{n}}}")),
            None => out.push_str(&rest[start..start + end + 1]),
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

/// The variable standing for `value`: `KEY` (as an environment name) when no other server
/// uses it for another value, else `ID_KEY`.
fn variable(
    id: &str,
    key: &str,
    value: &str,
    replaces: &str,
    out: &mut Imported,
    taken: &mut BTreeMap<String, String>,
) -> String {
    // A value that is already a reference to the environment stays that reference.
    let converted = client_vars(value);
    if let Some(var) = converted
        .strip_prefix("${")
        .and_then(|r| r.strip_suffix('}'))
        .filter(|v| !v.contains(['$', '{', '}']))
    {
        if !taken.contains_key(var) {
            taken.insert(var.to_string(), value.to_string());
            out.variables.push(Variable {
                name: var.to_string(),
                replaces: replaces.to_string(),
            });
        }
        return var.to_string();
    }
    let mut name = env_name(key);
    if taken.get(&name).is_some_and(|v| v != value) {
        name = env_name(&format!("{id}_{key}"));
    }
    if !taken.contains_key(&name) {
        taken.insert(name.clone(), value.to_string());
        out.variables.push(Variable {
            name: name.clone(),
            replaces: replaces.to_string(),
        });
    }
    name
}

/// `Some-key.x` → `SOME_KEY_X`.
fn env_name(text: &str) -> String {
    let mut n: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if n.is_empty() || n.starts_with(|c: char| c.is_ascii_digit()) {
        n.insert(0, '_');
    }
    n
}

/// A valid id for `name` not in `ids` (letters, digits, `-`, `_`; no `__`, no trailing `_`).
fn unique_id(name: &str, ids: &mut BTreeSet<String>) -> String {
    let mut id = String::new();
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '-' {
            c
        } else {
            '_'
        };
        if !(c == '_' && id.ends_with('_')) {
            id.push(c);
        }
    }
    let mut id = id.trim_matches('_').to_string();
    if id.is_empty() {
        id = "server".into();
    }
    let base = id.clone();
    let mut n = 2;
    while ids.contains(&id) {
        id = format!("{base}-{n}");
        n += 1;
    }
    ids.insert(id.clone());
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_every_shape_without_secrets() {
        let json = r#"{"mcpServers": {
            "fs": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]},
            "pg": {"command": "npx", "args": ["-y", "server-postgres", "postgresql://u:pw-77@db/x"]},
            "my server.v2": {"command": "node", "args": ["s.js"], "env": {"API_KEY": "k-1", "MODE": "fast"}, "disabled": true},
            "other": {"command": "node", "env": {"API_KEY": "k-2"}},
            "remote": {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer t0k"}},
            "legacy": {"url": "https://old.example.com/sse"},
            "tokened": {"url": "https://x.example.com/mcp?token=abc"},
            "broken": {"args": []}
        }}"#;
        let out = import(json, None).unwrap();
        let text = format!("{:?}", out.servers);
        for secret in ["k-1", "k-2", "t0k", "abc", "pw-77"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        let by = |id: &str| out.servers.iter().find(|s| s.id == id).unwrap();
        assert_eq!(by("my_server_v2").name.as_deref(), Some("my server.v2"));
        assert!(!by("my_server_v2").enabled);
        assert_eq!(by("my_server_v2").env["API_KEY"], "${API_KEY}");
        assert_eq!(
            by("other").env["API_KEY"],
            "${OTHER_API_KEY}",
            "another value, another name"
        );
        assert_eq!(by("remote").transport, TransportKind::StreamableHttp);
        assert_eq!(by("remote").headers["Authorization"], "${AUTHORIZATION}");
        assert_eq!(by("legacy").transport, TransportKind::Sse);
        assert_eq!(by("tokened").url.as_deref(), Some("${TOKENED_URL}"));
        assert!(
            out.notes.iter().any(|n| n.starts_with("broken:")),
            "{:?}",
            out.notes
        );
        let names: Vec<&str> = out.variables.iter().map(|v| v.name.as_str()).collect();
        assert!(
            names.contains(&"API_KEY") && names.contains(&"OTHER_API_KEY"),
            "{names:?}"
        );
    }

    #[test]
    fn vscode_variables_become_the_gateways() {
        let json = r#"{"inputs": [{"id": "token", "type": "promptString"}], "servers": {
            "gh": {"type": "stdio", "command": "docker", "args": ["run", "-e", "T=${input:token}"],
                   "env": {"GITHUB_TOKEN": "${input:token}", "HOME_DIR": "${env:HOME}"}},
            "web": {"type": "http", "url": "http://127.0.0.1:3000/mcp"}
        }}"#;
        let out = import(json, Some(Client::Vscode)).unwrap();
        let gh = &out.servers[0];
        assert_eq!(gh.args[2], "T=${TOKEN}");
        assert_eq!(gh.env["GITHUB_TOKEN"], "${TOKEN}");
        assert_eq!(gh.env["HOME_DIR"], "${HOME}");
        assert_eq!(out.servers[1].transport, TransportKind::StreamableHttp);
        assert_eq!(unique_id("a__b_", &mut BTreeSet::new()), "a_b");
    }
}
