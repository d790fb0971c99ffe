//! Routes, views and the database of the `active_users` example.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use cache_runtime::{Cache, cached_query, cached_view};
use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

#[derive(Clone)]
pub struct AppState {
    db: SqlitePool,
    cache: Cache,
}

#[derive(Serialize, Deserialize, Debug, Clone, sqlx::FromRow)]
pub struct User {
    id: i64,
    name: String,
    email: String,
    is_active: bool,
}

/// Opens (and seeds) the database: 1,000 users, 700 of them active.
pub async fn open_database() -> anyhow::Result<SqlitePool> {
    let options = match std::env::var("DATABASE_URL") {
        Ok(url) => url.parse::<SqliteConnectOptions>()?,
        Err(_) => {
            let path = std::env::temp_dir().join(format!("active_users-{}.db", std::process::id()));
            let _ = std::fs::remove_file(&path);
            SqliteConnectOptions::new().filename(path)
        }
    }
    .create_if_missing(true);
    let db = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS users (
            id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, is_active BOOLEAN NOT NULL)",
    )
    .execute(&db)
    .await?;
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
        .fetch_one(&db)
        .await?;
    if count == 0 {
        let mut tx = db.begin().await?;
        for id in 1..=1000i64 {
            sqlx::query("INSERT INTO users (id, name, email, is_active) VALUES (?, ?, ?, ?)")
                .bind(id)
                .bind(format!("user{id}"))
                .bind(format!("user{id}@example.com"))
                .bind(id % 10 < 7)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    Ok(db)
}

/// The app's routes, with the cache's dashboard at `/cache`. A real app mounts the
/// dashboard behind its own authentication (an admin-only layer on the nested router).
pub fn router(db: SqlitePool, cache: Cache) -> Router {
    Router::new()
        .route("/users", get(active_users_uncached))
        .route("/users/page", get(active_users_page))
        .route("/users/query", get(active_users_from_query))
        .route("/users/{id}/deactivate", post(deactivate))
        .route("/stats", get(stats))
        .nest("/cache", cache_runtime::dashboard::router(cache.clone()))
        .with_state(AppState { db, cache })
}

async fn query_active_users(db: &SqlitePool) -> Result<Vec<User>, sqlx::Error> {
    sqlx::query_as("SELECT id, name, email, is_active FROM users WHERE is_active = 1 ORDER BY id")
        .fetch_all(db)
        .await
}

/// The seed's `cache.get('active_users')` / `cache.set(...)`, as one annotation.
#[cached_query(key = "active_users", version = 1, ttl = 600, tags = ["users"])]
async fn active_users(db: &SqlitePool) -> Result<Vec<User>, sqlx::Error> {
    tracing::info!("Cache MISS for active users.");
    query_active_users(db).await
}

fn render(users: &[User], view: &str) -> Result<Html<String>, AppError> {
    static TEMPLATES: std::sync::LazyLock<minijinja::Environment<'static>> =
        std::sync::LazyLock::new(|| {
            let mut env = minijinja::Environment::new();
            env.add_template(
                "active_users.html",
                include_str!("templates/active_users.html"),
            )
            .expect("the template parses");
            env
        });
    let html = TEMPLATES
        .get_template("active_users.html")?
        .render(minijinja::context! { users => users, view => view })?;
    Ok(Html(html))
}

/// `GET /users`: no caching, every request queries the database and renders.
async fn active_users_uncached(State(state): State<AppState>) -> Result<Html<String>, AppError> {
    let users = query_active_users(&state.db).await?;
    render(&users, "GET /users (uncached)")
}

/// `GET /users/page`: the whole response is cached for 15 minutes.
#[cached_view(ttl = 900, tags = ["users"])]
async fn active_users_page(State(state): State<AppState>) -> Result<Html<String>, AppError> {
    let users = query_active_users(&state.db).await?;
    render(&users, "GET /users/page (#[cached_view])")
}

/// `GET /users/query`: renders on every request from the cached query.
async fn active_users_from_query(State(state): State<AppState>) -> Result<Html<String>, AppError> {
    let hits = state.cache.stats().hits;
    let users = active_users(&state.db).await?;
    if state.cache.stats().hits > hits {
        tracing::info!("Cache HIT for active users.");
    }
    render(&users, "GET /users/query (#[cached_query])")
}

/// `POST /users/{id}/deactivate`: updates the row, then invalidates everything tagged
/// `users` (the cached query and the cached page) so the next GET shows the change. A fill
/// that read the old rows and finishes after this returns is never served.
async fn deactivate(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, AppError> {
    let updated = sqlx::query("UPDATE users SET is_active = 0 WHERE id = ?")
        .bind(id)
        .execute(&state.db)
        .await?
        .rows_affected();
    if updated == 0 {
        return Ok(StatusCode::NOT_FOUND);
    }
    // An invalidation that did not happen must not be silent: the request fails (500) and the
    // client retries; the row is already updated, so a retry only repeats the invalidation.
    state.cache.invalidate_tag("users").await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /stats`: the cache's counters as JSON.
async fn stats(State(state): State<AppState>) -> impl IntoResponse {
    let s = state.cache.stats();
    axum::Json(serde_json::json!({
        "backend": state.cache.backend_name(),
        "hits": s.hits, "l1_hits": s.l1_hits, "misses": s.misses, "fills": s.fills,
        "decode_errors": s.decode_errors, "backend_errors": s.backend_errors,
    }))
}

/// Errors of the example's handlers, shown as 500s.
pub struct AppError(anyhow::Error);

impl<E: Into<anyhow::Error>> From<E> for AppError {
    fn from(e: E) -> Self {
        AppError(e.into())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> axum::response::Response {
        tracing::error!(error = %self.0, "request failed");
        (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
    }
}
