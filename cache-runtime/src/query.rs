//! What `#[cached_query]` expands into: read, single-flight, compute, store.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::Lookup;
use crate::cache::{Cache, current};
use crate::codec::SelectCodec;
use crate::envelope::{self, Header};
use crate::error::Result;
use crate::flight::{self, Join};
use crate::invalidate;
use crate::key;
use crate::stats::Event;

/// The static description of one cached function, written by the macro.
#[doc(hidden)]
#[derive(Debug)]
pub struct QuerySpec {
    /// `module::path::function`: names the query in logs, metrics and default keys.
    pub function: &'static str,
    /// The `key` template split at its placeholders (`"user:{id}"` → `["user:", ""]`).
    pub template: Option<&'static [&'static str]>,
    /// The `version` argument.
    pub version: u64,
    /// The `ttl` argument in seconds; `None` uses the cache's default.
    pub ttl: Option<u64>,
    /// The `tags` templates, each split at its placeholders like `template`.
    pub tags: &'static [&'static [&'static str]],
    /// The `cache` argument: where to find the cache instead of the installed one.
    pub cache: Option<fn() -> Cache>,
}

impl QuerySpec {
    fn resolve(&self) -> Option<Cache> {
        static WARNED: AtomicBool = AtomicBool::new(false);
        let cache = self.cache.map(|f| f()).or_else(current);
        if cache.is_none() && !WARNED.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                function = self.function,
                "cache: no cache installed; cached functions run uncached. Call cache_runtime::install(cache) at start-up"
            );
        }
        cache
    }
}

/// The logical key of one call (`{version}:{name}[:{args}]`, before the cache's prefix)
/// and its interpolated tags.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    logical: Option<String>,
    tags: Vec<String>,
}

impl Key {
    /// Encodes the call's key arguments and the values of its tag placeholders (each a
    /// tuple of references, in order) for `spec`.
    pub fn new<A: Serialize + ?Sized, T: Serialize + ?Sized>(
        spec: &'static QuerySpec,
        key_args: &A,
        tag_args: &T,
    ) -> Key {
        let encoded = key::encode_args(key_args).and_then(|k| Ok((k, key::encode_args(tag_args)?)));
        match encoded {
            Ok((parts, tag_parts)) => {
                let tags = interpolate_tags(spec.tags, &tag_parts);
                match (logical_key(spec, &parts), tags) {
                    (Some(logical), Some(tags)) => Key {
                        logical: Some(logical),
                        tags,
                    },
                    _ => {
                        tracing::error!(
                            function = spec.function,
                            "cache: key or tag templates do not match their arguments"
                        );
                        Key {
                            logical: None,
                            tags: Vec::new(),
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(function = spec.function, error = %e, "cache: key not encodable; running uncached");
                Key {
                    logical: None,
                    tags: Vec::new(),
                }
            }
        }
    }

    /// The logical key, when the arguments could be encoded.
    pub fn as_str(&self) -> Option<&str> {
        self.logical.as_deref()
    }

    /// The tags with their placeholders filled in.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }
}

/// Fills the placeholders of the tag templates (split at compile time), in order, with
/// `values`.
fn interpolate_tags(templates: &[&[&str]], values: &[String]) -> Option<Vec<String>> {
    let mut values = values.iter();
    let mut tags = Vec::with_capacity(templates.len());
    for pieces in templates {
        let (first, rest) = pieces.split_first()?;
        let mut tag = String::with_capacity(pieces.iter().map(|p| p.len() + 8).sum());
        tag.push_str(first);
        for piece in rest {
            tag.push_str(values.next()?);
            tag.push_str(piece);
        }
        tags.push(tag);
    }
    values.next().is_none().then_some(tags)
}

fn logical_key(spec: &QuerySpec, parts: &[String]) -> Option<String> {
    let mut out = String::with_capacity(64);
    out.push_str(&spec.version.to_string());
    out.push(':');
    match spec.template {
        Some(pieces) => {
            if pieces.len() != parts.len() + 1 {
                tracing::error!(
                    function = spec.function,
                    "cache: key template does not match its arguments"
                );
                return None;
            }
            out.push_str(pieces[0]);
            for (part, piece) in parts.iter().zip(&pieces[1..]) {
                out.push_str(part);
                out.push_str(piece);
            }
        }
        None => {
            out.push_str(spec.function);
            for (i, part) in parts.iter().enumerate() {
                out.push(if i == 0 { ':' } else { ',' });
                out.push_str(part);
            }
        }
    }
    Some(key::bound(out))
}

/// Marks types a cached function may return; see the error it gives otherwise.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached: it must implement `serde::Serialize` and `serde::Deserialize`",
    label = "the cached value's type",
    note = "derive both: `#[derive(serde::Serialize, serde::Deserialize)]`; for `Result<T, E>` only `T` needs them"
)]
pub trait Cacheable: Serialize + DeserializeOwned {}
// Report `User: Cacheable` (with the message above), not the two serde traits behind it.
#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> Cacheable for T {}

/// Runs a cached function returning a plain value (`Option<T>` included: `None` is cached).
#[doc(hidden)]
pub async fn cached_value<R, C, F>(spec: &'static QuerySpec, key: Key, fut: F) -> R
where
    R: Cacheable + Send,
    C: SelectCodec,
    F: Future<Output = R>,
{
    cached::<R, R, C, F>(spec, key, fut, |v: &R| Some(v), |v| v).await
}

/// Runs a cached function returning `Result<T, E>`: only `Ok` values are stored.
#[doc(hidden)]
pub async fn cached_result<T, E, C, F>(spec: &'static QuerySpec, key: Key, fut: F) -> Result<T, E>
where
    T: Cacheable + Send,
    C: SelectCodec,
    F: Future<Output = Result<T, E>>,
{
    cached::<Result<T, E>, T, C, F>(spec, key, fut, |r| r.as_ref().ok(), Ok).await
}

impl QuerySpec {
    fn ttl(&self, cache: &Cache) -> Duration {
        self.ttl
            .map_or(cache.inner.default_ttl, Duration::from_secs)
    }

    /// The generations a value of `logical` depends on by itself: the whole cache, the
    /// query, the entry, its tags (in this order).
    fn own_deps(&self, logical: &str, tags: &[String]) -> Vec<String> {
        let mut names = Vec::with_capacity(3 + tags.len());
        names.push(invalidate::ALL.to_owned());
        names.push(invalidate::query(self.function));
        names.push(invalidate::entry(logical));
        names.extend(tags.iter().map(|t| invalidate::tag(t)));
        names
    }

    /// Whether this function's values were seen to depend on other cached values too.
    fn nested(&self) -> bool {
        NESTED
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(self.function)
    }

    fn mark_nested(&self) {
        if !self.nested() {
            NESTED
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(self.function);
        }
    }
}

/// Functions whose fills read other cached values (a query calling a cached query): their
/// values record more dependencies than their own, so their reads use the checked script
/// (one round trip) instead of an `MGET` of their own dependencies (two round trips then).
static NESTED: LazyLock<RwLock<HashSet<&'static str>>> = LazyLock::new(Default::default);

async fn cached<O, T, C, F>(
    spec: &'static QuerySpec,
    key: Key,
    fut: F,
    cacheable: fn(&O) -> Option<&T>,
    wrap: fn(T) -> O,
) -> O
where
    T: Serialize + DeserializeOwned,
    C: SelectCodec,
    F: Future<Output = O>,
{
    let (Some(cache), Some(logical)) = (spec.resolve(), key.logical.as_deref()) else {
        return fut.await;
    };
    let name = spec.function;
    let counters = &cache.inner.counters;
    let full = cache.full_key(logical);
    let leader = match cache.inner.flights.join(&full) {
        Join::Leader(leader) => leader,
        Join::Follower(slot) => {
            // The leader's fill may have started before an invalidation that returned
            // before this call began: check its generations before serving it.
            if let Some(bytes) = flight::wait(slot).await
                && let Some((header, value)) = decode::<T, C>(&cache, &bytes)
                && cache.still_fresh(&header.deps, name).await
            {
                counters.count(Event::Hit, name);
                invalidate::record(&header.deps);
                tracing::debug!(key = %logical, name, "cache hit (shared flight)");
                return wrap(value);
            }
            // The leader had nothing to share (an error, or it was cancelled).
            return fut.await;
        }
    };

    let own = spec.own_deps(logical, &key.tags);
    let expected = (!spec.nested()).then_some(own.as_slice());
    if let Lookup::Found(bytes) = cache.read(&full, name, expected).await {
        match decode::<T, C>(&cache, &bytes) {
            Some((header, value)) => {
                counters.count(Event::Hit, name);
                counters.read_bytes(bytes.len());
                invalidate::record(&header.deps);
                tracing::debug!(key = %logical, name, "cache hit");
                leader.publish(bytes);
                return wrap(value);
            }
            None => {
                counters.count(Event::DecodeError, name);
                tracing::warn!(key = %logical, name, "cache: stored value is not readable; recomputing");
            }
        }
    }
    counters.count(Event::Miss, name);
    tracing::debug!(key = %logical, name, "cache miss");

    // Generations are read before the body runs: an invalidation from here on makes this
    // fill's value stale even if it is written after the invalidation returned.
    // The entry's own counter lives about as long as the entry; the others until evicted.
    let entry_ttl = invalidate::entry_gen_ttl(spec.ttl(&cache));
    let wanted = own.into_iter().enumerate();
    let wanted = wanted
        .map(|(i, n)| (n, if i == 2 { entry_ttl } else { None }))
        .collect();
    let generations = cache.start_fill(wanted, name).await;
    let started = Instant::now();
    let (out, inner) = invalidate::collect(fut).await;
    let Some(value) = cacheable(&out) else {
        invalidate::record(&inner);
        return out;
    };
    let stored = generations.is_some();
    let mut deps = generations.unwrap_or_default();
    if !inner.is_empty() {
        spec.mark_nested();
    }
    deps.extend(inner);
    invalidate::record(&deps);
    match encode::<T, C>(&cache, value, started.elapsed(), deps) {
        Ok(bytes) => {
            // Without generations (the backend failed) the value is shared with waiting
            // callers but not stored: it could not be checked against invalidations.
            if stored {
                cache
                    .write(&full, bytes.clone(), spec.ttl(&cache), name)
                    .await;
            }
            leader.publish(bytes);
        }
        Err(e) => {
            tracing::warn!(key = %logical, name, error = %e, "cache: value not encodable; not stored")
        }
    }
    out
}

/// Invalidates the one entry `key` names: its generation is replaced and the entry removed
/// in one step, so a fill that raced this call is never served.
#[doc(hidden)]
pub async fn invalidate_entry(spec: &'static QuerySpec, key: Key) -> Result<()> {
    let cache = no_cache_is_an_error(spec.resolve(), spec.function)?;
    let Some(logical) = key.logical.as_deref() else {
        return Err(crate::Error::new(
            crate::ErrorKind::Codec,
            format!(
                "cannot invalidate an entry of `{}`: its key arguments could not be encoded",
                spec.function
            ),
        ));
    };
    let ttl = invalidate::entry_gen_ttl(spec.ttl(&cache));
    cache
        .bump(
            &invalidate::entry(logical),
            ttl,
            Some(&cache.full_key(logical)),
        )
        .await
}

/// Invalidates every entry of the function `spec` describes, in one write.
#[doc(hidden)]
pub async fn invalidate_query(spec: &'static QuerySpec) -> Result<()> {
    let cache = no_cache_is_an_error(spec.resolve(), spec.function)?;
    cache
        .bump(&invalidate::query(spec.function), None, None)
        .await
}

/// An invalidation with no cache to act on did not happen: that must not look like success
/// (the caller may have meant a cache it forgot to `install` or `scope`).
pub(crate) fn no_cache_is_an_error(cache: Option<Cache>, function: &str) -> Result<Cache> {
    cache.ok_or_else(|| {
        crate::Error::new(
            crate::ErrorKind::Config,
            format!("cannot invalidate `{function}`: no cache installed (call cache_runtime::install, or run inside cache_runtime::scope)"),
        )
    })
}

/// Envelope (recording `deps`) + payload for `value`.
pub(crate) fn encode<T: Serialize + ?Sized, C: SelectCodec>(
    cache: &Cache,
    value: &T,
    cost: Duration,
    deps: invalidate::Deps,
) -> Result<Bytes> {
    let mut header = Header::now(C::codec_id(cache.inner.codec), cost);
    header.deps = deps;
    let mut buf = header.write(256);
    let start = buf.len();
    C::encode_with(cache.inner.codec, value, &mut buf)?;
    envelope::seal(
        &mut buf,
        start,
        cache.inner.compress_above,
        cache.decompress_limit(),
    );
    Ok(Bytes::from(buf))
}

/// The header and value in `bytes`, or `None` when they are not an envelope of this codec.
pub(crate) fn decode<T: DeserializeOwned, C: SelectCodec>(
    cache: &Cache,
    bytes: &[u8],
) -> Option<(Header, T)> {
    let (header, payload) = envelope::read(bytes)?;
    if header.kind != 0 || header.codec != C::codec_id(cache.inner.codec) {
        return None;
    }
    let payload = envelope::payload(&header, payload, cache.decompress_limit())?;
    let value = C::decode_with(cache.inner.codec, &payload).ok()?;
    Some((header, value))
}

/// Decodes arbitrary bytes as a stored value with every compiled codec, for the fuzz target
/// and the decoder property test: it must never panic nor allocate without bound.
#[doc(hidden)]
pub fn decode_untrusted(bytes: &[u8]) -> usize {
    use crate::codec::Codec;
    type Row = (
        u64,
        String,
        Option<Vec<u8>>,
        std::collections::BTreeMap<String, f64>,
        bool,
    );
    fn try_all<C: Codec>(payload: &[u8]) -> usize {
        usize::from(C::decode::<Vec<Row>>(payload).is_ok())
            + usize::from(C::decode::<String>(payload).is_ok())
            + usize::from(C::decode::<Option<Vec<u32>>>(payload).is_ok())
    }
    let Some((header, payload)) = envelope::read(bytes) else {
        return 0;
    };
    let Some(payload) = envelope::payload(&header, payload, 1 << 20) else {
        return 0;
    };
    let payload = &payload[..];
    #[cfg_attr(
        not(any(feature = "postcard", feature = "bincode", feature = "json")),
        allow(unused_mut)
    )]
    let mut ok = try_all::<crate::codec::MsgPack>(payload);
    #[cfg(feature = "postcard")]
    {
        ok += try_all::<crate::codec::Postcard>(payload);
    }
    #[cfg(feature = "bincode")]
    {
        ok += try_all::<crate::codec::Bincode>(payload);
    }
    #[cfg(feature = "json")]
    {
        ok += try_all::<crate::codec::Json>(payload);
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    static PLAIN: QuerySpec = QuerySpec {
        function: "app::users::active",
        template: None,
        version: 3,
        ttl: None,
        tags: &[],
        cache: None,
    };
    static TEMPLATED: QuerySpec = QuerySpec {
        function: "app::users::get",
        template: Some(&["user:", ":posts"]),
        version: 1,
        ttl: Some(5),
        tags: &[],
        cache: None,
    };

    #[test]
    fn default_key_is_version_function_args() {
        assert_eq!(
            Key::new(&PLAIN, &(), &()).as_str(),
            Some("3:app::users::active")
        );
        assert_eq!(
            Key::new(&PLAIN, &(&1u32, &"a:b"), &()).as_str(),
            Some("3:app::users::active:1,a%3Ab")
        );
    }

    #[test]
    fn template_interpolates_in_order() {
        assert_eq!(
            Key::new(&TEMPLATED, &(&42u32,), &()).as_str(),
            Some("1:user:42:posts")
        );
        assert_eq!(
            Key::new(&TEMPLATED, &(&"x:y",), &()).as_str(),
            Some("1:user:x%3Ay:posts")
        );
        assert_eq!(
            Key::new(&TEMPLATED, &(&1u8, &2u8), &()).as_str(),
            None,
            "arity mismatch"
        );
    }
}
