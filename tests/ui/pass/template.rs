// An async fn keyed by a template; the pool is skipped.
use cache_runtime::{Cache, cached_query};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Pool;

#[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
struct User {
    id: i64,
    name: String,
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

/// Docs stay on the function.
#[cached_query(key = "user:{id}", version = 2, ttl = 60, tags = ["users", "user:{id}"], skip(db))]
pub async fn get_user(db: &Pool, id: i64) -> Option<User> {
    let _ = db;
    RUNS.fetch_add(1, Ordering::SeqCst);
    if id < 0 {
        return None;
    }
    Some(User { id, name: format!("user {id}") })
}

#[cached_query(key = "active_users")]
async fn active_users() -> Vec<i64> {
    vec![1, 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    cache_runtime::install(Cache::from_url("memory://").await.unwrap());
    let pool = Pool;
    let first = get_user(&pool, 1).await;
    assert_eq!(get_user(&pool, 1).await, first);
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(active_users().await, [1, 2]);
}
