//! The one fill protocol's promises, on both backends: what a fill depends on when what it
//! read was not stored or not checkable, followers that joined late, the dependency bound,
//! a `CacheLayer` over cached views, junk under every key, foreign bytes swapped in mid-read.
//! Redis-only cases at the end: an open circuit breaker, a cache that outlives the runtime
//! that built it, and what a hit costs under concurrency and across processes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::routing::get;
use cache_runtime::view::CacheLayer;
use cache_runtime::{Cache, cached_query, cached_view};
use cache_tests::{Backend, RedisServer, raw_connection, test_cache, unique_prefix};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde::Serialize;
use tokio::sync::Semaphore;
use tower::ServiceExt;

struct Env {
    cache: Cache,
}

impl Env {
    async fn memory(test: &str) -> Env {
        let (cache, _) = test_cache(Backend::Memory, test, |b| b).await;
        Env { cache }
    }
    async fn redis(test: &str) -> Env {
        let (cache, _) = test_cache(Backend::Redis, test, |b| b).await;
        Env { cache }
    }
    async fn cluster(test: &str) -> Env {
        let (cache, _) = test_cache(Backend::Cluster, test, |b| b).await;
        Env { cache }
    }
    async fn run<F: Future>(&self, f: F) -> F::Output {
        cache_runtime::scope(self.cache.clone(), f).await
    }
    async fn get(&self, app: &Router, path: &str) -> (StatusCode, String) {
        let request = Request::get(path)
            .header("host", "example.com")
            .body(Body::empty())
            .unwrap();
        let response = self.run(app.clone().oneshot(request)).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }
}

/// A tiny "database" that counts what runs.
#[derive(Default)]
struct Db {
    members: Mutex<HashMap<u32, String>>,
    renders: AtomicUsize,
    queries: AtomicUsize,
    value: AtomicU32,
}

impl Db {
    fn renders(&self) -> usize {
        self.renders.load(SeqCst)
    }
}

#[derive(Debug, PartialEq)]
struct NotFound;

#[cached_query(key = "member:{id}", tags = ["member:{id}"], skip(db))]
async fn member(db: &Db, id: u32) -> Result<String, NotFound> {
    db.queries.fetch_add(1, SeqCst);
    db.members.lock().unwrap().get(&id).cloned().ok_or(NotFound)
}

#[cached_view(ttl = 60, statuses = [200, 404])]
async fn member_page(State(db): State<Arc<Db>>, Path(id): Path<u32>) -> (StatusCode, String) {
    db.renders.fetch_add(1, SeqCst);
    match member(&db, id).await {
        Ok(name) => (StatusCode::OK, format!("member {name}")),
        Err(NotFound) => (StatusCode::NOT_FOUND, "no such member".into()),
    }
}

/// A key argument whose `Serialize` fails: the call it keys runs uncached.
struct Unkeyable;

impl Serialize for Unkeyable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("not a key"))
    }
}

#[cached_query(skip(db))]
async fn unkeyed(db: &Db, _arg: Unkeyable) -> u32 {
    db.queries.fetch_add(1, SeqCst);
    db.value.load(SeqCst)
}

#[cached_view(ttl = 60)]
async fn unkeyed_page(State(db): State<Arc<Db>>) -> String {
    db.renders.fetch_add(1, SeqCst);
    format!("value {}", unkeyed(&db, Unkeyable).await)
}

#[cached_query(key = "item:{i}", tags = ["item:{i}"])]
async fn item(i: u32) -> u32 {
    i
}

/// A page of `n` tagged items: about two generations of its own per item.
#[cached_view(ttl = 60)]
async fn items_page(State(db): State<Arc<Db>>, Path(n): Path<u32>) -> String {
    db.renders.fetch_add(1, SeqCst);
    let mut sum = 0u64;
    for i in 0..n {
        sum += u64::from(item(i).await);
    }
    format!("{n} items, sum {sum}")
}

/// A page calling one query many times: its generations are recorded once.
#[cached_view(ttl = 60)]
async fn repeated_page(State(db): State<Arc<Db>>) -> String {
    db.renders.fetch_add(1, SeqCst);
    for _ in 0..3000 {
        item(7).await;
    }
    "repeated".into()
}

#[cached_query(key = "current", tags = ["current"], skip(db))]
async fn current_value(db: &Db) -> u32 {
    db.queries.fetch_add(1, SeqCst);
    db.value.load(SeqCst)
}

#[cached_view(ttl = 60)]
async fn current_page(State(db): State<Arc<Db>>) -> String {
    db.renders.fetch_add(1, SeqCst);
    format!("value {}", current_value(&db).await)
}

fn app(db: &Arc<Db>) -> Router {
    Router::new()
        .route("/member/{id}", get(member_page))
        .route("/unkeyed", get(unkeyed_page))
        .route("/items/{n}", get(items_page))
        .route("/repeated", get(repeated_page))
        .route("/current", get(current_page))
        .with_state(db.clone())
}

cache_tests::on_both_backends!(
    a_page_depends_on_what_an_unstored_inner_call_read,
    a_page_built_from_an_uncached_call_is_not_stored,
    a_late_follower_never_gets_a_value_from_before_an_invalidation,
    dependencies_are_deduplicated_and_bounded,
    a_layer_follows_the_views_and_queries_inside_it,
    junk_under_every_key_of_a_function_heals,
    stale_bytes_swapped_in_mid_read_are_never_served,
);
cache_tests::on_cluster!(
    a_page_depends_on_what_an_unstored_inner_call_read,
    a_page_built_from_an_uncached_call_is_not_stored,
    a_late_follower_never_gets_a_value_from_before_an_invalidation,
    dependencies_are_deduplicated_and_bounded,
    a_layer_follows_the_views_and_queries_inside_it,
    junk_under_every_key_of_a_function_heals,
    stale_bytes_swapped_in_mid_read_are_never_served,
);

/// Hole 1: `member(5)` returned `Err` (not stored), the page rendered a 404 (stored): the
/// 404 still depends on what `member(5)` read, so it goes when the member's tag does.
async fn a_page_depends_on_what_an_unstored_inner_call_read(env: Env) {
    let db = Arc::new(Db::default());
    let app = app(&db);
    assert_eq!(env.get(&app, "/member/5").await.0, StatusCode::NOT_FOUND);
    assert_eq!(env.get(&app, "/member/5").await.0, StatusCode::NOT_FOUND);
    assert_eq!(db.renders(), 1, "the 404 is cached");

    db.members.lock().unwrap().insert(5, "ada".into());
    env.cache.invalidate_tag("member:5").await.unwrap();
    assert_eq!(
        env.get(&app, "/member/5").await,
        (StatusCode::OK, "member ada".into()),
        "the cached 404 outlived the invalidation of what it was built from"
    );
}

/// Hole 1: an inner call that ran uncached (its key could not be encoded) leaves nothing to
/// check the page against later: the page is not stored, and says so in the stats.
async fn a_page_built_from_an_uncached_call_is_not_stored(env: Env) {
    let db = Arc::new(Db::default());
    let app = app(&db);
    db.value.store(1, SeqCst);
    assert_eq!(env.get(&app, "/unkeyed").await.1, "value 1");
    db.value.store(2, SeqCst);
    assert_eq!(env.get(&app, "/unkeyed").await.1, "value 2", "served stale");
    assert_eq!(db.renders(), 2);
    assert_eq!(env.cache.stats().not_stored, 2);
}

/// Hole 2: a follower that joined after the leader started its fill, and after an
/// invalidation returned, is never handed the leader's (older) value.
async fn a_late_follower_never_gets_a_value_from_before_an_invalidation(env: Env) {
    late_follower(&env).await;
}

#[cached_query(key = "gated", tags = ["gated"], skip(db, gate))]
async fn gated(db: &Db, gate: &Gate) -> u32 {
    let value = db.value.load(SeqCst);
    gate.entered.add_permits(1);
    gate.open.acquire().await.unwrap().forget();
    value
}

struct Gate {
    entered: Semaphore,
    open: Semaphore,
}

impl Default for Gate {
    fn default() -> Gate {
        Gate {
            entered: Semaphore::new(0),
            open: Semaphore::new(0),
        }
    }
}

async fn late_follower(env: &Env) {
    let db = Arc::new(Db::default());
    let gate = Arc::new(Gate::default());
    db.value.store(1, SeqCst);
    let call = || {
        let (db, gate, cache) = (db.clone(), gate.clone(), env.cache.clone());
        tokio::spawn(cache_runtime::scope(cache, async move {
            gated(&db, &gate).await
        }))
    };
    let leader = call();
    gate.entered.acquire().await.unwrap().forget(); // the leader read 1 and waits

    db.value.store(2, SeqCst);
    env.cache.invalidate_tag("gated").await.unwrap();
    let follower = call();
    tokio::time::sleep(Duration::from_millis(100)).await; // it joins the leader's flight
    gate.open.add_permits(2);
    assert_eq!(leader.await.unwrap(), 1, "the leader's call began before");
    assert_eq!(
        follower.await.unwrap(),
        2,
        "a call that began after the invalidation got the value from before it"
    );
}

/// Hole 3: a page's dependencies are recorded once each; a page with 1,000 tagged items
/// follows the last of them; one that depends on more than 4,096 generations is not stored.
async fn dependencies_are_deduplicated_and_bounded(env: Env) {
    let db = Arc::new(Db::default());
    let app = app(&db);
    assert_eq!(env.get(&app, "/repeated").await.1, "repeated");
    env.get(&app, "/repeated").await;
    assert_eq!(
        db.renders(),
        1,
        "3,000 calls of one query: a handful of generations"
    );

    env.get(&app, "/items/1000").await;
    env.get(&app, "/items/1000").await;
    assert_eq!(db.renders(), 2, "1,000 items fit");
    env.cache.invalidate_tag("item:999").await.unwrap();
    env.get(&app, "/items/1000").await;
    assert_eq!(
        db.renders(),
        3,
        "the page missed its last item's invalidation"
    );

    let before = env.cache.stats().not_stored;
    env.get(&app, "/items/2100").await;
    env.get(&app, "/items/2100").await;
    assert_eq!(db.renders(), 5, "over 4,096 generations: not stored");
    assert_eq!(env.cache.stats().not_stored - before, 2);
}

/// Hole 4: a `CacheLayer` over a `#[cached_view]` that calls a `#[cached_query]`: the
/// layer's copy follows both.
async fn a_layer_follows_the_views_and_queries_inside_it(env: Env) {
    let db = Arc::new(Db::default());
    let app = app(&db).layer(CacheLayer::new(Duration::from_secs(60)));
    db.value.store(1, SeqCst);
    assert_eq!(env.get(&app, "/current").await.1, "value 1");
    assert_eq!(env.get(&app, "/current").await.1, "value 1");
    assert_eq!(db.renders(), 1);

    db.value.store(2, SeqCst);
    env.cache.invalidate_tag("current").await.unwrap();
    assert_eq!(
        env.get(&app, "/current").await.1,
        "value 2",
        "the query's tag"
    );

    db.value.store(3, SeqCst);
    env.run(current_value_invalidate()).await.unwrap();
    assert_eq!(
        env.get(&app, "/current").await.1,
        "value 3",
        "the query's entry"
    );

    env.run(current_page_invalidate_all()).await.unwrap();
    env.get(&app, "/current").await;
    assert_eq!(db.renders(), 4, "the view's own invalidation");
}

#[cached_query(key = "junk", tags = ["junk"], skip(db))]
async fn junk(db: &Db) -> u32 {
    db.queries.fetch_add(1, SeqCst);
    7
}

/// Holes 6: bytes another program wrote under every key of a function, its generation
/// counters included, are one miss: the value is recomputed, the counters replaced, the
/// next call hits. Never a backend failure, so the breaker (here at one failure) stays shut.
async fn junk_under_every_key_of_a_function_heals(env: Env) {
    let cache = Cache::builder(&backend_url(&env))
        .prefix(unique_prefix("junk"))
        .timeout(Duration::from_secs(2))
        .circuit_breaker(1, Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let env = Env { cache };
    let db = Db::default();
    assert_eq!(env.run(junk(&db)).await, 7);
    let prefix = env.cache.prefix();
    let function = concat!(module_path!(), "::junk");
    for key in [
        format!("{prefix}:1:junk"),
        format!("{prefix}:gen:all"),
        format!("{prefix}:gen:q:{function}"),
        format!("{prefix}:gen:e:1:junk"),
        format!("{prefix}:gen:t:junk"),
    ] {
        assert!(
            env.cache.raw_get(&key).await.unwrap().is_some(),
            "{key} exists"
        );
        env.cache
            .raw_set(&key, b"\xffjunk from elsewhere", None)
            .await
            .unwrap();
    }
    assert_eq!(env.run(junk(&db)).await, 7);
    assert_eq!(db.queries.load(SeqCst), 2, "the junk was a miss");
    assert_eq!(env.run(junk(&db)).await, 7);
    assert_eq!(db.queries.load(SeqCst), 2, "and healed: the next call hits");
    let stats = env.cache.stats();
    assert_eq!(stats.backend_errors, 0, "{stats:?}");
    assert!(stats.decode_errors >= 2, "{stats:?}");
}

/// The URL of the backend `env` runs on.
fn backend_url(env: &Env) -> String {
    match env.cache.backend_name() {
        "redis" => cache_tests::redis_server_url(),
        _ => "memory://".into(),
    }
}

/// Hole 7: readers racing a writer that swaps foreign bytes and an invalidated value under
/// one key never get the invalidated value (the generation check and the value are read at
/// one instant; no check of one value can pass another).
async fn stale_bytes_swapped_in_mid_read_are_never_served(env: Env) {
    let cache = env.cache.clone();
    cache
        .set("swapped", &"old".to_string(), None)
        .await
        .unwrap();
    // Its stored key, as the cache lays it out (on a cluster, with its bucket's hash tag).
    let key = cache_runtime::admin::keys(&cache, "swapped", |_| {})
        .await
        .unwrap()[0]
        .key
        .clone();
    let old = cache.raw_get(&key).await.unwrap().unwrap();
    cache.invalidate_all().await.unwrap();

    let writer = {
        let cache = cache.clone();
        let key = key.clone();
        tokio::spawn(async move {
            for _ in 0..1500 {
                cache.raw_set(&key, b"not an envelope", None).await.unwrap();
                cache.raw_set(&key, &old, None).await.unwrap();
            }
        })
    };
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                let mut served = 0;
                for _ in 0..750 {
                    served += usize::from(cache.get::<String>("swapped").await.unwrap().is_some());
                }
                served
            })
        })
        .collect();
    writer.await.unwrap();
    for reader in readers {
        assert_eq!(reader.await.unwrap(), 0, "an invalidated value was served");
    }
}

// --- Redis only -------------------------------------------------------------------------

/// Hole 2 with the breaker open: the leader cannot read its generations (its value can
/// never be checked), Redis answers again and an invalidation returns; a follower that
/// joins then runs the body itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_breaker_open_a_late_follower_runs_the_body_itself() {
    let server = RedisServer::start();
    let cache = Cache::builder(&server.url())
        .prefix(unique_prefix("breaker"))
        .timeout(Duration::from_millis(100))
        .circuit_breaker(1, Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    // One timeout opens the breaker for 30 s.
    server.pause();
    assert!(cache.get::<u32>("x").await.is_err());
    server.resume();
    assert_eq!(
        cache.get::<u32>("x").await.unwrap_err().kind(),
        cache_runtime::ErrorKind::Unavailable
    );
    late_follower(&Env { cache }).await;
}

#[cached_query(key = "runtime_user:{id}", tags = ["runtime_users"], skip(calls))]
async fn runtime_user(calls: &AtomicUsize, id: u32) -> String {
    calls.fetch_add(1, SeqCst);
    format!("user{id}")
}

/// Hole 5: a cache built in one runtime, that runtime dropped, used from another.
#[test]
fn a_cache_outlives_the_runtime_that_built_it() {
    let server = RedisServer::start();
    let calls = AtomicUsize::new(0);
    let first = tokio::runtime::Runtime::new().unwrap();
    let cache = first.block_on(async {
        let cache = Cache::builder(&server.url())
            .prefix(unique_prefix("runtimes"))
            .build()
            .await
            .unwrap();
        cache_runtime::scope(cache.clone(), runtime_user(&calls, 1)).await;
        cache
    });
    drop(first);

    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    second.block_on(cache_runtime::scope(cache.clone(), async {
        assert_eq!(runtime_user(&calls, 1).await, "user1");
        assert_eq!(calls.load(SeqCst), 1, "a hit ran the body again");
        cache.invalidate_tag("runtime_users").await.unwrap();
        runtime_user(&calls, 1).await;
        assert_eq!(calls.load(SeqCst), 2, "the invalidation took");
    }));
    assert_eq!(cache.stats().backend_errors, 0);
}

async fn reset_stats(conn: &mut ::redis::aio::MultiplexedConnection) {
    let _: () = ::redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(conn)
        .await
        .unwrap();
}

/// Fast hits: 32 concurrent callers of one cached query each cost one `MGET`, nothing else
/// (a hit takes no flight slot, so no caller waits for another's read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_hits_are_one_mget_each() {
    let server = RedisServer::start();
    let cache = Cache::builder(&server.url())
        .prefix(unique_prefix("concurrent"))
        .build()
        .await
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    cache_runtime::scope(cache.clone(), runtime_user(&calls, 7)).await;
    let mut conn = raw_connection(&server.url()).await;
    reset_stats(&mut conn).await;
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (cache, calls) = (cache.clone(), calls.clone());
            tokio::spawn(cache_runtime::scope(cache, async move {
                for _ in 0..10 {
                    runtime_user(&calls, 7).await;
                }
            }))
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(calls.load(SeqCst), 1);
    let commands = cache_tests::command_calls(&mut conn).await;
    // Each hit: the header of the value this process holds a copy of, and its
    // generations, in one pipeline.
    assert_eq!(
        commands,
        HashMap::from([("getrange".to_owned(), 320), ("mget".to_owned(), 320)])
    );
}

/// A page filled by another process (another `Cache` on the same prefix): its first hit
/// here learns the queries the page depends on (two round trips), every later hit is one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_filled_elsewhere_is_one_mget_after_its_first_hit() {
    let server = RedisServer::start();
    let prefix = unique_prefix("elsewhere");
    let build = || Cache::builder(&server.url()).prefix(&prefix).build();
    let (filler, reader) = (build().await.unwrap(), build().await.unwrap());
    let db = Arc::new(Db::default());
    let app = app(&db);
    Env { cache: filler }.get(&app, "/current").await;

    let reader = Env { cache: reader };
    let mut conn = raw_connection(&server.url()).await;
    reset_stats(&mut conn).await;
    reader.get(&app, "/current").await;
    assert_eq!(
        cache_tests::command_calls(&mut conn).await,
        HashMap::from([("mget".to_owned(), 2)])
    );
    reset_stats(&mut conn).await;
    for _ in 0..5 {
        reader.get(&app, "/current").await;
    }
    assert_eq!(
        cache_tests::command_calls(&mut conn).await,
        HashMap::from([("getrange".to_owned(), 5), ("mget".to_owned(), 5)])
    );
    assert_eq!(db.renders(), 1);
}
