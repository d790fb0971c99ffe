// `impl Trait` arguments: skipped ones need nothing; others are key arguments (`Serialize`).
use cache_runtime::cached_query;
use std::fmt::Display;

#[cached_query(skip(client))]
async fn fetch(client: impl Display + Send, id: u32) -> String {
    format!("{client}/{id}")
}

#[cached_query(key = "label:{label}", skip(client))]
async fn labelled(client: impl Display, label: impl serde::Serialize + Display) -> String {
    format!("{client}: {label}")
}

#[cached_query(skip(client))]
async fn keyed_by_impl(client: impl Display, label: impl serde::Serialize) -> u32 {
    let _ = (client.to_string(), serde_json::to_string(&label));
    1
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(fetch("api", 1).await, "api/1");
    assert_eq!(labelled("api", "x").await, "api: x");
    assert_eq!(keyed_by_impl("api", 7u8).await, 1);
}
