//! What the macros generate stays clean under `-D warnings`, clippy's lints included, and under
//! the allow-by-default lints denied below, for signatures that make companions trip lints:
//! copied lifetimes, many parameters, destructured parameters taken whole, parameters that are
//! not `Send`, names that are not snake case. `cargo clippy --workspace --all-targets -- -D
//! warnings` checks this file; the test runs each function and companion once.

#![deny(unused_lifetimes, clippy::future_not_send)]

use std::cell::Cell;

use cache_runtime::{Cache, cached_query, cached_view};

struct Pool;

/// The companion copies `'a`, which its parameters no longer use.
#[cached_query(skip(db))]
async fn skipped_lifetime<'a>(db: &'a Pool, id: u32) -> u32 {
    let _ = db;
    id
}

/// The companion's `'a` could be elided, like the function's.
#[allow(clippy::needless_lifetimes)]
#[cached_query]
async fn named<'a>(name: &'a str) -> String {
    name.to_owned()
}

/// Eight parameters, in the function and in the companion.
#[allow(clippy::too_many_arguments)]
#[cached_query]
async fn eight(a: u8, b: u8, c: u8, d: u8, e: u8, f: u8, g: u8, h: u8) -> u32 {
    [a, b, c, d, e, f, g, h].iter().map(|&x| u32::from(x)).sum()
}

/// Taken whole by the companion: `mut b` and the unused `c` come along.
#[cached_query(key = "pair:{a}:{b}")]
async fn whole((a, mut b, c): (u32, u32, u32)) -> u32 {
    b += a + c;
    b
}

/// Not `Send`: neither is the companion's future.
#[allow(clippy::future_not_send)]
#[cached_query]
async fn cell(n: &Cell<u32>) -> u32 {
    n.get()
}

#[allow(non_snake_case)]
#[cached_query]
async fn userName(id: u32) -> String {
    id.to_string()
}

#[allow(non_snake_case)]
#[cached_view(ttl = 60)]
async fn homePage() -> &'static str {
    "home"
}

#[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
struct Repo;

impl Repo {
    #[cached_query]
    async fn count<'a>(&self, of: &'a str) -> usize {
        of.len()
    }

    #[cached_query]
    async fn load(id: u32) -> Option<Self> {
        (id > 0).then_some(Repo)
    }
}

#[tokio::test]
async fn generated_code_is_lint_clean_and_runs() {
    cache_runtime::install(Cache::from_url("memory://").await.unwrap());
    assert_eq!(skipped_lifetime(&Pool, 1).await, 1);
    skipped_lifetime_invalidate(1).await.unwrap();
    assert_eq!(named("a").await, "a");
    named_invalidate("a").await.unwrap();
    assert_eq!(eight(1, 1, 1, 1, 1, 1, 1, 1).await, 8);
    eight_invalidate(1, 1, 1, 1, 1, 1, 1, 1).await.unwrap();
    assert_eq!(whole((1, 2, 3)).await, 6);
    whole_invalidate((1, 2, 0)).await.unwrap();
    assert_eq!(cell(&Cell::new(4)).await, 4);
    cell_invalidate(&Cell::new(4)).await.unwrap();
    assert_eq!(userName(5).await, "5");
    userName_invalidate(5).await.unwrap();
    homePage_invalidate_all().await.unwrap();
    assert_eq!(Repo.count("abc").await, 3);
    Repo::count_invalidate("abc").await.unwrap();
    assert_eq!(Repo::load(1).await, Some(Repo));
    Repo::load_invalidate(1).await.unwrap();
    let _ = homePage;
}
