use cache_runtime::cached_query;

struct Pool;

#[cached_query(skip(pool))]
async fn user(db: &Pool, id: u32) -> Option<String> {
    let _ = db;
    Some(id.to_string())
}

fn main() {}
