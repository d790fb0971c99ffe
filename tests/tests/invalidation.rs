//! Invalidation on both backends: one entry, one query, a tag, the whole cache, and pages
//! that follow the queries they were built from. Redis-only cases at the end: lost
//! generation counters, a restarted Redis, errors returned, and the cost of a hit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::routing::get;
use cache_runtime::{Cache, cached_query, cached_view};
use cache_tests::{Backend, RedisServer, raw_connection, test_cache, unique_prefix};
use http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

/// A tiny "database" that counts its queries.
#[derive(Default)]
struct Db {
    names: Mutex<HashMap<u32, String>>,
    queries: AtomicUsize,
}

impl Db {
    fn with_users() -> Arc<Db> {
        let db = Db::default();
        for id in 1..=3 {
            db.names.lock().unwrap().insert(id, format!("user{id}"));
        }
        Arc::new(db)
    }
    fn rename(&self, id: u32, name: &str) {
        self.names.lock().unwrap().insert(id, name.to_owned());
    }
    fn queries(&self) -> usize {
        self.queries.load(SeqCst)
    }
}

#[cached_query(key = "inv_user:{id}", tags = ["users", "user:{id}"], skip(db))]
async fn user(db: &Db, id: u32) -> Option<String> {
    db.queries.fetch_add(1, SeqCst);
    db.names.lock().unwrap().get(&id).cloned()
}

/// A query built from another cached query.
#[cached_query(key = "team:{lead}", skip(db))]
async fn team(db: &Db, lead: u32) -> Vec<String> {
    let mut names = Vec::new();
    for id in [lead, lead + 1] {
        names.push(user(db, id).await.unwrap_or_default());
    }
    names
}

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
    async fn run<F: Future>(&self, f: F) -> F::Output {
        cache_runtime::scope(self.cache.clone(), f).await
    }
    /// Reads users 1 and 2, returning how many database queries that took.
    async fn read_both(&self, db: &Db) -> usize {
        let before = db.queries();
        self.run(async {
            user(db, 1).await;
            user(db, 2).await;
        })
        .await;
        db.queries() - before
    }
}

cache_tests::on_both_backends!(
    queries_follow_the_queries_they_called,
    one_entry_with_the_same_arguments,
    every_entry_of_a_query,
    a_tag,
    the_whole_cache,
    pages_follow_the_queries_they_called,
    views_by_handler_and_path_and_tag,
);
cache_tests::on_cluster!(
    queries_follow_the_queries_they_called,
    one_entry_with_the_same_arguments,
    every_entry_of_a_query,
    a_tag,
    the_whole_cache,
    pages_follow_the_queries_they_called,
    views_by_handler_and_path_and_tag,
);

async fn queries_follow_the_queries_they_called(env: Env) {
    let db = Db::with_users();
    assert_eq!(env.run(team(&db, 1)).await, ["user1", "user2"]);
    assert_eq!(env.run(team(&db, 1)).await, ["user1", "user2"]);
    assert_eq!(db.queries(), 2);
    db.rename(2, "bob");
    env.cache.invalidate_tag("user:2").await.unwrap();
    assert_eq!(
        env.run(team(&db, 1)).await,
        ["user1", "bob"],
        "the outer query followed"
    );
    assert_eq!(db.queries(), 3, "user 1 still came from the cache");
}

async fn one_entry_with_the_same_arguments(env: Env) {
    let db = Db::with_users();
    assert_eq!(env.read_both(&db).await, 2);
    db.rename(1, "ada");
    env.run(user_invalidate(1)).await.unwrap();
    assert_eq!(env.read_both(&db).await, 1, "only user 1 was recomputed");
    assert_eq!(env.run(user(&db, 1)).await.as_deref(), Some("ada"));
    assert_eq!(env.read_both(&db).await, 0);
}

async fn every_entry_of_a_query(env: Env) {
    let db = Db::with_users();
    assert_eq!(env.read_both(&db).await, 2);
    env.run(user_invalidate_all()).await.unwrap();
    assert_eq!(env.read_both(&db).await, 2);
    assert_eq!(env.read_both(&db).await, 0);
    assert_eq!(env.cache.stats().invalidated, 2);
}

async fn a_tag(env: Env) {
    let db = Db::with_users();
    assert_eq!(env.read_both(&db).await, 2);
    env.cache.invalidate_tag("user:2").await.unwrap();
    assert_eq!(env.read_both(&db).await, 1, "only the entry tagged user:2");
    env.cache.invalidate_tag("users").await.unwrap();
    assert_eq!(env.read_both(&db).await, 2, "both carry the tag users");
    env.cache.invalidate_tag("nobody").await.unwrap();
    assert_eq!(
        env.read_both(&db).await,
        0,
        "an unrelated tag changes nothing"
    );
}

async fn the_whole_cache(env: Env) {
    let db = Db::with_users();
    env.cache.set("plain", &7u32, None).await.unwrap();
    assert_eq!(env.read_both(&db).await, 2);
    env.cache.invalidate_all().await.unwrap();
    assert_eq!(env.read_both(&db).await, 2);
    assert_eq!(
        env.cache.get::<u32>("plain").await.unwrap(),
        None,
        "Cache::set values too"
    );
}

/// A page built from the cached `user` query: no tags or annotations of its own.
#[cached_view(ttl = 60)]
async fn profile(State(db): State<Arc<Db>>, Path(id): Path<u32>) -> String {
    format!("profile of {}", user(&db, id).await.unwrap_or_default())
}

#[cached_view(ttl = 60, tags = ["pages"])]
async fn listing(State(db): State<Arc<Db>>) -> String {
    db.queries.fetch_add(1, SeqCst);
    let names = db.names.lock().unwrap();
    let mut names: Vec<_> = names.values().cloned().collect();
    names.sort();
    names.join(",")
}

fn app(db: &Arc<Db>) -> Router {
    Router::new()
        .route("/profile/{id}", get(profile))
        .route("/listing", get(listing))
        .with_state(db.clone())
}

async fn get_text(env: &Env, app: &Router, path: &str) -> String {
    let request = Request::get(path)
        .header("host", "example.com")
        .body(Body::empty())
        .unwrap();
    let response = env.run(app.clone().oneshot(request)).await.unwrap();
    String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

async fn pages_follow_the_queries_they_called(env: Env) {
    let db = Db::with_users();
    let app = app(&db);
    assert_eq!(get_text(&env, &app, "/profile/1").await, "profile of user1");
    assert_eq!(get_text(&env, &app, "/profile/1").await, "profile of user1");
    assert_eq!(db.queries(), 1, "the page is cached");

    // Invalidate only the query's tag: the page built from it re-renders with the new data.
    db.rename(1, "ada");
    env.cache.invalidate_tag("user:1").await.unwrap();
    assert_eq!(get_text(&env, &app, "/profile/1").await, "profile of ada");
    assert_eq!(db.queries(), 2);

    // The same through the query's own entry.
    db.rename(1, "grace");
    env.run(user_invalidate(1)).await.unwrap();
    assert_eq!(get_text(&env, &app, "/profile/1").await, "profile of grace");

    // A tag of another user leaves the page alone.
    env.cache.invalidate_tag("user:2").await.unwrap();
    assert_eq!(get_text(&env, &app, "/profile/1").await, "profile of grace");
    assert_eq!(db.queries(), 3);
}

async fn views_by_handler_and_path_and_tag(env: Env) {
    let db = Db::with_users();
    let app = app(&db);
    for _ in 0..2 {
        get_text(&env, &app, "/listing").await;
        get_text(&env, &app, "/listing?sort=desc").await;
    }
    assert_eq!(db.queries(), 2);
    // A path's invalidation covers every query string of it (the query given is ignored).
    env.run(listing_invalidate("/listing?sort=desc"))
        .await
        .unwrap();
    get_text(&env, &app, "/listing").await;
    get_text(&env, &app, "/listing?sort=desc").await;
    assert_eq!(db.queries(), 4, "one path, both query strings");
    env.run(listing_invalidate_all()).await.unwrap();
    get_text(&env, &app, "/listing").await;
    get_text(&env, &app, "/listing?sort=desc").await;
    assert_eq!(db.queries(), 6, "every path of the handler");
    env.cache.invalidate_tag("pages").await.unwrap();
    get_text(&env, &app, "/listing").await;
    assert_eq!(db.queries(), 7, "the view's tag");
}

// --- Redis only -------------------------------------------------------------------------

async fn redis_env(server: &RedisServer, test: &str) -> Env {
    let cache = Cache::builder(&server.url())
        .prefix(unique_prefix(test))
        .timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    Env {
        cache,
        redis_url: Some(server.url()),
    }
}

/// Every key under the cache's generation prefix (SCAN, as a user's tooling would).
async fn generation_keys(env: &Env) -> Vec<String> {
    let mut conn = raw_connection(env.redis_url.as_ref().unwrap()).await;
    let pattern = format!("{}:gen:*", env.cache.prefix());
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = ::redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .query_async(&mut conn)
            .await
            .unwrap();
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_generation_counters_never_resurrect_old_entries() {
    let server = RedisServer::start();
    let env = redis_env(&server, "lost").await;
    let db = Db::with_users();
    let mut conn = raw_connection(&server.url()).await;
    let entry = format!("{}:1:inv_user:1", env.cache.prefix());

    assert_eq!(env.read_both(&db).await, 2);
    let old_bytes: Vec<u8> = ::redis::cmd("GET")
        .arg(&entry)
        .query_async(&mut conn)
        .await
        .unwrap();
    db.rename(1, "new");

    // Counters evicted (maxmemory) or deleted: every entry that recorded them is stale.
    let keys = generation_keys(&env).await;
    assert!(keys.len() >= 4, "all, q:, e:, t: counters exist: {keys:?}");
    let _: () = ::redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(env.read_both(&db).await, 2, "no counter, no hit");
    assert_eq!(env.run(user(&db, 1)).await.as_deref(), Some("new"));

    // The old entry put back (as a replica or a restore could) never matches the new counters.
    let _: () = ::redis::cmd("SET")
        .arg(&entry)
        .arg(&old_bytes)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        env.run(user(&db, 1)).await.as_deref(),
        Some("new"),
        "resurrected entry served"
    );

    // Redis restarted without persistence: counters are recreated with new random values.
    server.restart();
    let mut conn = raw_connection(&server.url()).await;
    let _: () = ::redis::cmd("SET")
        .arg(&entry)
        .arg(&old_bytes)
        .query_async(&mut conn)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = env.run(user(&db, 1)).await;
        assert_eq!(
            got.as_deref(),
            Some("new"),
            "an entry from before the restart was served"
        );
        if env.cache.stats().invalidated >= 3 || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        env.cache.stats().invalidated >= 3,
        "{:?}",
        env.cache.stats()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidation_errors_are_returned() {
    let server = RedisServer::start();
    let env = redis_env(&server, "errors").await;
    let db = Db::with_users();
    assert_eq!(env.read_both(&db).await, 2);
    server.kill();
    assert!(env.cache.invalidate_tag("users").await.is_err());
    assert!(env.cache.invalidate_all().await.is_err());
    assert!(env.run(user_invalidate(1)).await.is_err());
    assert!(env.run(user_invalidate_all()).await.is_err());
    // Reads still answer, uncached.
    assert_eq!(env.run(user(&db, 1)).await.as_deref(), Some("user1"));
}

/// Client commands since the last reset, minus those the script runs inside Redis.
async fn commands_for(
    conn: &mut ::redis::aio::MultiplexedConnection,
    hits: impl Future,
) -> HashMap<String, u64> {
    let _: () = ::redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(conn)
        .await
        .unwrap();
    hits.await;
    cache_tests::command_calls(conn).await
}

fn counts(pairs: &[(&str, u64)]) -> HashMap<String, u64> {
    pairs
        .iter()
        .map(|(name, n)| ((*name).to_owned(), *n))
        .collect()
}

/// A hit is one round trip: with copies (the default on Redis), the header of the value this
/// process holds a copy of and the generations it recorded (`GETRANGE` and `MGET`, one
/// pipeline); without, one `MGET` of the value and its generations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_is_one_round_trip() {
    let server = RedisServer::start();
    for copies in [true, false] {
        let cache = Cache::builder(&server.url())
            .prefix(unique_prefix("commands"))
            .local_copies(if copies { 1 << 20 } else { 0 })
            .build()
            .await
            .unwrap();
        let env = Env {
            cache,
            redis_url: Some(server.url()),
        };
        let hits = |n: u64| {
            if copies {
                counts(&[("getrange", n), ("mget", n)])
            } else {
                counts(&[("mget", n)])
            }
        };
        let db = Db::with_users();
        let app = app(&db);
        let mut conn = raw_connection(&server.url()).await;

        // A query hit: the entry and its 5 generations (all, q:, e:, 2 tags).
        env.run(user(&db, 1)).await; // miss + fill
        let calls = commands_for(
            &mut conn,
            env.run(async {
                for _ in 0..10 {
                    user(&db, 1).await;
                }
            }),
        )
        .await;
        assert_eq!(calls, hits(10), "copies: {copies}");

        // A page hit: its dependencies include those of the queries it called, known from
        // the value this process stored, so the same single read of the entry and all of them.
        get_text(&env, &app, "/profile/2").await;
        let calls = commands_for(&mut conn, async {
            for _ in 0..10 {
                get_text(&env, &app, "/profile/2").await;
            }
        })
        .await;
        assert_eq!(calls, hits(10), "copies: {copies}");

        // A query that calls a cached query too.
        env.run(team(&db, 1)).await;
        let calls = commands_for(
            &mut conn,
            env.run(async {
                for _ in 0..10 {
                    team(&db, 1).await;
                }
            }),
        )
        .await;
        assert_eq!(calls, hits(10), "copies: {copies}");
        assert_eq!(db.queries(), 2, "users 1 and 2, each queried once");
    }
}
