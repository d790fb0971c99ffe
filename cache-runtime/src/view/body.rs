//! [`ViewBody`]: the body of every response the view core returns, and bounded buffering.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

/// The response body of [`CacheService`](super::CacheService): a body served from the
/// cache, the handler's own body passed through untouched, or the handler's body with the
/// frames already read while trying to buffer it put back in front.
///
/// It yields exactly the frames (and the error, if any) the inner body yields; only what
/// the cache serves is new. Users see it as `Response<ViewBody<B>>` when they put a
/// [`CacheLayer`](super::CacheLayer) in front of a plain tower service; axum turns it into
/// its own body.
///
/// ```
/// use bytes::Bytes;
/// use cache_runtime::view::{CacheLayer, ViewBody};
/// use http_body_util::{BodyExt, Full};
/// use tower::{Layer, ServiceExt};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let cache = cache_runtime::Cache::from_url("memory://").await.unwrap();
/// let service = CacheLayer::new(std::time::Duration::from_secs(60)).cache(cache).layer(
///     tower::service_fn(|_req: http::Request<()>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from("hi"))))
///     }),
/// );
/// let response: http::Response<ViewBody<Full<Bytes>>> =
///     service.oneshot(http::Request::get("/").body(()).unwrap()).await.unwrap();
/// assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), "hi");
/// # });
/// ```
pub struct ViewBody<B: Body> {
    /// Frames to yield first (a cached body, or what buffering already read).
    frames: VecDeque<Frame<Bytes>>,
    /// The rest of the handler's body, when there is one.
    rest: Option<Pin<Box<B>>>,
    /// An error the handler's body returned while it was being buffered, yielded last.
    error: Option<B::Error>,
}

// No field is ever pinned in place: `rest` is pinned on the heap.
impl<B: Body> Unpin for ViewBody<B> {}

impl<B: Body> fmt::Debug for ViewBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ViewBody")
            .field("buffered_frames", &self.frames.len())
            .field("has_rest", &self.rest.is_some())
            .field("has_error", &self.error.is_some())
            .finish()
    }
}

impl<B: Body> ViewBody<B> {
    /// A body of exactly `data`.
    pub(crate) fn full(data: Bytes) -> Self {
        let mut frames = VecDeque::new();
        if !data.is_empty() {
            frames.push_back(Frame::data(data));
        }
        ViewBody {
            frames,
            rest: None,
            error: None,
        }
    }

    /// A body without data (HEAD hits, 304).
    pub(crate) fn empty() -> Self {
        ViewBody {
            frames: VecDeque::new(),
            rest: None,
            error: None,
        }
    }

    /// The handler's body, passed on as it is.
    pub(crate) fn untouched(body: B) -> Self {
        ViewBody {
            frames: VecDeque::new(),
            rest: Some(Box::pin(body)),
            error: None,
        }
    }

    /// Gives the handler's body back when nothing was read from it or added to it.
    #[cfg(any(feature = "axum", test))]
    pub(crate) fn into_untouched(self) -> Result<B, Self>
    where
        B: Unpin,
    {
        match self {
            ViewBody {
                frames,
                rest: Some(rest),
                error: None,
            } if frames.is_empty() => Ok(*Pin::into_inner(rest)),
            other => Err(other),
        }
    }
}

impl<B> Body for ViewBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        if let Some(frame) = this.frames.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(rest) = this.rest.as_mut() {
            match ready!(rest.as_mut().poll_frame(cx)) {
                None => this.rest = None,
                Some(frame) => return Poll::Ready(Some(frame)),
            }
        }
        Poll::Ready(this.error.take().map(Err))
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty()
            && self.error.is_none()
            && self.rest.as_ref().is_none_or(|rest| rest.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let buffered: u64 = self
            .frames
            .iter()
            .filter_map(|f| f.data_ref().map(|d| d.len() as u64))
            .sum();
        match &self.rest {
            None => SizeHint::with_exact(buffered),
            Some(rest) => {
                let inner = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower().saturating_add(buffered));
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper.saturating_add(buffered));
                }
                hint
            }
        }
    }
}

/// Reads a whole body of at most `limit` bytes. A body that may be longer (its size hint
/// says so, or it has no upper bound: a stream), that turns out longer, that carries
/// trailers or that fails comes back as a [`ViewBody`] yielding exactly what the original
/// would have: memory use stays bounded by `limit` and nothing is lost.
pub(crate) async fn buffer<B>(body: B, limit: usize) -> Result<Bytes, ViewBody<B>>
where
    B: Body<Data = Bytes>,
{
    let limit = limit as u64;
    if body.size_hint().upper().is_none_or(|upper| upper > limit) {
        return Err(ViewBody::untouched(body));
    }
    let mut rest = Box::pin(body);
    let mut frames = VecDeque::new();
    let mut len = 0u64;
    let mut only_data = true;
    let replay = |frames, rest, error| {
        Err(ViewBody {
            frames,
            rest,
            error,
        })
    };
    loop {
        match rest.frame().await {
            None => break,
            Some(Ok(frame)) => {
                match frame.data_ref() {
                    Some(data) => len += data.len() as u64,
                    None => only_data = false,
                }
                frames.push_back(frame);
                if len > limit {
                    // The size hint lied; hand on what was read and the rest.
                    return replay(frames, Some(rest), None);
                }
            }
            Some(Err(e)) => return replay(frames, None, Some(e)),
        }
    }
    if !only_data {
        return replay(frames, None, None);
    }
    Ok(concat(frames, len as usize))
}

fn concat(mut frames: VecDeque<Frame<Bytes>>, len: usize) -> Bytes {
    if frames.len() == 1 {
        return frames
            .pop_front()
            .and_then(|f| f.into_data().ok())
            .unwrap_or_default();
    }
    let mut out = BytesMut::with_capacity(len);
    for frame in frames {
        if let Ok(data) = frame.into_data() {
            out.extend_from_slice(&data);
        }
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;
    use http_body_util::Full;

    /// A body of fixed chunks that reports no size (like a stream), or a false one.
    struct Chunks {
        chunks: VecDeque<Result<Frame<Bytes>, &'static str>>,
        hint: SizeHint,
    }

    impl Body for Chunks {
        type Data = Bytes;
        type Error = &'static str;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, &'static str>>> {
            Poll::Ready(self.chunks.pop_front())
        }
        fn size_hint(&self) -> SizeHint {
            self.hint
        }
    }

    fn chunks(items: Vec<Result<Frame<Bytes>, &'static str>>, upper: Option<u64>) -> Chunks {
        let mut hint = SizeHint::new();
        if let Some(upper) = upper {
            hint.set_upper(upper);
        }
        Chunks {
            chunks: items.into(),
            hint,
        }
    }

    fn data(s: &'static str) -> Result<Frame<Bytes>, &'static str> {
        Ok(Frame::data(Bytes::from_static(s.as_bytes())))
    }

    async fn all<B: Body<Data = Bytes>>(body: B) -> Result<Bytes, B::Error> {
        body.collect().await.map(|c| c.to_bytes())
    }

    #[tokio::test]
    async fn small_bodies_are_buffered() {
        let body = Full::new(Bytes::from_static(b"hello"));
        assert_eq!(buffer(body, 5).await.unwrap(), "hello");
        let body = chunks(vec![data("he"), data("llo")], Some(5));
        assert_eq!(buffer(body, 10).await.unwrap(), "hello");
    }

    #[tokio::test]
    async fn large_and_unbounded_bodies_pass_through_unread() {
        let body = Full::new(Bytes::from_static(b"hello"));
        let back = buffer(body, 4).await.unwrap_err();
        assert_eq!(back.size_hint().exact(), Some(5));
        assert!(back.into_untouched().is_ok(), "nothing was read");

        let stream = chunks(vec![data("a"), data("b")], None);
        let back = buffer(stream, 1024).await.unwrap_err();
        assert_eq!(all(back).await.unwrap(), "ab");
    }

    #[tokio::test]
    async fn a_lying_size_hint_loses_nothing() {
        let body = chunks(vec![data("abc"), data("def"), data("ghi")], Some(4));
        let back = buffer(body, 4).await.unwrap_err();
        assert_eq!(all(back).await.unwrap(), "abcdefghi");
    }

    #[tokio::test]
    async fn errors_and_trailers_are_replayed() {
        let body = chunks(vec![data("abc"), Err("boom")], Some(10));
        let back = buffer(body, 10).await.unwrap_err();
        assert_eq!(all(back).await.unwrap_err(), "boom");

        let body = chunks(
            vec![data("abc"), Ok(Frame::trailers(HeaderMap::new()))],
            Some(10),
        );
        let back = buffer(body, 10).await.unwrap_err();
        let collected = back.collect().await.unwrap();
        assert!(collected.trailers().is_some());
        assert_eq!(collected.to_bytes(), "abc");
    }
}
