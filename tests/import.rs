//! `mcp-gateway import`, `connect` and `completions`: AI clients' MCP files in, a gateway
//! config out that validates and starts, with secrets left as `${VAR}`.

mod common;
use common::*;
use mcp_gateway::config::{Config, Format};
use serde_json::json;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(gateway_bin());
    c.current_dir(dir).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run mcp-gateway")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn a_claude_desktop_file_becomes_a_config_that_starts_without_its_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let server = test_server().display().to_string();
    let claude = json!({"mcpServers": {
        "Test Server (local)": {"command": server, "args": ["--name", "imported"],
                                "env": {"SERVICE_TOKEN": "tok-9f8e7d-secret"}},
        "remote": {"url": "https://mcp.example.invalid/mcp",
                   "headers": {"Authorization": "Bearer sk-live-1234"}},
        "legacy-sse": {"url": "https://old.example.invalid/sse"},
        "with-token-url": {"url": "https://x.example.invalid/mcp?api_key=k-555"},
        "off": {"command": "node", "args": ["gone.js"], "disabled": true},
        "nothing": {"args": ["?"]}
    }});
    std::fs::write(dir.path().join("claude.json"), claude.to_string()).unwrap();
    let o = run(
        dir.path(),
        &["import", "--from", "claude", "claude.json", "-o", "gw.yml"],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let report = text(&o);
    assert!(report.contains("imported 5 server(s)"), "{report}");
    assert!(
        report.contains("SERVICE_TOKEN") && report.contains("AUTHORIZATION"),
        "{report}"
    );
    assert!(report.contains("note: nothing:"), "{report}");
    let yaml = std::fs::read_to_string(dir.path().join("gw.yml")).unwrap();
    for secret in ["tok-9f8e7d-secret", "sk-live-1234", "k-555"] {
        assert!(!yaml.contains(secret), "{secret} in the config:\n{yaml}");
        assert!(
            !report.contains(secret),
            "{secret} in the report:\n{report}"
        );
    }
    assert!(
        yaml.contains("${SERVICE_TOKEN}") && yaml.contains("${AUTHORIZATION}"),
        "{yaml}"
    );

    // `validate` accepts it once the variables are set.
    let vars = [
        ("SERVICE_TOKEN", "tok"),
        ("AUTHORIZATION", "Bearer x"),
        ("WITH_TOKEN_URL_URL", "https://x.example.invalid/mcp"),
    ];
    let o = run(dir.path(), &["validate", "-c", "gw.yml"], &vars);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("valid (5 servers, 4 enabled)"),
        "{}",
        text(&o)
    );

    // Its stdio server starts and answers (the network ones point nowhere).
    let lookup = |k: &str| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    };
    let mut cfg = Config::parse(&yaml, Format::Yaml, Path::new("gw.yml"), lookup).unwrap();
    cfg.port = 0;
    cfg.servers
        .retain(|s| s.transport == mcp_gateway::config::TransportKind::Stdio);
    let gw = TestGateway::start(cfg).await;
    let id = "Test_Server_local";
    let mut last = json!(null);
    for _ in 0..100 {
        let (status, v) = gw
            .call(json!({"tool": format!("{id}__echo"), "arguments": {"text": "hi"}}))
            .await;
        if status == 200 {
            assert_eq!(common::text(&v), "hi", "{v}");
            last = json!("ok");
            break;
        }
        last = v;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        last,
        json!("ok"),
        "the imported server never answered: {last}"
    );
    gw.stop().await;
}

#[test]
fn cursor_and_vscode_files_and_merging_into_an_existing_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cursor.json"),
        json!({"mcpServers": {"web": {"url": "http://127.0.0.1:3000/sse"}}}).to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("mcp.json"),
        json!({"inputs": [{"id": "gh-token", "type": "promptString", "password": true}],
               "servers": {
                   "github": {"type": "stdio", "command": "docker",
                              "args": ["run", "-i", "--rm", "-e", "GITHUB_PERSONAL_ACCESS_TOKEN", "ghcr.io/github/github-mcp-server"],
                              "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "${input:gh-token}"}},
                   "web": {"type": "http", "url": "http://127.0.0.1:3001/mcp"}}})
        .to_string(),
    )
    .unwrap();
    let o = run(
        dir.path(),
        &["import", "--from", "cursor", "cursor.json", "-o", "gw.yml"],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    // Merged into the config just written: `web` is taken, `github` is added.
    let o = run(dir.path(), &["import", "mcp.json", "-o", "gw.yml"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("web: a server with this id is already configured"),
        "{}",
        text(&o)
    );
    let yaml = std::fs::read_to_string(dir.path().join("gw.yml")).unwrap();
    assert!(yaml.contains("${GH_TOKEN}"), "{yaml}");
    let cfg = Config::parse(&yaml, Format::Yaml, Path::new("gw.yml"), |_| {
        Some("x".into())
    })
    .unwrap();
    let ids: Vec<&str> = cfg.servers.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["web", "github"], "{yaml}");
    assert_eq!(
        cfg.servers[0].transport,
        mcp_gateway::config::TransportKind::Sse
    );
    // Not a client file: a clear error, nothing written.
    std::fs::write(dir.path().join("bad.json"), "{\"x\": 1}").unwrap();
    let o = run(dir.path(), &["import", "bad.json", "-o", "new.yml"], &[]);
    assert!(!o.status.success());
    assert!(text(&o).contains("mcpServers"), "{}", text(&o));
    assert!(!dir.path().join("new.yml").exists());
}

#[test]
fn connect_prints_or_writes_the_client_entry_and_completions_print() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        dir.path(),
        &["connect", "vscode", "--api-key-env", "GW_KEY"],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["servers"]["mcp-gateway"]["url"],
        "http://127.0.0.1:4000/mcp"
    );
    assert_eq!(
        v["servers"]["mcp-gateway"]["headers"]["x-api-key"],
        "${env:GW_KEY}"
    );
    // --write merges into the client's file (under HOME) and keeps a backup.
    let home = dir.path();
    std::fs::create_dir_all(home.join(".cursor")).unwrap();
    std::fs::write(
        home.join(".cursor/mcp.json"),
        json!({"mcpServers": {"other": {"command": "x"}}}).to_string(),
    )
    .unwrap();
    let o = run(
        dir.path(),
        &[
            "connect",
            "cursor",
            "--url",
            "http://127.0.0.1:4010/mcp",
            "--write",
        ],
        &[("HOME", home.to_str().unwrap())],
    );
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(home.join(".cursor/mcp.json")).unwrap())
            .unwrap();
    assert_eq!(v["mcpServers"]["other"]["command"], "x", "{v}");
    assert_eq!(
        v["mcpServers"]["mcp-gateway"]["url"], "http://127.0.0.1:4010/mcp",
        "{v}"
    );
    assert!(home.join(".cursor/mcp.json.bak").exists());
    let o = run(dir.path(), &["man"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let man = String::from_utf8_lossy(&o.stdout);
    assert!(
        man.contains(".TH mcp-gateway") && man.contains("import"),
        "{man}"
    );
    for shell in ["bash", "zsh", "fish"] {
        let o = run(dir.path(), &["completions", shell], &[]);
        assert!(
            o.status.success() && o.stdout.len() > 500,
            "{shell}: {}",
            text(&o)
        );
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("import"),
            "{shell}"
        );
    }
}

/// Validates `docs` (JSON) against `schema` with Python's `jsonschema` (Draft 2020-12), an
/// independent validator; returns one verdict line per document.
fn python_validate(dir: &Path, schema: &Path, docs: &[(String, serde_json::Value)]) -> Vec<String> {
    let list = dir.join("docs.json");
    std::fs::write(&list, serde_json::to_string(docs).unwrap()).unwrap();
    let script = r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
v = jsonschema.Draft202012Validator(schema)
for name, doc in json.load(open(sys.argv[2])):
    errors = sorted(v.iter_errors(doc), key=lambda e: list(e.path))
    print(name, "ok" if not errors else "INVALID: " + "; ".join(e.message for e in errors[:3]))
"#;
    let o = Command::new(peers_python())
        .args(["-c", script])
        .arg(schema)
        .arg(&list)
        .output()
        .expect("run python");
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn the_schema_accepts_every_example_config_and_refuses_unknown_keys() {
    require_peers();
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), &["schema"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let schema = dir.path().join("schema.json");
    std::fs::write(&schema, &o.stdout).unwrap();
    let o = run(dir.path(), &["init"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let init = std::fs::read_to_string(dir.path().join("mcp-gateway.yml")).unwrap();
    assert!(init.starts_with("# yaml-language-server: $schema=./mcp-gateway.schema.json"));
    assert!(dir.path().join("mcp-gateway.schema.json").exists());
    // Every config in the repository, as the loader reads it (variables substituted).
    let mut docs = Vec::new();
    let mut files: Vec<(String, String)> = [
        "examples/mcp-gateway.yml",
        "examples/cluster/gateway.yml",
        "examples/docker/gateway.yml",
        "examples/docker/gateway.cluster.yml",
        "deploy/image/mcp-gateway.yml",
        "deploy/image/mcp-gateway.node.yml",
    ]
    .iter()
    .map(|f| {
        (
            f.to_string(),
            std::fs::read_to_string(root().join(f)).unwrap(),
        )
    })
    .collect();
    files.push((
        "init".into(),
        std::fs::read_to_string(dir.path().join("mcp-gateway.yml")).unwrap(),
    ));
    // The config inside the Kubernetes ConfigMap.
    let cm: serde_json::Value = yaml_serde::from_str(
        &std::fs::read_to_string(root().join("deploy/kubernetes/configmap.yaml")).unwrap(),
    )
    .unwrap();
    for (key, text) in cm["data"].as_object().expect("a ConfigMap with data") {
        files.push((
            format!("configmap {key}"),
            text.as_str().unwrap().to_string(),
        ));
    }
    for (f, raw) in &files {
        let (text, _) = mcp_gateway::config::substitute(raw, true, |k| {
            Some(
                if k.ends_with("PORT") {
                    "4001"
                } else {
                    "set-by-env"
                }
                .into(),
            )
        })
        .unwrap();
        let v: serde_json::Value = yaml_serde::from_str(&text).unwrap();
        docs.push((f.clone(), v));
    }
    let mut bad: serde_json::Value = docs[0].1.clone();
    bad["servers"][0]["comand"] = json!("typo");
    docs.push(("unknown-server-key".into(), bad));
    let mut bad = docs[0].1.clone();
    bad["listen"] = json!(1);
    docs.push(("unknown-top-key".into(), bad));
    let verdicts = python_validate(dir.path(), &schema, &docs);
    assert_eq!(verdicts.len(), docs.len(), "{verdicts:#?}");
    for v in &verdicts {
        if v.starts_with("unknown-") {
            assert!(v.contains("INVALID"), "{v}");
        } else {
            assert!(v.ends_with(" ok"), "{v}");
        }
    }
}
