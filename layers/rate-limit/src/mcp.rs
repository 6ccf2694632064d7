//! Per-tool and per-server limits on the MCP plane: [`McpRateLimitLayer`] wraps the stack of
//! one server (the router has already chosen the server and the tool's own name) and checks
//! each `tools/call` against the first rule whose glob matches `<server>__<tool>`
//! (`github__*` limits a whole server, `search__query` one tool).
//!
//! Each rule is its own budget, built like the HTTP limiter (a [`RateLimitLayer`]: in memory
//! or in Redis, with its fail mode and decision observer), keyed by the caller's identity
//! (`per_key`) or shared by everybody. A call over budget never reaches the upstream: it
//! fails with [`McpError::RateLimited`] (REST: 429 + `Retry-After`; MCP: a JSON-RPC error).

use crate::decision::Verdict;
use crate::key::RateKey;
use crate::layer::{RateLimitLayer, Shared};
use mcp_gateway_core::{Glob, McpError, McpRequest, McpResponse};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// One per-tool rule: calls matching `pattern` share `limiter`'s budget.
struct Rule {
    pattern: Glob,
    per_key: bool,
    shared: Arc<Shared>,
}

/// Limits `tools/call` per tool or server: the first rule whose glob matches
/// `<server>__<tool>` applies; a call over its budget fails with [`McpError::RateLimited`].
#[derive(Clone, Default)]
pub struct McpRateLimitLayer {
    rules: Arc<[Rule]>,
}

impl std::fmt::Debug for McpRateLimitLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.rules
                    .iter()
                    .map(|r| (r.pattern.as_str(), r.shared.limit)),
            )
            .finish()
    }
}

impl McpRateLimitLayer {
    /// No rules: every call passes (at the cost of one branch).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule: calls to tools matching `pattern` (`<server>__<tool>` glob) get the
    /// budget of `limiter` (its limit, window and backend), per caller when `per_key`, else
    /// one budget for everybody. Rules are tried in order; the first match applies.
    #[must_use]
    pub fn rule<K>(self, pattern: &str, per_key: bool, limiter: &RateLimitLayer<K>) -> Self {
        let mut rules: Vec<Rule> = self
            .rules
            .iter()
            .map(|r| Rule {
                pattern: r.pattern.clone(),
                per_key: r.per_key,
                shared: r.shared.clone(),
            })
            .collect();
        rules.push(Rule {
            pattern: Glob::new(pattern),
            per_key,
            shared: limiter.shared.clone(),
        });
        Self {
            rules: rules.into(),
        }
    }

    /// True when there is no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

impl<S> Layer<S> for McpRateLimitLayer {
    type Service = McpRateLimit<S>;

    fn layer(&self, inner: S) -> McpRateLimit<S> {
        McpRateLimit {
            inner,
            rules: self.rules.clone(),
        }
    }
}

/// Service of [`McpRateLimitLayer`].
#[derive(Clone)]
pub struct McpRateLimit<S> {
    inner: S,
    rules: Arc<[Rule]>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for McpRateLimit<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpRateLimit")
            .field("inner", &self.inner)
            .field("rules", &self.rules.len())
            .finish()
    }
}

fn refused(retry_after_secs: u64, req: &McpRequest) -> McpError {
    McpError::RateLimited {
        retry_after_secs,
        server: req.server.clone(),
    }
}

impl<S> McpRateLimit<S> {
    /// The rule for this call and the key it is charged to, if any rule matches.
    fn rule_for(&self, req: &McpRequest) -> Option<(&Rule, RateKey)> {
        if self.rules.is_empty() || req.method() != "tools/call" {
            return None;
        }
        // The route decided at the top of the plane; without one (the layer used alone),
        // the explicit server and the name in the params.
        let rule = match req.route.route() {
            Some(r) => self
                .rules
                .iter()
                .find(|rule| rule.pattern.matches_qualified(&r.server, &r.tool))?,
            None => {
                let tool = req.tool_name().ok().flatten()?;
                let server = req.server.as_deref().unwrap_or("");
                self.rules
                    .iter()
                    .find(|r| r.pattern.matches_qualified(server, &tool))?
            }
        };
        let key = match (&req.identity, rule.per_key) {
            (Some(id), true) => RateKey::identity(id.clone()),
            // Anonymous callers share one budget per rule (no peer address on this plane).
            _ => RateKey::global(),
        };
        Some((rule, key))
    }
}

impl<S> Service<McpRequest> for McpRateLimit<S>
where
    S: Service<McpRequest, Response = McpResponse, Error = McpError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = McpResponse;
    type Error = McpError;
    type Future = McpRateLimitFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), McpError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: McpRequest) -> Self::Future {
        let Some((rule, key)) = self.rule_for(&req) else {
            return McpRateLimitFuture::Inner {
                inner: self.inner.call(req),
            };
        };
        let limit = rule.shared.limit;
        match rule.shared.check_now(&key, limit) {
            Some(Verdict::Decided(d)) if !d.allowed => McpRateLimitFuture::Refused {
                error: Some(refused(d.reset_secs, &req)),
            },
            Some(_) => McpRateLimitFuture::Inner {
                inner: self.inner.call(req),
            },
            None => {
                // Redis: decide first, then call a clone that was ready (tower's contract:
                // the instance polled ready is the one that is called).
                let shared = rule.shared.clone();
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                McpRateLimitFuture::Boxed {
                    inner: Box::pin(async move {
                        match shared.check(&key, limit).await {
                            Verdict::Decided(d) if !d.allowed => Err(refused(d.reset_secs, &req)),
                            Verdict::FailedClosed => Err(McpError::Unavailable {
                                server: req.server.clone().unwrap_or_else(|| "-".into()),
                                reason:
                                    "the rate limiter's Redis is unreachable (failMode: closed)"
                                        .into(),
                            }),
                            _ => inner.call(req).await,
                        }
                    }),
                }
            }
        }
    }
}

type BoxedCall = Pin<Box<dyn Future<Output = Result<McpResponse, McpError>> + Send>>;

pin_project_lite::pin_project! {
    /// Future of [`McpRateLimit`]: the inner call, an immediate refusal, or (Redis) the
    /// decision followed by the call.
    #[allow(missing_docs)]
    #[project = Proj]
    pub enum McpRateLimitFuture<F> {
        /// Admitted (or no rule applied).
        Inner { #[pin] inner: F },
        /// Over budget.
        Refused { error: Option<McpError> },
        /// Decided by Redis.
        Boxed { inner: BoxedCall },
    }
}

impl<F> Future for McpRateLimitFuture<F>
where
    F: Future<Output = Result<McpResponse, McpError>>,
{
    type Output = Result<McpResponse, McpError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            Proj::Inner { inner } => inner.poll(cx),
            Proj::Refused { error } => {
                Poll::Ready(Err(error.take().expect("polled after completion")))
            }
            Proj::Boxed { inner } => inner.as_mut().poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_gateway_core::Identity;
    use std::time::Duration;
    use tower::{ServiceExt, service_fn};

    fn upstream()
    -> impl Service<McpRequest, Response = McpResponse, Error = McpError, Future: Send + 'static>
    + Clone
    + Send
    + 'static {
        service_fn(|_req: McpRequest| async {
            Ok::<_, McpError>(McpResponse::new(
                serde_json::value::RawValue::from_string("{}".into()).unwrap(),
            ))
        })
    }

    fn call(server: &str, tool: &str, who: Option<&str>) -> McpRequest {
        let mut req = McpRequest::call_tool(tool, None).with_server(server);
        req.identity = who.map(|s| {
            Arc::new(Identity {
                subject: s.into(),
                ..Identity::default()
            })
        });
        req
    }

    #[tokio::test]
    async fn first_matching_rule_limits_per_caller_or_for_everyone() {
        let hour = Duration::from_secs(3600);
        let layer = McpRateLimitLayer::new()
            .rule("gh__create_*", true, &RateLimitLayer::new(2, hour))
            .rule("gh__*", false, &RateLimitLayer::new(3, hour));
        let svc = layer.layer(upstream());
        let run = |server: &str, tool: &str, who: Option<&str>| {
            svc.clone().oneshot(call(server, tool, who))
        };
        // Per caller: alice and bob each get two create_* calls.
        for who in ["alice", "bob"] {
            assert!(run("gh", "create_issue", Some(who)).await.is_ok());
            assert!(run("gh", "create_pr", Some(who)).await.is_ok());
            let e = run("gh", "create_issue", Some(who)).await.unwrap_err();
            assert_eq!(e.http_status(), 429);
            assert!(
                matches!(e, McpError::RateLimited { retry_after_secs, .. } if retry_after_secs > 0)
            );
        }
        // The rest of the server: three calls for everybody together.
        assert!(run("gh", "search", Some("alice")).await.is_ok());
        assert!(run("gh", "search", Some("bob")).await.is_ok());
        assert!(run("gh", "list", None).await.is_ok());
        assert_eq!(
            run("gh", "search", Some("carol"))
                .await
                .unwrap_err()
                .http_status(),
            429
        );
        // Other servers and other methods are not limited.
        for _ in 0..10 {
            assert!(run("fs", "read", Some("alice")).await.is_ok());
            let list = McpRequest::new("tools/list", None).with_server("gh");
            assert!(svc.clone().oneshot(list).await.is_ok());
        }
    }
}
