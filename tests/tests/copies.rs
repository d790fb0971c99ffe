//! Local copies (`CacheBuilder::local_copies`, on by default). On Redis, a hit on a value
//! this process holds a copy of reads the value's header and its generations, not the
//! value; and whatever another process (another `Cache` on the same prefix) or another
//! program does to the value is seen on the very next call, as without copies. On
//! `memory://`, a hit on a copy reads nothing while nothing was written to the store since
//! the copy was found current; any write in between is seen on the next call.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};

use cache_runtime::{Cache, cached_query};
use cache_tests::{RedisServer, raw_connection, redis_info, unique_prefix};

async fn cache(server: &RedisServer, prefix: &str, copies: u64) -> Cache {
    Cache::builder(&server.url())
        .prefix(prefix)
        .local_copies(copies)
        .build()
        .await
        .unwrap()
}

/// Bytes Redis has sent to its clients so far.
async fn sent_by_redis(server: &RedisServer) -> u64 {
    redis_info(&server.url(), "stats", "total_net_output_bytes").await
}

static PAGE_RUNS: AtomicU32 = AtomicU32::new(0);

/// 60 KB that do not compress away.
#[cached_query(key = "big:{n}")]
async fn big(n: u32) -> Vec<u64> {
    PAGE_RUNS.fetch_add(1, SeqCst);
    (0..7_500u64)
        .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(n))
        .collect()
}

/// With copies, 20 hits of a 60 KB value cost Redis a few KB of replies; without, the
/// whole value every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_on_a_copy_does_not_read_the_value_again() {
    let server = RedisServer::start();
    for (copies, n) in [(1 << 20, 1), (0, 2)] {
        let cache = cache(&server, &unique_prefix("bytes"), copies).await;
        let expected = cache_runtime::scope(cache.clone(), big(n)).await;
        let before = sent_by_redis(&server).await;
        for _ in 0..20 {
            assert_eq!(cache_runtime::scope(cache.clone(), big(n)).await, expected);
        }
        let sent = sent_by_redis(&server).await - before;
        assert_eq!(cache.stats().hits, 20, "copies: {copies}");
        if copies > 0 {
            assert!(sent < 20 * 2_000, "{sent} bytes for 20 hits on copies");
        } else {
            assert!(
                sent > 20 * 60_000,
                "{sent} bytes for 20 hits without copies"
            );
        }
    }
}

static SHARED_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached_query(key = "shared", tags = ["shared"])]
async fn shared() -> u32 {
    SHARED_RUNS.fetch_add(1, SeqCst) + 1
}

/// Another process invalidates, overwrites, deletes, clears: the process holding a copy
/// sees each on its next call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_another_process_does_is_seen_through_a_copy() {
    let server = RedisServer::start();
    let prefix = unique_prefix("others");
    let (here, there) = (
        cache(&server, &prefix, 1 << 20).await,
        cache(&server, &prefix, 1 << 20).await,
    );
    let call = || cache_runtime::scope(here.clone(), shared());

    // A cached query: filled here, a hit on the copy, invalidated there.
    let first = call().await;
    assert_eq!(call().await, first);
    there.invalidate_tag("shared").await.unwrap();
    let second = call().await;
    assert_ne!(
        second, first,
        "served the copy after an invalidation elsewhere"
    );
    assert_eq!(call().await, second);
    // Refilled there (invalidated, then filled by the other process): this one's copy is
    // of another fill.
    there.invalidate_tag("shared").await.unwrap();
    let third = cache_runtime::scope(there.clone(), shared()).await;
    assert_eq!(call().await, third, "served its own copy over another fill");

    // get/set: overwritten, deleted, cleared there.
    there.set("k", &1u32, None).await.unwrap();
    assert_eq!(here.get::<u32>("k").await.unwrap(), Some(1));
    assert_eq!(here.get::<u32>("k").await.unwrap(), Some(1));
    there.set("k", &2u32, None).await.unwrap();
    assert_eq!(here.get::<u32>("k").await.unwrap(), Some(2), "overwritten");
    there.delete("k").await.unwrap();
    assert_eq!(here.get::<u32>("k").await.unwrap(), None, "deleted");
    there.set("k", &3u32, None).await.unwrap();
    assert_eq!(here.get::<u32>("k").await.unwrap(), Some(3));
    there.clear().await.unwrap();
    assert_eq!(here.get::<u32>("k").await.unwrap(), None, "cleared");
    assert_eq!(here.stats().backend_errors, 0);
}

/// Bytes another program writes over a value held as a copy (a value of another type, a
/// Redis key of another type) are a miss, recomputed and overwritten, never the copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_bytes_over_a_copy_are_a_miss() {
    let server = RedisServer::start();
    let cache = cache(&server, &unique_prefix("foreign"), 1 << 20).await;
    cache.set("k", &7u32, None).await.unwrap();
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(7));
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(7));
    let key = format!("{}:1:k", cache.prefix());
    let mut conn = raw_connection(&server.url()).await;

    let _: () = ::redis::cmd("SET")
        .arg(&key)
        .arg(b"CR\x03 another program's bytes, long enough to fill a header".as_slice())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(cache.get::<u32>("k").await.unwrap(), None);
    assert_eq!(cache.stats().decode_errors, 1);

    cache.set("k", &8u32, None).await.unwrap();
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(8));
    let _: () = ::redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = ::redis::cmd("RPUSH")
        .arg(&key)
        .arg("a list")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        cache.get::<u32>("k").await.unwrap(),
        None,
        "a list is no value"
    );
    assert_eq!(cache.stats().backend_errors, 0, "nor a failing backend");
}

static ACL_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached_query(key = "acl")]
async fn acl_value() -> u32 {
    ACL_RUNS.fetch_add(1, SeqCst) + 1
}

/// An ACL user that may not `GETRANGE` (a list written before copies existed): hits still
/// hit, reading the value whole, and nothing counts as a failing backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_without_getrange_still_hits() {
    let server = RedisServer::start();
    let mut admin = raw_connection(&server.url()).await;
    let rules = "SETUSER old on >oldpw ~old:* +mget +get +set +pexpire +multi +exec +unlink \
                 +scan +ping +time +zrange +evalsha +script|load";
    let _: () = ::redis::cmd("ACL")
        .arg(rules.split(' ').collect::<Vec<_>>())
        .query_async(&mut admin)
        .await
        .unwrap();
    let url = format!("redis://old:oldpw@127.0.0.1:{}/0", server.port());
    let cache = Cache::builder(&url).prefix("old").build().await.unwrap();
    for _ in 0..5 {
        assert_eq!(cache_runtime::scope(cache.clone(), acl_value()).await, 1);
    }
    assert_eq!(ACL_RUNS.load(SeqCst), 1);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.backend_errors), (4, 0), "{stats:?}");
}

#[cached_query(key = "shared_rows")]
async fn shared_rows() -> std::sync::Arc<Vec<u64>> {
    std::sync::Arc::new((0..1000).collect())
}

/// A query returning an `Arc` is decoded once per copy: every hit on the copy hands out the
/// same allocation (with the generations still checked in Redis). Without copies each hit
/// decodes what it read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arc_is_decoded_once_per_copy() {
    let server = RedisServer::start();
    for copies in [1 << 20, 0] {
        let cache = cache(&server, &unique_prefix("arc"), copies).await;
        let call = || cache_runtime::scope(cache.clone(), shared_rows());
        call().await; // the fill
        let (a, b) = (call().await, call().await);
        assert_eq!(cache.stats().hits, 2);
        assert_eq!(a, b);
        assert_eq!(
            std::sync::Arc::ptr_eq(&a, &b),
            copies > 0,
            "copies: {copies}"
        );
        cache.invalidate_all().await.unwrap();
        let c = call().await;
        assert!(
            !std::sync::Arc::ptr_eq(&a, &c),
            "an invalidated copy is not handed out"
        );
    }
}

/// What a copy cannot see: bytes rewritten behind the copy's own header (the 44 bytes that
/// name the fill) are not read again by the process holding the copy. It keeps serving the
/// value it read and checked, while its generations are current, until the value is filled
/// again, invalidated or expires; a process without a copy reads them (a miss, counted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_behind_the_copys_own_header_are_not_read_again() {
    let server = RedisServer::start();
    let prefix = unique_prefix("behind");
    let here = cache(&server, &prefix, 1 << 20).await;
    here.set("k", &7u32, None).await.unwrap();
    assert_eq!(here.get::<u32>("k").await.unwrap(), Some(7)); // now a copy
    let key = format!("{prefix}:1:k");
    let mut stored = here.raw_get(&key).await.unwrap().unwrap();
    let last = stored.len() - 1;
    stored[last] = 0xc1; // never valid MessagePack
    here.raw_set(&key, &stored, None).await.unwrap();

    assert_eq!(here.get::<u32>("k").await.unwrap(), Some(7), "the copy");
    let elsewhere = cache(&server, &prefix, 1 << 20).await;
    assert_eq!(elsewhere.get::<u32>("k").await.unwrap(), None);
    assert_eq!(elsewhere.stats().decode_errors, 1);
    here.invalidate_all().await.unwrap();
    assert_eq!(here.get::<u32>("k").await.unwrap(), None, "invalidated");
}

static MEMORY_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached_query(key = "in_memory", tags = ["in_memory"])]
async fn in_memory() -> u32 {
    MEMORY_RUNS.fetch_add(1, SeqCst) + 1
}

/// On `memory://` every kind of write between two hits on a copy is seen by the second:
/// an invalidation, bytes written under one of the value's generation counters or under the
/// value itself, `set`, `delete`, `clear`.
#[tokio::test]
async fn on_memory_every_write_is_seen_through_a_copy() {
    let cache = Cache::builder("memory://")
        .prefix("mem")
        .build()
        .await
        .unwrap();
    let call = || cache_runtime::scope(cache.clone(), in_memory());

    let first = call().await;
    // The first hit checks the copy; the ones after it read nothing else.
    for _ in 0..3 {
        assert_eq!(call().await, first);
    }
    cache.invalidate_tag("in_memory").await.unwrap();
    let second = call().await;
    assert_ne!(second, first, "served the copy after an invalidation");
    assert_eq!(call().await, second);
    assert_eq!(call().await, second);
    // Junk under the tag's counter: a missing counter, so the value is stale.
    cache
        .raw_set("mem:gen:t:in_memory", b"junk", None)
        .await
        .unwrap();
    let third = call().await;
    assert_ne!(third, second, "served the copy over an unreadable counter");
    assert_eq!(call().await, third);

    cache.set("k", &1u32, None).await.unwrap();
    for _ in 0..3 {
        assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(1));
    }
    cache.set("k", &2u32, None).await.unwrap();
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(2), "overwritten");
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(2));
    cache.raw_set("mem:1:k", b"junk", None).await.unwrap();
    assert_eq!(cache.get::<u32>("k").await.unwrap(), None, "junk is a miss");
    cache.set("k", &3u32, None).await.unwrap();
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(3));
    cache.delete("k").await.unwrap();
    assert_eq!(cache.get::<u32>("k").await.unwrap(), None, "deleted");
    cache.set("k", &4u32, None).await.unwrap();
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(4));
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(4));
    cache.clear().await.unwrap();
    assert_eq!(cache.get::<u32>("k").await.unwrap(), None, "cleared");
    let stats = cache.stats();
    // The junk counter and the junk value.
    assert_eq!(
        (stats.decode_errors, stats.backend_errors),
        (2, 0),
        "{stats:?}"
    );
}
