use cache_runtime::cached_view;

#[cached_view(ttl = 900, timeout = 5)]
async fn page() -> &'static str {
    "hello"
}

fn main() {}
