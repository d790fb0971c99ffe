//! The axum adapter: the request-parts extractor and the entry point `#[cached_view]`
//! expands into.

use std::convert::Infallible;
use std::future::Future;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::request::Parts;

use super::{ViewRequest, ViewSpec, resolve, serve};

impl<S: Send + Sync> FromRequestParts<S> for ViewRequest {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(ViewRequest::from_head(
            &parts.method,
            &parts.uri,
            &parts.headers,
            &parts.extensions,
        ))
    }
}

/// Runs one request of a `#[cached_view]` handler: answers from the cache when it can,
/// otherwise awaits `fut` (the handler's body) and stores its response when the rules
/// allow. The macro expands
///
/// ```text
/// #[cached_view(ttl = 900, vary = ["Accept-Language"])]
/// async fn page(State(db): State<Pool>) -> impl IntoResponse { BODY }
/// ```
///
/// into the handler below (written out by hand here):
///
/// ```
/// use axum::{Router, extract::State, response::IntoResponse, routing::get};
/// use tower::ServiceExt;
///
/// # #[derive(Clone)] struct Pool;
/// async fn page(
///     __cache_req: ::cache_runtime::__private::ViewRequest,
///     State(db): State<Pool>,
/// ) -> ::axum::response::Response {
///     static __CACHE_VIEW: ::cache_runtime::__private::ViewSpec = ::cache_runtime::__private::ViewSpec {
///         function: "app::page",
///         version: 1,
///         ttl: Some(900),
///         vary: &["Accept-Language"],
///         statuses: &[],
///         cache: None,
///         tags: &[],
///         lease: None,
///         early: None,
///         stale: None,
///     };
///     ::cache_runtime::__private::cached_view(&__CACHE_VIEW, __cache_req, async move {
///         let _ = db;
///         "<h1>Bonjour</h1>"
///     })
///     .await
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let cache = cache_runtime::Cache::from_url("memory://").await.unwrap();
/// let app = Router::new().route("/", get(page)).with_state(Pool);
/// let request = || http::Request::get("/").body(axum::body::Body::empty()).unwrap();
/// cache_runtime::scope(cache.clone(), async {
///     app.clone().oneshot(request()).await.unwrap();
///     let hit = app.oneshot(request()).await.unwrap();
///     assert!(hit.headers().contains_key("age"));
/// })
/// .await;
/// assert_eq!(cache.stats().hits, 1);
/// # });
/// ```
pub fn cached_view<R, F>(
    spec: &'static ViewSpec,
    req: ViewRequest,
    fut: F,
) -> impl Future<Output = Response>
where
    R: IntoResponse,
    F: Future<Output = R>,
{
    // Boxed here, once: see `serve`.
    let run = Box::pin(async move { Ok::<_, Infallible>(fut.await.into_response()) });
    async move {
        let cache = resolve(spec.cache.map(|f| f()), spec.function);
        let response = match serve(&spec.rules(), cache, &req, run).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        response.map(|body| match body.into_untouched() {
            Ok(body) => body,
            Err(body) => Body::new(body),
        })
    }
}
