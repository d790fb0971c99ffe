//! The seed's `active_users` query with Diesel and SQLite: blocking code, no tokio runtime,
//! the same `#[cached_query]` as the async app (a sync `fn` is cached with a blocking call).
//!
//! ```text
//! cargo run --bin diesel_users                                   # memory:// cache
//! CACHE_URL=redis://127.0.0.1:6379/0 cargo run --bin diesel_users
//! ```
//!
//! It seeds 1,000 users (700 active) in an in-memory SQLite database, reads the active users
//! twice (a miss, then a hit), deactivates user 1 and invalidates the `users` tag, and reads
//! them again (a miss: 699).

use cache_runtime::{Cache, cached_query};
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use serde::{Deserialize, Serialize};

diesel::table! {
    users (id) {
        id -> BigInt,
        name -> Text,
        email -> Text,
        is_active -> Bool,
    }
}

#[derive(Queryable, Selectable, Insertable, Serialize, Deserialize, Debug)]
#[diesel(table_name = users)]
struct User {
    id: i64,
    name: String,
    email: String,
    is_active: bool,
}

/// The seed's `cache.get('active_users')` / `cache.set(...)`, as one annotation on a blocking
/// Diesel query. `QueryResult` is a `Result`: only `Ok` rows are cached.
#[cached_query(key = "active_users", version = 1, ttl = 600, tags = ["users"], skip(conn))]
fn active_users(conn: &mut SqliteConnection) -> QueryResult<Vec<User>> {
    println!("Cache MISS for active users.");
    users::table
        .filter(users::is_active.eq(true))
        .order(users::id)
        .select(User::as_select())
        .load(conn)
}

/// Creates and fills the table: 1,000 users, 700 of them active.
fn seed(conn: &mut SqliteConnection) -> QueryResult<()> {
    diesel::sql_query(
        "CREATE TABLE users (id BIGINT PRIMARY KEY NOT NULL, name TEXT NOT NULL, \
         email TEXT NOT NULL, is_active BOOLEAN NOT NULL)",
    )
    .execute(conn)?;
    let rows: Vec<User> = (1..=1000i64)
        .map(|id| User {
            id,
            name: format!("user{id}"),
            email: format!("user{id}@example.com"),
            is_active: id % 10 < 7,
        })
        .collect();
    for chunk in rows.chunks(200) {
        diesel::insert_into(users::table)
            .values(chunk)
            .execute(conn)?;
    }
    Ok(())
}

/// Reads the active users through the cache, saying whether it was a hit.
fn show(cache: &Cache, conn: &mut SqliteConnection) -> anyhow::Result<()> {
    let hits = cache.stats().hits;
    let users = active_users(conn)?;
    if cache.stats().hits > hits {
        println!("Cache HIT for active users.");
    }
    println!("active users: {}", users.len());
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let url = std::env::var("CACHE_URL").unwrap_or_else(|_| "memory://".into());
    // Building a cache needs no runtime: `block_on` drives it on this thread.
    let cache = cache_runtime::block_on(Cache::builder(&url).prefix("diesel_users").build())?;
    cache_runtime::install(cache.clone());
    println!("cache: {url} ({})", cache.backend_name());

    let mut conn = SqliteConnection::establish(":memory:")?;
    seed(&mut conn)?;

    show(&cache, &mut conn)?; // miss: runs the query, stores the rows
    show(&cache, &mut conn)?; // hit: the query does not run

    diesel::update(users::table.find(1))
        .set(users::is_active.eq(false))
        .execute(&mut conn)?;
    // After the write, invalidate what it made stale (`active_users_invalidate()` would do
    // for this one query; the tag reaches every query and page tagged `users`).
    cache_runtime::block_on(cache.invalidate_tag("users"))?;
    println!("deactivated user 1");

    show(&cache, &mut conn)?; // miss again: 699
    let stats = cache.stats();
    println!(
        "stats: hits={} misses={} fills={} backend_errors={}",
        stats.hits, stats.misses, stats.fills, stats.backend_errors
    );
    Ok(())
}
