//! The L1 tier across real processes sharing one `redis-server`: two `l1_worker` processes
//! read a value through their L1 while this process changes it and invalidates it; a read
//! that began after an invalidation returned never sees the old value, also while the
//! workers' subscriptions are cut.

use std::time::{Duration, Instant};

use cache_runtime::Cache;
use cache_tests::{RedisServer, l1_workers, raw_connection, unique_prefix};

fn spawn_workers(url: &str, prefix: &str, n: usize, seconds: f64) -> Vec<std::process::Child> {
    (0..n)
        .map(|_| l1_workers::spawn(env!("CARGO_BIN_EXE_l1_worker"), url, prefix, seconds, 0))
        .collect()
}

fn finish(workers: Vec<std::process::Child>) -> Vec<l1_workers::Report> {
    workers.into_iter().map(l1_workers::finish).collect()
}

/// Sets the value to 1..=rounds, invalidating after each and then saying so; returns how
/// long the invalidations took (the slowest).
async fn change(url: &str, prefix: &str, rounds: u64, cut_at: Option<u64>) -> Duration {
    let cache = Cache::builder(url).prefix(prefix).build().await.unwrap();
    let mut conn = raw_connection(url).await;
    let mut slowest = Duration::ZERO;
    for n in 1..=rounds {
        if Some(n) == cut_at {
            // The workers' subscriptions are gone: they must stop serving their L1.
            let _: () = redis::cmd("CLIENT")
                .arg(&["KILL", "TYPE", "pubsub"])
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        slowest = slowest.max(l1_workers::change(&mut conn, &cache, prefix, n).await);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    slowest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_instance_serves_a_value_after_its_invalidation_returned() {
    let server = RedisServer::start();
    let (url, prefix) = (server.url(), unique_prefix("l1"));
    let workers = spawn_workers(&url, &prefix, 2, 4.0);
    tokio::time::sleep(Duration::from_millis(1000)).await; // connected, trusting
    let slowest = change(&url, &prefix, 40, None).await;
    for worker in finish(workers) {
        assert_eq!(worker.stale, 0, "a worker served an invalidated value");
        assert!(
            worker.l1_hits * 2 > worker.reads,
            "the L1 served {} of {} reads",
            worker.l1_hits,
            worker.reads
        );
    }
    assert!(
        slowest < Duration::from_millis(500),
        "an invalidation took {slowest:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_subscription_stops_the_l1_until_it_has_caught_up() {
    let server = RedisServer::start();
    let (url, prefix) = (server.url(), unique_prefix("l1-cut"));
    let workers = spawn_workers(&url, &prefix, 2, 5.0);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    change(&url, &prefix, 60, Some(20)).await;
    for worker in finish(workers) {
        assert_eq!(
            worker.stale, 0,
            "a worker served an invalidated value after the cut"
        );
        assert!(worker.l1_hits > 0);
    }
}

static SOURCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[cache_runtime::cached_query(key = "l1_source", ttl = 300, tags = ["source"], lease = false)]
async fn source() -> u64 {
    SOURCE.load(std::sync::atomic::Ordering::SeqCst)
}

static ACL_SOURCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[cache_runtime::cached_query(ttl = 300, tags = ["source"], lease = false)]
async fn acl_source() -> u64 {
    ACL_SOURCE.load(std::sync::atomic::Ordering::SeqCst)
}

/// Reads `read()` on `cache` until its L1 serves it (the instance trusts its L1).
async fn until_served_from_l1<F: Future<Output = u64>>(cache: &Cache, read: fn() -> F) -> u64 {
    let started = Instant::now();
    loop {
        let before = cache.stats().l1_hits;
        let value = cache_runtime::scope(cache.clone(), read()).await;
        if cache.stats().l1_hits > before {
            return value;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the L1 never served a hit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every way one instance changes a value — an invalidation, `set`, `delete`, `clear` — is
/// seen by another instance's L1 as soon as the call returns, also when the instance making
/// the change has no L1 itself (a tool, an admin endpoint).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_reaches_the_other_instances_l1() {
    use std::sync::atomic::Ordering::SeqCst;
    let server = RedisServer::start();
    let (url, prefix) = (server.url(), unique_prefix("l1-ops"));
    let reader = Cache::builder(&url)
        .prefix(prefix.as_str())
        .timeout(Duration::from_secs(2))
        .l1(1024 * 1024)
        .l1_trust(Duration::from_millis(800))
        .build()
        .await
        .unwrap();
    let writer = Cache::builder(&url)
        .prefix(prefix.as_str())
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    let read = || cache_runtime::scope(reader.clone(), source());

    SOURCE.store(1, SeqCst);
    assert_eq!(until_served_from_l1(&reader, source).await, 1);
    SOURCE.store(2, SeqCst);
    assert_eq!(read().await, 1, "served from the L1 until invalidated");
    writer.invalidate_tag("source").await.unwrap();
    assert_eq!(read().await, 2, "after invalidate_tag");

    assert_eq!(until_served_from_l1(&reader, source).await, 2);
    writer.set("l1_source", &7u64, None).await.unwrap();
    assert_eq!(read().await, 7, "after set");

    assert_eq!(until_served_from_l1(&reader, source).await, 7);
    SOURCE.store(3, SeqCst);
    assert!(writer.delete("l1_source").await.unwrap());
    assert_eq!(read().await, 3, "after delete");

    assert_eq!(until_served_from_l1(&reader, source).await, 3);
    SOURCE.store(4, SeqCst);
    assert!(writer.clear().await.unwrap() > 0);
    assert_eq!(read().await, 4, "after clear");

    // The reader's own changes reach its own L1 at once too.
    assert_eq!(until_served_from_l1(&reader, source).await, 4);
    SOURCE.store(5, SeqCst);
    reader.invalidate_all().await.unwrap();
    assert_eq!(read().await, 5, "after its own invalidate_all");
}

/// The ACL list README.md documents for a deployment with an L1 is enough for it: the
/// instance comes to trust its L1, and an invalidation from another instance reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_acl_list_runs_the_l1() {
    use std::sync::atomic::Ordering::SeqCst;
    let server = RedisServer::start();
    let mut admin = raw_connection(&server.url()).await;
    let rules = "ACL SETUSER app on >apppw ~app:* &app:l1 +mget +getrange +get +set +pexpire +multi +exec \
                 +unlink +scan +ping +time +zrange +evalsha +script|load \
                 +subscribe +publish +zadd +zremrangebyscore +sadd +smembers";
    let _: () = ::redis::cmd("ACL")
        .arg(rules.split_whitespace().skip(1).collect::<Vec<_>>())
        .query_async(&mut admin)
        .await
        .unwrap();
    let url = format!("redis://app:apppw@127.0.0.1:{}/0", server.port());
    let build = |l1: bool| {
        let builder = Cache::builder(&url)
            .prefix("app")
            .timeout(Duration::from_secs(2));
        let builder = if l1 { builder.l1(1024 * 1024) } else { builder };
        builder.build()
    };
    let (reader, writer) = (build(true).await.unwrap(), build(false).await.unwrap());
    ACL_SOURCE.store(10, SeqCst);
    assert_eq!(until_served_from_l1(&reader, acl_source).await, 10);
    ACL_SOURCE.store(11, SeqCst);
    writer.invalidate_tag("source").await.unwrap();
    let read = cache_runtime::scope(reader.clone(), acl_source()).await;
    assert_eq!(read, 11);
}

#[cache_runtime::cached_query(ttl = 300, lease = false)]
async fn shared_rows() -> std::sync::Arc<Vec<u64>> {
    std::sync::Arc::new((0..700).collect())
}

#[cache_runtime::cached_query(ttl = 300, lease = false)]
async fn shared_rows_or_error() -> Result<std::sync::Arc<[u64]>, String> {
    Ok((0..700).collect())
}

/// An `Arc` served from the L1 is decoded once and handed out as clones of one allocation;
/// without an L1 (nor local copies, which share it too: `copies.rs`) every hit decodes its
/// own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arc_from_the_l1_is_handed_out_without_a_copy() {
    use std::sync::Arc;
    let server = RedisServer::start();
    let build = |l1: bool| {
        // Local copies off in both: they would share the `Arc` too, before the L1 does.
        let builder = Cache::builder(&server.url())
            .prefix(unique_prefix("l1-arc"))
            .timeout(Duration::from_secs(2))
            .local_copies(0);
        if l1 { builder.l1(1024 * 1024) } else { builder }.build()
    };
    let (with_l1, without) = (build(true).await.unwrap(), build(false).await.unwrap());

    let twice = |cache: Cache| async move {
        cache_runtime::scope(cache, async {
            shared_rows().await; // fills
            let started = Instant::now();
            loop {
                let (a, b) = (shared_rows().await, shared_rows().await);
                let (c, d) = (
                    shared_rows_or_error().await.unwrap(),
                    shared_rows_or_error().await.unwrap(),
                );
                assert_eq!((a.len(), c.len()), (700, 700));
                if (Arc::ptr_eq(&a, &b) && Arc::ptr_eq(&c, &d))
                    || started.elapsed() > Duration::from_secs(1)
                {
                    return (Arc::ptr_eq(&a, &b), Arc::ptr_eq(&c, &d));
                }
                tokio::time::sleep(Duration::from_millis(20)).await; // until it trusts its L1
            }
        })
        .await
    };
    assert_eq!(twice(with_l1.clone()).await, (true, true));
    assert!(with_l1.stats().l1_hits >= 2);
    assert_eq!(twice(without).await, (false, false));
}

static BLOCKING_SOURCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[cache_runtime::cached_query(ttl = 300, tags = ["blocking"], lease = false)]
fn blocking_source() -> u64 {
    BLOCKING_SOURCE.load(std::sync::atomic::Ordering::SeqCst)
}

/// Blocking code (no runtime on its thread) reads through the L1 and announces its
/// invalidations like async code: a plain thread built both caches, so nothing here runs
/// on a tokio runtime but the caches' own I/O thread.
#[test]
fn blocking_calls_use_and_announce_to_the_l1() {
    use std::sync::atomic::Ordering::SeqCst;
    let server = RedisServer::start();
    let prefix = unique_prefix("l1-blocking");
    let build = || {
        cache_runtime::block_on(
            Cache::builder(&server.url())
                .prefix(prefix.as_str())
                .timeout(Duration::from_secs(2))
                .l1(1024 * 1024)
                .build(),
        )
        .unwrap()
    };
    let (reader, writer) = (build(), build());
    let read = || cache_runtime::scope_blocking(reader.clone(), blocking_source);
    BLOCKING_SOURCE.store(1, SeqCst);
    let started = Instant::now();
    while reader.stats().l1_hits == 0 {
        assert_eq!(read(), 1);
        assert!(started.elapsed() < Duration::from_secs(5), "no L1 hit");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The writer must wait for the reader's acknowledgement: wait until it trusts too.
    let started = Instant::now();
    loop {
        let hits = writer.stats().l1_hits;
        let _ = cache_runtime::scope_blocking(writer.clone(), blocking_source);
        if writer.stats().l1_hits > hits {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "writer never trusted"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    BLOCKING_SOURCE.store(2, SeqCst);
    assert_eq!(read(), 1, "served from the L1");
    cache_runtime::block_on(writer.invalidate_tag("blocking")).unwrap();
    assert_eq!(read(), 2, "after a blocking invalidation");
}

/// How many clients of `url`'s server are subscribed to a channel.
async fn subscribers(url: &str) -> usize {
    let mut conn = raw_connection(url).await;
    let list: String = ::redis::cmd("CLIENT")
        .arg(&["LIST", "TYPE", "pubsub"])
        .query_async(&mut conn)
        .await
        .unwrap();
    list.lines().count()
}

/// Dropping a cache ends its L1's subscriber and heartbeat: no connection or task is left
/// behind by a cache that is built and dropped (as tests and short-lived tools do).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_cache_leaves_no_subscription_behind() {
    let server = RedisServer::start();
    let cache = Cache::builder(&server.url())
        .prefix(unique_prefix("l1-drop"))
        .l1(1024 * 1024)
        .l1_trust(Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    let started = Instant::now();
    while subscribers(&server.url()).await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never subscribed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(cache);
    let started = Instant::now();
    while subscribers(&server.url()).await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the subscription outlived its cache"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cache_runtime::cached_query(key = "l1_deploy", ttl = 300, lease = false)]
async fn deployed_before() -> u64 {
    7
}

#[cache_runtime::cached_query(key = "l1_deploy", ttl = 300, lease = false)]
async fn deployed_after() -> String {
    "seven".to_owned()
}

/// A value kept in the L1 that the new code cannot read (a deploy changed the type) is one
/// decode error for the call that meets it, not one per tier, and is replaced in both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_value_in_the_l1_is_one_decode_error() {
    let server = RedisServer::start();
    let cache = Cache::builder(&server.url())
        .prefix(unique_prefix("l1-deploy"))
        .timeout(Duration::from_secs(2))
        .l1(1024 * 1024)
        .build()
        .await
        .unwrap();
    assert_eq!(until_served_from_l1(&cache, deployed_before).await, 7);
    let after = cache_runtime::scope(cache.clone(), deployed_after()).await;
    assert_eq!(after, "seven");
    assert_eq!(cache.stats().decode_errors, 1);
    let l1_hits = cache.stats().l1_hits;
    let again = cache_runtime::scope(cache.clone(), deployed_after()).await;
    assert_eq!(again, "seven");
    assert_eq!(cache.stats().decode_errors, 1);
    assert_eq!(
        cache.stats().l1_hits,
        l1_hits + 1,
        "the new value is in the L1"
    );
}
