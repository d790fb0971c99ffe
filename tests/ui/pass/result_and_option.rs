// `Result` (any path ending in `Result`) and `Option` returns; `?` and `return` stay in the body.
use cache_runtime::cached_query;

#[derive(Debug)]
struct DbError;

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("db error")
    }
}

impl std::error::Error for DbError {}

type DbResult<T> = std::result::Result<T, DbError>;

fn parse(s: &str) -> Result<u32, DbError> {
    s.parse().map_err(|_| DbError)
}

#[cached_query(key = "n:{s}")]
async fn number(s: String) -> Result<u32, DbError> {
    let n = parse(&s)?;
    if n == 0 {
        return Err(DbError);
    }
    Ok(n)
}

#[cached_query]
async fn boxed(s: String) -> std::result::Result<u32, Box<dyn std::error::Error + Send + Sync>> {
    Ok(parse(&s)?)
}

mod io {
    pub type Result<T> = std::result::Result<T, std::io::Error>;
}

#[cached_query]
async fn aliased(n: u32) -> io::Result<u32> {
    Ok(n)
}

// Not named `Result`: value mode, the whole `Result` is cached when it is serializable.
#[cached_query]
async fn whole(n: u32) -> DbResult2<u32> {
    Ok(n)
}
type DbResult2<T> = std::result::Result<T, String>;

#[cached_query(key = "maybe:{n}")]
async fn maybe(n: u32) -> Option<u32> {
    if n == 0 { None } else { Some(n) }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _: DbResult<u32> = number("1".into()).await;
    assert!(number("x".into()).await.is_err());
    assert!(boxed("2".into()).await.is_ok());
    assert_eq!(aliased(3).await.unwrap(), 3);
    assert_eq!(whole(4).await, Ok(4));
    assert_eq!(maybe(0).await, None);
}
