use super::*;

fn parse(text: &str, format: Format) -> Result<Config, ConfigErrors> {
    let env = |k: &str| match k {
        "TOKEN" => Some("s3cret".to_string()),
        "PORT" => Some("5000".to_string()),
        _ => None,
    };
    let cfg = Config::parse(text, format, Path::new("test.cfg"), env)?;
    cfg.validate(Path::new("test.cfg"))?;
    Ok(cfg)
}

fn one_error(r: Result<Config, ConfigErrors>) -> ConfigError {
    let errs = r.expect_err("should fail").0;
    assert_eq!(errs.len(), 1, "{errs:?}");
    errs.into_iter().next().unwrap()
}

#[test]
fn default_template_parses_and_validates() {
    let c = parse(DEFAULT_CONFIG_YAML, Format::Yaml).unwrap();
    assert_eq!(c.port, 4000);
    assert_eq!(c.servers.len(), 2);
    assert_eq!(c.servers[0].args[2], "/tmp");
    assert!(!c.servers[1].enabled);
}

#[test]
fn same_document_in_three_formats() {
    let yaml =
        "port: ${PORT}\nservers:\n  - id: fs\n    command: npx\n    env: { TOKEN: \"${TOKEN}\" }\n";
    let json = r#"{"port": 5000, "servers": [{"id": "fs", "command": "npx", "env": {"TOKEN": "${TOKEN}"}}]}"#;
    let toml = "port = 5000\n[[servers]]\nid = \"fs\"\ncommand = \"npx\"\nenv = { TOKEN = \"${TOKEN}\" }\n";
    let a = parse(yaml, Format::Yaml).unwrap();
    let b = parse(json, Format::Json).unwrap();
    let c = parse(toml, Format::Toml).unwrap();
    assert_eq!(a, b);
    assert_eq!(b, c);
    assert_eq!(a.port, 5000);
    assert_eq!(a.servers[0].env["TOKEN"], "s3cret");
    assert_eq!(a.servers[0].timeout, 30_000);
    assert_eq!(a.servers[0].max_concurrency, 10);
}

#[test]
fn missing_variable_names_variable_key_and_line() {
    let e = one_error(parse(
        "servers:\n  - id: gh\n    command: npx\n    env:\n      GITHUB_TOKEN: ${GH_TOKEN}\n",
        Format::Yaml,
    ));
    assert_eq!(e.line, Some(5));
    assert_eq!(e.path.as_deref(), Some("servers[0].env.GITHUB_TOKEN"));
    assert!(e.message.contains("GH_TOKEN"), "{e}");
}

#[test]
fn unknown_key_and_wrong_type_name_path_and_line() {
    let e = one_error(parse(
        "port: 4000\nservers:\n  - id: fs\n    command: npx\n    timeout: soon\n",
        Format::Yaml,
    ));
    assert_eq!(e.path.as_deref(), Some("servers[0].timeout"));
    assert_eq!(e.line, Some(5));
    let e = one_error(parse(
        "port: 4000\nservers:\n  - id: fs\n    comand: npx\n",
        Format::Yaml,
    ));
    assert!(e.message.contains("comand"), "{e}");
    assert_eq!(e.line, Some(4));
    let e = one_error(parse(
        "{\n  \"port\": 4000,\n  \"bogus\": 1\n}",
        Format::Json,
    ));
    assert!(e.message.contains("bogus") && e.line == Some(3), "{e}");
    let e = one_error(parse(
        "port = 4000\n[[servers]]\nid = \"a\"\ncommand = 3\n",
        Format::Toml,
    ));
    assert_eq!(e.path.as_deref(), Some("servers[0].command"));
    assert_eq!(e.line, Some(4));
}

#[test]
fn port_out_of_range_is_rejected() {
    let e = one_error(parse("port: 70000\n", Format::Yaml));
    assert_eq!(e.path.as_deref(), Some("port"));
    assert_eq!(e.line, Some(1));
    let e = one_error(parse("port: 70000\n", Format::Yaml));
    assert!(e.to_string().starts_with("test.cfg:1: port:"), "{e}");
}

#[test]
fn semantic_errors_are_all_reported() {
    let errs = parse(
        "servers:\n  - id: a\n  - id: a\n    command: x\n  - id: web\n    transport: sse\n  - id: b__c\n    command: y\n    maxConcurrency: 0\n",
        Format::Yaml,
    )
    .unwrap_err()
    .0;
    let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
    let joined = text.join("\n");
    assert!(
        joined.contains("servers[0].command: a stdio server needs a command"),
        "{joined}"
    );
    assert!(
        joined.contains("servers[1].id: duplicate server id"),
        "{joined}"
    );
    assert!(
        joined.contains("servers[2].url: a sse server needs a url"),
        "{joined}"
    );
    assert!(joined.contains("servers[3].id"), "{joined}");
    assert!(joined.contains("servers[3].maxConcurrency"), "{joined}");
}

#[test]
fn ids_and_prefixes_that_make_qualified_names_ambiguous_are_refused() {
    // `adder_` + `__` + `shell` reads as `adder` + `__` + `_shell`.
    let errs = parse(
        "servers:\n  - id: adder\n    command: x\n  - id: adder_\n    command: y\n  - id: p\n    command: z\n    toolPrefix: a__b\n  - id: q\n    command: z\n    toolPrefix: q_\n",
        Format::Yaml,
    )
    .unwrap_err()
    .0;
    let joined: Vec<String> = errs.iter().map(ToString::to_string).collect();
    let joined = joined.join("\n");
    assert!(joined.contains("servers[1].id"), "{joined}");
    assert!(joined.contains("servers[2].toolPrefix"), "{joined}");
    assert!(joined.contains("servers[3].toolPrefix"), "{joined}");
    assert!(!joined.contains("servers[0]"), "{joined}");
}

#[test]
fn env_overrides_apply_and_fail_clearly() {
    let mut c = Config::default();
    c.apply_env_overrides(|k| match k {
        "MCP_GATEWAY_PORT" => Some("4100".into()),
        "MCP_GATEWAY_HOST" => Some("0.0.0.0".into()),
        "MCP_GATEWAY_LOG_LEVEL" => Some("DEBUG".into()),
        "MCP_GATEWAY_WORKERS" => Some(" 1 ".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(
        (c.port, c.host.as_str(), c.log_level, c.workers),
        (4100, "0.0.0.0", LogLevel::Debug, 1)
    );
    let e = c
        .apply_env_overrides(|k| (k == "MCP_GATEWAY_WORKERS").then(|| "-2".to_string()))
        .unwrap_err();
    assert!(e.to_string().contains("MCP_GATEWAY_WORKERS"), "{e}");
    let e = c
        .apply_env_overrides(|k| (k == "MCP_GATEWAY_PORT").then(|| "99999".to_string()))
        .unwrap_err();
    assert!(e.to_string().contains("MCP_GATEWAY_PORT"), "{e}");
}

#[test]
fn workers_default_range_and_round_trip() {
    assert_eq!(Config::default().workers, 0);
    let c = parse("workers: 1\n", Format::Yaml).unwrap();
    assert_eq!(c.workers, 1);
    // The default is left out when a config is written back.
    let json = serde_json::to_string(&Config::default()).unwrap();
    assert!(!json.contains("workers"), "{json}");
    let e = one_error(parse("workers: 5000\n", Format::Yaml));
    assert_eq!(e.path.as_deref(), Some("workers"));
    assert!(e.message.contains("at most 1024"), "{}", e.message);
    let e = one_error(parse("workers: -1\n", Format::Yaml));
    assert_eq!(e.path.as_deref(), Some("workers"), "{e}");
}

#[test]
fn api_key_shapes() {
    let c = parse(
        "auth:\n  strategy: api-key\n  apiKeys:\n    - plain-key\n    - { name: bot, key: \"${TOKEN}\", roles: [reader] }\n",
        Format::Yaml,
    )
    .unwrap();
    assert_eq!(c.auth.api_keys[0], ApiKey::Plain("plain-key".into()));
    assert!(matches!(&c.auth.api_keys[1], ApiKey::Named(n) if n.key.as_deref() == Some("s3cret")));
    let e = one_error(parse("auth:\n  strategy: api-key\n", Format::Yaml));
    assert_eq!(e.path.as_deref(), Some("auth.apiKeys"));
}

#[test]
fn rate_limit_options() {
    let c = parse(
        "rateLimit:\n  limit: 10\n  backend: redis\n  redisUrl: redis://127.0.0.1:6379/0\n  failMode: closed\n  maxKeys: 1000\n  overrides:\n    - { subject: ci, limit: 100 }\n    - { role: admin, limit: 50 }\n",
        Format::Yaml,
    )
    .unwrap();
    let r = c.rate_limit.unwrap();
    assert_eq!(r.fail_mode, RateLimitFailMode::Closed);
    assert_eq!((r.window_seconds, r.max_keys, r.per_key), (60, 1000, true));
    assert_eq!(r.overrides[1].role.as_deref(), Some("admin"));
    let e = one_error(parse(
        "rateLimit: { limit: 1, overrides: [{ subject: a, role: b, limit: 2 }] }\n",
        Format::Yaml,
    ));
    assert_eq!(e.path.as_deref(), Some("rateLimit.overrides[0]"));
    let e = one_error(parse(
        "rateLimit: { limit: 1, backend: redis, redisUrl: \"http://x\" }\n",
        Format::Yaml,
    ));
    assert_eq!(e.path.as_deref(), Some("rateLimit.redisUrl"));
    let e = one_error(parse(
        "rateLimit: { limit: 1, failMode: maybe }\n",
        Format::Yaml,
    ));
    assert_eq!(e.path.as_deref(), Some("rateLimit.failMode"));
}

#[test]
fn credentials_and_cluster_are_checked() {
    let e = one_error(parse(
        "servers:\n  - id: s\n    command: x\n    credentials:\n      - { subjects: [a], headers: { Authorization: 'Bearer t' } }\n",
        Format::Yaml,
    ));
    assert_eq!(e.path.as_deref(), Some("servers[0].credentials[0]"));
    assert!(e.message.contains("streamable-http"), "{}", e.message);
    let e = one_error(parse(
        "servers:\n  - id: s\n    transport: streamable-http\n    url: http://127.0.0.1:1/mcp\n    credentials:\n      - { headers: { Authorization: 'Bearer t' } }\n",
        Format::Yaml,
    ));
    assert!(
        e.message.contains("subjects, roles or keys"),
        "{}",
        e.message
    );
    let e = one_error(parse("cluster:\n  sessionKey: short\n", Format::Yaml));
    assert_eq!(e.path.as_deref(), Some("cluster.sessionKey"));
    assert!(e.message.contains("32 characters"), "{}", e.message);
    let ok = parse(
        "cluster:\n  replica: gw-1\n  sessionKey: 0123456789abcdef0123456789abcdef\n  redisUrl: redis://127.0.0.1:6379/\n",
        Format::Yaml,
    )
    .unwrap();
    assert_eq!(ok.cluster.unwrap().session_max_age, 86_400);
}

#[test]
fn monitor_tracing_section() {
    let c = parse(
        "monitor:\n  tracing:\n    endpoint: http://127.0.0.1:4318\n    headers:\n      \
         authorization: Bearer ${TOKEN}\nservers: []\n",
        Format::Yaml,
    )
    .unwrap();
    let t = c.monitor.tracing.unwrap();
    assert_eq!(t.traces_url(), "http://127.0.0.1:4318/v1/traces");
    assert_eq!(t.protocol, OtlpProtocol::HttpProtobuf);
    assert_eq!(t.sample_ratio, 1.0);
    assert_eq!(t.headers["authorization"], "Bearer s3cret");
    let full = TracingConfig {
        endpoint: "https://otel.example/custom/traces".into(),
        ..t
    };
    assert_eq!(full.traces_url(), "https://otel.example/custom/traces");
    for (bad, key) in [
        ("endpoint: 127.0.0.1:4318", "monitor.tracing.endpoint"),
        (
            "endpoint: http://127.0.0.1:4318\n    sampleRatio: 1.5",
            "monitor.tracing.sampleRatio",
        ),
    ] {
        let e = one_error(parse(
            &format!("monitor:\n  tracing:\n    {bad}\nservers: []\n"),
            Format::Yaml,
        ));
        assert_eq!(e.path.as_deref(), Some(key), "{e:?}");
    }
}

#[test]
fn capture_options_default_and_are_checked() {
    let c = parse("servers: []\n", Format::Yaml).unwrap();
    assert_eq!(c.monitor.capture(), CaptureBodies::None);
    assert_eq!(
        (c.monitor.max_body_bytes, c.monitor.capture_bytes),
        (4096, 8 * 1024 * 1024)
    );
    let c = parse("monitor:\n  logBodies: true\n", Format::Yaml).unwrap();
    assert_eq!(
        c.monitor.capture(),
        CaptureBodies::All,
        "the older spelling"
    );
    let c = parse(
        "monitor:\n  captureBodies: errors\n  redactPointers: [\"/arguments/q\", \"/*/ssn\"]\n",
        Format::Yaml,
    )
    .unwrap();
    assert_eq!(c.monitor.capture(), CaptureBodies::Errors);
    for (yaml, path) in [
        (
            "monitor:\n  logBodies: true\n  captureBodies: errors\n",
            "monitor.logBodies",
        ),
        (
            "monitor:\n  redactPointers: [\"/params/x\"]\n",
            "monitor.redactPointers[0]",
        ),
        (
            "monitor:\n  maxBodyBytes: 1024\n  captureBytes: 512\n",
            "monitor.captureBytes",
        ),
        ("monitor:\n  maxBodyBytes: 8\n", "monitor.maxBodyBytes"),
    ] {
        let e = one_error(parse(yaml, Format::Yaml));
        assert_eq!(e.path.as_deref(), Some(path), "{yaml}: {e}");
    }
    let e = one_error(parse("monitor:\n  captureBodies: some\n", Format::Yaml));
    assert!(
        e.message.contains("none") && e.message.contains("errors"),
        "{e}"
    );
}
