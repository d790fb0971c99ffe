//! A scanner at the door: thousands of distinct junk URLs through a `CacheLayer` over a
//! real axum `Router` (404s, pages, a cached query with an interpolated tag) against a
//! real `redis-server`. Every key the cache creates on their behalf expires and is bounded
//! in length, so Redis's key count and memory go back down by themselves.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::routing::get;
use cache_runtime::view::CacheLayer;
use cache_runtime::{Cache, cached_query};
use cache_tests::{RedisServer, raw_connection, redis_info};
use futures::StreamExt;
use http::{Request, header};
use tower::ServiceExt;

/// Junk URLs sent.
const REQUESTS: usize = 3000;
/// The layer's ttl: short, so the test sees everything expire.
const TTL: Duration = Duration::from_secs(1);

static QUERIES: AtomicUsize = AtomicUsize::new(0);

#[cached_query(key = "user:{id}", ttl = 1, tags = ["users", "user:{id}"])]
async fn user(id: String) -> String {
    QUERIES.fetch_add(1, SeqCst);
    format!("user {id}")
}

async fn user_page(Path(id): Path<String>) -> String {
    user(id).await
}

/// The junk URL number `i`: what scanners send (probes for well-known files, random ids,
/// tracking parameters, long and percent-encoded paths).
fn junk(i: usize) -> String {
    match i % 5 {
        0 => format!("/wp-admin/setup-{i}.php?step={i}"),
        1 => format!("/users/{i}?utm_source=scan&utm_campaign={i}"),
        2 => format!("/items/{i}/{}", "a".repeat(2000)),
        3 => format!("/%2e%2e/%2e%2e/etc/passwd?{i}=%00"),
        _ => format!("/?q={i}&page={}", i * 7),
    }
}

/// Every key in the server with its remaining life in ms (`-1`: none, `-2`: expired since
/// the scan found it).
async fn keys_and_ttls(url: &str) -> Vec<(String, i64)> {
    let mut conn = raw_connection(url).await;
    let mut cursor = 0u64;
    let mut out = Vec::new();
    loop {
        let (next, keys): (u64, Vec<String>) = ::redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        for key in keys {
            let ttl: i64 = ::redis::cmd("PTTL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            out.push((key, ttl));
        }
        if next == 0 {
            return out;
        }
        cursor = next;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_urls_leave_nothing_behind() {
    let server = RedisServer::start();
    let url = server.url();
    let cache = Cache::builder(&url)
        .prefix("scan")
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    let router = Router::new()
        .route("/", get(|| async { "home" }))
        .route("/users/{id}", get(user_page))
        .route("/items/{*rest}", get(|| async { "item" }))
        .layer(CacheLayer::new(TTL).cache(cache.clone()));
    let memory_before = redis_info(&url, "all", "used_memory").await;

    let started = Instant::now();
    futures::stream::iter(0..REQUESTS)
        .map(|i| {
            let router = router.clone();
            let cache = cache.clone();
            async move {
                let request = Request::get(junk(i))
                    .header(header::HOST, "example.com")
                    .header(header::USER_AGENT, "Mozilla/5.0 zgrab/0.x")
                    .body(Body::empty())
                    .unwrap();
                cache_runtime::scope(cache, router.oneshot(request))
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<()>()
        .await;
    let sending = started.elapsed();
    let stats = cache.stats();
    assert_eq!(stats.backend_errors, 0, "{stats:?}");
    assert!(
        stats.fills >= (REQUESTS / 5) as u64,
        "pages were stored: {stats:?}"
    );
    assert!(QUERIES.load(SeqCst) >= REQUESTS / 5);

    // Everything it created expires, except the counters named by the code alone.
    let keys = keys_and_ttls(&url).await;
    // Those of the first requests may have expired already on a slow machine: count them.
    let expired = redis_info(&url, "all", "expired_keys").await;
    assert!(
        keys.len() as u64 + expired > REQUESTS as u64,
        "{} keys, {expired} expired",
        keys.len()
    );
    let forever: Vec<&String> = keys
        .iter()
        .filter(|(_, t)| *t == -1)
        .map(|(k, _)| k)
        .collect();
    let mut names: Vec<&str> = forever.iter().map(|k| k.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "scan:gen:all",
            "scan:gen:q:scanner::user",
            "scan:gen:t:users",
            "scan:gen:v:layer"
        ],
        "only counters named by the code live until evicted"
    );
    for (key, ttl) in &keys {
        assert!(
            key.len() <= 5 + cache_runtime::key::MAX_KEY_LEN,
            "{} bytes: {key}",
            key.len()
        );
        assert!(
            *ttl <= 2 * TTL.as_millis() as i64 + 1000 || *ttl < 0,
            "{key}: {ttl} ms"
        );
    }
    let memory_peak = redis_info(&url, "all", "used_memory").await;
    assert!(
        memory_peak - memory_before < 32 << 20,
        "{} MiB for {REQUESTS} requests",
        (memory_peak - memory_before) >> 20
    );

    // And it goes: once the counters' life (twice the ttl) is over, only those are left.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut conn = raw_connection(&url).await;
        let n: u64 = ::redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
        if n == forever.len() as u64 {
            break;
        }
        assert!(Instant::now() < deadline, "{n} keys left");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let memory_after = redis_info(&url, "all", "used_memory").await;
    assert!(
        memory_after < memory_before + (1 << 20),
        "memory went back down: {memory_before} -> {memory_peak} -> {memory_after} bytes \
         ({REQUESTS} requests sent in {sending:?})"
    );
}

static REFRESHED: AtomicUsize = AtomicUsize::new(0);

#[cached_query(ttl = 1, tags = ["item:{id}"])]
async fn item(id: u32) -> u32 {
    REFRESHED.fetch_add(1, SeqCst);
    id
}

/// A counter created by one fill lives twice that value's ttl; a later fill that records
/// it makes it live twice its own ttl from then, so it outlives that value too (without the
/// refresh, the counter made at 0 s would be gone at 2 s and the value filled at 1.5 s
/// would be a miss at 2.2 s). On both backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_outlive_the_values_recording_them() {
    for backend in [cache_tests::Backend::Memory, cache_tests::Backend::Redis] {
        let (cache, url) = cache_tests::test_cache(backend, "refresh", |b| b).await;
        cache_runtime::scope(cache.clone(), async {
            let before = REFRESHED.load(SeqCst);
            item(1).await;
            tokio::time::sleep(Duration::from_millis(1500)).await;
            item(1).await; // expired: filled again, its counters refreshed
            assert_eq!(REFRESHED.load(SeqCst) - before, 2, "{backend:?}");
            if let Some(url) = &url {
                let mut conn = raw_connection(url).await;
                for name in ["e:1:scanner::item:1", "t:item:1"] {
                    let key = format!("{}:gen:{name}", cache.prefix());
                    let ttl: i64 = ::redis::cmd("PTTL")
                        .arg(&key)
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    assert!(ttl > 1500, "{key} lives 2 s from the second fill: {ttl} ms");
                }
            }
            tokio::time::sleep(Duration::from_millis(700)).await;
            item(1).await;
            assert_eq!(
                REFRESHED.load(SeqCst) - before,
                2,
                "{backend:?}: still a hit at 2.2 s"
            );
        })
        .await;
    }
}
