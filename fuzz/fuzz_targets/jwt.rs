//! JWT header and claims handling: any bearer token is refused or accepted without a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcp_gateway_auth::jsonwebtoken::Algorithm;
use mcp_gateway_auth::{JwtAuth, JwtKey};
use std::sync::OnceLock;

fn auth() -> &'static JwtAuth {
    static A: OnceLock<JwtAuth> = OnceLock::new();
    A.get_or_init(|| {
        JwtAuth::builder(JwtKey::Secret(b"fuzz-secret".to_vec()), [Algorithm::HS256])
            .issuer("https://idp.test")
            .build()
            .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        let _ = auth().verify(token);
    }
});
