use cache_runtime::cached_query;

#[cached_query(key = "range:{from}-{to}")]
async fn range(from: u32, to: u32) -> Vec<u32> {
    (from..to).collect()
}

fn main() {}
