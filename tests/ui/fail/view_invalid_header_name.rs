use cache_runtime::cached_view;

#[cached_view(ttl = 900, vary = ["Accept Language"])]
async fn page() -> &'static str {
    "hello"
}

fn main() {}
