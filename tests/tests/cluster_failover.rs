//! A primary of a real Redis Cluster (three primaries, one replica each) is killed: calls for
//! its slots run uncached within the timeout while the others keep hitting; once its replica
//! has taken over, caching resumes in the same app (the same `Cache`), with no restart.
//! Invalidations first wait for a replica (`wait_for_replicas`) on every primary they write.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, admin, cached_query};
use cache_tests::{RedisCluster, unique_prefix};

static BODY: [AtomicUsize; 48] = [const { AtomicUsize::new(0) }; 48];

#[cached_query(key = "item:{id}", ttl = 600, tags = ["items"])]
async fn item(id: usize) -> usize {
    BODY[id].fetch_add(1, SeqCst);
    id
}

fn runs(id: usize) -> usize {
    BODY[id].load(SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_primary_costs_its_slots_only_and_caching_resumes_after_failover() {
    let cluster = RedisCluster::start(3, 1);
    let timeout = Duration::from_millis(300);
    let cache = Cache::builder(&cluster.url())
        .prefix(unique_prefix("failover"))
        .timeout(timeout)
        .wait_for_replicas(1, Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    let call = |id| cache_runtime::scope(cache.clone(), item(id));
    for id in 0..BODY.len() {
        assert_eq!(call(id).await, id);
    }
    // Every invalidation reached a replica of each primary it wrote to.
    cache.invalidate_tag("items").await.unwrap();
    for id in 0..BODY.len() {
        call(id).await;
        call(id).await;
        assert_eq!(
            runs(id),
            2,
            "filled again after the invalidation, then a hit"
        );
    }

    // Which primary holds each value.
    let stored = admin::keys(&cache, "item", |_| {}).await.unwrap();
    assert_eq!(stored.len(), BODY.len());
    let primary_of = |id: usize| {
        let key = stored
            .iter()
            .find(|k| k.key.ends_with(&format!(":1:item:{id}")))
            .expect("stored");
        cluster.primary_of(&key.key).port()
    };
    let victim = primary_of(0);
    let (dead, live): (Vec<usize>, Vec<usize>) =
        (0..BODY.len()).partition(|&id| primary_of(id) == victim);
    assert!(!dead.is_empty() && !live.is_empty());
    let victim_node = cluster.nodes().iter().find(|n| n.port() == victim).unwrap();
    victim_node.kill();

    // While it is down: the others hit, its values run uncached, each within the timeout.
    let mut slowest = Duration::ZERO;
    for round in 0..3 {
        for id in 0..BODY.len() {
            let before = runs(id);
            let started = Instant::now();
            assert_eq!(call(id).await, id);
            slowest = slowest.max(started.elapsed());
            if live.contains(&id) {
                assert_eq!(
                    runs(id),
                    before,
                    "round {round}: item {id} on a live primary hits"
                );
            }
        }
    }
    eprintln!(
        "primary down: {} of {} values uncached, slowest call {slowest:?}",
        dead.len(),
        BODY.len()
    );
    for &id in &dead {
        assert!(runs(id) >= 3, "item {id} ran uncached");
    }
    assert!(
        slowest < timeout * 4,
        "a call waits for the timeout, not for the failover: {slowest:?}"
    );

    // Its replica takes over; the same cache serves its slots from the cache again.
    let failover = Instant::now();
    cluster.wait_until_covered(Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(30);
    let id = dead[0];
    loop {
        call(id).await;
        let before = runs(id);
        call(id).await;
        if runs(id) == before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "caching never resumed for item {id}: {:?}",
            cache.stats()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "caching resumed {:?} after the failover",
        failover.elapsed()
    );
    for &id in &dead {
        call(id).await;
        let before = runs(id);
        call(id).await;
        assert_eq!(runs(id), before, "item {id} hits after the failover");
    }
    // An invalidation now cannot reach a replica on every primary (the promoted one has
    // none): with `wait_for_replicas` that is an error, never a silent success.
    // (`WAIT` answers too few, or no answer comes within the bound.)
    let error = cache.invalidate_tag("items").await.unwrap_err();
    assert!(
        error.to_string().contains("invalidating `t:items` failed"),
        "{error}"
    );
}
