//! The actix-web 4 adapter (feature `actix`): `#[cached_view(actix)]` handlers, and
//! [`CacheLayer`] as actix middleware (`App::wrap`, `Scope::wrap`). The rules are the view
//! core's ([the module](super)): this adapter only converts requests and responses and calls
//! [`serve`].
//!
//! actix-web 4 speaks `http` 0.2 (and bodies of its own `MessageBody` trait), the core
//! `http` 1 and `http-body` 1: every conversion is in [`convert`], here and nowhere else.
//!
//! ```
//! use std::time::Duration;
//! use actix_web::{App, test, web};
//! use cache_runtime::{Cache, view::CacheLayer};
//!
//! # actix_web::rt::System::new().block_on(async {
//! let cache = Cache::from_url("memory://").await.unwrap();
//! let app = test::init_service(
//!     App::new()
//!         .wrap(CacheLayer::new(Duration::from_secs(60)).cache(cache.clone()))
//!         .route("/", web::get().to(|| async { "home" })),
//! )
//! .await;
//! let first = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
//! assert_eq!(first.headers().get("cache-control").unwrap(), "max-age=60");
//! let second = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
//! assert!(second.headers().contains_key("age"));
//! assert_eq!((cache.stats().misses, cache.stats().hits), (1, 1));
//! # });
//! ```

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::{FromRequest, HttpRequest, HttpResponse, Responder};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::layer::CacheLayer;
use super::{ViewBody, ViewRequest, ViewSpec, resolve, serve};

/// What `#[cached_view(actix)]` adds as a handler's first extractor: the request's head,
/// converted for the view core, and the `HttpRequest` its response is built for.
#[doc(hidden)]
pub struct ActixViewRequest {
    view: ViewRequest,
    http: HttpRequest,
}

impl FromRequest for ActixViewRequest {
    type Error = Infallible;
    type Future = Ready<Result<Self, Infallible>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(ActixViewRequest {
            view: convert::request(req.method(), req.uri(), req.headers()),
            http: req.clone(),
        }))
    }
}

/// Runs one request of a `#[cached_view(actix)]` handler: the actix twin of the axum
/// adapter's `cached_view`. `fut` is the handler's body; its `Responder` is turned into a
/// response for the request only on a miss.
#[doc(hidden)]
pub fn cached_view<R, F>(
    spec: &'static ViewSpec,
    req: ActixViewRequest,
    fut: F,
) -> impl Future<Output = HttpResponse>
where
    R: Responder,
    F: Future<Output = R>,
{
    let ActixViewRequest { view, http } = req;
    let head = view.method() == http::Method::HEAD;
    // Boxed here, once: see `serve`.
    let run = Box::pin(async move {
        let response = fut.await.respond_to(&http).map_into_boxed_body();
        Ok::<_, Infallible>(convert::response_in(response))
    });
    async move {
        let cache = resolve(spec.cache.map(|f| f()), spec.function);
        match serve(&spec.rules(), cache, &view, run).await {
            Ok(response) => convert::response_out(response, head),
            Err(never) => match never {},
        }
    }
}

/// `CacheLayer` as actix-web middleware: `App::new().wrap(CacheLayer::new(ttl))` caches every
/// GET response of the app (or of a `Scope` it wraps) with the same rules as on a tower
/// service; keys name the layer `layer`. A response an inner service failed with (`Err`, not
/// an error response) is returned as it is, never replaced by a stale one.
impl<S, B> Transform<S, ServiceRequest> for CacheLayer
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = actix_web::Error;
    type Transform = ActixCacheService<S>;
    type InitError = ();
    type Future = Ready<Result<ActixCacheService<S>, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(ActixCacheService {
            service: Rc::new(service),
            layer: self.clone(),
        }))
    }
}

/// The service [`CacheLayer`] wraps around an actix-web service `S`.
pub struct ActixCacheService<S> {
    service: Rc<S>,
    layer: CacheLayer,
}

/// Where the request is while the view core decides: still to be sent to the inner service,
/// back from it (its response's request), or gone with the inner service's error. A hit never
/// calls the inner service, so the request is still there to answer with.
enum Slot {
    Service(ServiceRequest),
    Answered(HttpRequest),
    Failed(actix_web::Error),
    Taken,
}

impl<S, B> Service<ServiceRequest> for ActixCacheService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.service.poll_ready(cx)
    }

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let view = convert::request(req.method(), req.uri(), req.headers());
        let head = view.method() == http::Method::HEAD;
        let service = self.service.clone();
        let config = self.layer.config.clone();
        let slot = Rc::new(RefCell::new(Slot::Service(req)));
        Box::pin(async move {
            let inner = slot.clone();
            let run = Box::pin(async move {
                let Slot::Service(req) = inner.replace(Slot::Taken) else {
                    unreachable!("the inner service is called once");
                };
                match service.call(req).await {
                    Ok(response) => {
                        let (req, response) = response.into_parts();
                        inner.replace(Slot::Answered(req));
                        Ok(convert::response_in(response.map_into_boxed_body()))
                    }
                    Err(e) => {
                        inner.replace(Slot::Failed(e));
                        Err(())
                    }
                }
            });
            let cache = resolve(config.cache.clone(), "layer");
            let served = serve(&config.rules(), cache, &view, run).await;
            let req = match slot.replace(Slot::Taken) {
                Slot::Service(req) => req.into_parts().0,
                Slot::Answered(req) => req,
                Slot::Failed(e) => return Err(e),
                Slot::Taken => unreachable!("the request is put back or failed"),
            };
            match served {
                Ok(response) => Ok(ServiceResponse::new(
                    req,
                    convert::response_out(response, head),
                )),
                Err(()) => unreachable!("an error leaves the slot failed"),
            }
        })
    }
}

/// An actix body seen as an `http-body` 1 body, for the view core.
#[doc(hidden)]
pub struct ActixBody<B> {
    inner: Pin<Box<B>>,
}

impl<B: MessageBody> Body for ActixBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        self.inner
            .as_mut()
            .poll_next(cx)
            .map(|chunk| chunk.map(|chunk| chunk.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.inner.size(), BodySize::None | BodySize::Sized(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.inner.size() {
            BodySize::None => SizeHint::with_exact(0),
            BodySize::Sized(n) => SizeHint::with_exact(n),
            BodySize::Stream => SizeHint::new(),
        }
    }
}

/// A body from the view core seen as an actix body. `head_length`: a HEAD response's body is
/// empty, but actix writes the length a body declares (and sends none for HEAD): the
/// `Content-Length` the core set (GET's) is declared instead.
struct Served<B: MessageBody> {
    body: ViewBody<ActixBody<B>>,
    head_length: Option<u64>,
}

impl<B: MessageBody> MessageBody for Served<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        if let Some(length) = self.head_length {
            return BodySize::Sized(length);
        }
        match self.body.size_hint().exact() {
            Some(n) => BodySize::Sized(n),
            None => BodySize::Stream,
        }
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, B::Error>>> {
        if self.head_length.is_some() {
            return Poll::Ready(None);
        }
        loop {
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                None => return Poll::Ready(None),
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                // actix bodies carry no trailers: only data goes on.
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
            }
        }
    }
}

/// The one place `http` 0.2 (actix-web) and `http` 1 (the view core) meet.
mod convert {
    use actix_web::body::{BoxBody, MessageBody};
    use actix_web::http::header::HeaderMap as ActixHeaders;
    use actix_web::http::{Method as ActixMethod, Uri as ActixUri};
    use actix_web::{HttpResponse, http as h02};

    use super::{ActixBody, Served, ViewBody, ViewRequest};

    /// A request's head for the view core. Anything that does not convert (nothing should:
    /// both `http` versions accept the same bytes) makes a request the core never caches.
    pub(super) fn request(
        method: &ActixMethod,
        uri: &ActixUri,
        headers: &ActixHeaders,
    ) -> ViewRequest {
        let method = http::Method::from_bytes(method.as_str().as_bytes());
        let uri = uri.to_string().parse::<http::Uri>();
        let mut converted = http::HeaderMap::with_capacity(headers.len());
        let mut complete = true;
        for (name, value) in headers {
            match (
                http::HeaderName::from_bytes(name.as_str().as_bytes()),
                http::HeaderValue::from_bytes(value.as_bytes()),
            ) {
                (Ok(name), Ok(value)) => {
                    converted.append(name, value);
                }
                _ => complete = false,
            }
        }
        match (method, uri) {
            (Ok(method), Ok(uri)) if complete => ViewRequest::new(method, uri, converted),
            // `*` has no path: the core runs the handler uncached.
            _ => ViewRequest::new(http::Method::GET, http::Uri::from_static("*"), converted),
        }
    }

    /// A handler's response for the view core.
    pub(super) fn response_in(
        response: HttpResponse<BoxBody>,
    ) -> http::Response<ActixBody<BoxBody>> {
        let (head, body) = response.into_parts();
        let mut out = http::Response::new(ActixBody {
            inner: Box::pin(body),
        });
        *out.status_mut() = http::StatusCode::from_u16(head.status().as_u16())
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        let headers = out.headers_mut();
        for (name, value) in head.headers() {
            match (
                http::HeaderName::from_bytes(name.as_str().as_bytes()),
                http::HeaderValue::from_bytes(value.as_bytes()),
            ) {
                (Ok(name), Ok(value)) => {
                    headers.append(name, value);
                }
                // Never store a response missing one of its headers (a `Set-Cookie`, say).
                _ => {
                    headers.append(
                        http::header::CACHE_CONTROL,
                        http::HeaderValue::from_static("no-store"),
                    );
                }
            }
        }
        out
    }

    /// The view core's response for actix. `head`: the request was a HEAD (see [`Served`]).
    pub(super) fn response_out(
        response: http::Response<ViewBody<ActixBody<BoxBody>>>,
        head: bool,
    ) -> HttpResponse<BoxBody> {
        let (parts, body) = response.into_parts();
        let status = h02::StatusCode::from_u16(parts.status.as_u16())
            .unwrap_or(h02::StatusCode::INTERNAL_SERVER_ERROR);
        let body = match body.into_untouched() {
            Ok(untouched) => untouched.into_inner(),
            Err(body) => {
                let head_length = head
                    .then(|| parts.headers.get(http::header::CONTENT_LENGTH))
                    .flatten()
                    .and_then(|v| v.to_str().ok()?.parse().ok());
                Served { body, head_length }.boxed()
            }
        };
        let mut out = HttpResponse::with_body(status, body);
        let headers = out.headers_mut();
        for (name, value) in &parts.headers {
            if let (Ok(name), Ok(value)) = (
                h02::header::HeaderName::from_bytes(name.as_str().as_bytes()),
                h02::header::HeaderValue::from_bytes(value.as_bytes()),
            ) {
                headers.append(name, value);
            }
        }
        out
    }
}

impl<B> ActixBody<B> {
    /// The actix body, given back untouched.
    fn into_inner(self) -> B
    where
        B: Unpin,
    {
        *Pin::into_inner(self.inner)
    }
}
