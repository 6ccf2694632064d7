//! Rate-limit decision cost: the in-memory sliding window (count-min sketch), decided at once
//! (`sync`, what the layer does per request) and through a future (`async`), with 1,
//! 10 k and 1 M distinct keys, against a naive `Mutex<HashMap>` sliding-window baseline, and
//! one Redis round trip when `redis-server` is installed.
//!
//! `cargo bench --bench rate_limit`

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mcp_gateway_rate_limit::{RateKey, RateLimitLayer, Verdict};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The obvious implementation: one lock, one map entry per key, exact two-window counts.
struct NaiveWindow {
    map: Mutex<HashMap<RateKey, (u64, u64, u64)>>, // key → (window index, prev, curr)
    start: Instant,
    window: Duration,
    limit: u64,
}

impl NaiveWindow {
    fn check(&self, key: &RateKey) -> bool {
        let e = self.start.elapsed();
        let idx = (e.as_nanos() / self.window.as_nanos()) as u64;
        let frac = (e.as_nanos() % self.window.as_nanos()) as f64 / self.window.as_nanos() as f64;
        let mut map = self.map.lock().unwrap();
        let entry = map.entry(key.clone()).or_insert((idx, 0, 0));
        if entry.0 != idx {
            *entry = if entry.0 + 1 == idx {
                (idx, entry.2, 0)
            } else {
                (idx, 0, 0)
            };
        }
        if entry.1 as f64 * (1.0 - frac) + entry.2 as f64 + 1.0 <= self.limit as f64 {
            entry.2 += 1;
            true
        } else {
            false
        }
    }
}

fn keys(n: usize) -> Vec<RateKey> {
    (0..n)
        .map(|i| RateKey::custom(format!("user-{i}")))
        .collect()
}

fn memory(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("rate_limit_decision");
    for n in [1usize, 10_000, 1_000_000] {
        let keys = keys(n);
        let layer = rt.block_on(async {
            RateLimitLayer::builder(u64::MAX / 2, Duration::from_secs(3600))
                .max_keys(n.max(65_536))
                .build()
                .unwrap()
        });
        let mut k = 0usize;
        g.bench_with_input(BenchmarkId::new("sync", n), &n, |b, _| {
            b.iter(|| {
                k = (k + 1) % keys.len();
                let v = layer.check_now(&keys[k]);
                black_box(matches!(v, Some(Verdict::Decided(d)) if d.allowed))
            })
        });
        let mut i = 0usize;
        g.bench_with_input(BenchmarkId::new("async", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) % keys.len();
                // The in-memory backend decides synchronously: the future is ready at once.
                let v = futures::executor::block_on(layer.check(&keys[i]));
                black_box(matches!(v, Verdict::Decided(d) if d.allowed))
            })
        });
        let naive = NaiveWindow {
            map: Mutex::new(HashMap::new()),
            start: Instant::now(),
            window: Duration::from_secs(3600),
            limit: u64::MAX / 2,
        };
        let mut j = 0usize;
        g.bench_with_input(BenchmarkId::new("naive_mutex_hashmap", n), &n, |b, _| {
            b.iter(|| {
                j = (j + 1) % keys.len();
                black_box(naive.check(&keys[j]))
            })
        });
    }
    g.finish();
}

/// Starts a throwaway redis-server on a free loopback port, if one is installed.
fn redis_server() -> Option<(std::process::Child, u16)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .ok()?;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((child, port));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn redis(c: &mut Criterion) {
    let Some((mut child, port)) = redis_server() else {
        eprintln!("redis-server not found: skipping the Redis bench");
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let layer = rt.block_on(async {
        RateLimitLayer::builder(u64::MAX / 4, Duration::from_secs(3600))
            .redis(format!("redis://127.0.0.1:{port}/"))
            .redis_timeout(Duration::from_secs(2))
            .build()
            .unwrap()
    });
    let key = RateKey::custom("bench");
    c.bench_function("rate_limit_decision/redis_round_trip", |b| {
        b.to_async(&rt).iter(|| async {
            let v = layer.check(&key).await;
            assert!(matches!(v, Verdict::Decided(_)), "{v:?}");
        })
    });
    let _ = child.kill();
    let _ = child.wait();
}

criterion_group!(benches, memory, redis);
criterion_main!(benches);
