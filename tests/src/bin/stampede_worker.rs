//! One app process of the stampede test and bench: `clients` concurrent callers of one hot
//! cached key for `seconds`, each call pacing itself with a 1 ms pause, as requests do.
//!
//! ```text
//! stampede_worker REDIS_URL PREFIX MODE CLIENTS SECONDS
//! ```
//! MODE picks how the key is protected: `none` (hand-written `get` / `set`, no single-flight),
//! `flight` (single-flight in this process only: `lease = false`), `lease` (the default),
//! `early` (leases and XFetch, `early = 1.0`), `stale` (leases and `stale = 10`), `test` (leases,
//! `ttl = 1`, for the multi-process test). The body takes 50 ms and counts its runs in Redis
//! under `{PREFIX}:runs`, for every process to add to. Prints one line: `calls N hist
//! BUCKET:COUNT ...` (see [`bucket`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_runtime::{Cache, cached_query};

struct Ctx {
    conn: redis::aio::MultiplexedConnection,
    runs_key: String,
}

impl Ctx {
    async fn body(&self) -> u64 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut conn = self.conn.clone();
        redis::cmd("INCR")
            .arg(&self.runs_key)
            .query_async(&mut conn)
            .await
            .unwrap_or(0)
    }
}

#[cached_query(key = "hot", ttl = 2, tags = ["hot"], skip(ctx), lease = false)]
async fn hot_flight(ctx: &Ctx) -> u64 {
    ctx.body().await
}

#[cached_query(key = "hot", ttl = 2, tags = ["hot"], skip(ctx))]
async fn hot_lease(ctx: &Ctx) -> u64 {
    ctx.body().await
}

#[cached_query(key = "hot", ttl = 2, tags = ["hot"], skip(ctx), early = 1.0)]
async fn hot_early(ctx: &Ctx) -> u64 {
    ctx.body().await
}

#[cached_query(key = "hot", ttl = 2, tags = ["hot"], skip(ctx), stale = 10)]
async fn hot_stale(ctx: &Ctx) -> u64 {
    ctx.body().await
}

#[cached_query(key = "hot", ttl = 1, tags = ["hot"], skip(ctx))]
async fn hot_test(ctx: &Ctx) -> u64 {
    ctx.body().await
}

/// Cache-aside by hand, without any protection: what a stampede looks like.
async fn hot_none(cache: &Cache, ctx: &Ctx) -> u64 {
    if let Ok(Some(value)) = cache.get::<u64>("hot").await {
        return value;
    }
    let value = ctx.body().await;
    let _ = cache.set("hot", &value, Some(Duration::from_secs(2))).await;
    value
}

/// Latency histogram bucket of `us` microseconds: 5% wide (bucket `b` starts at 1.05^b µs).
pub fn bucket(us: u64) -> u32 {
    ((us.max(1) as f64).ln() / 1.05f64.ln()) as u32
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, prefix, mode, clients, seconds] = &args[..] else {
        eprintln!("usage: stampede_worker REDIS_URL PREFIX MODE CLIENTS SECONDS");
        std::process::exit(2);
    };
    let clients: usize = clients.parse().expect("CLIENTS");
    let run_for = Duration::from_secs_f64(seconds.parse().expect("SECONDS"));
    let cache = Cache::builder(url)
        .prefix(prefix.as_str())
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .expect("cache");
    cache_runtime::install(cache.clone());
    let conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let ctx = Arc::new(Ctx {
        conn,
        runs_key: format!("{prefix}:runs"),
    });
    let end = Instant::now() + run_for;
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (ctx, cache, mode) = (ctx.clone(), cache.clone(), mode.clone());
            tokio::spawn(async move {
                let mut hist = std::collections::BTreeMap::<u32, u64>::new();
                while Instant::now() < end {
                    let start = Instant::now();
                    match mode.as_str() {
                        "none" => hot_none(&cache, &ctx).await,
                        "flight" => hot_flight(&ctx).await,
                        "lease" => hot_lease(&ctx).await,
                        "early" => hot_early(&ctx).await,
                        "stale" => hot_stale(&ctx).await,
                        "test" => hot_test(&ctx).await,
                        other => panic!("unknown mode {other}"),
                    };
                    let us = start.elapsed().as_micros() as u64;
                    *hist.entry(bucket(us)).or_default() += 1;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                hist
            })
        })
        .collect();
    let mut total = std::collections::BTreeMap::<u32, u64>::new();
    for task in tasks {
        for (b, n) in task.await.unwrap() {
            *total.entry(b).or_default() += n;
        }
    }
    let calls: u64 = total.values().sum();
    let hist: Vec<String> = total.iter().map(|(b, n)| format!("{b}:{n}")).collect();
    println!("calls {calls} hist {}", hist.join(" "));
}
