//! Access control on the MCP plane, for every kind of item: [`AccessControlLayer`] refuses
//! a `tools/call`, `prompts/get`, `resources/read` / `subscribe` / `unsubscribe` or
//! `completion/complete` of an item the caller may not use, and cuts the answers of
//! `tools/list`, `prompts/list`, `resources/list` and `resources/templates/list` sent to one
//! server to the items the caller may see. [`AccessPolicy`] decides from [`AccessRule`]s.
//!
//! The decision is made on the request body (never on the `Mcp-Method` / `Mcp-Name`
//! headers, which the front end checks against the body first). A `tools/call` is decided
//! on its route ([`McpRequest::route`](mcp_gateway_core::McpRequest::route), set by the
//! router's resolving layer above), so a rule about `github__create_issue` holds however the
//! tool is named in the call; without a route, on its explicit server or qualified name. A
//! refusal is [`McpError::Forbidden`](mcp_gateway_core::McpError::Forbidden) with a fixed
//! message, so it tells no more than an unknown tool would (no server, rule or role). Lists
//! a front end builds from its catalog ask the same layer ([`AccessControlLayer::visible`]).
//!
//! ```
//! use mcp_gateway_auth::{AccessControlLayer, AccessPolicy, AccessRule, Identity};
//! use mcp_gateway_core::{McpError, McpRequest, McpResponse};
//! use std::sync::Arc;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let policy = AccessPolicy::deny_by_default()
//!     .rule(AccessRule::new().roles(["reader"]).allow(["fs__read_*"]));
//! let svc = ServiceBuilder::new()
//!     .layer(AccessControlLayer::new(Arc::new(policy)))
//!     .service(service_fn(|_req: McpRequest| async {
//!         let result = serde_json::value::RawValue::from_string("{}".into()).unwrap();
//!         Ok::<_, McpError>(McpResponse::new(result))
//!     }));
//! let reader = Arc::new(Identity { subject: "r".into(), roles: vec!["reader".into()], ..Default::default() });
//!
//! let mut ok = McpRequest::call_tool("fs__read_file", None);
//! ok.identity = Some(reader.clone());
//! assert!(svc.clone().oneshot(ok).await.is_ok());
//!
//! let mut no = McpRequest::call_tool("fs__write_file", None);
//! no.identity = Some(reader);
//! let err = svc.oneshot(no).await.unwrap_err();
//! assert_eq!(err.http_status(), 403);
//! # }
//! ```

mod future;
mod layer;
mod policy;
mod service;
mod uri;

pub use future::ResponseFuture;
pub use layer::AccessControlLayer;
pub use mcp_gateway_core::Glob;
pub use policy::{AccessPolicy, AccessRule};
pub use service::AccessControl;
pub use uri::normalize_uri;
