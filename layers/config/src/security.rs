//! Turns the `auth:`, `access:` and `defaultAccess:` config into the `mcp-gateway-auth`
//! pieces the gateway wires in: the [`Authenticator`] behind the HTTP [`AuthLayer`], the
//! RFC 9728 metadata of the OAuth mode and the [`AccessPolicy`] of the MCP plane.

use crate::{ApiKey, AuthStrategy, Config, DefaultAccess};
use mcp_gateway_auth::{
    AccessPolicy, AccessRule, ApiKeys, AuthLayer, Authenticator, JwtAuth, JwtKey,
    ProtectedResource, parse_algorithm,
};
use std::time::Duration;

/// The authentication side of a config, checked and ready to layer.
#[derive(Clone, Debug)]
pub struct AuthSetup {
    /// Who the callers are: none, API keys or JWT / OAuth.
    pub authenticator: Authenticator,
    /// Served at the well-known paths and pointed to by 401 challenges (strategy `oauth`).
    pub metadata: Option<ProtectedResource>,
}

impl AuthSetup {
    /// The HTTP layer for this setup, or `None` for strategy `none`.
    pub fn layer(&self) -> Option<AuthLayer> {
        if matches!(self.authenticator, Authenticator::None) {
            return None;
        }
        let layer = AuthLayer::new(self.authenticator.clone());
        Some(match &self.metadata {
            Some(m) => layer.resource_metadata(m.metadata_url()),
            None => layer,
        })
    }
}

/// A config problem: key path and message.
pub(crate) type SetupError = (String, String);

/// Builds the authenticator (reading a `publicKey` file if one is named).
pub(crate) fn setup(cfg: &Config) -> Result<AuthSetup, SetupError> {
    let auth = &cfg.auth;
    let authenticator = match auth.strategy {
        AuthStrategy::None => Authenticator::None,
        AuthStrategy::ApiKey => {
            let mut keys = ApiKeys::new();
            for (i, k) in auth.api_keys.iter().enumerate() {
                keys = match k {
                    ApiKey::Plain(key) => {
                        keys.key(format!("key-{}", i + 1), key, Vec::<String>::new())
                    }
                    ApiKey::Named(n) => match (&n.key, &n.key_hash) {
                        (Some(key), _) => keys.key(&n.name, key, n.roles.iter().cloned()),
                        (None, Some(h)) => keys
                            .hashed_key(&n.name, h, n.roles.iter().cloned())
                            .map_err(|e| (format!("auth.apiKeys[{i}].keyHash"), e.to_string()))?,
                        (None, None) => {
                            return Err((
                                format!("auth.apiKeys[{i}]"),
                                "needs key or keyHash".into(),
                            ));
                        }
                    },
                };
            }
            Authenticator::ApiKeys(keys)
        }
        AuthStrategy::Jwt | AuthStrategy::Oauth => {
            let j = auth.jwt.as_ref().ok_or_else(|| {
                (
                    "auth.jwt".to_string(),
                    "strategy jwt/oauth needs a jwt section".to_string(),
                )
            })?;
            let sources = [
                j.secret.is_some(),
                j.public_key.is_some(),
                j.jwks_url.is_some(),
            ];
            if sources.iter().filter(|s| **s).count() != 1 {
                return Err((
                    "auth.jwt".into(),
                    "needs exactly one of secret, publicKey or jwksUrl".into(),
                ));
            }
            let key = if let Some(s) = &j.secret {
                JwtKey::Secret(s.as_bytes().to_vec())
            } else if let Some(p) = &j.public_key {
                if p.contains("-----BEGIN") {
                    JwtKey::Pem(p.as_bytes().to_vec())
                } else {
                    JwtKey::Pem(std::fs::read(p).map_err(|e| {
                        (
                            "auth.jwt.publicKey".to_string(),
                            format!("cannot read PEM file {p:?}: {e}"),
                        )
                    })?)
                }
            } else {
                JwtKey::JwksUrl(j.jwks_url.clone().unwrap_or_default())
            };
            let algorithms = if j.algorithms.is_empty() {
                vec![if j.secret.is_some() {
                    "HS256".to_string()
                } else {
                    "RS256".to_string()
                }]
            } else {
                j.algorithms.clone()
            };
            let mut algs = Vec::with_capacity(algorithms.len());
            for (i, a) in algorithms.iter().enumerate() {
                algs.push(
                    parse_algorithm(a)
                        .map_err(|e| (format!("auth.jwt.algorithms[{i}]"), e.to_string()))?,
                );
            }
            let mut b = JwtAuth::builder(key, algs)
                .leeway(j.leeway)
                .jwks_min_refresh(Duration::from_secs(j.jwks_min_refresh));
            if let Some(i) = &j.issuer {
                b = b.issuer(i);
            }
            let audience = j.audience.clone().or_else(|| {
                (auth.strategy == AuthStrategy::Oauth)
                    .then(|| auth.oauth.as_ref().map(|o| o.resource.clone()))
                    .flatten()
            });
            if let Some(a) = audience {
                b = b.audience(a);
            }
            if !j.roles_claim.is_empty() {
                b = b.roles_claims(j.roles_claim.iter().cloned());
            }
            if let Some(t) = &j.tenant_claim {
                b = b.tenant_claim(t);
            }
            Authenticator::Jwt(
                b.build()
                    .map_err(|e| ("auth.jwt".to_string(), e.to_string()))?,
            )
        }
    };
    let metadata = match (auth.strategy, &auth.oauth) {
        (AuthStrategy::Oauth, Some(o)) => {
            if o.authorization_servers.is_empty() {
                return Err((
                    "auth.oauth.authorizationServers".into(),
                    "name at least one authorization server".into(),
                ));
            }
            let pr = ProtectedResource::new(&o.resource)
                .map_err(|e| ("auth.oauth.resource".to_string(), e.to_string()))?
                .authorization_servers(o.authorization_servers.iter().cloned())
                .scopes_supported(o.scopes_supported.iter().cloned())
                .resource_name("mcp-gateway");
            Some(pr)
        }
        (AuthStrategy::Oauth, None) => {
            return Err((
                "auth.oauth".into(),
                "strategy oauth needs an oauth section with resource and authorizationServers"
                    .into(),
            ));
        }
        (_, Some(_)) => {
            return Err(("auth.oauth".into(), "only used with strategy oauth".into()));
        }
        (_, None) => None,
    };
    Ok(AuthSetup {
        authenticator,
        metadata,
    })
}

/// The tool policy of `access` / `defaultAccess`, or `None` when everything is allowed.
pub(crate) fn policy(cfg: &Config) -> Option<AccessPolicy> {
    let default_allow = match cfg.default_access {
        Some(DefaultAccess::Allow) => true,
        Some(DefaultAccess::Deny) => false,
        None => cfg.access.is_empty(),
    };
    if default_allow && cfg.access.is_empty() {
        return None;
    }
    let mut p = AccessPolicy::new(default_allow);
    for r in &cfg.access {
        p = p.rule(
            AccessRule::new()
                .roles(r.roles.iter().cloned())
                .subjects(r.subjects.iter().cloned())
                .keys(r.keys.iter().cloned())
                .allow(r.allow.iter().cloned())
                .deny(r.deny.iter().cloned()),
        );
    }
    Some(p)
}

/// Problems with the `access` rules (key path, message).
pub(crate) fn check_access(cfg: &Config) -> Vec<SetupError> {
    let mut out = Vec::new();
    for (i, r) in cfg.access.iter().enumerate() {
        if r.roles.is_empty() && r.subjects.is_empty() && r.keys.is_empty() {
            out.push((
                format!("access[{i}]"),
                "name whom the rule applies to: roles, subjects or keys (roles: [\"*\"] for everyone)".into(),
            ));
        }
        if r.allow.is_empty() && r.deny.is_empty() {
            out.push((
                format!("access[{i}]"),
                "needs allow or deny patterns".into(),
            ));
        }
    }
    out
}

/// True when `host` only accepts connections from this machine.
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim().trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_gateway_core::ToolPolicy;

    fn cfg(yaml: &str) -> Config {
        Config::parse(yaml, crate::Format::Yaml, "t.yml".as_ref(), |_| None).unwrap()
    }

    #[test]
    fn builds_from_config() {
        let c = cfg(
            "auth:\n  strategy: api-key\n  apiKeys: [plain, {name: bot, key: k, roles: [r]}]\n",
        );
        let s = setup(&c).unwrap();
        let Authenticator::ApiKeys(k) = &s.authenticator else {
            panic!()
        };
        assert_eq!(k.verify("plain").unwrap().subject, "key-1");
        assert_eq!(k.verify("k").unwrap().roles, ["r"]);
        assert!(s.layer().is_some() && s.metadata.is_none());

        let c = cfg("auth:\n  strategy: jwt\n  jwt: {secret: x, algorithms: [RS256]}\n");
        assert_eq!(setup(&c).unwrap_err().0, "auth.jwt");
        let c = cfg("auth:\n  strategy: jwt\n  jwt: {secret: x, algorithms: [HS999]}\n");
        assert_eq!(setup(&c).unwrap_err().0, "auth.jwt.algorithms[0]");
        let c = cfg(
            "auth:\n  strategy: oauth\n  jwt: {jwksUrl: 'https://idp/jwks'}\n  oauth: {resource: 'https://gw.example/mcp', authorizationServers: ['https://idp']}\n",
        );
        let s = setup(&c).unwrap();
        assert_eq!(
            s.metadata.unwrap().metadata_url(),
            "https://gw.example/.well-known/oauth-protected-resource/mcp"
        );
        let one = cfg("auth:\n  strategy: jwt\n  jwt: {secret: x, rolesClaim: groups}\n");
        assert_eq!(one.auth.jwt.unwrap().roles_claim, ["groups"]);
        let c = cfg("auth:\n  strategy: oauth\n  jwt: {jwksUrl: 'https://idp/jwks'}\n");
        assert_eq!(setup(&c).unwrap_err().0, "auth.oauth");
    }

    #[test]
    fn policy_defaults() {
        assert!(policy(&cfg("{}")).is_none());
        let p = policy(&cfg("access:\n  - {roles: [r], allow: ['a__*']}\n")).unwrap();
        assert!(!p.allows(None, "b", "x"));
        let p = policy(&cfg(
            "defaultAccess: allow\naccess:\n  - {keys: [k], deny: ['a__*']}\n",
        ))
        .unwrap();
        assert!(p.allows(None, "a", "x"));
        assert_eq!(check_access(&cfg("access:\n  - {allow: ['*']}\n")).len(), 1);
        assert!(is_loopback("127.0.0.1") && is_loopback("::1") && is_loopback("localhost"));
        assert!(!is_loopback("0.0.0.0") && !is_loopback("10.1.2.3") && !is_loopback("example.com"));
    }
}
