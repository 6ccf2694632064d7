use super::{AccessControl, QualifiedNames, ResolveTool};
use mcp_gateway_core::ToolPolicy;
use std::sync::Arc;
use tower::Layer;

pub(crate) struct Shared {
    pub(crate) policy: Arc<dyn ToolPolicy>,
    pub(crate) resolver: Arc<dyn ResolveTool>,
}

/// Refuses `tools/call` of tools the caller may not use; see the [module docs](crate::access).
#[derive(Clone)]
pub struct AccessControlLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AccessControlLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessControlLayer")
            .field("policy", &self.shared.policy)
            .finish_non_exhaustive()
    }
}

impl AccessControlLayer {
    /// Enforces `policy`, resolving tool names with [`QualifiedNames`].
    pub fn new(policy: Arc<dyn ToolPolicy>) -> Self {
        Self {
            shared: Arc::new(Shared {
                policy,
                resolver: Arc::new(QualifiedNames),
            }),
        }
    }

    /// Resolves tool names with `resolver` (e.g. the gateway's tool router, so bare names
    /// are checked against the server that would really answer).
    #[must_use]
    pub fn resolver(self, resolver: impl ResolveTool) -> Self {
        Self {
            shared: Arc::new(Shared {
                policy: self.shared.policy.clone(),
                resolver: Arc::new(resolver),
            }),
        }
    }

    /// The policy enforced.
    pub fn policy(&self) -> &Arc<dyn ToolPolicy> {
        &self.shared.policy
    }
}

impl<S> Layer<S> for AccessControlLayer {
    type Service = AccessControl<S>;

    fn layer(&self, inner: S) -> AccessControl<S> {
        AccessControl {
            inner,
            shared: self.shared.clone(),
        }
    }
}
