//! The ceiling for `wrk_load`: a plain axum server that answers `GET /users/page` with fixed
//! bytes from memory. No cache, no database, no template: what axum and hyper alone cost to
//! serve the page, measured beside the cached page in the same run.
//!
//! ```text
//! ceiling BODY_FILE CONTENT_TYPE      # PORT (default 0: a free port) on 127.0.0.1
//! ```
//! Prints `ceiling listening on http://ADDR` once it accepts connections. `wrk_load` starts
//! it with the bytes and content type it fetched from the app's `/users/page`.

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(body_file), Some(content_type)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: ceiling BODY_FILE CONTENT_TYPE");
    };
    let body = Bytes::from(std::fs::read(&body_file)?);
    let content_type = HeaderValue::from_str(&content_type)?;
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);

    let app = Router::new().route(
        "/users/page",
        get(move || {
            // Both clones are reference counts: the bytes are never copied.
            let (body, content_type) = (body.clone(), content_type.clone());
            async move { ([(CONTENT_TYPE, content_type)], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("ceiling listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
