//! Configuration of one upstream server.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How to reach an upstream server.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Transport {
    /// A child process speaking newline-delimited JSON-RPC on stdin/stdout.
    Stdio(StdioConfig),
    /// Streamable HTTP (2025-03-26 and later, including the stateless 2026-07-28 revision):
    /// one endpoint, a POST per message.
    StreamableHttp(HttpConfig),
    /// The legacy HTTP+SSE transport of 2024-11-05: a GET event stream plus a POST endpoint.
    Sse(HttpConfig),
    /// One JSON-RPC message per WebSocket text frame, subprotocol `mcp` (`ws://` or `wss://`).
    Websocket(HttpConfig),
}

impl Transport {
    /// The config word for this transport (`stdio`, `streamable-http`, `sse`, `websocket`).
    pub fn kind(&self) -> &'static str {
        match self {
            Transport::Stdio(_) => "stdio",
            Transport::StreamableHttp(_) => "streamable-http",
            Transport::Sse(_) => "sse",
            Transport::Websocket(_) => "websocket",
        }
    }
}

/// A network server: where it is and which extra headers to send.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// The endpoint: the MCP endpoint (Streamable HTTP), the event-stream URL (legacy SSE)
    /// or the `ws://` / `wss://` URL (WebSocket).
    pub url: String,
    /// Extra headers on every HTTP request (or on the WebSocket upgrade), e.g. an
    /// `Authorization` bearer token for the upstream.
    pub headers: BTreeMap<String, String>,
}

impl HttpConfig {
    /// A server at `url`, with no extra headers.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            headers: BTreeMap::new(),
        }
    }

    /// Adds one header sent on every request.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }
}

/// A child process to spawn.
#[derive(Clone, Debug)]
pub struct StdioConfig {
    /// Program to run (looked up on `PATH`).
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables (added to the gateway's own environment).
    pub env: BTreeMap<String, String>,
    /// Working directory; the gateway's own when unset.
    pub cwd: Option<PathBuf>,
}

impl StdioConfig {
    /// Runs `command` with no arguments.
    pub fn new(command: impl Into<String>) -> Self {
        Self {
            command: command.into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            cwd: None,
        }
    }

    /// Sets the arguments.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }
}

/// When and how fast to restart a server that died.
#[derive(Clone, Debug)]
pub struct RestartPolicy {
    /// First delay after a failure.
    pub initial_backoff: Duration,
    /// Upper bound of the doubling delay.
    pub max_backoff: Duration,
    /// A run that lasted this long resets the backoff to `initial_backoff`.
    pub reset_after: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            reset_after: Duration::from_secs(30),
        }
    }
}

impl RestartPolicy {
    /// Delay before restart number `attempt` (0-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Everything the gateway needs to run one upstream server.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// Unique id, used in routing (`<id>__<tool>`), logs and metrics.
    pub id: Arc<str>,
    /// Display name.
    pub name: String,
    /// How to reach it.
    pub transport: Transport,
    /// Deadline of one call, including time queued for a concurrency permit.
    pub timeout: Duration,
    /// Calls in flight at once; more wait for a permit.
    pub max_concurrency: usize,
    /// Restart behaviour after a failure.
    pub restart: RestartPolicy,
    /// Name and version the gateway presents as an MCP client.
    pub client_info: (String, String),
    /// Per-caller credentials (Streamable HTTP): the headers of the first rule that
    /// applies to the caller go with that caller's calls, over the server's own `headers`.
    pub credentials: Vec<Credential>,
    /// Largest single message read from the server (a stdio line, an event, a WebSocket
    /// message, an HTTP answer); a larger one fails its call and is never buffered whole.
    pub max_message_bytes: usize,
    /// Which protocol generation to speak with the server.
    pub protocol: ProtocolChoice,
}

/// Which protocol generation the gateway speaks with an upstream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProtocolChoice {
    /// Probe with `server/discover`; use 2026-07-28 when offered, else `initialize`.
    #[default]
    Auto,
    /// Always the session generation (`initialize`), even if the server offers 2026-07-28.
    Session,
    /// Always 2026-07-28; a server that does not offer it fails to start.
    Stateless,
}

/// Default of [`UpstreamConfig::max_message_bytes`]: 32 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;

/// Headers for the calls of some callers, chosen by the caller's identity.
#[derive(Clone, Debug, Default)]
pub struct Credential {
    /// Callers with one of these subjects (API key name or token `sub`).
    pub subjects: Vec<String>,
    /// Callers with one of these roles; `"*"` matches every caller, anonymous included.
    pub roles: Vec<String>,
    /// Callers who used one of these API keys (by name).
    pub keys: Vec<String>,
    /// Headers sent with their calls (replacing same-named server headers).
    pub headers: BTreeMap<String, String>,
}

impl Credential {
    /// True when the rule applies to `identity` (`None`: anonymous).
    pub fn applies_to(&self, identity: Option<&mcp_gateway_core::Identity>) -> bool {
        if self.roles.iter().any(|r| r == "*") {
            return true;
        }
        let Some(id) = identity else { return false };
        self.subjects.contains(&id.subject)
            || id.roles.iter().any(|r| self.roles.contains(r))
            || id.key_name.as_ref().is_some_and(|k| self.keys.contains(k))
    }
}

impl UpstreamConfig {
    /// A config with defaults: 30 s timeout, 10 calls in flight.
    pub fn new(id: impl Into<Arc<str>>, transport: Transport) -> Self {
        let id = id.into();
        Self {
            name: id.to_string(),
            id,
            transport,
            timeout: Duration::from_secs(30),
            max_concurrency: 10,
            restart: RestartPolicy::default(),
            client_info: ("mcp-gateway".into(), env!("CARGO_PKG_VERSION").into()),
            credentials: Vec::new(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            protocol: ProtocolChoice::Auto,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RestartPolicy::default();
        assert_eq!(p.backoff(0), Duration::from_millis(250));
        assert_eq!(p.backoff(2), Duration::from_millis(1000));
        assert_eq!(p.backoff(40), Duration::from_secs(30));
    }
}
