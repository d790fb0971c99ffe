// A method with `&self`: `self` is never part of the key, and works inside the body.
use cache_runtime::cached_query;

struct Repo {
    prefix: String,
}

impl Repo {
    #[cached_query(key = "greeting:{name}", ttl = 30)]
    async fn greeting(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    #[cached_query]
    async fn count(&self, a: u32, b: u32) -> Result<u64, std::io::Error> {
        let sum = self.checked(a)? + self.checked(b)?;
        Ok(u64::from(sum))
    }

    fn checked(&self, n: u32) -> std::io::Result<u32> {
        if self.prefix.is_empty() { Err(std::io::Error::other("no prefix")) } else { Ok(n) }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let repo = Repo { prefix: "hello, ".into() };
    assert_eq!(repo.greeting("ada").await, "hello, ada");
    assert_eq!(repo.count(1, 2).await.unwrap(), 3);
}
