//! What is particular to a Redis Cluster, on a real one of three primaries (one per test
//! binary): where keys go, what a hit and an invalidation cost in commands and nodes
//! (`INFO commandstats` of every node), clearing a prefix with `SCAN` on every primary,
//! listing keys across nodes, leases between two caches, and a cluster that is not there.
//! The behaviour suites run on a cluster too (`on_cluster!` in each), and so does the race
//! test; a primary's failover is `cluster_failover.rs`.
//!
//! The tests of this binary share the cluster and read its per-node command counters, so
//! they take turns ([`turn`]).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, admin, cached_query};
use cache_tests::{RedisCluster, unique_prefix};
use tokio::sync::{Mutex, MutexGuard};

fn cluster() -> &'static RedisCluster {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| RedisCluster::start(3, 0))
}

/// One test at a time: they read the whole cluster's counters.
async fn turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::const_new(());
    TURN.lock().await
}

async fn cache(test: &str) -> Cache {
    Cache::builder(&cluster().url())
        .prefix(unique_prefix(test))
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .expect("a cluster cache")
}

static BODY: AtomicUsize = AtomicUsize::new(0);

#[cached_query(key = "user:{id}", ttl = 600, tags = ["users", "user:{id}"])]
async fn user(id: u32) -> String {
    BODY.fetch_add(1, SeqCst);
    format!("user {id}")
}

/// A query built from two others: it records their generations too, from their buckets.
#[cached_query(key = "team:{lead}", ttl = 600)]
async fn team(lead: u32) -> Vec<String> {
    vec![user(lead).await, user(lead + 1).await]
}

async fn on<F: Future>(cache: &Cache, f: F) -> F::Output {
    cache_runtime::scope(cache.clone(), f).await
}

fn sum(counts: &[u64]) -> u64 {
    counts.iter().sum()
}

fn touched(counts: &[u64]) -> usize {
    counts.iter().filter(|&&n| n > 0).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_spread_and_hits_and_invalidations_cost_what_the_docs_say() {
    let _turn = turn().await;
    let cluster = cluster();
    let cache = cache("costs").await;
    for id in 0..60 {
        on(&cache, user(id)).await;
    }
    // Values spread over every primary; no function piled onto one slot.
    let per_node = cluster.keys_per_node(&format!("{}:", cache.prefix()));
    eprintln!("keys per node after 60 fills: {per_node:?}");
    assert!(per_node.iter().all(|&n| n >= 20), "{per_node:?}");
    let stored = admin::keys(&cache, "user", |_| {}).await.unwrap();
    assert_eq!(stored.len(), 60);

    // A query hit: one MGET (value + every counter it checks), on one node, nothing else.
    let before = BODY.load(SeqCst);
    cluster.reset_stats();
    for _ in 0..10 {
        on(&cache, user(7)).await;
    }
    assert_eq!(BODY.load(SeqCst), before, "hits");
    let mget = cluster.calls("mget");
    eprintln!("10 query hits: mget per node {mget:?}");
    assert_eq!(sum(&mget), 10, "one MGET per hit");
    assert_eq!(touched(&mget), 1, "on one node");
    for other in ["get", "set", "exec", "evalsha", "pexpire"] {
        assert_eq!(sum(&cluster.calls(other)), 0, "{other}");
    }

    // A query that read two others: its own slot and theirs, in one round trip.
    on(&cache, team(20)).await;
    on(&cache, team(20)).await;
    cluster.reset_stats();
    let started = Instant::now();
    for _ in 0..10 {
        on(&cache, team(20)).await;
    }
    let nested = started.elapsed();
    let mget = cluster.calls("mget");
    eprintln!("10 hits of a query that read two queries: mget per node {mget:?} in {nested:?}");
    assert!(
        (10..=30).contains(&sum(&mget)),
        "one MGET per slot its counters live in (at most 3): {mget:?}"
    );
    assert!(touched(&mget) <= 3);

    // Hits spread: 600 hits over 60 values go to every node, none takes most of them.
    cluster.reset_stats();
    for _ in 0..10 {
        for id in 0..60 {
            on(&cache, user(id)).await;
        }
    }
    let mget = cluster.calls("mget");
    eprintln!("600 hits of 60 values: mget per node {mget:?}");
    assert_eq!(sum(&mget), 600);
    assert!(mget.iter().all(|&n| n >= 120), "{mget:?}");

    // Invalidating one entry: one MULTI/EXEC on its node.
    cluster.reset_stats();
    on(&cache, user_invalidate(7)).await.unwrap();
    let (exec, set) = (cluster.calls("exec"), cluster.calls("set"));
    eprintln!("entry invalidation: exec {exec:?}, set {set:?}");
    assert_eq!((sum(&exec), touched(&exec), sum(&set)), (1, 1, 1));

    // Invalidating a tag: its copy in every bucket, on every node, at once.
    cluster.reset_stats();
    let started = Instant::now();
    cache.invalidate_tag("users").await.unwrap();
    let took = started.elapsed();
    let set = cluster.calls("set");
    eprintln!("tag invalidation: set per node {set:?} in {took:?}");
    assert_eq!(sum(&set), 64, "one copy per bucket");
    assert_eq!(touched(&set), 3);
    let before = BODY.load(SeqCst);
    on(&cache, user(3)).await;
    assert_eq!(BODY.load(SeqCst), before + 1, "invalidated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_scans_every_primary_and_keeps_other_prefixes() {
    let _turn = turn().await;
    let cluster = cluster();
    let cache = cache("clear").await;
    let sibling = Cache::builder(&cluster.url())
        .prefix(format!("{}-x", cache.prefix()))
        .build()
        .await
        .unwrap();
    for i in 0..40 {
        cache.set(&format!("k{i}"), &i, None).await.unwrap();
    }
    sibling.set("kept", &1, None).await.unwrap();
    let root = format!("{}:", cache.prefix());
    let per_node = cluster.keys_per_node(&root);
    assert!(per_node.iter().all(|&n| n > 0), "{per_node:?}");
    let stored: usize = per_node.iter().sum();
    let summary = admin::summary(&cache, |_| {}).await.unwrap();
    assert_eq!(summary.names.values().map(|u| u.entries).sum::<u64>(), 40);
    assert!(summary.complete);

    let removed = cache.clear().await.unwrap();
    assert_eq!(
        removed, stored as u64,
        "values and counter copies, on every node"
    );
    assert_eq!(cluster.keys_per_node(&root), [0, 0, 0]);
    assert_eq!(cache.get::<i32>("k1").await.unwrap(), None);
    assert_eq!(sibling.get::<i32>("kept").await.unwrap(), Some(1));
}

#[cached_query(key = "slow:{n}", ttl = 600)]
async fn slow(n: u32) -> u32 {
    BODY.fetch_add(1, SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_makes_one_of_two_caches_fill() {
    let _turn = turn().await;
    // Two caches on one prefix: two processes, as far as leases go.
    let prefix = unique_prefix("lease");
    let build = || {
        Cache::builder(&cluster().url())
            .prefix(prefix.clone())
            .timeout(Duration::from_secs(2))
            .build()
    };
    let (a, b) = (build().await.unwrap(), build().await.unwrap());
    let before = BODY.load(SeqCst);
    let (x, y) = tokio::join!(
        cache_runtime::scope(a.clone(), slow(9)),
        cache_runtime::scope(b.clone(), slow(9)),
    );
    assert_eq!((x, y), (9, 9));
    assert_eq!(BODY.load(SeqCst), before + 1, "one fill in the fleet");
    assert_eq!(a.stats().lease_waits + b.stats().lease_waits, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_is_not_there_runs_uncached_within_the_timeout() {
    let cache = Cache::builder("redis+cluster://127.0.0.1:1,127.0.0.1:2")
        .timeout(Duration::from_millis(200))
        .build()
        .await
        .expect("a cluster that is down is not an error");
    assert_eq!(cache.backend_name(), "cluster");
    let started = Instant::now();
    let before = BODY.load(SeqCst);
    assert_eq!(cache_runtime::scope(cache.clone(), user(1)).await, "user 1");
    assert_eq!(BODY.load(SeqCst), before + 1);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(admin::ping(&cache).await.is_err());
}

static ACL_BODY: AtomicUsize = AtomicUsize::new(0);

#[cached_query(key = "acl_user:{id}", ttl = 600, tags = ["acl_user:{id}"])]
async fn acl_user(id: u32) -> String {
    ACL_BODY.fetch_add(1, SeqCst);
    format!("user {id}")
}

/// The ACL list docs/SCALING.md gives for a cluster is enough: set on every node (ACLs are
/// per node), an ACL user fills, hits, takes leases, invalidates, lists and clears, with no
/// backend error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_acl_list_runs_a_cluster_cache() {
    let _turn = turn().await;
    let cluster = cluster();
    let rules = "SETUSER acl on >aclpw ~acl:* +mget +getrange +get +set +pexpire +multi +exec +unlink \
                 +scan +ping +time +zrange +evalsha +script|load +cluster|slots \
                 +strlen +pttl"; // the last two for listing (admin, cachectl, the dashboard)
    let rules: Vec<&str> = rules.split_whitespace().collect();
    for node in cluster.nodes() {
        let mut args = vec!["ACL"];
        args.extend(&rules);
        assert_eq!(cache_tests::cli(node.port(), &args).trim(), "OK");
    }
    let url = cluster.url().replacen("://", "://acl:aclpw@", 1);
    let cache = Cache::builder(&url)
        .prefix("acl")
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    for _ in 0..2 {
        assert_eq!(on(&cache, acl_user(1)).await, "user 1");
    }
    let denied: Vec<String> = cluster
        .nodes()
        .iter()
        .map(|n| cache_tests::cli(n.port(), &["ACL", "LOG"]))
        .collect();
    assert_eq!(ACL_BODY.load(SeqCst), 1, "a hit; denied: {denied:?}");
    cache.invalidate_tag("acl_user:1").await.unwrap();
    assert_eq!(on(&cache, acl_user(1)).await, "user 1");
    assert_eq!(ACL_BODY.load(SeqCst), 2, "invalidated");
    cache.set("plain", &7u32, None).await.unwrap();
    assert_eq!(cache.get::<u32>("plain").await.unwrap(), Some(7));
    let summary = admin::summary(&cache, |_| {}).await.unwrap();
    assert!(summary.complete);
    assert!(cache.clear().await.unwrap() > 0);
    assert_eq!(cache.get::<u32>("plain").await.unwrap(), None);
    assert_eq!(cache.stats().backend_errors, 0, "{:?}", cache.stats());
}
