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

use mcp_gateway_core::{McpError, McpRequest, McpResponse};
use std::collections::HashMap;

/// The router's maps, hashed with aHash: a route lookup is a hash of a short name or two,
/// and SipHash (std's default) took most of it. aHash's keys are random per process too.
type Map<K, V> = HashMap<K, V, ahash::RandomState>;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use tower::Service;
use tower::util::Oneshot;

/// Separator between server id and tool name in qualified tool names.
pub const QUALIFIER: &str = "__";

struct Server<S> {
    id: Arc<str>,
    /// `None` when the server cannot be called (disabled, unsupported transport).
    service: Option<S>,
    /// Why it cannot be called.
    reason: Arc<str>,
}

#[derive(Default)]
struct Catalog {
    /// Tool names of each server, by server index; `None` until first discovered.
    per_server: Vec<Option<Arc<[Box<str>]>>>,
    /// Tool name → indexes of the servers offering it.
    by_name: Map<Box<str>, Box<[usize]>>,
}

impl Catalog {
    fn rebuild(per_server: Vec<Option<Arc<[Box<str>]>>>) -> Self {
        let mut by_name: Map<Box<str>, Vec<usize>> = Map::default();
        for (i, names) in per_server.iter().enumerate() {
            for n in names.iter().flat_map(|n| n.iter()) {
                let v = by_name.entry(n.clone()).or_default();
                if !v.contains(&i) {
                    v.push(i);
                }
            }
        }
        Self {
            per_server,
            by_name: by_name
                .into_iter()
                .map(|(k, v)| (k, v.into_boxed_slice()))
                .collect(),
        }
    }

    fn server_has(&self, idx: usize, name: &str) -> Option<bool> {
        // One hash probe, not a scan of the server's tools: qualified names stay O(1).
        self.per_server[idx].as_ref()?;
        Some(
            self.by_name
                .get(name)
                .is_some_and(|servers| servers.contains(&idx)),
        )
    }
}

struct Inner<S> {
    servers: Vec<Server<S>>,
    by_id: Map<Arc<str>, usize>,
    catalog: RwLock<Arc<Catalog>>,
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
    servers: Vec<Server<S>>,
}

impl<S> ToolRouterBuilder<S> {
    /// Adds an enabled server.
    #[must_use]
    pub fn server(mut self, id: impl Into<Arc<str>>, service: S) -> Self {
        self.servers.push(Server {
            id: id.into(),
            service: Some(service),
            reason: Arc::from(""),
        });
        self
    }

    /// Adds a server that is configured but disabled: calls to it answer 503.
    #[must_use]
    pub fn disabled(self, id: impl Into<Arc<str>>) -> Self {
        self.unavailable(id, "disabled in config")
    }

    /// Adds a server that cannot be called, with the reason calls to it are given (503).
    #[must_use]
    pub fn unavailable(mut self, id: impl Into<Arc<str>>, reason: impl Into<Arc<str>>) -> Self {
        self.servers.push(Server {
            id: id.into(),
            service: None,
            reason: reason.into(),
        });
        self
    }

    /// Builds the router (server ids must be unique; later duplicates are ignored).
    pub fn build(self) -> ToolRouter<S> {
        let mut by_id = Map::default();
        let mut servers = Vec::new();
        for s in self.servers {
            if !by_id.contains_key(&s.id) {
                by_id.insert(s.id.clone(), servers.len());
                servers.push(s);
            }
        }
        let catalog = Catalog::rebuild(vec![None; servers.len()]);
        ToolRouter {
            inner: Arc::new(Inner {
                servers,
                by_id,
                catalog: RwLock::new(Arc::new(catalog)),
            }),
        }
    }
}

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
pub struct Route<'a> {
    /// Id of the chosen server.
    pub server: &'a Arc<str>,
    /// The tool name to send upstream when it differs from the one asked for: the asked
    /// name without its `server__` qualifier.
    pub rename: Option<&'a str>,
}

impl<S> ToolRouter<S> {
    /// Starts a router.
    pub fn builder() -> ToolRouterBuilder<S> {
        ToolRouterBuilder {
            servers: Vec::new(),
        }
    }

    /// Replaces the tool names known for server `id` (call it after every discovery).
    pub fn set_tools<I, N>(&self, id: &str, names: I)
    where
        I: IntoIterator<Item = N>,
        N: Into<Box<str>>,
    {
        let Some(&idx) = self.inner.by_id.get(id) else {
            return;
        };
        let names: Arc<[Box<str>]> = names.into_iter().map(Into::into).collect();
        let mut guard = self.inner.catalog.write().expect("catalog lock poisoned");
        let mut per_server = guard.per_server.clone();
        per_server[idx] = Some(names);
        *guard = Arc::new(Catalog::rebuild(per_server));
    }

    /// Ids of every configured server, in config order.
    pub fn server_ids(&self) -> impl Iterator<Item = &Arc<str>> {
        self.inner.servers.iter().map(|s| &s.id)
    }

    fn index(&self, id: &str) -> Result<usize, McpError> {
        self.inner
            .by_id
            .get(id)
            .copied()
            .ok_or_else(|| McpError::UnknownServer(id.to_string()))
    }

    /// Decides which server a tool call goes to, without calling it.
    pub fn resolve_tool<'a>(
        &'a self,
        name: &'a str,
        server: Option<&str>,
    ) -> Result<Route<'a>, McpError> {
        let (idx, strip) = self.resolve(name, server)?;
        Ok(Route {
            server: &self.inner.servers[idx].id,
            rename: strip.map(|n| &name[n..]),
        })
    }

    /// The index of the server a call to `name` goes to, and how many leading bytes of
    /// `name` (its `server__` qualifier) to drop for the name that server knows.
    ///
    /// The catalog is read under the lock rather than through a cloned `Arc`: a lookup
    /// then costs two atomic operations instead of four, and nothing is allocated.
    fn resolve(
        &self,
        name: &str,
        server: Option<&str>,
    ) -> Result<(usize, Option<usize>), McpError> {
        let catalog = self.inner.catalog.read().expect("catalog lock poisoned");
        let servers = &self.inner.servers;
        if let Some(sid) = server {
            let idx = self.index(sid)?;
            let id = &servers[idx].id;
            return match catalog.server_has(idx, name) {
                // Not listed yet (still starting or down since boot): let the upstream answer.
                Some(true) | None => Ok((idx, None)),
                Some(false) => {
                    match qualified(name, id).filter(|t| catalog.server_has(idx, t) == Some(true)) {
                        Some(_) => Ok((idx, Some(id.len() + QUALIFIER.len()))),
                        None => Err(McpError::UnknownTool {
                            name: name.to_string(),
                            hint: Some(format!("server '{id}' has no such tool")),
                        }),
                    }
                }
            };
        }
        if let Some(idxs) = catalog.by_name.get(name) {
            return match &idxs[..] {
                [one] => Ok((*one, None)),
                many => Err(McpError::AmbiguousTool {
                    name: name.to_string(),
                    servers: many.iter().map(|i| servers[*i].id.to_string()).collect(),
                }),
            };
        }
        for (idx, s) in servers.iter().enumerate() {
            if let Some(tool) = qualified(name, &s.id) {
                match catalog.server_has(idx, tool) {
                    Some(true) | None => return Ok((idx, Some(s.id.len() + QUALIFIER.len()))),
                    Some(false) => {}
                }
            }
        }
        let unknown: Vec<&str> = servers
            .iter()
            .enumerate()
            .filter(|(i, _)| catalog.per_server[*i].is_none())
            .map(|(_, s)| &*s.id)
            .collect();
        Err(McpError::UnknownTool {
            name: name.to_string(),
            hint: (!unknown.is_empty()).then(|| {
                format!(
                    "tools of {} are not known yet: disabled, starting or down",
                    unknown.join(", ")
                )
            }),
        })
    }
}

fn qualified<'a>(name: &'a str, server: &str) -> Option<&'a str> {
    name.strip_prefix(server)?
        .strip_prefix(QUALIFIER)
        .filter(|t| !t.is_empty())
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

impl<S> ToolRouter<S> {
    fn route(&self, req: &mut McpRequest) -> Result<usize, McpError> {
        if req.method() == "tools/call" {
            let (idx, strip) = {
                let name = req.tool_name()?.ok_or_else(|| {
                    McpError::InvalidParams("tools/call needs params with a \"name\"".into())
                })?;
                self.resolve(&name, req.server.as_deref())?
            };
            if let Some(n) = strip {
                req.strip_tool_prefix(n)?;
            }
            req.server = Some(self.inner.servers[idx].id.clone());
            return Ok(idx);
        }
        match req.server.as_deref() {
            Some(sid) => self.index(sid),
            None => Err(McpError::MethodNotFound(format!(
                "'{}' needs a target server",
                req.method()
            ))),
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
        assert_eq!((&**route.server, route.rename), ("db__x", Some("query")));
        let route = r.resolve_tool("gh__shared", Some("gh")).unwrap();
        assert_eq!((&**route.server, route.rename), ("gh", Some("shared")));
        let route = r.resolve_tool("write", None).unwrap();
        assert_eq!((&**route.server, route.rename), ("fs", None));
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
