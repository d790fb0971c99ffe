//! The way users share one cache across a test suite: `install`ed once, by whichever
//! `#[tokio::test]` runs first, inside that test's own runtime, then used by every other
//! test, each on a runtime of its own, while the runtime that built it is long gone.
//! (On Redis: that is where a connection could die with the runtime that opened it.)

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use cache_runtime::{Cache, cached_query};
use tokio::sync::OnceCell;

static INSTALLED: OnceCell<Cache> = OnceCell::const_new();

async fn cache() -> &'static Cache {
    INSTALLED
        .get_or_init(|| async {
            let url = cache_tests::redis_server_url();
            // A long timeout, as in every suite: a loaded CI machine must not turn slow
            // answers into counted errors.
            let mut builder = Cache::builder(&url)
                .prefix(cache_tests::unique_prefix("shared"))
                .timeout(std::time::Duration::from_secs(2));
            if cache_tests::with_l1() {
                // Its subscriber and heartbeat must outlive this runtime too.
                builder = builder.l1(1 << 20);
            }
            let cache = builder.build().await.unwrap();
            cache_runtime::install(cache.clone());
            cache
        })
        .await
}

static CALLS: [AtomicUsize; 8] = [const { AtomicUsize::new(0) }; 8];

#[cached_query(key = "shared:{n}", tags = ["shared:{n}"])]
async fn square(n: usize) -> usize {
    CALLS[n].fetch_add(1, SeqCst);
    n * n
}

/// Each test owns one `n`: a miss, a hit, an invalidation, a miss, a hit.
async fn case(n: usize) {
    let cache = cache().await;
    for _ in 0..2 {
        assert_eq!(square(n).await, n * n);
    }
    assert_eq!(CALLS[n].load(SeqCst), 1, "test {n}: a hit ran the body");
    cache.invalidate_tag(&format!("shared:{n}")).await.unwrap();
    for _ in 0..2 {
        assert_eq!(square(n).await, n * n);
    }
    assert_eq!(
        CALLS[n].load(SeqCst),
        2,
        "test {n}: the invalidation or the hit after it failed"
    );
    assert_eq!(cache.stats().backend_errors, 0, "{:?}", cache.stats());
}

#[tokio::test]
async fn shared_0() {
    case(0).await
}
#[tokio::test]
async fn shared_1() {
    case(1).await
}
#[tokio::test]
async fn shared_2() {
    case(2).await
}
#[tokio::test]
async fn shared_3() {
    case(3).await
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_4() {
    case(4).await
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_5() {
    case(5).await
}
#[tokio::test]
async fn shared_6() {
    case(6).await
}
#[tokio::test]
async fn shared_7() {
    case(7).await
}
