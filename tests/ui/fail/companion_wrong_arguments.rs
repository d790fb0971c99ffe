use cache_runtime::cached_query;

struct Pool;

#[cached_query(key = "user:{id}", skip(db))]
async fn user(db: &Pool, id: u32) -> Option<String> {
    let _ = db;
    Some(id.to_string())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // The companion takes the key's parameters only, not the skipped pool.
    user_invalidate(&Pool, 1).await.unwrap();
}
