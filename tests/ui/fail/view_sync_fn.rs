use cache_runtime::cached_view;

#[cached_view(ttl = 900)]
fn page() -> &'static str {
    "hello"
}

fn main() {}
