//! `ToolRouter`: the MCP-plane service that sends each request to the one upstream that
//! should answer it.
//!
//! Routing rules for `tools/call`:
//! - a bare tool name goes to the only server that offers it;
//! - `"server": "github"` (the request's explicit target) picks the server;
//! - a qualified name `github__create_issue` picks the server and is rewritten to the name
//!   the server knows;
//! - a bare name offered by several servers is [`McpError::AmbiguousTool`] (409), an unknown
//!   one [`McpError::UnknownTool`] (404), a disabled server [`McpError::Unavailable`] (503).
//!
//! Any other method is routed by its explicit target server. The catalog (tool name →
//! servers) is an immutable snapshot swapped whole when a server's tool list changes, so a
//! lookup is one read lock and one hash probe.
//!
//! The router is always ready and drives the chosen upstream with `Oneshot`, so it never
//! polls every upstream speculatively; each upstream's own readiness (its concurrency limit)
//! is awaited only by the calls routed to it.
//!
//! ```
//! use mcp_gateway_core::{McpError, McpRequest, McpResponse};
//! use mcp_gateway_router::ToolRouter;
//! use tower::{service_fn, ServiceExt};
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let echo = |id: &'static str| service_fn(move |_req: McpRequest| async move {
//!     let result = serde_json::value::RawValue::from_string(format!("\"{id}\"")).unwrap();
//!     Ok::<_, McpError>(McpResponse { result, server: Some(id.into()) })
//! });
//! let router = ToolRouter::builder().server("a", echo("a")).server("b", echo("b")).build();
//! router.set_tools("a", ["read", "write"]);
//! router.set_tools("b", ["read"]);
//!
//! let res = router.clone().oneshot(McpRequest::call_tool("write", None)).await.unwrap();
//! assert_eq!(res.result.get(), "\"a\"");
//! let err = router.clone().oneshot(McpRequest::call_tool("read", None)).await.unwrap_err();
//! assert_eq!(err.http_status(), 409);
//! let res = router.clone().oneshot(McpRequest::call_tool("b__read", None)).await.unwrap();
//! assert_eq!(res.result.get(), "\"b\"");
//! # }
//! ```

pub use mcp_gateway_core::rename_tool;

mod catalog;
mod resolve;

pub use catalog::{
    Catalog, CatalogBuilder, ExposedTool, QUALIFIER, ResourceUpdate, Snapshot, ToolEntry,
    ToolNaming, sanitize,
};
pub use resolve::{Resolve, ResolveLayer};

use mcp_gateway_core::{McpError, McpRequest, McpResponse, Route, Routing};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::Service;
use tower::util::Oneshot;

struct Server<S> {
    id: Arc<str>,
    /// `None` when the server cannot be called (disabled, unsupported transport).
    service: Option<S>,
    /// Why it cannot be called.
    reason: Arc<str>,
}

struct Inner<S> {
    /// In the catalog's order: a route's `slot` indexes both.
    servers: Vec<Server<S>>,
    catalog: Catalog,
}

/// Routes MCP-plane requests to upstream services of type `S`.
pub struct ToolRouter<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for ToolRouter<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<S> std::fmt::Debug for ToolRouter<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolRouter")
            .field(
                "servers",
                &self.inner.servers.iter().map(|s| &s.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Builds a [`ToolRouter`].
pub struct ToolRouterBuilder<S> {
    servers: Vec<(Server<S>, Option<String>)>,
    naming: ToolNaming,
    catalog: CatalogBuilder,
}

impl<S> ToolRouterBuilder<S> {
    /// Adds an enabled server.
    #[must_use]
    pub fn server(self, id: impl Into<Arc<str>>, service: S) -> Self {
        self.push(id.into(), Some(service), Arc::from(""), None)
    }

    /// Adds an enabled server whose tools are exposed as `<prefix>__<tool>` (`""`: bare).
    #[must_use]
    pub fn server_with_prefix(
        self,
        id: impl Into<Arc<str>>,
        prefix: impl Into<String>,
        service: S,
    ) -> Self {
        self.push(id.into(), Some(service), Arc::from(""), Some(prefix.into()))
    }

    /// Adds a server that is configured but disabled: calls to it answer 503.
    #[must_use]
    pub fn disabled(self, id: impl Into<Arc<str>>) -> Self {
        self.unavailable(id, "disabled in config")
    }

    /// Adds a server that cannot be called, with the reason calls to it are given (503).
    #[must_use]
    pub fn unavailable(self, id: impl Into<Arc<str>>, reason: impl Into<Arc<str>>) -> Self {
        self.push(id.into(), None, reason.into(), None)
    }

    /// The naming policy of the router's catalog (default [`ToolNaming::Prefixed`]).
    #[must_use]
    pub fn naming(mut self, naming: ToolNaming) -> Self {
        self.naming = naming;
        self
    }

    /// Makes the router's catalog the successor of `previous` (see
    /// [`CatalogBuilder::after`]).
    #[must_use]
    pub fn after(mut self, previous: &Catalog) -> Self {
        self.catalog = self.catalog.after(previous);
        self
    }

    /// Starts server `id` with the tools and state already known for it (see
    /// [`CatalogBuilder::seed`]).
    #[must_use]
    pub fn seed(
        mut self,
        id: impl Into<Arc<str>>,
        tools: Option<Arc<[ToolEntry]>>,
        ready: bool,
        capabilities: Option<Arc<serde_json::value::RawValue>>,
    ) -> Self {
        self.catalog = self.catalog.seed(id, tools, ready, capabilities);
        self
    }

    fn push(
        mut self,
        id: Arc<str>,
        service: Option<S>,
        reason: Arc<str>,
        prefix: Option<String>,
    ) -> Self {
        self.servers.push((
            Server {
                id,
                service,
                reason,
            },
            prefix,
        ));
        self
    }

    /// Builds the router (server ids must be unique; later duplicates are ignored).
    pub fn build(self) -> ToolRouter<S> {
        let mut catalog = self.catalog.naming(self.naming);
        let mut servers: Vec<Server<S>> = Vec::new();
        for (s, prefix) in self.servers {
            if !servers.iter().any(|have| have.id == s.id) {
                catalog = catalog.server(s.id.clone(), prefix);
                servers.push(s);
            }
        }
        ToolRouter {
            inner: Arc::new(Inner {
                servers,
                catalog: catalog.build(),
            }),
        }
    }
}

impl<S> ToolRouter<S> {
    /// Starts a router.
    pub fn builder() -> ToolRouterBuilder<S> {
        ToolRouterBuilder {
            servers: Vec::new(),
            naming: ToolNaming::default(),
            catalog: Catalog::builder(),
        }
    }

    /// The router's catalog: the one place tool names are decided.
    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    /// Replaces the tool names known for server `id` (a shorthand for
    /// [`Catalog::set_tools`] with tools known by name only).
    pub fn set_tools<I, N>(&self, id: &str, names: I)
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        self.inner
            .catalog
            .set_tools(id, names.into_iter().map(|n| ToolEntry::named(n.as_ref())));
    }

    /// Ids of every configured server, in config order.
    pub fn server_ids(&self) -> impl Iterator<Item = &Arc<str>> {
        self.inner.servers.iter().map(|s| &s.id)
    }

    /// Decides which server a tool call goes to, without calling it.
    pub fn resolve_tool(&self, name: &str, server: Option<&str>) -> Result<Route, McpError> {
        self.inner.catalog.resolve(name, server)
    }

    /// The slot of the server `req` goes to: its route (resolving a `tools/call` here when
    /// no [`Resolve`] layer did), else its explicit server.
    fn route(&self, req: &mut McpRequest) -> Result<usize, McpError> {
        let by_server = |req: &McpRequest| match req.server.as_deref() {
            Some(sid) => self
                .inner
                .catalog
                .slot(sid)
                .ok_or_else(|| McpError::UnknownServer(sid.to_string())),
            None => Err(McpError::MethodNotFound(format!(
                "'{}' needs a target server",
                req.method()
            ))),
        };
        // Only a tool call has a route; anything else goes by its explicit server.
        if req.method() != "tools/call" {
            return by_server(req);
        }
        if matches!(req.route, Routing::Unresolved) {
            resolve::resolve(&self.inner.catalog, req);
        }
        match std::mem::take(&mut req.route) {
            Routing::Routed(r) => {
                let slot = r.slot;
                req.route = Routing::Routed(r);
                Ok(slot)
            }
            Routing::Failed(e) => Err(*e),
            Routing::Unresolved => by_server(req),
        }
    }
}

impl<S> Service<McpRequest> for ToolRouter<S>
where
    S: Service<McpRequest, Response = McpResponse, Error = McpError> + Clone,
{
    type Response = McpResponse;
    type Error = McpError;
    type Future = ResponseFuture<S>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), McpError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: McpRequest) -> Self::Future {
        let idx = match self.route(&mut req) {
            Ok(idx) => idx,
            Err(e) => return ResponseFuture::failed(e),
        };
        let s = &self.inner.servers[idx];
        match &s.service {
            Some(svc) => ResponseFuture {
                state: State::Call {
                    inner: Oneshot::new(svc.clone(), req),
                },
            },
            None => ResponseFuture::failed(McpError::Unavailable {
                server: s.id.clone(),
                reason: s.reason.to_string(),
            }),
        }
    }
}

pin_project_lite::pin_project! {
    /// Future of [`ToolRouter`].
    pub struct ResponseFuture<S: Service<McpRequest>> {
        #[pin]
        state: State<S>,
    }
}

pin_project_lite::pin_project! {
    #[project = Proj]
    enum State<S: Service<McpRequest>> {
        Failed { error: Option<McpError> },
        Call { #[pin] inner: Oneshot<S, McpRequest> },
    }
}

impl<S: Service<McpRequest>> ResponseFuture<S> {
    fn failed(error: McpError) -> Self {
        Self {
            state: State::Failed { error: Some(error) },
        }
    }
}

impl<S> Future for ResponseFuture<S>
where
    S: Service<McpRequest, Response = McpResponse, Error = McpError>,
{
    type Output = Result<McpResponse, McpError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            Proj::Failed { error } => {
                Poll::Ready(Err(error.take().expect("polled after completion")))
            }
            Proj::Call { inner } => inner.poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;
    use tower::{ServiceExt, service_fn};

    #[test]
    fn rename_tool_replaces_only_the_top_level_name() {
        let raw = |s: &str| RawValue::from_string(s.to_string()).unwrap();
        let p = raw(r#"{ "arguments": {"name": "inner", "x": [1, {"name": 2}]},
            "name" : "fs__read", "_meta": {"progressToken": 7} }"#);
        let out = rename_tool(&p, "read \"quoted\"").unwrap();
        let v: serde_json::Value = serde_json::from_str(out.get()).unwrap();
        assert_eq!(v["name"], "read \"quoted\"");
        assert_eq!(v["arguments"]["name"], "inner");
        assert_eq!(v["arguments"]["x"][1]["name"], 2);
        assert_eq!(v["_meta"]["progressToken"], 7);
        // Everything but the name is kept byte for byte.
        assert!(
            out.get()
                .starts_with(r#"{ "arguments": {"name": "inner", "x""#)
        );
        assert!(out.get().ends_with(r#""_meta": {"progressToken": 7} }"#));
        assert!(rename_tool(&raw(r#"{"arguments": {}}"#), "x").is_err());
        assert!(rename_tool(&raw(r#"{"name": "a", "name": "b"}"#), "x").is_err());
        assert!(rename_tool(&raw("[1]"), "x").is_err());
    }

    type Svc = tower::util::BoxCloneService<McpRequest, McpResponse, McpError>;

    fn svc(id: &'static str) -> Svc {
        tower::util::BoxCloneService::new(service_fn(move |req: McpRequest| async move {
            let body = format!(
                r#"{{"server":"{id}","params":{}}}"#,
                req.params().map(|p| p.get()).unwrap_or("null")
            );
            Ok(McpResponse {
                result: RawValue::from_string(body).unwrap(),
                server: Some(id.into()),
            })
        }))
    }

    fn router() -> ToolRouter<Svc> {
        let r = ToolRouter::builder()
            .server("fs", svc("fs"))
            .server("gh", svc("gh"))
            .server("db__x", svc("db__x"))
            .disabled("off")
            .build();
        r.set_tools("fs", ["read", "write", "shared"]);
        r.set_tools("gh", ["create_issue", "shared"]);
        r.set_tools("db__x", ["query"]);
        r
    }

    async fn call(r: &ToolRouter<Svc>, req: McpRequest) -> Result<serde_json::Value, McpError> {
        let res = r.clone().oneshot(req).await?;
        Ok(serde_json::from_str(res.result.get()).unwrap())
    }

    #[tokio::test]
    async fn routes_bare_explicit_and_qualified_names() {
        let r = router();
        let args = RawValue::from_string(r#"{"big":[1,2,3]}"#.into()).unwrap();
        let v = call(&r, McpRequest::call_tool("read", Some(&args)))
            .await
            .unwrap();
        assert_eq!(v["server"], "fs");
        assert_eq!(v["params"]["arguments"]["big"][2], 3);

        let v = call(&r, McpRequest::call_tool("gh__shared", Some(&args)))
            .await
            .unwrap();
        assert_eq!(v["server"], "gh");
        assert_eq!(v["params"]["name"], "shared");
        assert_eq!(v["params"]["arguments"]["big"][0], 1);

        let v = call(&r, McpRequest::call_tool("shared", None).with_server("fs"))
            .await
            .unwrap();
        assert_eq!(v["server"], "fs");

        let v = call(&r, McpRequest::call_tool("db__x__query", None))
            .await
            .unwrap();
        assert_eq!(v["server"], "db__x");
        assert_eq!(v["params"]["name"], "query");

        // Without calling: the new name is the asked one minus its qualifier.
        let route = r.resolve_tool("db__x__query", None).unwrap();
        assert_eq!((&*route.server, &*route.tool), ("db__x", "query"));
        let route = r.resolve_tool("gh__shared", Some("gh")).unwrap();
        assert_eq!((&*route.server, &*route.tool), ("gh", "shared"));
        let route = r.resolve_tool("write", None).unwrap();
        assert_eq!((&*route.server, &*route.tool), ("fs", "write"));
    }

    #[tokio::test]
    async fn reports_ambiguous_unknown_and_disabled() {
        let r = router();
        let e = call(&r, McpRequest::call_tool("shared", None))
            .await
            .unwrap_err();
        assert!(matches!(&e, McpError::AmbiguousTool { servers, .. } if servers == &["fs", "gh"]));
        let e = call(&r, McpRequest::call_tool("nope", None))
            .await
            .unwrap_err();
        assert_eq!(e.http_status(), 404);
        assert!(e.to_string().contains("off"), "{e}");
        let e = call(&r, McpRequest::call_tool("read", None).with_server("gh"))
            .await
            .unwrap_err();
        assert_eq!(e.http_status(), 404);
        let e = call(&r, McpRequest::call_tool("read", None).with_server("zz"))
            .await
            .unwrap_err();
        assert!(matches!(e, McpError::UnknownServer(_)));
        let e = call(&r, McpRequest::call_tool("x", None).with_server("off"))
            .await
            .unwrap_err();
        assert_eq!(e.http_status(), 503);
        let e = call(&r, McpRequest::new("resources/list", None))
            .await
            .unwrap_err();
        assert_eq!(e.http_status(), 404);
        let v = call(
            &r,
            McpRequest::new("resources/list", None).with_server("gh"),
        )
        .await
        .unwrap();
        assert_eq!(v["server"], "gh");
    }

    #[tokio::test]
    async fn catalog_updates_take_effect() {
        let r = router();
        assert!(
            call(&r, McpRequest::call_tool("fresh", None))
                .await
                .is_err()
        );
        r.set_tools("gh", ["fresh"]);
        let v = call(&r, McpRequest::call_tool("fresh", None))
            .await
            .unwrap();
        assert_eq!(v["server"], "gh");
        // `shared` now only on fs
        let v = call(&r, McpRequest::call_tool("shared", None))
            .await
            .unwrap();
        assert_eq!(v["server"], "fs");
    }
}
