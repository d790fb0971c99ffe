use cache_runtime::cached_query;

struct Pool;

// A tag may use a skipped parameter, but its value must be `Serialize` like a key argument.
#[cached_query(key = "user:{id}", tags = ["pool:{db}"], skip(db))]
async fn user(db: &Pool, id: u32) -> Option<String> {
    let _ = db;
    Some(id.to_string())
}

fn main() {}
