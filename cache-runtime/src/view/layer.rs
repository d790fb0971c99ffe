//! [`CacheLayer`]: the view cache in front of any tower service (Django's site-wide cache
//! middleware).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, Request, Response, StatusCode};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use super::{Rules, ViewBody, ViewRequest, resolve, serve};
use crate::cache::Cache;

/// Caches every GET response of the services below it, with the same rules as
/// `#[cached_view]` (see [the module](super)); keys name the layer `layer` where a view
/// has its function path.
///
/// Put it on an axum `Router` (or a sub-router, before `nest`ing it) with
/// `Router::layer`, or in front of any `tower::Service<http::Request<_>>`; with the `actix`
/// feature, on an actix-web `App` or `Scope` with `wrap` (see `view::actix`).
///
/// ```
/// use std::time::Duration;
/// use axum::{Router, routing::get};
/// use cache_runtime::{Cache, view::CacheLayer};
/// use tower::ServiceExt;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let cache = Cache::builder("memory://").prefix("site").build().await.unwrap();
/// let app = Router::new()
///     .route("/news", get(|| async { "today's news" }))
///     .layer(
///         CacheLayer::new(Duration::from_secs(60))
///             .cache(cache.clone())
///             .vary(["Accept-Language"])
///             .statuses([200, 404])
///             .version(2),
///     );
///
/// let request = || {
///     http::Request::get("/news")
///         .header("host", "example.com")
///         .header("accept-language", "fr")
///         .body(axum::body::Body::empty())
///         .unwrap()
/// };
/// let response = app.clone().oneshot(request()).await.unwrap();
/// assert_eq!(response.headers()["vary"], "Accept-Language");
/// app.oneshot(request()).await.unwrap();
/// assert_eq!(cache.stats().hits, 1);
/// # });
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct CacheLayer {
    pub(super) config: Arc<Config>,
}

/// A layer's settings, shared by its tower service and its actix middleware.
#[derive(Debug, Clone)]
pub(super) struct Config {
    ttl: Duration,
    pub(super) cache: Option<Cache>,
    vary: Vec<String>,
    statuses: Vec<u16>,
    tags: Vec<String>,
    version: u64,
    lease: Option<bool>,
    early: Option<f64>,
    stale: Duration,
}

impl Config {
    /// The view rules of a layer: named `layer` in keys, logs and metrics.
    pub(super) fn rules(&self) -> Rules<'_, String> {
        Rules {
            name: "layer",
            version: self.version,
            ttl: Some(self.ttl),
            vary: &self.vary,
            statuses: &self.statuses,
            tags: &self.tags,
            lease: self.lease,
            early: self.early,
            stale: self.stale,
        }
    }
}

impl CacheLayer {
    /// Caches responses for `ttl`, in the task's or the installed cache
    /// ([`current`](crate::current)) unless [`cache`](Self::cache) names one. A zero `ttl`
    /// caches nothing.
    pub fn new(ttl: Duration) -> CacheLayer {
        CacheLayer {
            config: Arc::new(Config {
                ttl,
                cache: None,
                vary: Vec::new(),
                statuses: Vec::new(),
                tags: Vec::new(),
                version: 1,
                lease: None,
                early: None,
                stale: Duration::ZERO,
            }),
        }
    }

    /// The cache to use instead of the task's or installed one.
    pub fn cache(mut self, cache: Cache) -> CacheLayer {
        Arc::make_mut(&mut self.config).cache = Some(cache);
        self
    }

    /// Request headers that are part of the key (Django's `vary_on_headers`); responses
    /// get them in `Vary`. Naming `Authorization` caches authenticated requests per
    /// credential instead of bypassing the cache for them.
    ///
    /// # Panics
    ///
    /// When a name is not a valid header name.
    pub fn vary<I, S>(mut self, headers: I) -> CacheLayer
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let names = headers.into_iter().map(|name| {
            let name = name.as_ref();
            assert!(
                HeaderName::from_bytes(name.as_bytes()).is_ok(),
                "CacheLayer::vary: {name:?} is not a valid header name"
            );
            name.to_owned()
        });
        Arc::make_mut(&mut self.config).vary = names.collect();
        self
    }

    /// Statuses that are stored (default `[200]`).
    ///
    /// # Panics
    ///
    /// When a status is not a valid HTTP status code (100 to 999).
    pub fn statuses<I: IntoIterator<Item = u16>>(mut self, statuses: I) -> CacheLayer {
        let statuses = statuses.into_iter().inspect(|&status| {
            assert!(
                StatusCode::from_u16(status).is_ok(),
                "CacheLayer::statuses: {status} is not an HTTP status code"
            );
        });
        Arc::make_mut(&mut self.config).statuses = statuses.collect();
        self
    }

    /// The key version (default 1): bump it to make every stored response unreachable.
    pub fn version(mut self, version: u64) -> CacheLayer {
        Arc::make_mut(&mut self.config).version = version;
        self
    }

    /// Whether a miss takes a lease, so one process in the fleet renders while the others
    /// wait (default: as the cache says, see [`CacheBuilder::leases`](crate::CacheBuilder::leases)).
    pub fn lease(mut self, on: bool) -> CacheLayer {
        Arc::make_mut(&mut self.config).lease = Some(on);
        self
    }

    /// Refreshes responses early, by probability as their expiry nears (XFetch with this β;
    /// 1.0 is the usual choice): one request re-renders while the others are served.
    ///
    /// # Panics
    ///
    /// When `beta` is not a positive number.
    pub fn early(mut self, beta: f64) -> CacheLayer {
        assert!(
            beta.is_finite() && beta > 0.0,
            "CacheLayer::early: β must be a positive number, got {beta}"
        );
        Arc::make_mut(&mut self.config).early = Some(beta);
        self
    }

    /// Serves an expired response for `window` after its expiry while one request
    /// re-renders it, and in place of a re-render that fails (a 5xx); responses say so in
    /// `Cache-Control: stale-while-revalidate, stale-if-error`. An invalidated response is
    /// never served, nor is one past its lifetime whose headers say `must-revalidate`,
    /// `proxy-revalidate` or `s-maxage` (RFC 9111 §4.2.4).
    pub fn stale(mut self, window: Duration) -> CacheLayer {
        Arc::make_mut(&mut self.config).stale = window;
        self
    }

    /// Tags every response stored by this layer carries: `cache.invalidate_tag(tag)` drops
    /// them all at once.
    pub fn tags<I, S>(mut self, tags: I) -> CacheLayer
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Arc::make_mut(&mut self.config).tags = tags.into_iter().map(Into::into).collect();
        self
    }
}

impl<S> Layer<S> for CacheLayer {
    type Service = CacheService<S>;

    fn layer(&self, inner: S) -> CacheService<S> {
        CacheService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service [`CacheLayer`] wraps around `S`.
///
/// It answers hits itself, without calling `S`; on a miss it calls `S` and stores what may
/// be stored. Its responses carry a [`ViewBody`].
///
/// ```
/// use std::time::Duration;
/// use cache_runtime::view::{CacheLayer, CacheService};
/// use tower::Layer;
///
/// let service: CacheService<_> = CacheLayer::new(Duration::from_secs(5)).layer(tower::service_fn(
///     |_req: http::Request<()>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
///     },
/// ));
/// # let _ = service;
/// ```
#[derive(Debug, Clone)]
pub struct CacheService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CacheService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Send,
    S::Error: Send,
{
    type Response = Response<ViewBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The instance that was polled ready goes into the future; a hit drops it uncalled.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        let view_request = ViewRequest::from_head(
            request.method(),
            request.uri(),
            request.headers(),
            request.extensions(),
        );
        Box::pin(async move {
            let cache = resolve(config.cache.clone(), "layer");
            let run = Box::pin(async move { inner.call(request).await });
            serve(&config.rules(), cache, &view_request, run).await
        })
    }
}
