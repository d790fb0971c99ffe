use cache_runtime::cached_view;

#[cached_view(ttl = 900, version = "2")]
async fn page() -> &'static str {
    "hello"
}

fn main() {}
