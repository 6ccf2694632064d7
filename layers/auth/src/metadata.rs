//! OAuth 2.0 Protected Resource Metadata (RFC 9728): the document an MCP client fetches,
//! after a 401 whose challenge carries `resource_metadata="…"`, to find the authorization
//! server(s) that issue tokens for this resource.
//!
//! ```
//! use mcp_gateway_auth::ProtectedResource;
//!
//! let pr = ProtectedResource::new("https://gw.example.com/mcp")
//!     .unwrap()
//!     .authorization_servers(["https://idp.example.com"]);
//! assert_eq!(
//!     pr.metadata_url(),
//!     "https://gw.example.com/.well-known/oauth-protected-resource/mcp"
//! );
//! assert_eq!(
//!     pr.well_known_paths(),
//!     ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"]
//! );
//! ```

use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use serde::Serialize;
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

/// The well-known path prefix of RFC 9728.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// A `resource` that is not an absolute http(s) URL without query or fragment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("resource {0:?} must be an absolute https:// (or http://) URL without query or fragment")]
pub struct InvalidResource(pub String);

/// The protected-resource metadata document of this resource.
#[derive(Clone, Debug, Serialize)]
pub struct ProtectedResource {
    resource: String,
    authorization_servers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    scopes_supported: Vec<String>,
    bearer_methods_supported: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_name: Option<String>,
    #[serde(skip)]
    origin: String,
    #[serde(skip)]
    path: String,
}

impl ProtectedResource {
    /// Metadata for `resource`, the URL clients use for this gateway (also the audience its
    /// tokens must carry).
    pub fn new(resource: impl Into<String>) -> Result<Self, InvalidResource> {
        let resource = resource.into();
        let bad = || InvalidResource(resource.clone());
        if resource.contains('#') || resource.contains('?') {
            return Err(bad());
        }
        let uri: Uri = resource.parse().map_err(|_| bad())?;
        let scheme = uri.scheme_str().ok_or_else(bad)?;
        if scheme != "https" && scheme != "http" {
            return Err(bad());
        }
        let authority = uri.authority().ok_or_else(bad)?;
        let path = uri.path().trim_end_matches('/').to_string();
        Ok(Self {
            origin: format!("{scheme}://{authority}"),
            path,
            resource,
            authorization_servers: Vec::new(),
            scopes_supported: Vec::new(),
            bearer_methods_supported: ["header"],
            resource_name: None,
        })
    }

    /// Issuer URLs of the authorization servers that issue tokens for this resource.
    #[must_use]
    pub fn authorization_servers<I, S>(mut self, servers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.authorization_servers = servers.into_iter().map(Into::into).collect();
        self
    }

    /// Scopes clients may request.
    #[must_use]
    pub fn scopes_supported<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// A human-readable name of the resource.
    #[must_use]
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// The resource identifier.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// Where the document is served (RFC 9728 §3.1: the well-known prefix inserted between
    /// the origin and the resource's path); put it in [`AuthLayer::resource_metadata`](crate::AuthLayer::resource_metadata).
    pub fn metadata_url(&self) -> String {
        format!("{}{WELL_KNOWN}{}", self.origin, self.path)
    }

    /// The paths to serve the document at: the RFC 9728 one and, when the resource has a
    /// path, also the bare well-known path (which some clients try).
    pub fn well_known_paths(&self) -> Vec<String> {
        let mut v = vec![format!("{WELL_KNOWN}{}", self.path)];
        if !self.path.is_empty() {
            v.push(WELL_KNOWN.to_string());
        }
        v
    }

    /// The document as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("metadata serializes")
    }

    /// A tower service answering `GET` / `HEAD` with the document (and `OPTIONS` for CORS
    /// preflights; the document is public, so any origin may read it).
    pub fn service(&self) -> MetadataService {
        MetadataService {
            json: Arc::from(self.to_json()),
        }
    }
}

/// Serves a [`ProtectedResource`] document; see [`ProtectedResource::service`].
#[derive(Clone, Debug)]
pub struct MetadataService {
    json: Arc<str>,
}

impl<B> tower::Service<Request<B>> for MetadataService {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (status, body) = match *req.method() {
            Method::GET => (StatusCode::OK, self.json.to_string()),
            Method::HEAD | Method::OPTIONS => (StatusCode::OK, String::new()),
            _ => (
                StatusCode::METHOD_NOT_ALLOWED,
                r#"{"error":{"code":"method_not_allowed","message":"use GET"}}"#.to_string(),
            ),
        };
        let mut res = Response::new(body);
        *res.status_mut() = status;
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        );
        ready(Ok(res))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn serves_the_document() {
        let pr = ProtectedResource::new("https://gw.example.com")
            .unwrap()
            .authorization_servers(["https://idp.example.com"])
            .scopes_supported(["tools:read"]);
        assert_eq!(
            pr.metadata_url(),
            "https://gw.example.com/.well-known/oauth-protected-resource"
        );
        assert_eq!(pr.well_known_paths(), [WELL_KNOWN]);
        let res = pr
            .service()
            .oneshot(Request::get(WELL_KNOWN).body(()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let v: serde_json::Value = serde_json::from_str(res.body()).unwrap();
        assert_eq!(v["resource"], "https://gw.example.com");
        assert_eq!(v["authorization_servers"][0], "https://idp.example.com");
        assert_eq!(v["scopes_supported"][0], "tools:read");
        assert_eq!(v["bearer_methods_supported"][0], "header");
        assert!(ProtectedResource::new("/mcp").is_err());
        assert!(ProtectedResource::new("ftp://x/y").is_err());
        assert!(ProtectedResource::new("https://x/y#z").is_err());
    }
}
