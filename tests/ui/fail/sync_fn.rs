use cache_runtime::cached_query;

#[cached_query(key = "user:{id}")]
fn user(id: u32) -> Option<String> {
    Some(id.to_string())
}

fn main() {}
