// `tags = [...]` on a view, and its companions `{name}_invalidate(path_and_query)` and
// `{name}_invalidate_all()`.
use axum::routing::get;
use cache_runtime::{Cache, cached_view};

#[cached_view(ttl = 60, tags = ["pages", "home"])]
async fn page() -> &'static str {
    "page"
}

// No tags: the companions exist all the same.
#[cached_view]
pub(crate) async fn plain() -> String {
    "plain".to_string()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    cache_runtime::install(Cache::from_url("memory://").await.unwrap());
    let _app: axum::Router = axum::Router::new()
        .route("/x", get(page))
        .route("/plain", get(plain));
    page_invalidate("/x").await.unwrap();
    page_invalidate("/x?page=2").await.unwrap();
    page_invalidate_all().await.unwrap();
    plain_invalidate("/plain").await.unwrap();
    plain_invalidate_all().await.unwrap();
}
