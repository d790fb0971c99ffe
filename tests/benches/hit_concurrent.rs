//! Concurrent cache hits: 32 tokio tasks on one 2-worker multi-thread runtime call one
//! cached function as fast as they can, for a fixed time. Our `#[cached_query]` beside the
//! `cached` crate (4.x) and hand-written redis-rs `GET` + `rmp_serde` decodes of the same
//! 700 `User` rows, in one run, rounds interleaved.
//!
//! ```text
//! cargo bench -p cache-tests --bench hit_concurrent
//! cargo bench -p cache-tests --bench hit_concurrent -- "(a)"    # only names holding "(a)"
//! ```
//! Variants on Redis (a private `redis-server`, or `CACHE_TEST_REDIS_URL`):
//! - (a) ours: `#[cached_query]` hit, default settings but lz4 off (the other variants do
//!   not compress either): with local copies, a hit reads the value's header and
//!   generations, and hands out a clone of the value decoded once per copy (`User` is
//!   `Clone`);
//! - (a0) ours with local copies off (`local_copies(0)`): a hit reads the whole value;
//! - (a+lz4) ours with the `lz4` feature's default threshold (16 KiB), for reference;
//! - (b) the `cached` crate: `#[concurrent_cached]` with its `AsyncRedisCache` store, built in
//!   a `create` block as its docs show (positional MessagePack, multiplexed connection);
//! - (c) hand: `GET` through a redis-rs `ConnectionManager` + `rmp_serde::from_slice` of
//!   `rmp_serde::to_vec` bytes (positional);
//! - (d) hand, named: the same with `to_vec_named` bytes (field names, what (a) stores for
//!   a type that cannot be read positionally).
//!
//! - (e) ours with an L1 (`CacheBuilder::l1`): the stored bytes kept in this process,
//!   decoded once, a clone handed out on every hit;
//! - (f) ours with an L1, the function returning `Arc<Vec<User>>`: decoded once, every hit
//!   an `Arc` clone.
//! - (g) ours, no L1, the function returning `Arc<Vec<User>>`: every hit checks the local
//!   copy's header and generations in Redis, and hands out the `Arc` decoded once per copy.
//!
//! And in memory: our `memory://` hit (bytes in moka, a local copy decoded once and cloned
//! per hit) beside the `cached` crate's `#[cached]` (the value itself in a map, cloned on
//! every hit).
//!
//! Each round runs every variant for `ROUND` in turn, the order reversed every other
//! round so drift of the shared machine hits all alike; the tables give medians over the
//! rounds, and the ratio to (b) is the median of the per-round ratios. Beside wall-clock
//! figures, the CPU time this process and redis-server spent per call (from `/proc`): what
//! a hit costs, which other load on the machine disturbs far less than calls/s. Not a test: nothing
//! here asserts a timing. Under `cargo test` (no `--bench`) it makes a few calls of each
//! variant, checks they hit, and exits.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, cached_query};
use cached::AsyncRedisCache;
use cached::macros::{cached, concurrent_cached};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

const TASKS: usize = 32;
const WORKERS: usize = 2;
const ROUND: Duration = Duration::from_millis(1000);
const ROUNDS: usize = 9;
const TTL_SECS: u64 = 3600;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct User {
    id: i64,
    name: String,
    email: String,
    is_active: bool,
}

/// The seed app's 700 active users.
fn users() -> Vec<User> {
    (1..=1000)
        .filter(|id| id % 10 < 7)
        .map(|id| User {
            id,
            name: format!("user{id}"),
            email: format!("user{id}@example.com"),
            is_active: true,
        })
        .collect()
}

static REDIS_URL: OnceLock<String> = OnceLock::new();
static OUR_REDIS: OnceLock<Cache> = OnceLock::new();
static OUR_REDIS_LZ4: OnceLock<Cache> = OnceLock::new();
static OUR_UNCOPIED: OnceLock<Cache> = OnceLock::new();
static OUR_MEMORY: OnceLock<Cache> = OnceLock::new();
static OUR_L1: OnceLock<Cache> = OnceLock::new();

fn our_redis() -> Cache {
    OUR_REDIS.get().expect("built in main").clone()
}
fn our_redis_lz4() -> Cache {
    OUR_REDIS_LZ4.get().expect("built in main").clone()
}
fn our_uncopied() -> Cache {
    OUR_UNCOPIED.get().expect("built in main").clone()
}
fn our_memory() -> Cache {
    OUR_MEMORY.get().expect("built in main").clone()
}
fn our_l1() -> Cache {
    OUR_L1.get().expect("built in main").clone()
}

// (a), (a+lz4) and ours in memory: one function each, naming its cache.
#[cached_query(key = "bench_users", ttl = 3600, cache = our_redis)]
async fn ours_redis() -> Vec<User> {
    users()
}
#[cached_query(key = "bench_users", ttl = 3600, cache = our_redis_lz4)]
async fn ours_redis_lz4() -> Vec<User> {
    users()
}
#[cached_query(key = "bench_users_arc", ttl = 3600, cache = our_redis)]
async fn ours_redis_arc() -> Arc<Vec<User>> {
    Arc::new(users())
}
#[cached_query(key = "bench_users", ttl = 3600, cache = our_uncopied)]
async fn ours_uncopied() -> Vec<User> {
    users()
}
#[cached_query(key = "bench_users", ttl = 3600, cache = our_memory)]
async fn ours_memory() -> Vec<User> {
    users()
}
#[cached_query(key = "bench_users", ttl = 3600, cache = our_l1)]
async fn ours_l1() -> Vec<User> {
    users()
}
#[cached_query(key = "bench_users_arc", ttl = 3600, cache = our_l1)]
async fn ours_l1_arc() -> Arc<Vec<User>> {
    Arc::new(users())
}

// (b) The `cached` crate's Redis store. Its Redis values must come from a `Result` function;
// a function without arguments gets a constant key through `key`/`convert`.
#[concurrent_cached(
    ty = "AsyncRedisCache<String, Vec<User>>",
    create = r#"{
        AsyncRedisCache::builder(format!("bench-users-{}", std::process::id()))
            .ttl_secs(TTL_SECS)
            .connection_string(REDIS_URL.get().expect("set in main"))
            .build()
            .await
            .expect("the cached crate's Redis store")
    }"#,
    key = "String",
    convert = r#"{ String::from("users") }"#,
    map_error = r#"|e| format!("{e:?}")"#
)]
async fn cached_crate_redis() -> Result<Vec<User>, String> {
    Ok(users())
}

// The `cached` crate's in-memory `#[cached]`.
#[cached(ttl_secs = 3600)]
async fn cached_crate_memory() -> Vec<User> {
    users()
}

/// (c) and (d): `GET` + `rmp_serde` decode (positional and named bytes decode alike).
async fn hand_get(conn: &ConnectionManager, key: &str) -> Vec<User> {
    let bytes: Vec<u8> = redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn.clone())
        .await
        .expect("GET");
    rmp_serde::from_slice(&bytes).expect("MessagePack of 700 users")
}

/// The rows a call returns: its own, or a clone of a shared `Arc`.
enum Rows {
    Owned(Vec<User>),
    Shared(Arc<Vec<User>>),
}

impl std::ops::Deref for Rows {
    type Target = [User];
    fn deref(&self) -> &[User] {
        match self {
            Rows::Owned(rows) => rows,
            Rows::Shared(rows) => rows,
        }
    }
}

impl From<Vec<User>> for Rows {
    fn from(rows: Vec<User>) -> Rows {
        Rows::Owned(rows)
    }
}

impl From<Arc<Vec<User>>> for Rows {
    fn from(rows: Arc<Vec<User>>) -> Rows {
        Rows::Shared(rows)
    }
}

type Call = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Rows> + Send>> + Send + Sync>;

fn call<F, Fut, R>(f: F) -> Call
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: Into<Rows>,
{
    Arc::new(move || {
        let fut = f();
        Box::pin(async move { fut.await.into() })
    })
}

struct Variant {
    name: &'static str,
    backend: &'static str,
    call: Call,
    /// Bytes of the stored value, as Redis or the cache counts them.
    stored: String,
}

/// One round of one variant.
#[derive(Clone, Copy, Debug)]
struct Sample {
    calls: usize,
    calls_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    /// CPU µs per call of this process (the 2 workers) and of redis-server.
    cpu_us: f64,
    redis_cpu_us: f64,
}

/// `TASKS` tasks call `call` until `limit` runs out (a time, or a number of calls each
/// under `cargo test`), each yielding to the others between calls. Latencies are per call.
async fn hammer(call: &Call, limit: Limit) -> Sample {
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(4096);
                let mut n = 0;
                while match limit {
                    Limit::Time(d) => start.elapsed() < d,
                    Limit::Calls(max) => n < max,
                } {
                    let t = Instant::now();
                    std::hint::black_box(call().await);
                    latencies.push(t.elapsed().as_nanos() as u64);
                    n += 1;
                    // As a server's request task ends after one call: without this, a
                    // variant that never awaits anything pending (an in-process hit) holds
                    // its worker for the whole round, and one that does (tokio's coop
                    // budget) has other tasks' turns counted in its latencies.
                    tokio::task::yield_now().await;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("bench task"));
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize] as f64 / 1e3;
    Sample {
        calls: latencies.len(),
        calls_per_s: latencies.len() as f64 / elapsed,
        p50_us: at(0.50),
        p99_us: at(0.99),
        cpu_us: 0.0,
        redis_cpu_us: 0.0,
    }
}

/// [`hammer`], with the CPU time this process and redis-server spent on it, per call.
async fn measure(call: &Call, limit: Limit, redis_pid: Option<u32>) -> Sample {
    let me = std::process::id();
    let cpu = |pid: Option<u32>| pid.and_then(cache_tests::cpu_time).unwrap_or_default();
    let (own, redis) = (cpu(Some(me)), cpu(redis_pid));
    let mut sample = hammer(call, limit).await;
    let per_call = |before: Duration, after: Duration| {
        after.saturating_sub(before).as_secs_f64() * 1e6 / sample.calls as f64
    };
    sample.cpu_us = per_call(own, cpu(Some(me)));
    sample.redis_cpu_us = per_call(redis, cpu(redis_pid));
    sample
}

#[derive(Clone, Copy)]
enum Limit {
    Time(Duration),
    Calls(usize),
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The length of the largest string value under keys matching `pattern`: the stored entry
/// (the other keys of a prefix are small generation counters).
async fn stored_bytes(conn: &ConnectionManager, pattern: &str) -> usize {
    let mut conn = conn.clone();
    let keys: Vec<String> = {
        let mut iter: redis::AsyncIter<String> =
            redis::AsyncCommands::scan_match(&mut conn, pattern)
                .await
                .expect("SCAN");
        let mut keys = Vec::new();
        while let Some(key) = iter.next_item().await {
            keys.push(key.expect("SCAN key"));
        }
        keys
    };
    let mut largest = 0;
    for key in keys {
        let len: usize = redis::cmd("STRLEN")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap_or(0);
        largest = largest.max(len);
    }
    assert!(largest > 0, "no value stored under {pattern}");
    largest
}

/// Builds the variants, fills every cache and checks each call returns the rows from a hit.
async fn variants(redis_url: &str, prefix: &str) -> Vec<Variant> {
    let build = |url: &str, prefix: String, lz4: bool| {
        let builder = Cache::builder(url)
            .prefix(prefix)
            .timeout(Duration::from_secs(2));
        if lz4 {
            builder.build()
        } else {
            builder.compress_above(None).build()
        }
    };
    let ours = build(redis_url, format!("{prefix}-ours"), false)
        .await
        .unwrap();
    let ours_lz4 = build(redis_url, format!("{prefix}-lz4"), true)
        .await
        .unwrap();
    let uncopied = Cache::builder(redis_url)
        .prefix(format!("{prefix}-uncopied"))
        .timeout(Duration::from_secs(2))
        .compress_above(None)
        .local_copies(0)
        .build()
        .await
        .unwrap();
    let memory = build("memory://", format!("{prefix}-mem"), false)
        .await
        .unwrap();
    let l1 = Cache::builder(redis_url)
        .prefix(format!("{prefix}-l1"))
        .timeout(Duration::from_secs(2))
        .compress_above(None)
        .l1(64 * 1024 * 1024)
        .build()
        .await
        .unwrap();
    let _ = OUR_L1.set(l1.clone());
    let _ = OUR_REDIS.set(ours.clone());
    let _ = OUR_REDIS_LZ4.set(ours_lz4.clone());
    let _ = OUR_UNCOPIED.set(uncopied.clone());
    let _ = OUR_MEMORY.set(memory.clone());

    let conn = ConnectionManager::new(redis::Client::open(redis_url).unwrap())
        .await
        .unwrap();
    let positional = format!("{prefix}-hand:positional");
    let named = format!("{prefix}-hand:named");
    for (key, bytes) in [
        (&positional, rmp_serde::to_vec(&users()).unwrap()),
        (&named, rmp_serde::to_vec_named(&users()).unwrap()),
    ] {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(bytes)
            .query_async(&mut conn.clone())
            .await
            .unwrap();
    }

    // Fill, then check that a second call is a hit that returns the same rows.
    let expected = users();
    for (cache, f) in [
        (&ours, call(ours_redis)),
        (&ours_lz4, call(ours_redis_lz4)),
        (&uncopied, call(ours_uncopied)),
        (&memory, call(ours_memory)),
    ] {
        assert_eq!(*f().await, expected);
        let fills = cache.stats().fills;
        assert_eq!(*f().await, expected);
        assert_eq!(cache.stats().fills, fills, "the timed path must be a hit");
        assert_eq!(cache.stats().hits, 1);
    }
    // The L1 variants: filled, then hits served by the L1 once the instance trusts it.
    for f in [call(ours_l1), call(ours_l1_arc)] {
        assert_eq!(*f().await, expected);
        let (fills, started) = (l1.stats().fills, Instant::now());
        let before = l1.stats().l1_hits;
        while l1.stats().l1_hits == before {
            assert!(started.elapsed() < Duration::from_secs(5), "no L1 hit");
            assert_eq!(*f().await, expected);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(l1.stats().fills, fills, "the timed path must be a hit");
    }
    let (a, b) = (ours_l1_arc().await, ours_l1_arc().await);
    assert!(Arc::ptr_eq(&a, &b), "(f) hands out one allocation");
    assert_eq!(*ours_redis_arc().await, expected); // the fill
    let (a, b) = (ours_redis_arc().await, ours_redis_arc().await);
    assert!(Arc::ptr_eq(&a, &b), "(g) hands out one allocation");
    assert_eq!(cached_crate_redis().await.unwrap(), expected);
    assert_eq!(cached_crate_memory().await, expected);
    // The cached crate offers no hit counter here: its prefix holds one entry after the
    // first call, and every later call reads it (the body would not change the bytes).

    let c = |pattern: String| {
        let conn = conn.clone();
        async move { stored_bytes(&conn, &pattern).await.to_string() }
    };
    let hand = |key: &str| {
        let (conn, key) = (conn.clone(), Arc::<str>::from(key));
        call(move || {
            let (conn, key) = (conn.clone(), key.clone());
            async move { hand_get(&conn, &key).await }
        })
    };
    vec![
        Variant {
            name: "(a) ours `#[cached_query]`",
            backend: "redis",
            call: call(ours_redis),
            stored: c(format!("{prefix}-ours*")).await,
        },
        Variant {
            name: "(a0) ours, local copies off",
            backend: "redis",
            call: call(ours_uncopied),
            stored: c(format!("{prefix}-uncopied*")).await,
        },
        Variant {
            name: "(a+lz4) ours, lz4 above 16 KiB",
            backend: "redis",
            call: call(ours_redis_lz4),
            stored: c(format!("{prefix}-lz4*")).await,
        },
        Variant {
            name: "(b) `cached` `AsyncRedisCache`",
            backend: "redis",
            call: call(|| async { cached_crate_redis().await.unwrap() }),
            stored: c(format!("*bench-users-{}*", std::process::id())).await,
        },
        Variant {
            name: "(c) hand `GET` + `rmp_serde` positional",
            backend: "redis",
            call: hand(&positional),
            stored: c(positional.clone()).await,
        },
        Variant {
            name: "(d) hand `GET` + `rmp_serde` named",
            backend: "redis",
            call: hand(&named),
            stored: c(named.clone()).await,
        },
        Variant {
            name: "(e) ours, L1 (decoded once, cloned per hit)",
            backend: "redis",
            call: call(ours_l1),
            stored: c(format!("{prefix}-l1:1:bench_users")).await,
        },
        Variant {
            name: "(f) ours, L1, `Arc<Vec<User>>` (decoded once)",
            backend: "redis",
            call: call(ours_l1_arc),
            stored: c(format!("{prefix}-l1:1:bench_users_arc")).await,
        },
        Variant {
            name: "(g) ours, `Arc<Vec<User>>` on local copies (decoded once per copy)",
            backend: "redis",
            call: call(ours_redis_arc),
            stored: c(format!("{prefix}-ours:1:bench_users_arc")).await,
        },
        Variant {
            name: "ours `#[cached_query]`, `memory://`",
            backend: "memory",
            call: call(ours_memory),
            stored: memory.stats().bytes_written.to_string(),
        },
        Variant {
            name: "`cached` `#[cached]` (in-process map)",
            backend: "memory",
            call: call(cached_crate_memory),
            stored: "the value (cloned per hit)".into(),
        },
    ]
}

/// `cargo bench` passes `--bench`; `cargo test` runs the bench binary without it.
fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn main() {
    let server = std::env::var(cache_tests::REDIS_URL_ENV)
        .is_err()
        .then(cache_tests::RedisServer::start);
    let redis_url = server
        .as_ref()
        .map(|s| s.url())
        .unwrap_or_else(cache_tests::redis_server_url);
    REDIS_URL.set(redis_url.clone()).unwrap();
    let redis_pid = server.as_ref().and_then(|s| s.pid());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .unwrap();
    let prefix = cache_tests::unique_prefix("hit_concurrent");
    // `cargo bench ... -- TEXT` keeps the variants whose name holds TEXT (to profile one).
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let variants: Vec<Variant> = rt
        .block_on(variants(&redis_url, &prefix))
        .into_iter()
        .filter(|v| filter.as_ref().is_none_or(|f| v.name.contains(f.as_str())))
        .collect();

    let (rounds, limit) = if measuring() {
        (ROUNDS, Limit::Time(ROUND))
    } else {
        (1, Limit::Calls(2))
    };
    // samples[variant][round]
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); variants.len()];
    rt.block_on(async {
        for v in &variants {
            hammer(&v.call, Limit::Calls(if measuring() { 50 } else { 1 })).await; // warm up
        }
        for round in 0..rounds {
            let mut order: Vec<usize> = (0..variants.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for i in order {
                samples[i].push(measure(&variants[i].call, limit, redis_pid).await);
            }
        }
    });
    if !measuring() {
        println!("hit_concurrent: every variant hit (run with `cargo bench` to measure)");
        return;
    }

    println!(
        "\n## hit_concurrent: {TASKS} tasks, {WORKERS} workers, {ROUNDS} rounds of {} ms per \
         variant, medians\n",
        ROUND.as_millis()
    );
    println!("```sh\ncargo bench -p cache-tests --bench hit_concurrent\n```\n");
    for backend in ["redis", "memory"] {
        // The reference: (b) on Redis, the cached crate's `#[cached]` in memory.
        if !variants.iter().any(|v| v.backend == backend) {
            continue;
        }
        let reference = variants
            .iter()
            .position(|v| v.backend == backend && v.name.contains("`cached`"));
        println!(
            "| {backend} | calls/s | p50 µs | p99 µs | CPU µs/call | Redis CPU µs/call | \
             bytes stored | calls/s vs `cached` | CPU vs `cached` |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (v, s) in variants.iter().zip(&samples) {
            if v.backend != backend {
                continue;
            }
            let ratio = |f: fn(&Sample) -> f64| match reference {
                Some(r) => format!(
                    "{:.3}",
                    median(
                        s.iter()
                            .zip(&samples[r])
                            .map(|(a, b)| f(a) / f(b))
                            .collect()
                    )
                ),
                None => "-".into(),
            };
            let med = |f: fn(&Sample) -> f64| median(s.iter().map(f).collect());
            println!(
                "| {} | {:.0} | {:.0} | {:.0} | {:.1} | {} | {} | {} | {} |",
                v.name,
                med(|x| x.calls_per_s),
                med(|x| x.p50_us),
                med(|x| x.p99_us),
                med(|x| x.cpu_us),
                if backend == "redis" && redis_pid.is_some() {
                    format!("{:.1}", med(|x| x.redis_cpu_us))
                } else {
                    "-".into()
                },
                v.stored,
                ratio(|x| x.calls_per_s),
                ratio(|x| x.cpu_us),
            );
        }
        println!();
    }
}
