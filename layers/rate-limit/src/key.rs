//! Who a request is charged to: [`RateKey`] and the pluggable [`KeyExtractor`].

use mcp_gateway_core::Identity;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

/// The budget a request is charged to, with an optional limit of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateKey {
    kind: KeyKind,
    limit: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyKind {
    Global,
    Identity(Arc<Identity>),
    Ip(IpAddr),
    Custom(Arc<str>),
}

impl RateKey {
    /// One budget shared by every request with this key.
    pub fn global() -> Self {
        Self::of(KeyKind::Global)
    }

    /// The authenticated caller's budget (by tenant and subject).
    pub fn identity(identity: Arc<Identity>) -> Self {
        Self::of(KeyKind::Identity(identity))
    }

    /// An anonymous client's budget, by peer address.
    pub fn ip(ip: IpAddr) -> Self {
        Self::of(KeyKind::Ip(ip))
    }

    /// Any other budget name.
    pub fn custom(name: impl Into<Arc<str>>) -> Self {
        Self::of(KeyKind::Custom(name.into()))
    }

    fn of(kind: KeyKind) -> Self {
        Self { kind, limit: None }
    }

    /// Overrides the layer's limit for this key.
    #[must_use]
    pub fn with_limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }

    /// The overriding limit, if any.
    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// A printable, stable name for the key (used as the Redis key).
    pub fn name(&self) -> String {
        match &self.kind {
            KeyKind::Global => "global".into(),
            KeyKind::Identity(i) => match &i.tenant {
                Some(t) => format!("id:{t}/{}", i.subject),
                None => format!("id:{}", i.subject),
            },
            KeyKind::Ip(ip) => format!("ip:{ip}"),
            KeyKind::Custom(s) => format!("c:{s}"),
        }
    }
}

impl Hash for RateKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The limit is not part of the budget's identity.
        match &self.kind {
            KeyKind::Global => state.write_u8(0),
            KeyKind::Identity(i) => {
                state.write_u8(1);
                i.tenant.hash(state);
                i.subject.hash(state);
            }
            KeyKind::Ip(ip) => {
                state.write_u8(2);
                ip.hash(state);
            }
            KeyKind::Custom(s) => {
                state.write_u8(3);
                s.hash(state);
            }
        }
    }
}

/// Chooses the budget a request is charged to; `None` lets it through unlimited and
/// without headers (probes, metrics scrapes).
pub trait KeyExtractor<B> {
    /// The key for `req`.
    fn extract(&self, req: &http::Request<B>) -> Option<RateKey>;
}

impl<B, F> KeyExtractor<B> for F
where
    F: Fn(&http::Request<B>) -> Option<RateKey>,
{
    fn extract(&self, req: &http::Request<B>) -> Option<RateKey> {
        self(req)
    }
}

/// Per-caller limits that replace the default: by subject (API key name or token `sub`)
/// or by role (the largest matching role limit wins; a subject entry beats any role).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    by_subject: HashMap<String, u64>,
    by_role: HashMap<String, u64>,
}

impl Overrides {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }

    /// Gives `subject` its own budget of `limit`.
    #[must_use]
    pub fn subject(mut self, subject: impl Into<String>, limit: u64) -> Self {
        self.by_subject.insert(subject.into(), limit);
        self
    }

    /// Gives callers with `role` their own budget of `limit`.
    #[must_use]
    pub fn role(mut self, role: impl Into<String>, limit: u64) -> Self {
        self.by_role.insert(role.into(), limit);
        self
    }

    /// True when nothing is overridden.
    pub fn is_empty(&self) -> bool {
        self.by_subject.is_empty() && self.by_role.is_empty()
    }

    /// The overriding limit for `identity`, if any.
    pub fn limit_for(&self, identity: &Identity) -> Option<u64> {
        if let Some(l) = self.by_subject.get(&identity.subject) {
            return Some(*l);
        }
        identity
            .roles
            .iter()
            .filter_map(|r| self.by_role.get(r).copied())
            .max()
    }
}

/// The default extractor: the authenticated [`Identity`] that an auth layer put in the
/// request extensions (`Arc<Identity>`), else the peer IP (axum's
/// `ConnectInfo<SocketAddr>` or a bare `SocketAddr` extension), else one anonymous budget.
///
/// With `per_key: false` everyone shares one global budget, except callers with an
/// [`Overrides`] entry, who always get their own.
#[derive(Debug, Clone)]
pub struct IdentityOrIp {
    per_key: bool,
    overrides: Arc<Overrides>,
}

impl IdentityOrIp {
    /// One budget per caller (`per_key`) or one for all.
    pub fn new(per_key: bool) -> Self {
        Self {
            per_key,
            overrides: Arc::new(Overrides::new()),
        }
    }

    /// Per-caller limits.
    #[must_use]
    pub fn overrides(mut self, overrides: Overrides) -> Self {
        self.overrides = Arc::new(overrides);
        self
    }

    /// The key for a request with these extensions.
    pub fn key_for(&self, ext: &http::Extensions) -> RateKey {
        if let Some(id) = ext.get::<Arc<Identity>>() {
            if let Some(limit) = self.overrides.limit_for(id) {
                return RateKey::identity(id.clone()).with_limit(limit);
            }
            return if self.per_key {
                RateKey::identity(id.clone())
            } else {
                RateKey::global()
            };
        }
        if !self.per_key {
            return RateKey::global();
        }
        match peer_ip(ext) {
            Some(ip) => RateKey::ip(ip),
            None => RateKey::custom("anonymous"),
        }
    }
}

fn peer_ip(ext: &http::Extensions) -> Option<IpAddr> {
    #[cfg(feature = "axum")]
    if let Some(ci) = ext.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>() {
        return Some(ci.0.ip());
    }
    ext.get::<std::net::SocketAddr>().map(|a| a.ip())
}

impl<B> KeyExtractor<B> for IdentityOrIp {
    fn extract(&self, req: &http::Request<B>) -> Option<RateKey> {
        Some(self.key_for(req.extensions()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(subject: &str, roles: &[&str]) -> Arc<Identity> {
        Arc::new(Identity {
            subject: subject.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..Identity::default()
        })
    }

    #[test]
    fn keys_by_identity_ip_or_global() {
        let x = IdentityOrIp::new(true).overrides(
            Overrides::new()
                .subject("ci", 1000)
                .role("admin", 500)
                .role("ops", 700),
        );
        let mut ext = http::Extensions::new();
        assert_eq!(x.key_for(&ext).name(), "c:anonymous");
        ext.insert("10.0.0.7:5000".parse::<std::net::SocketAddr>().unwrap());
        assert_eq!(x.key_for(&ext).name(), "ip:10.0.0.7");
        ext.insert(id("alice", &[]));
        let k = x.key_for(&ext);
        assert_eq!((k.name().as_str(), k.limit()), ("id:alice", None));
        ext.insert(id("bob", &["admin", "ops"]));
        assert_eq!(x.key_for(&ext).limit(), Some(700));
        ext.insert(id("ci", &["admin"]));
        assert_eq!(x.key_for(&ext).limit(), Some(1000));

        let shared = IdentityOrIp::new(false).overrides(Overrides::new().subject("ci", 9));
        assert_eq!(shared.key_for(&ext).name(), "id:ci");
        ext.insert(id("alice", &[]));
        assert_eq!(shared.key_for(&ext), RateKey::global());
    }
}
