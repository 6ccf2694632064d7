use super::*;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{EncodingKey, Header, encode, get_current_timestamp};
use serde_json::json;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

const RSA_PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("../../tests/fixtures/rsa_public.pem");
const RSA2_PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/rsa2_private.pem");
const EC_PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/ec_private.pem");
const EC_PUBLIC: &[u8] = include_bytes!("../../tests/fixtures/ec_public.pem");
const ED_PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/ed_private.pem");
const ED_PUBLIC: &[u8] = include_bytes!("../../tests/fixtures/ed_public.pem");

fn now() -> u64 {
    get_current_timestamp()
}

fn claims() -> Value {
    json!({
        "sub": "alice",
        "iss": "https://idp.test",
        "aud": "mcp-gateway",
        "exp": now() + 300,
        "scope": "tools:read tools:write",
        "roles": ["reader", "tools:read"],
        "org": {"tenant": "acme"},
    })
}

fn with(mut c: Value, k: &str, v: Value) -> Value {
    c[k] = v;
    c
}

fn without(mut c: Value, k: &str) -> Value {
    c.as_object_mut().unwrap().remove(k);
    c
}

fn hs(secret: &[u8], c: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        c,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn signed(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, c: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_string);
    encode(&h, c, key).unwrap()
}

fn rsa_key(pem: &[u8]) -> EncodingKey {
    EncodingKey::from_rsa_pem(pem).unwrap()
}

fn hs_auth() -> JwtAuth {
    JwtAuth::builder(JwtKey::Secret(b"s3cret".to_vec()), [Algorithm::HS256])
        .issuer("https://idp.test")
        .audience("mcp-gateway")
        .leeway(30)
        .tenant_claim("org.tenant")
        .build()
        .unwrap()
}

fn kind(r: Result<Identity, AuthError>) -> AuthErrorKind {
    r.expect_err("should be refused").kind()
}

#[test]
fn hs256_identity_from_claims() {
    let id = hs_auth().verify(&hs(b"s3cret", &claims())).unwrap();
    assert_eq!(id.subject, "alice");
    // roles first, then the space-separated scope, deduplicated
    assert_eq!(id.roles, ["reader", "tools:read", "tools:write"]);
    assert_eq!(id.tenant.as_deref(), Some("acme"));
    assert_eq!(id.key_name, None);
    assert_eq!(id.claims.as_ref().unwrap()["sub"], "alice");
    let custom = JwtAuth::builder(JwtKey::Secret(b"s3cret".to_vec()), [Algorithm::HS256])
        .roles_claims(["org.groups"])
        .build()
        .unwrap();
    let c = json!({"client_id": "svc", "exp": now() + 60, "org": {"groups": ["ops"]}});
    let id = custom.verify(&hs(b"s3cret", &c)).unwrap();
    assert_eq!(
        (id.subject.as_str(), &id.roles[..]),
        ("svc", &["ops".to_string()][..])
    );
}

#[test]
fn time_claims_with_leeway() {
    let a = hs_auth();
    let t = |c: Value| a.verify(&hs(b"s3cret", &c));
    assert_eq!(
        kind(t(with(claims(), "exp", json!(now() - 120)))),
        AuthErrorKind::Expired
    );
    // inside the 30 s leeway
    assert!(t(with(claims(), "exp", json!(now() - 10))).is_ok());
    assert_eq!(
        kind(t(with(claims(), "nbf", json!(now() + 300)))),
        AuthErrorKind::NotYetValid
    );
    assert!(t(with(claims(), "nbf", json!(now() + 10))).is_ok());
    assert_eq!(
        kind(t(without(claims(), "exp"))),
        AuthErrorKind::MissingClaim
    );
    // A claim that is there but not a NumericDate is named as such, not as missing.
    for bad in [json!("tomorrow"), json!(1e300), json!(-5)] {
        let e = t(with(claims(), "exp", bad.clone())).unwrap_err();
        assert_eq!(e.kind(), AuthErrorKind::MalformedToken, "{bad}");
        assert!(e.to_string().contains("NumericDate"), "{bad}: {e}");
    }
}

#[test]
fn issuer_and_audience() {
    let a = hs_auth();
    let t = |c: Value| a.verify(&hs(b"s3cret", &c));
    let e = t(with(claims(), "iss", json!("https://evil.test"))).unwrap_err();
    assert_eq!(e.kind(), AuthErrorKind::InvalidIssuer);
    assert!(e.to_string().contains("https://idp.test"), "{e}");
    let e = t(with(claims(), "aud", json!("other-api"))).unwrap_err();
    assert_eq!(e.kind(), AuthErrorKind::InvalidAudience);
    assert!(t(with(claims(), "aud", json!(["other-api", "mcp-gateway"]))).is_ok());
    assert_eq!(
        kind(t(without(claims(), "aud"))),
        AuthErrorKind::MissingClaim
    );
    assert_eq!(
        kind(t(without(claims(), "iss"))),
        AuthErrorKind::MissingClaim
    );
}

#[test]
fn signature_and_algorithm_attacks() {
    use base64::Engine;
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
    };
    let a = hs_auth();
    assert_eq!(
        kind(a.verify(&hs(b"wrong", &claims()))),
        AuthErrorKind::InvalidSignature
    );
    // alg: none, with and without a trailing signature
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims())
    );
    let e = a.verify(&none).unwrap_err();
    assert_eq!(e.kind(), AuthErrorKind::AlgorithmNotAllowed);
    assert!(e.to_string().contains("none"), "{e}");
    assert_eq!(
        kind(a.verify(none.trim_end_matches('.'))),
        AuthErrorKind::MalformedToken
    );
    assert_eq!(kind(a.verify("not-a-jwt")), AuthErrorKind::MalformedToken);
    // HS256 allowed list, HS512 token
    let hs512 = encode(
        &Header::new(Algorithm::HS512),
        &claims(),
        &EncodingKey::from_secret(b"s3cret"),
    )
    .unwrap();
    assert_eq!(kind(a.verify(&hs512)), AuthErrorKind::AlgorithmNotAllowed);

    // RS256 with a PEM key; HS256 "signed" with the public key as the secret is refused.
    let rs = JwtAuth::builder(JwtKey::Pem(RSA_PUBLIC.to_vec()), [Algorithm::RS256])
        .build()
        .unwrap();
    let good = signed(Algorithm::RS256, &rsa_key(RSA_PRIVATE), None, &claims());
    assert_eq!(rs.verify(&good).unwrap().subject, "alice");
    let confused = hs(RSA_PUBLIC, &claims());
    assert_eq!(
        kind(rs.verify(&confused)),
        AuthErrorKind::AlgorithmNotAllowed
    );
    let other = signed(Algorithm::RS256, &rsa_key(RSA2_PRIVATE), None, &claims());
    assert_eq!(kind(rs.verify(&other)), AuthErrorKind::InvalidSignature);
    // a tampered payload
    let mut parts: Vec<&str> = good.split('.').collect();
    let forged = b64(&with(claims(), "sub", json!("mallory")));
    parts[1] = &forged;
    assert_eq!(
        kind(rs.verify(&parts.join("."))),
        AuthErrorKind::InvalidSignature
    );
}

#[test]
fn ec_ed_and_ps_keys() {
    let es = JwtAuth::builder(JwtKey::Pem(EC_PUBLIC.to_vec()), [Algorithm::ES256])
        .build()
        .unwrap();
    let key = EncodingKey::from_ec_pem(EC_PRIVATE).unwrap();
    assert!(
        es.verify(&signed(Algorithm::ES256, &key, None, &claims()))
            .is_ok()
    );
    let ed = JwtAuth::builder(JwtKey::Pem(ED_PUBLIC.to_vec()), [Algorithm::EdDSA])
        .build()
        .unwrap();
    let key = EncodingKey::from_ed_pem(ED_PRIVATE).unwrap();
    assert!(
        ed.verify(&signed(Algorithm::EdDSA, &key, None, &claims()))
            .is_ok()
    );
    let ps = JwtAuth::builder(
        JwtKey::Pem(RSA_PUBLIC.to_vec()),
        [Algorithm::PS256, Algorithm::RS256],
    )
    .build()
    .unwrap();
    let token = signed(Algorithm::PS256, &rsa_key(RSA_PRIVATE), None, &claims());
    assert!(ps.verify(&token).is_ok());
}

#[test]
fn config_errors() {
    let b = |k: JwtKey, a: &[Algorithm]| JwtAuth::builder(k, a.iter().copied()).build();
    let secret = || JwtKey::Secret(b"x".to_vec());
    let pem = || JwtKey::Pem(RSA_PUBLIC.to_vec());
    assert!(matches!(b(secret(), &[]), Err(JwtConfigError::NoAlgorithm)));
    assert!(matches!(
        b(secret(), &[Algorithm::RS256]),
        Err(JwtConfigError::WrongFamily { .. })
    ));
    assert!(matches!(
        b(pem(), &[Algorithm::HS256]),
        Err(JwtConfigError::WrongFamily { .. })
    ));
    assert!(matches!(
        b(pem(), &[Algorithm::RS256, Algorithm::ES256]),
        Err(JwtConfigError::WrongFamily { .. })
    ));
    assert!(matches!(
        b(pem(), &[Algorithm::ES256]),
        Err(JwtConfigError::InvalidKey(_))
    ));
    assert!(matches!(
        b(JwtKey::Secret(Vec::new()), &[Algorithm::HS256]),
        Err(JwtConfigError::InvalidKey(_))
    ));
    assert!(matches!(
        b(JwtKey::JwksUrl("ftp://x".into()), &[Algorithm::RS256]),
        Err(JwtConfigError::InvalidKey(_))
    ));
    assert!(parse_algorithm("RS256").is_ok());
    assert!(matches!(
        parse_algorithm("none"),
        Err(JwtConfigError::UnknownAlgorithm(_))
    ));
}

/// A local JWKS endpoint whose document and status can be changed; counts its hits.
pub(crate) struct JwksServer {
    pub(crate) url: String,
    pub(crate) hits: Arc<AtomicUsize>,
    pub(crate) doc: Arc<Mutex<(u16, Value)>>,
}

pub(crate) fn jwk(private_pem: &[u8], kid: &str) -> Jwk {
    let mut k = Jwk::from_encoding_key(&rsa_key(private_pem), Algorithm::RS256).unwrap();
    k.common.key_id = Some(kid.to_string());
    k
}

pub(crate) async fn jwks_server(keys: Vec<Jwk>) -> JwksServer {
    let hits = Arc::new(AtomicUsize::new(0));
    let doc = Arc::new(Mutex::new((
        200,
        serde_json::to_value(JwkSet { keys }).unwrap(),
    )));
    let (h, d) = (hits.clone(), doc.clone());
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let (h, d) = (h.clone(), d.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                let (status, v) = d.lock().unwrap().clone();
                (http::StatusCode::from_u16(status).unwrap(), axum::Json(v))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    JwksServer {
        url: format!("http://{addr}/jwks.json"),
        hits,
        doc,
    }
}

fn jwks_auth(url: &str, min_refresh: Duration) -> JwtAuth {
    JwtAuth::builder(JwtKey::JwksUrl(url.to_string()), [Algorithm::RS256])
        .audience("mcp-gateway")
        .jwks_min_refresh(min_refresh)
        .build()
        .unwrap()
}

#[tokio::test]
async fn jwks_fetch_rotation_and_min_refresh() {
    let srv = jwks_server(vec![jwk(RSA_PRIVATE, "k1")]).await;
    let auth = jwks_auth(&srv.url, Duration::from_millis(300));
    let t1 = signed(
        Algorithm::RS256,
        &rsa_key(RSA_PRIVATE),
        Some("k1"),
        &claims(),
    );
    // Nothing fetched yet: the synchronous check cannot decide.
    assert_eq!(kind(auth.verify(&t1)), AuthErrorKind::UnknownKey);
    assert_eq!(auth.verify_fetching(&t1).await.unwrap().subject, "alice");
    assert_eq!(srv.hits.load(Ordering::SeqCst), 1);
    // Cached now: no more fetches.
    assert!(auth.verify(&t1).is_ok());
    assert!(auth.verify_fetching(&t1).await.is_ok());
    assert_eq!(srv.hits.load(Ordering::SeqCst), 1);

    // The IdP rotates in k2.
    srv.doc.lock().unwrap().1 = serde_json::to_value(JwkSet {
        keys: vec![jwk(RSA_PRIVATE, "k1"), jwk(RSA2_PRIVATE, "k2")],
    })
    .unwrap();
    let t2 = signed(
        Algorithm::RS256,
        &rsa_key(RSA2_PRIVATE),
        Some("k2"),
        &claims(),
    );
    // Within the minimum refresh interval: refused without asking the IdP.
    assert_eq!(
        kind(auth.verify_fetching(&t2).await),
        AuthErrorKind::UnknownKey
    );
    assert_eq!(srv.hits.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(350)).await;
    // Unknown kid after the interval: one refresh, then accepted.
    assert_eq!(auth.verify_fetching(&t2).await.unwrap().subject, "alice");
    assert_eq!(srv.hits.load(Ordering::SeqCst), 2);

    // A flood of made-up key ids costs at most one fetch per interval.
    let bogus = signed(
        Algorithm::RS256,
        &rsa_key(RSA2_PRIVATE),
        Some("nope"),
        &claims(),
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    let all = futures_join(
        (0..20)
            .map(|_| {
                let a = auth.clone();
                let b = bogus.clone();
                tokio::spawn(async move { a.verify_fetching(&b).await })
            })
            .collect(),
    )
    .await;
    assert!(
        all.iter()
            .all(|r| r.as_ref().unwrap_err().kind() == AuthErrorKind::UnknownKey)
    );
    assert_eq!(srv.hits.load(Ordering::SeqCst), 3);
    // A token signed by k1's key but naming k2 fails on the signature.
    let lying = signed(
        Algorithm::RS256,
        &rsa_key(RSA_PRIVATE),
        Some("k2"),
        &claims(),
    );
    assert_eq!(kind(auth.verify(&lying)), AuthErrorKind::InvalidSignature);
}

async fn futures_join<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn jwks_endpoint_down() {
    // Nothing listens on this port any more.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let auth = jwks_auth(
        &format!("http://127.0.0.1:{port}/jwks.json"),
        Duration::from_secs(60),
    );
    let t = signed(
        Algorithm::RS256,
        &rsa_key(RSA_PRIVATE),
        Some("k1"),
        &claims(),
    );
    let e = auth.verify_fetching(&t).await.unwrap_err();
    assert_eq!(e.kind(), AuthErrorKind::KeysUnavailable);
    assert_eq!(e.status(), 503);
    // Still down, and the interval has not passed: answered without another attempt.
    assert_eq!(
        kind(auth.verify_fetching(&t).await),
        AuthErrorKind::KeysUnavailable
    );

    // An endpoint answering 500, then recovering.
    let srv = jwks_server(vec![jwk(RSA_PRIVATE, "k1")]).await;
    srv.doc.lock().unwrap().0 = 500;
    let auth = jwks_auth(&srv.url, Duration::from_millis(200));
    let e = auth.verify_fetching(&t).await.unwrap_err();
    assert_eq!(e.kind(), AuthErrorKind::KeysUnavailable);
    assert!(e.to_string().contains("500"), "{e}");
    srv.doc.lock().unwrap().0 = 200;
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(auth.verify_fetching(&t).await.is_ok());
    // Down again later: the cached keys keep working.
    srv.doc.lock().unwrap().0 = 500;
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(auth.verify_fetching(&t).await.is_ok());
}
