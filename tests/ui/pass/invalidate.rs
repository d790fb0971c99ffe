// The companions `#[cached_query]` generates: `{name}_invalidate(key params)` and
// `{name}_invalidate_all()`, as associated functions in an `impl` block.
use cache_runtime::{Cache, cached_query};
use std::sync::atomic::{AtomicUsize, Ordering};

static RUNS: AtomicUsize = AtomicUsize::new(0);

fn run() -> usize {
    RUNS.fetch_add(1, Ordering::SeqCst) + 1
}

struct Pool;

// Without a template: every non-skipped parameter, private and unused companions included.
#[cached_query(skip(db))]
async fn user(db: &Pool, id: u32) -> usize {
    let _ = (db, id);
    run()
}

// A template in another order than the signature, a borrowed parameter, and a tag that uses a
// skipped parameter: the companion takes `(name, id)`, then `tenant`.
#[cached_query(key = "post:{name}:{id}", tags = ["posts", "tenant:{tenant}", "post:{id}"], skip(db, tenant))]
pub async fn post<'a>(db: &Pool, id: u32, tenant: &'a str, name: &'a str) -> Result<usize, String> {
    let _ = (db, id, tenant, name);
    Ok(run())
}

// `impl Trait` and destructured parameters keep their types.
#[cached_query(key = "label:{label}:{x}", skip(client))]
async fn labelled(
    client: impl std::fmt::Display,
    label: impl serde::Serialize,
    (x, _y): (u8, u8),
) -> usize {
    let _ = (client.to_string(), serde_json::to_string(&label), x);
    run()
}

struct Repo;

impl Repo {
    #[cached_query(key = "repo_user:{id}")]
    async fn user(&self, id: u32) -> usize {
        let _ = id;
        run()
    }

    #[cached_query]
    pub(crate) async fn count(&self) -> usize {
        run()
    }

    // Without `self`: an associated function the macro cannot tell from a free one.
    #[cached_query(key = "repo_total:{n}")]
    async fn total(n: u32) -> usize {
        let _ = n;
        run()
    }

    // Naming `Self` without `self`.
    #[cached_query(key = "repo_named:{n}")]
    async fn named(n: u32) -> usize
    where
        Self: Sized,
    {
        let _ = n;
        run()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    cache_runtime::install(Cache::from_url("memory://").await.unwrap());
    let db = Pool;

    let first = user(&db, 1).await;
    assert_eq!(user(&db, 1).await, first);
    user_invalidate(1).await.unwrap();
    assert_ne!(user(&db, 1).await, first);
    let again = user(&db, 1).await;
    user_invalidate_all().await.unwrap();
    assert_ne!(user(&db, 1).await, again);

    let first = post(&db, 7, "acme", "hello").await.unwrap();
    assert_eq!(
        post(&db, 7, "other tenant, same entry", "hello")
            .await
            .unwrap(),
        first
    );
    post_invalidate("hello", 7, "any tenant").await.unwrap();
    assert_ne!(post(&db, 7, "acme", "hello").await.unwrap(), first);
    post_invalidate_all().await.unwrap();
    // Tags are filled with the key encoding: `id = 7` gives "post:7", `tenant = "a:b"` "tenant:a%3Ab".
    let cache = cache_runtime::current().unwrap();
    let first = post(&db, 7, "a:b", "hello").await.unwrap();
    cache.invalidate_tag("post:7").await.unwrap();
    let second = post(&db, 7, "a:b", "hello").await.unwrap();
    assert_ne!(second, first);
    cache.invalidate_tag("tenant:a%3Ab").await.unwrap();
    assert_ne!(post(&db, 7, "a:b", "hello").await.unwrap(), second);

    let first = labelled("api", "x", (1, 2)).await;
    assert_eq!(labelled("api", "x", (1, 3)).await, first);
    labelled_invalidate("x", (1, 0)).await.unwrap();
    assert_ne!(labelled("api", "x", (1, 2)).await, first);
    labelled_invalidate_all().await.unwrap();

    let repo = Repo;
    let first = repo.user(1).await;
    assert_eq!(repo.user(1).await, first);
    Repo::user_invalidate(1).await.unwrap();
    assert_ne!(repo.user(1).await, first);
    Repo::user_invalidate_all().await.unwrap();

    let first = repo.count().await;
    Repo::count_invalidate().await.unwrap();
    assert_ne!(repo.count().await, first);
    Repo::count_invalidate_all().await.unwrap();

    let first = Repo::total(1).await;
    assert_eq!(Repo::total(1).await, first);
    Repo::total_invalidate(1).await.unwrap();
    assert_ne!(Repo::total(1).await, first);
    Repo::total_invalidate_all().await.unwrap();

    // The companions are ordinary futures: they can be spawned.
    tokio::spawn(Repo::user_invalidate(2))
        .await
        .unwrap()
        .unwrap();
}
