use cache_runtime::cached_view;

#[cached_view(ttl = 0)]
async fn page() -> &'static str {
    "hello"
}

fn main() {}
