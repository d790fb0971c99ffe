use cache_runtime::cached_query;

#[cached_query(key = "user:{id}")]
const fn user(id: u32) -> u32 {
    id
}

fn main() {}
