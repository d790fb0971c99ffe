// `codec = postcard` (and the other built-in codecs) with the matching cache-runtime feature.
use cache_runtime::{Cache, cached_query};

#[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
struct Point {
    x: i32,
    y: i32,
}

#[cached_query(key = "point:{x}:{y}", codec = postcard)]
async fn point(x: i32, y: i32) -> Point {
    Point { x, y }
}

#[cached_query(codec = json)]
async fn json(n: u32) -> Vec<u32> {
    vec![n]
}

#[cached_query(codec = bincode)]
async fn bincode(n: u32) -> Vec<u32> {
    vec![n]
}

#[cached_query(codec = msgpack)]
async fn msgpack(n: u32) -> Vec<u32> {
    vec![n]
}

#[cached_query(codec = cache_runtime::codec::Postcard)]
async fn by_path(n: u32) -> Vec<u32> {
    vec![n]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    cache_runtime::install(Cache::from_url("memory://").await.unwrap());
    for _ in 0..2 {
        assert_eq!(point(1, 2).await, Point { x: 1, y: 2 });
        assert_eq!(json(1).await, [1]);
        assert_eq!(bincode(1).await, [1]);
        assert_eq!(msgpack(1).await, [1]);
        assert_eq!(by_path(1).await, [1]);
    }
}
