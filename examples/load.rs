//! Load harness for the `active_users` example: req/s and p50/p99 latency of the uncached
//! page, the `#[cached_view]` page and the `#[cached_query]` page, on memory and Redis, in
//! one run, 32 keep-alive connections each.
//!
//! ```text
//! cargo run --release -p cache-examples --example load -- [seconds per endpoint, default 5]
//! ```
//! Server and load generator share this machine (and its cores); the ratios between the
//! endpoints are the point, not the absolute numbers. Redis is a private `redis-server`
//! started for the run (or `CACHE_TEST_REDIS_URL`).

#[path = "active_users/app.rs"]
#[allow(dead_code)]
mod app;

use std::time::{Duration, Instant};

use cache_runtime::Cache;

const CONNECTIONS: usize = 32;
const PATHS: [&str; 3] = ["/users", "/users/page", "/users/query"];

struct Run {
    requests: usize,
    elapsed: Duration,
    latencies_us: Vec<u64>,
}

impl Run {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    fn percentile(&self, p: f64) -> f64 {
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }
}

async fn hammer(url: String, duration: Duration) -> Run {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()
        .unwrap();
    let start = Instant::now();
    let deadline = start + duration;
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let response = client.get(&url).send().await.expect("request");
                    assert!(
                        response.status().is_success(),
                        "{url}: {}",
                        response.status()
                    );
                    response.bytes().await.expect("body");
                    latencies.push(t.elapsed().as_micros() as u64);
                }
                latencies
            })
        })
        .collect();
    let mut latencies_us = Vec::new();
    for w in workers {
        latencies_us.extend(w.await.unwrap());
    }
    let elapsed = start.elapsed();
    latencies_us.sort_unstable();
    Run {
        requests: latencies_us.len(),
        elapsed,
        latencies_us,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let duration = Duration::from_secs(seconds);
    let redis = std::env::var(cache_tests::REDIS_URL_ENV)
        .is_err()
        .then(cache_tests::RedisServer::start);
    let redis_url = redis
        .as_ref()
        .map(|r| r.url())
        .unwrap_or_else(cache_tests::redis_server_url);

    println!("| backend | endpoint | req/s | p50 ms | p99 ms | vs /users |");
    println!("|---|---|---:|---:|---:|---:|");
    for (backend, url) in [("memory", "memory://".to_string()), ("redis", redis_url)] {
        let cache = Cache::builder(&url)
            .prefix(format!("load-{}", std::process::id()))
            .build()
            .await?;
        cache_runtime::install(cache.clone());
        let db = app::open_database().await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let server = tokio::spawn(axum::serve(listener, app::router(db, cache)).into_future());
        let mut baseline = None;
        for path in PATHS {
            let url = format!("{base}{path}");
            hammer(url.clone(), Duration::from_millis(500)).await; // warm up: fill caches, open connections
            let run = hammer(url, duration).await;
            let base_rps = *baseline.get_or_insert(run.rps());
            println!(
                "| {backend} | `{path}` | {:.0} | {:.2} | {:.2} | {:.1}x |",
                run.rps(),
                run.percentile(0.50),
                run.percentile(0.99),
                run.rps() / base_rps
            );
        }
        server.abort();
    }
    Ok(())
}
