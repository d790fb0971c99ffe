use cache_runtime::cached_query;

#[cached_query]
async fn sum((a, b): (u32, u32)) -> u32 {
    a + b
}

fn main() {}
