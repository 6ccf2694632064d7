use super::ResponseFuture;
use super::layer::Shared;
use mcp_gateway_core::{Identity, ItemKind, McpError, McpRequest, McpResponse, Routing};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::Service;

/// Where a `tools/call` without a route goes, by its name alone: an explicit server wins,
/// else `server__tool` is split at the first `__`, else the name is checked as a tool of
/// server `""` (so a rule pattern without `__` matches it). Used when no resolving layer
/// ran above (the layer used alone).
fn qualified_names<'a>(name: &'a str, server: Option<&'a str>) -> (&'a str, &'a str) {
    match (server, name.split_once("__")) {
        (Some(s), _) => (s, name),
        (None, Some((s, t))) if !s.is_empty() && !t.is_empty() => (s, t),
        (None, _) => ("", name),
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

/// The params' members, raw: only the ones a decision needs are read, whatever the others
/// hold.
type Members<'a> = std::collections::BTreeMap<Cow<'a, str>, &'a RawValue>;

/// The string member `key` of `members`; `None` when absent or not a string.
fn string_member(members: &Members<'_>, key: &str) -> Option<String> {
    serde_json::from_str::<String>(members.get(key)?.get()).ok()
}

/// What a call of a prompt, resource or completion is about; `None` when its params do not
/// say clearly (missing, not an object, or the name / URI not a string), which is refused.
fn item_of(method: &str, params: Option<&RawValue>) -> Option<(ItemKind, String)> {
    let members: Members<'_> = serde_json::from_str(params?.get()).ok()?;
    match method {
        "prompts/get" => Some((ItemKind::Prompt, string_member(&members, "name")?)),
        "completion/complete" => {
            let r: Members<'_> = serde_json::from_str(members.get("ref")?.get()).ok()?;
            match string_member(&r, "type")?.as_str() {
                "ref/prompt" => Some((ItemKind::Prompt, string_member(&r, "name")?)),
                "ref/resource" => Some((ItemKind::Resource, string_member(&r, "uri")?)),
                _ => None,
            }
        }
        _ => Some((ItemKind::Resource, string_member(&members, "uri")?)),
    }
}

/// The list key and item kind of a list method whose answer is filtered.
fn list_of(method: &str) -> Option<(&'static str, ItemKind)> {
    Some(match method {
        "tools/list" => ("tools", ItemKind::Tool),
        "prompts/list" => ("prompts", ItemKind::Prompt),
        "resources/list" => ("resources", ItemKind::Resource),
        "resources/templates/list" => ("resourceTemplates", ItemKind::Resource),
        _ => return None,
    })
}

impl<S> AccessControl<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// `Some(refusal)` when `req` must not reach the inner service.
    fn check(&self, req: &McpRequest) -> Option<McpError> {
        let policy = &*self.shared.policy;
        let identity = req.identity.as_deref();
        let server = req.server.as_deref();
        let allowed = match req.method() {
            "tools/call" => match &req.route {
                // The route decides, and only while the params still name the tool it
                // resolved: a request whose params say otherwise is refused.
                Routing::Routed(r) => {
                    req.tool_name().ok().flatten().as_deref() == Some(&*r.tool)
                        && policy.allows(identity, &r.server, &r.tool)
                }
                // Only when every candidate is allowed may the caller learn of the ambiguity.
                Routing::Failed(e) => match &**e {
                    McpError::AmbiguousTool { servers, name } => {
                        servers.iter().all(|s| policy.allows(identity, s, name))
                    }
                    // Unknown: the router answers "unknown tool".
                    _ => true,
                },
                Routing::Unresolved => {
                    // Malformed params: the inner service answers with the precise error.
                    let name = req.tool_name().ok().flatten()?;
                    let (server, tool) = qualified_names(&name, server);
                    policy.allows(identity, server, tool)
                }
            },
            method @ ("prompts/get"
            | "resources/read"
            | "resources/subscribe"
            | "resources/unsubscribe"
            | "completion/complete") => {
                // Items are named per server: without one the router refuses the request.
                let server = server?;
                // Fail closed: params that do not clearly name one item are refused.
                match item_of(method, req.params()) {
                    Some((kind, name)) => policy.allows_item(identity, kind, server, &name),
                    None => false,
                }
            }
            _ => true,
        };
        if allowed {
            return None;
        }
        tracing::debug!(
            subject = identity.map_or("-", |i| i.subject.as_str()),
            method = req.method(),
            "refused by access rules"
        );
        // No names at all: the caller learns nothing about servers, rules or roles.
        Some(McpError::Forbidden(
            "this tool is not available to this caller".into(),
        ))
    }
}

/// What to drop from a list answer: items of `kind` of `server` that `identity` may not use.
pub(crate) struct ListFilter {
    shared: Arc<Shared>,
    identity: Option<Arc<Identity>>,
    server: Arc<str>,
    key: &'static str,
    kind: ItemKind,
}

impl ListFilter {
    /// `result` without the items the caller may not see; unchanged when it hides none.
    pub(crate) fn apply(&self, result: McpResponse) -> McpResponse {
        let text = result.result.get();
        let Ok(mut page) =
            serde_json::from_str::<std::collections::BTreeMap<Cow<'_, str>, &RawValue>>(text)
        else {
            return result;
        };
        let Some(items) = page
            .get(self.key)
            .and_then(|l| serde_json::from_str::<Vec<&RawValue>>(l.get()).ok())
        else {
            return result;
        };
        let identity = self.identity.as_deref();
        let policy = &*self.shared.policy;
        let member = match self.key {
            "resources" => "uri",
            "resourceTemplates" => "uriTemplate",
            _ => "name",
        };
        let visible: Vec<&RawValue> = items
            .iter()
            .copied()
            .filter(|item| {
                let name = serde_json::from_str::<
                    std::collections::BTreeMap<Cow<'_, str>, &RawValue>,
                >(item.get())
                .ok()
                .and_then(|o| {
                    o.get(member)
                        .and_then(|n| serde_json::from_str::<String>(n.get()).ok())
                });
                name.is_some_and(|n| policy.allows_item(identity, self.kind, &self.server, &n))
            })
            .collect();
        if visible.len() == items.len() {
            return result;
        }
        let list = serde_json::value::to_raw_value(&visible).expect("raw items serialize");
        page.insert(Cow::Borrowed(self.key), &list);
        let filtered = serde_json::value::to_raw_value(&page).expect("raw members serialize");
        McpResponse {
            result: filtered,
            server: result.server,
        }
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
        if self.shared.policy.allows_everything() {
            return ResponseFuture::inner(self.inner.call(req), None);
        }
        if let Some(e) = self.check(&req) {
            return ResponseFuture::refused(e);
        }
        // A list of one server's items is cut to what the caller may see (unless a front
        // end lists it to name items for everyone, and filters it itself).
        let whole = req
            .extensions
            .get::<mcp_gateway_core::CatalogListing>()
            .is_some();
        let filter = match (list_of(req.method()), &req.server) {
            (Some((key, kind)), Some(server)) if !whole => Some(ListFilter {
                shared: self.shared.clone(),
                identity: req.identity.clone(),
                server: server.clone(),
                key,
                kind,
            }),
            _ => None,
        };
        ResponseFuture::inner(self.inner.call(req), filter)
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

    /// A call as the resolving layer leaves it: the params name the server's own tool
    /// (`name` is what the caller had asked for).
    fn routed(name: &str, server: &str, tool: &str) -> McpRequest {
        let _ = name;
        let mut req = McpRequest::call_tool(tool, None).with_server(server);
        req.route = Routing::Routed(mcp_gateway_core::Route {
            server: server.into(),
            tool: tool.into(),
            slot: 0,
        });
        req
    }

    #[tokio::test]
    async fn decides_on_the_route_and_every_item_kind() {
        let policy = AccessPolicy::deny_by_default()
            .rule(AccessRule::new().roles(["r"]).allow(["a__read", "b__read"]))
            .rule(AccessRule::new().roles(["only-a"]).allow(["a__*"]))
            .rule(AccessRule::new().roles(["p"]).allow(["prompt:a__*"]));
        let svc = AccessControlLayer::new(Arc::new(policy)).layer(ok_service());
        let call = |mut req: McpRequest, roles: &[&str]| {
            req.identity = Some(Arc::new(Identity {
                subject: "s".into(),
                roles: roles.iter().map(|r| r.to_string()).collect(),
                ..Identity::default()
            }));
            svc.clone().oneshot(req)
        };
        let ambiguous = || {
            let mut req = McpRequest::call_tool("read", None);
            req.route = Routing::Failed(Box::new(McpError::AmbiguousTool {
                name: "read".into(),
                servers: vec!["a".into(), "b".into()],
            }));
            req
        };
        // ambiguous: allowed on every candidate → passes (the router reports the ambiguity)
        assert!(call(ambiguous(), &["r"]).await.is_ok());
        // ambiguous, allowed on one only → refused without naming servers
        let e = call(ambiguous(), &["only-a"]).await.unwrap_err();
        assert_eq!(e.http_status(), 403);
        assert!(!e.to_string().contains("a,") && !e.to_string().contains("read"));
        // The route decides, whatever name the caller used.
        assert!(
            call(routed("x__read", "a", "read"), &["only-a"])
                .await
                .is_ok()
        );
        assert!(
            call(routed("a__write", "a", "write"), &["r"])
                .await
                .is_err()
        );
        // unknown names pass through for the inner service's own "unknown tool"
        let mut unknown = McpRequest::call_tool("nope", None);
        unknown.route = Routing::Failed(Box::new(McpError::UnknownTool {
            name: "nope".into(),
            hint: None,
        }));
        assert!(call(unknown, &[]).await.is_ok());
        // prompts, resources and completions, by the server they are sent to
        let params = |v: serde_json::Value| Some(serde_json::value::to_raw_value(&v).unwrap());
        let get = |server: &str, name: &str| {
            McpRequest::new("prompts/get", params(serde_json::json!({ "name": name })))
                .with_server(server)
        };
        assert!(call(get("a", "hello"), &["p"]).await.is_ok());
        assert!(call(get("b", "hello"), &["p"]).await.is_err());
        let read = McpRequest::new(
            "resources/read",
            params(serde_json::json!({"uri": "file:///x"})),
        )
        .with_server("a");
        assert!(call(read, &["p"]).await.is_err());
        let complete = McpRequest::new(
            "completion/complete",
            params(serde_json::json!({"ref": {"type": "ref/prompt", "name": "hello"}})),
        )
        .with_server("a");
        assert!(call(complete, &["p"]).await.is_ok());
        // Params that do not clearly name one item are refused, whatever else they hold.
        for bad in [
            serde_json::json!({"name": "hello", "ref": 1}),
            serde_json::json!({"name": 7}),
            serde_json::json!({}),
        ] {
            let req = McpRequest::new("prompts/get", params(bad.clone())).with_server("b");
            assert!(call(req, &["p"]).await.is_err(), "{bad}");
        }
        let odd = McpRequest::new(
            "resources/read",
            params(serde_json::json!({"uri": "file:///x", "ref": 1, "name": 2})),
        )
        .with_server("a");
        assert!(call(odd, &["p"]).await.is_err());
        let nameless = McpRequest::new(
            "completion/complete",
            params(serde_json::json!({"ref": {"type": "ref/prompt"}})),
        )
        .with_server("a");
        assert!(call(nameless, &["p"]).await.is_err());
        // A route whose tool the params no longer name is refused.
        let mut swapped = routed("a__read", "a", "read");
        swapped.set_params(params(serde_json::json!({"name": "write"})));
        assert!(call(swapped, &["only-a", "r"]).await.is_err());
        // without a route: qualified names
        let plain = AccessControlLayer::new(Arc::new(
            AccessPolicy::deny_by_default().rule(AccessRule::everyone().allow(["fs__*", "echo"])),
        ))
        .layer(ok_service());
        let anon = |n: &str| plain.clone().oneshot(McpRequest::call_tool(n, None));
        assert!(anon("fs__read").await.is_ok());
        assert!(anon("echo").await.is_ok());
        assert!(anon("gh__read").await.is_err());
    }

    #[tokio::test]
    async fn filters_one_servers_lists() {
        let policy = AccessPolicy::deny_by_default()
            .rule(AccessRule::everyone().allow(["tool:a__read", "prompt:a__p1"]));
        let svc = AccessControlLayer::new(Arc::new(policy)).layer(service_fn(
            |req: McpRequest| async move {
                let body = match req.method() {
                    "tools/list" => {
                        r#"{"tools":[{"name":"read"},{"name":"write"}],"nextCursor":"2"}"#
                    }
                    _ => r#"{"prompts":[{"name":"p1"},{"name":"p2"}]}"#,
                };
                Ok::<_, McpError>(McpResponse::new(
                    serde_json::value::RawValue::from_string(body.into()).unwrap(),
                ))
            },
        ));
        let list = |m: &'static str| {
            svc.clone()
                .oneshot(McpRequest::new(m, None).with_server("a"))
        };
        let v: serde_json::Value =
            serde_json::from_str(list("tools/list").await.unwrap().result.get()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"tools":[{"name":"read"}],"nextCursor":"2"})
        );
        let v: serde_json::Value =
            serde_json::from_str(list("prompts/list").await.unwrap().result.get()).unwrap();
        assert_eq!(v, serde_json::json!({"prompts":[{"name":"p1"}]}));
    }
}
