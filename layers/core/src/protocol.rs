//! MCP protocol revisions and the `_meta` keys of the stateless generation.

use serde_json::value::RawValue;
/// The stateless revision (no `initialize`, `_meta` on every request).
pub const STATELESS_VERSION: &str = "2026-07-28";
/// Newest revision of the session generation.
pub const LATEST_SESSION_VERSION: &str = "2025-11-25";
/// Session-generation revisions the gateway speaks, newest first.
pub const SESSION_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// `_meta` key carrying the protocol version on every 2026-07-28 request.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key carrying the client capabilities on every 2026-07-28 request.
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key carrying the client identity on every 2026-07-28 request.
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// `_meta` key carrying the server identity on 2026-07-28 results.
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
/// `_meta` key of a 2026-07-28 request's log level: the server sends `notifications/message`
/// at or above it on that request's stream, and none when it is absent.
pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";

/// An MCP log level (RFC 5424 severities), least severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// `debug`
    Debug,
    /// `info`
    Info,
    /// `notice`
    Notice,
    /// `warning`
    Warning,
    /// `error`
    Error,
    /// `critical`
    Critical,
    /// `alert`
    Alert,
    /// `emergency`
    Emergency,
}

impl LogLevel {
    const ALL: [(LogLevel, &'static str); 8] = [
        (LogLevel::Debug, "debug"),
        (LogLevel::Info, "info"),
        (LogLevel::Notice, "notice"),
        (LogLevel::Warning, "warning"),
        (LogLevel::Error, "error"),
        (LogLevel::Critical, "critical"),
        (LogLevel::Alert, "alert"),
        (LogLevel::Emergency, "emergency"),
    ];

    /// The level a name (as in `logging/setLevel` or `_meta`) stands for.
    pub fn parse(name: &str) -> Option<LogLevel> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(l, _)| *l)
    }

    /// The level's name on the wire.
    pub fn as_str(self) -> &'static str {
        Self::ALL[self as usize].1
    }

    /// The `level` of a `notifications/message`'s params (`None` when unreadable).
    pub fn of_message(params: Option<&RawValue>) -> Option<LogLevel> {
        #[derive(serde::Deserialize)]
        struct Msg<'a> {
            #[serde(borrow)]
            level: std::borrow::Cow<'a, str>,
        }
        let m: Msg<'_> = serde_json::from_str(params?.get()).ok()?;
        LogLevel::parse(&m.level)
    }
}

/// Which protocol generation a peer speaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Generation {
    /// `initialize` handshake and (over HTTP) `Mcp-Session-Id`; carries the negotiated revision.
    Session(String),
    /// The 2026-07-28 revision: `server/discover`, `_meta` on every request.
    Stateless(String),
}

impl Generation {
    /// The negotiated protocol revision.
    pub fn version(&self) -> &str {
        match self {
            Generation::Session(v) | Generation::Stateless(v) => v,
        }
    }

    /// True for the stateless 2026-07-28 generation.
    pub fn is_stateless(&self) -> bool {
        matches!(self, Generation::Stateless(_))
    }
}

/// True when `v` names a revision of the session generation the gateway speaks.
pub fn is_session_version(v: &str) -> bool {
    SESSION_VERSIONS.contains(&v)
}

/// The MCP methods the gateway sends or relays, for [`method_text`].
const METHODS: &[&str] = &[
    "tools/call",
    "tools/list",
    "initialize",
    "ping",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/message",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "completion/complete",
    "logging/setLevel",
    "server/discover",
    "subscriptions/listen",
    "sampling/createMessage",
    "elicitation/create",
    "roots/list",
    "notifications/tools/list_changed",
    "notifications/resources/list_changed",
    "notifications/prompts/list_changed",
    "notifications/resources/updated",
    "notifications/roots/list_changed",
];

/// `method` as text to keep: static for the methods of MCP (no allocation), a copy for
/// any other.
pub fn method_text(method: &str) -> std::borrow::Cow<'static, str> {
    match METHODS.iter().find(|m| **m == method) {
        Some(m) => std::borrow::Cow::Borrowed(m),
        None => std::borrow::Cow::Owned(method.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn method_text_is_static_for_mcp_methods_only() {
        assert!(matches!(
            method_text("tools/call"),
            Cow::Borrowed("tools/call")
        ));
        assert!(matches!(
            method_text("notifications/initialized"),
            Cow::Borrowed("notifications/initialized")
        ));
        let other = method_text("x/custom");
        assert!(matches!(&other, Cow::Owned(s) if s == "x/custom"));
    }
}
