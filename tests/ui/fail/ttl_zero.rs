use cache_runtime::cached_query;

#[cached_query(ttl = 0)]
async fn user(id: u32) -> Option<String> {
    Some(id.to_string())
}

fn main() {}
