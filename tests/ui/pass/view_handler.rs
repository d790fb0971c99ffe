use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use cache_runtime::cached_view;

#[derive(Clone)]
struct Db;

/// Any extractors, any `impl IntoResponse`, registered with `get(handler)` as before.
#[cached_view(ttl = 900, version = 2, vary = ["Accept-Language"], statuses = [200, 404])]
async fn user_page(State(_db): State<Db>, Path(id): Path<u32>) -> impl IntoResponse {
    if id == 0 {
        return (axum::http::StatusCode::NOT_FOUND, Html("no such user".to_string()));
    }
    (axum::http::StatusCode::OK, Html(format!("user {id}")))
}

#[cached_view]
async fn plain() -> &'static str {
    "plain"
}

#[derive(serde::Deserialize)]
struct Search {
    q: String,
}

/// Query strings and a JSON body (last, as axum requires) work too; only GET/HEAD are cached.
#[cached_view(ttl = 60)]
async fn search(
    State(_db): State<Db>,
    axum::extract::Query(search): axum::extract::Query<Search>,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "q": search.q, "body": body }))
}

fn main() {
    let _app: axum::Router = axum::Router::new()
        .route("/users/{id}", get(user_page))
        .route("/plain", get(plain))
        .route("/search", get(search).post(search))
        .with_state(Db);
}
