//! Authentication and tool-level access control for mcp-gateway, as tower layers.
//!
//! - [`AuthLayer`] (HTTP plane, any `Service<http::Request<B>>`): strategies none, API keys
//!   ([`ApiKeys`]: plain or `sha256:` hashed, constant-time), JWT ([`JwtAuth`]: HS* secret,
//!   RS*/PS*/ES*/EdDSA PEM key or JWKS URL) and the OAuth 2.1 resource-server mode (JWT plus
//!   RFC 9728 metadata, [`ProtectedResource`]). On success the caller's
//!   [`Identity`] goes into the request extensions as `Arc<Identity>`.
//! - [`AccessControlLayer`] (MCP plane, `Service<McpRequest>`): refuses calls of tools,
//!   prompts, resources and completions the caller may not use and cuts one server's list
//!   answers to what they may see, per a [`ToolPolicy`] such as [`AccessPolicy`] (rules by
//!   role, subject or key name; globs on `<server>__<tool>`; deny wins).
//! - [`OriginLayer`] (HTTP plane): refuses requests from foreign web pages (DNS
//!   rebinding).
//!
//! Both layers keep their state in one `Arc`, so every clone shares the key set, the JWKS
//! cache and the policy.
//!
//! ```
//! use http::{Request, Response};
//! use mcp_gateway_auth::{AuthLayer, JwtAuth, JwtKey, Identity};
//! use mcp_gateway_auth::jsonwebtoken::{encode, get_current_timestamp, Algorithm, EncodingKey, Header};
//! use std::sync::Arc;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let jwt = JwtAuth::builder(JwtKey::Secret(b"k".to_vec()), [Algorithm::HS256])
//!     .audience("my-api")
//!     .build()
//!     .unwrap();
//! let svc = ServiceBuilder::new()
//!     .layer(AuthLayer::jwt(jwt).resource_metadata("https://api.example/.well-known/oauth-protected-resource"))
//!     .service(service_fn(|req: Request<String>| async move {
//!         let who = req.extensions().get::<Arc<Identity>>().unwrap().clone();
//!         Ok::<_, std::convert::Infallible>(Response::new(who.roles.join(",")))
//!     }));
//! let claims = serde_json::json!({"sub": "ann", "aud": "my-api", "exp": get_current_timestamp() + 60, "roles": ["a", "b"]});
//! let token = encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(b"k")).unwrap();
//! let res = svc
//!     .oneshot(Request::get("/").header("authorization", format!("Bearer {token}")).body(String::new()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(res.body(), "a,b");
//! # }
//! ```

pub mod access;
mod api_key;
pub mod auth;
mod error;
pub mod jwt;
mod metadata;
pub mod origin;

pub use access::{AccessControl, AccessControlLayer, AccessPolicy, AccessRule, Glob};
pub use api_key::{ApiKeys, InvalidKeyHash, hash_key, sha256};
pub use auth::{Auth, AuthLayer, Authenticator, FailureBudget, ResponseFuture};
pub use error::{AuthError, AuthErrorKind};
pub use jwt::{
    DEFAULT_ROLES_CLAIMS, JwtAuth, JwtAuthBuilder, JwtConfigError, JwtKey, parse_algorithm,
};
pub use mcp_gateway_core::{Identity, ItemKind, ToolPolicy};
pub use metadata::{InvalidResource, MetadataService, ProtectedResource, WELL_KNOWN};
pub use origin::{Origin, OriginLayer};

/// The JWT library in use (to sign test tokens, or name an [`Algorithm`](jsonwebtoken::Algorithm)).
pub use jsonwebtoken;
