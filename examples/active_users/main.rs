//! The seed app, for real: an axum server over SQLite with three views of the active users:
//! uncached, cached as a whole page (`#[cached_view]`), and built from a cached query
//! (`#[cached_query]`), plus a deactivate endpoint that invalidates what it made stale.
//!
//! ```text
//! cargo run --release --bin active_users                          # memory:// cache
//! CACHE_URL=redis://127.0.0.1:6379/0 cargo run --release --bin active_users
//! ```
//! Environment: `PORT` (default 3000, `0` picks a free one), `CACHE_URL` or `REDIS_URL`
//! (default `memory://`), `DATABASE_URL` (default: a fresh SQLite file in the temp dir).

mod app;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,cache_runtime=warn".into()),
        )
        .init();
    let cache_url = std::env::var("CACHE_URL")
        .or_else(|_| std::env::var("REDIS_URL"))
        .unwrap_or_else(|_| "memory://".into());
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);

    let cache = cache_runtime::Cache::builder(&cache_url)
        .prefix("active_users")
        .build()
        .await?;
    cache_runtime::install(cache.clone());
    let db = app::open_database().await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    println!(
        "active_users listening on http://{addr} (cache: {cache_url}, {})",
        cache.backend_name()
    );
    println!("try:");
    println!("  curl http://{addr}/users          # no caching: queries SQLite every time");
    println!("  curl http://{addr}/users/page     # #[cached_view(ttl = 900)]");
    println!("  curl http://{addr}/users/query    # #[cached_query(key = \"active_users\")]");
    println!("  curl -X POST http://{addr}/users/1/deactivate");
    println!("  curl http://{addr}/stats");
    axum::serve(listener, app::router(db, cache)).await?;
    Ok(())
}
