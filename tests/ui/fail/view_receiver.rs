use cache_runtime::cached_view;

struct Pages;

impl Pages {
    #[cached_view(ttl = 900)]
    async fn home(&self) -> &'static str {
        "hello"
    }
}

fn main() {}
