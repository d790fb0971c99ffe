use axum::extract::Path;
use cache_runtime::cached_view;

// A page is keyed by its request, not by a template over the handler's parameters.
#[cached_view(ttl = 900, key = "user:{id}")]
async fn user_page(Path(id): Path<u32>) -> String {
    format!("user {id}")
}

fn main() {}
