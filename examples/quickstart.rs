//! The smallest tour: one cached query, called a few times.
//!
//! ```text
//! cargo run --example quickstart                                  # embedded memory:// cache
//! CACHE_URL=redis://127.0.0.1:6379/0 cargo run --example quickstart  # Redis
//! ```

use std::time::{Duration, Instant};

use cache_runtime::{Cache, cached_query};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone)]
struct User {
    id: u32,
    name: String,
    email: String,
    is_active: bool,
}

/// Stands in for `SELECT * FROM users WHERE is_active = 1`: slow on purpose.
#[cached_query(key = "active_users", version = 1, ttl = 600)]
async fn active_users() -> Vec<User> {
    println!("Cache MISS for active users.");
    tokio::time::sleep(Duration::from_millis(200)).await;
    (1..=1000)
        .map(|id| User {
            id,
            name: format!("user{id}"),
            email: format!("user{id}@example.com"),
            is_active: id % 10 < 7,
        })
        .filter(|u| u.is_active)
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), cache_runtime::Error> {
    let url = std::env::var("CACHE_URL")
        .or_else(|_| std::env::var("REDIS_URL"))
        .unwrap_or_else(|_| "memory://".into());
    let cache = Cache::builder(&url).prefix("quickstart").build().await?;
    println!("cache: {url} ({})", cache.backend_name());
    cache_runtime::install(cache.clone());

    for _ in 0..3 {
        let hits = cache.stats().hits;
        let started = Instant::now();
        let users = active_users().await;
        if cache.stats().hits > hits {
            println!("Cache HIT for active users.");
        }
        println!(
            "  {} active users in {:.1?}",
            users.len(),
            started.elapsed()
        );
    }
    println!("stats: {:?}", cache.stats());
    Ok(())
}
