//! The stale-set race, on real Redis and on memory: a fill that read "version 1" of the
//! data is paused; the data changes to "version 2" and an invalidation runs and returns;
//! then the fill finishes and writes. Every later read must return version 2, including a
//! call that joins the paused fill's flight after the invalidation returned.
//!
//! Looped with random timings and every kind of invalidation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use cache_runtime::{Cache, cached_query};
use cache_tests::{redis_server_url, unique_prefix};
use rand::RngExt;
use tokio::sync::Notify;

const ROUNDS: u64 = 250;

#[derive(Default)]
struct Data {
    version: AtomicU64,
    pause_next: AtomicBool,
    read_done: Notify,
    release: Notify,
}

#[cached_query(key = "race:{round}", tags = ["race:{round}", "race"], skip(data))]
async fn read_data(data: &Data, round: u64) -> u64 {
    let seen = data.version.load(SeqCst);
    if data.pause_next.swap(false, SeqCst) {
        data.read_done.notify_one();
        data.release.notified().await;
    }
    seen
}

#[derive(Clone, Copy, Debug)]
enum Invalidation {
    Entry,
    Query,
    Tag,
    SharedTag,
    All,
}

async fn invalidate(cache: &Cache, kind: Invalidation, round: u64) {
    match kind {
        Invalidation::Entry => {
            cache_runtime::scope(cache.clone(), read_data_invalidate(round)).await
        }
        Invalidation::Query => {
            cache_runtime::scope(cache.clone(), read_data_invalidate_all()).await
        }
        Invalidation::Tag => cache.invalidate_tag(&format!("race:{round}")).await,
        Invalidation::SharedTag => cache.invalidate_tag("race").await,
        Invalidation::All => cache.invalidate_all().await,
    }
    .expect("invalidation succeeds");
}

async fn sleep_up_to(max_us: u64) {
    let us = rand::rng().random_range(0..=max_us);
    if us > 0 {
        tokio::time::sleep(Duration::from_micros(us)).await;
    }
}

async fn race(cache: Cache) {
    let kinds = [
        Invalidation::Entry,
        Invalidation::Query,
        Invalidation::Tag,
        Invalidation::SharedTag,
        Invalidation::All,
    ];
    let data = Arc::new(Data::default());
    for round in 0..ROUNDS {
        let kind = kinds[(round % kinds.len() as u64) as usize];
        let old = round * 2 + 1;
        data.version.store(old, SeqCst);
        data.pause_next.store(true, SeqCst);

        // The fill: reads version 1, then waits.
        let fill = tokio::spawn(cache_runtime::scope(cache.clone(), {
            let data = data.clone();
            async move { read_data(&data, round).await }
        }));
        data.read_done.notified().await;
        sleep_up_to(300).await;

        // The data changes, and the invalidation returns.
        data.version.store(old + 1, SeqCst);
        let release_first = rand::rng().random_bool(0.25);
        if release_first {
            // Sometimes the stale fill even writes before the invalidation starts.
            data.release.notify_one();
            assert_eq!(fill.await.unwrap(), old);
            invalidate(&cache, kind, round).await;
        } else {
            invalidate(&cache, kind, round).await;
            // A call that starts now, while the old fill is still in flight, must not get it.
            let joiner = tokio::spawn(cache_runtime::scope(cache.clone(), {
                let data = data.clone();
                async move { read_data(&data, round).await }
            }));
            sleep_up_to(300).await;
            data.release.notify_one();
            assert_eq!(
                fill.await.unwrap(),
                old,
                "the fill itself returns what it read"
            );
            assert_eq!(
                joiner.await.unwrap(),
                old + 1,
                "round {round} ({kind:?}): a call after the invalidation got the old value; {:?}",
                cache.stats()
            );
        }

        for _ in 0..2 {
            let got = cache_runtime::scope(cache.clone(), read_data(&data, round)).await;
            assert_eq!(
                got,
                old + 1,
                "round {round} ({kind:?}): stale value served after invalidation returned"
            );
        }
    }
    eprintln!("{ROUNDS} race rounds, stats: {:?}", cache.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_set_race_on_memory() {
    race(Cache::from_url("memory://").await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_set_race_on_redis() {
    let cache = Cache::builder(&redis_server_url())
        .prefix(unique_prefix("race"))
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    race(cache).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_set_race_on_a_cluster() {
    let cache = Cache::builder(&cache_tests::redis_cluster_url())
        .prefix(unique_prefix("race"))
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    race(cache).await;
}
