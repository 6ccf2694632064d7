//! [`Config::check`]: what the types alone cannot say — unique ids, required fields per
//! transport, ranges and cross-field rules — one function per section, each reporting
//! `(key path, message)` pairs.

use super::*;

/// Reports one problem: its key path and message.
type Report<'a> = dyn FnMut(String, String) + 'a;

impl Config {
    /// Validation, keeping what it built.
    pub(crate) fn check(
        &self,
        file: &Path,
    ) -> Result<(AuthSetup, Option<mcp_gateway_auth::AccessPolicy>), ConfigErrors> {
        let mut errors = Vec::new();
        let mut e = |path: String, message: String| {
            errors.push(ConfigError {
                file: file.to_path_buf(),
                path: Some(path),
                line: None,
                message,
            })
        };
        self.check_general(&mut e);
        self.check_servers(&mut e);
        self.check_auth_keys(&mut e);
        self.check_rate_limit(&mut e);
        self.check_cluster(&mut e);
        self.check_sessions_monitor(&mut e);
        // Auth settings are checked by building them (keys, algorithms, PEM files, URLs).
        let auth_flagged = errors
            .iter()
            .any(|x| x.path.as_deref().is_some_and(|p| p.starts_with("auth")));
        let mut more = security::check_access(self);
        let auth = if auth_flagged {
            None
        } else {
            match security::setup(self) {
                Ok(a) => Some(a),
                Err(x) => {
                    more.push(x);
                    None
                }
            }
        };
        errors.extend(more.into_iter().map(|(path, message)| ConfigError {
            file: file.to_path_buf(),
            path: Some(path),
            line: None,
            message,
        }));
        match auth {
            Some(auth) if errors.is_empty() => Ok((auth, security::policy(self))),
            _ => Err(ConfigErrors(errors)),
        }
    }

    /// Listener and process settings.
    fn check_general(&self, e: &mut Report<'_>) {
        if self.host.trim().is_empty() {
            e("host".into(), "must not be empty".into());
        }
        if self.max_body_bytes < 1024 {
            e("maxBodyBytes".into(), "must be at least 1024".into());
        }
        if self.ui.enabled {
            let p = &self.ui.path;
            let ok = p.len() > 1
                && p.starts_with('/')
                && !p.ends_with('/')
                && p[1..].split('/').all(|seg| {
                    !seg.is_empty()
                        && seg
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                });
            let taken = [
                "/api",
                "/mcp",
                "/metrics",
                "/healthz",
                "/readyz",
                "/.well-known",
                "/sse",
                "/ws",
            ]
            .iter()
            .any(|t| p == t || p.starts_with(&format!("{t}/")));
            if !ok || taken {
                e(
                    "ui.path".into(),
                    format!(
                        "{p:?} must be a path such as /ui (letters, digits, - and _ between slashes, no trailing slash) that no other route uses"
                    ),
                );
            }
        }
        if self.connections.header_timeout < 100 {
            e(
                "connections.headerTimeout".into(),
                "must be at least 100 (ms)".into(),
            );
        }
        if self.connections.body_timeout < 100 {
            e(
                "connections.bodyTimeout".into(),
                "must be at least 100 (ms)".into(),
            );
        }
        if self.max_json_depth < 8 {
            e("maxJsonDepth".into(), "must be at least 8".into());
        }
        if self.max_message_bytes < 1024 {
            e("maxMessageBytes".into(), "must be at least 1024".into());
        }
        if self.workers > MAX_WORKERS {
            e(
                "workers".into(),
                format!("must be at most {MAX_WORKERS} (0 for one thread per core)"),
            );
        }
    }

    /// Every server: unique ids, what its transport needs, ranges.
    fn check_servers(&self, e: &mut Report<'_>) {
        let mut ids = HashSet::new();
        for (i, s) in self.servers.iter().enumerate() {
            let p = |k: &str| format!("servers[{i}].{k}");
            if s.id.is_empty()
                || !s
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                e(
                    p("id"),
                    format!("{:?} must be non-empty letters, digits, '-' or '_'", s.id),
                );
            } else if s.id.contains("__") || s.id.ends_with('_') {
                // `a_` + `__` + `x` reads as `a` + `__` + `_x`: a rule for one server would
                // reach the other.
                e(
                    p("id"),
                    format!(
                        "{:?} must not contain \"__\" or end with '_': \"__\" separates server and tool in qualified names",
                        s.id
                    ),
                );
            }
            if !ids.insert(s.id.as_str()) {
                e(p("id"), format!("duplicate server id {:?}", s.id));
            }
            match s.transport {
                TransportKind::Stdio => {
                    if s.command.as_deref().is_none_or(|c| c.trim().is_empty()) {
                        e(p("command"), "a stdio server needs a command".into());
                    }
                }
                other => {
                    if s.url.as_deref().is_none_or(|u| u.trim().is_empty()) {
                        e(p("url"), format!("a {} server needs a url", other.as_str()));
                    } else if let Some(u) = &s.url {
                        let ok = match other {
                            TransportKind::Websocket => {
                                u.starts_with("ws://") || u.starts_with("wss://")
                            }
                            _ => u.starts_with("http://") || u.starts_with("https://"),
                        };
                        if !ok {
                            e(
                                p("url"),
                                format!(
                                    "{:?} is not a valid URL for transport {}",
                                    mcp_gateway_core::redact::redact_url(u),
                                    other.as_str()
                                ),
                            );
                        }
                    }
                }
            }
            if let Some(h) = &s.health_check {
                check_health(e, &p("healthCheck"), h);
            }
            for (j, c) in s.credentials.iter().enumerate() {
                let cp = p(&format!("credentials[{j}]"));
                if s.transport != TransportKind::StreamableHttp {
                    e(
                        cp.clone(),
                        "per-caller credentials need transport streamable-http (other transports share one connection for every caller)".into(),
                    );
                }
                if c.subjects.is_empty() && c.roles.is_empty() && c.keys.is_empty() {
                    e(
                        cp.clone(),
                        "name the callers: subjects, roles or keys".into(),
                    );
                }
                if c.headers.is_empty() {
                    e(format!("{cp}.headers"), "must not be empty".into());
                }
                for (k, v) in &c.headers {
                    if http::HeaderName::from_bytes(k.as_bytes()).is_err()
                        || http::HeaderValue::from_str(v).is_err()
                    {
                        e(
                            format!("{cp}.headers.{k}"),
                            "is not a valid HTTP header".into(),
                        );
                    }
                }
            }
            if s.timeout == 0 {
                e(p("timeout"), "must be at least 1 (milliseconds)".into());
            }
            if s.max_message_bytes.is_some_and(|m| m < 1024) {
                e(p("maxMessageBytes"), "must be at least 1024".into());
            }
            if s.max_concurrency == 0 {
                e(p("maxConcurrency"), "must be at least 1".into());
            }
            if let Some(tp) = &s.tool_prefix
                && (tp.len() > 32
                    || !tp
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            {
                e(
                    p("toolPrefix"),
                    format!("{tp:?} must be at most 32 letters, digits, '-' or '_'"),
                );
            }
            if let Some(tp) = &s.tool_prefix
                && (tp.contains("__") || tp.ends_with('_'))
            {
                e(
                    p("toolPrefix"),
                    format!(
                        "{tp:?} must not contain \"__\" or end with '_': \"__\" separates prefix and tool"
                    ),
                );
            }
        }
        match self.auth.strategy {
            AuthStrategy::ApiKey if self.auth.api_keys.is_empty() => e(
                "auth.apiKeys".into(),
                "strategy api-key needs at least one key".into(),
            ),
            AuthStrategy::Jwt | AuthStrategy::Oauth => match &self.auth.jwt {
                None => e(
                    "auth.jwt".into(),
                    "strategy jwt/oauth needs a jwt section".into(),
                ),
                Some(j) if j.secret.is_none() && j.public_key.is_none() && j.jwks_url.is_none() => {
                    e(
                        "auth.jwt".into(),
                        "needs one of secret, publicKey or jwksUrl".into(),
                    )
                }
                _ => {}
            },
            _ => {}
        }
    }

    /// API keys: names, key or hash.
    fn check_auth_keys(&self, e: &mut Report<'_>) {
        for (i, k) in self.auth.api_keys.iter().enumerate() {
            if let ApiKey::Named(n) = k {
                match (&n.key, &n.key_hash) {
                    (None, None) => e(format!("auth.apiKeys[{i}]"), "needs key or keyHash".into()),
                    (Some(_), Some(_)) => e(
                        format!("auth.apiKeys[{i}]"),
                        "give key or keyHash, not both".into(),
                    ),
                    (None, Some(h)) => {
                        let hex = h.strip_prefix("sha256:").unwrap_or("");
                        if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                            e(
                                format!("auth.apiKeys[{i}].keyHash"),
                                "must be sha256:<64 hex digits>".into(),
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// `rateLimit`: sizes, backend, per-tool rules.
    fn check_rate_limit(&self, e: &mut Report<'_>) {
        if let Some(r) = &self.rate_limit {
            if r.limit == 0 {
                e("rateLimit.limit".into(), "must be at least 1".into());
            }
            if r.window_seconds == 0 {
                e(
                    "rateLimit.windowSeconds".into(),
                    "must be at least 1".into(),
                );
            }
            if r.backend == RateLimitBackend::Redis && r.redis_url.is_none() {
                e(
                    "rateLimit.redisUrl".into(),
                    "backend redis needs a redisUrl".into(),
                );
            }
            if let Some(u) = &r.redis_url
                && let Err(why) = mcp_gateway_rate_limit::check_redis_url(u)
            {
                e("rateLimit.redisUrl".into(), why.to_string());
            }
            if r.max_keys == 0 {
                e("rateLimit.maxKeys".into(), "must be at least 1".into());
            }
            for (i, t) in r.tools.iter().enumerate() {
                let p = format!("rateLimit.tools[{i}]");
                if t.pattern.is_empty() {
                    e(format!("{p}.match"), "must not be empty".into());
                }
                if t.limit == 0 {
                    e(format!("{p}.limit"), "must be at least 1".into());
                }
                if t.window_seconds == Some(0) {
                    e(format!("{p}.windowSeconds"), "must be at least 1".into());
                }
            }
            for (i, o) in r.overrides.iter().enumerate() {
                let p = format!("rateLimit.overrides[{i}]");
                if o.subject.is_some() == o.role.is_some() {
                    e(p.clone(), "give exactly one of subject or role".into());
                }
                if o.limit == 0 {
                    e(format!("{p}.limit"), "must be at least 1".into());
                }
            }
        }
    }

    /// `cluster`: session keys and Redis.
    fn check_cluster(&self, e: &mut Report<'_>) {
        if let Some(c) = &self.cluster {
            if let Some(r) = &c.replica
                && (r.is_empty()
                    || !r
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
            {
                e(
                    "cluster.replica".into(),
                    format!("{r:?} must be non-empty letters, digits, '-', '_' or '.'"),
                );
            }
            let keys = c
                .session_key
                .iter()
                .map(|k| ("cluster.sessionKey".to_string(), k));
            let old = c
                .previous_session_keys
                .iter()
                .enumerate()
                .map(|(i, k)| (format!("cluster.previousSessionKeys[{i}]"), k));
            for (path, k) in keys.chain(old) {
                if k.chars().count() < 32 {
                    e(
                        path,
                        "must be at least 32 characters (e.g. `openssl rand -base64 32`)".into(),
                    );
                }
            }
            if let Some(u) = &c.redis_url
                && let Err(why) = mcp_gateway_rate_limit::check_redis_url(u)
            {
                e("cluster.redisUrl".into(), why.to_string());
            }
            if c.session_max_age == 0 {
                e(
                    "cluster.sessionMaxAge".into(),
                    "must be at least 1 (seconds)".into(),
                );
            }
        }
        check_health(e, "healthCheck", &self.health_check);
        if self.session_idle_timeout == 0 {
            e(
                "sessionIdleTimeout".into(),
                "must be at least 1 (seconds)".into(),
            );
        }
    }

    /// Sessions and `monitor`.
    fn check_sessions_monitor(&self, e: &mut Report<'_>) {
        if self.monitor.request_log_size == 0 {
            e("monitor.requestLogSize".into(), "must be at least 1".into());
        }
        if self.monitor.retention_hours == 0 {
            e("monitor.retentionHours".into(), "must be at least 1".into());
        }
        if let Some(t) = &self.monitor.tracing {
            if !(0.0..=1.0).contains(&t.sample_ratio) {
                e(
                    "monitor.tracing.sampleRatio".into(),
                    format!("must be between 0.0 and 1.0, got {}", t.sample_ratio),
                );
            }
            if !(t.endpoint.starts_with("http://") || t.endpoint.starts_with("https://"))
                || t.endpoint.parse::<http::Uri>().is_err()
            {
                e(
                    "monitor.tracing.endpoint".into(),
                    format!(
                        "must be an http:// or https:// URL of an OTLP/HTTP collector, got {:?}",
                        t.endpoint
                    ),
                );
            }
            if t.timeout_ms == 0 {
                e(
                    "monitor.tracing.timeoutMs".into(),
                    "must be at least 1".into(),
                );
            }
        }
        let m = &self.monitor;
        if m.log_bodies
            && m.capture_bodies
                .is_some_and(|c| c != crate::CaptureBodies::All)
        {
            e(
                "monitor.logBodies".into(),
                "is the older spelling of captureBodies: all and contradicts captureBodies; remove it".into(),
            );
        }
        if m.max_body_bytes < 16 {
            e("monitor.maxBodyBytes".into(), "must be at least 16".into());
        }
        if m.capture_bytes < m.max_body_bytes {
            e(
                "monitor.captureBytes".into(),
                format!("must be at least maxBodyBytes ({})", m.max_body_bytes),
            );
        }
        for (i, p) in m.redact_pointers.iter().enumerate() {
            if !mcp_gateway_core::redact::is_body_pointer(p) {
                e(
                    format!("monitor.redactPointers[{i}]"),
                    format!(
                        "{p:?} must be a JSON pointer starting with /arguments, /result or /* (for both)"
                    ),
                );
            }
        }
        if self.monitor.max_series == 0 {
            e("monitor.maxSeries".into(), "must be at least 1".into());
        }
    }
}

/// Range checks of a `healthCheck` section at `path`.
fn check_health(e: &mut Report<'_>, path: &str, h: &HealthCheckConfig) {
    if h.interval_seconds == Some(0) {
        e(
            format!("{path}.intervalSeconds"),
            "must be at least 1".into(),
        );
    }
    if h.timeout_ms == Some(0) {
        e(format!("{path}.timeoutMs"), "must be at least 1".into());
    }
    if h.unhealthy_after == Some(0) {
        e(
            format!("{path}.unhealthyAfter"),
            "must be at least 1".into(),
        );
    }
}
