use cache_runtime::cached_query;

#[cached_query(key = "user:{id}", vary = ["Accept-Language"])]
async fn user(id: u32) -> Option<String> {
    Some(id.to_string())
}

fn main() {}
