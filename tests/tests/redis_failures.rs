//! A dead, late or frozen Redis never fails a cached call and never makes it hang: the
//! function runs uncached within the operation timeout, and caching resumes by itself.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, cached_query};
use cache_tests::RedisServer;

const OP_TIMEOUT: Duration = Duration::from_millis(100);
/// What one call may take at most while Redis misbehaves: the timeout plus generous slack
/// for a loaded CI machine (the body itself is instant).
const CALL_BOUND: Duration = Duration::from_millis(1500);

#[cached_query(skip(calls))]
async fn double(calls: &AtomicUsize, x: u32) -> u32 {
    calls.fetch_add(1, SeqCst);
    x * 2
}

async fn cache_for(server: &RedisServer) -> Cache {
    Cache::builder(&server.url())
        .timeout(OP_TIMEOUT)
        .circuit_breaker(3, Duration::from_millis(200))
        .build()
        .await
        .expect("a well-formed URL builds even when the server is down")
}

/// Calls `double(x)` and checks the answer is right and came within the bound.
async fn timed_call(calls: &AtomicUsize, x: u32) -> Duration {
    let start = Instant::now();
    let value = tokio::time::timeout(CALL_BOUND * 2, double(calls, x))
        .await
        .expect("call hung");
    assert_eq!(value, x * 2);
    let took = start.elapsed();
    assert!(
        took < CALL_BOUND,
        "a call took {took:?} while Redis was unavailable"
    );
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_start_then_up_starts_caching_without_restart() {
    let server = RedisServer::start();
    server.kill();
    let cache = cache_for(&server).await;
    let calls = AtomicUsize::new(0);
    cache_runtime::scope(cache.clone(), async {
        for _ in 0..5 {
            timed_call(&calls, 1).await;
        }
        assert_eq!(calls.load(SeqCst), 5, "no Redis: every call runs the body");

        server.restart();
        let deadline = Instant::now() + Duration::from_secs(15);
        while cache.stats().fills == 0 {
            assert!(
                Instant::now() < deadline,
                "caching never resumed: {:?}",
                cache.stats()
            );
            timed_call(&calls, 1).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let before = calls.load(SeqCst);
        timed_call(&calls, 1).await;
        assert_eq!(
            calls.load(SeqCst),
            before,
            "served from Redis once it came up"
        );
    })
    .await;
    assert!(cache.stats().backend_errors > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_redis_answers_correctly_within_the_timeout() {
    let server = RedisServer::start();
    let cache = cache_for(&server).await;
    let calls = AtomicUsize::new(0);
    cache_runtime::scope(cache.clone(), async {
        timed_call(&calls, 5).await;
        timed_call(&calls, 5).await;
        assert_eq!(calls.load(SeqCst), 1, "cached while Redis is up");

        server.kill();
        for _ in 0..10 {
            timed_call(&calls, 5).await;
        }
        assert_eq!(
            calls.load(SeqCst),
            11,
            "every call ran the body once Redis was gone"
        );
    })
    .await;
    let stats = cache.stats();
    assert!(stats.backend_errors >= 1, "{stats:?}");
    assert!(
        stats.skipped >= 1,
        "the breaker skipped a dead backend: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_redis_times_out_instead_of_hanging() {
    let server = RedisServer::start();
    let cache = cache_for(&server).await;
    let calls = AtomicUsize::new(0);
    cache_runtime::scope(cache.clone(), async {
        timed_call(&calls, 7).await;
        server.pause();
        let took = timed_call(&calls, 8).await;
        assert!(took >= OP_TIMEOUT, "it waited for the timeout ({took:?})");
        for _ in 0..5 {
            timed_call(&calls, 9).await;
        }
        server.resume();
    })
    .await;
    assert!(cache.stats().backend_errors >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_and_acl_user_urls_authenticate() {
    let server = RedisServer::start();
    // Set after start: the harness checks readiness with an unauthenticated PING.
    let mut admin = cache_tests::raw_connection(&server.url()).await;
    let _: () = ::redis::cmd("CONFIG")
        .arg(&["SET", "requirepass", "s3cret"])
        .query_async(&mut admin)
        .await
        .unwrap();
    // ACL users limited to the cache's own key prefix and the commands it needs, exactly
    // the list the README gives; `+select` for a database other than 0.
    for (user, extra) in [("app", None), ("app3", Some("+select"))] {
        let mut rules = vec![
            "SETUSER",
            user,
            "on",
            ">apppw",
            "~app:*",
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
        ];
        rules.extend(extra);
        let _: () = ::redis::cmd("ACL")
            .arg(&rules)
            .query_async(&mut admin)
            .await
            .unwrap();
    }

    for (url, prefix) in [
        (
            format!("redis://:s3cret@127.0.0.1:{}/0", server.port()),
            "default",
        ),
        (
            format!("redis://app:apppw@127.0.0.1:{}/0", server.port()),
            "app",
        ),
        (
            format!("redis://app3:apppw@127.0.0.1:{}/3", server.port()),
            "app",
        ),
    ] {
        let cache = Cache::builder(&url)
            .prefix(prefix)
            .timeout(OP_TIMEOUT)
            .build()
            .await
            .unwrap();
        let calls = AtomicUsize::new(0);
        cache_runtime::scope(cache.clone(), async {
            timed_call(&calls, 3).await;
            timed_call(&calls, 3).await;
        })
        .await;
        assert_eq!(
            calls.load(SeqCst),
            1,
            "{prefix}: cached through an authenticated connection"
        );
        assert_eq!(
            cache.stats().backend_errors,
            0,
            "{url}: {:?}",
            cache.stats()
        );
        // Invalidations (`SET XX KEEPTTL` in `MULTI`/`UNLINK`) and clearing (`SCAN`) too.
        cache.invalidate_all().await.unwrap();
        cache.clear().await.unwrap();
    }
    let keys_in = |db: u8| {
        let url = format!("redis://:s3cret@127.0.0.1:{}/{db}", server.port());
        async move {
            let mut conn = cache_tests::raw_connection(&url).await;
            let n: u64 = ::redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
            n
        }
    };
    let db3 = format!("redis://app3:apppw@127.0.0.1:{}/3", server.port());
    let cache = Cache::builder(&db3).prefix("app").build().await.unwrap();
    cache.set("in-db-3", &1, None).await.unwrap();
    assert!(keys_in(3).await > 0, "the value went to database 3");

    // Without `+select`, database 3 cannot be reached: calls run uncached.
    let url = format!("redis://app:apppw@127.0.0.1:{}/3", server.port());
    let cache = Cache::builder(&url)
        .prefix("app")
        .timeout(OP_TIMEOUT)
        .build()
        .await
        .unwrap();
    let calls = AtomicUsize::new(0);
    cache_runtime::scope(cache.clone(), async {
        timed_call(&calls, 4).await;
        timed_call(&calls, 4).await;
    })
    .await;
    assert_eq!(calls.load(SeqCst), 2, "no +select, no cache on db 3");
    assert!(cache.stats().backend_errors > 0);

    // A wrong password is not a startup error: calls run uncached and errors are counted.
    let url = format!("redis://:wrong@127.0.0.1:{}/0", server.port());
    let cache = cache_for_url(&url).await;
    let calls = AtomicUsize::new(0);
    cache_runtime::scope(cache.clone(), async {
        timed_call(&calls, 4).await;
        timed_call(&calls, 4).await;
    })
    .await;
    assert_eq!(calls.load(SeqCst), 2);
    assert!(cache.stats().backend_errors > 0);
}

async fn cache_for_url(url: &str) -> Cache {
    Cache::builder(url)
        .timeout(OP_TIMEOUT)
        .build()
        .await
        .unwrap()
}

/// After the cool-down the breaker is half-open: of many concurrent calls only one (the
/// probe) reaches the dead Redis; the others run uncached without touching it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_breaker_sends_one_probe() {
    let server = RedisServer::start();
    let cool_down = Duration::from_millis(300);
    let cache = Cache::builder(&server.url())
        .timeout(OP_TIMEOUT)
        .circuit_breaker(2, cool_down)
        .build()
        .await
        .unwrap();
    server.kill();
    let calls = AtomicUsize::new(0);
    cache_runtime::scope(cache.clone(), async {
        while cache.stats().skipped == 0 {
            timed_call(&calls, 1).await;
        }
        tokio::time::sleep(cool_down + Duration::from_millis(50)).await;
        let errors = cache.stats().backend_errors;
        let concurrent = (0..20).map(|i| timed_call(&calls, 100 + i));
        futures::future::join_all(concurrent).await;
        assert_eq!(
            cache.stats().backend_errors - errors,
            1,
            "one probe reached the dead server: {:?}",
            cache.stats()
        );
    })
    .await;
}
