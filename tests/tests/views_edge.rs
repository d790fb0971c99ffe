//! Views where the internet reaches the app: what proxies and browsers really send
//! (forwarded headers, session cookies), through real axum `Router`s, with the ecosystem's
//! own extractors and layers (axum-extra's `Host`, tower-sessions), on both backends.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::routing::{get, post};
// axum-extra 0.12 deprecates its `Host` (tokio-rs/axum#3442), but apps behind proxies use
// it: its preference for forwarded headers is the behaviour these tests guard against.
#[allow(deprecated)]
use axum_extra::extract::Host;
use bytes::Bytes;
use cache_runtime::view::CacheLayer;
use cache_runtime::{Cache, CacheBuilder, cached_view};
use cache_tests::{Backend, test_cache};
use http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_sessions::{MemoryStore, Session, SessionManagerLayer};

const HOST: &str = "example.com";

struct Env {
    backend: Backend,
    test: &'static str,
}

impl Env {
    async fn memory(test: &'static str) -> Env {
        Env {
            backend: Backend::Memory,
            test,
        }
    }
    async fn redis(test: &'static str) -> Env {
        Env {
            backend: Backend::Redis,
            test,
        }
    }
    async fn cluster(test: &'static str) -> Env {
        Env {
            backend: Backend::Cluster,
            test,
        }
    }
    /// A cache of its own, with the test's settings.
    async fn cache(&self, configure: impl FnOnce(CacheBuilder) -> CacheBuilder) -> Cache {
        test_cache(self.backend, self.test, configure).await.0
    }
}

/// A response, read whole.
struct Got {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Got {
    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

async fn send(router: &Router, cache: &Cache, request: Request<Body>) -> Got {
    let response = cache_runtime::scope(cache.clone(), router.clone().oneshot(request))
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    Got {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, HOST);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::empty()).unwrap()
}

fn get_with(uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    request("GET", uri, headers)
}

// ---------------------------------------------------------------------------------------
// Forwarded headers
// ---------------------------------------------------------------------------------------

/// Counts handler calls.
#[derive(Clone, Default)]
struct Calls(Arc<AtomicUsize>);

impl Calls {
    fn ran(&self) {
        self.0.fetch_add(1, SeqCst);
    }
    fn get(&self) -> usize {
        self.0.load(SeqCst)
    }
}

/// What an app behind a proxy renders: links built from the host and scheme it is told
/// (axum-extra's `Host` prefers `Forwarded` and `X-Forwarded-Host` to `Host`).
fn render_links(host: &str, headers: &HeaderMap) -> String {
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("http");
    format!("<a href=\"{proto}://{host}/next\">next</a>")
}

#[allow(deprecated)]
#[cached_view(ttl = 60)]
async fn links_view(State(calls): State<Calls>, Host(host): Host, headers: HeaderMap) -> String {
    calls.ran();
    render_links(&host, &headers)
}

#[allow(deprecated)]
async fn links_plain(State(calls): State<Calls>, Host(host): Host, headers: HeaderMap) -> String {
    calls.ran();
    render_links(&host, &headers)
}

/// `/view` is a `#[cached_view]`, `/layer` a plain handler under a `CacheLayer`.
fn links_router(cache: &Cache, calls: &Calls) -> Router {
    let layered = Router::new()
        .route("/layer", get(links_plain))
        .layer(CacheLayer::new(Duration::from_secs(60)).cache(cache.clone()));
    Router::new()
        .route("/view", get(links_view))
        .merge(layered)
        .with_state(calls.clone())
}

/// What proxies and forgers send.
const FORGED: [(&str, &str); 5] = [
    ("x-forwarded-host", "evil.test"),
    ("x-forwarded-proto", "https"),
    ("forwarded", "for=203.0.113.9;host=evil.test;proto=https"),
    ("x-forwarded-port", "8443"),
    ("x-forwarded-prefix", "/evil"),
];

cache_tests::on_both_backends!(
    forged_forwarded_headers_never_poison_the_cache,
    trusted_forwarded_headers_are_keyed,
    session_pages_never_reach_another_user,
    cookie_in_vary_caches_per_session,
    response_caching_headers_are_read_as_a_shared_cache,
    url_spellings_share_a_key_and_an_invalidation,
);
cache_tests::on_cluster!(
    forged_forwarded_headers_never_poison_the_cache,
    trusted_forwarded_headers_are_keyed,
    session_pages_never_reach_another_user,
    cookie_in_vary_caches_per_session,
    response_caching_headers_are_read_as_a_shared_cache,
    url_spellings_share_a_key_and_an_invalidation,
);

async fn forged_forwarded_headers_never_poison_the_cache(env: Env) {
    let cache = env.cache(|b| b).await;
    let calls = Calls::default();
    let router = links_router(&cache, &calls);
    for path in ["/view", "/layer"] {
        for forged in FORGED {
            let before = calls.get();
            // The forger's request runs (the app believes the header, as apps do)...
            let got = send(&router, &cache, get_with(path, &[forged])).await;
            assert_eq!(got.status, StatusCode::OK);
            assert!(!got.headers.contains_key(header::AGE), "{path} {forged:?}");
            // ... and everyone else still gets the page of the real host.
            let clean = send(&router, &cache, get_with(path, &[])).await;
            assert_eq!(
                clean.text(),
                "<a href=\"http://example.com/next\">next</a>",
                "{path} after {forged:?}"
            );
            let again = send(&router, &cache, get_with(path, &[forged])).await;
            assert!(
                !again.headers.contains_key(header::AGE),
                "{path} {forged:?}"
            );
            assert!(calls.get() - before >= 2, "{path}: the forged ones ran");
        }
        // Headers that name the client, not the URL, do not keep a request from the cache.
        let before = calls.get();
        let proxied = get_with(
            path,
            &[("x-forwarded-for", "203.0.113.9"), ("x-real-ip", "1.2.3.4")],
        );
        let got = send(&router, &cache, proxied).await;
        assert!(got.headers.contains_key(header::AGE), "{path}: a hit");
        let by_client = get_with(path, &[("forwarded", "for=198.51.100.1;by=10.0.0.1")]);
        assert!(
            send(&router, &cache, by_client)
                .await
                .headers
                .contains_key(header::AGE)
        );
        assert_eq!(calls.get(), before);
    }
    assert_eq!(
        cache.stats().fills,
        2,
        "the clean page of each path: {:?}",
        cache.stats()
    );
}

async fn trusted_forwarded_headers_are_keyed(env: Env) {
    let cache = env.cache(|b| b.trust_forwarded(true)).await;
    let calls = Calls::default();
    let router = links_router(&cache, &calls);
    for path in ["/view", "/layer"] {
        let before = calls.get();
        let proxied = || {
            get_with(
                path,
                &[
                    ("x-forwarded-host", "www.example.org"),
                    ("x-forwarded-proto", "https"),
                ],
            )
        };
        let got = send(&router, &cache, proxied()).await;
        assert_eq!(
            got.text(),
            "<a href=\"https://www.example.org/next\">next</a>"
        );
        let clean = send(&router, &cache, get_with(path, &[])).await;
        assert_eq!(clean.text(), "<a href=\"http://example.com/next\">next</a>");
        assert_eq!(calls.get() - before, 2, "{path}: two URLs, two entries");
        let hit = send(&router, &cache, proxied()).await;
        assert_eq!(hit.text(), got.text());
        assert!(hit.headers.contains_key(header::AGE));
        assert_eq!(
            send(&router, &cache, get_with(path, &[])).await.text(),
            clean.text()
        );
        assert_eq!(calls.get() - before, 2, "{path}: both were hits");

        // `Forwarded`: host and proto are keyed, the client's address is not.
        let standard = |client: &str| {
            let value = format!("for={client};host=a.example;proto=https");
            get_with(path, &[("forwarded", &value)])
        };
        let first = send(&router, &cache, standard("198.51.100.1")).await;
        assert_eq!(first.text(), "<a href=\"http://a.example/next\">next</a>");
        let other_client = send(&router, &cache, standard("198.51.100.2")).await;
        assert_eq!(other_client.text(), first.text());
        assert!(other_client.headers.contains_key(header::AGE));
        assert_eq!(calls.get() - before, 3, "{path}");
    }
}

// ---------------------------------------------------------------------------------------
// Session cookies (tower-sessions, its memory store)
// ---------------------------------------------------------------------------------------

async fn login(session: Session, Path(user): Path<String>) -> &'static str {
    session.insert("user", user).await.unwrap();
    "logged in"
}

async fn greeting(session: &Session, calls: &Calls) -> String {
    calls.ran();
    let user: Option<String> = session.get("user").await.unwrap();
    format!("hello {}", user.as_deref().unwrap_or("anonymous"))
}

async fn dashboard_plain(State(calls): State<Calls>, session: Session) -> String {
    greeting(&session, &calls).await
}

#[cached_view(ttl = 60)]
async fn dashboard_view(State(calls): State<Calls>, session: Session) -> String {
    greeting(&session, &calls).await
}

#[cached_view(ttl = 60, vary = ["Cookie"])]
async fn dashboard_per_cookie(State(calls): State<Calls>, session: Session) -> String {
    greeting(&session, &calls).await
}

/// The three ways to put the cache in front of a session page: a `#[cached_view]`, a
/// `CacheLayer` inside the session layer, and one outside it.
fn session_routers(cache: &Cache, calls: &Calls) -> Vec<(&'static str, Router)> {
    let sessions = || SessionManagerLayer::new(MemoryStore::default()).with_secure(false);
    let layer = || CacheLayer::new(Duration::from_secs(60)).cache(cache.clone());
    let base = || Router::new().route("/login/{user}", post(login));
    vec![
        (
            "#[cached_view]",
            base()
                .route("/dashboard", get(dashboard_view))
                .layer(sessions())
                .with_state(calls.clone()),
        ),
        (
            "CacheLayer inside SessionManagerLayer",
            base()
                .route("/dashboard", get(dashboard_plain))
                .layer(layer())
                .layer(sessions())
                .with_state(calls.clone()),
        ),
        (
            "CacheLayer outside SessionManagerLayer",
            base()
                .route("/dashboard", get(dashboard_plain))
                .layer(sessions())
                .layer(layer())
                .with_state(calls.clone()),
        ),
    ]
}

/// Logs `user` in and returns the session cookie a browser would send back.
async fn log_in(router: &Router, cache: &Cache, user: &str) -> String {
    let got = send(
        router,
        cache,
        request("POST", &format!("/login/{user}"), &[]),
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    let set_cookie = got.headers[header::SET_COOKIE].to_str().unwrap();
    set_cookie.split(';').next().unwrap().to_owned()
}

/// What a browser sends: the session cookie among analytics cookies.
fn browser(cookie: &str) -> Request<Body> {
    let cookies = format!("_ga=GA1.1.123.456; {cookie}; theme=dark");
    get_with(
        "/dashboard",
        &[
            ("cookie", &cookies),
            ("accept", "text/html,application/xhtml+xml"),
            ("user-agent", "Mozilla/5.0"),
        ],
    )
}

async fn session_pages_never_reach_another_user(env: Env) {
    for (how, ..) in session_routers(&env.cache(|b| b).await, &Calls::default()) {
        let cache = env.cache(|b| b).await;
        let calls = Calls::default();
        let router = session_routers(&cache, &calls)
            .into_iter()
            .find(|(name, _)| *name == how)
            .unwrap()
            .1;
        let alice = log_in(&router, &cache, "alice").await;
        let bob = log_in(&router, &cache, "bob").await;
        // Alice first: her page must not be stored for anyone else.
        assert_eq!(
            send(&router, &cache, browser(&alice)).await.text(),
            "hello alice",
            "{how}"
        );
        let anonymous = send(&router, &cache, get_with("/dashboard", &[])).await;
        assert_eq!(anonymous.text(), "hello anonymous", "{how}");
        assert_eq!(
            send(&router, &cache, browser(&bob)).await.text(),
            "hello bob",
            "{how}"
        );
        // An anonymous page cached now is not served to a logged-in user either.
        let again = send(&router, &cache, get_with("/dashboard", &[])).await;
        assert!(
            again.headers.contains_key(header::AGE),
            "{how}: anonymous pages are cached"
        );
        assert_eq!(
            send(&router, &cache, browser(&alice)).await.text(),
            "hello alice",
            "{how}"
        );
        assert_eq!(calls.get(), 4, "{how}: every logged-in request ran");
    }
}

async fn cookie_in_vary_caches_per_session(env: Env) {
    let cache = env.cache(|b| b).await;
    let calls = Calls::default();
    let router = Router::new()
        .route("/login/{user}", post(login))
        .route("/dashboard", get(dashboard_per_cookie))
        .layer(SessionManagerLayer::new(MemoryStore::default()).with_secure(false))
        .with_state(calls.clone());
    let alice = log_in(&router, &cache, "alice").await;
    let bob = log_in(&router, &cache, "bob").await;
    for _ in 0..2 {
        assert_eq!(
            send(&router, &cache, browser(&alice)).await.text(),
            "hello alice"
        );
        assert_eq!(
            send(&router, &cache, browser(&bob)).await.text(),
            "hello bob"
        );
        let anonymous = send(&router, &cache, get_with("/dashboard", &[])).await;
        assert_eq!(anonymous.text(), "hello anonymous");
    }
    assert_eq!(calls.get(), 3, "one entry per cookie header, then hits");
    let hit = send(&router, &cache, browser(&alice)).await;
    assert_eq!(hit.headers[header::VARY], "Cookie");
}

// ---------------------------------------------------------------------------------------
// The response's own caching headers
// ---------------------------------------------------------------------------------------

/// Routes answering with the caching headers of the table below, under a `CacheLayer` with
/// a 60 s ttl.
/// A path, the caching headers its response carries, and how many seconds it stays stored
/// (`None`: not stored).
type Freshness = (
    &'static str,
    &'static [(&'static str, &'static str)],
    Option<u64>,
);

const FRESHNESS: [Freshness; 11] = [
    ("/max-age-0", &[("cache-control", "max-age=0")], None),
    (
        "/s-maxage-0",
        &[("cache-control", "public, max-age=60, s-maxage=0")],
        None,
    ),
    (
        "/s-maxage-1",
        &[("cache-control", "public, max-age=600, s-maxage=1")],
        Some(1),
    ),
    (
        "/must-revalidate",
        &[("cache-control", "max-age=1, must-revalidate")],
        Some(1),
    ),
    (
        "/surrogate-no-store",
        &[
            ("surrogate-control", "no-store"),
            ("cache-control", "max-age=60"),
        ],
        None,
    ),
    (
        "/surrogate-1",
        &[
            ("surrogate-control", "max-age=1"),
            ("cache-control", "max-age=600"),
        ],
        Some(1),
    ),
    (
        "/cdn-0",
        &[
            ("cdn-cache-control", "max-age=0"),
            ("cache-control", "max-age=60"),
        ],
        None,
    ),
    (
        "/cdn-1",
        &[
            ("cdn-cache-control", "max-age=1"),
            ("cache-control", "max-age=600"),
        ],
        Some(1),
    ),
    (
        "/expired",
        &[("expires", "Thu, 01 Jan 1970 00:00:00 GMT")],
        None,
    ),
    ("/expires-invalid", &[("expires", "0")], None),
    ("/plain", &[("cache-control", "public")], Some(60)),
];

async fn response_caching_headers_are_read_as_a_shared_cache(env: Env) {
    let cache = env.cache(|b| b).await;
    let calls = Calls::default();
    let mut router = Router::new();
    for (path, headers, _) in FRESHNESS {
        let calls = calls.clone();
        router = router.route(
            path,
            get(move || {
                calls.ran();
                let mut response = http::Response::new(Body::from(path));
                for (name, value) in headers {
                    response.headers_mut().append(*name, value.parse().unwrap());
                }
                async move { response }
            }),
        );
    }
    let router = router.layer(CacheLayer::new(Duration::from_secs(60)).cache(cache.clone()));
    let hit = |got: &Got| got.headers.contains_key(header::AGE);
    for (path, _, stored) in FRESHNESS {
        let before = calls.get();
        send(&router, &cache, get_with(path, &[])).await;
        let second = send(&router, &cache, get_with(path, &[])).await;
        assert_eq!(hit(&second), stored.is_some(), "{path}");
        assert_eq!(
            calls.get() - before,
            if stored.is_some() { 1 } else { 2 },
            "{path}"
        );
    }
    // The short-lived ones are gone after their second; the others are still served.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for (path, _, stored) in FRESHNESS {
        let Some(seconds) = stored else { continue };
        let got = send(&router, &cache, get_with(path, &[])).await;
        assert_eq!(hit(&got), seconds > 1, "{path}");
    }
}

// ---------------------------------------------------------------------------------------
// URL spellings
// ---------------------------------------------------------------------------------------

#[cached_view(ttl = 60)]
async fn search(
    State(calls): State<Calls>,
    axum::extract::Query(query): axum::extract::Query<std::collections::BTreeMap<String, String>>,
) -> String {
    calls.ran();
    format!("results for {query:?}")
}

#[cached_view(ttl = 60)]
async fn item(State(calls): State<Calls>, Path(name): Path<String>) -> String {
    calls.ran();
    format!("item {name}")
}

async fn url_spellings_share_a_key_and_an_invalidation(env: Env) {
    let cache = env.cache(|b| b).await;
    let calls = Calls::default();
    let router = Router::new()
        .route("/search", get(search))
        .route("/items/{name}", get(item))
        .with_state(calls.clone());
    let get = |uri: &str| send(&router, &cache, get_with(uri, &[]));
    // One query, spelled the ways browsers, proxies and people spell it.
    let spellings = [
        "/search?q=rust+cache&page=2",
        "/search?page=2&q=rust+cache",
        "/search?q=rust%20cache&page=2",
        "/search?q=rust%20cache&page=%32&",
        "/search?&page=2&&q=rust+cache",
    ];
    let first = get(spellings[0]).await;
    for uri in spellings {
        assert_eq!(get(uri).await.text(), first.text(), "{uri}");
    }
    assert_eq!(calls.get(), 1, "one entry for every spelling");
    // Tracking parameters are keyed: the app may reflect them.
    get("/search?q=rust+cache&page=2&utm_source=news").await;
    assert_eq!(calls.get(), 2);
    // Invalidating the path covers every query string of it, and its spellings.
    cache_runtime::view::invalidate_path(&cache, "views_edge::search", "/search?page=2")
        .await
        .unwrap();
    get(spellings[1]).await;
    get("/search?utm_source=news&page=2&q=rust+cache").await;
    get("/search").await;
    assert_eq!(calls.get(), 5, "all re-rendered");
    for uri in [
        spellings[3],
        "/search?q=rust+cache&page=2&utm_source=news",
        "/search",
    ] {
        assert!(get(uri).await.headers.contains_key(header::AGE), "{uri}");
    }

    // Paths are keyed as sent (a router may tell them apart), but share an invalidation.
    get("/items/abc").await;
    get("/items/%61bc").await;
    assert_eq!(calls.get(), 7);
    cache_runtime::view::invalidate_path(&cache, "views_edge::item", "/items/abc")
        .await
        .unwrap();
    get("/items/abc").await;
    get("/items/%61bc").await;
    assert_eq!(calls.get(), 9, "both spellings invalidated");
}
