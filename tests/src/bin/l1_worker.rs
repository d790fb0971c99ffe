//! One app instance of the L1 test: reads a cached value through its L1 for `SECONDS`, and
//! checks every read against what another process says it has invalidated.
//!
//! ```text
//! l1_worker REDIS_URL PREFIX SECONDS [PAUSE_MS]
//! ```
//! The value is `{PREFIX}:data` (an integer another process sets), cached by a
//! `#[cached_query]` tagged `data`. Before each read the worker reads `{PREFIX}:done`: the
//! other process sets it to `n` once its invalidation of the value `n - 1` has returned, so a
//! read that began after that must see at least `n`. `PAUSE_MS` (default 0) paces the reads.
//! Prints `reads R l1_hits H stale S`.

use std::time::{Duration, Instant};

use cache_runtime::{Cache, cached_query};

struct Ctx {
    conn: redis::aio::MultiplexedConnection,
    data: String,
}

#[cached_query(key = "l1_data", ttl = 300, tags = ["data"], skip(ctx), lease = false)]
async fn data(ctx: &Ctx) -> u64 {
    let mut conn = ctx.conn.clone();
    redis::cmd("GET")
        .arg(&ctx.data)
        .query_async::<Option<u64>>(&mut conn)
        .await
        .ok()
        .flatten()
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (url, prefix, seconds, pause) = match &args[..] {
        [_, url, prefix, seconds] => (url, prefix, seconds, 0),
        [_, url, prefix, seconds, pause] => {
            (url, prefix, seconds, pause.parse().expect("PAUSE_MS"))
        }
        _ => {
            eprintln!("usage: l1_worker REDIS_URL PREFIX SECONDS [PAUSE_MS]");
            std::process::exit(2);
        }
    };
    let pause = Duration::from_millis(pause);
    let cache = Cache::builder(url)
        .prefix(prefix.as_str())
        .timeout(Duration::from_secs(2))
        .l1(16 * 1024 * 1024)
        .l1_trust(Duration::from_millis(800))
        .build()
        .await
        .expect("cache");
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let ctx = Ctx {
        conn: conn.clone(),
        data: format!("{prefix}:data"),
    };
    let done_key = format!("{prefix}:done");
    let end = Instant::now() + Duration::from_secs_f64(seconds.parse().expect("SECONDS"));
    let (mut reads, mut stale) = (0u64, 0u64);
    cache_runtime::scope(cache.clone(), async {
        while Instant::now() < end {
            let done: Option<u64> = redis::cmd("GET")
                .arg(&done_key)
                .query_async(&mut conn)
                .await
                .unwrap();
            let seen = data(&ctx).await;
            reads += 1;
            if seen < done.unwrap_or(0) {
                stale += 1;
            }
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
    })
    .await;
    println!(
        "reads {reads} l1_hits {} stale {stale}",
        cache.stats().l1_hits
    );
}
