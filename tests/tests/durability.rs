//! Durability, against a real primary and replica started by the test: what an
//! invalidation guarantees when the primary dies and its replica is promoted.
//!
//! - Without `wait_for_replicas`, an invalidation that returned may exist on the primary
//!   alone: promote a replica that missed it and the old value is served again.
//! - With it, an invalidation returns `Ok` only once a replica has it (and an error when
//!   none acknowledged in time), so the promoted replica keeps it.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, cached_query};
use cache_tests::{RedisServer, raw_connection};

const PREFIX: &str = "durable";

#[cached_query(skip(calls), ttl = 600)]
async fn price(calls: &AtomicUsize, item: u32) -> u32 {
    calls.fetch_add(1, SeqCst);
    item * 100 + calls.load(SeqCst) as u32
}

/// A primary and a replica of it, linked and in sync.
fn pair() -> (RedisServer, RedisServer) {
    let primary = RedisServer::start();
    let port = primary.port().to_string();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    (primary, replica)
}

async fn info(url: &str, section: &str, field: &str) -> Option<String> {
    let mut conn = raw_connection(url).await;
    let info: String = ::redis::cmd("INFO")
        .arg(section)
        .query_async(&mut conn)
        .await
        .ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_owned())
}

async fn wait_linked(replica: &RedisServer) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while info(&replica.url(), "replication", "master_link_status")
        .await
        .as_deref()
        != Some("up")
    {
        assert!(Instant::now() < deadline, "the replica never linked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the replica has everything the primary has so far.
async fn sync(primary: &RedisServer) {
    let mut conn = raw_connection(&primary.url()).await;
    let n: u32 = ::redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 1, "the replica acknowledged");
}

/// The primary dies; the replica becomes the primary.
async fn fail_over(primary: &RedisServer, replica: &RedisServer) {
    primary.kill();
    let mut conn = raw_connection(&replica.url()).await;
    let _: () = ::redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut conn)
        .await
        .unwrap();
}

async fn cache(url: &str, wait: Option<u32>) -> Cache {
    let builder = Cache::builder(url)
        .prefix(PREFIX)
        .timeout(Duration::from_secs(2));
    let builder = match wait {
        Some(n) => builder.wait_for_replicas(n, Duration::from_millis(300)),
        None => builder,
    };
    builder.build().await.unwrap()
}

/// The gap, shown: the invalidation returned, the promoted replica never had it, and the
/// old value is served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_wait_a_failover_can_bring_invalidated_values_back() {
    let (primary, replica) = pair();
    wait_linked(&replica).await;
    let calls = AtomicUsize::new(0);
    let old = cache_runtime::scope(cache(&primary.url(), None).await, price(&calls, 7)).await;
    sync(&primary).await;
    cut_off(&primary, &replica).await;
    let on_primary = cache(&primary.url(), None).await;
    cache_runtime::scope(on_primary.clone(), price_invalidate(7))
        .await
        .unwrap();
    fail_over_paused(&primary, &replica).await;
    let promoted = cache(&replica.url(), None).await;
    let served = cache_runtime::scope(promoted, price(&calls, 7)).await;
    assert_eq!(served, old, "the invalidated value came back");
    assert_eq!(calls.load(SeqCst), 1);
}

/// Replication falls behind, as on a slow link or a busy replica: the replica is frozen
/// and its link dropped, so nothing the primary writes from now on reaches it.
async fn cut_off(primary: &RedisServer, replica: &RedisServer) {
    replica.pause();
    let mut conn = raw_connection(&primary.url()).await;
    let _: u64 = ::redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "replica"])
        .query_async(&mut conn)
        .await
        .unwrap();
}

async fn fail_over_paused(primary: &RedisServer, replica: &RedisServer) {
    primary.kill();
    replica.resume();
    fail_over(primary, replica).await;
}

/// With `wait_for_replicas(1, ..)`: an invalidation the replica did not acknowledge is an
/// error, and one that returned `Ok` survives the failover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_replicas_keeps_invalidations_across_a_failover() {
    let (primary, replica) = pair();
    wait_linked(&replica).await;
    let calls = AtomicUsize::new(0);
    // Under an ACL user with exactly the README's list, `+wait` included.
    let mut admin = raw_connection(&primary.url()).await;
    let _: () = ::redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "app",
            "on",
            ">apppw",
            "~durable:*",
            "+mget",
            "+getrange",
            "+get",
            "+set",
            "+pexpire",
            "+multi",
            "+exec",
            "+unlink",
            "+scan",
            "+ping",
            "+time",
            "+zrange",
            "+evalsha",
            "+script|load",
            "+wait",
        ])
        .query_async(&mut admin)
        .await
        .unwrap();
    let as_app = format!("redis://app:apppw@127.0.0.1:{}/", primary.port());
    let on_primary = cache(&as_app, Some(1)).await;
    let old = cache_runtime::scope(on_primary.clone(), price(&calls, 7)).await;
    assert_eq!(
        on_primary.stats().backend_errors,
        0,
        "{:?}",
        on_primary.stats()
    );
    sync(&primary).await;

    // A replica that does not answer: the invalidation says it may not be durable.
    cut_off(&primary, &replica).await;
    let started = Instant::now();
    let err = cache_runtime::scope(on_primary.clone(), price_invalidate(7))
        .await
        .unwrap_err();
    assert!(
        format!("{err:?}").contains("reached 0 of 1 replicas"),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bounded by the wait"
    );
    replica.resume();
    wait_linked(&replica).await;

    // A replica that answers: Ok means the replica has it.
    cache_runtime::scope(on_primary.clone(), price_invalidate(7))
        .await
        .unwrap();
    fail_over(&primary, &replica).await;
    let promoted = cache(&replica.url(), None).await;
    let served = cache_runtime::scope(promoted, price(&calls, 7)).await;
    assert_ne!(served, old, "the promoted replica knows the value is stale");
    assert_eq!(calls.load(SeqCst), 2);
}

/// A `WAIT` longer than the cache's timeout is waited for: the timeout bounds each
/// command's answer, the wait bounds how long an invalidation waits for its replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_longer_than_the_timeout_is_waited_for() {
    let (primary, replica) = pair();
    wait_linked(&replica).await;
    let wait = Duration::from_millis(800);
    let on_primary = Cache::builder(&primary.url())
        .prefix(PREFIX)
        .timeout(Duration::from_millis(200))
        .wait_for_replicas(1, wait)
        .build()
        .await
        .unwrap();
    cut_off(&primary, &replica).await;
    let started = Instant::now();
    let err = cache_runtime::scope(on_primary.clone(), price_invalidate(7))
        .await
        .unwrap_err();
    let took = started.elapsed();
    replica.resume();
    assert!(
        format!("{err:?}").contains("reached 0 of 1 replicas"),
        "the replicas were waited for, not cut off by the timeout: {err:?}"
    );
    assert!(
        took >= wait,
        "waited {took:?}, less than the {wait:?} asked"
    );
    assert!(took < wait + Duration::from_secs(1), "bounded: {took:?}");
}

#[tokio::test]
async fn wait_for_replicas_is_refused_without_redis() {
    let err = Cache::builder("memory://")
        .wait_for_replicas(1, Duration::from_millis(100))
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs a redis:// URL"), "{err}");
}
