use cache_runtime::cached_query;

#[cached_query(key = "hot", stale = 0)]
async fn hot() -> u32 {
    1
}

fn main() {}
