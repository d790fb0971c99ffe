//! Whole-response caching through real axum `Router`s, one suite run on both backends: the
//! embedded memory store and a real `redis-server` started by the harness. Requests go
//! through `tower::ServiceExt::oneshot`; every case counts how often the handler ran.
//!
//! Handlers are annotated with `#[cached_view]` itself, so the suite checks the macro and the
//! runtime together; `CacheLayer` is checked on a plain `Router`.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use cache_runtime::view::CacheLayer;
use cache_runtime::{Cache, cached_view};
use cache_tests::{Backend, raw_connection, test_cache};
use http::{HeaderMap, Method, Request, StatusCode, Uri, header};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// Largest value the test caches store: the large-body case goes past it.
const MAX_VALUE: usize = 64 * 1024;
const HOST: &str = "example.com";
/// The handlers' `ttl = 60`.
const TTL: u64 = 60;

/// What a case gets: its own cache (own prefix), and the Redis URL behind it.
struct Env {
    cache: Cache,
    redis_url: Option<String>,
}

impl Env {
    async fn memory(test: &str) -> Env {
        let (cache, redis_url) =
            test_cache(Backend::Memory, test, |b| b.max_value_size(MAX_VALUE)).await;
        Env { cache, redis_url }
    }

    async fn redis(test: &str) -> Env {
        let (cache, redis_url) =
            test_cache(Backend::Redis, test, |b| b.max_value_size(MAX_VALUE)).await;
        Env { cache, redis_url }
    }
    async fn cluster(test: &str) -> Env {
        let (cache, redis_url) =
            test_cache(Backend::Cluster, test, |b| b.max_value_size(MAX_VALUE)).await;
        Env { cache, redis_url }
    }

    /// Sends one request through `app` with this env's cache as the task's default.
    async fn send(&self, app: &Router, request: Request<Body>) -> Got {
        let response = cache_runtime::scope(self.cache.clone(), app.clone().oneshot(request))
            .await
            .unwrap();
        Got::read(response).await
    }

    /// The full key of a GET of `path` on [`HOST`] by the view `function`.
    fn key(&self, function: &str, path: &str) -> String {
        format!(
            "{}:1:view:{function}:GET:http://{HOST}{path}",
            self.cache.prefix()
        )
    }

    /// Overwrites `key` with bytes that are not a stored response: raw garbage in Redis,
    /// a query value (envelope kind 0) in memory.
    async fn poison(&self, key: &str) {
        match &self.redis_url {
            Some(url) => {
                if cache_tests::with_l1() {
                    // An L1 keeps serving its own copy of a value another program overwrote
                    // until it expires (docs/SCALING.md): forget it first, as `delete` does,
                    // so that the read reaches the bytes in Redis.
                    let rest = key
                        .strip_prefix(&format!("{}:1:", self.cache.prefix()))
                        .unwrap();
                    self.cache.delete(rest).await.unwrap();
                }
                let mut conn = raw_connection(url).await;
                let _: () = ::redis::cmd("SET")
                    .arg(key)
                    .arg(b"\x00\xffnot an envelope\x92\x01")
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
            None => {
                // `Cache::set` writes under `{prefix}:1:`.
                let rest = key
                    .strip_prefix(&format!("{}:1:", self.cache.prefix()))
                    .unwrap();
                self.cache.set(rest, "a query value", None).await.unwrap();
            }
        }
    }

    /// Whether `key` exists in Redis (`None` on the memory backend).
    async fn exists(&self, key: &str) -> Option<bool> {
        let url = self.redis_url.as_ref()?;
        let mut conn = raw_connection(url).await;
        let n: u64 = ::redis::cmd("EXISTS")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        Some(n == 1)
    }
}

/// A response, read whole.
struct Got {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Got {
    async fn read(response: Response) -> Got {
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Got {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

fn request(method: Method, uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, HOST);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::empty()).unwrap()
}

fn get_req(uri: &str) -> Request<Body> {
    request(Method::GET, uri, &[])
}

fn get_with(uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    request(Method::GET, uri, headers)
}

/// Counts handler calls.
#[derive(Clone, Default)]
struct App {
    calls: Arc<AtomicUsize>,
}

impl App {
    fn calls(&self) -> usize {
        self.calls.load(SeqCst)
    }

    /// Called first by every handler.
    fn ran(&self) {
        self.calls.fetch_add(1, SeqCst);
    }
}

// Every handler is cached for `ttl = 60` ([`TTL`]) and counts its calls.

#[cached_view(ttl = 60)]
async fn page(State(app): State<App>, uri: Uri) -> String {
    app.ran();
    format!("page at {uri}")
}

#[cached_view(ttl = 60, vary = ["Accept-Language"])]
async fn lang(State(app): State<App>, headers: HeaderMap) -> String {
    app.ran();
    let lang = headers
        .get(header::ACCEPT_LANGUAGE)
        .map(|v| v.to_str().unwrap().to_owned());
    format!("lang={}", lang.unwrap_or_default())
}

#[cached_view(ttl = 60)]
async fn form(State(app): State<App>, method: Method) -> String {
    app.ran();
    format!("{method} form")
}

#[cached_view(ttl = 60)]
async fn cookie(State(app): State<App>) -> impl IntoResponse {
    app.ran();
    ([(header::SET_COOKIE, "session=1")], "with a cookie")
}

#[cached_view(ttl = 60)]
async fn private(State(app): State<App>) -> impl IntoResponse {
    app.ran();
    ([(header::CACHE_CONTROL, "private, max-age=60")], "private")
}

#[cached_view(ttl = 60)]
async fn no_store(State(app): State<App>) -> impl IntoResponse {
    app.ran();
    ([(header::CACHE_CONTROL, "no-store")], "no-store")
}

#[cached_view(ttl = 60)]
async fn no_cache(State(app): State<App>) -> impl IntoResponse {
    app.ran();
    ([(header::CACHE_CONTROL, "no-cache")], "no-cache")
}

#[cached_view(ttl = 60)]
async fn vary_star(State(app): State<App>) -> impl IntoResponse {
    app.ran();
    ([(header::VARY, "*")], "vary star")
}

#[cached_view(ttl = 60)]
async fn vary_unkeyed(State(app): State<App>) -> impl IntoResponse {
    app.ran();
    ([(header::VARY, "Accept-Language")], "vary unkeyed")
}

#[cached_view(ttl = 60, vary = ["accept-language"])]
async fn vary_keyed(State(app): State<App>) -> impl IntoResponse {
    app.ran();
    ([(header::VARY, "Accept-Language")], "vary keyed")
}

#[cached_view(ttl = 60)]
async fn missing(State(app): State<App>) -> impl IntoResponse {
    app.ran();
    (StatusCode::NOT_FOUND, "missing")
}

#[cached_view(ttl = 60, statuses = [200, 404])]
async fn missing_stored(State(app): State<App>) -> impl IntoResponse {
    app.ran();
    (StatusCode::NOT_FOUND, "missing, stored")
}

#[cached_view(ttl = 60, vary = ["Authorization"])]
async fn auth_keyed(State(app): State<App>, headers: HeaderMap) -> String {
    app.ran();
    let auth = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap().to_owned());
    format!("for {}", auth.unwrap_or_default())
}

#[cached_view(ttl = 60)]
async fn large(State(app): State<App>) -> String {
    app.ran();
    "x".repeat(MAX_VALUE + 1024)
}

#[cached_view(ttl = 60)]
async fn stream(State(app): State<App>) -> Body {
    app.ran();
    Body::new(Chunks::new(&["streamed ", "in ", "chunks"]))
}

#[cached_view(ttl = 60)]
async fn own_headers(State(app): State<App>) -> impl IntoResponse {
    app.ran();
    (
        [
            (header::ETAG, "\"v1\""),
            (header::CACHE_CONTROL, "public, max-age=5"),
        ],
        "own headers",
    )
}

#[cached_view(ttl = 60)]
async fn slow(State(app): State<App>) -> &'static str {
    app.ran();
    tokio::time::sleep(Duration::from_millis(200)).await;
    "slow"
}

/// A body of chunks with no size hint: a stream.
struct Chunks(VecDeque<Bytes>);

impl Chunks {
    fn new(chunks: &[&'static str]) -> Chunks {
        Chunks(
            chunks
                .iter()
                .map(|c| Bytes::from_static(c.as_bytes()))
                .collect(),
        )
    }
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.pop_front().map(|c| Ok(Frame::data(c))))
    }
    fn size_hint(&self) -> SizeHint {
        SizeHint::new()
    }
}

fn router(app: &App) -> Router {
    Router::new()
        .route("/page", get(page))
        .route("/lang", get(lang))
        .route("/form", get(form).post(form))
        .route("/cookie", get(cookie))
        .route("/private", get(private))
        .route("/no-store", get(no_store))
        .route("/no-cache", get(no_cache))
        .route("/vary-star", get(vary_star))
        .route("/vary-unkeyed", get(vary_unkeyed))
        .route("/vary-keyed", get(vary_keyed))
        .route("/missing", get(missing))
        .route("/missing-stored", get(missing_stored))
        .route("/auth-keyed", get(auth_keyed))
        .route("/large", get(large))
        .route("/stream", get(stream))
        .route("/own-headers", get(own_headers))
        .route("/slow", get(slow))
        .with_state(app.clone())
}

cache_tests::on_both_backends!(
    a_hit_skips_the_handler,
    query_strings_are_distinct,
    vary_headers_are_distinct,
    head_reads_the_get_entry_without_body,
    post_is_not_cached,
    set_cookie_is_not_stored,
    private_no_store_no_cache_are_not_stored,
    vary_star_is_not_stored,
    vary_on_a_header_outside_the_key_is_not_stored,
    non_200_is_not_stored_unless_listed,
    authorization_bypasses_unless_keyed,
    large_and_streaming_bodies_pass_through,
    if_none_match_is_answered_304_from_the_cache,
    headers_on_fill_and_hit,
    corrupt_bytes_are_a_miss,
    concurrent_misses_run_the_handler_once,
    nested_routers_keep_the_full_path,
    cache_layer_on_a_router,
    invalidate_view_drops_every_url_of_the_handler,
);
cache_tests::on_cluster!(
    a_hit_skips_the_handler,
    query_strings_are_distinct,
    vary_headers_are_distinct,
    head_reads_the_get_entry_without_body,
    post_is_not_cached,
    set_cookie_is_not_stored,
    private_no_store_no_cache_are_not_stored,
    vary_star_is_not_stored,
    vary_on_a_header_outside_the_key_is_not_stored,
    non_200_is_not_stored_unless_listed,
    authorization_bypasses_unless_keyed,
    large_and_streaming_bodies_pass_through,
    if_none_match_is_answered_304_from_the_cache,
    headers_on_fill_and_hit,
    corrupt_bytes_are_a_miss,
    concurrent_misses_run_the_handler_once,
    nested_routers_keep_the_full_path,
    cache_layer_on_a_router,
    invalidate_view_drops_every_url_of_the_handler,
);

async fn a_hit_skips_the_handler(env: Env) {
    let app = App::default();
    let router = router(&app);
    let first = env.send(&router, get_req("/page")).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.text(), "page at /page");
    assert_eq!(app.calls(), 1);
    let second = env.send(&router, get_req("/page")).await;
    assert_eq!(second.text(), "page at /page");
    assert_eq!(second.header(header::CONTENT_LENGTH), Some("13"));
    assert_eq!(app.calls(), 1, "the hit did not run the handler");
    let stats = env.cache.stats();
    assert_eq!((stats.misses, stats.hits, stats.fills), (1, 1, 1));
    assert!(
        env.exists(&env.key("views::page", "/page"))
            .await
            .unwrap_or(true)
    );
}

async fn query_strings_are_distinct(env: Env) {
    let app = App::default();
    let router = router(&app);
    assert_eq!(
        env.send(&router, get_req("/page?a=1")).await.text(),
        "page at /page?a=1"
    );
    assert_eq!(
        env.send(&router, get_req("/page?a=2")).await.text(),
        "page at /page?a=2"
    );
    assert_eq!(
        env.send(&router, get_req("/page")).await.text(),
        "page at /page"
    );
    assert_eq!(app.calls(), 3);
    assert_eq!(
        env.send(&router, get_req("/page?a=1")).await.text(),
        "page at /page?a=1"
    );
    assert_eq!(
        env.send(&router, get_req("/page?a=2")).await.text(),
        "page at /page?a=2"
    );
    assert_eq!(app.calls(), 3);
}

async fn vary_headers_are_distinct(env: Env) {
    let app = App::default();
    let router = router(&app);
    let en = || get_with("/lang", &[("accept-language", "en")]);
    let fr = || get_with("/lang", &[("Accept-Language", "fr")]);
    assert_eq!(env.send(&router, en()).await.text(), "lang=en");
    assert_eq!(env.send(&router, fr()).await.text(), "lang=fr");
    assert_eq!(env.send(&router, get_req("/lang")).await.text(), "lang=");
    assert_eq!(app.calls(), 3);
    let hit = env.send(&router, fr()).await;
    assert_eq!(hit.text(), "lang=fr");
    assert_eq!(
        hit.header(header::VARY),
        Some("Accept-Language"),
        "downstream caches are told"
    );
    assert_eq!(env.send(&router, en()).await.text(), "lang=en");
    assert_eq!(env.send(&router, get_req("/lang")).await.text(), "lang=");
    assert_eq!(app.calls(), 3);
    assert_eq!(env.cache.stats().hits, 3);
}

async fn head_reads_the_get_entry_without_body(env: Env) {
    let app = App::default();
    let router = router(&app);
    let full = env.send(&router, get_req("/page")).await;
    let head = env.send(&router, request(Method::HEAD, "/page", &[])).await;
    assert_eq!(app.calls(), 1, "HEAD was answered from GET's entry");
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header(header::CONTENT_LENGTH),
        Some(&*full.body.len().to_string())
    );
    assert_eq!(head.header(header::ETAG), full.header(header::ETAG));
    assert!(head.headers.contains_key(header::AGE));

    // A HEAD miss runs the handler and stores nothing: GET still misses, then HEAD hits.
    let head = env
        .send(&router, request(Method::HEAD, "/page?h", &[]))
        .await;
    assert!(head.body.is_empty());
    assert_eq!(app.calls(), 2);
    assert_eq!(
        env.send(&router, get_req("/page?h")).await.text(),
        "page at /page?h"
    );
    assert_eq!(app.calls(), 3);
    env.send(&router, request(Method::HEAD, "/page?h", &[]))
        .await;
    assert_eq!(app.calls(), 3);
}

async fn post_is_not_cached(env: Env) {
    let app = App::default();
    let router = router(&app);
    let post = || request(Method::POST, "/form", &[]);
    let first = env.send(&router, post()).await;
    assert_eq!(first.text(), "POST form");
    assert!(!first.headers.contains_key(header::CACHE_CONTROL));
    assert!(!first.headers.contains_key(header::ETAG));
    env.send(&router, post()).await;
    assert_eq!(app.calls(), 2);
    // A cached GET is not served to a POST.
    env.send(&router, get_req("/form")).await;
    assert_eq!(env.send(&router, get_req("/form")).await.text(), "GET form");
    assert_eq!(app.calls(), 3);
    assert_eq!(env.send(&router, post()).await.text(), "POST form");
    assert_eq!(app.calls(), 4);
    let stats = env.cache.stats();
    assert_eq!(
        (stats.misses, stats.hits),
        (1, 1),
        "POSTs neither read nor write"
    );
}

/// Sends `path` twice and checks the handler ran both times and nothing was stored.
async fn assert_not_stored(env: &Env, router: &Router, app: &App, path: &str) -> Got {
    let before = app.calls();
    let fills = env.cache.stats().fills;
    env.send(router, get_req(path)).await;
    let second = env.send(router, get_req(path)).await;
    assert_eq!(app.calls(), before + 2, "{path} was not cached");
    assert_eq!(env.cache.stats().fills, fills, "{path} was not stored");
    assert!(!second.headers.contains_key(header::AGE), "{path}");
    assert!(
        !second.headers.contains_key(header::EXPIRES),
        "{path}: not patched"
    );
    second
}

async fn set_cookie_is_not_stored(env: Env) {
    let app = App::default();
    let router = router(&app);
    let got = assert_not_stored(&env, &router, &app, "/cookie").await;
    assert_eq!(got.header(header::SET_COOKIE), Some("session=1"));
    assert_eq!(got.text(), "with a cookie");
}

async fn private_no_store_no_cache_are_not_stored(env: Env) {
    let app = App::default();
    let router = router(&app);
    let got = assert_not_stored(&env, &router, &app, "/private").await;
    assert_eq!(
        got.header(header::CACHE_CONTROL),
        Some("private, max-age=60"),
        "untouched"
    );
    let got = assert_not_stored(&env, &router, &app, "/no-store").await;
    assert_eq!(got.header(header::CACHE_CONTROL), Some("no-store"));
    assert_not_stored(&env, &router, &app, "/no-cache").await;
}

async fn vary_star_is_not_stored(env: Env) {
    let app = App::default();
    let router = router(&app);
    let got = assert_not_stored(&env, &router, &app, "/vary-star").await;
    assert_eq!(got.header(header::VARY), Some("*"));
}

async fn vary_on_a_header_outside_the_key_is_not_stored(env: Env) {
    let app = App::default();
    let router = router(&app);
    assert_not_stored(&env, &router, &app, "/vary-unkeyed").await;
    // The same `Vary` is fine when the key has the header (names compare case-insensitively).
    env.send(&router, get_req("/vary-keyed")).await;
    let hit = env.send(&router, get_req("/vary-keyed")).await;
    assert_eq!(app.calls(), 3);
    assert_eq!(hit.text(), "vary keyed");
    assert_eq!(
        hit.headers.get_all(header::VARY).iter().count(),
        1,
        "no duplicate Vary"
    );
}

async fn non_200_is_not_stored_unless_listed(env: Env) {
    let app = App::default();
    let router = router(&app);
    let got = assert_not_stored(&env, &router, &app, "/missing").await;
    assert_eq!(got.status, StatusCode::NOT_FOUND);
    env.send(&router, get_req("/missing-stored")).await;
    let hit = env.send(&router, get_req("/missing-stored")).await;
    assert_eq!(app.calls(), 3, "statuses = [200, 404] stores the 404");
    assert_eq!(hit.status, StatusCode::NOT_FOUND);
    assert_eq!(hit.text(), "missing, stored");
    assert!(hit.headers.contains_key(header::AGE));
    // No 304 for a cached 404, even with a matching If-None-Match.
    let etag = hit.header(header::ETAG).unwrap().to_owned();
    let conditional = env
        .send(
            &router,
            get_with("/missing-stored", &[("if-none-match", &etag)]),
        )
        .await;
    assert_eq!(conditional.status, StatusCode::NOT_FOUND);
    assert_eq!(app.calls(), 3);
}

async fn authorization_bypasses_unless_keyed(env: Env) {
    let app = App::default();
    let router = router(&app);
    // A cached anonymous page is not served to an authenticated request, nor is its
    // response stored.
    env.send(&router, get_req("/page")).await;
    let authed = || get_with("/page", &[("authorization", "Bearer a")]);
    let got = env.send(&router, authed()).await;
    assert!(!got.headers.contains_key(header::AGE));
    assert!(!got.headers.contains_key(header::CACHE_CONTROL));
    env.send(&router, authed()).await;
    assert_eq!(app.calls(), 3);
    let stats = env.cache.stats();
    assert_eq!(
        (stats.misses, stats.hits, stats.fills),
        (1, 0, 1),
        "bypassed entirely"
    );

    // With `vary = ["Authorization"]`, each credential has its own entry.
    let as_user = |token: &str| {
        get_with(
            "/auth-keyed",
            &[("authorization", &format!("Bearer {token}"))],
        )
    };
    assert_eq!(env.send(&router, as_user("a")).await.text(), "for Bearer a");
    assert_eq!(env.send(&router, as_user("b")).await.text(), "for Bearer b");
    assert_eq!(
        env.send(&router, get_req("/auth-keyed")).await.text(),
        "for "
    );
    assert_eq!(app.calls(), 6);
    assert_eq!(env.send(&router, as_user("a")).await.text(), "for Bearer a");
    assert_eq!(env.send(&router, as_user("b")).await.text(), "for Bearer b");
    assert_eq!(
        env.send(&router, get_req("/auth-keyed")).await.text(),
        "for "
    );
    assert_eq!(app.calls(), 6);
}

async fn large_and_streaming_bodies_pass_through(env: Env) {
    let app = App::default();
    let router = router(&app);
    let got = assert_not_stored(&env, &router, &app, "/large").await;
    assert_eq!(
        got.body.len(),
        MAX_VALUE + 1024,
        "the whole body, untouched"
    );
    assert!(got.body.iter().all(|&b| b == b'x'));
    assert!(!got.headers.contains_key(header::ETAG));
    let got = assert_not_stored(&env, &router, &app, "/stream").await;
    assert_eq!(got.text(), "streamed in chunks");
}

async fn if_none_match_is_answered_304_from_the_cache(env: Env) {
    let app = App::default();
    let router = router(&app);
    let full = env.send(&router, get_req("/page")).await;
    let etag = full.header(header::ETAG).unwrap().to_owned();
    let weak = format!("W/{etag}");
    let list = format!("\"other\", {etag}");
    for inm in [etag.as_str(), weak.as_str(), list.as_str(), "*"] {
        let got = env
            .send(&router, get_with("/page", &[("if-none-match", inm)]))
            .await;
        assert_eq!(got.status, StatusCode::NOT_MODIFIED, "If-None-Match: {inm}");
        assert!(got.body.is_empty());
        assert_eq!(got.header(header::ETAG), Some(etag.as_str()));
        assert_eq!(got.header(header::CACHE_CONTROL), Some("max-age=60"));
        assert!(got.headers.contains_key(header::EXPIRES));
        assert!(!got.headers.contains_key(header::CONTENT_TYPE));
    }
    assert_eq!(app.calls(), 1, "no 304 ran the handler");
    let other = env
        .send(
            &router,
            get_with("/page", &[("if-none-match", "\"other\"")]),
        )
        .await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(other.body, full.body);
    assert_eq!(app.calls(), 1);

    // The vary header is in the 304 too.
    env.send(&router, get_req("/lang")).await;
    let lang_etag = env
        .send(&router, get_req("/lang"))
        .await
        .header(header::ETAG)
        .unwrap()
        .to_owned();
    let got = env
        .send(&router, get_with("/lang", &[("if-none-match", &lang_etag)]))
        .await;
    assert_eq!(got.status, StatusCode::NOT_MODIFIED);
    assert_eq!(got.header(header::VARY), Some("Accept-Language"));
}

async fn headers_on_fill_and_hit(env: Env) {
    let app = App::default();
    let router = router(&app);
    let fill = env.send(&router, get_req("/page")).await;
    assert_eq!(fill.header(header::CACHE_CONTROL), Some("max-age=60"));
    assert!(
        !fill.headers.contains_key(header::AGE),
        "the fill is not aged"
    );
    let expires = httpdate::parse_http_date(fill.header(header::EXPIRES).unwrap()).unwrap();
    let expected = SystemTime::now() + Duration::from_secs(TTL);
    let off = expected
        .duration_since(expires)
        .unwrap_or_else(|e| e.duration());
    assert!(
        off <= Duration::from_secs(5),
        "Expires is about now + ttl: off by {off:?}"
    );
    let etag = fill.header(header::ETAG).unwrap();
    assert!(
        etag.len() == 66 && etag.starts_with('"') && etag.ends_with('"'),
        "strong sha256 ETag: {etag}"
    );
    assert!(etag[1..65].bytes().all(|b| b.is_ascii_hexdigit()));

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let hit = env.send(&router, get_req("/page")).await;
    assert_eq!(app.calls(), 1);
    let age: u64 = hit.header(header::AGE).unwrap().parse().unwrap();
    assert!(
        (1..=5).contains(&age),
        "Age counts seconds since the fill: {age}"
    );
    assert_eq!(
        hit.header(header::CACHE_CONTROL),
        Some("max-age=60"),
        "lifetime; Age says how much is used"
    );
    assert_eq!(
        hit.header(header::EXPIRES),
        fill.header(header::EXPIRES),
        "same expiry"
    );
    assert_eq!(hit.header(header::ETAG), fill.header(header::ETAG));
    assert_eq!(
        hit.header(header::CONTENT_TYPE),
        fill.header(header::CONTENT_TYPE)
    );
    assert_eq!(hit.body, fill.body);

    // Headers the handler set win: its ETag and Cache-Control stay, no Expires is added.
    env.send(&router, get_req("/own-headers")).await;
    let hit = env.send(&router, get_req("/own-headers")).await;
    assert_eq!(app.calls(), 2);
    assert_eq!(hit.header(header::ETAG), Some("\"v1\""));
    assert_eq!(hit.header(header::CACHE_CONTROL), Some("public, max-age=5"));
    assert!(!hit.headers.contains_key(header::EXPIRES));
    assert!(hit.headers.contains_key(header::AGE));
}

async fn corrupt_bytes_are_a_miss(env: Env) {
    let app = App::default();
    let router = router(&app);
    let key = env.key("views::page", "/page");
    env.send(&router, get_req("/page")).await;
    env.poison(&key).await;
    let got = env.send(&router, get_req("/page")).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.text(), "page at /page");
    assert_eq!(app.calls(), 2, "unreadable bytes are a miss");
    assert_eq!(env.cache.stats().decode_errors, 1);
    // ... and were overwritten by a good entry.
    env.send(&router, get_req("/page")).await;
    assert_eq!(app.calls(), 2);
    assert_eq!(env.cache.stats().hits, 1);
}

async fn concurrent_misses_run_the_handler_once(env: Env) {
    let app = App::default();
    let router = router(&app);
    let (a, b, c, d) = cache_runtime::scope(env.cache.clone(), async {
        let send =
            || async { Got::read(router.clone().oneshot(get_req("/slow")).await.unwrap()).await };
        tokio::join!(send(), send(), send(), send())
    })
    .await;
    for got in [a, b, c, d] {
        assert_eq!(got.text(), "slow");
    }
    assert_eq!(app.calls(), 1, "single-flight");
    let stats = env.cache.stats();
    assert_eq!((stats.misses, stats.hits, stats.fills), (1, 3, 1));
}

async fn nested_routers_keep_the_full_path(env: Env) {
    let app = App::default();
    let inner = || {
        Router::new()
            .route("/page", get(page))
            .with_state(app.clone())
    };
    let router = Router::new().nest("/a", inner()).nest("/b", inner());
    // The handler sees the stripped URI; the key uses the one the client sent.
    assert_eq!(
        env.send(&router, get_req("/a/page")).await.text(),
        "page at /page"
    );
    env.send(&router, get_req("/b/page")).await;
    assert_eq!(app.calls(), 2, "/a/page and /b/page are different pages");
    env.send(&router, get_req("/a/page")).await;
    assert_eq!(app.calls(), 2);
    assert!(
        env.exists(&env.key("views::page", "/b/page"))
            .await
            .unwrap_or(true)
    );
}

async fn cache_layer_on_a_router(env: Env) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = |body: &'static str| {
        let calls = calls.clone();
        move || {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, SeqCst);
                body
            }
        }
    };
    let cookie = {
        let calls = calls.clone();
        move || {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, SeqCst);
                ([(header::SET_COOKIE, "a=b")], "cookie").into_response()
            }
        }
    };
    let layer = CacheLayer::new(Duration::from_secs(TTL))
        .cache(env.cache.clone())
        .vary(["Accept-Language"])
        .version(3);
    // A sub-router cached on its own, before it is nested twice.
    let sub = Router::new()
        .route("/x", get(counted("sub x")))
        .layer(layer.clone());
    let router = Router::new()
        .route("/a", get(counted("a")).post(counted("posted")))
        .route("/lang", get(counted("lang")))
        .route("/cookie", get(cookie))
        .layer(layer)
        .nest("/one", sub.clone())
        .nest("/two", sub);
    let calls = || calls.load(SeqCst);
    // The layer is given its cache: no scope needed.
    let send = |request: Request<Body>| {
        let router = router.clone();
        async move { Got::read(router.oneshot(request).await.unwrap()).await }
    };

    let fill = send(get_req("/a")).await;
    assert_eq!(fill.header(header::CACHE_CONTROL), Some("max-age=60"));
    assert_eq!(fill.header(header::VARY), Some("Accept-Language"));
    let hit = send(get_req("/a")).await;
    assert_eq!(hit.text(), "a");
    assert!(hit.headers.contains_key(header::AGE));
    assert_eq!(calls(), 1);
    let key = format!(
        "{}:3:view:layer:GET:http://{HOST}/a|accept-language=~",
        env.cache.prefix()
    );
    assert!(env.exists(&key).await.unwrap_or(true), "{key}");

    // Vary, POST, Set-Cookie and HEAD follow the same rules as views.
    send(get_with("/a", &[("accept-language", "fr")])).await;
    assert_eq!(calls(), 2);
    send(request(Method::POST, "/a", &[])).await;
    send(request(Method::POST, "/a", &[])).await;
    assert_eq!(calls(), 4);
    send(get_req("/cookie")).await;
    send(get_req("/cookie")).await;
    assert_eq!(calls(), 6);
    let head = send(request(Method::HEAD, "/a", &[])).await;
    assert!(head.body.is_empty());
    assert_eq!(head.header(header::CONTENT_LENGTH), Some("1"));
    assert_eq!(calls(), 6);

    // 304 without calling the route.
    let etag = hit.header(header::ETAG).unwrap().to_owned();
    let got = send(get_with("/a", &[("if-none-match", &etag)])).await;
    assert_eq!(got.status, StatusCode::NOT_MODIFIED);
    assert_eq!(calls(), 6);

    // Nested copies of one sub-router are keyed by the full path.
    send(get_req("/one/x")).await;
    send(get_req("/two/x")).await;
    send(get_req("/one/x")).await;
    assert_eq!(calls(), 8);

    // Unrouted paths (the fallback's 404) are not stored.
    assert_eq!(
        send(get_req("/nowhere")).await.status,
        StatusCode::NOT_FOUND
    );
    let stats = env.cache.stats();
    assert_eq!(stats.fills, 4, "/a (twice: two languages), /one/x, /two/x");
}

/// A Redis that refuses connections is a miss every time, never an error.
#[tokio::test]
async fn a_dead_backend_serves_uncached() {
    let cache = Cache::builder("redis://127.0.0.1:1/")
        .timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let env = Env {
        cache,
        redis_url: None,
    };
    let app = App::default();
    let router = router(&app);
    for _ in 0..3 {
        let got = env.send(&router, get_req("/page")).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.text(), "page at /page");
    }
    assert_eq!(app.calls(), 3);
    let stats = env.cache.stats();
    assert!(stats.backend_errors + stats.skipped >= 3, "{stats:?}");
}

/// Without any cache (none installed, none scoped, none given), views run uncached.
#[tokio::test]
async fn no_cache_runs_the_handler() {
    let app = App::default();
    let router = router(&app);
    for _ in 0..2 {
        let got = Got::read(router.clone().oneshot(get_req("/page")).await.unwrap()).await;
        assert_eq!(got.text(), "page at /page");
        assert!(!got.headers.contains_key(header::ETAG));
    }
    assert_eq!(app.calls(), 2);
}

async fn invalidate_view_drops_every_url_of_the_handler(env: Env) {
    let app = App::default();
    let router = router(&app);
    for path in ["/page", "/page?a=1", "/page", "/page?a=1"] {
        env.send(&router, get_req(path)).await;
    }
    assert_eq!(app.calls(), 2);
    cache_runtime::view::invalidate_view(&env.cache, "views::page")
        .await
        .unwrap();
    for path in ["/page", "/page?a=1", "/page"] {
        env.send(&router, get_req(path)).await;
    }
    assert_eq!(app.calls(), 4, "both URLs re-rendered once, then hit again");
    assert_eq!(env.cache.stats().invalidated, 2);

    // A path's invalidation covers every query string of it; other paths are untouched.
    let nested = Router::new()
        .nest("/n", Router::new().route("/page", get(page)))
        .with_state(app.clone());
    env.send(&nested, get_req("/n/page")).await;
    assert_eq!(app.calls(), 5);
    cache_runtime::view::invalidate_path(&env.cache, "views::page", "/page?a=1")
        .await
        .unwrap();
    env.send(&nested, get_req("/n/page")).await;
    assert_eq!(app.calls(), 5, "another path is untouched");
    env.send(&router, get_req("/page?a=1")).await;
    env.send(&router, get_req("/page")).await;
    assert_eq!(app.calls(), 7, "both query strings of the path re-rendered");
}
