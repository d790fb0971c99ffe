use cache_runtime::cached_query;

#[cached_query(ttl = 60, version = 2, ttl = 120)]
async fn user(id: u32) -> Option<String> {
    Some(id.to_string())
}

fn main() {}
