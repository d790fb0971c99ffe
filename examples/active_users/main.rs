//! The seed app, for real: an axum server over SQLite with three views of the active users:
//! uncached, cached as a whole page (`#[cached_view]`), and built from a cached query
//! (`#[cached_query]`), plus a deactivate endpoint that invalidates what it made stale, the
//! cache's dashboard at `/cache` and Prometheus metrics at `/metrics`.
//!
//! ```text
//! cargo run --release --bin active_users                          # memory:// cache
//! CACHE_URL=redis://127.0.0.1:6379/0 cargo run --release --bin active_users
//! ```
//! Environment: `PORT` (default 3000, `0` picks a free one), `CACHE_URL` or `REDIS_URL`
//! (default `memory://`), `CACHE_L1_MB` (with Redis: an L1 of that many MiB in this process,
//! kept coherent across instances), `CACHE_LOCAL_COPIES_MB` (with Redis: how many MiB of
//! values this process keeps copies of, checked against Redis on every hit; default 32, `0`
//! turns them off), `DATABASE_URL` (default: a fresh SQLite file in the temp dir).

mod app;

use anyhow::Context as _;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

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

    let metrics = install_metrics()?;
    let mut builder = cache_runtime::Cache::builder(&cache_url).prefix("active_users");
    if let Ok(mb) = std::env::var("CACHE_L1_MB") {
        let mb: u64 = mb.parse().context("CACHE_L1_MB: a number of MiB")?;
        builder = builder.l1(mb * 1024 * 1024);
    }
    if let Ok(mb) = std::env::var("CACHE_LOCAL_COPIES_MB") {
        let mb: u64 = mb
            .parse()
            .context("CACHE_LOCAL_COPIES_MB: a number of MiB")?;
        builder = builder.local_copies(mb * 1024 * 1024);
    }
    let cache = builder.build().await?;
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
    println!("  curl http://{addr}/metrics        # Prometheus");
    println!("  open http://{addr}/cache          # the cache's dashboard");
    let routes = app::router(db, cache).route(
        "/metrics",
        axum::routing::get(move || std::future::ready(metrics.render())),
    );
    axum::serve(listener, routes).await?;
    Ok(())
}

/// The `metrics` facade's recorder for the whole process, rendered at `/metrics` in
/// Prometheus's text format: the cache's latencies as histograms with buckets from 50 µs to
/// 10 s, value sizes from 64 B to 4 MiB (see docs/OPERATIONS.md).
fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    let seconds = [
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
        1.0, 2.5, 10.0,
    ];
    let bytes = [
        64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_duration_seconds".into()), &seconds)?
        .set_buckets_for_metric(Matcher::Suffix("_bytes".into()), &bytes)?
        .install_recorder()?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}
