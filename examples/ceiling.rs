//! The ceiling for `wrk_load`: a plain axum server that answers `GET /users/page` with fixed
//! bytes from memory. No cache, no database, no template: what axum and hyper alone cost to
//! serve the page, measured beside the cached page in the same run.
//!
//! Given a Redis URL, it also makes, before answering each request, the round trip a page
//! hit on a local copy makes (`GETRANGE` of a value's 44-byte header and `MGET` of four
//! generations, one pipeline), hand-written with redis-rs on a `ConnectionManager`: what the
//! round trip alone costs, so `wrk_load` can tell it from what the cache adds.
//!
//! ```text
//! ceiling BODY_FILE CONTENT_TYPE [REDIS_URL]   # PORT (default 0: a free port) on 127.0.0.1
//! ```
//! Prints `ceiling listening on http://ADDR` once it accepts connections. `wrk_load` starts
//! it with the bytes and content type it fetched from the app's `/users/page`.

use axum::Router;
use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use redis::aio::ConnectionManager;

/// The keys of the hand-written round trip: a value and the generations it depends on.
const VALUE: &str = "ceiling:value";
const GENERATIONS: [&str; 4] = [
    "ceiling:gen:a",
    "ceiling:gen:b",
    "ceiling:gen:c",
    "ceiling:gen:d",
];
const HEAD_LEN: usize = 44;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(body_file), Some(content_type)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: ceiling BODY_FILE CONTENT_TYPE [REDIS_URL]");
    };
    let body = Bytes::from(std::fs::read(&body_file)?);
    let content_type = HeaderValue::from_str(&content_type)?;
    let redis = match args.next() {
        Some(url) => Some(connect(&url, &body).await?),
        None => None,
    };
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);

    let app = Router::new().route(
        "/users/page",
        get(move || {
            // The clones are reference counts: the bytes are never copied.
            let (body, content_type, redis) = (body.clone(), content_type.clone(), redis.clone());
            async move {
                if let Some(conn) = redis
                    && !round_trip(conn).await
                {
                    return StatusCode::SERVICE_UNAVAILABLE.into_response();
                }
                ([(CONTENT_TYPE, content_type)], body).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("ceiling listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// Connects and writes the value and its generations the round trip reads.
async fn connect(url: &str, body: &Bytes) -> anyhow::Result<ConnectionManager> {
    let mut conn = redis::Client::open(url)?.get_connection_manager().await?;
    let mut pipe = redis::pipe();
    pipe.set(VALUE, body.as_ref()).ignore();
    for (i, generation) in GENERATIONS.iter().enumerate() {
        pipe.set(generation, &(i as u64).to_le_bytes()[..]).ignore();
    }
    pipe.query_async::<()>(&mut conn).await?;
    Ok(conn)
}

/// One `GETRANGE` + `MGET` pipeline; whether the answers have the expected shape.
async fn round_trip(mut conn: ConnectionManager) -> bool {
    type Head = Vec<u8>;
    type Generations = Vec<Option<Vec<u8>>>;
    let answer: redis::RedisResult<(Head, Generations)> = redis::pipe()
        .cmd("GETRANGE")
        .arg(VALUE)
        .arg(0)
        .arg(HEAD_LEN - 1)
        .mget(&GENERATIONS)
        .query_async(&mut conn)
        .await;
    matches!(answer, Ok((head, generations))
        if head.len() == HEAD_LEN && generations.iter().all(Option::is_some))
}
