use super::ResponseFuture;
use super::layer::Shared;
use mcp_gateway_core::{McpError, McpRequest, McpResponse};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::Service;

/// Where a `tools/call` would go.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Resolved {
    /// Tool `tool` (the name the server knows) on server `server` (`""`: no server).
    Tool {
        /// Server id.
        server: Arc<str>,
        /// Tool name as the server knows it.
        tool: String,
    },
    /// The bare name `tool` is offered by each of `servers`.
    Ambiguous {
        /// Ids of the servers offering it.
        servers: Vec<Arc<str>>,
        /// The tool name.
        tool: String,
    },
    /// No tool by that name: the inner service will answer "unknown tool".
    Unknown,
}

/// Resolves the tool a `tools/call` names (with the request's explicit server, if any).
pub trait ResolveTool: Send + Sync + 'static {
    /// Where a call of `name` (explicit target `server`) would go.
    fn resolve(&self, name: &str, server: Option<&str>) -> Resolved;
}

impl<F> ResolveTool for F
where
    F: Fn(&str, Option<&str>) -> Resolved + Send + Sync + 'static,
{
    fn resolve(&self, name: &str, server: Option<&str>) -> Resolved {
        self(name, server)
    }
}

/// The default resolver: an explicit server wins, else `server__tool` is split at the first
/// `__`, else the name is checked as a tool of server `""` (so a rule pattern without `__`
/// matches it).
#[derive(Clone, Copy, Debug, Default)]
pub struct QualifiedNames;

impl ResolveTool for QualifiedNames {
    fn resolve(&self, name: &str, server: Option<&str>) -> Resolved {
        let (server, tool) = match (server, name.split_once("__")) {
            (Some(s), _) => (s, name),
            (None, Some((s, t))) if !s.is_empty() && !t.is_empty() => (s, t),
            (None, _) => ("", name),
        };
        Resolved::Tool {
            server: Arc::from(server),
            tool: tool.to_string(),
        }
    }
}

/// Service of [`AccessControlLayer`](super::AccessControlLayer).
#[derive(Clone)]
pub struct AccessControl<S> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for AccessControl<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessControl")
            .field("inner", &self.inner)
            .field("policy", &self.shared.policy)
            .finish()
    }
}

impl<S> AccessControl<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// `Some(refusal)` when `req` must not reach the inner service.
    fn check(&self, req: &McpRequest) -> Option<McpError> {
        let policy = &*self.shared.policy;
        if req.method() != "tools/call" || policy.allows_everything() {
            return None;
        }
        // Malformed params: the inner service answers with the precise error.
        let name = req.tool_name().ok().flatten()?;
        let identity = req.identity.as_deref();
        let allowed = match self.shared.resolver.resolve(&name, req.server.as_deref()) {
            Resolved::Tool { server, tool } => policy.allows(identity, &server, &tool),
            // Only when every candidate is allowed may the caller learn of the ambiguity.
            Resolved::Ambiguous { servers, tool } => {
                servers.iter().all(|s| policy.allows(identity, s, &tool))
            }
            Resolved::Unknown => true,
        };
        if allowed {
            return None;
        }
        tracing::debug!(
            subject = identity.map_or("-", |i| i.subject.as_str()),
            tool = %name,
            "tools/call refused by access rules"
        );
        // No names at all: the caller learns nothing about servers, rules or roles.
        Some(McpError::Forbidden(
            "this tool is not available to this caller".into(),
        ))
    }
}

impl<S> Service<McpRequest> for AccessControl<S>
where
    S: Service<McpRequest, Response = McpResponse, Error = McpError>,
{
    type Response = McpResponse;
    type Error = McpError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), McpError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: McpRequest) -> Self::Future {
        match self.check(&req) {
            None => ResponseFuture::inner(self.inner.call(req)),
            Some(e) => ResponseFuture::refused(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AccessControlLayer, AccessPolicy, AccessRule};
    use mcp_gateway_core::Identity;
    use tower::{Layer, ServiceExt, service_fn};

    fn ok_service()
    -> impl Service<McpRequest, Response = McpResponse, Error = McpError, Future: Send> + Clone
    {
        service_fn(|req: McpRequest| async move {
            let result =
                serde_json::value::RawValue::from_string(format!("\"{}\"", req.method())).unwrap();
            Ok::<_, McpError>(McpResponse::new(result))
        })
    }

    #[tokio::test]
    async fn resolves_names_before_deciding() {
        let policy = AccessPolicy::deny_by_default()
            .rule(AccessRule::new().roles(["r"]).allow(["a__read", "b__read"]))
            .rule(AccessRule::new().roles(["only-a"]).allow(["a__*"]));
        // `read` is on a and b, `write` on a; anything else is unknown.
        let layer = AccessControlLayer::new(Arc::new(policy)).resolver(
            |name: &str, server: Option<&str>| match (name, server) {
                (_, Some(s)) => Resolved::Tool {
                    server: s.into(),
                    tool: name.into(),
                },
                ("read", None) => Resolved::Ambiguous {
                    servers: vec!["a".into(), "b".into()],
                    tool: "read".into(),
                },
                ("write", None) => Resolved::Tool {
                    server: "a".into(),
                    tool: "write".into(),
                },
                _ => Resolved::Unknown,
            },
        );
        let svc = layer.layer(ok_service());
        let call = |name: &str, roles: &[&str], server: Option<&str>| {
            let mut req = McpRequest::call_tool(name, None);
            req.server = server.map(Arc::from);
            req.identity = Some(Arc::new(Identity {
                subject: "s".into(),
                roles: roles.iter().map(|r| r.to_string()).collect(),
                ..Identity::default()
            }));
            svc.clone().oneshot(req)
        };
        // ambiguous: allowed on every candidate → passes (the router reports the ambiguity)
        assert!(call("read", &["r"], None).await.is_ok());
        // ambiguous, allowed on one only → refused without naming servers
        let e = call("read", &["only-a"], None).await.unwrap_err();
        assert_eq!(e.http_status(), 403);
        assert!(!e.to_string().contains("a,") && !e.to_string().contains("read"));
        assert!(call("read", &["only-a"], Some("a")).await.is_ok());
        assert!(call("write", &["r"], None).await.is_err());
        assert!(call("write", &["only-a"], None).await.is_ok());
        // unknown names pass through for the inner service's own "unknown tool"
        assert!(call("nope", &[], None).await.is_ok());
        // other methods are not tool calls
        let list = McpRequest::new("tools/list", None);
        assert!(svc.clone().oneshot(list).await.is_ok());
        // default resolver: qualified names
        let plain = AccessControlLayer::new(Arc::new(
            AccessPolicy::deny_by_default().rule(AccessRule::everyone().allow(["fs__*", "echo"])),
        ))
        .layer(ok_service());
        let anon = |n: &str| plain.clone().oneshot(McpRequest::call_tool(n, None));
        assert!(anon("fs__read").await.is_ok());
        assert!(anon("echo").await.is_ok());
        assert!(anon("gh__read").await.is_err());
    }
}
