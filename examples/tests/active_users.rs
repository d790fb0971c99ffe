//! End to end: the real `active_users` server, started as its own process on a free port,
//! against the embedded cache and a private `redis-server`, driven by real HTTP requests.

mod common;

use cache_tests::RedisServer;
use common::Server;

async fn the_seed_app_caches_and_invalidates(cache_url: &str) {
    let server = Server::start(cache_url);

    // Uncached: every request renders 700 active users from SQLite.
    assert_eq!(server.users_in("/users").await, (700, true, None));

    // The page cache: a miss, then a hit (with an Age header), the same body.
    let (n, _, age) = server.users_in("/users/page").await;
    assert_eq!((n, age), (700, None));
    let (n, _, age) = server.users_in("/users/page").await;
    assert_eq!(n, 700);
    assert!(age.is_some(), "the second GET is served from the cache");

    // The query cache logs as the seed does.
    assert_eq!(server.users_in("/users/query").await.0, 700);
    server.wait_for("Cache MISS for active users.", 1).await;
    assert_eq!(server.users_in("/users/query").await.0, 700);
    server.wait_for("Cache HIT for active users.", 1).await;
    assert_eq!(server.count("Cache MISS for active users."), 1);

    // Deactivating a user invalidates both, so the next GETs show the change.
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/users/1/deactivate", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(server.users_in("/users/query").await.0, 699);
    server.wait_for("Cache MISS for active users.", 2).await;
    let (n, has_user_1, age) = server.users_in("/users/page").await;
    assert_eq!(
        (n, has_user_1, age),
        (699, false, None),
        "the page was re-rendered"
    );
    let (n, _, age) = server.users_in("/users/page").await;
    assert_eq!(n, 699);
    assert!(age.is_some(), "and cached again");

    let stats: serde_json::Value = server.get("/stats").await.json().await.unwrap();
    assert_eq!(stats["backend_errors"], 0, "{stats}");
    assert!(stats["hits"].as_u64().unwrap() >= 3, "{stats}");
}

#[tokio::test]
async fn on_memory() {
    the_seed_app_caches_and_invalidates("memory://").await;
}

#[tokio::test]
async fn on_redis() {
    let redis = RedisServer::start();
    the_seed_app_caches_and_invalidates(&redis.url()).await;
    let mut conn = cache_tests::raw_connection(&redis.url()).await;
    let exists: bool = redis::cmd("EXISTS")
        .arg("active_users:1:active_users")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(exists, "the query entry lives in Redis");
}
