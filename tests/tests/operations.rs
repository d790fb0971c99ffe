//! Operating a cache: `cache_runtime::admin` and the dashboard's live panel on both backends
//! (the embedded store and a real `redis-server`), the metrics a call records (a real
//! Prometheus recorder), and the tracing spans and events a request emits.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use cache_runtime::admin::{self, Holds, Target};
use cache_runtime::{Cache, cached_query, cached_view, dashboard};
use cache_tests::{Backend, RedisServer, test_cache};
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

struct Env {
    cache: Cache,
}

impl Env {
    async fn memory(test: &str) -> Env {
        Env {
            cache: test_cache(Backend::Memory, test, |b| b).await.0,
        }
    }

    async fn redis(test: &str) -> Env {
        Env {
            cache: test_cache(Backend::Redis, test, |b| b).await.0,
        }
    }
    async fn cluster(test: &str) -> Env {
        Env {
            cache: test_cache(Backend::Cluster, test, |b| b).await.0,
        }
    }

    async fn run<F: Future>(&self, f: F) -> F::Output {
        cache_runtime::scope(self.cache.clone(), f).await
    }

    /// `GET uri` (or a form `POST` when `form` is given) through `app`, in this env's scope.
    async fn send(
        &self,
        app: &Router,
        uri: &str,
        form: Option<String>,
    ) -> (StatusCode, String, Option<String>) {
        let request = match form {
            None => Request::get(uri)
                .header("host", "example.com")
                .body(Body::empty()),
            Some(form) => Request::post(uri)
                .header("host", "example.com")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(form)),
        }
        .unwrap();
        let response = self.run(app.clone().oneshot(request)).await.unwrap();
        let status = response.status();
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap(), location)
    }
}

/// How often each body ran, per cache (by prefix): the cases of both backends run at once.
static RAN: Mutex<Vec<(String, &'static str)>> = Mutex::new(Vec::new());

/// Counts a run of `what` for the cache the body runs under.
fn ran(what: &'static str) {
    let prefix = cache_runtime::current()
        .map(|c| c.prefix().to_owned())
        .unwrap_or_default();
    RAN.lock().unwrap().push((prefix, what));
}

fn calls(cache: &Cache, what: &str) -> usize {
    let ran = RAN.lock().unwrap();
    ran.iter()
        .filter(|(p, w)| p == cache.prefix() && *w == what)
        .count()
}

cache_tests::on_both_backends!(
    admin_lists_reads_and_invalidates_by_name,
    the_panel_counts_traffic_and_its_button_invalidates,
    the_panel_lists_stampedes,
);
cache_tests::on_cluster!(
    admin_lists_reads_and_invalidates_by_name,
    the_panel_counts_traffic_and_its_button_invalidates,
    the_panel_lists_stampedes,
);

#[derive(serde::Serialize, serde::Deserialize)]
struct Price {
    sku: String,
    cents: u64,
}

#[cached_query(key = "price:{sku}", ttl = 60, tags = ["prices"])]
async fn price(sku: &str) -> Price {
    ran("price");
    Price {
        sku: sku.to_owned(),
        cents: 100,
    }
}

#[cached_query(ttl = 60)]
async fn stock(sku: String) -> u32 {
    ran("stock");
    sku.len() as u32
}

#[cached_view(ttl = 60)]
async fn catalog() -> String {
    ran("catalog");
    "<h1>catalog</h1>".into()
}

const STOCK: &str = concat!(module_path!(), "::stock");
const CATALOG: &str = concat!(module_path!(), "::catalog");

async fn admin_lists_reads_and_invalidates_by_name(env: Env) {
    let cache = &env.cache;
    let app = Router::new().route("/catalog", get(catalog));
    env.run(async {
        price("a").await;
        price("b:c").await;
        stock("x".into()).await;
    })
    .await;
    env.send(&app, "/catalog", None).await;

    // keys: by the template's head, by the function path, by the view's path.
    let prices = admin::keys(cache, "price", |_| {}).await.unwrap();
    let prefix = cache.prefix();
    // On a cluster a key holds its bucket's hash tag after the prefix: `{prefix}:{T}:...`.
    let names: Vec<String> = prices
        .iter()
        .map(|k| {
            let rest = &k.key[prefix.len() + 1..];
            match rest.strip_prefix('{').and_then(|r| r.split_once("}:")) {
                Some((_, untagged)) => format!("{prefix}:{untagged}"),
                None => k.key.clone(),
            }
        })
        .collect();
    assert_eq!(
        names,
        [
            format!("{prefix}:1:price:a"),
            format!("{prefix}:1:price:b%3Ac")
        ]
    );
    assert!(
        prices
            .iter()
            .all(|k| k.holds == Holds::Value("price".into()) && k.size > 20)
    );
    let ttl = prices[0].ttl.expect("a TTL");
    assert!(
        ttl > Duration::from_secs(50) && ttl <= Duration::from_secs(60),
        "{ttl:?}"
    );
    assert_eq!(admin::keys(cache, STOCK, |_| {}).await.unwrap().len(), 1);
    let pages = admin::keys(cache, CATALOG, |_| {}).await.unwrap();
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].holds, Holds::View(CATALOG.into()));

    // summary: per name, generations apart.
    let summary = admin::summary(cache, |_| {}).await.unwrap();
    assert_eq!(summary.names["price"].entries, 2);
    assert_eq!(summary.names[STOCK].entries, 1);
    assert_eq!(summary.names[&format!("view:{CATALOG}")].entries, 1);
    assert!(summary.generations.entries >= 6, "{summary:?}");
    assert!(summary.complete);

    // get: decoded, with its generations; a page's response.
    let value = admin::get(cache, &prices[1].key).await.unwrap().unwrap();
    assert_eq!(value["value"], serde_json::json!(["b:c", 100]), "{value}");
    assert_eq!(value["current"], true);
    let page = admin::get(cache, &pages[0].key).await.unwrap().unwrap();
    assert_eq!(page["kind"], "response");
    assert_eq!(page["response"]["status"], 200);
    assert_eq!(page["response"]["body"], "<h1>catalog</h1>");
    assert!(
        admin::get(cache, &format!("{prefix}:1:price:zzz"))
            .await
            .unwrap()
            .is_none()
    );
    let foreign = admin::get(cache, "not-ours:1:x").await.unwrap_err();
    assert!(
        foreign.to_string().contains("not a key of this cache"),
        "{foreign}"
    );

    // invalidate by name: each makes the next call run its body.
    let counts = || {
        (
            calls(cache, "price"),
            calls(cache, "stock"),
            calls(cache, "catalog"),
        )
    };
    assert_eq!(counts(), (2, 1, 1));
    admin::invalidate(cache, &Target::Tag("prices".into()))
        .await
        .unwrap();
    admin::invalidate(cache, &Target::Query(STOCK.into()))
        .await
        .unwrap();
    admin::invalidate(cache, &Target::View(CATALOG.into()))
        .await
        .unwrap();
    let stale = admin::get(cache, &prices[1].key).await.unwrap().unwrap();
    assert_eq!(stale["current"], false);
    env.run(async {
        price("b:c").await;
        stock("x".into()).await;
    })
    .await;
    env.send(&app, "/catalog", None).await;
    assert_eq!(
        counts(),
        (3, 2, 2),
        "tag, query and view invalidated: three misses"
    );
    admin::invalidate(
        cache,
        &Target::Path {
            view: CATALOG.into(),
            path: "/catalog".into(),
        },
    )
    .await
    .unwrap();
    env.send(&app, "/catalog", None).await;
    env.send(&app, "/catalog", None).await;
    assert_eq!(
        calls(cache, "catalog"),
        3,
        "path invalidated: one miss, then a hit"
    );

    assert!(admin::clear(cache).await.unwrap() > 0);
    assert!(
        admin::keys(cache, "price", |_| {})
            .await
            .unwrap()
            .is_empty()
    );
}

#[cached_query(ttl = 60)]
async fn shelf(n: u32) -> Vec<u32> {
    ran("shelf");
    (0..n).collect()
}

const SHELF: &str = concat!(module_path!(), "::shelf");

/// The token of the dashboard's page.
fn token(html: &str) -> String {
    html.split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a token")
        .to_owned()
}

/// The text of the `cell` of `name`'s row.
fn cell(html: &str, name: &str, cell: &str) -> String {
    let row = html
        .split(&format!(r#"<tr data-name="{name}">"#))
        .nth(1)
        .unwrap_or_else(|| panic!("no row for {name} in {html}"));
    let row = &row[..row.find("</tr>").unwrap()];
    let at = row.find(&format!("{cell}>")).unwrap() + cell.len() + 1;
    row[at..row[at..].find('<').unwrap() + at].to_owned()
}

async fn the_panel_counts_traffic_and_its_button_invalidates(env: Env) {
    let app: Router = Router::new().nest("/ops/cache", dashboard::router(env.cache.clone()));
    env.run(async {
        for _ in 0..4 {
            shelf(100).await;
        }
    })
    .await;
    let (status, html, _) = env.send(&app, "/ops/cache", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cell(&html, SHELF, "data-hits"), "3");
    assert_eq!(cell(&html, SHELF, "data-misses"), "1");
    assert_eq!(cell(&html, SHELF, "data-ratio"), "75.0%");
    let stored = cell(&html, SHELF, "data-stored");
    assert!(
        stored.ends_with(" B in 1"),
        "one entry of a few hundred bytes: {stored}"
    );
    assert!(
        html.contains(r#"data-src="/ops/cache/panel?minutes=5""#),
        "links follow the mount point"
    );
    let (_, panel, _) = env.send(&app, "/ops/cache/panel?minutes=1", None).await;
    assert!(panel.starts_with(r#"<section class="tiles">"#) && panel.contains("<svg"));

    // The button's POST: refused without the token, done with it, listed with its site.
    let form = |csrf: &str| format!("csrf={csrf}&kind=query&name={}", SHELF.replace(':', "%3A"));
    let (status, _, _) = env
        .send(&app, "/ops/cache/invalidate", Some(form("forged")))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    env.run(shelf(100)).await;
    assert_eq!(
        calls(&env.cache, "shelf"),
        1,
        "a forged POST invalidated nothing"
    );
    let (status, _, location) = env
        .send(&app, "/ops/cache/invalidate", Some(form(&token(&html))))
        .await;
    assert_eq!(
        (status, location.as_deref()),
        (StatusCode::SEE_OTHER, Some("/ops/cache"))
    );
    env.run(shelf(100)).await;
    assert_eq!(
        calls(&env.cache, "shelf"),
        2,
        "the button's invalidation: a miss"
    );
    let (_, html, _) = env.send(&app, "/ops/cache", None).await;
    let listed = html.split(r#"id="invalidations""#).nth(1).unwrap();
    assert!(
        listed.contains("dashboard") && listed.contains(SHELF),
        "{listed}"
    );
}

#[cached_query(ttl = 60)]
async fn slow(n: u32) -> u32 {
    ran("slow");
    tokio::time::sleep(Duration::from_millis(500)).await;
    n
}

async fn the_panel_lists_stampedes(env: Env) {
    let app: Router = Router::new().nest("/cache", dashboard::router(env.cache.clone()));
    let tasks: Vec<_> = (0..8)
        .map(|_| tokio::spawn(cache_runtime::scope(env.cache.clone(), slow(1))))
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(calls(&env.cache, "slow"), 1);
    let (_, html, _) = env.send(&app, "/cache", None).await;
    let name = concat!(module_path!(), "::slow");
    let listed = html.split(r#"id="incidents""#).nth(1).unwrap();
    // Callers that started after the fill ended were hits: on a loaded machine not all 7
    // others may have waited, but some did.
    let waited: u32 = listed
        .split(&format!(
            " callers of <span class=\"name\">{name}</span> waited"
        ))
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no stampede listed: {listed}"));
    assert!((1..=7).contains(&waited), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panel_lists_a_breaker_opening() {
    let server = RedisServer::start();
    let cache = Cache::builder(&server.url())
        .prefix(cache_tests::unique_prefix("breaker"))
        .timeout(Duration::from_millis(300))
        .circuit_breaker(2, Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    let app: Router = Router::new().nest("/cache", dashboard::router(cache.clone()));
    server.kill();
    cache_runtime::scope(cache.clone(), async {
        for _ in 0..3 {
            shelf(7).await;
        }
    })
    .await;
    let env = Env { cache };
    let (_, html, _) = env.send(&app, "/cache", None).await;
    let listed = html.split(r#"id="incidents""#).nth(1).unwrap();
    assert!(
        listed.contains("circuit breaker opened for 30s"),
        "{listed}"
    );
    assert!(cell(&html, SHELF, "data-misses").parse::<u32>().unwrap() >= 3);
}

/// The process's Prometheus recorder (one per test binary).
fn prometheus() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets(&[0.001, 0.01, 0.1, 1.0])
            .unwrap()
            .install_recorder()
            .expect("the only recorder of this test binary")
    })
}

/// The value of the sample `line` starts (`metric{labels} `), 0 when absent.
fn sample(text: &str, line: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[cached_query(ttl = 60, tags = ["metered"])]
async fn metered(id: u32) -> String {
    ran("metered");
    "x".repeat(id as usize)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_record_latencies_and_bytes_by_name_never_by_key() {
    let handle = prometheus();
    let name = concat!(module_path!(), "::metered");
    for backend in [Backend::Memory, Backend::Redis] {
        let before = handle.render();
        let (cache, _) = test_cache(backend, "metered", |b| b).await;
        cache_runtime::scope(cache.clone(), async {
            metered(1000).await; // miss, fill
            metered(1000).await; // hit
            metered(1000).await; // hit
        })
        .await;
        // `all`: the one kind no other test of this binary invalidates.
        cache.invalidate_all().await.unwrap();
        let after = handle.render();
        let grew = |line: &str| sample(&after, line) - sample(&before, line);
        let by_name = |metric: &str| format!("{metric}{{name=\"{name}\"}} ");
        assert_eq!(
            grew(&by_name("cache_hit_duration_seconds_count")),
            2.0,
            "{backend:?}"
        );
        assert_eq!(
            grew(&by_name("cache_fill_duration_seconds_count")),
            1.0,
            "{backend:?}"
        );
        assert_eq!(
            grew(&by_name("cache_value_bytes_count")),
            1.0,
            "{backend:?}"
        );
        assert!(
            grew(&by_name("cache_written_bytes_total")) > 1000.0,
            "{backend:?}"
        );
        assert!(
            grew(&by_name("cache_read_bytes_total")) > 2000.0,
            "{backend:?}"
        );
        assert!(grew(&by_name("cache_hit_duration_seconds_sum")) > 0.0);
        assert_eq!(
            grew("cache_invalidation_duration_seconds_count{kind=\"all\"} "),
            1.0,
            "{backend:?}"
        );
        assert_eq!(
            grew("cache_invalidations_total{kind=\"all\",result=\"ok\"} "),
            1.0
        );
        // With an L1 (CACHE_TEST_L1), the second hit is served from it; on memory://, from
        // the copy the first hit checked (nothing was written in between).
        let reads = if backend == Backend::Memory
            || (backend == Backend::Redis && cache_tests::with_l1())
        {
            2.0
        } else {
            3.0
        };
        assert!(
            grew(&format!(
                "cache_backend_duration_seconds_count{{op=\"read\",name=\"{name}\"}} "
            )) >= reads,
            "{backend:?}"
        );
        assert!(
            grew(&format!(
                "cache_backend_duration_seconds_count{{op=\"write\",name=\"{name}\"}} "
            )) >= 1.0
        );
        // Labels are names, operations and kinds: no key, no argument, no tag value.
        for line in after.lines().filter(|l| l.starts_with("cache_")) {
            assert!(
                !line.contains(cache.prefix()) && !line.contains(":1:"),
                "{line}"
            );
        }
    }
}

/// Span names and event messages, in order, as a subscriber sees them.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl tracing::Subscriber for Seen {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut seen = self.0.lock().unwrap();
        seen.push(format!("span {}", span.metadata().name()));
        tracing::span::Id::from_u64(seen.len() as u64)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        self.0.lock().unwrap().push(format!("event {}", message.0));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[cached_query(ttl = 60)]
async fn traced() -> u32 {
    ran("traced");
    1
}

/// A global subscriber that wants everything and keeps nothing. tracing caches each
/// callsite's interest process-wide, computed by the first thread to reach it: a sibling test
/// with no subscriber would pin `cache.fill` to "never" for [`Seen`] too.
struct WantsAll;

impl tracing::Subscriber for WantsAll {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// A current-thread runtime: the subscriber set for this thread sees every poll.
#[tokio::test]
async fn a_request_emits_miss_fill_hit_and_invalidate() {
    // Before this thread's subscriber: from here on, no thread registers a callsite as unwanted.
    let _ = tracing::subscriber::set_global_default(WantsAll);
    let seen = Seen::default();
    let _guard = tracing::subscriber::set_default(seen.clone());
    let (cache, _) = test_cache(Backend::Memory, "traced", |b| b).await;
    // Other tests of this binary, on threads without this subscriber, may have registered
    // the cache's callsites while `set_default` was registering it (tracing then caches
    // "never" for them): ask every callsite again, now that this subscriber is known.
    tracing::callsite::rebuild_interest_cache();
    cache_runtime::scope(cache.clone(), async {
        traced().await;
        traced().await;
    })
    .await;
    cache.invalidate_tag("t").await.unwrap();
    let seen = seen.0.lock().unwrap().clone();
    let at = |what: &str| {
        seen.iter()
            .position(|s| s == what)
            .unwrap_or_else(|| panic!("no {what:?} in {seen:#?}"))
    };
    assert!(at("span cache.fill") < at("event cache miss"));
    assert!(at("event cache miss") < at("event cache hit"));
    assert_eq!(calls(&cache, "traced"), 1);
    assert!(at("event cache hit") < at("span cache.invalidate"));
    assert!(at("span cache.invalidate") < at("event cache invalidated"));
}
