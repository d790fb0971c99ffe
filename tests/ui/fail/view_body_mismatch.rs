use axum::response::Html;
use cache_runtime::cached_view;

#[cached_view(ttl = 900)]
async fn page() -> Html<String> {
    "not the declared type"
}

fn main() {}
