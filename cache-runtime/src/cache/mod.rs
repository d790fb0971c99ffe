//! [`Cache`]: a configured backend, and the guarded access to it that every cached call
//! goes through (circuit breaker, counting, logging).
//!
//! The cache is built in [`builder`], made the process default in [`default`], and offers
//! Django-style `get`/`set`/`delete`/`clear` in [`ops`].

pub(crate) mod builder;
pub(crate) mod default;
mod ops;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::backend::{AnyBackend, Backend};
use crate::breaker::Breaker;
use crate::codec::CodecKind;
use crate::envelope::Compression;
use crate::error::{Error, ErrorKind, Result};
use crate::flight::Flights;
use crate::key::Layout;
use crate::stats::{Counters, Event, Stats};

/// A cache: a backend (`memory://` or `redis://`) with a key prefix, a default TTL, an
/// operation timeout, a codec and its counters. Cloning is cheap (one `Arc`).
///
/// A `Cache` does not belong to the tokio runtime that built it: build it once (in a
/// set-up runtime, a `static`, the first of many `#[tokio::test]`s) and use it from any
/// runtime for as long as the process lives.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use cache_runtime::Cache;
///
/// let cache = Cache::from_url("memory://").await?;
/// cache.set("greeting", &"hello", None).await?;
/// assert_eq!(cache.get::<String>("greeting").await?, Some("hello".to_string()));
/// assert_eq!(cache.stats().hits, 1);
/// # Ok::<(), cache_runtime::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Cache {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) backend: AnyBackend,
    /// The cache's URL without its password, for messages.
    pub(crate) location: String,
    pub(crate) prefix: String,
    pub(crate) layout: Layout,
    pub(crate) default_ttl: Duration,
    pub(crate) max_value_size: usize,
    /// Payloads larger than this are lz4-compressed (feature `lz4`).
    pub(crate) compress_above: Option<usize>,
    pub(crate) codec: CodecKind,
    pub(crate) counters: Counters,
    pub(crate) flights: Flights,
    /// Per stored key, the generation names its value recorded beyond its own (a page's
    /// queries): read in the same `MGET` as the value, so a hit stays one round trip.
    pub(crate) hints: moka::sync::Cache<String, Arc<[String]>>,
    pub(crate) breaker: Breaker,
    /// The in-process tier in front of Redis, when configured.
    pub(crate) l1: Option<Arc<crate::l1::L1>>,
    /// Copies of values read from Redis, checked on every hit: on a single Redis, unless
    /// turned off ([`CacheBuilder::local_copies`](crate::CacheBuilder::local_copies)).
    pub(crate) copies: Option<crate::copies::Copies>,
    /// On a cluster, one breaker per bucket of the key layout (see
    /// [`Layout`](crate::key::Layout)): a dead primary opens the breakers of its buckets
    /// only, and the others keep being served. Empty elsewhere.
    pub(crate) bucket_breakers: Box<[Breaker]>,
    /// Whether misses take leases unless a function says otherwise.
    pub(crate) leases: bool,
    pub(crate) lease_ttl: Duration,
    /// Whether views believe forwarded headers (key on them) or bypass requests carrying
    /// them: [`CacheBuilder::trust_forwarded`](crate::CacheBuilder::trust_forwarded).
    #[cfg_attr(not(feature = "view"), allow(dead_code))]
    pub(crate) trust_forwarded: bool,
    /// Recent history for dashboards, kept once one is mounted (see [`crate::events`]).
    pub(crate) events: std::sync::OnceLock<Arc<crate::events::Recorder>>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("backend", &self.inner.backend.name())
            .field("prefix", &self.inner.prefix)
            .field("default_ttl", &self.inner.default_ttl)
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// Counters since the cache was built.
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The backend's name: `"memory"`, `"redis"` or `"cluster"`.
    pub fn backend_name(&self) -> &'static str {
        self.inner.backend.name()
    }

    /// How stored payloads are compressed, and the most a read decompresses (the largest
    /// value the cache stores: nothing larger was ever written).
    pub(crate) fn compression(&self) -> Compression {
        Compression {
            above: self.inner.compress_above,
            limit: self.inner.max_value_size,
        }
    }

    /// Runs one backend operation behind the circuit breaker: a failure is logged (with the
    /// key, when the operation has one) and counted; while the breaker is open the
    /// operation is not sent ([`ErrorKind::Unavailable`]). On a cluster, the breaker is the
    /// one of `key`'s bucket.
    pub(crate) async fn guarded<T>(
        &self,
        name: &'static str,
        op: &'static str,
        key: Option<&str>,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let breaker = key
            .and_then(|key| self.inner.layout.bucket_of(key))
            .and_then(|bucket| self.inner.bucket_breakers.get(bucket))
            .unwrap_or(&self.inner.breaker);
        if !breaker.allow() {
            self.count(Event::Skipped, name);
            return Err(Error::new(
                ErrorKind::Unavailable,
                "the cache backend failed repeatedly; skipped during the circuit breaker's cool-down",
            ));
        }
        let started = std::time::Instant::now();
        let result = fut.await;
        self.observed_backend(op, name, started.elapsed());
        match &result {
            Ok(_) => breaker.success(),
            Err(e) => {
                let opened = breaker.failure();
                self.count(Event::BackendError, name);
                tracing::warn!(error = %e, op, key, name, "cache: backend failed; running uncached");
                if opened {
                    self.observed_breaker_opened(op, name);
                }
            }
        }
        result
    }

    /// The values of `keys`, read at one instant.
    pub(crate) async fn mget(
        &self,
        keys: Vec<String>,
        name: &'static str,
        key: &str,
    ) -> Result<Vec<Option<Bytes>>> {
        self.guarded(name, "read", Some(key), self.inner.backend.mget(keys))
            .await
    }

    /// Writes a value; a failure is logged and counted, and reported as `false`.
    pub(crate) async fn write(
        &self,
        key: String,
        value: Bytes,
        ttl: Duration,
        name: &'static str,
    ) -> bool {
        let len = value.len();
        let log_key = key.clone();
        let set = self.inner.backend.set(key, value, Some(ttl));
        let stored = self
            .guarded(name, "write", Some(&log_key), set)
            .await
            .is_ok();
        if stored {
            self.count(Event::Fill, name);
            self.observed_write(name, &log_key, len);
        }
        stored
    }

    /// Starts connecting in the background so the first request finds a warm connection,
    /// from the runtime building the cache (where the app's requests will most likely run).
    pub(crate) fn warm_up(&self) {
        #[cfg(feature = "redis")]
        if self.inner.backend.shared()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let cache = self.clone();
            runtime.spawn(async move {
                if let Err(e) = cache.inner.backend.ping().await {
                    tracing::warn!(error = %e, "cache: Redis is not answering yet; running uncached until it does");
                }
            });
        }
    }
}
