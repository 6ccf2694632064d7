//! [`AuthLayer`]: authenticate HTTP requests and put the caller's [`Identity`] into the
//! request extensions, in front of any axum / hyper / tower service.
//!
//! Credentials are `Authorization: Bearer <token>` (API key or JWT) or `X-API-Key: <key>`
//! (API keys only). On success the layer inserts an `Arc<Identity>` into the request's
//! extensions, removes the credential headers (so nothing behind it can forward the client's
//! token; see [`AuthLayer::strip_credentials`]) and calls the inner service. On failure it
//! answers itself, with a JSON body `{"error": {"code", "message"}}` and
//!
//! - **401** plus `WWW-Authenticate: Bearer realm="…"` or, with
//!   [`AuthLayer::resource_metadata`], `Bearer resource_metadata="…"` (the MCP authorization
//!   spec's pointer to the RFC 9728 document) and `error="invalid_token"` when a credential
//!   was sent but is bad (wrong key, expired, wrong issuer or audience, bad signature, …);
//! - **403** (`error="insufficient_scope"`) when [`AuthLayer::require_roles`] is set and the
//!   caller holds none of them;
//! - **503** when the identity provider's JWKS cannot be fetched.
//!
//! API-key and static-key JWT checks are synchronous; only a JWKS fetch (first token, unknown
//! `kid`, stale keys) takes the slow, boxed path.
//!
//! ```
//! use http::{Request, Response, StatusCode};
//! use mcp_gateway_auth::{ApiKeys, AuthLayer, Identity};
//! use std::sync::Arc;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let keys = ApiKeys::new().key("ci", "s3cret", ["deploy"]);
//! let svc = ServiceBuilder::new()
//!     .layer(AuthLayer::api_keys(keys).realm("my-app"))
//!     .service(service_fn(|req: Request<String>| async move {
//!         let who = req.extensions().get::<Arc<Identity>>().unwrap();
//!         Ok::<_, std::convert::Infallible>(Response::new(format!("hello {}", who.subject)))
//!     }));
//!
//! let ok = svc.clone()
//!     .oneshot(Request::get("/").header("x-api-key", "s3cret").body(String::new()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(ok.body(), "hello ci");
//!
//! let denied = svc.oneshot(Request::get("/").body(String::new()).unwrap()).await.unwrap();
//! assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(denied.headers()["www-authenticate"], "Bearer realm=\"my-app\"");
//! # }
//! ```

mod failures;
mod future;
mod layer;
mod service;

pub use failures::FailureBudget;
pub use future::ResponseFuture;
pub use layer::AuthLayer;
pub use service::Auth;

use crate::api_key::ApiKeys;
use crate::error::{AuthError, AuthErrorKind};
use crate::jwt::JwtAuth;
use mcp_gateway_core::Identity;

/// How callers prove who they are.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum Authenticator {
    /// Everyone passes; no identity is inserted (callers are anonymous).
    #[default]
    None,
    /// API keys (`Authorization: Bearer <key>` or `X-API-Key`).
    ApiKeys(ApiKeys),
    /// JWT bearer tokens (also the OAuth 2.1 resource-server mode).
    Jwt(JwtAuth),
}

/// The credential found in a request.
pub(crate) enum Credential<'a> {
    Bearer(&'a str),
    ApiKey(&'a str),
}

/// Finds the credential of `headers` for `authenticator`.
pub(crate) fn credential<'a>(
    authenticator: &Authenticator,
    headers: &'a http::HeaderMap,
) -> Result<Credential<'a>, AuthError> {
    let api_keys = matches!(authenticator, Authenticator::ApiKeys(_));
    if let Some(k) = headers.get("x-api-key").filter(|_| api_keys) {
        return match k.to_str() {
            Ok(k) if !k.trim().is_empty() => Ok(Credential::ApiKey(k.trim())),
            _ => Err(AuthError::new(
                AuthErrorKind::InvalidApiKey,
                "the X-API-Key header is empty or not text",
            )),
        };
    }
    let Some(h) = headers.get(http::header::AUTHORIZATION) else {
        return Err(AuthError::new(
            AuthErrorKind::MissingCredentials,
            if api_keys {
                "missing credentials: send `Authorization: Bearer <api key>` or `X-API-Key: <api key>`"
            } else {
                "missing credentials: send `Authorization: Bearer <token>`"
            },
        ));
    };
    let bad = |why: &'static str| {
        AuthError::new(
            if api_keys {
                AuthErrorKind::InvalidApiKey
            } else {
                AuthErrorKind::MalformedToken
            },
            why,
        )
    };
    let h = h
        .to_str()
        .map_err(|_| bad("the Authorization header is not text"))?;
    match h.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            let token = token.trim();
            if token.is_empty() {
                Err(bad("the Authorization header has an empty bearer token"))
            } else {
                Ok(Credential::Bearer(token))
            }
        }
        _ => Err(bad(
            "the Authorization header must use the Bearer scheme: `Authorization: Bearer <credential>`",
        )),
    }
}

/// What checking a request gave.
pub(crate) enum Checked {
    /// No authentication configured.
    Anonymous,
    /// Authenticated.
    Ok(std::sync::Arc<Identity>),
    /// Refused.
    Err(AuthError),
    /// A JWKS fetch is needed: verify `token` asynchronously.
    Fetch(String),
}

impl Authenticator {
    pub(crate) fn check(&self, headers: &http::HeaderMap) -> Checked {
        if let Authenticator::None = self {
            return Checked::Anonymous;
        }
        let cred = match credential(self, headers) {
            Ok(c) => c,
            Err(e) => return Checked::Err(e),
        };
        match (self, cred) {
            (Authenticator::ApiKeys(keys), Credential::ApiKey(k) | Credential::Bearer(k)) => {
                match keys.verify(k) {
                    Some(id) => Checked::Ok(id.clone()),
                    None => Checked::Err(AuthError::new(
                        AuthErrorKind::InvalidApiKey,
                        "the API key is not valid",
                    )),
                }
            }
            (Authenticator::Jwt(jwt), Credential::Bearer(t) | Credential::ApiKey(t)) => {
                match jwt.try_verify(t) {
                    Ok(Ok(id)) => Checked::Ok(std::sync::Arc::new(id)),
                    Ok(Err(e)) => Checked::Err(e),
                    Err(_) if jwt.needs_fetch() => Checked::Fetch(t.to_string()),
                    Err(_) => Checked::Err(crate::jwt::unknown_kid()),
                }
            }
            (Authenticator::None, _) => Checked::Anonymous,
        }
    }
}

#[cfg(test)]
mod tests;
