//! What `#[cached_query]` expands into: the function's description and its key. Its values
//! are [`Values`]; the protocol is [`crate::fill`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cache::Cache;
use crate::cache::default::current;
use crate::codec::SelectCodec;
use crate::error::{Error, ErrorKind, Result};
use crate::fill::{self, Own, Plan};
use crate::freshness::Freshness;
use crate::invalidate::{counter_ttl, require};
use crate::key::{self, generation};
use crate::share::Sharing;
use crate::value::Values;

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
    /// The `lease` argument; `None` follows the cache ([`CacheBuilder::leases`](crate::CacheBuilder::leases)).
    pub lease: Option<bool>,
    /// The `early` argument: XFetch's β.
    pub early: Option<f64>,
    /// The `stale` argument in seconds: how long an expired value is still served while one
    /// call refreshes it, or when the refresh fails.
    pub stale: Option<u64>,
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

    fn ttl(&self, cache: &Cache) -> Duration {
        self.ttl
            .map_or(cache.inner.default_ttl, Duration::from_secs)
    }

    fn freshness(&self, cache: &Cache) -> Freshness {
        Freshness {
            stale: Duration::from_secs(self.stale.unwrap_or(0)),
            early: self.early,
            lease: self.lease.unwrap_or(cache.inner.leases),
        }
    }

    /// The generations a value of `logical` depends on by itself: the whole cache, the
    /// query, the entry, its tags. Counters named from the arguments (the entry's, tags
    /// with placeholders) live as long as the values recording them, kept for `keep` (TTL and
    /// stale window: [`counter_ttl`]).
    fn own(
        &self,
        logical: &str,
        tags: &[String],
        keep: Duration,
    ) -> Vec<(String, Option<Duration>)> {
        let mut own = Vec::with_capacity(3 + tags.len());
        own.push((generation::ALL.to_owned(), None));
        own.push((generation::query(self.function), None));
        own.push((generation::entry(logical), counter_ttl(keep)));
        own.extend(self.tags.iter().zip(tags).map(|(template, tag)| {
            let interpolated = template.len() > 1;
            (
                generation::tag(tag),
                counter_ttl(keep).filter(|_| interpolated),
            )
        }));
        own
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
        let (parts, tag_parts) = match encoded {
            Ok(parts) => parts,
            Err(e) => {
                tracing::warn!(function = spec.function, error = %e, "cache: key not encodable; running uncached");
                return Key::none();
            }
        };
        let logical = key::query(spec.version, spec.function, spec.template, &parts);
        match (logical, key::tags(spec.tags, &tag_parts)) {
            (Some(logical), Some(tags)) => Key {
                logical: Some(logical),
                tags,
            },
            _ => {
                tracing::error!(
                    function = spec.function,
                    "cache: key or tag templates do not match their arguments"
                );
                Key::none()
            }
        }
    }

    fn none() -> Key {
        Key {
            logical: None,
            tags: Vec::new(),
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
pub fn cached_value<R, C, F>(
    spec: &'static QuerySpec,
    key: Key,
    sharing: Option<Sharing<R>>,
    fut: F,
) -> impl Future<Output = R>
where
    R: Cacheable + Send,
    C: SelectCodec,
    F: Future<Output = R>,
{
    cached::<R, R, C, F>(spec, key, sharing, fut, |v: &R| Some(v), |v| v)
}

/// Runs a cached function returning `Result<T, E>`: only `Ok` values are stored.
#[doc(hidden)]
pub fn cached_result<T, E, C, F>(
    spec: &'static QuerySpec,
    key: Key,
    sharing: Option<Sharing<T>>,
    fut: F,
) -> impl Future<Output = Result<T, E>>
where
    T: Cacheable + Send,
    C: SelectCodec,
    F: Future<Output = Result<T, E>>,
{
    cached::<Result<T, E>, T, C, F>(spec, key, sharing, fut, |r| r.as_ref().ok(), Ok)
}

/// [`cached_value`] for a sync function: `body` runs on the calling thread, through the same
/// fill, driven by [`crate::block_on`] (no runtime needed).
#[doc(hidden)]
pub fn cached_value_blocking<R, C, F>(
    spec: &'static QuerySpec,
    key: Key,
    sharing: Option<Sharing<R>>,
    body: F,
) -> R
where
    R: Cacheable + Send,
    C: SelectCodec,
    F: FnOnce() -> R,
{
    crate::block_on(cached_value::<R, C, _>(spec, key, sharing, async move {
        body()
    }))
}

/// [`cached_result`] for a sync function (see [`cached_value_blocking`]).
#[doc(hidden)]
pub fn cached_result_blocking<T, E, C, F>(
    spec: &'static QuerySpec,
    key: Key,
    sharing: Option<Sharing<T>>,
    body: F,
) -> Result<T, E>
where
    T: Cacheable + Send,
    C: SelectCodec,
    F: FnOnce() -> Result<T, E>,
{
    crate::block_on(cached_result::<T, E, C, _>(
        spec,
        key,
        sharing,
        async move { body() },
    ))
}

/// The fill of one call (see [`fill::run`] for why this is not an `async fn`).
fn cached<O, T, C, F>(
    spec: &'static QuerySpec,
    key: Key,
    sharing: Option<Sharing<T>>,
    fut: F,
    cacheable: fn(&O) -> Option<&T>,
    wrap: fn(T) -> O,
) -> impl Future<Output = O>
where
    T: Serialize + DeserializeOwned,
    C: SelectCodec,
    F: Future<Output = O>,
{
    let cache = spec.resolve();
    let codec = cache.as_ref().map(|c| c.inner.codec).unwrap_or_default();
    let plan = cache.zip(key.logical).map(|(cache, logical)| {
        let ttl = spec.ttl(&cache);
        let freshness = spec.freshness(&cache);
        let layout = &cache.inner.layout;
        Plan {
            key: layout.entry(&logical),
            own: Own::built(
                layout.own(&logical, spec.own(&logical, &key.tags, freshness.keep(ttl))),
            ),
            ttl,
            name: spec.function,
            freshness,
            cache,
        }
    });
    let values = Values::<O, T, C>::new(codec, cacheable, wrap).sharing(sharing);
    fill::run(plan, values, fut)
}

/// Invalidates the one entry `key` names: its generation is replaced and the entry removed
/// in one step, so a fill that raced this call is never served.
#[doc(hidden)]
pub async fn invalidate_entry(spec: &'static QuerySpec, key: Key) -> Result<()> {
    let cache = require(spec.resolve(), spec.function)?;
    let Some(logical) = key.logical.as_deref() else {
        return Err(Error::new(
            ErrorKind::Codec,
            format!(
                "cannot invalidate an entry of `{}`: its key arguments could not be encoded",
                spec.function
            ),
        ));
    };
    let entry = cache.inner.layout.entry(logical);
    cache.bump(&generation::entry(logical), Some(entry)).await
}

/// Invalidates every entry of the function `spec` describes, in one write.
#[doc(hidden)]
pub async fn invalidate_query(spec: &'static QuerySpec) -> Result<()> {
    let cache = require(spec.resolve(), spec.function)?;
    cache.bump(&generation::query(spec.function), None).await
}

/// [`invalidate_entry`] for the companion of a sync function.
#[doc(hidden)]
pub fn invalidate_entry_blocking(spec: &'static QuerySpec, key: Key) -> Result<()> {
    crate::block_on(invalidate_entry(spec, key))
}

/// [`invalidate_query`] for the companion of a sync function.
#[doc(hidden)]
pub fn invalidate_query_blocking(spec: &'static QuerySpec) -> Result<()> {
    crate::block_on(invalidate_query(spec))
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
        lease: None,
        early: None,
        stale: None,
    };
    static TEMPLATED: QuerySpec = QuerySpec {
        function: "app::users::get",
        template: Some(&["user:", ":posts"]),
        version: 1,
        ttl: Some(5),
        tags: &[&["users"], &["user:", ""]],
        cache: None,
        lease: None,
        early: None,
        stale: None,
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
        let key = Key::new(&TEMPLATED, &(&42u32,), &(&42u32,));
        assert_eq!(key.as_str(), Some("1:user:42:posts"));
        assert_eq!(key.tags(), ["users", "user:42"]);
        assert_eq!(
            Key::new(&TEMPLATED, &(&"x:y",), &(&1u8,)).as_str(),
            Some("1:user:x%3Ay:posts")
        );
        assert_eq!(
            Key::new(&TEMPLATED, &(&1u8, &2u8), &(&1u8,)).as_str(),
            None,
            "arity mismatch"
        );
    }
}
