//! A live dashboard of one cache (feature `dashboard`): an axum [`Router`] to mount behind
//! the app's own authentication.
//!
//! One page: hit ratio per query and view over the last minutes (charts drawn here as
//! SVG), p50/p99 latency of hits and fills, bytes stored per name, the hottest and the most
//! missed names, recent invalidations with their call sites, circuit breaker openings and
//! stampedes (callers that waited on another caller's fill), and buttons that invalidate a
//! query, a view, a tag or a path. A few lines of the page's own script reload the live
//! part every five seconds; nothing is loaded from elsewhere.
//!
//! The history starts when the router is built (see `cache_runtime::events` in the
//! source): build it at start-up. Invalidations are `POST`s carrying a token that only the
//! page holds (and browsers' cross-site `POST`s are refused), so another site cannot make
//! a visitor's browser invalidate. The dashboard has no authentication of its own: mount
//! it behind yours.
//!
//! ```
//! use axum::{Router, routing::get};
//! use cache_runtime::{Cache, dashboard};
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let cache = Cache::from_url("memory://").await.unwrap();
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "home" }))
//!     .nest("/cache", dashboard::router(cache.clone())); // behind your auth layer
//!
//! let page = app.oneshot(http::Request::get("/cache").body(axum::body::Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(page.status(), 200);
//! let html = axum::body::to_bytes(page.into_body(), usize::MAX).await.unwrap();
//! assert!(std::str::from_utf8(&html).unwrap().contains("cache dashboard"));
//! # });
//! ```

mod page;
mod svg;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::{Form, OriginalUri, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::admin::{self, Summary, Target, Usage};
use crate::cache::Cache;
use crate::events::{Count, SLOT, SLOTS, Site};
use page::{Panel, Row};

/// How often stored sizes are counted again (a `SCAN` of the prefix).
const SCAN_EVERY: Duration = Duration::from_secs(15);
/// Keys counted per scan at most.
const SCAN_LIMIT: u64 = 100_000;
/// The window shown unless `?minutes=` says otherwise.
const DEFAULT_MINUTES: usize = 5;

struct Dashboard {
    cache: Cache,
    /// Proves a `POST` came from the page: random, made when the router is built.
    token: String,
    /// The last count of stored sizes.
    scan: tokio::sync::Mutex<Option<Scan>>,
}

/// A count of stored sizes: when, and what (or why it failed).
struct Scan {
    at: Instant,
    wall: SystemTime,
    summary: Result<Summary, String>,
}

/// The dashboard of `cache`: `GET /` (the page), `GET /panel` (its live part), `POST
/// /invalidate`. Mount it with `Router::nest("/cache", ...)` behind the app's
/// authentication; links follow wherever it is mounted. Recording the history starts now.
pub fn router<S: Clone + Send + Sync + 'static>(cache: Cache) -> Router<S> {
    cache.recorder();
    let token = format!("{:032x}", rand::random::<u128>());
    let state = Arc::new(Dashboard {
        cache,
        token,
        scan: tokio::sync::Mutex::new(None),
    });
    Router::new()
        .route("/", get(index))
        .route("/panel", get(live_panel))
        .route("/invalidate", post(invalidate))
        .with_state(state)
}

#[derive(Deserialize)]
struct Window {
    minutes: Option<usize>,
}

/// Where the dashboard is mounted: the request's path less what the router saw.
fn base(original: &Uri, seen: &Uri, action: &str) -> String {
    let full = original.path();
    let base = full
        .strip_suffix(seen.path())
        .or_else(|| full.strip_suffix(action))
        .unwrap_or(full);
    base.trim_end_matches('/').to_owned()
}

async fn index(
    State(d): State<Arc<Dashboard>>,
    OriginalUri(original): OriginalUri,
    seen: Uri,
    Query(window): Query<Window>,
) -> Response {
    let panel = d.panel(base(&original, &seen, "/"), window).await;
    let body = page::page(&panel, &page::panel(&panel));
    no_store(Html(body).into_response())
}

async fn live_panel(
    State(d): State<Arc<Dashboard>>,
    OriginalUri(original): OriginalUri,
    seen: Uri,
    Query(window): Query<Window>,
) -> Response {
    let panel = d.panel(base(&original, &seen, "/panel"), window).await;
    no_store(Html(page::panel(&panel)).into_response())
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Deserialize)]
struct InvalidateForm {
    csrf: String,
    kind: String,
    name: String,
    #[serde(default)]
    path: String,
}

async fn invalidate(
    State(d): State<Arc<Dashboard>>,
    OriginalUri(original): OriginalUri,
    seen: Uri,
    headers: HeaderMap,
    Form(form): Form<InvalidateForm>,
) -> Response {
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site");
    if cross_site || !same(form.csrf.as_bytes(), d.token.as_bytes()) {
        return (
            StatusCode::FORBIDDEN,
            "invalidation refused: it did not come from the dashboard's page (reload the page and try again)",
        )
            .into_response();
    }
    let name = form.name.trim().to_owned();
    if name.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            "nothing to invalidate: the name is empty",
        )
            .into_response();
    }
    let targets = match form.kind.as_str() {
        "tag" => vec![Target::Tag(name)],
        "query" => vec![Target::Query(name)],
        "view" => vec![Target::View(name)],
        "path" => vec![Target::Path {
            view: name,
            path: form.path.trim().to_owned(),
        }],
        // A name whose kind this process has not seen: it is one of the two.
        "name" => vec![Target::Query(name.clone()), Target::View(name)],
        other => {
            return (
                StatusCode::BAD_REQUEST,
                format!("unknown kind `{other}`: tag, query, view or path"),
            )
                .into_response();
        }
    };
    for target in &targets {
        let site = Site::Named("the dashboard's invalidate button");
        if let Err(e) = admin::invalidate_from(&d.cache, target, site).await {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("invalidating {target} failed: {e}"),
            )
                .into_response();
        }
    }
    let mut to = base(&original, &seen, "/invalidate");
    if to.is_empty() {
        to.push('/');
    }
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

/// Compares in time that depends on the length only.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Dashboard {
    /// Stored sizes per name, counted again when the last count is older than
    /// [`SCAN_EVERY`].
    async fn stored(&self) -> (SystemTime, Result<Summary, String>) {
        let mut scan = self.scan.lock().await;
        if let Some(last) = &*scan
            && last.at.elapsed() < SCAN_EVERY
        {
            return (last.wall, last.summary.clone());
        }
        let summary = admin::summary_of_first(&self.cache, SCAN_LIMIT, |_| {})
            .await
            .map_err(|e| e.to_string());
        let wall = SystemTime::now();
        *scan = Some(Scan {
            at: Instant::now(),
            wall,
            summary: summary.clone(),
        });
        (wall, summary)
    }

    async fn panel(&self, base: String, window: Window) -> Panel {
        let minutes = window.minutes.unwrap_or(DEFAULT_MINUTES).clamp(1, 10);
        let slots = (minutes * 60 / SLOT.as_secs() as usize).min(SLOTS);
        let recorder = self.cache.recorder();
        let snapshot = recorder.snapshot(slots);
        let (scanned_at, stored) = self.stored().await;
        let empty = BTreeMap::new();
        let names = stored.as_ref().map_or(&empty, |s| &s.names);
        let usage = |key: &str| names.get(key).copied();

        let mut hits = vec![0; snapshot.slot_starts.len()];
        let mut misses = vec![0; snapshot.slot_starts.len()];
        let mut stampedes = Vec::new();
        let mut rows = Vec::with_capacity(snapshot.names.len());
        for n in &snapshot.names {
            for (i, (h, m)) in n.series(Count::Hit).zip(n.series(Count::Miss)).enumerate() {
                hits[i] += h;
                misses[i] += m;
            }
            for (i, waits) in n.series(Count::Wait).enumerate() {
                if waits > 0 {
                    stampedes.push((snapshot.slot_starts[i], n.name, waits));
                }
            }
            let shape = recorder.shape(n.name);
            let (kind, stored): (&'static str, Option<Usage>) = match &shape {
                Some(s) if s.view => ("view", usage(&format!("view:{}", s.key_name))),
                Some(s) => ("query", usage(&s.key_name)),
                None if n.name == "layer" => ("view", usage("view:layer")),
                None => (
                    "?",
                    usage(n.name).or_else(|| usage(&format!("view:{}", n.name))),
                ),
            };
            rows.push(Row {
                name: n.name,
                kind,
                hits: n.total(Count::Hit),
                misses: n.total(Count::Miss),
                fills: n.total(Count::Fill),
                stale: n.total(Count::Stale),
                errors: n.total(Count::Error),
                waits: n.total(Count::Wait),
                ratio: n.hit_ratio(),
                ratios: n.hit_ratios(),
                hit_p50: n.hit_quantile(0.5),
                hit_p99: n.hit_quantile(0.99),
                fill_p50: n.fill_quantile(0.5),
                fill_p99: n.fill_quantile(0.99),
                stored,
            });
        }
        stampedes.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        Panel {
            base,
            token: self.token.clone(),
            backend: self.cache.backend_name(),
            prefix: self.cache.prefix().to_owned(),
            minutes,
            stats: self.cache.stats(),
            labels: snapshot
                .slot_starts
                .iter()
                .map(|t| page::clock(*t))
                .collect(),
            hits,
            misses,
            rows,
            stampedes,
            invalidations: snapshot.invalidations,
            incidents: snapshot.incidents,
            scanned: stored.map(|s| (scanned_at, s.complete)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mount_point_is_what_the_router_did_not_see() {
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        assert_eq!(base(&uri("/cache"), &uri("/"), "/"), "/cache");
        assert_eq!(base(&uri("/cache/"), &uri("/"), "/"), "/cache");
        assert_eq!(
            base(
                &uri("/ops/cache/panel?minutes=1"),
                &uri("/panel?minutes=1"),
                "/panel"
            ),
            "/ops/cache"
        );
        assert_eq!(base(&uri("/"), &uri("/"), "/"), "");
        assert_eq!(
            base(&uri("/invalidate"), &uri("/invalidate"), "/invalidate"),
            ""
        );
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}
