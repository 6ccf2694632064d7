use super::AccessControl;
use mcp_gateway_core::{Identity, ItemKind, ToolPolicy};
use std::sync::Arc;
use tower::Layer;

pub(crate) struct Shared {
    pub(crate) policy: Arc<dyn ToolPolicy>,
}

/// Refuses calls of tools, prompts and resources the caller may not use and cuts list
/// answers to what they may see; see the [module docs](crate::access).
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
    /// Enforces `policy`.
    pub fn new(policy: Arc<dyn ToolPolicy>) -> Self {
        Self {
            shared: Arc::new(Shared { policy }),
        }
    }

    /// True when `identity` may see and use the item `name` (a tool or prompt name as the
    /// server knows it, a resource URI or URI template) of `server`: the same decision the
    /// layer makes for calls and list answers, for lists a front end builds from a catalog
    /// without asking the server.
    pub fn visible(
        &self,
        identity: Option<&Identity>,
        kind: ItemKind,
        server: &str,
        name: &str,
    ) -> bool {
        let p = &*self.shared.policy;
        p.allows_everything() || p.allows_item(identity, kind, server, name)
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
