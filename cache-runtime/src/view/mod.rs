//! Whole-response caching with Django's `cache_page` semantics and safer defaults:
//! `#[cached_view]` on an axum handler, or [`CacheLayer`] in front of a whole router
//! (Django's site-wide cache middleware). The rules are the same for both.
//!
//! **Key**: `{prefix}:{version}:view:{function}:GET:{scheme}://{host}{path}?{query}`, then
//! `|{header}={value}` for each header named in `vary` (escaped, so two different requests
//! never share a key). HEAD reads GET's entry. A [`CacheLayer`] uses `layer` for the
//! function.
//!
//! **Not cached at all** (neither read nor written): methods other than GET and HEAD, and
//! requests carrying `Authorization` unless `vary` names it. Any other request header a
//! response depends on (`Cookie`, `Accept-Language`, ...) must be named in `vary`, as with
//! Django's `vary_on_headers`; a response whose own `Vary` names a header outside the key is
//! not stored.
//!
//! **Stored** only when all of these hold: the status is in `statuses` (default `[200]`);
//! no `Set-Cookie`; no `Cache-Control` with `private`, `no-store` or `no-cache`; no
//! `Vary: *` and no `Vary` naming a header outside `vary`; a body that fits the cache's
//! maximum value size, known from its size hint (a larger or streaming body passes through
//! untouched, never buffered beyond the limit). A HEAD miss runs the handler and is not
//! stored (a handler may answer HEAD with less than GET).
//!
//! **Headers**: stored responses get a strong `ETag` (SHA-256 of the body) unless the
//! handler set one, and `Vary` naming the keyed headers. Served responses (the fill and
//! every hit) get `Cache-Control: max-age=<ttl>` and `Expires: <fill time + ttl>` when the
//! handler set neither (Django's `patch_response_headers`), hits get `Age: <seconds since
//! the fill>` (so `max-age - Age` is what is left, as every HTTP cache computes it), and a
//! request whose
//! `If-None-Match` matches the ETag (`*`, lists, weak comparison) gets `304 Not Modified`
//! without running the handler. HEAD hits carry the headers without the body.
//!
//! **Invalidation** (see `docs/INVALIDATION.md`): a stored response records the generations
//! of the whole cache, its view, its path, its `tags`, and of every cached query the handler
//! called while rendering, so [`invalidate_view`], [`invalidate_path`],
//! `Cache::invalidate_tag` and invalidating any of those queries all make it stale: the page
//! follows its data.
//!
//! **Failures** are misses, as for queries: a backend error or timeout runs the handler;
//! corrupt or foreign bytes under a key are a miss (counted in
//! [`Stats::decode_errors`](crate::Stats::decode_errors)). Concurrent misses of one key in
//! one process run the handler once (single-flight).
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use cache_runtime::{Cache, view::CacheLayer};
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let cache = Cache::from_url("memory://").await.unwrap();
//! let app = Router::new()
//!     .route("/", get(|| async { "home" }))
//!     .layer(CacheLayer::new(Duration::from_secs(600)).cache(cache.clone()));
//!
//! let get = || http::Request::get("/").header("host", "example.com").body(axum::body::Body::empty()).unwrap();
//! let first = app.clone().oneshot(get()).await.unwrap();
//! assert_eq!(first.headers()["cache-control"], "max-age=600");
//! let second = app.oneshot(get()).await.unwrap();
//! assert!(second.headers().contains_key("age"));
//! assert_eq!((cache.stats().misses, cache.stats().hits), (1, 1));
//! # });
//! ```

#[cfg(feature = "axum")]
mod adapter;
mod body;
mod layer;
mod request;
mod response;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Method, Response, header};
use http_body::Body;

use crate::backend::Lookup;
use crate::cache::{Cache, current};
use crate::flight::{self, Join};
use crate::invalidate;
use crate::stats::Event;

#[cfg(feature = "axum")]
#[doc(hidden)]
pub use adapter::cached_view;
pub use body::ViewBody;
pub use layer::{CacheLayer, CacheService};
#[doc(hidden)]
pub use request::ViewRequest;

use request::{logical_key, varies_on};
use response::Entry;

/// Invalidates every cached response of one view handler (all URLs, all `vary` values,
/// every `version`) in one write. `function` is the handler's path: `module_path!()`, `::`,
/// its name (`"layer"` for a [`CacheLayer`]). `#[cached_view]` also generates
/// `{handler}_invalidate_all()`, which needs no name.
///
/// An error means the invalidation may not have happened: retry it or fail the write.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let cache = cache_runtime::Cache::from_url("memory://").await?;
/// cache_runtime::view::invalidate_view(&cache, "my_app::views::users_page").await?;
/// # Ok::<(), cache_runtime::Error>(())
/// # }).unwrap();
/// ```
pub async fn invalidate_view(cache: &Cache, function: &str) -> crate::Result<()> {
    cache.bump(&invalidate::view(function), None, None).await
}

/// Invalidates the cached responses of one view handler for one path and query
/// (`"/users?page=2"`), whatever the host and `vary` values, in one write.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let cache = cache_runtime::Cache::from_url("memory://").await?;
/// cache_runtime::view::invalidate_path(&cache, "my_app::views::users_page", "/users?page=2").await?;
/// # Ok::<(), cache_runtime::Error>(())
/// # }).unwrap();
/// ```
pub async fn invalidate_path(
    cache: &Cache,
    function: &str,
    path_and_query: &str,
) -> crate::Result<()> {
    cache
        .bump(&invalidate::view_path(function, path_and_query), None, None)
        .await
}

/// [`invalidate_view`] for the handler `spec` describes, on the cache it uses.
#[doc(hidden)]
pub async fn invalidate_spec(spec: &'static ViewSpec) -> crate::Result<()> {
    let cache = crate::query::no_cache_is_an_error(
        resolve(spec.cache.map(|f| f()), spec.function),
        spec.function,
    )?;
    invalidate_view(&cache, spec.function).await
}

/// [`invalidate_path`] for the handler `spec` describes, on the cache it uses.
#[doc(hidden)]
pub async fn invalidate_spec_path(
    spec: &'static ViewSpec,
    path_and_query: &str,
) -> crate::Result<()> {
    let cache = crate::query::no_cache_is_an_error(
        resolve(spec.cache.map(|f| f()), spec.function),
        spec.function,
    )?;
    invalidate_path(&cache, spec.function, path_and_query).await
}

/// The static description of one `#[cached_view]` handler, written by the macro.
///
/// ```
/// use cache_runtime::__private::ViewSpec;
///
/// static SPEC: ViewSpec = ViewSpec {
///     function: "app::views::page",
///     version: 1,
///     ttl: Some(900),
///     vary: &["Accept-Language"],
///     statuses: &[],
///     cache: None,
///     tags: &["users"],
/// };
/// # let _ = &SPEC;
/// ```
#[doc(hidden)]
#[derive(Debug)]
pub struct ViewSpec {
    /// `module::path::function`: names the view in keys, logs and metrics.
    pub function: &'static str,
    /// The `version` argument (default 1).
    pub version: u64,
    /// The `ttl` argument in seconds; `None` uses the cache's default.
    pub ttl: Option<u64>,
    /// The `vary` argument: request headers that are part of the key.
    pub vary: &'static [&'static str],
    /// The `statuses` argument; empty means `[200]`.
    pub statuses: &'static [u16],
    /// The `cache` argument: where to find the cache instead of the installed one.
    pub cache: Option<fn() -> Cache>,
    /// The `tags` argument.
    pub tags: &'static [&'static str],
}

impl ViewSpec {
    fn rules(&self) -> Rules<'_, &'static str> {
        Rules {
            name: self.function,
            version: self.version,
            ttl: self.ttl.map(Duration::from_secs),
            vary: self.vary,
            statuses: self.statuses,
            tags: self.tags,
        }
    }
}

/// The rules of one view or layer (`V`: a header name, `&'static str` or `String`).
pub(crate) struct Rules<'a, V> {
    /// The function path, or `"layer"`.
    pub(crate) name: &'static str,
    pub(crate) version: u64,
    /// `None`: the cache's default TTL.
    pub(crate) ttl: Option<Duration>,
    pub(crate) vary: &'a [V],
    pub(crate) statuses: &'a [u16],
    /// Tags every stored response of these rules carries.
    pub(crate) tags: &'a [V],
}

/// The cache a view uses: its own, else the task's or the installed one (warned once when
/// there is none).
pub(crate) fn resolve(explicit: Option<Cache>, name: &'static str) -> Option<Cache> {
    static WARNED: AtomicBool = AtomicBool::new(false);
    let cache = explicit.or_else(current);
    if cache.is_none() && !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            name,
            "cache: no cache installed; cached views run uncached. Call cache_runtime::install(cache) at start-up"
        );
    }
    cache
}

/// The whole view protocol on `http` types: decide, look up, single-flight, run, store,
/// answer. `run` produces the handler's response; it is only polled on a miss.
pub(crate) async fn serve<V, B, E, F>(
    rules: &Rules<'_, V>,
    cache: Option<Cache>,
    request: &ViewRequest,
    run: F,
) -> Result<Response<ViewBody<B>>, E>
where
    V: AsRef<str>,
    B: Body<Data = Bytes>,
    F: Future<Output = Result<Response<B>, E>>,
{
    let untouched = |response: Response<B>| response.map(ViewBody::untouched);
    let head = match *request.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => return run.await.map(untouched),
    };
    if request.headers().contains_key(header::AUTHORIZATION)
        && !varies_on(rules.vary, "authorization")
    {
        return run.await.map(untouched);
    }
    let ttl_and_key = cache.as_ref().and_then(|cache| {
        let ttl = rules.ttl.unwrap_or(cache.inner.default_ttl);
        let logical = logical_key(rules.version, rules.name, request, rules.vary)?;
        (!ttl.is_zero()).then_some((ttl, logical))
    });
    let (Some(cache), Some((ttl, logical))) = (cache, ttl_and_key) else {
        return run.await.map(untouched);
    };
    let name = rules.name;
    let counters = &cache.inner.counters;
    let full = cache.full_key(&logical);

    if head {
        if let Some((entry, _)) = lookup(&cache, &full, &logical, name).await {
            return Ok(entry.respond(request.headers(), true, SystemTime::now()));
        }
        counters.count(Event::Miss, name);
        return run.await.map(untouched);
    }

    let leader = match cache.inner.flights.join(&full) {
        Join::Leader(leader) => leader,
        Join::Follower(slot) => {
            // The leader's fill may predate an invalidation that returned before this
            // request began: its generations are checked before it is served.
            if let Some(bytes) = flight::wait(slot).await
                && let Some(entry) = Entry::decode(&bytes, cache.decompress_limit())
                && let Some((header, _)) = crate::envelope::read(&bytes)
                && cache.still_fresh(&header.deps, name).await
            {
                counters.count(Event::Hit, name);
                tracing::debug!(key = %logical, name, "cache hit (shared flight)");
                return Ok(entry.respond(request.headers(), false, SystemTime::now()));
            }
            // The leader had nothing to share: its response was not storable, or it failed.
            return run.await.map(untouched);
        }
    };

    if let Some((entry, bytes)) = lookup(&cache, &full, &logical, name).await {
        leader.publish(bytes);
        return Ok(entry.respond(request.headers(), false, SystemTime::now()));
    }
    counters.count(Event::Miss, name);
    tracing::debug!(key = %logical, name, "cache miss");

    // Generations are read before the handler runs (see `crate::invalidate`); the cached
    // queries it calls add theirs, so the page follows its data.
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut wanted = vec![
        (invalidate::ALL.to_owned(), None),
        (invalidate::view(name), None),
        (invalidate::view_path(name, path), None),
    ];
    wanted.extend(
        rules
            .tags
            .iter()
            .map(|t| (invalidate::tag(t.as_ref()), None)),
    );
    let generations = cache.start_fill(wanted, name).await;
    let started = Instant::now();
    let (response, inner) = invalidate::collect(run).await;
    let (mut parts, body) = response?.into_parts();
    let Some(mut deps) = generations else {
        // The backend failed: nothing could be checked later, so nothing is stored.
        return Ok(Response::from_parts(parts, ViewBody::untouched(body)));
    };
    deps.extend(inner);
    if let Err(reason) =
        response::storable(parts.status, &parts.headers, rules.statuses, rules.vary)
    {
        tracing::debug!(key = %logical, name, reason, "cache: response not stored");
        return Ok(Response::from_parts(parts, ViewBody::untouched(body)));
    }
    let body = match body::buffer(body, cache.inner.max_value_size).await {
        Ok(body) => body,
        Err(body) => {
            tracing::debug!(key = %logical, name, "cache: body too large, streaming or with trailers; not stored");
            return Ok(Response::from_parts(parts, body));
        }
    };
    response::prepare(&mut parts.headers, &body, rules.vary);
    match Entry::encode(
        parts.status,
        &parts.headers,
        &body,
        ttl,
        started.elapsed(),
        deps,
        response::Compression::of(&cache),
    ) {
        Ok((bytes, _)) if bytes.len() > cache.inner.max_value_size => {
            tracing::debug!(key = %logical, name, size = bytes.len(), "cache: response over the size limit; not stored");
            drop(leader);
        }
        Ok((bytes, filled_at)) => {
            cache.write(&full, bytes.clone(), ttl, name).await;
            leader.publish(bytes);
            response::add_freshness(&mut parts.headers, filled_at, ttl);
        }
        Err(e) => {
            tracing::warn!(key = %logical, name, error = %e, "cache: response not encodable; not stored");
            drop(leader);
        }
    }
    if parts.status.is_success()
        && response::matches_none_match(request.headers(), parts.headers.get(header::ETAG))
    {
        return Ok(response::not_modified(&parts.headers));
    }
    Ok(Response::from_parts(parts, ViewBody::full(body)))
}

/// Reads and decodes the entry under `full`, counting hits and unreadable values.
async fn lookup(
    cache: &Cache,
    full: &str,
    logical: &str,
    name: &'static str,
) -> Option<(Entry, Bytes)> {
    let Lookup::Found(bytes) = cache.read(full, name, None).await else {
        return None;
    };
    let counters = &cache.inner.counters;
    match Entry::decode(&bytes, cache.decompress_limit()) {
        Some(entry) if entry.fresh(SystemTime::now()) => {
            counters.count(Event::Hit, name);
            counters.read_bytes(bytes.len());
            tracing::debug!(key = %logical, name, "cache hit");
            Some((entry, bytes))
        }
        Some(_) => None,
        None => {
            counters.count(Event::DecodeError, name);
            tracing::warn!(key = %logical, name, "cache: stored response is not readable; recomputing");
            None
        }
    }
}
