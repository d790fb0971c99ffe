use cache_runtime::cached_query;

#[cached_query(key = "hot", early = -1.0)]
async fn hot() -> u32 {
    1
}

fn main() {}
