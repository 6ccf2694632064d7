//! Gateway configuration: the YAML / JSON / TOML file, `${VAR}` substitution, environment
//! overrides and validation.
//!
//! Every type uses `camelCase` keys and rejects unknown keys, so a typo is an error rather
//! than a silently ignored setting. Errors name the file, the key path
//! (`servers[1].timeout`) and, where the parser knows it, the line.
//!
//! [`Config::plan`] validates a config once into the [`Plan`] the gateway is wired from.
//!
//! ```
//! use mcp_gateway_config::{Config, Format};
//! let yaml = "servers:\n  - id: fs\n    command: mcp-server-filesystem\n    args: [\"${ROOT}\"]\n";
//! let env = |name: &str| (name == "ROOT").then(|| "/srv".to_string());
//! let config = Config::parse(yaml, Format::Yaml, "gw.yml".as_ref(), env).unwrap();
//! let plan = config.plan("gw.yml".as_ref()).unwrap();
//! assert_eq!(plan.config.servers[0].args, ["/srv"]);
//!
//! // Every problem, each with its key path.
//! let twice = "servers:\n  - { id: fs, command: a }\n  - { id: fs, command: b }\n";
//! let config = Config::parse(twice, Format::Yaml, "gw.yml".as_ref(), |_| None).unwrap();
//! let errors = config.plan("gw.yml".as_ref()).unwrap_err();
//! assert!(errors.to_string().contains("servers[1].id"), "{errors}");
//! ```

mod env;
pub mod import;
mod security;
mod validate;

pub use security::{AuthSetup, is_loopback};

pub use env::{Missing, substitute};

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The commented default config that `mcp-gateway init` writes.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("default.yml");

/// The whole gateway configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// TCP port of the HTTP listener (`0` picks a free one). Env: `MCP_GATEWAY_PORT`.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Address to bind. Env: `MCP_GATEWAY_HOST`.
    #[serde(default = "default_host")]
    pub host: String,
    /// `trace`, `debug`, `info`, `warn` or `error`. Env: `MCP_GATEWAY_LOG_LEVEL`.
    #[serde(default)]
    pub log_level: LogLevel,
    /// `pretty` (human) or `json` (one object per line) log output.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Who may call the gateway.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Tool-level access rules by role, subject or API key name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access: Vec<AccessRule>,
    /// What happens to a tool no access rule allows: `allow` or `deny`. Unset: `allow`
    /// when there are no `access` rules, `deny` as soon as there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_access: Option<DefaultAccess>,
    /// Request budget per caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitConfig>,
    /// Metrics and the request log.
    #[serde(default)]
    pub monitor: MonitorConfig,
    /// Browser origins allowed by CORS (empty: no CORS headers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cors_origins: Vec<String>,
    /// Largest request body accepted, in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Largest single message read from an upstream (stdio line, event, WebSocket message,
    /// HTTP answer), in bytes; each server may set its own.
    #[serde(default = "default_max_message")]
    pub max_message_bytes: usize,
    /// Deepest nesting of arrays and objects accepted in a client's request (`400` beyond).
    #[serde(default = "default_max_json_depth")]
    pub max_json_depth: usize,
    /// Client connections: how many at once, and how long a request may take to arrive.
    #[serde(default, skip_serializing_if = "ConnectionsConfig::is_default")]
    pub connections: ConnectionsConfig,
    /// How long shutdown waits for in-flight calls, in milliseconds.
    #[serde(default = "default_shutdown_ms")]
    pub shutdown_timeout: u64,
    /// Threads of the `mcp-gateway` binary's async runtime, which serve every request and
    /// drive every upstream: `0` (the default) one per CPU core; `1` one thread (Tokio's
    /// current-thread scheduler: no hand-offs between threads, the least CPU per call when
    /// the gateway shares a small machine with its upstreams); `N` that many. Env:
    /// `MCP_GATEWAY_WORKERS`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub workers: usize,
    /// How tools are named on the MCP endpoint: `prefixed` (`<server>__<tool>`) or `bare`.
    #[serde(default)]
    pub tool_naming: ToolNaming,
    /// Seconds of inactivity after which an MCP session is dropped.
    #[serde(default = "default_session_idle")]
    pub session_idle_timeout: u64,
    /// Health checks of every server (each server may override any key).
    #[serde(default, skip_serializing_if = "HealthCheckConfig::is_unset")]
    pub health_check: HealthCheckConfig,
    /// When `/readyz` says ready: `started` (no server still in its first start), `any`
    /// (at least one server healthy) or `all` (every enabled server healthy).
    #[serde(default)]
    pub readiness: Readiness,
    /// Running several replicas behind one load balancer (sealed session ids, Redis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterConfig>,
    /// The web dashboard.
    #[serde(default, skip_serializing_if = "UiConfig::is_default")]
    pub ui: UiConfig,
    /// How a changed configuration is picked up while running: `manual` (on `SIGHUP` or
    /// `POST /api/v1/admin/reload`) or `watch` (also when the file changes on disk).
    #[serde(default, skip_serializing_if = "ReloadMode::is_manual")]
    pub reload: ReloadMode,
    /// The upstream MCP servers.
    #[serde(default)]
    pub servers: Vec<ServerConfig>,
}

fn default_port() -> u16 {
    4000
}
fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_max_body() -> usize {
    4 * 1024 * 1024
}
fn default_max_json_depth() -> usize {
    128
}
fn default_max_message() -> usize {
    32 * 1024 * 1024
}
fn default_shutdown_ms() -> u64 {
    10_000
}
fn default_session_idle() -> u64 {
    1800
}
fn default_true() -> bool {
    true
}
fn is_zero(n: &usize) -> bool {
    *n == 0
}
/// Most runtime threads `workers` accepts.
const MAX_WORKERS: usize = 1024;
fn default_timeout_ms() -> u64 {
    30_000
}
fn default_concurrency() -> usize {
    10
}

impl Default for Config {
    fn default() -> Self {
        Self {
            port: default_port(),
            host: default_host(),
            log_level: LogLevel::default(),
            log_format: LogFormat::default(),
            auth: AuthConfig::default(),
            access: Vec::new(),
            default_access: None,
            rate_limit: None,
            monitor: MonitorConfig::default(),
            cors_origins: Vec::new(),
            max_body_bytes: default_max_body(),
            max_message_bytes: default_max_message(),
            max_json_depth: default_max_json_depth(),
            connections: ConnectionsConfig::default(),
            shutdown_timeout: default_shutdown_ms(),
            workers: 0,
            tool_naming: ToolNaming::default(),
            session_idle_timeout: default_session_idle(),
            health_check: HealthCheckConfig::default(),
            readiness: Readiness::default(),
            cluster: None,
            ui: UiConfig::default(),
            reload: ReloadMode::default(),
            servers: Vec::new(),
        }
    }
}

/// How the MCP endpoint names the tools it aggregates.
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ToolNaming {
    /// `<prefix>__<tool>` where the prefix is the server's `toolPrefix` or id: never collides.
    #[default]
    Prefixed,
    /// Upstream names unchanged; on a collision the server listed first keeps the bare name
    /// and the others are prefixed.
    Bare,
}

/// Log verbosity.
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Everything, including wire-level detail.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    #[default]
    Info,
    /// Problems only.
    Warn,
    /// Failures only.
    Error,
}

impl LogLevel {
    /// The `tracing` filter directive for this level.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// Log output format.
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Authentication settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthConfig {
    /// `none`, `api-key`, `jwt` or `oauth`.
    #[serde(default)]
    pub strategy: AuthStrategy,
    /// Accepted API keys (strategy `api-key`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_keys: Vec<ApiKey>,
    /// JWT validation (strategies `jwt` and `oauth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtConfig>,
    /// OAuth 2.1 resource-server metadata (strategy `oauth`; RFC 9728).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OauthConfig>,
    /// Roles that see every caller's requests and the metrics (with `strategy: none`,
    /// everyone does).
    #[serde(default = "default_admin_roles")]
    pub admin_roles: Vec<String>,
    /// Failed authentications allowed per client IP before it is answered `429`.
    #[serde(default, skip_serializing_if = "FailureLimit::is_default")]
    pub failure_limit: FailureLimit,
}

/// A budget of failed authentications per client IP (`limit: 0` turns it off).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FailureLimit {
    /// Failures per window.
    #[serde(default = "default_failure_limit")]
    pub limit: u32,
    /// Window length in seconds.
    #[serde(default = "default_failure_window")]
    pub window_seconds: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            strategy: AuthStrategy::default(),
            api_keys: Vec::new(),
            jwt: None,
            oauth: None,
            admin_roles: default_admin_roles(),
            failure_limit: FailureLimit::default(),
        }
    }
}

fn default_admin_roles() -> Vec<String> {
    vec!["admin".into()]
}
fn default_failure_limit() -> u32 {
    20
}
fn default_failure_window() -> u64 {
    60
}

impl Default for FailureLimit {
    fn default() -> Self {
        Self {
            limit: default_failure_limit(),
            window_seconds: default_failure_window(),
        }
    }
}

impl FailureLimit {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// The gateway as an OAuth 2.1 protected resource (RFC 9728).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OauthConfig {
    /// The URL clients use for this gateway (e.g. `https://gw.example.com`); tokens must
    /// carry it as their audience unless `jwt.audience` says otherwise.
    pub resource: String,
    /// Issuer URLs of the authorization servers that issue tokens for it.
    pub authorization_servers: Vec<String>,
    /// Scopes clients may request (advertised in the metadata).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
}

/// The decision for tools no access rule allows.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DefaultAccess {
    /// Allowed unless denied.
    Allow,
    /// Denied unless allowed.
    Deny,
}

/// How callers authenticate.
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum AuthStrategy {
    /// Anyone who can reach the gateway may call it.
    #[default]
    None,
    /// `Authorization: Bearer <key>` or `X-API-Key`.
    ApiKey,
    /// Signed JWT bearer tokens.
    Jwt,
    /// OAuth 2.1 resource server (JWT access tokens, RFC 9728 metadata).
    Oauth,
}

/// An API key: a plain string or an object with a name, roles and the key or its hash.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(untagged)]
pub enum ApiKey {
    /// The key itself.
    Plain(String),
    /// A named key.
    Named(NamedApiKey),
}

/// A named API key with roles.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamedApiKey {
    /// Name used in logs and metrics instead of the key.
    pub name: String,
    /// The key itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `sha256:<hex>` of the key, so the secret need not sit in the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_hash: Option<String>,
    /// Roles granted to holders of this key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// This key's own budget per `rateLimit.windowSeconds` (a `rateLimit.overrides` entry
    /// for the same name wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<u64>,
}

/// JWT validation settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtConfig {
    /// Shared secret for HS* algorithms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// PEM public key (inline or a path) for RS*/ES*/PS*/EdDSA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// JWKS URL of the identity provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// Accepted algorithms (never taken from the token).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub algorithms: Vec<String>,
    /// Required `iss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Required `aud`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Clock skew allowed for `exp` / `nbf`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway: u64,
    /// Claim(s) holding the caller's roles: one name or a list, dotted paths allowed
    /// (`realm_access.roles`); a string value is split on spaces (OAuth `scope`). Default:
    /// `roles`, `scope`, `scp`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "one_or_many"
    )]
    #[schemars(schema_with = "one_or_many_schema")]
    pub roles_claim: Vec<String>,
    /// Claim naming the caller's tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_claim: Option<String>,
    /// Shortest time between two JWKS fetches, in seconds (unknown `kid`s trigger a fetch).
    #[serde(default = "default_jwks_min_refresh")]
    pub jwks_min_refresh: u64,
}

fn default_leeway() -> u64 {
    30
}
fn default_jwks_min_refresh() -> u64 {
    30
}

fn one_or_many_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
    })
}

/// The JSON Schema (2020-12) of the configuration, from its types: field docs become
/// descriptions, unknown keys are refused, as the loader does.
pub fn json_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(Config).to_value();
    if let Some(o) = schema.as_object_mut() {
        o.insert("title".into(), "mcp-gateway configuration".into());
    }
    schema
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize, schemars::JsonSchema)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// One access rule: callers with any of `roles` (or one of `subjects`, or using one of the
/// API keys named in `keys`) may call tools matching `allow` unless a `deny` of any rule that
/// applies to them matches.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessRule {
    /// Roles the rule applies to (`"*"`: every caller, anonymous ones included).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Subjects (token `sub`, API key name) the rule applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    /// Names of API keys the rule applies to (plain keys are named `key-1`, `key-2`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// Glob patterns of allowed qualified tool names (`server__tool`).
    #[serde(default)]
    pub allow: Vec<String>,
    /// Glob patterns of denied qualified tool names; deny wins.
    #[serde(default)]
    pub deny: Vec<String>,
}

/// Rate limiting.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests allowed per window.
    pub limit: u64,
    /// Window length in seconds (at least 1).
    #[serde(default = "default_window")]
    pub window_seconds: u64,
    /// One budget per caller (true) or one for everyone (false).
    #[serde(default = "default_true")]
    pub per_key: bool,
    /// `memory` (this process) or `redis` (shared by replicas).
    #[serde(default)]
    pub backend: RateLimitBackend,
    /// Redis URL for the `redis` backend (`redis://host:port/db`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// What happens while Redis is unreachable: `open` admits requests uncounted, `closed`
    /// rejects them with 503. Either way the fallback is counted in the metrics.
    #[serde(default)]
    pub fail_mode: RateLimitFailMode,
    /// Memory backend: the estimator is sized for this many callers active per window
    /// (64 bytes each, rounded up to a power of two; fixed whatever the number of keys).
    /// Keep it about 4× the callers you expect, or some may be limited early.
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
    /// Callers with a budget of their own, by `subject` (API key name or token `sub`) or
    /// by `role` (the largest matching role limit wins; a subject entry beats any role).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<RateLimitOverride>,
    /// Per-tool and per-server budgets on `tools/call` (REST and MCP), on top of the
    /// request budget; the first entry whose glob matches `<server>__<tool>` applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolLimit>,
}

/// A budget for the calls of some tools.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToolLimit {
    /// Glob over `<server>__<tool>`: `github__*` (a server), `search__query` (a tool).
    #[serde(rename = "match")]
    pub pattern: String,
    /// Calls allowed per window.
    pub limit: u64,
    /// Window length in seconds (default: `rateLimit.windowSeconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<u64>,
    /// One budget per caller (default: `rateLimit.perKey`), else one for everybody.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_key: Option<bool>,
}

fn default_window() -> u64 {
    60
}
fn default_max_keys() -> usize {
    65_536
}

/// A caller with its own rate limit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitOverride {
    /// The caller's subject: the API key's name or the token's `sub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// A role; every caller holding it gets its own budget of `limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Requests allowed per window.
    pub limit: u64,
}

/// Behaviour of the `redis` backend while Redis is unreachable.
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitFailMode {
    /// Admit requests uncounted (availability first).
    #[default]
    Open,
    /// Reject requests with 503 and `Retry-After: 1` (protection first).
    Closed,
}

/// Where rate-limit counters live.
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitBackend {
    /// In this process.
    #[default]
    Memory,
    /// In Redis, shared by every replica.
    Redis,
}

/// Health checks: an MCP `ping` (a `tools/list` for servers without `ping`) every
/// `intervalSeconds`; unset keys take the gateway's value, then the default.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// Probe at all (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Seconds between probes (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<u64>,
    /// A probe unanswered after this many milliseconds fails (default 5000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// A probe slower than this many milliseconds makes the server degraded (default 2000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degraded_latency_ms: Option<u64>,
    /// Failed probes in a row that make the server unhealthy: its calls then fail fast with
    /// 503 until a probe succeeds (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_after: Option<u32>,
    /// Failed probes in a row after which the server is restarted (stdio: the process;
    /// network: the connection); 0 never (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_after: Option<u32>,
}

impl HealthCheckConfig {
    fn is_unset(&self) -> bool {
        *self == Self::default()
    }

    /// `self` with unset keys taken from `base`.
    pub fn over(&self, base: &HealthCheckConfig) -> HealthCheckConfig {
        HealthCheckConfig {
            enabled: self.enabled.or(base.enabled),
            interval_seconds: self.interval_seconds.or(base.interval_seconds),
            timeout_ms: self.timeout_ms.or(base.timeout_ms),
            degraded_latency_ms: self.degraded_latency_ms.or(base.degraded_latency_ms),
            unhealthy_after: self.unhealthy_after.or(base.unhealthy_after),
            restart_after: self.restart_after.or(base.restart_after),
        }
    }
}

/// When the gateway reports itself ready on `/readyz`.
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Readiness {
    /// No enabled server is still in its first start.
    #[default]
    Started,
    /// At least one server is healthy.
    Any,
    /// Every enabled server is healthy.
    All,
}

/// Headers for some callers' calls to one server, chosen by identity.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialConfig {
    /// Callers with one of these subjects (API key name or token `sub`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    /// Callers with one of these roles (`"*"`: everyone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Callers who used one of these API keys (by name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// Headers sent with their calls, e.g. `Authorization: "Bearer ${TEAM_A_TOKEN}"`.
    pub headers: BTreeMap<String, String>,
}

pub use mcp_gateway_cluster::ClusterConfig;

/// Client connections.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionsConfig {
    /// Most client connections served at once (`0`: three quarters of the open-file
    /// limit). Beyond it, a connection gets only the probes (`/healthz`, `/readyz`) and
    /// `503` for anything else, for a second; beyond that it is closed at once.
    #[serde(default)]
    pub max: usize,
    /// Milliseconds to receive a request's headers, counted from the connection's start
    /// or the end of the previous answer: also the idle limit of a kept-alive connection.
    #[serde(default = "default_header_timeout")]
    pub header_timeout: u64,
    /// Milliseconds a request body may stall before the request fails with `408`.
    #[serde(default = "default_body_timeout")]
    pub body_timeout: u64,
}

fn default_header_timeout() -> u64 {
    30_000
}
fn default_body_timeout() -> u64 {
    30_000
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        Self {
            max: 0,
            header_timeout: default_header_timeout(),
            body_timeout: default_body_timeout(),
        }
    }
}

impl ConnectionsConfig {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// The web dashboard (`/ui`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UiConfig {
    /// Serve the dashboard (off removes its routes).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Path prefix the dashboard is served under.
    #[serde(default = "default_ui_path")]
    pub path: String,
}

fn default_ui_path() -> String {
    "/ui".into()
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: default_ui_path(),
        }
    }
}

impl UiConfig {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// How a changed configuration is picked up while running.
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ReloadMode {
    /// On `SIGHUP` or `POST /api/v1/admin/reload` only.
    #[default]
    Manual,
    /// Also when the file changes on disk (debounced; editors' write-then-rename saves
    /// included).
    Watch,
}

impl ReloadMode {
    fn is_manual(&self) -> bool {
        *self == Self::Manual
    }
}

/// Metrics and request log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MonitorConfig {
    /// Keep a log of recent calls (`GET /api/v1/requests`).
    #[serde(default = "default_true")]
    pub request_log: bool,
    /// How many recent calls the log keeps.
    #[serde(default = "default_log_size")]
    pub request_log_size: usize,
    /// Serve Prometheus text at `/metrics`.
    #[serde(default = "default_true")]
    pub prometheus: bool,
    /// How long metrics and log entries are kept, in hours.
    #[serde(default = "default_retention")]
    pub retention_hours: u64,
    /// Older spelling of `captureBodies: all` (still accepted).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub log_bodies: bool,
    /// Which calls keep their arguments and result in the request log (redacted, bounded):
    /// `none` (the default), `errors` (calls whose outcome is not `ok`) or `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_bodies: Option<CaptureBodies>,
    /// Longest captured body (arguments or result) per entry, in bytes; a longer one is
    /// kept cut, as a string ending in `…`, and marked `truncated`.
    #[serde(default = "default_capture_body")]
    pub max_body_bytes: usize,
    /// Most bytes the captured bodies of all entries take together; past it the oldest
    /// entries' bodies are dropped first (the entries stay, marked `dropped`).
    #[serde(default = "default_capture_bytes")]
    pub capture_bytes: usize,
    /// Patterns of object keys whose values are replaced by `"[REDACTED]"` in captured
    /// bodies, at any depth: globs (`*`, `?`) compared with the key with case and `_`, `-`,
    /// `.` and spaces ignored. Setting the list replaces the default.
    #[serde(default = "default_redact")]
    pub redact: Vec<String>,
    /// More values to redact, by JSON pointer (RFC 6901) into
    /// `{"arguments": ..., "result": ...}`: `/arguments/query`, `/result/content/*/text`
    /// (`*` is any one key or index).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redact_pointers: Vec<String>,
    /// Most distinct (server, tool) metric label pairs; calls past it count under
    /// `tool="_other"`.
    #[serde(default = "default_max_series")]
    pub max_series: usize,
    /// OpenTelemetry span export over OTLP/HTTP; off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TracingConfig>,
}

/// Where and how spans are exported (`monitor.tracing`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TracingConfig {
    /// OTLP/HTTP collector: a base URL (`http://127.0.0.1:4318`, `/v1/traces` is added) or
    /// the full traces URL.
    pub endpoint: String,
    /// Wire encoding of the export requests.
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// Fraction of new traces recorded (0.0 to 1.0); a caller's sampled flag is followed.
    #[serde(default = "default_sample_ratio")]
    pub sample_ratio: f64,
    /// `service.name` of the exported spans.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Headers on every export request (collector credentials; `${ENV}` works).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Timeout of one export request, in milliseconds.
    #[serde(default = "default_export_timeout")]
    pub timeout_ms: u64,
}

/// OTLP/HTTP encodings.
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum OtlpProtocol {
    /// `application/x-protobuf`, the OTLP default.
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// `application/json`.
    #[serde(rename = "http/json")]
    HttpJson,
}

impl TracingConfig {
    /// The traces URL: the endpoint as given when it has a path, else `<endpoint>/v1/traces`.
    pub fn traces_url(&self) -> String {
        let e = self.endpoint.trim_end_matches('/');
        match e.split_once("://") {
            Some((_, rest)) if rest.contains('/') => e.to_string(),
            _ => format!("{e}/v1/traces"),
        }
    }
}

fn default_sample_ratio() -> f64 {
    1.0
}
fn default_service_name() -> String {
    "mcp-gateway".into()
}
fn default_export_timeout() -> u64 {
    10_000
}

fn default_redact() -> Vec<String> {
    mcp_gateway_core::redact::SECRET_KEYS
        .iter()
        .map(|s| s.to_string())
        .collect()
}
fn default_max_series() -> usize {
    10_000
}

fn default_log_size() -> usize {
    1000
}
fn default_capture_body() -> usize {
    4096
}
fn default_capture_bytes() -> usize {
    8 * 1024 * 1024
}

/// Which calls keep their bodies in the request log (`monitor.captureBodies`).
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum CaptureBodies {
    /// No bodies.
    #[default]
    None,
    /// Calls whose outcome is not `ok`: failed, refused, tool errors, cancelled.
    Errors,
    /// Every call.
    All,
}

impl MonitorConfig {
    /// The capture mode in effect: `captureBodies`, else `all` when the older
    /// `logBodies: true` is set.
    pub fn capture(&self) -> CaptureBodies {
        match (self.capture_bodies, self.log_bodies) {
            (Some(c), _) => c,
            (None, true) => CaptureBodies::All,
            (None, false) => CaptureBodies::None,
        }
    }
}
fn default_retention() -> u64 {
    24
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            request_log: true,
            request_log_size: default_log_size(),
            prometheus: true,
            retention_hours: default_retention(),
            log_bodies: false,
            capture_bodies: None,
            max_body_bytes: default_capture_body(),
            capture_bytes: default_capture_bytes(),
            redact: default_redact(),
            redact_pointers: Vec::new(),
            max_series: default_max_series(),
            tracing: None,
        }
    }
}

/// Transport used to reach an upstream server.
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum TransportKind {
    /// Child process over stdin/stdout.
    #[default]
    Stdio,
    /// Legacy HTTP+SSE (2024-11-05).
    Sse,
    /// Streamable HTTP (2025-03-26 and later).
    StreamableHttp,
    /// WebSocket, one JSON-RPC message per text frame.
    Websocket,
}

impl TransportKind {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Stdio => "stdio",
            TransportKind::Sse => "sse",
            TransportKind::StreamableHttp => "streamable-http",
            TransportKind::Websocket => "websocket",
        }
    }
}

/// One upstream MCP server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerConfig {
    /// Unique id: letters, digits, `-` and `_` (no `__`, which separates qualified names).
    pub id: String,
    /// Display name (defaults to the id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `stdio`, `sse`, `streamable-http` or `websocket`.
    #[serde(default)]
    pub transport: TransportKind,
    /// Program to run (stdio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Its arguments (stdio).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Extra environment variables for the process (stdio).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory of the process (stdio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    /// Server URL (network transports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Extra HTTP headers sent upstream (network transports).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Per-caller credentials (`streamable-http`): the first entry that applies to the
    /// caller adds its `headers` to that caller's calls, over the server's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<CredentialConfig>,
    /// Free-form labels, filterable with `GET /api/v1/tools?tag=`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Disabled servers are listed but never started.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Deadline of one call in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout: u64,
    /// Calls in flight at once.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    /// Prefix of this server's tools on the MCP endpoint (default: the id; `""` for none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_prefix: Option<String>,
    /// This server's health-check settings, over the gateway's `healthCheck`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckConfig>,
    /// Largest single message read from this server, over the gateway's `maxMessageBytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_bytes: Option<usize>,
    /// Protocol generation spoken with this server: `auto` (probe with `server/discover`,
    /// 2026-07-28 when offered), `session` (always `initialize`) or `stateless`
    /// (always 2026-07-28; the server must offer it).
    #[serde(default, skip_serializing_if = "is_default")]
    pub protocol: ProtocolKind,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Which protocol generation the gateway speaks with one upstream server.
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum ProtocolKind {
    /// Probe with `server/discover`; 2026-07-28 when offered, else the session generation.
    #[default]
    Auto,
    /// The session generation (`initialize`, `Mcp-Session-Id`).
    Session,
    /// The stateless 2026-07-28 revision.
    Stateless,
}

impl ServerConfig {
    /// The display name.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }

    /// The call deadline.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout)
    }
}

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `<env>` for environment overrides).
    pub file: PathBuf,
    /// Key path such as `servers[1].timeout`, when known.
    pub path: Option<String>,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        write!(f, ": ")?;
        if let Some(p) = &self.path {
            write!(f, "{p}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// A validated configuration and what validating it built: the one object the gateway's
/// layers take their parts from (and what a reload can swap whole).
#[derive(Clone, Debug)]
pub struct Plan {
    /// The configuration.
    pub config: Config,
    /// Authentication, ready to layer.
    pub auth: AuthSetup,
    /// The access policy of the MCP plane; `None` when every caller may use everything.
    pub policy: Option<std::sync::Arc<mcp_gateway_auth::AccessPolicy>>,
}

/// Every problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// File formats, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.yml` / `.yaml`.
    Yaml,
    /// `.json`.
    Json,
    /// `.toml`.
    Toml,
}

impl Format {
    /// The format for `path`'s extension.
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "yml" | "yaml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            "toml" => Some(Format::Toml),
            _ => None,
        }
    }
}

impl Config {
    /// Reads, substitutes, parses and validates `path`, then applies `MCP_GATEWAY_*`
    /// environment overrides.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                path: None,
                line: None,
                message: format!("cannot read: {e}"),
            }])
        })?;
        let format = Format::from_path(path).ok_or_else(|| {
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                path: None,
                line: None,
                message: "unknown extension: use .yml, .yaml, .json or .toml".into(),
            }])
        })?;
        let mut cfg = Self::parse(&text, format, path, |k| std::env::var(k).ok())?;
        cfg.apply_env_overrides(|k| std::env::var(k).ok())?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Substitutes variables with `lookup` and parses `text` (no validation).
    pub fn parse(
        text: &str,
        format: Format,
        file: &Path,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        let err = |path: Option<String>, line: Option<usize>, message: String| ConfigError {
            file: file.to_path_buf(),
            path,
            line,
            message,
        };
        let (text, missing) = substitute(text, format != Format::Json, lookup)
            .map_err(|m| ConfigErrors(vec![err(None, None, m)]))?;
        if !missing.is_empty() {
            let paths = missing_paths(&text, format);
            return Err(ConfigErrors(
                missing
                    .iter()
                    .map(|m| {
                        let key = paths
                            .iter()
                            .find(|(_, v)| v == &m.var)
                            .map(|(p, _)| p.clone());
                        err(
                            key,
                            Some(m.line),
                            format!("environment variable {} is not set (use ${{{}:-default}} for a fallback)", m.var, m.var),
                        )
                    })
                    .collect(),
            ));
        }
        let parsed: Result<Config, (String, String, Option<usize>)> = match format {
            Format::Yaml => {
                let de = yaml_serde::Deserializer::from_str(&text);
                serde_path_to_error::deserialize(de).map_err(|e| {
                    let line = e.inner().location().map(|l| l.line());
                    let path = e.path().to_string();
                    let msg = strip_path_prefix(&strip_location(&e.inner().to_string()), &path);
                    (path, msg, line)
                })
            }
            Format::Json => {
                let mut de = serde_json::Deserializer::from_str(&text);
                serde_path_to_error::deserialize(&mut de).map_err(|e| {
                    let line = Some(e.inner().line()).filter(|l| *l > 0);
                    (
                        e.path().to_string(),
                        strip_location(&e.inner().to_string()),
                        line,
                    )
                })
            }
            Format::Toml => match toml::Deserializer::parse(&text) {
                Ok(de) => serde_path_to_error::deserialize(de).map_err(|e| {
                    let line = e.inner().span().map(|s| line_of(&text, s.start));
                    (e.path().to_string(), e.inner().message().to_string(), line)
                }),
                Err(e) => Err((
                    ".".into(),
                    e.message().to_string(),
                    e.span().map(|s| line_of(&text, s.start)),
                )),
            },
        };
        parsed.map_err(|(path, message, line)| {
            let path = (path != "." && !path.is_empty()).then_some(path);
            ConfigErrors(vec![err(path, line, message)])
        })
    }

    /// Applies `MCP_GATEWAY_PORT`, `MCP_GATEWAY_HOST`, `MCP_GATEWAY_LOG_LEVEL` and
    /// `MCP_GATEWAY_WORKERS`.
    pub fn apply_env_overrides(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigErrors> {
        let bad = |var: &str, message: String| {
            ConfigErrors(vec![ConfigError {
                file: PathBuf::from("<environment>"),
                path: Some(var.to_string()),
                line: None,
                message,
            }])
        };
        if let Some(p) = lookup("MCP_GATEWAY_PORT") {
            self.port = p
                .trim()
                .parse()
                .map_err(|_| bad("MCP_GATEWAY_PORT", format!("{p:?} is not a port (0-65535)")))?;
        }
        if let Some(h) = lookup("MCP_GATEWAY_HOST") {
            self.host = h;
        }
        if let Some(l) = lookup("MCP_GATEWAY_LOG_LEVEL") {
            self.log_level = serde_json::from_value(serde_json::Value::String(l.to_lowercase()))
                .map_err(|_| {
                    bad(
                        "MCP_GATEWAY_LOG_LEVEL",
                        format!("{l:?} is not one of trace, debug, info, warn, error"),
                    )
                })?;
        }
        if let Some(w) = lookup("MCP_GATEWAY_WORKERS") {
            self.workers = w.trim().parse().map_err(|_| {
                bad(
                    "MCP_GATEWAY_WORKERS",
                    format!("{w:?} is not a number of threads (0 for one per core)"),
                )
            })?;
        }
        Ok(())
    }

    /// Checks what the types alone cannot: unique ids, required fields per transport,
    /// ranges and cross-field rules.
    pub fn validate(&self, file: &Path) -> Result<(), ConfigErrors> {
        self.check(file).map(|_| ())
    }

    /// Validates the config once into the [`Plan`] the gateway is wired from: the config
    /// and what validating it built (the authenticator, the access policy).
    pub fn plan(self, file: &Path) -> Result<Plan, ConfigErrors> {
        let (auth, policy) = self.check(file)?;
        Ok(Plan {
            config: self,
            auth,
            policy: policy.map(std::sync::Arc::new),
        })
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

/// Parser messages end with " at line X column Y"; the line is reported separately.
fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// The YAML parser starts its messages with the (parent) key path, which the error already
/// shows once.
fn strip_path_prefix(msg: &str, path: &str) -> String {
    match msg.split_once(": ") {
        Some((head, rest)) if !head.contains(' ') && path.starts_with(head) => rest.to_string(),
        _ => msg.to_string(),
    }
}

/// Finds the key paths whose values hold a missing-variable marker.
fn missing_paths(text: &str, format: Format) -> Vec<(String, String)> {
    let value: Option<serde_json::Value> = match format {
        Format::Yaml => yaml_serde::from_str(text).ok(),
        Format::Json => serde_json::from_str(text).ok(),
        Format::Toml => toml::from_str(text).ok(),
    };
    let mut out = Vec::new();
    if let Some(v) = value {
        walk(&v, String::new(), &mut out);
    }
    out
}

fn walk(v: &serde_json::Value, path: String, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(i) = rest.find("__MCP_GATEWAY_UNSET_") {
                let tail = &rest[i + "__MCP_GATEWAY_UNSET_".len()..];
                if let Some(end) = tail.find("__") {
                    out.push((path.clone(), tail[..end].to_string()));
                    rest = &tail[end..];
                } else {
                    break;
                }
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                walk(x, format!("{path}[{i}]"), out);
            }
        }
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(x, p, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
