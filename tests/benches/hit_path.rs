//! The cost of a cache hit through `#[cached_query]`, beside a hand-written redis-rs
//! `GET` + decode of the same payload with the same codec, for every codec, in one run.
//!
//! ```text
//! cargo bench -p cache-tests --bench hit_path
//! ```
//! The value is 700 `User` rows (the seed app's active users). The bench starts its own
//! `redis-server` (or uses `CACHE_TEST_REDIS_URL`) and prints a ratio table at the end.

use std::time::Duration;

use cache_runtime::codec::{Bincode, Codec, Json, MsgPack, Postcard};
use cache_runtime::{Cache, cached_query};
use criterion::Criterion;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct User {
    id: i64,
    name: String,
    email: String,
    is_active: bool,
}

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

#[cached_query(key = "bench_users_msgpack", ttl = 3600, codec = msgpack)]
async fn users_msgpack() -> Vec<User> {
    users()
}
#[cached_query(key = "bench_users_postcard", ttl = 3600, codec = postcard)]
async fn users_postcard() -> Vec<User> {
    users()
}
#[cached_query(key = "bench_users_bincode", ttl = 3600, codec = bincode)]
async fn users_bincode() -> Vec<User> {
    users()
}
#[cached_query(key = "bench_users_json", ttl = 3600, codec = json)]
async fn users_json() -> Vec<User> {
    users()
}

/// Hand-written hit path: `GET` the raw codec payload and decode it.
async fn hand_get<C: Codec>(conn: &ConnectionManager, key: &str) -> Vec<User> {
    let bytes: Vec<u8> = redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn.clone())
        .await
        .unwrap();
    C::decode(&bytes).unwrap()
}

/// Macro hit vs hand-written GET + decode, interleaved: rounds of `n` calls of each,
/// alternating which goes first, so drift (frequency, the other core, Redis) hits both
/// alike. Returns the median per-round ratio and the mean times in µs.
async fn paired<A, B, FA, FB>(mut macro_path: A, mut hand_path: B) -> (f64, f64, f64)
where
    A: FnMut() -> FA,
    B: FnMut() -> FB,
    FA: Future<Output = Vec<User>>,
    FB: Future<Output = Vec<User>>,
{
    const ROUNDS: usize = 41;
    const N: u32 = 100;
    let (mut ratios, mut total_macro, mut total_hand) = (Vec::new(), 0.0, 0.0);
    for round in 0..ROUNDS {
        let mut time_macro = 0.0;
        let mut time_hand = 0.0;
        for first in [round % 2 == 0, round % 2 != 0] {
            let start = std::time::Instant::now();
            for _ in 0..N {
                if first {
                    std::hint::black_box(macro_path().await);
                } else {
                    std::hint::black_box(hand_path().await);
                }
            }
            let took = start.elapsed().as_secs_f64() / f64::from(N) * 1e6;
            if first {
                time_macro = took
            } else {
                time_hand = took
            }
        }
        ratios.push(time_macro / time_hand);
        total_macro += time_macro;
        total_hand += time_hand;
    }
    ratios.sort_by(f64::total_cmp);
    (
        ratios[ROUNDS / 2],
        total_macro / ROUNDS as f64,
        total_hand / ROUNDS as f64,
    )
}

macro_rules! codec_benches {
    ($c:expr, $rt:expr, $backend:expr, $conn:expr, $($name:literal => $codec:ty, $f:ident;)*) => {$(
        // Fill, then check the cached function really hits (no body run) before timing it.
        assert_eq!($rt.block_on($f()).len(), 700);
        let cache = cache_runtime::current().unwrap();
        let fills = cache.stats().fills;
        $rt.block_on($f());
        assert_eq!(cache.stats().fills, fills, "the timed path must be a hit");
        $c.bench_function(&format!("hit_path/{}/macro/{}", $backend, $name), |b| {
            b.to_async($rt).iter(|| $f())
        });
        if let Some(conn) = $conn {
            let mut payload = Vec::new();
            <$codec as Codec>::encode(&users(), &mut payload).unwrap();
            let key = format!("hand:{}", $name);
            $rt.block_on(async {
                let _: () = redis::cmd("SET").arg(&key).arg(payload).query_async(&mut conn.clone()).await.unwrap();
            });
            $c.bench_function(&format!("hit_path/{}/hand/{}", $backend, $name), |b| {
                b.to_async($rt).iter(|| hand_get::<$codec>(conn, &key))
            });
            if measuring() {
                let (ratio, mac, hand) = $rt.block_on(paired($f, || hand_get::<$codec>(conn, &key)));
                println!("PAIRED {} macro {mac:.1} µs, hand {hand:.1} µs, median ratio {ratio:.3}", $name);
            }
        }
    )*};
}

fn benches(c: &mut Criterion, rt: &tokio::runtime::Runtime, redis_url: &str) {
    for backend in ["memory", "redis"] {
        let url = if backend == "memory" {
            "memory://"
        } else {
            redis_url
        };
        let cache = rt
            .block_on(
                Cache::builder(url)
                    .prefix("bench")
                    .timeout(Duration::from_secs(1))
                    // Compared uncompressed with the hand-written path; lz4 is measured below.
                    .compress_above(None)
                    .build(),
            )
            .unwrap();
        cache_runtime::install(cache);
        let conn = (backend == "redis").then(|| {
            rt.block_on(ConnectionManager::new(
                redis::Client::open(redis_url).unwrap(),
            ))
            .unwrap()
        });
        let conn = conn.as_ref();
        codec_benches!(c, rt, backend, conn,
            "msgpack" => MsgPack, users_msgpack;
            "postcard" => Postcard, users_postcard;
            "bincode" => Bincode, users_bincode;
            "json" => Json, users_json;
        );
        // The same MessagePack hit with lz4 compression (the `lz4` feature's default 16 KiB
        // threshold): what decompression costs, against what it saves in memory and transfer.
        let lz4 = rt
            .block_on(
                Cache::builder(url)
                    .prefix("bench-lz4")
                    .timeout(Duration::from_secs(1))
                    .build(),
            )
            .unwrap();
        rt.block_on(cache_runtime::scope(lz4.clone(), users_msgpack()));
        c.bench_function(&format!("hit_path/{backend}/macro-lz4/msgpack"), |b| {
            b.to_async(rt)
                .iter(|| cache_runtime::scope(lz4.clone(), users_msgpack()))
        });
        if measuring() {
            println!(
                "LZ4 {backend}: {} bytes stored compressed",
                lz4.stats().bytes_written
            );
        }
    }
}

/// Time per iteration of a finished benchmark, from criterion's saved estimates (the slope
/// of its linear fit, which is what criterion prints, else the mean).
fn mean_ns(id: &str) -> Option<f64> {
    let dir = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| format!("{}/../target", env!("CARGO_MANIFEST_DIR")));
    let path = format!(
        "{dir}/criterion/{}/new/estimates.json",
        id.replace('/', "_")
    );
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["slope"]["point_estimate"]
        .as_f64()
        .or_else(|| json["mean"]["point_estimate"].as_f64())
}

fn print_ratios() {
    for backend in ["memory", "redis"] {
        if let (Some(plain), Some(lz4)) = (
            mean_ns(&format!("hit_path/{backend}/macro/msgpack")),
            mean_ns(&format!("hit_path/{backend}/macro-lz4/msgpack")),
        ) {
            println!(
                "{backend}: msgpack hit {:.1} µs, with lz4 {:.1} µs",
                plain / 1e3,
                lz4 / 1e3
            );
        }
    }
    println!(
        "\n{:<10} {:>14} {:>14} {:>14} {:>10}",
        "codec", "memory macro", "redis macro", "redis hand", "macro/hand"
    );
    for codec in ["msgpack", "postcard", "bincode", "json"] {
        let get = |b: &str, p: &str| mean_ns(&format!("hit_path/{b}/{p}/{codec}"));
        let (Some(mem), Some(mac), Some(hand)) = (
            get("memory", "macro"),
            get("redis", "macro"),
            get("redis", "hand"),
        ) else {
            continue;
        };
        println!(
            "{codec:<10} {:>11.1} µs {:>11.1} µs {:>11.1} µs {:>10.3}",
            mem / 1e3,
            mac / 1e3,
            hand / 1e3,
            mac / hand
        );
    }
}

/// `cargo bench` passes `--bench`; `cargo test` runs each benchmark once without it.
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
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    benches(&mut c, &rt, &redis_url);
    c.final_summary();
    // `cargo test` runs benches once without measuring; only `cargo bench` has numbers.
    if measuring() {
        print_ratios();
    }
}
