//! A sync `fn` is cached with a blocking call (no runtime anywhere in this program): `?` and
//! `return` stay inside its body, a `Result` alias (Diesel's `QueryResult`) caches only `Ok`,
//! and its companions are sync too, also on a method.
use cache_runtime::{Cache, cached_query};

#[derive(Debug)]
struct DbError;
type QueryResult<T> = Result<T, DbError>;

fn parse(raw: &str) -> Result<u32, std::num::ParseIntError> {
    raw.parse()
}

#[cached_query(key = "user:{id}")]
fn user(id: u32) -> Option<String> {
    if id == 0 {
        return None;
    }
    Some(id.to_string())
}

#[cached_query(key = "number:{raw}")]
fn number(raw: &str) -> QueryResult<u32> {
    let n = parse(raw).map_err(|_| DbError)?;
    Ok(n * 2)
}

struct Repo;

impl Repo {
    #[cached_query(key = "repo:{id}")]
    fn find(&self, id: u32) -> Option<u32> {
        Some(id)
    }
}

fn main() {
    cache_runtime::install(cache_runtime::block_on(Cache::from_url("memory://")).unwrap());
    assert_eq!(user(7).as_deref(), Some("7"));
    assert_eq!(user(0), None);
    assert_eq!(number("21").unwrap(), 42);
    assert!(number("x").is_err());
    assert_eq!(Repo.find(3), Some(3));
    let done: cache_runtime::Result<()> = user_invalidate(7);
    done.unwrap();
    user_invalidate_all().unwrap();
    number_invalidate("21").unwrap();
    Repo::find_invalidate(3).unwrap();
    Repo::find_invalidate_all().unwrap();
}
