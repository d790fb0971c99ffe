//! Whole-response caching with Django's `cache_page` semantics and safer defaults:
//! `#[cached_view]` on an axum handler, or [`CacheLayer`] in front of a whole router
//! (Django's site-wide cache middleware). The rules are the same for both.
//!
//! **Key**: `{prefix}:{version}:view:{function}:GET:{scheme}://{host}{path}?{query}`, then
//! `|{header}={value}` for each header named in `vary` (escaped, so two different requests
//! never share a key). HEAD reads GET's entry. A [`CacheLayer`] uses `layer` for the
//! function.
//!
//! **Not cached at all** (neither read nor written): methods other than GET and HEAD;
//! requests carrying credentials, `Authorization` or `Cookie`, unless `vary` names that
//! header (session layers such as tower-sessions and axum-extra's cookie jars add no
//! `Vary: Cookie`, so a page read from a session would otherwise be one user's page served
//! to everyone); and, unless the cache trusts them
//! ([`CacheBuilder::trust_forwarded`](crate::CacheBuilder::trust_forwarded)), requests
//! carrying the forwarded headers a proxy uses to tell the app its URL (`Forwarded`
//! `host`/`proto`, `X-Forwarded-Host`, `-Proto`, `-Port`, `-Prefix`): any client can forge
//! them. Trusted, they are part of the key. Any other request header a response depends on
//! (`Accept-Language`, ...) must be named in `vary`, as with Django's `vary_on_headers`; a
//! response whose own `Vary` names a header outside the key is not stored.
//!
//! **Stored** only when all of these hold: the status is in `statuses` (default `[200]`);
//! no `Set-Cookie`; no `Cache-Control` (nor `Surrogate-Control`, `CDN-Cache-Control`) with
//! `private`, `no-store` or `no-cache`, and not stale on arrival (`max-age=0`,
//! `s-maxage=0`, an `Expires` in the past); no `Vary: *` and no `Vary` naming a header
//! outside `vary`; a body that fits the cache's
//! maximum value size, known from its size hint (a larger or streaming body passes through
//! untouched, never buffered beyond the limit). A HEAD miss runs the handler and is not
//! stored (a handler may answer HEAD with less than GET). A stored response lives the
//! shorter of the `ttl` and the lifetime its own headers give a shared cache
//! (`Surrogate-Control`, then `CDN-Cache-Control`, then `s-maxage`, `max-age`, then
//! `Expires`; see `docs/SECURITY.md`).
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

#[cfg(feature = "actix")]
pub mod actix;
#[cfg(feature = "axum")]
mod adapter;
mod body;
mod forwarded;
mod freshness;
mod layer;
mod request;
mod response;
mod url;

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Response, header};
use http_body::Body;

use crate::cache::Cache;
use crate::cache::default::current;
use crate::deps;
use crate::envelope::{Header, Kind, Opened, Writer};
use crate::fill::{self, Filler, Own, Plan};
use crate::freshness::Freshness;
use crate::invalidate::{counter_ttl, require};
use crate::key::{self, generation};
use crate::stats::Event;

#[cfg(feature = "axum")]
#[doc(hidden)]
pub use adapter::cached_view;
pub use body::ViewBody;
pub use layer::{CacheLayer, CacheService};
#[doc(hidden)]
pub use request::ViewRequest;

use request::{request_key, varies_on};
use response::Entry;
pub(crate) use response::Entry as StoredResponse;

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
    cache.bump(&generation::view(function), None).await
}

/// Invalidates the cached responses of one view handler for one path, with every query
/// string and spelling of it (`"/users"`, or `"/users?page=2"`: the query is ignored,
/// since a path's query strings are unbounded and all of them may show what changed),
/// whatever the host and `vary` values, in one write. See the `url` rules in
/// `docs/SECURITY.md`.
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
        .bump(&path_generation(function, path_and_query), None)
        .await
}

/// The generation of one path of a view: the request's path without its query, its escapes
/// normalised, so it covers every query string and spelling of the path.
pub(crate) fn path_generation(function: &str, path_and_query: &str) -> String {
    generation::path(function, &url::counter_path(path_and_query))
}

/// [`invalidate_view`] for the handler `spec` describes, on the cache it uses.
#[doc(hidden)]
pub async fn invalidate_spec(spec: &'static ViewSpec) -> crate::Result<()> {
    let cache = require(
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
    let cache = require(
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
///     lease: None,
///     early: None,
///     stale: None,
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
    /// The `lease` argument; `None` follows the cache.
    pub lease: Option<bool>,
    /// The `early` argument: XFetch's β.
    pub early: Option<f64>,
    /// The `stale` argument in seconds.
    pub stale: Option<u64>,
}

impl ViewSpec {
    #[cfg(feature = "axum")]
    fn rules(&self) -> Rules<'_, &'static str> {
        Rules {
            name: self.function,
            version: self.version,
            ttl: self.ttl.map(Duration::from_secs),
            vary: self.vary,
            statuses: self.statuses,
            tags: self.tags,
            lease: self.lease,
            early: self.early,
            stale: Duration::from_secs(self.stale.unwrap_or(0)),
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
    /// Whether fills take leases (`None`: as the cache says).
    pub(crate) lease: Option<bool>,
    /// XFetch's β.
    pub(crate) early: Option<f64>,
    /// How long an expired response is still served while one request refreshes it, or
    /// when the refresh fails (`Cache-Control: stale-while-revalidate, stale-if-error`);
    /// never for a response that says `must-revalidate`, `proxy-revalidate` or `s-maxage`.
    pub(crate) stale: Duration,
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

/// Whether `value` opens as a stored response, which is then served every way a hit can
/// be (full, HEAD, `304`), with the times its header claims (the fuzz target's view of it).
#[cfg(feature = "fuzz")]
pub(crate) fn open_untrusted(value: &Opened) -> bool {
    type Served = Response<ViewBody<http_body_util::Empty<Bytes>>>;
    let Some(entry) = Entry::open(value).map(Entry::complete) else {
        return false;
    };
    let mut conditional = http::HeaderMap::new();
    conditional.insert(header::IF_NONE_MATCH, http::HeaderValue::from_static("*"));
    let now = SystemTime::now();
    let _: Served = entry.clone().respond(&http::HeaderMap::new(), false, now);
    let _: Served = entry.clone().respond(&conditional, false, now);
    let _: Served = entry.respond(&http::HeaderMap::new(), true, now);
    true
}

/// A view's request through the cache: decides whether the cache applies at all, then runs
/// the fill protocol with [`Responses`]. `run` produces the handler's response; it is only
/// polled on a miss.
///
/// Callers box `run`: an `async fn` holds a by-value future argument twice (see
/// [`fill::run`]), which the box makes cheap.
pub(crate) async fn serve<V, B, E, F>(
    rules: &Rules<'_, V>,
    cache: Option<Cache>,
    request: &ViewRequest,
    run: Pin<Box<F>>,
) -> Result<Response<ViewBody<B>>, E>
where
    V: AsRef<str> + Sync,
    B: Body<Data = Bytes>,
    F: Future<Output = Result<Response<B>, E>>,
{
    let head = match *request.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => return bypass(run).await,
    };
    // Credentials: a response to them is one user's unless the key has them.
    for credentials in [header::AUTHORIZATION, header::COOKIE] {
        if request.headers().contains_key(&credentials)
            && !varies_on(rules.vary, credentials.as_str())
        {
            return bypass(run).await;
        }
    }
    let Some(cache) = cache else {
        return bypass(run).await;
    };
    let trust_forwarded = cache.inner.trust_forwarded;
    if !trust_forwarded && forwarded::shapes_url(request.headers()) {
        warn_untrusted_forwarded(rules.name);
        return bypass(run).await;
    }
    let ttl = rules.ttl.unwrap_or(cache.inner.default_ttl);
    let Some(request_key) =
        request_key(request, rules.vary, trust_forwarded).filter(|_| !ttl.is_zero())
    else {
        return bypass(run).await;
    };
    let logical = key::view(rules.version, rules.name, &request_key);
    let freshness = Freshness {
        stale: rules.stale,
        early: rules.early,
        lease: rules.lease.unwrap_or(cache.inner.leases),
    };
    let own = || {
        let mut own = Vec::with_capacity(3 + rules.tags.len());
        own.extend([
            (generation::ALL.to_owned(), None),
            (generation::view(rules.name), None),
            (
                path_generation(rules.name, request.uri().path()),
                counter_ttl(freshness.keep(ttl)),
            ),
        ]);
        own.extend(
            rules
                .tags
                .iter()
                .map(|t| (generation::tag(t.as_ref()), None)),
        );
        cache.inner.layout.own(&logical, own)
    };
    let plan = Plan {
        cache: cache.clone(),
        freshness,
        name: rules.name,
        key: cache.inner.layout.entry(&logical),
        ttl,
        own: Own::lazy(&own),
    };
    let responses = Responses {
        stale: rules.stale,
        vary: rules.vary,
        request_headers: request.headers(),
        head,
        _response: PhantomData,
    };

    if head {
        // A handler may answer HEAD with less than GET: a HEAD miss is not stored.
        if let Ok(Some(answer)) = fill::cached_answer(&plan, &responses).await {
            return answer;
        }
        cache.count(Event::Miss, rules.name);
        return bypass(run).await;
    }
    let max_body = cache.inner.max_value_size;
    let statuses = rules.statuses;
    let vary = rules.vary;
    let body = async move {
        let (parts, body) = run.await?.into_parts();
        let lifetime = match response::storable(parts.status, &parts.headers, statuses, vary) {
            Ok(lifetime) => lifetime,
            Err(reason) => {
                tracing::debug!(reason, "cache: response not stored");
                return Ok(Prepared::Pass(Response::from_parts(
                    parts,
                    ViewBody::untouched(body),
                )));
            }
        };
        Ok(match body::buffer(body, max_body).await {
            Ok(body) => Prepared::Buffered(parts, body, lifetime),
            Err(body) => {
                tracing::debug!("cache: body too large, streaming or with trailers; not stored");
                Prepared::Pass(Response::from_parts(parts, body))
            }
        })
    };
    fill::run(Some(plan), responses, body).await
}

/// Says once per process why requests from a proxy are not cached.
fn warn_untrusted_forwarded(name: &'static str) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            name,
            "cache: requests carry X-Forwarded-Host/-Proto/-Port/-Prefix or Forwarded host/proto, \
             which the cache does not trust: they run uncached. Behind a proxy that sets or strips \
             these headers on every request, call CacheBuilder::trust_forwarded(true)"
        );
    }
}

/// Runs the handler without the cache. Whatever its response is built from, nothing can
/// be checked about it: a fill around it (a `CacheLayer` over this view) must not store it.
async fn bypass<B, E>(
    run: impl Future<Output = Result<Response<B>, E>>,
) -> Result<Response<ViewBody<B>>, E>
where
    B: Body<Data = Bytes>,
{
    deps::taint();
    run.await.map(|response| response.map(ViewBody::untouched))
}

/// A handler's response, ready for the cache.
pub(crate) enum Prepared<B: Body> {
    /// Not storable: passed on as it is.
    Pass(Response<ViewBody<B>>),
    /// Storable by the rules, its body read whole, with the lifetime its own headers give
    /// it (`None`: the view's `ttl`).
    Buffered(http::response::Parts, Bytes, Option<Duration>),
}

/// The stored response in `value`, read from its bytes once per opened value: a local copy
/// and the values handed to followers share the first reading (`Opened::decoded`).
fn entry_of(value: &Opened) -> Option<Entry> {
    if let Some(entry) = value
        .decoded
        .get()
        .and_then(|kept| kept.downcast_ref::<Entry>())
    {
        return Some(entry.clone());
    }
    let entry = Entry::open(value)?.complete();
    value.decoded.set(std::sync::Arc::new(entry.clone()));
    Some(entry)
}

/// How responses are read and written by the fill protocol: [`response::write_payload`] in
/// an envelope of kind [`Kind::Response`]. Hits answer `304` to a matching `If-None-Match`
/// and carry no body for HEAD.
pub(crate) struct Responses<'a, V, B, E> {
    stale: Duration,
    vary: &'a [V],
    request_headers: &'a http::HeaderMap,
    head: bool,
    _response: PhantomData<fn() -> (B, E)>,
}

impl<V: AsRef<str>, B: Body<Data = Bytes>, E> Filler for Responses<'_, V, B, E> {
    type Out = Result<Prepared<B>, E>;
    type Answer = Result<Response<ViewBody<B>>, E>;

    fn stamp(&self, header: &mut Header) {
        header.kind = Kind::Response;
        header.codec = response::RESPONSE_CODEC;
    }

    fn serves_stale(&self, value: &Opened) -> bool {
        // Unreadable: `answer` says so (a miss) where it is asked.
        entry_of(value).is_none_or(|entry| !freshness::forbids_stale(&entry.headers))
    }

    fn answer(&self, value: &Opened) -> Option<Self::Answer> {
        let entry = entry_of(value)?;
        Some(Ok(entry.respond(
            self.request_headers,
            self.head,
            SystemTime::now(),
        )))
    }

    fn finish(&self, out: Self::Out, header: &Header, writer: &mut Writer) -> (Self::Answer, bool) {
        let (mut parts, body, lifetime) = match out {
            Ok(Prepared::Buffered(parts, body, lifetime)) => (parts, body, lifetime),
            other => return (self.pass(other), false),
        };
        // The response's own lifetime, when shorter than the view's ttl, is the entry's.
        let ttl = lifetime.map_or(header.ttl(), |lifetime| lifetime.min(header.ttl()));
        if ttl < header.ttl() {
            writer.set_ttl(header, ttl);
        }
        response::prepare(&mut parts.headers, &body, self.vary);
        // Stored with the entry, so a hit serves them as they are instead of writing them
        // again (and hits say `stale-while-revalidate` as the fill does).
        response::add_freshness(&mut parts.headers, header.filled_at(), ttl);
        if !freshness::forbids_stale(&parts.headers) {
            response::add_stale(&mut parts.headers, self.stale);
        }
        response::write_payload(parts.status, &parts.headers, &body, writer.payload());
        if parts.status.is_success()
            && response::matches_none_match(self.request_headers, parts.headers.get(header::ETAG))
        {
            return (Ok(response::not_modified(&parts.headers)), true);
        }
        (Ok(Response::from_parts(parts, ViewBody::full(body))), true)
    }

    fn failed(&self, out: &Self::Out) -> bool {
        match out {
            Err(_) => true,
            Ok(Prepared::Pass(response)) => response.status().is_server_error(),
            Ok(Prepared::Buffered(parts, ..)) => parts.status.is_server_error(),
        }
    }

    fn pass(&self, out: Self::Out) -> Self::Answer {
        out.map(|prepared| match prepared {
            Prepared::Pass(response) => response,
            Prepared::Buffered(parts, body, _) => Response::from_parts(parts, ViewBody::full(body)),
        })
    }
}
