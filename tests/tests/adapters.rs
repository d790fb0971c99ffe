//! One behaviour suite for every web adapter: the same `#[cached_view]` handlers and
//! `CacheLayer`, written for axum and for actix-web (`#[cached_view(actix)]`,
//! `App::wrap(CacheLayer)`), served by real servers on 127.0.0.1 and driven over real HTTP,
//! each on the memory store and on a real `redis-server`. Every case counts how often the
//! handlers ran.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use cache_runtime::Cache;
use cache_tests::{Backend, test_cache};

const TTL: u64 = 60;

/// One response, read whole from the socket.
#[derive(Debug)]
struct Got {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

/// Sends one HTTP/1.1 request (`Connection: close`) and reads the response.
fn send(addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Got {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    if chunked && method != "HEAD" {
        body = dechunk(&body);
    }
    Got {
        status,
        headers,
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&raw[..end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[end + 4 + size..];
    }
}

/// What the handlers of both adapters count and answer.
#[derive(Clone, Default)]
struct App {
    calls: Arc<AtomicUsize>,
}

impl App {
    fn ran(&self) {
        self.calls.fetch_add(1, SeqCst);
    }
}

/// The suite's handlers for axum.
mod on_axum {
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode, Uri, header};
    use axum::response::IntoResponse;
    use cache_runtime::cached_view;

    use super::App;

    #[cached_view(ttl = 60)]
    pub async fn page(State(app): State<App>, uri: Uri) -> String {
        app.ran();
        format!("page at {uri}")
    }

    #[cached_view(ttl = 60, vary = ["Accept-Language"])]
    pub async fn lang(State(app): State<App>, headers: HeaderMap) -> String {
        app.ran();
        let lang = headers.get(header::ACCEPT_LANGUAGE);
        format!("lang={}", lang.map_or("", |v| v.to_str().unwrap()))
    }

    #[cached_view(ttl = 60)]
    pub async fn cookie(State(app): State<App>) -> impl IntoResponse {
        app.ran();
        ([(header::SET_COOKIE, "session=1")], "with a cookie")
    }

    #[cached_view(ttl = 60)]
    pub async fn missing(State(app): State<App>) -> impl IntoResponse {
        app.ran();
        (StatusCode::NOT_FOUND, "missing")
    }

    #[cached_view(ttl = 60, statuses = [200, 404])]
    pub async fn missing_stored(State(app): State<App>) -> impl IntoResponse {
        app.ran();
        (StatusCode::NOT_FOUND, "missing, stored")
    }

    #[cached_view(ttl = 60, vary = ["Authorization"])]
    pub async fn auth_keyed(State(app): State<App>, headers: HeaderMap) -> String {
        app.ran();
        let auth = headers.get(header::AUTHORIZATION);
        format!("for {}", auth.map_or("", |v| v.to_str().unwrap()))
    }

    #[cached_view(ttl = 60, tags = ["news"])]
    pub async fn tagged(State(app): State<App>) -> &'static str {
        app.ran();
        "news"
    }

    #[cached_view(ttl = 1, stale = 30)]
    pub async fn flaky(State(app): State<App>) -> impl IntoResponse {
        app.ran();
        let status = if app.calls.load(super::SeqCst) > 1 {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        (status, "flaky")
    }
}

/// The same handlers for actix-web, with `#[cached_view(actix)]`.
mod on_actix {
    use actix_web::http::{StatusCode, header};
    use actix_web::{HttpRequest, HttpResponse, Responder, web};
    use cache_runtime::cached_view;

    use super::App;

    #[cached_view(actix, ttl = 60)]
    pub async fn page(app: web::Data<App>, req: HttpRequest) -> String {
        app.ran();
        format!("page at {}", req.uri())
    }

    #[cached_view(actix, ttl = 60, vary = ["Accept-Language"])]
    pub async fn lang(app: web::Data<App>, req: HttpRequest) -> String {
        app.ran();
        let lang = req.headers().get(header::ACCEPT_LANGUAGE);
        format!("lang={}", lang.map_or("", |v| v.to_str().unwrap()))
    }

    #[cached_view(actix, ttl = 60)]
    pub async fn cookie(app: web::Data<App>) -> impl Responder {
        app.ran();
        HttpResponse::Ok()
            .insert_header((header::SET_COOKIE, "session=1"))
            .body("with a cookie")
    }

    #[cached_view(actix, ttl = 60)]
    pub async fn missing(app: web::Data<App>) -> impl Responder {
        app.ran();
        HttpResponse::NotFound().body("missing")
    }

    #[cached_view(actix, ttl = 60, statuses = [200, 404])]
    pub async fn missing_stored(app: web::Data<App>) -> impl Responder {
        app.ran();
        HttpResponse::NotFound().body("missing, stored")
    }

    #[cached_view(actix, ttl = 60, vary = ["Authorization"])]
    pub async fn auth_keyed(app: web::Data<App>, req: HttpRequest) -> String {
        app.ran();
        let auth = req.headers().get(header::AUTHORIZATION);
        format!("for {}", auth.map_or("", |v| v.to_str().unwrap()))
    }

    #[cached_view(actix, ttl = 60, tags = ["news"])]
    pub async fn tagged(app: web::Data<App>) -> &'static str {
        app.ran();
        "news"
    }

    #[cached_view(actix, ttl = 1, stale = 30)]
    pub async fn flaky(app: web::Data<App>) -> impl Responder {
        app.ran();
        let status = if app.calls.load(super::SeqCst) > 1 {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        HttpResponse::build(status).body("flaky")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Adapter {
    Axum,
    Actix,
}

/// A real server of one adapter on a free port, its cache scoped around every request; the
/// routes under `/site` sit behind a `CacheLayer` (tower layer, or actix middleware).
struct Server {
    addr: String,
    app: App,
    cache: Cache,
    adapter: Adapter,
    stop: Option<Box<dyn FnOnce() + Send>>,
}

impl Server {
    fn start(adapter: Adapter, backend: Backend, test: &str) -> Server {
        let (cache, _) = cache_runtime::block_on(test_cache(backend, test, |b| b));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let app = App::default();
        let stop = match adapter {
            Adapter::Axum => serve_axum(listener, app.clone(), cache.clone()),
            Adapter::Actix => serve_actix(listener, app.clone(), cache.clone()),
        };
        Server {
            addr,
            app,
            cache,
            adapter,
            stop: Some(stop),
        }
    }

    fn get(&self, path: &str) -> Got {
        send(&self.addr, "GET", path, &[])
    }

    fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Got {
        send(&self.addr, "GET", path, headers)
    }

    fn calls(&self) -> usize {
        self.app.calls.load(SeqCst)
    }

    /// Runs a companion of the adapter's handler `name` (blocking on it).
    fn invalidate(&self, name: &str, path: Option<&str>) {
        let cache = self.cache.clone();
        let result = cache_runtime::block_on(cache_runtime::scope(cache, async {
            match (self.adapter, name, path) {
                (Adapter::Axum, "page", Some(path)) => on_axum::page_invalidate(path).await,
                (Adapter::Axum, "page", None) => on_axum::page_invalidate_all().await,
                (Adapter::Actix, "page", Some(path)) => on_actix::page_invalidate(path).await,
                (Adapter::Actix, "page", None) => on_actix::page_invalidate_all().await,
                other => panic!("no companion for {other:?}"),
            }
        }));
        result.unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
    }
}

fn serve_axum(listener: TcpListener, app: App, cache: Cache) -> Box<dyn FnOnce() + Send> {
    use axum::Router;
    use axum::routing::get;
    let layer = cache_runtime::view::CacheLayer::new(Duration::from_secs(TTL))
        .cache(cache.clone())
        .vary(["Accept-Language"]);
    let counted = app.clone();
    let site = Router::new()
        .route(
            "/site/a",
            axum::routing::any(move || {
                let app = counted.clone();
                async move {
                    app.ran();
                    "site a"
                }
            }),
        )
        .layer(layer);
    let router = Router::new()
        .route("/page", get(on_axum::page).post(on_axum::page))
        .route("/lang", get(on_axum::lang))
        .route("/cookie", get(on_axum::cookie))
        .route("/missing", get(on_axum::missing))
        .route("/missing-stored", get(on_axum::missing_stored))
        .route("/auth-keyed", get(on_axum::auth_keyed))
        .route("/tagged", get(on_axum::tagged))
        .route("/flaky", get(on_axum::flaky))
        .with_state(app)
        .merge(site)
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                cache_runtime::scope(cache.clone(), next.run(req))
            },
        ));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
    });
    Box::new(move || {
        let _ = tx.send(());
        let _ = thread.join();
    })
}

fn serve_actix(listener: TcpListener, app: App, cache: Cache) -> Box<dyn FnOnce() + Send> {
    use actix_web::dev::Service as _;
    use actix_web::{App as ActixApp, HttpServer, web};
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                let layer = cache_runtime::view::CacheLayer::new(Duration::from_secs(TTL))
                    .cache(cache.clone())
                    .vary(["Accept-Language"]);
                let counted = app.clone();
                let scoped = cache.clone();
                ActixApp::new()
                    .app_data(web::Data::new(app.clone()))
                    .wrap_fn(move |req, srv| cache_runtime::scope(scoped.clone(), srv.call(req)))
                    .service(web::scope("/site").wrap(layer).route(
                        "/a",
                        web::route().to(move || {
                            let app = counted.clone();
                            async move {
                                app.ran();
                                "site a"
                            }
                        }),
                    ))
                    // `web::route()`: every method, HEAD and POST included (the view decides).
                    .route("/page", web::route().to(on_actix::page))
                    .route("/lang", web::route().to(on_actix::lang))
                    .route("/cookie", web::route().to(on_actix::cookie))
                    .route("/missing", web::route().to(on_actix::missing))
                    .route("/missing-stored", web::route().to(on_actix::missing_stored))
                    .route("/auth-keyed", web::route().to(on_actix::auth_keyed))
                    .route("/tagged", web::route().to(on_actix::tagged))
                    .route("/flaky", web::route().to(on_actix::flaky))
            })
            .workers(1)
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run();
            tx.send(server.handle()).unwrap();
            server.await.unwrap();
        });
    });
    let handle = rx.recv().unwrap();
    Box::new(move || {
        actix_web::rt::System::new().block_on(handle.stop(false));
        let _ = thread.join();
    })
}

/// Four tests per case: axum and actix, memory and Redis.
macro_rules! on_every_adapter {
    ($($case:ident),* $(,)?) => {
        mod axum_memory {
            $(#[test] fn $case() { super::$case(super::Server::start(super::Adapter::Axum, cache_tests::Backend::Memory, stringify!($case))) })*
        }
        mod axum_redis {
            $(#[test] fn $case() { super::$case(super::Server::start(super::Adapter::Axum, cache_tests::Backend::Redis, stringify!($case))) })*
        }
        mod actix_memory {
            $(#[test] fn $case() { super::$case(super::Server::start(super::Adapter::Actix, cache_tests::Backend::Memory, stringify!($case))) })*
        }
        mod actix_redis {
            $(#[test] fn $case() { super::$case(super::Server::start(super::Adapter::Actix, cache_tests::Backend::Redis, stringify!($case))) })*
        }
    };
}

on_every_adapter!(
    a_hit_skips_the_handler_with_age_etag_and_max_age,
    query_strings_and_vary_headers_are_distinct,
    head_reads_the_get_entry_without_its_body,
    only_storable_responses_are_stored,
    credentials_bypass_the_cache_unless_keyed,
    if_none_match_is_answered_304_from_the_cache,
    companions_and_tags_invalidate,
    a_stale_response_stands_in_for_a_failed_refresh,
    the_cache_layer_caches_a_whole_app,
);

fn a_hit_skips_the_handler_with_age_etag_and_max_age(server: Server) {
    let fill = server.get("/page");
    assert_eq!(fill.status, 200);
    assert_eq!(fill.text(), "page at /page");
    assert_eq!(fill.header("cache-control"), Some("max-age=60"));
    assert!(fill.header("expires").is_some());
    assert!(fill.header("age").is_none(), "the fill is not aged");
    let etag = fill.header("etag").unwrap();
    assert!(etag.len() == 66 && etag.starts_with('"'), "{etag}");
    let hit = server.get("/page");
    assert_eq!(server.calls(), 1, "the hit did not run the handler");
    assert_eq!(hit.text(), "page at /page");
    assert_eq!(hit.header("age"), Some("0"));
    assert_eq!(hit.header("etag"), Some(etag));
    assert_eq!(hit.header("expires"), fill.header("expires"));
    assert_eq!(hit.header("content-length"), Some("13"));
    assert_eq!(
        hit.headers
            .iter()
            .filter(|(n, _)| n == "content-length")
            .count(),
        1
    );
    let stats = server.cache.stats();
    assert_eq!((stats.misses, stats.hits, stats.fills), (1, 1, 1));
}

fn query_strings_and_vary_headers_are_distinct(server: Server) {
    for path in ["/page?a=1", "/page?a=2", "/page?a=1", "/page?a=2"] {
        assert_eq!(server.get(path).text(), format!("page at {path}"));
    }
    assert_eq!(server.calls(), 2);
    let en = || server.get_with("/lang", &[("Accept-Language", "en")]);
    let fr = || server.get_with("/lang", &[("Accept-Language", "fr")]);
    assert_eq!(en().text(), "lang=en");
    assert_eq!(fr().text(), "lang=fr");
    assert_eq!(server.get("/lang").text(), "lang=");
    assert_eq!(server.calls(), 5);
    let hit = fr();
    assert_eq!(hit.text(), "lang=fr");
    assert_eq!(hit.header("vary"), Some("Accept-Language"));
    assert_eq!(en().text(), "lang=en");
    assert_eq!(server.calls(), 5);
}

fn head_reads_the_get_entry_without_its_body(server: Server) {
    let full = server.get("/page");
    let head = send(&server.addr, "HEAD", "/page", &[]);
    assert_eq!(server.calls(), 1, "HEAD was answered from GET's entry");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length"),
        Some(&*full.body.len().to_string())
    );
    assert_eq!(head.header("etag"), full.header("etag"));
    assert!(head.header("age").is_some());
    // A HEAD miss runs the handler and stores nothing.
    send(&server.addr, "HEAD", "/page?h", &[]);
    assert_eq!(server.calls(), 2);
    server.get("/page?h");
    assert_eq!(server.calls(), 3);
}

fn only_storable_responses_are_stored(server: Server) {
    let twice = |method: &str, path: &str| {
        let before = server.calls();
        send(&server.addr, method, path, &[]);
        let second = send(&server.addr, method, path, &[]);
        assert_eq!(server.calls(), before + 2, "{method} {path} ran twice");
        assert!(second.header("age").is_none(), "{path}");
        second
    };
    let posted = twice("POST", "/page");
    assert_eq!(posted.text(), "page at /page");
    assert!(posted.header("etag").is_none(), "POST is never cached");
    let cookie = twice("GET", "/cookie");
    assert_eq!(cookie.header("set-cookie"), Some("session=1"));
    let missing = twice("GET", "/missing");
    assert_eq!(missing.status, 404);
    assert_eq!(server.cache.stats().fills, 0);
    server.get("/missing-stored");
    let hit = server.get("/missing-stored");
    assert_eq!(hit.status, 404);
    assert_eq!(hit.text(), "missing, stored");
    assert!(hit.header("age").is_some(), "statuses = [200, 404]");
    assert_eq!(server.calls(), 7);
}

fn credentials_bypass_the_cache_unless_keyed(server: Server) {
    server.get("/page");
    for credentials in [("Authorization", "Bearer a"), ("Cookie", "session=1")] {
        let got = server.get_with("/page", &[credentials]);
        assert!(got.header("age").is_none(), "{credentials:?}");
        assert!(got.header("cache-control").is_none(), "{credentials:?}");
    }
    assert_eq!(
        server.calls(),
        3,
        "never served from nor stored to the cache"
    );
    let stats = server.cache.stats();
    assert_eq!((stats.misses, stats.hits, stats.fills), (1, 0, 1));

    let user = |token: &str| {
        server.get_with(
            "/auth-keyed",
            &[("Authorization", &format!("Bearer {token}"))],
        )
    };
    assert_eq!(user("a").text(), "for Bearer a");
    assert_eq!(user("b").text(), "for Bearer b");
    assert_eq!(user("a").text(), "for Bearer a");
    assert_eq!(user("b").text(), "for Bearer b");
    assert_eq!(server.calls(), 5, "one entry per credential");
}

fn if_none_match_is_answered_304_from_the_cache(server: Server) {
    let full = server.get("/page");
    let etag = full.header("etag").unwrap().to_owned();
    for inm in [etag.clone(), format!("W/{etag}"), "*".to_owned()] {
        let got = server.get_with("/page", &[("If-None-Match", &inm)]);
        assert_eq!(got.status, 304, "If-None-Match: {inm}");
        assert!(got.body.is_empty());
        assert_eq!(got.header("etag"), Some(etag.as_str()));
        assert_eq!(got.header("cache-control"), Some("max-age=60"));
    }
    let other = server.get_with("/page", &[("If-None-Match", "\"other\"")]);
    assert_eq!(other.status, 200);
    assert_eq!(other.body, full.body);
    assert_eq!(server.calls(), 1, "no 304 ran the handler");
}

fn companions_and_tags_invalidate(server: Server) {
    for path in ["/page", "/page?a=1", "/page", "/page?a=1"] {
        server.get(path);
    }
    assert_eq!(server.calls(), 2);
    server.invalidate("page", Some("/page?b=2"));
    server.get("/page");
    server.get("/page?a=1");
    assert_eq!(server.calls(), 4, "every query string of the path");
    server.invalidate("page", None);
    server.get("/page");
    assert_eq!(server.calls(), 5, "every response of the handler");
    server.get("/tagged");
    server.get("/tagged");
    assert_eq!(server.calls(), 6);
    cache_runtime::block_on(server.cache.invalidate_tag("news")).unwrap();
    server.get("/tagged");
    assert_eq!(server.calls(), 7, "the view's tag");
}

/// `ttl = 1, stale = 30`: after expiry, a refresh that fails (a 503) is answered with the
/// old response; responses say so downstream.
fn a_stale_response_stands_in_for_a_failed_refresh(server: Server) {
    let first = server.get("/flaky");
    assert_eq!(first.status, 200);
    let cache_control = first.header("cache-control").unwrap();
    assert!(
        cache_control.contains("stale-if-error=30"),
        "{cache_control}"
    );
    std::thread::sleep(Duration::from_millis(1200));
    let stale = server.get("/flaky");
    assert_eq!(server.calls(), 2, "the refresh ran");
    assert_eq!(stale.status, 200, "and failed: the stale response stood in");
    assert_eq!(stale.text(), "flaky");
    assert_eq!(server.cache.stats().served_stale, 1);
}

fn the_cache_layer_caches_a_whole_app(server: Server) {
    let fill = server.get("/site/a");
    assert_eq!(fill.text(), "site a");
    assert_eq!(fill.header("cache-control"), Some("max-age=60"));
    assert_eq!(fill.header("vary"), Some("Accept-Language"));
    let hit = server.get("/site/a");
    assert_eq!(hit.text(), "site a");
    assert!(hit.header("age").is_some());
    assert_eq!(server.calls(), 1);
    server.get_with("/site/a", &[("Accept-Language", "fr")]);
    assert_eq!(server.calls(), 2, "vary");
    send(&server.addr, "POST", "/site/a", &[]);
    assert_eq!(server.calls(), 3, "POST passes through");
    let head = send(&server.addr, "HEAD", "/site/a", &[]);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), Some("6"));
    let etag = hit.header("etag").unwrap();
    let not_modified = server.get_with("/site/a", &[("If-None-Match", etag)]);
    assert_eq!(not_modified.status, 304);
    assert_eq!(server.calls(), 3);
    let key = format!(
        "{}:1:view:layer:GET:http://example.com/site/a|accept-language=~",
        server.cache.prefix()
    );
    assert!(
        cache_runtime::block_on(server.cache.raw_get(&key))
            .unwrap()
            .is_some(),
        "{key}"
    );
}
