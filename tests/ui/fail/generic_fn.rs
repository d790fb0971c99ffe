use cache_runtime::cached_query;

#[cached_query]
async fn describe<T: serde::Serialize + std::fmt::Debug>(value: T) -> String {
    format!("{value:?}")
}

fn main() {}
