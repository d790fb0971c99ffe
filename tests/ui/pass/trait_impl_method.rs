use cache_runtime::{Cache, cached_query};

trait Users {
    async fn name(&self, id: u32) -> String;
}

struct Db;

impl Users for Db {
    /// In a trait impl there is no room for companions: `companions = false`, and tags.
    #[cached_query(key = "name:{id}", tags = ["user:{id}"], companions = false)]
    async fn name(&self, id: u32) -> String {
        format!("user {id}")
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cache = Cache::from_url("memory://").await.unwrap();
    cache_runtime::scope(cache.clone(), async {
        assert_eq!(Db.name(1).await, "user 1");
        assert_eq!(Db.name(1).await, "user 1");
        cache.invalidate_tag("user:1").await.unwrap();
        assert_eq!(Db.name(1).await, "user 1");
    })
    .await;
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.invalidated), (1, 2, 1));
}
