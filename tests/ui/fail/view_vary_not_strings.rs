use cache_runtime::cached_view;

#[cached_view(ttl = 900, vary = [ACCEPT_LANGUAGE])]
async fn page() -> &'static str {
    "hello"
}

fn main() {}
