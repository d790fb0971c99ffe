//! End to end: the blocking Diesel example, run as its own process (no tokio runtime in it),
//! on the embedded cache and on a private `redis-server`.

use std::process::Command;

use cache_tests::RedisServer;

fn run(cache_url: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_diesel_users"))
        .env("CACHE_URL", cache_url)
        .output()
        .expect("diesel_users runs");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn the_seed_query_is_cached_and_invalidated(stdout: &str) {
    let lines: Vec<&str> = stdout.lines().skip(1).collect();
    assert_eq!(
        lines,
        [
            "Cache MISS for active users.",
            "active users: 700",
            "Cache HIT for active users.",
            "active users: 700",
            "deactivated user 1",
            "Cache MISS for active users.",
            "active users: 699",
            "stats: hits=1 misses=2 fills=2 backend_errors=0",
        ],
        "{stdout}"
    );
}

#[test]
fn on_memory() {
    let stdout = run("memory://");
    assert!(stdout.starts_with("cache: memory:// (memory)"), "{stdout}");
    the_seed_query_is_cached_and_invalidated(&stdout);
}

#[test]
fn on_redis() {
    let redis = RedisServer::start();
    let stdout = run(&redis.url());
    assert!(stdout.contains("(redis)"), "{stdout}");
    the_seed_query_is_cached_and_invalidated(&stdout);
    // The rows live in Redis under the seed's key, read by any process, async or blocking.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let exists: bool = redis::cmd("EXISTS")
        .arg("diesel_users:1:active_users")
        .query(&mut conn)
        .unwrap();
    assert!(exists);
}
