//! [`ResolveLayer`]: the top of the MCP plane, where a `tools/call`'s route is decided once.
//!
//! The name the caller used is looked up in the [`Catalog`]; the params are rewritten to
//! the name the server knows, and the route is left on the request
//! ([`McpRequest::route`]) for the layers below — metrics, access control, per-tool rate
//! limits, the router — to read. A name that resolves to no server travels down as
//! [`Routing::Failed`] so those layers still see (count, log, refuse) the call before the
//! router answers with the error.
//!
//! ```
//! use mcp_gateway_core::{McpError, McpRequest, McpResponse};
//! use mcp_gateway_router::{ResolveLayer, ToolRouter};
//! use tower::{Layer, ServiceExt, service_fn};
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let echo = service_fn(|req: McpRequest| async move {
//!     let result = serde_json::value::RawValue::from_string(req.params().unwrap().get().into());
//!     Ok::<_, McpError>(McpResponse::new(result.unwrap()))
//! });
//! let router = ToolRouter::builder().server("fs", echo).build();
//! router.set_tools("fs", ["read"]);
//! let stack = ResolveLayer::new(router.catalog().clone()).layer(router);
//! let res = stack.oneshot(McpRequest::call_tool("fs__read", None)).await.unwrap();
//! assert_eq!(res.result.get(), r#"{"name":"read"}"#);
//! # }
//! ```

use crate::Catalog;
use mcp_gateway_core::{McpError, McpRequest, McpResponse, Routing};
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Resolves each `tools/call` against a [`Catalog`] (see the module docs).
#[derive(Clone, Debug)]
pub struct ResolveLayer {
    catalog: Catalog,
}

impl ResolveLayer {
    /// Resolves against `catalog` (the router's, [`crate::ToolRouter::catalog`]).
    pub fn new(catalog: Catalog) -> Self {
        Self { catalog }
    }
}

impl<S> Layer<S> for ResolveLayer {
    type Service = Resolve<S>;
    fn layer(&self, inner: S) -> Resolve<S> {
        Resolve {
            inner,
            catalog: self.catalog.clone(),
        }
    }
}

/// Service of [`ResolveLayer`].
#[derive(Clone, Debug)]
pub struct Resolve<S> {
    inner: S,
    catalog: Catalog,
}

impl<S> Service<McpRequest> for Resolve<S>
where
    S: Service<McpRequest, Response = McpResponse, Error = McpError>,
{
    type Response = McpResponse;
    type Error = McpError;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), McpError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: McpRequest) -> S::Future {
        if req.method() == "tools/call" {
            resolve(&self.catalog, &mut req);
        }
        self.inner.call(req)
    }
}

/// Resolves the `tools/call` `req` in place: its route, its explicit server and the tool
/// name in its params become the server's.
pub(crate) fn resolve(catalog: &Catalog, req: &mut McpRequest) {
    req.route = match route(catalog, req) {
        Ok(r) => Routing::Routed(r),
        Err(e) => Routing::Failed(Box::new(e)),
    };
}

fn route(catalog: &Catalog, req: &mut McpRequest) -> Result<mcp_gateway_core::Route, McpError> {
    let (route, strip) = {
        let name = req.tool_name()?.ok_or_else(|| {
            McpError::InvalidParams("tools/call needs params with a \"name\"".into())
        })?;
        let route = catalog.resolve(&name, req.server.as_deref())?;
        // `<prefix>__<tool>` becomes `<tool>` by cutting its head, without building a name.
        let strip = match name.strip_suffix(&*route.tool) {
            _ if *name == *route.tool => Some(0),
            Some(head) if !head.is_empty() => Some(head.len()),
            _ => None,
        };
        (route, strip)
    };
    match strip {
        Some(0) => {}
        Some(n) => req.strip_tool_prefix(n)?,
        None => req.rename_tool(&route.tool)?,
    }
    req.server = Some(route.server.clone());
    Ok(route)
}
