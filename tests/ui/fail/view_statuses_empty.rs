use cache_runtime::cached_view;

#[cached_view(ttl = 60, statuses = [])]
async fn page() -> &'static str {
    "page"
}

fn main() {}
