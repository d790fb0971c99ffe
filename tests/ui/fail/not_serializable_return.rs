use cache_runtime::cached_query;

#[derive(Debug)]
struct User {
    id: u32,
}

#[derive(Debug)]
struct DbError;

#[cached_query(key = "user:{id}")]
async fn user(id: u32) -> Result<User, DbError> {
    Ok(User { id })
}

fn main() {}
