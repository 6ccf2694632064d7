//! Why a request was not authenticated, and how that is answered over HTTP.

use http::{HeaderValue, Response, StatusCode, header};
use std::borrow::Cow;

/// The kind of an authentication failure: decides the HTTP status, the `error` parameter of
/// the `WWW-Authenticate` challenge and the metrics label ([`AuthError::reason`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthErrorKind {
    /// No credentials were sent (401, no `error` parameter, as RFC 6750 §3.1 asks).
    MissingCredentials,
    /// The API key matches no configured key (401).
    InvalidApiKey,
    /// The bearer token is not a well-formed JWT (401).
    MalformedToken,
    /// The token's `alg` is not one the configuration accepts, e.g. `none` (401).
    AlgorithmNotAllowed,
    /// The token's signature does not verify with the configured key (401).
    InvalidSignature,
    /// The token's `exp` is in the past, beyond the leeway (401).
    Expired,
    /// The token's `nbf` is in the future, beyond the leeway (401).
    NotYetValid,
    /// The token's `iss` is not the configured issuer (401).
    InvalidIssuer,
    /// The token's `aud` does not name this resource (401).
    InvalidAudience,
    /// The token lacks a claim the configuration requires (401).
    MissingClaim,
    /// The token names a key id the identity provider does not publish (401).
    UnknownKey,
    /// The caller is authenticated but holds none of the required roles (403).
    InsufficientRole,
    /// The identity provider's signing keys could not be fetched (503).
    KeysUnavailable,
    /// The client's IP failed to authenticate too often; it waits (429, `Retry-After`).
    TooManyFailures,
}

impl AuthErrorKind {
    /// The label used in JSON error bodies and metrics (`"token_expired"`, ...).
    pub fn reason(self) -> &'static str {
        match self {
            AuthErrorKind::MissingCredentials => "missing_credentials",
            AuthErrorKind::InvalidApiKey => "invalid_api_key",
            AuthErrorKind::MalformedToken => "malformed_token",
            AuthErrorKind::AlgorithmNotAllowed => "algorithm_not_allowed",
            AuthErrorKind::InvalidSignature => "invalid_signature",
            AuthErrorKind::Expired => "token_expired",
            AuthErrorKind::NotYetValid => "token_not_yet_valid",
            AuthErrorKind::InvalidIssuer => "invalid_issuer",
            AuthErrorKind::InvalidAudience => "invalid_audience",
            AuthErrorKind::MissingClaim => "missing_claim",
            AuthErrorKind::UnknownKey => "unknown_key_id",
            AuthErrorKind::InsufficientRole => "insufficient_role",
            AuthErrorKind::KeysUnavailable => "keys_unavailable",
            AuthErrorKind::TooManyFailures => "too_many_auth_failures",
        }
    }

    /// The HTTP status of this failure.
    pub fn status(self) -> StatusCode {
        match self {
            AuthErrorKind::InsufficientRole => StatusCode::FORBIDDEN,
            AuthErrorKind::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            AuthErrorKind::TooManyFailures => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The RFC 6750 `error` parameter of the challenge, if any.
    fn challenge_error(self) -> Option<&'static str> {
        match self {
            AuthErrorKind::MissingCredentials
            | AuthErrorKind::KeysUnavailable
            | AuthErrorKind::TooManyFailures => None,
            AuthErrorKind::InsufficientRole => Some("insufficient_scope"),
            _ => Some("invalid_token"),
        }
    }
}

/// An authentication failure: a kind plus a message a person can act on.
///
/// The message never contains the presented credential.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AuthError {
    kind: AuthErrorKind,
    message: Cow<'static, str>,
    /// Seconds for `Retry-After`, when the client should wait.
    retry_after: Option<u64>,
}

impl AuthError {
    /// A failure of `kind` explained by `message`.
    pub fn new(kind: AuthErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Asks the client to wait `seconds` (`Retry-After`).
    #[must_use]
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> AuthErrorKind {
        self.kind
    }

    /// The metrics / JSON label (see [`AuthErrorKind::reason`]).
    pub fn reason(&self) -> &'static str {
        self.kind.reason()
    }

    /// The HTTP status (401, 403 or 503).
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// The `WWW-Authenticate` value for this failure, given the challenge parameters
    /// (`realm="…"` or `resource_metadata="…"`), or `None` for a 503.
    pub fn challenge(&self, params: &str) -> Option<HeaderValue> {
        if matches!(
            self.kind,
            AuthErrorKind::KeysUnavailable | AuthErrorKind::TooManyFailures
        ) {
            return None;
        }
        let mut v = String::with_capacity(64 + params.len() + self.message.len());
        v.push_str("Bearer ");
        v.push_str(params);
        if let Some(e) = self.kind.challenge_error() {
            v.push_str(", error=\"");
            v.push_str(e);
            v.push_str("\", error_description=\"");
            // quoted-string: printable ASCII without `"` and `\`.
            v.extend(self.message.chars().map(|c| match c {
                '"' | '\\' => '\'',
                c if c.is_ascii_graphic() || c == ' ' => c,
                _ => '?',
            }));
            v.push('"');
        }
        HeaderValue::from_str(&v).ok()
    }

    /// The JSON error response (`{"error": {"code", "message"}}`) with its status and
    /// challenge header; `params` as for [`AuthError::challenge`].
    pub fn to_response<B: From<String>>(&self, params: &str) -> Response<B> {
        self.to_response_as(params, mcp_gateway_core::ErrorFormat::Json)
    }

    /// The error response with its body in `format`: REST JSON, or a JSON-RPC error
    /// (code -32005, the reason in `data`) for an MCP endpoint; status and headers as for
    /// [`AuthError::to_response`].
    pub fn to_response_as<B: From<String>>(
        &self,
        params: &str,
        format: mcp_gateway_core::ErrorFormat,
    ) -> Response<B> {
        let body = match format {
            mcp_gateway_core::ErrorFormat::Json => serde_json::json!({
                "error": { "code": self.reason(), "message": &*self.message }
            }),
            mcp_gateway_core::ErrorFormat::JsonRpc => serde_json::json!({
                "jsonrpc": "2.0",
                "id": null,
                "error": {
                    "code": mcp_gateway_core::jsonrpc::gateway::UNAUTHORIZED,
                    "message": &*self.message,
                    "data": { "reason": self.reason() },
                },
            }),
        }
        .to_string();
        let mut res = Response::new(B::from(body));
        *res.status_mut() = self.status();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(c) = self.challenge(params) {
            h.insert(header::WWW_AUTHENTICATE, c);
        }
        if self.kind == AuthErrorKind::KeysUnavailable {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if let Some(s) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_challenges_and_bodies() {
        let e = AuthError::new(AuthErrorKind::Expired, "token \"x\" expired");
        let c =
            e.challenge("resource_metadata=\"https://gw/.well-known/oauth-protected-resource\"");
        assert_eq!(
            c.unwrap().to_str().unwrap(),
            "Bearer resource_metadata=\"https://gw/.well-known/oauth-protected-resource\", \
             error=\"invalid_token\", error_description=\"token 'x' expired\""
        );
        let missing = AuthError::new(AuthErrorKind::MissingCredentials, "send a token");
        assert_eq!(
            missing.challenge("realm=\"api\"").unwrap(),
            "Bearer realm=\"api\""
        );
        let res: Response<String> = missing.to_response("realm=\"api\"");
        assert_eq!(res.status(), 401);
        let v: serde_json::Value = serde_json::from_str(res.body()).unwrap();
        assert_eq!(v["error"]["code"], "missing_credentials");
        let down = AuthError::new(AuthErrorKind::KeysUnavailable, "idp down");
        let rpc: Response<String> =
            missing.to_response_as("realm=\"api\"", mcp_gateway_core::ErrorFormat::JsonRpc);
        assert_eq!(rpc.status(), 401);
        assert!(rpc.headers().get(header::WWW_AUTHENTICATE).is_some());
        let v: serde_json::Value = serde_json::from_str(rpc.body()).unwrap();
        assert_eq!(v["error"]["code"], -32005);
        assert_eq!(v["error"]["data"]["reason"], "missing_credentials");
        let res: Response<String> = down.to_response("realm=\"api\"");
        assert_eq!(res.status(), 503);
        assert!(res.headers().get(header::WWW_AUTHENTICATE).is_none());
        let forbidden = AuthError::new(AuthErrorKind::InsufficientRole, "needs admin");
        assert_eq!(forbidden.status(), 403);
        assert!(
            forbidden
                .challenge("realm=\"api\"")
                .unwrap()
                .to_str()
                .unwrap()
                .contains("insufficient_scope")
        );
    }
}
