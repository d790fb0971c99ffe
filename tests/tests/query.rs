//! `#[cached_query]` behaviour, one suite run on both backends: the embedded memory store
//! and a real `redis-server` started by the harness. Every case counts how often the body
//! ran, because that is what a cache promises.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use cache_runtime::{Cache, cached_query};
use cache_tests::{Backend, raw_connection, test_cache};
use serde::{Deserialize, Serialize};

/// What a case gets: its own cache, and the Redis URL behind it (for raw pokes).
struct Env {
    cache: Cache,
    redis_url: Option<String>,
}

impl Env {
    async fn memory(test: &str) -> Env {
        let (cache, redis_url) = test_cache(Backend::Memory, test, |b| b).await;
        Env { cache, redis_url }
    }

    async fn redis(test: &str) -> Env {
        let (cache, redis_url) = test_cache(Backend::Redis, test, |b| b).await;
        Env { cache, redis_url }
    }
    async fn cluster(test: &str) -> Env {
        let (cache, redis_url) = test_cache(Backend::Cluster, test, |b| b).await;
        Env { cache, redis_url }
    }

    /// Runs `f` with this env's cache as the task's default.
    async fn run<F: Future>(&self, f: F) -> F::Output {
        cache_runtime::scope(self.cache.clone(), f).await
    }

    /// Stores bytes under a logical key (`{version}:{name}`), bypassing the codec: raw bytes
    /// in Redis, or a value of the wrong type in memory.
    async fn poison(&self, logical: &str) {
        let full = format!("{}:{logical}", self.cache.prefix());
        match &self.redis_url {
            Some(url) => {
                if cache_tests::with_l1() {
                    // An L1 keeps serving its own copy of a value another program overwrote
                    // until it expires (docs/SCALING.md): forget it first, as `delete` does,
                    // so that the read reaches the bytes in Redis.
                    let key = logical.strip_prefix("1:").expect("version 1 key");
                    self.cache.delete(key).await.unwrap();
                }
                let mut conn = raw_connection(url).await;
                let _: () = ::redis::cmd("SET")
                    .arg(&full)
                    .arg(b"\x00\xffnot an envelope\x92\x01")
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
            None => {
                // `Cache::set` writes under version 1: a string where a list is expected.
                let key = logical.strip_prefix("1:").expect("version 1 key");
                self.cache.set(key, "not a list", None).await.unwrap();
            }
        }
    }
}

cache_tests::on_both_backends!(
    a_hit_skips_the_body,
    arguments_make_distinct_entries,
    versions_do_not_share_entries,
    entries_expire_after_their_ttl,
    errors_are_not_cached,
    none_is_cached_and_told_apart_from_a_miss,
    unreadable_bytes_are_a_miss_and_get_overwritten,
    concurrent_cold_calls_run_the_body_once,
    methods_leave_self_out_of_the_key,
    every_codec_round_trips,
    templates_interpolate_arguments,
    stats_count_hits_misses_and_fills,
    clear_removes_this_prefix_only,
    large_values_are_compressed,
    equal_hash_maps_and_sets_share_an_entry,
    a_clone_type_is_decoded_once_per_copy,
);
cache_tests::on_cluster!(
    a_hit_skips_the_body,
    arguments_make_distinct_entries,
    versions_do_not_share_entries,
    entries_expire_after_their_ttl,
    errors_are_not_cached,
    none_is_cached_and_told_apart_from_a_miss,
    unreadable_bytes_are_a_miss_and_get_overwritten,
    concurrent_cold_calls_run_the_body_once,
    methods_leave_self_out_of_the_key,
    every_codec_round_trips,
    templates_interpolate_arguments,
    stats_count_hits_misses_and_fills,
    large_values_are_compressed,
    equal_hash_maps_and_sets_share_an_entry,
);

#[cached_query(skip(calls))]
async fn filtered(
    calls: &AtomicUsize,
    filters: std::collections::HashMap<String, String>,
    ids: std::collections::HashSet<u32>,
) -> usize {
    calls.fetch_add(1, SeqCst);
    filters.len() + ids.len()
}

/// Equal `HashMap`s and `HashSet`s share an entry, whatever order they iterate in: each
/// has its own random hasher, and they are filled in opposite orders.
async fn equal_hash_maps_and_sets_share_an_entry(env: Env) {
    let calls = AtomicUsize::new(0);
    let pairs: Vec<(String, String)> = (0..16)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    env.run(async {
        for round in 0..4 {
            let mut pairs = pairs.clone();
            let mut ids: Vec<u32> = (0..16).collect();
            if round % 2 == 1 {
                pairs.reverse();
                ids.reverse();
            }
            assert_eq!(
                filtered(
                    &calls,
                    pairs.into_iter().collect(),
                    ids.into_iter().collect()
                )
                .await,
                32
            );
        }
        assert_eq!(calls.load(SeqCst), 1, "one entry for equal maps and sets");
        filtered(&calls, Default::default(), [1].into()).await;
        assert_eq!(calls.load(SeqCst), 2, "different sets, different entries");
    })
    .await;
}

#[cached_query(skip(calls))]
async fn square(calls: &AtomicUsize, x: u64) -> u64 {
    calls.fetch_add(1, SeqCst);
    x * x
}

async fn a_hit_skips_the_body(env: Env) {
    let calls = AtomicUsize::new(0);
    env.run(async {
        assert_eq!(square(&calls, 3).await, 9);
        assert_eq!(square(&calls, 3).await, 9);
        assert_eq!(square(&calls, 3).await, 9);
    })
    .await;
    assert_eq!(calls.load(SeqCst), 1);
}

async fn arguments_make_distinct_entries(env: Env) {
    let calls = AtomicUsize::new(0);
    env.run(async {
        for x in [2, 3, 2, 3, 4] {
            assert_eq!(square(&calls, x).await, x * x);
        }
    })
    .await;
    assert_eq!(calls.load(SeqCst), 3);
}

#[cached_query(key = "shared_name", version = 1, skip(calls))]
async fn shared_v1(calls: &AtomicUsize) -> String {
    calls.fetch_add(1, SeqCst);
    "v1".into()
}

#[cached_query(key = "shared_name", version = 2, skip(calls))]
async fn shared_v2(calls: &AtomicUsize) -> String {
    calls.fetch_add(1, SeqCst);
    "v2".into()
}

async fn versions_do_not_share_entries(env: Env) {
    let calls = AtomicUsize::new(0);
    env.run(async {
        assert_eq!(shared_v1(&calls).await, "v1");
        assert_eq!(
            shared_v2(&calls).await,
            "v2",
            "version 2 must not read version 1's entry"
        );
        assert_eq!(shared_v1(&calls).await, "v1");
        assert_eq!(shared_v2(&calls).await, "v2");
    })
    .await;
    assert_eq!(calls.load(SeqCst), 2);
}

#[cached_query(ttl = 1, skip(calls))]
async fn short_lived(calls: &AtomicUsize) -> u32 {
    calls.fetch_add(1, SeqCst) as u32
}

async fn entries_expire_after_their_ttl(env: Env) {
    let calls = AtomicUsize::new(0);
    env.run(async {
        assert_eq!(short_lived(&calls).await, 0);
        assert_eq!(short_lived(&calls).await, 0, "still fresh");
        tokio::time::sleep(Duration::from_millis(1300)).await;
        assert_eq!(short_lived(&calls).await, 1, "expired after 1 s");
    })
    .await;
    assert_eq!(calls.load(SeqCst), 2);
}

#[cached_query(skip(calls, fail))]
async fn fallible(calls: &AtomicUsize, fail: bool) -> Result<u32, String> {
    calls.fetch_add(1, SeqCst);
    if fail {
        Err("database down".into())
    } else {
        Ok(7)
    }
}

async fn errors_are_not_cached(env: Env) {
    let calls = AtomicUsize::new(0);
    env.run(async {
        assert_eq!(fallible(&calls, true).await, Err("database down".into()));
        assert_eq!(
            fallible(&calls, true).await,
            Err("database down".into()),
            "errors are not stored"
        );
        assert_eq!(fallible(&calls, false).await, Ok(7));
        assert_eq!(
            fallible(&calls, true).await,
            Ok(7),
            "the Ok value is served"
        );
    })
    .await;
    assert_eq!(calls.load(SeqCst), 3);
}

#[cached_query(key = "find:{id}", skip(calls))]
async fn find(calls: &AtomicUsize, id: u32) -> Option<u32> {
    calls.fetch_add(1, SeqCst);
    id.is_multiple_of(2).then_some(id)
}

async fn none_is_cached_and_told_apart_from_a_miss(env: Env) {
    let calls = AtomicUsize::new(0);
    env.run(async {
        assert_eq!(find(&calls, 1).await, None);
        assert_eq!(find(&calls, 1).await, None);
        assert_eq!(find(&calls, 2).await, Some(2));
        assert_eq!(find(&calls, 2).await, Some(2));
    })
    .await;
    assert_eq!(calls.load(SeqCst), 2);
    let stats = env.cache.stats();
    assert_eq!(
        (stats.hits, stats.misses),
        (2, 2),
        "a cached None is a hit: {stats:?}"
    );
}

#[cached_query(key = "poisoned", skip(calls))]
async fn poisoned(calls: &AtomicUsize) -> Vec<u32> {
    calls.fetch_add(1, SeqCst);
    vec![1, 2, 3]
}

async fn unreadable_bytes_are_a_miss_and_get_overwritten(env: Env) {
    let calls = AtomicUsize::new(0);
    env.poison("1:poisoned").await;
    env.run(async {
        assert_eq!(poisoned(&calls).await, vec![1, 2, 3]);
        assert_eq!(poisoned(&calls).await, vec![1, 2, 3]);
    })
    .await;
    assert_eq!(
        calls.load(SeqCst),
        1,
        "recomputed once, then served from the overwritten entry"
    );
    assert_eq!(env.cache.stats().decode_errors, 1);
}

#[cached_query(skip(calls))]
async fn slow(calls: &AtomicUsize, x: u32) -> u32 {
    calls.fetch_add(1, SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    x + 1
}

async fn concurrent_cold_calls_run_the_body_once(env: Env) {
    let calls = AtomicUsize::new(0);
    let results = env
        .run(futures::future::join_all(
            (0..100).map(|_| slow(&calls, 41)),
        ))
        .await;
    assert!(results.iter().all(|&r| r == 42));
    assert_eq!(
        calls.load(SeqCst),
        1,
        "100 concurrent misses ran the body once"
    );
}

struct Repo {
    calls: AtomicUsize,
}

impl Repo {
    #[cached_query(key = "repo_user:{id}")]
    async fn user(&self, id: u32) -> String {
        self.calls.fetch_add(1, SeqCst);
        format!("user {id}")
    }
}

async fn methods_leave_self_out_of_the_key(env: Env) {
    let (a, b) = (
        Repo {
            calls: AtomicUsize::new(0),
        },
        Repo {
            calls: AtomicUsize::new(0),
        },
    );
    env.run(async {
        assert_eq!(a.user(1).await, "user 1");
        assert_eq!(
            b.user(1).await,
            "user 1",
            "another instance reads the same entry"
        );
        assert_eq!(a.user(2).await, "user 2");
    })
    .await;
    assert_eq!((a.calls.load(SeqCst), b.calls.load(SeqCst)), (2, 0));
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Row {
    id: u32,
    name: String,
    tags: Vec<String>,
}

fn row(id: u32) -> Row {
    Row {
        id,
        name: format!("row:{id}"),
        tags: vec!["a".into(), "b,c".into()],
    }
}

#[cached_query(codec = postcard, skip(calls))]
async fn by_postcard(calls: &AtomicUsize, id: u32) -> Row {
    calls.fetch_add(1, SeqCst);
    row(id)
}

#[cached_query(codec = bincode, skip(calls))]
async fn by_bincode(calls: &AtomicUsize, id: u32) -> Row {
    calls.fetch_add(1, SeqCst);
    row(id)
}

#[cached_query(codec = json, skip(calls))]
async fn by_json(calls: &AtomicUsize, id: u32) -> Row {
    calls.fetch_add(1, SeqCst);
    row(id)
}

#[cached_query(codec = msgpack, skip(calls))]
async fn by_msgpack(calls: &AtomicUsize, id: u32) -> Row {
    calls.fetch_add(1, SeqCst);
    row(id)
}

async fn every_codec_round_trips(env: Env) {
    let calls = AtomicUsize::new(0);
    env.run(async {
        for _ in 0..2 {
            assert_eq!(by_postcard(&calls, 1).await, row(1));
            assert_eq!(by_bincode(&calls, 2).await, row(2));
            assert_eq!(by_json(&calls, 3).await, row(3));
            assert_eq!(by_msgpack(&calls, 4).await, row(4));
        }
    })
    .await;
    assert_eq!(calls.load(SeqCst), 4, "the second round is all hits");
}

#[cached_query(key = "label:{name}:{n}", skip(calls))]
async fn label(calls: &AtomicUsize, n: u8, name: impl AsRef<str> + Serialize + Send) -> String {
    calls.fetch_add(1, SeqCst);
    format!("{}-{n}", name.as_ref())
}

async fn templates_interpolate_arguments(env: Env) {
    let calls = AtomicUsize::new(0);
    env.run(async {
        assert_eq!(label(&calls, 1, "a:b").await, "a:b-1");
        assert_eq!(
            label(&calls, 1, String::from("a:b")).await,
            "a:b-1",
            "same key for String and &str"
        );
        assert_eq!(label(&calls, 2, "a").await, "a-2");
        assert_eq!(label(&calls, 1, "a").await, "a-1");
    })
    .await;
    assert_eq!(calls.load(SeqCst), 3);
    if let Some(url) = &env.redis_url {
        let mut conn = raw_connection(url).await;
        let key = format!("{}:1:label:a%3Ab:1", env.cache.prefix());
        let exists: bool = ::redis::cmd("EXISTS")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(exists, "the stored key is readable: {key}");
    }
}

async fn stats_count_hits_misses_and_fills(env: Env) {
    let calls = AtomicUsize::new(0);
    env.run(async {
        square(&calls, 10).await;
        square(&calls, 10).await;
        square(&calls, 11).await;
    })
    .await;
    let stats = env.cache.stats();
    assert_eq!(
        (stats.hits, stats.misses, stats.fills),
        (1, 2, 2),
        "{stats:?}"
    );
    assert_eq!(stats.backend_errors, 0);
    assert!(stats.bytes_written > 0 && stats.bytes_read > 0, "{stats:?}");
}

async fn clear_removes_this_prefix_only(env: Env) {
    let calls = AtomicUsize::new(0);
    // A prefix nested in this one (`{prefix}:x`) would share its keys: refused.
    let url = env.redis_url.as_deref().unwrap_or("memory://");
    let nested = Cache::builder(url)
        .prefix(format!("{}:x", env.cache.prefix()))
        .build()
        .await;
    assert!(nested.unwrap_err().to_string().contains("contains `:`"));
    // The nearest legal neighbour keeps its keys through a clear of this prefix.
    let sibling = Cache::builder(url)
        .prefix(format!("{}-x", env.cache.prefix()))
        .build()
        .await
        .unwrap();
    sibling.set("kept", &1, None).await.unwrap();
    let foreign = format!("other-{}:1:keep", env.cache.prefix());
    if let Some(url) = &env.redis_url {
        let mut conn = raw_connection(url).await;
        let _: () = ::redis::cmd("SET")
            .arg(&foreign)
            .arg("x")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    env.run(async {
        square(&calls, 5).await;
        square(&calls, 6).await;
    })
    .await;
    // Two values and their generation counters: all, q:square, e: of each entry.
    assert_eq!(env.cache.clear().await.unwrap(), 6);
    env.run(square(&calls, 5)).await;
    assert_eq!(calls.load(SeqCst), 3, "cleared entries are misses");
    assert_eq!(sibling.get::<i32>("kept").await.unwrap(), Some(1));
    if let Some(url) = &env.redis_url {
        let mut conn = raw_connection(url).await;
        let kept: Option<String> = ::redis::cmd("GET")
            .arg(&foreign)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(
            kept.as_deref(),
            Some("x"),
            "keys outside the prefix survive"
        );
    }
}

/// A cache chosen by the function itself (`cache = path`), ignoring the task's scope.
fn own_cache() -> Cache {
    static OWN: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    OWN.get_or_init(|| {
        // Memory needs no runtime to build: block on the async builder once.
        futures::executor::block_on(Cache::builder("memory://").prefix("own").build()).unwrap()
    })
    .clone()
}

#[cached_query(cache = own_cache, skip(calls))]
async fn with_own_cache(calls: &AtomicUsize, x: u32) -> u32 {
    calls.fetch_add(1, SeqCst);
    x
}

#[tokio::test]
async fn a_function_can_name_its_cache() {
    let calls = AtomicUsize::new(0);
    let scoped = Cache::from_url("memory://").await.unwrap();
    cache_runtime::scope(scoped.clone(), async {
        assert_eq!(with_own_cache(&calls, 1).await, 1);
        assert_eq!(with_own_cache(&calls, 1).await, 1);
    })
    .await;
    // And outside any scope, with nothing installed.
    assert_eq!(with_own_cache(&calls, 1).await, 1);
    assert_eq!(calls.load(SeqCst), 1);
    assert_eq!(own_cache().stats().hits, 2);
    assert_eq!(
        scoped.stats().hits + scoped.stats().misses,
        0,
        "the scoped cache was not used"
    );
}

#[allow(clippy::too_many_arguments)]
#[cached_query(skip(calls))]
async fn many(
    calls: &AtomicUsize,
    a: u8,
    b: u8,
    c: u8,
    d: u8,
    e: u8,
    f: u8,
    g: u8,
    h: u8,
    i: u8,
    j: u8,
    k: u8,
    l: u8,
    m: u8,
    n: &str,
) -> String {
    calls.fetch_add(1, SeqCst);
    format!("{a}{b}{c}{d}{e}{f}{g}{h}{i}{j}{k}{l}{m}{n}")
}

#[tokio::test]
async fn any_arity_is_keyed_by_every_argument() {
    let calls = AtomicUsize::new(0);
    let cache = Cache::from_url("memory://").await.unwrap();
    cache_runtime::scope(cache, async {
        assert_eq!(
            many(&calls, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, "x").await,
            "1234567890123x"
        );
        assert_eq!(
            many(&calls, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, "x").await,
            "1234567890123x"
        );
        assert_eq!(
            many(&calls, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, "y").await,
            "1234567890123y"
        );
        assert_eq!(
            many(&calls, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 4, "x").await,
            "1234567890124x"
        );
    })
    .await;
    assert_eq!(
        calls.load(SeqCst),
        3,
        "the 13th and 14th arguments are part of the key"
    );
}

#[cached_query(key = "big", skip(calls))]
async fn big(calls: &AtomicUsize) -> Vec<Row> {
    calls.fetch_add(1, SeqCst);
    (0..2000).map(row).collect()
}

async fn large_values_are_compressed(env: Env) {
    let calls = AtomicUsize::new(0);
    env.run(async {
        assert_eq!(big(&calls).await.len(), 2000);
        assert_eq!(big(&calls).await[1999], row(1999));
    })
    .await;
    assert_eq!(calls.load(SeqCst), 1);
    let stats = env.cache.stats();
    // ~60 KB of MessagePack, stored lz4-compressed (above the default 16 KiB).
    assert!(stats.bytes_written < 30_000, "{stats:?}");
    if let Some(url) = &env.redis_url {
        let mut conn = raw_connection(url).await;
        let key = format!("{}:1:big", env.cache.prefix());
        let len: usize = ::redis::cmd("STRLEN")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(len as u64, stats.bytes_written);
    }
}

/// Decodings of [`Rows`] and [`Unshared`] so far, by tag (each case its own tag: the
/// backends' cases run at once).
static DECODES: std::sync::Mutex<Vec<(String, usize)>> = std::sync::Mutex::new(Vec::new());

fn decodes(tag: &str) -> usize {
    let decodes = DECODES.lock().unwrap();
    decodes
        .iter()
        .find(|(t, _)| t == tag)
        .map_or(0, |(_, n)| *n)
}

/// What [`Rows`] and [`Unshared`] are read through, counting every decoding.
#[derive(Deserialize)]
struct Counted {
    tag: String,
    rows: Vec<u64>,
}

impl Counted {
    fn count(self) -> (String, Vec<u64>) {
        let mut decodes = DECODES.lock().unwrap();
        match decodes.iter_mut().find(|(t, _)| *t == self.tag) {
            Some((_, n)) => *n += 1,
            None => decodes.push((self.tag.clone(), 1)),
        }
        (self.tag, self.rows)
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(from = "Counted")]
struct Rows {
    tag: String,
    rows: Vec<u64>,
}

impl From<Counted> for Rows {
    fn from(counted: Counted) -> Rows {
        let (tag, rows) = counted.count();
        Rows { tag, rows }
    }
}

/// [`Rows`], not `Clone`: read through `Rows`, so counted the same way.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(transparent)]
struct Unshared(Rows);

#[cached_query(key = "rows:{tag}", skip(calls))]
async fn clone_rows(calls: &AtomicUsize, tag: &str) -> Rows {
    calls.fetch_add(1, SeqCst);
    Rows {
        tag: tag.to_owned(),
        rows: (0..100).collect(),
    }
}

#[cached_query(key = "unshared:{tag}")]
async fn unshared_rows(tag: &str) -> Unshared {
    Unshared(Rows {
        tag: tag.to_owned(),
        rows: (0..100).collect(),
    })
}

/// A value of a `Clone` type is decoded once per copy this process keeps: its hits hand out
/// clones (`cache_runtime::share`), and after an invalidation the new value is read, not the
/// clone. A type that is not `Clone` is decoded on every hit.
async fn a_clone_type_is_decoded_once_per_copy(env: Env) {
    let calls = AtomicUsize::new(0);
    let tag = cache_tests::unique_prefix("decodes");
    let unshared = format!("{tag}-unshared");
    env.run(async {
        let first = clone_rows(&calls, &tag).await;
        let filled = decodes(&tag); // the fill reads its payload back once
        for _ in 0..20 {
            assert_eq!(clone_rows(&calls, &tag).await, first);
        }
        let hits = decodes(&tag) - filled;
        // One decoding for the copy (an L1 in front may keep one of its own).
        assert!((1..=2).contains(&hits), "20 hits decoded {hits} times");

        unshared_rows(&unshared).await;
        let filled = decodes(&unshared);
        for _ in 0..20 {
            assert_eq!(unshared_rows(&unshared).await.0.rows.len(), 100);
        }
        assert_eq!(
            decodes(&unshared) - filled,
            20,
            "not Clone: decoded per hit"
        );

        env.cache.invalidate_all().await.unwrap();
        let before = decodes(&tag);
        assert_eq!(clone_rows(&calls, &tag).await, first);
        assert_eq!(
            calls.load(SeqCst),
            2,
            "the invalidated clone is not handed out"
        );
        clone_rows(&calls, &tag).await;
        assert!(decodes(&tag) > before, "the new value is decoded");
    })
    .await;
    assert_eq!(env.cache.stats().hits, 41);
}
