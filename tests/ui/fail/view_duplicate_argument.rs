use cache_runtime::cached_view;

#[cached_view(ttl = 60, vary = ["Accept-Language"], ttl = 900)]
async fn page() -> &'static str {
    "hello"
}

fn main() {}
