use axum::extract::Path;
use cache_runtime::cached_view;

#[cached_view(ttl = 900, tags = ["users", "user:{id}"])]
async fn user_page(Path(id): Path<u32>) -> String {
    format!("user {id}")
}

fn main() {}
