//! `#[cached_query]` on both call styles, one suite: every case runs on an `async fn` (awaited
//! in a tokio runtime) and on a sync `fn` (called from a plain thread, no runtime anywhere),
//! each against the memory store and a real `redis-server`. The two styles share keys, so
//! the interop cases check that a value one style filled is a hit for the other.
//!
//! Each cached function exists twice, `*_async` and `*_sync`, with the same `key` template.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, cached_query};
use cache_tests::{Backend, RedisServer, test_cache};

/// How a case calls the cached functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    /// `async fn`s, awaited on a multi-thread tokio runtime.
    Async,
    /// Sync `fn`s, called on the test's own thread without any runtime.
    Blocking,
}

/// A case's cache, and the runtime the async style awaits on.
struct Env {
    cache: Cache,
    style: Style,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Env {
    fn new(backend: Backend, style: Style, test: &str) -> Env {
        let runtime = (style == Style::Async).then(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
        });
        // Building a cache needs no runtime either.
        let (cache, _) = cache_runtime::block_on(test_cache(backend, test, |b| b));
        Env {
            cache,
            style,
            runtime,
        }
    }

    /// Runs `f` with this env's cache as the default: in the runtime for the async style.
    fn run<T>(&self, f: impl FnOnce(&Env) -> T) -> T {
        cache_runtime::scope_blocking(self.cache.clone(), || f(self))
    }

    /// Awaits `fut` (async style) in the env's runtime, with the cache scoped.
    fn wait<F: Future>(&self, fut: F) -> F::Output {
        let runtime = self
            .runtime
            .as_ref()
            .expect("the async style has a runtime");
        runtime.block_on(cache_runtime::scope(self.cache.clone(), fut))
    }

    fn square(&self, calls: &AtomicUsize, x: u64) -> u64 {
        match self.style {
            Style::Async => self.wait(square_async(calls, x)),
            Style::Blocking => self.run(|_| square_sync(calls, x)),
        }
    }

    fn fallible(&self, calls: &AtomicUsize, fail: bool) -> Result<u32, String> {
        match self.style {
            Style::Async => self.wait(fallible_async(calls, fail)),
            Style::Blocking => self.run(|_| fallible_sync(calls, fail)),
        }
    }

    fn find(&self, calls: &AtomicUsize, id: u32) -> Option<u32> {
        match self.style {
            Style::Async => self.wait(find_async(calls, id)),
            Style::Blocking => self.run(|_| find_sync(calls, id)),
        }
    }

    fn team(&self, db: &Db) -> Vec<String> {
        match self.style {
            Style::Async => self.wait(team_async(db)),
            Style::Blocking => self.run(|_| team_sync(db)),
        }
    }

    fn invalidate_member(&self, id: u32) {
        match self.style {
            Style::Async => self.wait(member_async_invalidate(id)),
            Style::Blocking => self.run(|_| member_sync_invalidate(id)),
        }
        .unwrap();
    }

    fn invalidate_all_squares(&self) {
        match self.style {
            Style::Async => self.wait(square_async_invalidate_all()),
            Style::Blocking => self.run(|_| square_sync_invalidate_all()),
        }
        .unwrap();
    }

    /// `Cache::invalidate_tag`, awaited or blocked on.
    fn invalidate_tag(&self, tag: &str) {
        match self.style {
            Style::Async => self.wait(self.cache.invalidate_tag(tag)),
            Style::Blocking => cache_runtime::block_on(self.cache.invalidate_tag(tag)),
        }
        .unwrap();
    }
}

/// Four tests per case: memory and Redis, async and blocking.
macro_rules! on_both_styles {
    ($($case:ident),* $(,)?) => {
        mod memory_async {
            $(#[test] fn $case() { super::$case(super::Env::new(cache_tests::Backend::Memory, super::Style::Async, stringify!($case))) })*
        }
        mod memory_blocking {
            $(#[test] fn $case() { super::$case(super::Env::new(cache_tests::Backend::Memory, super::Style::Blocking, stringify!($case))) })*
        }
        mod redis_async {
            $(#[test] fn $case() { super::$case(super::Env::new(cache_tests::Backend::Redis, super::Style::Async, stringify!($case))) })*
        }
        mod redis_blocking {
            $(#[test] fn $case() { super::$case(super::Env::new(cache_tests::Backend::Redis, super::Style::Blocking, stringify!($case))) })*
        }
    };
}

on_both_styles!(
    a_hit_skips_the_body,
    errors_are_not_cached_and_none_is,
    concurrent_misses_run_the_body_once,
    companions_and_tags_invalidate,
    a_query_follows_the_queries_it_calls,
    values_of_the_other_style_are_hits,
);

#[cached_query(key = "square:{x}", skip(calls))]
async fn square_async(calls: &AtomicUsize, x: u64) -> u64 {
    calls.fetch_add(1, SeqCst);
    x * x
}

#[cached_query(key = "square:{x}", skip(calls))]
fn square_sync(calls: &AtomicUsize, x: u64) -> u64 {
    calls.fetch_add(1, SeqCst);
    x * x
}

fn a_hit_skips_the_body(env: Env) {
    let calls = AtomicUsize::new(0);
    for x in [3, 3, 4, 3, 4] {
        assert_eq!(env.square(&calls, x), x * x);
    }
    assert_eq!(calls.load(SeqCst), 2, "one fill per argument");
    let stats = env.cache.stats();
    assert_eq!((stats.misses, stats.hits, stats.fills), (2, 3, 2));
    assert_eq!(stats.backend_errors, 0);
}

#[cached_query(key = "fallible:{fail}", skip(calls))]
async fn fallible_async(calls: &AtomicUsize, fail: bool) -> Result<u32, String> {
    calls.fetch_add(1, SeqCst);
    if fail {
        return Err("no".into());
    }
    Ok(7)
}

#[cached_query(key = "fallible:{fail}", skip(calls))]
fn fallible_sync(calls: &AtomicUsize, fail: bool) -> Result<u32, String> {
    calls.fetch_add(1, SeqCst);
    // `?` and `return` stay inside the body.
    let seven: u32 = "7".parse().map_err(|_| "unparsable".to_string())?;
    if fail {
        return Err("no".into());
    }
    Ok(seven)
}

#[cached_query(key = "find:{id}", skip(calls))]
async fn find_async(calls: &AtomicUsize, id: u32) -> Option<u32> {
    calls.fetch_add(1, SeqCst);
    (id > 0).then_some(id)
}

#[cached_query(key = "find:{id}", skip(calls))]
fn find_sync(calls: &AtomicUsize, id: u32) -> Option<u32> {
    calls.fetch_add(1, SeqCst);
    (id > 0).then_some(id)
}

fn errors_are_not_cached_and_none_is(env: Env) {
    let calls = AtomicUsize::new(0);
    assert_eq!(env.fallible(&calls, true), Err("no".into()));
    assert_eq!(env.fallible(&calls, true), Err("no".into()));
    assert_eq!(calls.load(SeqCst), 2, "an Err is never stored");
    assert_eq!(env.fallible(&calls, false), Ok(7));
    assert_eq!(env.fallible(&calls, false), Ok(7));
    assert_eq!(calls.load(SeqCst), 3);

    let calls = AtomicUsize::new(0);
    assert_eq!(env.find(&calls, 0), None);
    assert_eq!(env.find(&calls, 0), None);
    assert_eq!(env.find(&calls, 5), Some(5));
    assert_eq!(env.find(&calls, 5), Some(5));
    assert_eq!(calls.load(SeqCst), 2, "None is cached like Some");
}

#[cached_query(key = "slow:{x}", skip(calls))]
async fn slow_async(calls: &AtomicUsize, x: u32) -> u32 {
    calls.fetch_add(1, SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    x
}

#[cached_query(key = "slow:{x}", skip(calls))]
fn slow_sync(calls: &AtomicUsize, x: u32) -> u32 {
    calls.fetch_add(1, SeqCst);
    std::thread::sleep(Duration::from_millis(300));
    x
}

/// Eight concurrent misses of one key: the body runs once (single-flight, a blocking wait
/// for the sync style: eight threads).
fn concurrent_misses_run_the_body_once(env: Env) {
    let calls = AtomicUsize::new(0);
    match env.style {
        Style::Async => {
            let all = env.wait(async {
                let calls = &calls;
                futures::future::join_all((0..8).map(|_| slow_async(calls, 9))).await
            });
            assert!(all.iter().all(|&v| v == 9));
        }
        Style::Blocking => std::thread::scope(|s| {
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    let (cache, calls) = (env.cache.clone(), &calls);
                    s.spawn(move || cache_runtime::scope_blocking(cache, || slow_sync(calls, 9)))
                })
                .collect();
            for thread in threads {
                assert_eq!(thread.join().unwrap(), 9);
            }
        }),
    }
    assert_eq!(calls.load(SeqCst), 1, "single-flight");
    let stats = env.cache.stats();
    assert_eq!((stats.misses, stats.fills), (1, 1));
    assert_eq!(stats.hits, 7, "every other caller got the leader's value");
}

/// A tiny database: rows the cached functions read, counting reads.
#[derive(Default)]
struct Db {
    reads: AtomicUsize,
    names: std::sync::Mutex<Vec<String>>,
}

impl Db {
    fn with(names: &[&str]) -> Db {
        Db {
            reads: AtomicUsize::new(0),
            names: std::sync::Mutex::new(names.iter().map(|n| n.to_string()).collect()),
        }
    }

    fn read(&self, id: u32) -> String {
        self.reads.fetch_add(1, SeqCst);
        self.names.lock().unwrap()[id as usize].clone()
    }

    fn rename(&self, id: u32, name: &str) {
        self.names.lock().unwrap()[id as usize] = name.into();
    }

    fn reads(&self) -> usize {
        self.reads.load(SeqCst)
    }
}

#[cached_query(key = "member:{id}", skip(db), tags = ["members"])]
async fn member_async(db: &Db, id: u32) -> String {
    db.read(id)
}

#[cached_query(key = "member:{id}", skip(db), tags = ["members"])]
fn member_sync(db: &Db, id: u32) -> String {
    db.read(id)
}

/// Calls two cached members: a query of queries (a blocking one nests its executors).
#[cached_query(key = "team", skip(db))]
async fn team_async(db: &Db) -> Vec<String> {
    vec![member_async(db, 0).await, member_async(db, 1).await]
}

#[cached_query(key = "team", skip(db))]
fn team_sync(db: &Db) -> Vec<String> {
    vec![member_sync(db, 0), member_sync(db, 1)]
}

fn companions_and_tags_invalidate(env: Env) {
    let calls = AtomicUsize::new(0);
    env.square(&calls, 2);
    env.square(&calls, 3);
    env.invalidate_all_squares();
    env.square(&calls, 2);
    env.square(&calls, 3);
    assert_eq!(
        calls.load(SeqCst),
        4,
        "`_invalidate_all` dropped both entries"
    );
    env.square(&calls, 3);
    assert_eq!(calls.load(SeqCst), 4);

    let db = Db::with(&["ada", "bob"]);
    env.team(&db);
    env.invalidate_member(1);
    assert_eq!(db.reads(), 2);
    db.rename(1, "bea");
    assert_eq!(
        env.team(&db),
        ["ada", "bea"],
        "`_invalidate(id)`: that entry only"
    );
    assert_eq!(db.reads(), 3);
    db.rename(0, "amy");
    env.invalidate_tag("members");
    assert_eq!(
        env.team(&db),
        ["amy", "bea"],
        "the tag reached every member"
    );
    assert_eq!(db.reads(), 5);
    assert_eq!(env.team(&db), ["amy", "bea"]);
    assert_eq!(db.reads(), 5);
}

fn a_query_follows_the_queries_it_calls(env: Env) {
    let db = Db::with(&["ada", "bob"]);
    assert_eq!(env.team(&db), ["ada", "bob"]);
    assert_eq!(env.team(&db), ["ada", "bob"]);
    assert_eq!(db.reads(), 2, "the team is a hit");
    db.rename(0, "amy");
    env.invalidate_member(0);
    // Only the member was invalidated: the team recorded its generations, so it is stale too.
    assert_eq!(env.team(&db), ["amy", "bob"]);
    assert_eq!(db.reads(), 3, "member 1 was a hit inside the team's refill");
    // Member 0's entry was deleted with its counter: a plain miss. The team was found stale.
    assert_eq!(env.cache.stats().invalidated, 1, "the team");
}

/// A value one style filled is a hit for the other, both ways, and their invalidations
/// reach each other's values.
fn values_of_the_other_style_are_hits(env: Env) {
    let calls = AtomicUsize::new(0);
    let other = |x| match env.style {
        // The other style: a blocking call from a thread of its own, or an async one on a
        // runtime of its own.
        Style::Async => {
            let cache = env.cache.clone();
            let calls = &calls;
            std::thread::scope(|s| {
                s.spawn(move || cache_runtime::scope_blocking(cache, || square_sync(calls, x)))
                    .join()
                    .unwrap()
            })
        }
        Style::Blocking => tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(cache_runtime::scope(
                env.cache.clone(),
                square_async(&calls, x),
            )),
    };
    assert_eq!(other(5), 25);
    assert_eq!(env.square(&calls, 5), 25);
    assert_eq!(
        calls.load(SeqCst),
        1,
        "filled by the other style, a hit here"
    );
    assert_eq!(env.square(&calls, 6), 36);
    assert_eq!(other(6), 36);
    assert_eq!(
        calls.load(SeqCst),
        2,
        "filled here, a hit for the other style"
    );
    assert_eq!(env.cache.stats().hits, 2);

    let db = Db::with(&["ada", "bob"]);
    env.team(&db);
    match env.style {
        Style::Async => {
            let cache = env.cache.clone();
            std::thread::scope(|s| {
                s.spawn(move || cache_runtime::scope_blocking(cache, || member_sync_invalidate(1)))
                    .join()
                    .unwrap()
                    .unwrap()
            })
        }
        Style::Blocking => tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(cache_runtime::scope(
                env.cache.clone(),
                member_async_invalidate(1),
            ))
            .unwrap(),
    }
    db.rename(1, "bea");
    assert_eq!(
        env.team(&db),
        ["ada", "bea"],
        "the other style's invalidation"
    );
}

// ---- blocking only: leases, timeouts, failures, spawn_blocking ----

#[cached_query(key = "leased", skip(calls))]
fn leased(calls: &AtomicUsize) -> u32 {
    calls.fetch_add(1, SeqCst);
    1
}

/// Another process holds the key's lease (set by hand, for 600 ms): a blocking miss waits
/// for it, polling with the thread's sleep (a tokio timer would panic without a runtime),
/// then fills itself once the lease expired.
#[test]
fn a_blocking_miss_waits_for_another_processs_lease() {
    let (cache, url) = cache_runtime::block_on(test_cache(Backend::Redis, "lease", |b| b));
    let client = redis::Client::open(url.unwrap()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let key = format!("{}:lease:1:leased", cache.prefix());
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("another process")
        .arg("PX")
        .arg(600)
        .query(&mut conn)
        .unwrap();
    let calls = AtomicUsize::new(0);
    let started = Instant::now();
    assert_eq!(
        cache_runtime::scope_blocking(cache.clone(), || leased(&calls)),
        1
    );
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(450), "waited {waited:?}");
    assert!(waited < Duration::from_secs(4), "waited {waited:?}");
    assert_eq!(calls.load(SeqCst), 1);
    let stats = cache.stats();
    assert_eq!((stats.lease_waits, stats.fills), (1, 1), "{stats:?}");
}

/// A dead Redis (nothing listens) and a frozen one (`SIGSTOP`ped) are misses within the
/// timeout, never errors, for a blocking call as for an async one; the breaker then skips
/// the backend.
#[test]
fn a_failing_redis_is_a_miss_within_the_timeout() {
    let calls = AtomicUsize::new(0);
    let dead = cache_runtime::block_on(
        Cache::builder("redis://127.0.0.1:1/0")
            .timeout(Duration::from_millis(100))
            .build(),
    )
    .unwrap();
    cache_runtime::scope_blocking(dead.clone(), || {
        for _ in 0..3 {
            assert_eq!(square_sync(&calls, 2), 4);
        }
    });
    assert_eq!(calls.load(SeqCst), 3);
    assert!(dead.stats().backend_errors >= 1, "{:?}", dead.stats());

    let server = RedisServer::start();
    let frozen = cache_runtime::block_on(
        Cache::builder(&server.url())
            .timeout(Duration::from_millis(200))
            .circuit_breaker(2, Duration::from_secs(30))
            .build(),
    )
    .unwrap();
    cache_runtime::scope_blocking(frozen.clone(), || square_sync(&calls, 3));
    assert_eq!(frozen.stats().fills, 1, "stored while Redis answered");
    server.pause();
    let calls = AtomicUsize::new(0);
    for _ in 0..4 {
        let started = Instant::now();
        cache_runtime::scope_blocking(frozen.clone(), || square_sync(&calls, 3));
        let took = started.elapsed();
        // One read bounded by the timeout (the write after a miss too), then the breaker.
        assert!(took < Duration::from_millis(1500), "took {took:?}");
    }
    assert_eq!(calls.load(SeqCst), 4, "every call ran uncached");
    let stats = frozen.stats();
    assert!(stats.backend_errors >= 2, "{stats:?}");
    assert!(stats.skipped >= 1, "the breaker opened: {stats:?}");
    server.resume();
}

/// Stored under the same key by the async style on one thread and read back by the blocking
/// style on tokio's blocking pool, through `cache_runtime::spawn_blocking`, which carries the
/// scoped cache and hands the blocking call's dependencies to the page (here: a cached
/// async query) that made it.
#[cached_query(key = "page")]
async fn page(db: Arc<Db>) -> String {
    let members = cache_runtime::spawn_blocking(move || team_sync(&db))
        .await
        .unwrap();
    members.join(", ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_blocking_keeps_the_scope_and_the_dependencies() {
    for backend in [Backend::Memory, Backend::Redis] {
        let (cache, _) = test_cache(backend, "spawn_blocking", |b| b).await;
        let db = Arc::new(Db::with(&["ada", "bob"]));
        cache_runtime::scope(cache.clone(), async {
            assert_eq!(page(db.clone()).await, "ada, bob");
            assert_eq!(page(db.clone()).await, "ada, bob");
            assert_eq!(db.reads(), 2);
            db.rename(1, "bea");
            // A sync companion, from async code: off the workers too.
            cache_runtime::spawn_blocking(|| member_sync_invalidate(1))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                page(db.clone()).await,
                "ada, bea",
                "the page followed the member its blocking call read"
            );
        })
        .await;
        assert_eq!(db.reads(), 3, "{backend:?}");
    }
}

/// A blocking call straight from async code (no `spawn_blocking`) still works: it blocks the
/// worker for the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_call_inside_a_worker_works() {
    for backend in [Backend::Memory, Backend::Redis] {
        let (cache, _) = test_cache(backend, "inside_a_worker", |b| b).await;
        let calls = AtomicUsize::new(0);
        cache_runtime::scope(cache.clone(), async {
            assert_eq!(square_sync(&calls, 8), 64);
            assert_eq!(square_async(&calls, 8).await, 64);
            assert_eq!(square_sync(&calls, 8), 64);
        })
        .await;
        assert_eq!(calls.load(SeqCst), 1, "{backend:?}");
    }
}
