use cache_runtime::cached_query;

#[cached_query(key = "visit:{id}")]
async fn record_visit(id: u32) {
    let _ = id;
}

fn main() {}
