//! Criterion benches of per-request authentication: the API-key check (1 and 100 keys, with
//! a naive `==` scan as the baseline), HS256 / RS256 / ES256 JWT verification, and the whole
//! `AuthLayer` around a trivial service (with the bare service as the baseline).
//!
//! `cargo bench --bench auth`

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use mcp_gateway::auth::jsonwebtoken::{
    Algorithm, EncodingKey, Header, encode, get_current_timestamp,
};
use mcp_gateway::auth::{ApiKeys, AuthLayer, JwtAuth, JwtKey};
use std::convert::Infallible;
use std::hint::black_box;
use tower::{Layer, Service, ServiceExt, service_fn};

const RSA_PRIVATE: &[u8] = include_bytes!("../layers/auth/tests/fixtures/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("../layers/auth/tests/fixtures/rsa_public.pem");
const EC_PRIVATE: &[u8] = include_bytes!("../layers/auth/tests/fixtures/ec_private.pem");
const EC_PUBLIC: &[u8] = include_bytes!("../layers/auth/tests/fixtures/ec_public.pem");

fn keys(n: usize) -> (ApiKeys, Vec<String>) {
    let secrets: Vec<String> = (0..n)
        .map(|i| format!("key-{i:04}-{}", "x".repeat(32)))
        .collect();
    let mut k = ApiKeys::new();
    for (i, s) in secrets.iter().enumerate() {
        k = k.key(format!("name{i}"), s, ["reader"]);
    }
    (k, secrets)
}

fn claims() -> serde_json::Value {
    serde_json::json!({
        "sub": "alice", "iss": "https://idp.test", "aud": "mcp-gateway",
        "exp": get_current_timestamp() + 3600, "scope": "tools:read tools:write",
    })
}

fn jwt(key: JwtKey, alg: Algorithm) -> JwtAuth {
    JwtAuth::builder(key, [alg])
        .issuer("https://idp.test")
        .audience("mcp-gateway")
        .build()
        .expect("valid verifier")
}

fn api_keys(c: &mut Criterion) {
    let mut g = c.benchmark_group("api_key");
    for n in [1, 100] {
        let (k, secrets) = keys(n);
        let last = secrets.last().unwrap().clone();
        g.bench_with_input(BenchmarkId::new("verify_sha256_ct", n), &last, |b, s| {
            b.iter(|| black_box(k.verify(black_box(s)).is_some()))
        });
        // Baseline: a naive, timing-leaky scan with `==`.
        g.bench_with_input(BenchmarkId::new("naive_eq_scan", n), &last, |b, s| {
            b.iter(|| black_box(secrets.iter().position(|x| x == black_box(s))))
        });
        g.bench_with_input(BenchmarkId::new("verify_wrong_key", n), &last, |b, _| {
            b.iter(|| {
                black_box(
                    k.verify(black_box("not-a-key-at-all-0000000000000000"))
                        .is_none(),
                )
            })
        });
    }
    g.finish();
}

fn jwts(c: &mut Criterion) {
    let mut g = c.benchmark_group("jwt_verify");
    let hs = jwt(JwtKey::Secret(b"bench-secret".to_vec()), Algorithm::HS256);
    let hs_token = encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(b"bench-secret"),
    )
    .unwrap();
    g.bench_function("hs256", |b| {
        b.iter(|| black_box(hs.verify(black_box(&hs_token)).is_ok()))
    });
    let rs = jwt(JwtKey::Pem(RSA_PUBLIC.to_vec()), Algorithm::RS256);
    let rs_token = encode(
        &Header::new(Algorithm::RS256),
        &claims(),
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
    )
    .unwrap();
    g.bench_function("rs256_2048", |b| {
        b.iter(|| black_box(rs.verify(black_box(&rs_token)).is_ok()))
    });
    let es = jwt(JwtKey::Pem(EC_PUBLIC.to_vec()), Algorithm::ES256);
    let es_token = encode(
        &Header::new(Algorithm::ES256),
        &claims(),
        &EncodingKey::from_ec_pem(EC_PRIVATE).unwrap(),
    )
    .unwrap();
    g.bench_function("es256", |b| {
        b.iter(|| black_box(es.verify(black_box(&es_token)).is_ok()))
    });
    g.finish();
}

fn layer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let inner = service_fn(|_req: Request<String>| async {
        Ok::<_, Infallible>(Response::new(String::new()))
    });
    let (k, secrets) = keys(10);
    let hs = jwt(JwtKey::Secret(b"bench-secret".to_vec()), Algorithm::HS256);
    let hs_token = encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(b"bench-secret"),
    )
    .unwrap();
    let rs = jwt(JwtKey::Pem(RSA_PUBLIC.to_vec()), Algorithm::RS256);
    let rs_token = encode(
        &Header::new(Algorithm::RS256),
        &claims(),
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
    )
    .unwrap();
    let cases: [(&str, Option<AuthLayer>, String); 4] = [
        ("no_layer_baseline", None, String::new()),
        ("api_key", Some(AuthLayer::api_keys(k)), secrets[5].clone()),
        ("jwt_hs256", Some(AuthLayer::jwt(hs)), hs_token),
        ("jwt_rs256", Some(AuthLayer::jwt(rs)), rs_token),
    ];
    let mut g = c.benchmark_group("auth_layer_request");
    for (name, layer, credential) in cases {
        let header = format!("Bearer {credential}");
        let mut svc = match layer {
            Some(l) => tower::util::BoxCloneService::new(l.layer(inner)),
            None => tower::util::BoxCloneService::new(inner),
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                let req = Request::get("/api/v1/tools")
                    .header("authorization", header.as_str())
                    .body(String::new())
                    .unwrap();
                let res =
                    rt.block_on(async { svc.ready().await.unwrap().call(req).await.unwrap() });
                assert_eq!(res.status(), 200);
                black_box(res)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, api_keys, jwts, layer);
criterion_main!(benches);
