use super::FailureBudget;
use super::{Auth, Authenticator};
use crate::api_key::ApiKeys;
use crate::error::AuthError;
use crate::jwt::JwtAuth;
use std::fmt;
use std::sync::Arc;
use tower::Layer;

type FailureHook = Arc<dyn Fn(&AuthError) + Send + Sync>;

/// Everything the layer and its services share (one `Arc` for every clone).
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) authenticator: Authenticator,
    /// `realm="…"` or `resource_metadata="…"`.
    pub(crate) challenge: String,
    pub(crate) required_roles: Vec<String>,
    pub(crate) strip: bool,
    pub(crate) on_failure: Option<FailureHook>,
    pub(crate) format: mcp_gateway_core::ErrorFormat,
    /// Failed authentications per client IP (shared by every clone of the layer).
    pub(crate) failures: Option<Arc<FailureBudget>>,
}

/// Authenticates requests; see the [module docs](crate::auth).
///
/// Cheap to clone: the key set, JWKS cache and settings live in one `Arc`.
#[derive(Clone)]
pub struct AuthLayer {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("authenticator", &self.shared.authenticator)
            .field("challenge", &self.shared.challenge)
            .field("required_roles", &self.shared.required_roles)
            .finish_non_exhaustive()
    }
}

impl AuthLayer {
    /// A layer using `authenticator`.
    pub fn new(authenticator: Authenticator) -> Self {
        Self {
            shared: Arc::new(Shared {
                authenticator,
                challenge: "realm=\"mcp-gateway\"".into(),
                required_roles: Vec::new(),
                strip: true,
                on_failure: None,
                format: mcp_gateway_core::ErrorFormat::Json,
                failures: None,
            }),
        }
    }

    /// Lets every request through, anonymously.
    pub fn none() -> Self {
        Self::new(Authenticator::None)
    }

    /// Accepts the API keys in `keys`.
    pub fn api_keys(keys: ApiKeys) -> Self {
        Self::new(Authenticator::ApiKeys(keys))
    }

    /// Accepts JWTs verified by `jwt`.
    pub fn jwt(jwt: JwtAuth) -> Self {
        Self::new(Authenticator::Jwt(jwt))
    }

    fn shared_mut(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.shared)
    }

    /// The `realm` of the `WWW-Authenticate` challenge (default `mcp-gateway`); replaced by
    /// [`AuthLayer::resource_metadata`].
    #[must_use]
    pub fn realm(mut self, realm: impl AsRef<str>) -> Self {
        self.shared_mut().challenge = format!("realm=\"{}\"", quote(realm.as_ref()));
        self
    }

    /// Points 401 challenges at the RFC 9728 protected-resource metadata at `url`
    /// (`WWW-Authenticate: Bearer resource_metadata="<url>"`), so OAuth-capable MCP clients
    /// can discover the authorization server. See [`ProtectedResource`](crate::ProtectedResource).
    #[must_use]
    pub fn resource_metadata(mut self, url: impl AsRef<str>) -> Self {
        self.shared_mut().challenge = format!("resource_metadata=\"{}\"", quote(url.as_ref()));
        self
    }

    /// Refuses (403) authenticated callers that hold none of `roles`.
    #[must_use]
    pub fn require_roles<I, S>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.shared_mut().required_roles = roles.into_iter().map(Into::into).collect();
        self
    }

    /// Whether to remove `Authorization` and `X-API-Key` before calling the inner service
    /// (default `true`: nothing behind the layer can forward the client's credential).
    #[must_use]
    pub fn strip_credentials(mut self, strip: bool) -> Self {
        self.shared_mut().strip = strip;
        self
    }

    /// Calls `hook` on every refusal, e.g. to count failures by [`AuthError::reason`].
    #[must_use]
    pub fn on_failure(mut self, hook: impl Fn(&AuthError) + Send + Sync + 'static) -> Self {
        self.shared_mut().on_failure = Some(Arc::new(hook));
        self
    }

    /// How refusals are written: REST JSON (the default) or, for an MCP endpoint, a
    /// JSON-RPC error; status, `WWW-Authenticate` and `Retry-After` are the same either way.
    #[must_use]
    pub fn error_format(mut self, format: mcp_gateway_core::ErrorFormat) -> Self {
        self.shared_mut().format = format;
        self
    }

    /// Answers `429` to a client IP that failed to authenticate `budget`'s limit of times
    /// in its window, without checking its credentials, until the window ends. The peer
    /// address is read from the request's `ConnectInfo<SocketAddr>` (or `SocketAddr`)
    /// extension; requests without one are not counted.
    #[must_use]
    pub fn failure_budget(mut self, budget: Arc<FailureBudget>) -> Self {
        self.shared_mut().failures = Some(budget);
        self
    }

    /// The authenticator in use.
    pub fn authenticator(&self) -> &Authenticator {
        &self.shared.authenticator
    }
}

fn quote(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '"' && *c != '\\' && (c.is_ascii_graphic() || *c == ' '))
        .collect()
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            shared: self.shared.clone(),
        }
    }
}
