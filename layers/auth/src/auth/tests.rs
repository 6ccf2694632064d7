use super::*;
use crate::jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
use crate::{JwtAuth, JwtKey, hash_key};
use http::{Request, Response, StatusCode};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use tower::{BoxError, Service, ServiceBuilder, ServiceExt, service_fn};

/// Answers `subject|roles|authorization header` of what reached it.
async fn echo(req: Request<String>) -> Result<Response<String>, Infallible> {
    let who = req.extensions().get::<Arc<Identity>>();
    let auth = req
        .headers()
        .get("authorization")
        .or(req.headers().get("x-api-key"))
        .map_or("-", |h| h.to_str().unwrap());
    Ok(Response::new(format!(
        "{}|{}|{auth}",
        who.map_or("anonymous", |w| w.subject.as_str()),
        who.map(|w| w.roles.join(",")).unwrap_or_default()
    )))
}

fn get(headers: &[(&str, &str)]) -> Request<String> {
    let mut b = Request::get("/x");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(String::new()).unwrap()
}

async fn run(layer: &AuthLayer, req: Request<String>) -> Response<String> {
    ServiceBuilder::new()
        .layer(layer.clone())
        .service(service_fn(echo))
        .oneshot(req)
        .await
        .unwrap()
}

fn error_code(res: &Response<String>) -> String {
    let v: serde_json::Value = serde_json::from_str(res.body()).unwrap();
    v["error"]["code"].as_str().unwrap().to_string()
}

fn challenge(res: &Response<String>) -> &str {
    res.headers()["www-authenticate"].to_str().unwrap()
}

fn keys() -> ApiKeys {
    ApiKeys::new()
        .key("alpha", "alpha-key", ["reader"])
        .hashed_key("beta", &hash_key("beta-key"), ["writer"])
        .unwrap()
}

#[tokio::test]
async fn none_passes_anonymously() {
    let res = run(&AuthLayer::none(), get(&[("authorization", "Bearer x")])).await;
    assert_eq!(res.body(), "anonymous||Bearer x");
}

#[tokio::test]
async fn api_keys_accept_and_refuse() {
    let layer = AuthLayer::api_keys(keys());
    let res = run(&layer, get(&[("x-api-key", "alpha-key")])).await;
    // identity attached, credential stripped
    assert_eq!(res.body(), "alpha|reader|-");
    let res = run(&layer, get(&[("authorization", "bearer beta-key")])).await;
    assert_eq!(res.body(), "beta|writer|-");

    let res = run(&layer, get(&[("x-api-key", "wrong")])).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&res), "invalid_api_key");
    assert!(challenge(&res).starts_with("Bearer realm=\"mcp-gateway\", error=\"invalid_token\""));
    assert!(!res.body().contains("wrong"), "the key must not be echoed");

    let res = run(&layer, get(&[])).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&res), "missing_credentials");
    assert_eq!(challenge(&res), "Bearer realm=\"mcp-gateway\"");
    assert_eq!(res.headers()["content-type"], "application/json");

    let res = run(&layer, get(&[("authorization", "Basic YWxwaGEta2V5")])).await;
    assert_eq!(error_code(&res), "invalid_api_key");
    // The hash itself is not a key.
    let res = run(&layer, get(&[("x-api-key", &hash_key("beta-key"))])).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let kept = layer.clone().strip_credentials(false);
    let res = run(&kept, get(&[("x-api-key", "alpha-key")])).await;
    assert_eq!(res.body(), "alpha|reader|alpha-key");
}

#[tokio::test]
async fn required_roles_failure_hook_and_metadata_pointer() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let layer = AuthLayer::api_keys(keys())
        .require_roles(["writer"])
        .resource_metadata("https://gw.test/.well-known/oauth-protected-resource")
        .on_failure(move |e| s.lock().unwrap().push(e.reason()));
    let res = run(&layer, get(&[("x-api-key", "alpha-key")])).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(&res), "insufficient_role");
    assert!(challenge(&res).contains("error=\"insufficient_scope\""));
    let res = run(&layer, get(&[("x-api-key", "beta-key")])).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = run(&layer, get(&[])).await;
    assert_eq!(
        challenge(&res),
        "Bearer resource_metadata=\"https://gw.test/.well-known/oauth-protected-resource\""
    );
    run(&layer, get(&[("x-api-key", "nope")])).await;
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "insufficient_role",
            "missing_credentials",
            "invalid_api_key"
        ]
    );
}

fn token(claims: serde_json::Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"k"),
    )
    .unwrap()
}

#[tokio::test]
async fn jwt_through_the_layer() {
    let jwt = JwtAuth::builder(JwtKey::Secret(b"k".to_vec()), [Algorithm::HS256])
        .audience("gw")
        .build()
        .unwrap();
    let layer = AuthLayer::jwt(jwt);
    let now = get_current_timestamp();
    let ok = token(serde_json::json!({"sub": "ann", "aud": "gw", "exp": now + 60, "scope": "a b"}));
    let res = run(&layer, get(&[("authorization", &format!("Bearer {ok}"))])).await;
    assert_eq!(res.body(), "ann|a,b|-");
    let old = token(serde_json::json!({"sub": "ann", "aud": "gw", "exp": now - 3600}));
    let res = run(&layer, get(&[("authorization", &format!("Bearer {old}"))])).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&res), "token_expired");
    assert!(challenge(&res).contains("error=\"invalid_token\""));
    // API-key headers mean nothing to the JWT strategy.
    let res = run(&layer, get(&[("x-api-key", &ok)])).await;
    assert_eq!(error_code(&res), "missing_credentials");
}

#[tokio::test]
async fn jwks_through_the_layer_takes_the_fetching_path() {
    use crate::jwt::tests::{jwk, jwks_server};
    const RSA_PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/rsa_private.pem");
    let srv = jwks_server(vec![jwk(RSA_PRIVATE, "k1")]).await;
    let jwt = JwtAuth::builder(JwtKey::JwksUrl(srv.url.clone()), [Algorithm::RS256])
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(AuthLayer::jwt(jwt))
        .service(service_fn(echo));
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("k1".into());
    let claims = serde_json::json!({"sub": "rob", "exp": get_current_timestamp() + 60});
    let t = encode(
        &h,
        &claims,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
    )
    .unwrap();
    for _ in 0..3 {
        let req = get(&[("authorization", &format!("Bearer {t}"))]);
        let res = svc.ready().await.unwrap().call(req).await.unwrap();
        assert_eq!(res.body(), "rob||-");
    }
    assert_eq!(srv.hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn works_in_front_of_an_axum_router() {
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "hi" }))
        .layer(AuthLayer::api_keys(keys()));
    let res = app
        .clone()
        .oneshot(get(&[("x-api-key", "alpha-key")]).map(axum::body::Body::from))
        .await
        .map_err(BoxError::from)
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND); // "/x" is not routed, but auth passed
    let req = Request::get("/").body(axum::body::Body::empty()).unwrap();
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}
