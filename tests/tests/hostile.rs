//! No panic is reachable from settings or from stored bytes: the largest durations a setter
//! accepts work, and a stored value's claims (its times, its decompressed size) are checked
//! before they are used; on both backends, through a real axum `Router` and a real
//! `redis-server`. (Random bytes of every kind: `decoder_untrusted.rs`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use cache_runtime::view::CacheLayer;
use cache_runtime::{Cache, cached_query, cached_view};
use cache_tests::{Backend, test_cache};
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

struct Env {
    cache: Cache,
}

impl Env {
    async fn memory(test: &str) -> Env {
        Env::on(Backend::Memory, test).await
    }
    async fn redis(test: &str) -> Env {
        Env::on(Backend::Redis, test).await
    }
    async fn cluster(test: &str) -> Env {
        Env::on(Backend::Cluster, test).await
    }
    async fn on(backend: Backend, test: &str) -> Env {
        let (cache, _) = test_cache(backend, test, |b| {
            b.default_ttl(Duration::MAX)
                .circuit_breaker(1, Duration::MAX)
                .max_value_size(MAX_VALUE)
                .compress_above(Some(1024))
        })
        .await;
        Env { cache }
    }
}

/// The largest value the test caches store.
const MAX_VALUE: usize = 64 * 1024;

#[cached_query(ttl = 18446744073709551615, skip(calls))]
async fn forever(calls: &AtomicUsize, x: u32) -> u32 {
    calls.fetch_add(1, SeqCst);
    x
}

#[cached_query(skip(calls))]
async fn default_ttl(calls: &AtomicUsize, x: u32) -> u32 {
    calls.fetch_add(1, SeqCst);
    x
}

#[cached_view(ttl = 18446744073709551615)]
async fn forever_page() -> &'static str {
    "forever"
}

async fn get_page(router: &Router, path: &str) -> (StatusCode, http::HeaderMap) {
    let request = Request::get(path)
        .header(header::HOST, "example.com")
        .body(Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    body.collect().await.unwrap();
    (parts.status, parts.headers)
}

cache_tests::on_both_backends!(
    huge_durations_never_panic,
    lz4_claims_past_the_largest_value_are_misses
);
cache_tests::on_cluster!(
    huge_durations_never_panic,
    lz4_claims_past_the_largest_value_are_misses
);

/// An lz4-compressed response whose prepended size claims more than the cache's largest
/// value (`max_value_size`, the most any write stored) is a miss: nothing is decompressed,
/// nothing of that size allocated. The bound is the largest value, not a multiple of it.
async fn lz4_claims_past_the_largest_value_are_misses(env: Env) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let layer = CacheLayer::new(Duration::from_secs(60)).cache(env.cache.clone());
    let router = Router::new()
        .route(
            "/big",
            get(move || {
                counted.fetch_add(1, SeqCst);
                async { "compressible ".repeat(4096) }
            }),
        )
        .layer(layer);
    get_page(&router, "/big").await;
    get_page(&router, "/big").await;
    assert_eq!(calls.load(SeqCst), 1, "a compressed page is a hit");
    // Its stored key, as the cache lays it out (on a cluster, with its bucket's hash tag).
    let key = cache_runtime::admin::keys(&env.cache, "layer", |_| {})
        .await
        .unwrap()[0]
        .key
        .clone();
    assert!(
        key.ends_with(":1:view:layer:GET:http://example.com/big"),
        "{key}"
    );
    let stored = env.cache.raw_get(&key).await.unwrap().expect("stored");
    assert_eq!(stored[4] & 1, 1, "stored lz4-compressed");
    // The same envelope, claiming one byte more than the largest value once decompressed.
    let deps = u16::from_le_bytes([stored[34], stored[35]]) as usize;
    let mut at = 44; // after the fixed header (envelope format 3)
    for _ in 0..deps {
        at += 10 + u16::from_le_bytes([stored[at], stored[at + 1]]) as usize;
    }
    let mut forged = stored.clone();
    let claim = u32::try_from(MAX_VALUE + 1).unwrap();
    forged[at..at + 4].copy_from_slice(&claim.to_le_bytes());
    // Written by another program, so under a fill id of its own: a process holding a local
    // copy of the page reads these bytes rather than serving its copy (see copies.rs).
    forged[36] ^= 0xff;
    env.cache.raw_set(&key, &forged, None).await.unwrap();
    get_page(&router, "/big").await;
    assert_eq!(calls.load(SeqCst), 2, "a miss");
    assert_eq!(env.cache.stats().decode_errors, 1);
}

async fn huge_durations_never_panic(env: Env) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let router = Router::new()
        .route(
            "/layer",
            get(move || {
                counted.fetch_add(1, SeqCst);
                async { "layer" }
            }),
        )
        .layer(CacheLayer::new(Duration::MAX).cache(env.cache.clone()))
        .route("/view", get(forever_page));
    cache_runtime::scope(env.cache.clone(), async {
        for path in ["/layer", "/layer", "/view", "/view"] {
            let (status, headers) = get_page(&router, path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert!(headers.contains_key(header::CACHE_CONTROL), "{path}");
            if let Some(expires) = headers.get(header::EXPIRES) {
                httpdate::parse_http_date(expires.to_str().unwrap()).expect("a valid date");
            }
        }
        assert_eq!(calls.load(SeqCst), 1, "the layer's second GET was a hit");
        let queries = AtomicUsize::new(0);
        for _ in 0..2 {
            assert_eq!(forever(&queries, 7).await, 7);
            assert_eq!(default_ttl(&queries, 8).await, 8);
        }
        assert_eq!(queries.load(SeqCst), 2, "second calls were hits");
        env.cache.set("k", &1u8, Some(Duration::MAX)).await.unwrap();
        assert_eq!(env.cache.get::<u8>("k").await.unwrap(), Some(1));
    })
    .await;
    assert_eq!(
        env.cache.stats().backend_errors,
        0,
        "{:?}",
        env.cache.stats()
    );
}
