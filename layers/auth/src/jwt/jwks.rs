//! The JWKS cache: signing keys fetched from the identity provider, looked up by `kid`.
//!
//! Lookups are a read lock and a hash probe. A fetch happens on the first token, when a
//! token names an unknown `kid` (key rotation) and when the keys are older than the maximum
//! age; fetches are single-flight and at least the minimum refresh interval apart, whether
//! they succeeded or not, so a stream of tokens with made-up key ids costs the identity
//! provider one request per interval. When a refresh fails the old keys stay in use.

use crate::error::{AuthError, AuthErrorKind};
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use mcp_gateway_core::redact::redact_url;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    /// Keys by `kid` (keys without one under `""`).
    keys: HashMap<String, Arc<DecodingKey>>,
    /// When keys were last fetched successfully.
    fetched: Option<Instant>,
    /// When a fetch was last attempted.
    attempted: Option<Instant>,
    /// Why the last attempt failed.
    last_error: Option<String>,
}

pub(crate) struct Jwks {
    url: String,
    client: reqwest::Client,
    algorithms: Vec<Algorithm>,
    min_refresh: Duration,
    max_age: Duration,
    state: RwLock<State>,
    refresh: tokio::sync::Mutex<()>,
}

pub(crate) enum Lookup {
    Found(Arc<DecodingKey>),
    /// Not known, and a fetch is allowed now.
    Refresh,
    /// Not known, and fetching again is not allowed yet.
    Missing(AuthError),
}

impl Jwks {
    pub(crate) fn new(
        url: String,
        client: reqwest::Client,
        algorithms: Vec<Algorithm>,
        min_refresh: Duration,
        max_age: Duration,
    ) -> Self {
        Self {
            url,
            client,
            algorithms,
            min_refresh,
            max_age,
            state: RwLock::new(State::default()),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    fn may_fetch(&self, st: &State) -> bool {
        st.attempted.is_none_or(|t| t.elapsed() >= self.min_refresh)
    }

    pub(crate) fn lookup(&self, kid: Option<&str>) -> Lookup {
        let st = self.state.read().expect("jwks lock poisoned");
        let found = match kid {
            Some(k) => st.keys.get(k),
            // Without a kid, only an unambiguous key set can be used.
            None if st.keys.len() == 1 => st.keys.values().next(),
            None => None,
        };
        let stale = st.fetched.is_none_or(|t| t.elapsed() >= self.max_age);
        match found {
            Some(k) if !(stale && self.may_fetch(&st)) => Lookup::Found(k.clone()),
            Some(_) => Lookup::Refresh,
            None if self.may_fetch(&st) => Lookup::Refresh,
            None => Lookup::Missing(match (&st.last_error, st.fetched) {
                (Some(e), None) => unavailable(e),
                _ if kid.is_none() && st.keys.len() > 1 => AuthError::new(
                    AuthErrorKind::UnknownKey,
                    "the token has no key id (kid) and the identity provider publishes several keys",
                ),
                _ => super::unknown_kid(),
            }),
        }
    }

    /// Fetches the key set unless another task just did (or the interval has not passed).
    pub(crate) async fn refresh(&self) -> Result<(), AuthError> {
        let _single = self.refresh.lock().await;
        {
            let st = self.state.read().expect("jwks lock poisoned");
            if !self.may_fetch(&st) {
                return match (&st.last_error, st.fetched) {
                    (Some(e), None) => Err(unavailable(e)),
                    _ => Ok(()),
                };
            }
        }
        self.state.write().expect("jwks lock poisoned").attempted = Some(Instant::now());
        let result = self.fetch().await;
        let mut st = self.state.write().expect("jwks lock poisoned");
        match result {
            Ok(keys) => {
                tracing::debug!(url = %redact_url(&self.url), keys = keys.len(), "fetched JWKS");
                st.keys = keys;
                st.fetched = Some(Instant::now());
                st.last_error = None;
                Ok(())
            }
            Err(e) => {
                tracing::warn!(url = %redact_url(&self.url), error = %e, "cannot fetch JWKS");
                let err = unavailable(&e);
                st.last_error = Some(e);
                // Old keys (if any) stay usable; only a first fetch failure is fatal.
                if st.fetched.is_some() {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, Arc<DecodingKey>>, String> {
        let res = self
            .client
            .get(&self.url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("request failed: {}", e.without_url()))?;
        if !res.status().is_success() {
            return Err(format!("answered HTTP {}", res.status().as_u16()));
        }
        // A key set is a few KiB; a bigger answer is refused before it is buffered whole.
        if res
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(format!("the key set is larger than {MAX_JWKS_BYTES} bytes"));
        }
        let mut res = res;
        let mut body = Vec::new();
        while let Some(chunk) = res
            .chunk()
            .await
            .map_err(|e| format!("reading failed: {}", e.without_url()))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("the key set is larger than {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        let doc: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("not a JSON document: {e}"))?;
        let list = doc
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or("no \"keys\" array")?;
        let mut keys = HashMap::new();
        for k in list {
            // Keys of unsupported types or for encryption are skipped, not fatal.
            let Ok(jwk) = serde_json::from_value::<Jwk>(k.clone()) else {
                continue;
            };
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
                continue;
            }
            if let Some(a) = jwk.common.key_algorithm {
                let fits = Algorithm::try_from(a).is_ok_and(|a| self.algorithms.contains(&a));
                if !fits {
                    continue;
                }
            }
            if let Ok(dk) = DecodingKey::from_jwk(&jwk) {
                let kid = jwk.common.key_id.clone().unwrap_or_default();
                keys.insert(kid, Arc::new(dk));
            }
        }
        Ok(keys)
    }
}

/// The largest key set document accepted: real ones are a few KiB.
const MAX_JWKS_BYTES: usize = 1 << 20;

fn unavailable(why: &str) -> AuthError {
    AuthError::new(
        AuthErrorKind::KeysUnavailable,
        format!("the identity provider's signing keys cannot be fetched ({why}); try again later"),
    )
}
