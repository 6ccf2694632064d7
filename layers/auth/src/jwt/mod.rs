//! JWT bearer tokens: HS256/384/512 with a shared secret, RS*/PS*/ES*/EdDSA with a PEM public
//! key or the keys an identity provider publishes at a JWKS URL.
//!
//! The accepted algorithms are fixed when the verifier is built and must all belong to the
//! family of the configured key, so a token cannot choose its own algorithm: `alg: none` and
//! the HS/RS confusion attack (an HS256 token "signed" with the RSA public key as secret) are
//! refused before any signature is checked. `exp` is required; `nbf`, `iss` and `aud` are
//! checked with the configured leeway, and `iss` / `aud` become required once configured.
//!
//! Roles come from configurable claims (`roles`, space-separated `scope`, `groups`, or a
//! dotted path such as `realm_access.roles`); the subject from `sub` (falling back to
//! `client_id` and `azp` for client-credentials tokens).

mod jwks;

use crate::error::{AuthError, AuthErrorKind};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use mcp_gateway_core::Identity;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

pub(crate) use jwks::Jwks;

/// Where the verification key comes from.
#[derive(Clone)]
pub enum JwtKey {
    /// A shared secret for HS256 / HS384 / HS512.
    Secret(Vec<u8>),
    /// A PEM public key (RSA, EC or Ed25519) for RS* / PS* / ES* / EdDSA.
    Pem(Vec<u8>),
    /// The URL of the identity provider's JWKS document.
    JwksUrl(String),
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwtKey::Secret(_) => f.write_str("Secret(..)"),
            JwtKey::Pem(_) => f.write_str("Pem(..)"),
            JwtKey::JwksUrl(u) => f.debug_tuple("JwksUrl").field(u).finish(),
        }
    }
}

/// Why a [`JwtAuth`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtConfigError {
    /// No algorithm was given.
    #[error("at least one algorithm is required")]
    NoAlgorithm,
    /// An algorithm name is not one jsonwebtoken knows.
    #[error(
        "unknown algorithm {0:?}: use HS256/384/512, RS256/384/512, PS256/384/512, ES256/384 or EdDSA"
    )]
    UnknownAlgorithm(String),
    /// The algorithms do not all fit the key.
    #[error("algorithm {alg:?} does not fit a {key} key; {hint}")]
    WrongFamily {
        /// The offending algorithm.
        alg: String,
        /// The kind of key configured.
        key: &'static str,
        /// What to do about it.
        hint: &'static str,
    },
    /// The key could not be read.
    #[error("invalid key: {0}")]
    InvalidKey(String),
}

/// Parses an algorithm name such as `"RS256"`.
pub fn parse_algorithm(name: &str) -> Result<Algorithm, JwtConfigError> {
    name.parse()
        .map_err(|_| JwtConfigError::UnknownAlgorithm(name.to_string()))
}

pub(crate) enum KeySource {
    Static(DecodingKey),
    Jwks(Jwks),
}

pub(crate) struct Inner {
    pub(crate) keys: KeySource,
    validation: Validation,
    roles_claims: Vec<Vec<String>>,
    tenant_claim: Option<Vec<String>>,
}

/// A JWT verifier: key, accepted algorithms and claim checks. Cheap to clone.
///
/// ```
/// use mcp_gateway_auth::{JwtAuth, JwtKey};
/// use mcp_gateway_auth::jsonwebtoken::{encode, get_current_timestamp, Algorithm, EncodingKey, Header};
///
/// let auth = JwtAuth::builder(JwtKey::Secret(b"shh".to_vec()), [Algorithm::HS256])
///     .issuer("https://idp.example")
///     .audience("mcp-gateway")
///     .build()
///     .unwrap();
/// let claims = serde_json::json!({
///     "sub": "alice", "iss": "https://idp.example", "aud": "mcp-gateway",
///     "exp": get_current_timestamp() + 60, "scope": "read write",
/// });
/// let token = encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(b"shh")).unwrap();
/// let who = auth.verify(&token).unwrap();
/// assert_eq!((who.subject.as_str(), who.roles.len()), ("alice", 2));
/// ```
#[derive(Clone)]
pub struct JwtAuth {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuth")
            .field("algorithms", &self.inner.validation.algorithms)
            .field("issuer", &self.inner.validation.iss)
            .field("audience", &self.inner.validation.aud)
            .finish_non_exhaustive()
    }
}

/// Builds a [`JwtAuth`].
#[derive(Debug)]
#[must_use]
pub struct JwtAuthBuilder {
    key: JwtKey,
    algorithms: Vec<Algorithm>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: u64,
    roles_claims: Vec<String>,
    tenant_claim: Option<String>,
    jwks_min_refresh: Duration,
    jwks_max_age: Duration,
    client: Option<reqwest::Client>,
}

/// Claims read for roles when none are configured.
pub const DEFAULT_ROLES_CLAIMS: [&str; 3] = ["roles", "scope", "scp"];

impl JwtAuth {
    /// Starts a verifier for tokens signed with `key` using one of `algorithms`.
    pub fn builder(key: JwtKey, algorithms: impl IntoIterator<Item = Algorithm>) -> JwtAuthBuilder {
        JwtAuthBuilder {
            key,
            algorithms: algorithms.into_iter().collect(),
            issuer: None,
            audience: None,
            leeway: 30,
            roles_claims: DEFAULT_ROLES_CLAIMS.iter().map(|s| s.to_string()).collect(),
            tenant_claim: None,
            jwks_min_refresh: Duration::from_secs(30),
            jwks_max_age: Duration::from_secs(600),
            client: None,
        }
    }

    /// Verifies `token` with the keys at hand, never fetching: with a JWKS URL, a key id
    /// not (yet) known is [`AuthErrorKind::UnknownKey`]. See [`JwtAuth::verify_fetching`].
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        match self.try_verify(token) {
            Ok(r) => r,
            Err(NeedKeys) => Err(AuthError::new(
                AuthErrorKind::UnknownKey,
                "the token's signing key is not known (yet)",
            )),
        }
    }

    /// Verifies `token`, fetching the JWKS first when its key id is unknown (at most once per
    /// minimum refresh interval, so bad tokens cannot make the gateway hammer the IdP).
    pub async fn verify_fetching(&self, token: &str) -> Result<Identity, AuthError> {
        match self.try_verify(token) {
            Ok(r) => r,
            Err(NeedKeys) => {
                let KeySource::Jwks(jwks) = &self.inner.keys else {
                    unreachable!("only a JWKS asks for keys")
                };
                let fetched = jwks.refresh().await;
                match self.try_verify(token) {
                    Ok(r) => r,
                    Err(NeedKeys) => Err(match fetched {
                        Err(e) => e,
                        Ok(()) => unknown_kid(),
                    }),
                }
            }
        }
    }

    /// Verifies `token`; `Err(NeedKeys)` when the JWKS should be (re)fetched first.
    pub(crate) fn try_verify(&self, token: &str) -> Result<Result<Identity, AuthError>, NeedKeys> {
        let inner = &*self.inner;
        let header = match jsonwebtoken::decode_header(token) {
            Ok(h) => h,
            Err(e) => return Ok(Err(header_error(token, &e, &inner.validation.algorithms))),
        };
        if !inner.validation.algorithms.contains(&header.alg) {
            return Ok(Err(alg_not_allowed(
                &format!("{:?}", header.alg),
                &inner.validation.algorithms,
            )));
        }
        let jwks_key;
        let key = match &inner.keys {
            KeySource::Static(k) => k,
            KeySource::Jwks(jwks) => match jwks.lookup(header.kid.as_deref()) {
                jwks::Lookup::Found(k) => {
                    jwks_key = k;
                    &*jwks_key
                }
                jwks::Lookup::Refresh => return Err(NeedKeys),
                jwks::Lookup::Missing(e) => return Ok(Err(e)),
            },
        };
        let data = match jsonwebtoken::decode::<Map<String, Value>>(token, key, &inner.validation) {
            Ok(d) => d,
            Err(e) => return Ok(Err(self.claim_error(e.kind(), token))),
        };
        Ok(Ok(self.identity(data.claims)))
    }

    fn claim_error(&self, kind: &ErrorKind, token: &str) -> AuthError {
        let v = &self.inner.validation;
        let one = |s: &Option<std::collections::HashSet<String>>| {
            s.as_ref()
                .and_then(|s| s.iter().next().cloned())
                .unwrap_or_default()
        };
        let (k, msg): (AuthErrorKind, String) = match kind {
            ErrorKind::InvalidSignature => (
                AuthErrorKind::InvalidSignature,
                "the token's signature does not verify; it was not issued by the configured issuer or was altered".into(),
            ),
            ErrorKind::ExpiredSignature => (
                AuthErrorKind::Expired,
                "the token has expired; obtain a new one".into(),
            ),
            ErrorKind::ImmatureSignature => (
                AuthErrorKind::NotYetValid,
                "the token is not valid yet (nbf is in the future); check the clocks".into(),
            ),
            ErrorKind::InvalidIssuer => (
                AuthErrorKind::InvalidIssuer,
                format!("the token's issuer (iss) must be {:?}", one(&v.iss)),
            ),
            ErrorKind::InvalidAudience => (
                AuthErrorKind::InvalidAudience,
                format!(
                    "the token's audience (aud) must include {:?}; request a token for this resource",
                    one(&v.aud)
                ),
            ),
            // The library reports a time claim it cannot read as a number (a string, a
            // value beyond u64) as missing; the signature was verified before, so the
            // payload can be looked at to say which it is.
            ErrorKind::MissingRequiredClaim(c) if claim_present(token, c) => (
                AuthErrorKind::MalformedToken,
                format!(
                    "the token's claim {c:?} must be a NumericDate (whole seconds since 1970, in range)"
                ),
            ),
            ErrorKind::MissingRequiredClaim(c) => (
                AuthErrorKind::MissingClaim,
                format!("the token lacks the required claim {c:?}"),
            ),
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidKeyFormat => (
                AuthErrorKind::AlgorithmNotAllowed,
                "the token's algorithm does not fit the signing key".into(),
            ),
            ErrorKind::InvalidClaimFormat(c) => (
                AuthErrorKind::MalformedToken,
                format!("the token's claim {c:?} has the wrong type"),
            ),
            _ => (
                AuthErrorKind::MalformedToken,
                "the bearer token is not a well-formed JWT".into(),
            ),
        };
        AuthError::new(k, msg)
    }

    fn identity(&self, claims: Map<String, Value>) -> Identity {
        let inner = &*self.inner;
        let claims = Value::Object(claims);
        let subject = ["sub", "client_id", "azp"]
            .iter()
            .find_map(|c| claims.get(*c).and_then(Value::as_str))
            .unwrap_or("jwt")
            .to_string();
        let mut roles: Vec<String> = Vec::new();
        for path in &inner.roles_claims {
            let mut add = |s: &str| {
                if !s.is_empty() && !roles.iter().any(|r| r == s) {
                    roles.push(s.to_string());
                }
            };
            match lookup(&claims, path) {
                Some(Value::String(s)) => s.split_whitespace().for_each(&mut add),
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).for_each(&mut add),
                _ => {}
            }
        }
        let tenant = inner
            .tenant_claim
            .as_ref()
            .and_then(|p| lookup(&claims, p))
            .and_then(Value::as_str)
            .map(str::to_string);
        Identity {
            subject,
            roles,
            tenant,
            key_name: None,
            claims: Some(Arc::new(claims)),
        }
    }

    pub(crate) fn needs_fetch(&self) -> bool {
        matches!(self.inner.keys, KeySource::Jwks(_))
    }
}

/// The token's key must be fetched first.
#[derive(Debug)]
pub(crate) struct NeedKeys;

pub(crate) fn unknown_kid() -> AuthError {
    AuthError::new(
        AuthErrorKind::UnknownKey,
        "the token's key id (kid) is not published by the identity provider",
    )
}

fn lookup<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

fn alg_not_allowed(alg: &str, allowed: &[Algorithm]) -> AuthError {
    AuthError::new(
        AuthErrorKind::AlgorithmNotAllowed,
        format!("the token's algorithm {alg} is not accepted; accepted: {allowed:?}"),
    )
}

/// A header jsonwebtoken cannot read: tell `alg: none` (or any unknown alg) apart from junk.
fn header_error(token: &str, e: &jsonwebtoken::errors::Error, allowed: &[Algorithm]) -> AuthError {
    use base64::Engine;
    if matches!(e.kind(), ErrorKind::Json(_)) {
        let alg = token
            .split('.')
            .next()
            .and_then(|h| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(h)
                    .ok()
            })
            .and_then(|h| serde_json::from_slice::<Value>(&h).ok())
            .and_then(|h| h.get("alg").and_then(Value::as_str).map(str::to_string));
        if let Some(alg) = alg {
            return alg_not_allowed(&alg, allowed);
        }
    }
    AuthError::new(
        AuthErrorKind::MalformedToken,
        "the bearer token is not a well-formed JWT (header.payload.signature)",
    )
}

fn family_name(f: AlgorithmFamily) -> &'static str {
    match f {
        AlgorithmFamily::Hmac => "shared-secret (HS*)",
        AlgorithmFamily::Rsa => "RSA (RS*/PS*)",
        AlgorithmFamily::Ec => "EC (ES*)",
        AlgorithmFamily::Ed => "Ed25519 (EdDSA)",
    }
}

impl JwtAuthBuilder {
    /// Requires `iss` to equal `issuer`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Requires `aud` to name `audience` (this resource).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Clock skew tolerated on `exp` and `nbf`, in seconds (default 30).
    pub fn leeway(mut self, seconds: u64) -> Self {
        self.leeway = seconds;
        self
    }

    /// Claims that hold roles, read in order (default [`DEFAULT_ROLES_CLAIMS`]). A string
    /// value is split on whitespace (OAuth `scope`); an array gives one role per string.
    /// Dotted paths (`realm_access.roles`) reach into nested objects.
    pub fn roles_claims<I, S>(mut self, claims: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.roles_claims = claims.into_iter().map(Into::into).collect();
        self
    }

    /// Claim that names the caller's tenant.
    pub fn tenant_claim(mut self, claim: impl Into<String>) -> Self {
        self.tenant_claim = Some(claim.into());
        self
    }

    /// Shortest time between two JWKS fetches (default 30 s).
    pub fn jwks_min_refresh(mut self, d: Duration) -> Self {
        self.jwks_min_refresh = d;
        self
    }

    /// Age after which cached JWKS keys are fetched again (default 10 min).
    pub fn jwks_max_age(mut self, d: Duration) -> Self {
        self.jwks_max_age = d;
        self
    }

    /// HTTP client for JWKS fetches (default: a client with a 5 s timeout).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Checks the algorithms against the key and builds the verifier.
    pub fn build(self) -> Result<JwtAuth, JwtConfigError> {
        let first = *self.algorithms.first().ok_or(JwtConfigError::NoAlgorithm)?;
        let family = first.family();
        let (key_family, key_name, hint) = match &self.key {
            JwtKey::Secret(_) => (
                Some(AlgorithmFamily::Hmac),
                "shared-secret",
                "a secret only signs HS256/HS384/HS512; use publicKey or jwksUrl for others",
            ),
            JwtKey::Pem(_) => (
                None,
                "PEM public",
                "a public key verifies RS*, PS*, ES* or EdDSA, one family at a time",
            ),
            JwtKey::JwksUrl(_) => (
                None,
                "JWKS",
                "JWKS keys verify RS*, PS*, ES* or EdDSA, one family at a time",
            ),
        };
        for a in &self.algorithms {
            let bad = a.family() != key_family.unwrap_or(family)
                || (key_family.is_none() && a.family() == AlgorithmFamily::Hmac);
            if bad {
                return Err(JwtConfigError::WrongFamily {
                    alg: format!("{a:?}"),
                    key: key_name,
                    hint,
                });
            }
        }
        let keys = match self.key {
            JwtKey::Secret(s) => {
                if s.is_empty() {
                    return Err(JwtConfigError::InvalidKey("the secret is empty".into()));
                }
                KeySource::Static(DecodingKey::from_secret(&s))
            }
            JwtKey::Pem(pem) => {
                let k = match family {
                    AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(&pem),
                    AlgorithmFamily::Ec => DecodingKey::from_ec_pem(&pem),
                    AlgorithmFamily::Ed => DecodingKey::from_ed_pem(&pem),
                    AlgorithmFamily::Hmac => unreachable!("checked above"),
                };
                KeySource::Static(k.map_err(|e| {
                    JwtConfigError::InvalidKey(format!(
                        "not a {} PEM public key: {e}",
                        family_name(family)
                    ))
                })?)
            }
            JwtKey::JwksUrl(url) => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(JwtConfigError::InvalidKey(format!(
                        "jwksUrl {url:?} must be an http(s) URL"
                    )));
                }
                let client = match self.client {
                    Some(c) => c,
                    None => reqwest::Client::builder()
                        .timeout(Duration::from_secs(5))
                        .build()
                        .map_err(|e| JwtConfigError::InvalidKey(format!("HTTP client: {e}")))?,
                };
                KeySource::Jwks(Jwks::new(
                    url,
                    client,
                    self.algorithms.clone(),
                    self.jwks_min_refresh,
                    self.jwks_max_age,
                ))
            }
        };
        let mut v = Validation::new(first);
        v.algorithms = self.algorithms;
        v.leeway = self.leeway;
        v.validate_nbf = true;
        v.validate_exp = true;
        let mut required = vec!["exp"];
        if let Some(i) = &self.issuer {
            v.set_issuer(&[i]);
            required.push("iss");
        }
        match &self.audience {
            Some(a) => {
                v.set_audience(&[a]);
                required.push("aud");
            }
            None => v.validate_aud = false,
        }
        v.set_required_spec_claims(&required);
        let path = |c: &str| c.split('.').map(str::to_string).collect::<Vec<_>>();
        Ok(JwtAuth {
            inner: Arc::new(Inner {
                keys,
                validation: v,
                roles_claims: self.roles_claims.iter().map(|c| path(c)).collect(),
                tenant_claim: self.tenant_claim.as_deref().map(path),
            }),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests;

/// True when the (verified) payload of `token` has a claim named `claim`, whatever its value.
fn claim_present(token: &str, claim: &str) -> bool {
    use base64::Engine;
    token
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<Map<String, Value>>(&b).ok())
        .is_some_and(|m| m.contains_key(claim))
}
