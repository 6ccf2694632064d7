use super::layer::Shared;
use super::{Authenticator, Checked, ResponseFuture};
use crate::error::{AuthError, AuthErrorKind};
use http::{Request, Response};
use mcp_gateway_core::Identity;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::Service;

/// Service of [`AuthLayer`](super::AuthLayer).
#[derive(Clone)]
pub struct Auth<S> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Auth<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("inner", &self.inner)
            .field("authenticator", &self.shared.authenticator)
            .finish()
    }
}

impl<S> Auth<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

/// Checks roles, strips the credential and attaches the identity.
fn admit<B>(shared: &Shared, req: &mut Request<B>, id: Arc<Identity>) -> Result<(), AuthError> {
    if !shared.required_roles.is_empty()
        && !id.roles.iter().any(|r| shared.required_roles.contains(r))
    {
        return Err(AuthError::new(
            AuthErrorKind::InsufficientRole,
            format!(
                "authenticated as {:?}, but this needs one of the roles {:?}",
                id.subject, shared.required_roles
            ),
        ));
    }
    tracing::trace!(subject = %id.subject, "authenticated");
    if shared.strip {
        let h = req.headers_mut();
        h.remove(http::header::AUTHORIZATION);
        h.remove("x-api-key");
    }
    req.extensions_mut().insert(id);
    Ok(())
}

/// The client's IP, from the extension a server put there.
fn peer_ip(ext: &http::Extensions) -> Option<IpAddr> {
    #[cfg(feature = "axum")]
    if let Some(ci) = ext.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(ci.0.ip());
    }
    ext.get::<SocketAddr>().map(SocketAddr::ip)
}

/// Counts a failed authentication against the client's IP (not a missing credential, which
/// is how every OAuth client starts, nor a missing role).
fn count_failure(shared: &Shared, ip: Option<IpAddr>, e: &AuthError) {
    if let (Some(b), Some(ip)) = (&shared.failures, ip)
        && !matches!(
            e.kind(),
            AuthErrorKind::MissingCredentials
                | AuthErrorKind::InsufficientRole
                | AuthErrorKind::KeysUnavailable
        )
    {
        b.record(ip);
    }
}

fn reject<B: From<String>>(shared: &Shared, e: &AuthError) -> Response<B> {
    tracing::debug!(reason = e.reason(), message = %e, "request refused by auth");
    if let Some(hook) = &shared.on_failure {
        hook(e);
    }
    e.to_response_as(&shared.challenge, shared.format)
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Auth<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<String> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let shared = &*self.shared;
        let ip = shared
            .failures
            .as_ref()
            .and_then(|_| peer_ip(req.extensions()));
        if let (Some(b), Some(ip)) = (&shared.failures, ip)
            && let Some(wait) = b.blocked(ip)
        {
            let e = AuthError::new(
                AuthErrorKind::TooManyFailures,
                "too many failed authentications from this address; wait before retrying",
            )
            .retry_after(wait.as_secs().max(1));
            return ResponseFuture::refused(Ok(reject(shared, &e)));
        }
        match shared.authenticator.check(req.headers()) {
            Checked::Anonymous => ResponseFuture::inner(self.inner.call(req)),
            Checked::Ok(id) => match admit(shared, &mut req, id) {
                Ok(()) => ResponseFuture::inner(self.inner.call(req)),
                Err(e) => ResponseFuture::refused(Ok(reject(shared, &e))),
            },
            Checked::Err(e) => {
                count_failure(shared, ip, &e);
                ResponseFuture::refused(Ok(reject(shared, &e)))
            }
            Checked::Fetch(token) => {
                // Keep the service that was polled ready; leave a fresh clone in its place.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let shared = self.shared.clone();
                ResponseFuture::fetching(Box::pin(async move {
                    let verified = match &shared.authenticator {
                        Authenticator::Jwt(jwt) => jwt.verify_fetching(&token).await,
                        _ => unreachable!("only JWT verification fetches keys"),
                    };
                    match verified.and_then(|id| admit(&shared, &mut req, Arc::new(id))) {
                        Ok(()) => inner.call(req).await,
                        Err(e) => {
                            count_failure(&shared, ip, &e);
                            Ok(reject(&shared, &e))
                        }
                    }
                }))
            }
        }
    }
}
