use cache_runtime::cached_query;

#[cached_query(key = "user:{id}", companions = "no")]
async fn user(id: u32) -> String {
    id.to_string()
}

fn main() {}
