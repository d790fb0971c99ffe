use cache_runtime::cached_view;

#[cached_view(ttl = 60, lease = "no")]
async fn page() -> &'static str {
    "page"
}

fn main() {}
