//! MCP protocol revisions and the `_meta` keys of the stateless generation.

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
