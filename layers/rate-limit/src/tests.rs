//! Service-level tests: headers, rejections, keys, concurrency.

use crate::*;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use mcp_gateway_core::Identity;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

type Body = Full<Bytes>;

fn counting(
    hits: Arc<AtomicUsize>,
) -> impl Service<Request<()>, Response = Response<Body>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    service_fn(move |_req: Request<()>| {
        hits.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(Response::new(Body::from("ok"))) }
    })
}

fn as_user(subject: &str) -> Request<()> {
    let mut req = Request::new(());
    req.extensions_mut().insert(Arc::new(Identity {
        subject: subject.into(),
        ..Identity::default()
    }));
    req
}

async fn body(res: Response<Body>) -> String {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn exact_headers_then_429_without_reaching_the_service() {
    let hits = Arc::new(AtomicUsize::new(0));
    let svc = ServiceBuilder::new()
        .layer(RateLimitLayer::new(3, Duration::from_secs(60)))
        .service(counting(hits.clone()));
    for remaining in ["2", "1", "0"] {
        let res = svc.clone().oneshot(as_user("a")).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let h = res.headers();
        assert_eq!(h["x-ratelimit-limit"], "3");
        assert_eq!(h["x-ratelimit-remaining"], remaining);
        assert_eq!(h["x-ratelimit-reset"], "60");
        assert!(h.get("retry-after").is_none());
    }
    tokio::time::advance(Duration::from_secs(15)).await;
    let res = svc.clone().oneshot(as_user("a")).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let h = res.headers().clone();
    assert_eq!(h["x-ratelimit-remaining"], "0");
    // One slot frees when 3 × (1 − g) ≤ 2 in the next window: 45 s left in this one + 20 s.
    assert_eq!(h["retry-after"], "65");
    assert_eq!(h["x-ratelimit-reset"], "65");
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(
        body(res).await,
        r#"{"error":{"code":"rate_limited","message":"rate limit exceeded; retry after 65 s"}}"#
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        3,
        "the limited call never reached the service"
    );
}

#[tokio::test(start_paused = true)]
async fn json_rpc_format_shares_the_budget() {
    let hits = Arc::new(AtomicUsize::new(0));
    let rest = RateLimitLayer::new(1, Duration::from_secs(10));
    let mcp = rest.clone().error_format(ErrorFormat::JsonRpc);
    let rest_svc = rest.layer(counting(hits.clone()));
    let mcp_svc = mcp.layer(counting(hits.clone()));
    assert_eq!(
        rest_svc.oneshot(as_user("a")).await.unwrap().status(),
        StatusCode::OK
    );
    let res = mcp_svc.oneshot(as_user("a")).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        body(res).await,
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32006,"message":"rate limit exceeded; retry after 20 s"}}"#
    );
}

#[tokio::test(start_paused = true)]
async fn keys_are_isolated_and_overrides_apply() {
    let hits = Arc::new(AtomicUsize::new(0));
    let layer = RateLimitLayer::builder(2, Duration::from_secs(60))
        .overrides(Overrides::new().subject("ci", 5))
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(counting(hits.clone()));
    let status = |user: &'static str| {
        let svc = svc.clone();
        async move { svc.oneshot(as_user(user)).await.unwrap().status().as_u16() }
    };
    assert_eq!(
        [status("a").await, status("a").await, status("a").await],
        [200, 200, 429]
    );
    assert_eq!([status("b").await, status("b").await], [200, 200]);
    let mut ci = Vec::new();
    for _ in 0..6 {
        ci.push(status("ci").await);
    }
    assert_eq!(ci, [200, 200, 200, 200, 200, 429]);
}

#[tokio::test(start_paused = true)]
async fn extractor_none_exempts_and_observer_counts() {
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = events.clone();
    let layer = RateLimitLayer::builder(1, Duration::from_secs(60))
        .on_decision(move |e| seen.lock().unwrap().push(e))
        .build()
        .unwrap()
        .key_extractor(|req: &Request<()>| (req.uri().path() != "/healthz").then(RateKey::global));
    let svc = layer.layer(counting(Arc::new(AtomicUsize::new(0))));
    let get = |path: &'static str| {
        let svc = svc.clone();
        async move {
            let res = svc
                .oneshot(Request::get(path).body(()).unwrap())
                .await
                .unwrap();
            (
                res.status().as_u16(),
                res.headers().contains_key("x-ratelimit-limit"),
            )
        }
    };
    assert_eq!(get("/a").await, (200, true));
    assert_eq!(get("/a").await, (429, true));
    assert_eq!(get("/healthz").await, (200, false));
    assert_eq!(*events.lock().unwrap(), [Event::Allowed, Event::Limited]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_never_exceed_the_limit() {
    let hits = Arc::new(AtomicUsize::new(0));
    let svc = ServiceBuilder::new()
        .layer(RateLimitLayer::new(100, Duration::from_secs(3600)))
        .service(counting(hits.clone()));
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                svc.oneshot(as_user("hot")).await.unwrap().status()
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() == StatusCode::OK {
            ok += 1;
        }
    }
    assert_eq!(ok, 100);
    assert_eq!(hits.load(Ordering::SeqCst), 100);
}

#[test]
fn builder_validates() {
    assert!(matches!(
        RateLimitLayer::builder(0, Duration::from_secs(1)).build(),
        Err(BuildError::ZeroLimit)
    ));
    assert!(matches!(
        RateLimitLayer::builder(1, Duration::from_millis(500)).build(),
        Err(BuildError::WindowTooShort(_))
    ));
}
