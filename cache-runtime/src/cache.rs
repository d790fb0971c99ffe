//! [`Cache`]: a configured backend plus the rules every cached call follows.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;

use crate::backend::memory::MemoryBackend;
use crate::backend::{AnyBackend, Backend, Lookup};
use crate::breaker::Breaker;
use crate::codec::CodecKind;
use crate::error::{Error, ErrorKind, Result};
use crate::flight::Flights;
use crate::stats::{Counters, Event, Stats};

/// Django's default timeout: five minutes.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// Bound on every backend operation unless configured otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);
/// Largest encoded value stored unless configured otherwise; larger ones are not cached.
pub const DEFAULT_MAX_VALUE_SIZE: usize = 4 * 1024 * 1024;
/// Encoded values larger than this are lz4-compressed when the `lz4` feature is on.
pub const DEFAULT_COMPRESS_ABOVE: usize = 16 * 1024;
/// Default size bound of the `memory://` backend.
pub const DEFAULT_MEMORY_BYTES: u64 = 64 * 1024 * 1024;

/// A cache: a backend (`memory://` or `redis://`) with a key prefix, a default TTL, an
/// operation timeout, a codec and its counters. Cloning is cheap (one `Arc`).
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
    pub(crate) prefix: String,
    /// `{prefix}:gen:`, where generation counters live.
    pub(crate) gen_prefix: String,
    pub(crate) default_ttl: Duration,
    pub(crate) max_value_size: usize,
    /// Payloads larger than this are lz4-compressed (feature `lz4`).
    pub(crate) compress_above: Option<usize>,
    pub(crate) codec: CodecKind,
    pub(crate) counters: Counters,
    pub(crate) flights: Flights,
    breaker: Breaker,
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

/// Settings for a [`Cache`], from [`Cache::builder`].
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::time::Duration;
/// use cache_runtime::Cache;
///
/// let cache = Cache::builder("memory://")
///     .prefix("shop")
///     .default_ttl(Duration::from_secs(60))
///     .timeout(Duration::from_millis(50))
///     .build()
///     .await?;
/// # Ok::<(), cache_runtime::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct CacheBuilder {
    url: String,
    prefix: String,
    default_ttl: Duration,
    timeout: Duration,
    max_value_size: usize,
    compress_above: Option<usize>,
    memory_max_bytes: u64,
    codec: CodecKind,
    breaker_threshold: u32,
    breaker_cool_down: Duration,
}

impl CacheBuilder {
    /// Key prefix, Django's `KEY_PREFIX` (default empty): keys are `{prefix}:{version}:...`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
    /// TTL of functions that set none (default 300 s).
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }
    /// Bound on each backend operation (default 200 ms); past it the call runs uncached.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// Largest encoded value that is stored (default 4 MiB).
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.max_value_size = bytes;
        self
    }
    /// Compress encoded values larger than `bytes` with lz4 (default 16 KiB; `None` turns
    /// compression off). Values are decompressed on read whatever this setting, so it can
    /// change between deploys.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let cache = cache_runtime::Cache::builder("memory://").compress_above(Some(4096)).build().await?;
    /// # Ok::<(), cache_runtime::Error>(())
    /// # }).unwrap();
    /// ```
    #[cfg(feature = "lz4")]
    pub fn compress_above(mut self, bytes: Option<usize>) -> Self {
        self.compress_above = bytes;
        self
    }
    /// Size bound of the `memory://` backend (default 64 MiB).
    pub fn memory_max_bytes(mut self, bytes: u64) -> Self {
        self.memory_max_bytes = bytes;
        self
    }
    /// Codec of functions that choose none (default MessagePack).
    pub fn codec(mut self, codec: CodecKind) -> Self {
        self.codec = codec;
        self
    }
    /// After `failures` consecutive backend errors, skip the backend for `cool_down`
    /// (default 5 failures, 1 s). `failures = 0` turns the breaker off.
    pub fn circuit_breaker(mut self, failures: u32, cool_down: Duration) -> Self {
        self.breaker_threshold = failures;
        self.breaker_cool_down = cool_down;
        self
    }

    /// Builds the cache. A malformed URL or setting is an error naming the problem; a
    /// Redis server that is down is not (the cache connects in the background and runs
    /// uncached until then).
    pub async fn build(self) -> Result<Cache> {
        if self.timeout.is_zero() {
            return Err(Error::config(
                "the operation timeout must be greater than zero",
            ));
        }
        if self.default_ttl.is_zero() {
            return Err(Error::config("the default TTL must be greater than zero"));
        }
        if self.prefix.contains(char::is_whitespace) {
            return Err(Error::config(format!(
                "the key prefix {:?} contains whitespace",
                self.prefix
            )));
        }
        let backend = match parse_url(&self.url)? {
            Location::Memory => AnyBackend::Memory(MemoryBackend::new(self.memory_max_bytes)),
            #[cfg(feature = "redis")]
            Location::Redis(client) => {
                let backend = crate::backend::redis::RedisBackend::new(client, self.timeout)?;
                AnyBackend::Redis(backend)
            }
        };
        let cache = Cache {
            inner: Arc::new(Inner {
                backend,
                gen_prefix: format!("{}:gen:", self.prefix),
                prefix: self.prefix,
                default_ttl: self.default_ttl,
                max_value_size: self.max_value_size,
                compress_above: self.compress_above,
                codec: self.codec,
                counters: Counters::default(),
                flights: Flights::default(),
                breaker: Breaker::new(self.breaker_threshold, self.breaker_cool_down),
            }),
        };
        cache.warm_up();
        Ok(cache)
    }
}

enum Location {
    Memory,
    #[cfg(feature = "redis")]
    Redis(redis::Client),
}

fn parse_url(raw: &str) -> Result<Location> {
    let url = url::Url::parse(raw).map_err(|e| {
        Error::config(format!(
            "invalid cache URL: {e}; expected `memory://` or `redis://[user:password@]host:port/db`"
        ))
    })?;
    match url.scheme() {
        "memory" => {
            if url.host_str().is_some_and(|h| !h.is_empty()) || !matches!(url.path(), "" | "/") {
                return Err(Error::config(
                    "a memory:// URL takes no host or path: use `memory://`",
                ));
            }
            Ok(Location::Memory)
        }
        "redis" | "rediss" => {
            if url.scheme() == "rediss" && !cfg!(feature = "tls") {
                return Err(Error::config(
                    "rediss:// needs TLS: enable the `tls` feature of cache-runtime",
                ));
            }
            if url.host_str().is_none_or(str::is_empty) {
                return Err(Error::config(
                    "the Redis URL has no host: use `redis://host:port/db`",
                ));
            }
            let db = url.path().trim_start_matches('/');
            if !db.is_empty() && db.parse::<u32>().is_err() {
                return Err(Error::config(format!(
                    "the Redis database in the URL path must be a number, got `{db}`"
                )));
            }
            redis_location(raw)
        }
        other => Err(Error::config(format!(
            "unsupported cache URL scheme `{other}`: use `memory://` or `redis://` (`rediss://` with the `tls` feature)"
        ))),
    }
}

#[cfg(feature = "redis")]
fn redis_location(raw: &str) -> Result<Location> {
    redis::Client::open(raw)
        .map(Location::Redis)
        .map_err(|e| Error::with_source(ErrorKind::Config, "invalid Redis URL", e))
}

#[cfg(not(feature = "redis"))]
fn redis_location(_raw: &str) -> Result<Location> {
    Err(Error::config(
        "redis:// needs the `redis` feature of cache-runtime",
    ))
}

impl Cache {
    /// Builds a cache from a URL with default settings: `memory://`, or
    /// `redis://[user:password@]host:port/db` (`rediss://` with the `tls` feature).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let cache = cache_runtime::Cache::from_url("memory://").await.unwrap();
    /// // A server that is down is fine: calls run uncached until it answers.
    /// let redis = cache_runtime::Cache::from_url("redis://127.0.0.1:1/0").await.unwrap();
    /// // A malformed URL is not.
    /// let err = cache_runtime::Cache::from_url("redis://127.0.0.1:6379/zero").await.unwrap_err();
    /// assert!(err.to_string().contains("must be a number"));
    /// # });
    /// ```
    pub async fn from_url(url: &str) -> Result<Cache> {
        Cache::builder(url).build().await
    }

    /// Starts a [`CacheBuilder`] for `url`.
    pub fn builder(url: &str) -> CacheBuilder {
        CacheBuilder {
            url: url.to_owned(),
            prefix: String::new(),
            default_ttl: DEFAULT_TTL,
            timeout: DEFAULT_TIMEOUT,
            max_value_size: DEFAULT_MAX_VALUE_SIZE,
            compress_above: cfg!(feature = "lz4").then_some(DEFAULT_COMPRESS_ABOVE),
            memory_max_bytes: DEFAULT_MEMORY_BYTES,
            codec: CodecKind::default(),
            breaker_threshold: 5,
            breaker_cool_down: Duration::from_secs(1),
        }
    }

    /// Counters since the cache was built.
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    /// Largest payload a read decompresses: a compressed value claiming more is a miss.
    pub(crate) fn decompress_limit(&self) -> usize {
        self.inner.max_value_size.saturating_mul(64)
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The backend's name: `"memory"` or `"redis"`.
    pub fn backend_name(&self) -> &'static str {
        self.inner.backend.name()
    }

    /// Starts connecting in the background so the first request finds a warm connection.
    fn warm_up(&self) {
        #[cfg(feature = "redis")]
        if matches!(self.inner.backend, AnyBackend::Redis(_))
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            let cache = self.clone();
            handle.spawn(async move {
                if let AnyBackend::Redis(redis) = &cache.inner.backend
                    && let Err(e) = redis.ping().await
                {
                    tracing::warn!(error = %e, "cache: Redis is not answering yet; running uncached until it does");
                }
            });
        }
    }

    /// The stored key for a logical key (`{version}:{name}:{args}`).
    pub(crate) fn full_key(&self, logical: &str) -> String {
        let mut key = String::with_capacity(self.inner.prefix.len() + 1 + logical.len());
        key.push_str(&self.inner.prefix);
        key.push(':');
        key.push_str(logical);
        key
    }

    /// Runs one backend operation behind the circuit breaker: a failure is logged (with the
    /// key, when the operation has one), counted and reported as `None`.
    pub(crate) async fn guarded<T>(
        &self,
        name: &'static str,
        op: &'static str,
        key: Option<&str>,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Option<T> {
        if !self.inner.breaker.allow() {
            self.inner.counters.count(Event::Skipped, name);
            return None;
        }
        match fut.await {
            Ok(value) => {
                self.inner.breaker.success();
                Some(value)
            }
            Err(e) => {
                self.inner.breaker.failure();
                self.inner.counters.count(Event::BackendError, name);
                tracing::warn!(error = %e, op, key, name, "cache: backend failed; running uncached");
                None
            }
        }
    }

    /// Reads a value and checks its generations; a backend failure is a miss. With
    /// `expected` dependency names, a cheaper read that assumes them (see
    /// [`Backend::get_fresh_expecting`]).
    pub(crate) async fn read(
        &self,
        key: &str,
        name: &'static str,
        expected: Option<&[String]>,
    ) -> Lookup {
        let backend = &self.inner.backend;
        let prefix = self.gen_prefix();
        let lookup = match expected {
            Some(expected) => {
                let read = backend.get_fresh_expecting(key, prefix, expected);
                self.guarded(name, "read", Some(key), read).await
            }
            None => {
                self.guarded(name, "read", Some(key), backend.get_fresh(key, prefix))
                    .await
            }
        };
        match lookup {
            Some(Lookup::Stale) => {
                self.inner.counters.count(Event::Stale, name);
                tracing::debug!(key, name, "cache: stale value (invalidated)");
                Lookup::Stale
            }
            Some(lookup) => lookup,
            None => Lookup::Missing,
        }
    }

    /// Writes raw bytes; a failure is logged and counted, never returned.
    pub(crate) async fn write(&self, key: &str, value: Bytes, ttl: Duration, name: &'static str) {
        if value.len() > self.inner.max_value_size {
            tracing::debug!(
                key,
                name,
                size = value.len(),
                "cache: value over the size limit, not stored"
            );
            return;
        }
        let len = value.len();
        let set = self.inner.backend.set(key, value, ttl);
        if self.guarded(name, "write", Some(key), set).await.is_some() {
            self.inner.counters.count(Event::Fill, name);
            self.inner.counters.wrote_bytes(len);
        }
    }

    /// Reads a value stored with [`Cache::set`] under `{prefix}:1:{key}` (Django's
    /// `cache.get`). Unlike cached functions, backend errors are returned.
    pub async fn get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let full = self.full_key(&format!("1:{key}"));
        let bytes = match self
            .inner
            .backend
            .get_fresh(&full, self.gen_prefix())
            .await?
        {
            Lookup::Found(bytes) => bytes,
            Lookup::Missing | Lookup::Stale => {
                self.inner.counters.count(Event::Miss, "get");
                return Ok(None);
            }
        };
        match crate::query::decode::<T, crate::codec::CacheDefault>(self, &bytes) {
            Some((_, v)) => {
                self.inner.counters.count(Event::Hit, "get");
                Ok(Some(v))
            }
            None => {
                self.inner.counters.count(Event::DecodeError, "get");
                Ok(None)
            }
        }
    }

    /// Stores `value` under `{prefix}:1:{key}` for `ttl` (the default TTL when `None`).
    pub async fn set<T: serde::Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let full = self.full_key(&format!("1:{key}"));
        let all = [(
            format!("{}{}", self.gen_prefix(), crate::invalidate::ALL),
            None,
        )];
        let generation = self
            .inner
            .backend
            .generations(&all, &[rand::random()])
            .await?;
        let deps = vec![(crate::invalidate::ALL.to_owned(), generation[0])];
        let bytes = crate::query::encode::<T, crate::codec::CacheDefault>(
            self,
            value,
            Duration::ZERO,
            deps,
        )?;
        if bytes.len() > self.inner.max_value_size {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "value of {} bytes exceeds the maximum of {}",
                    bytes.len(),
                    self.inner.max_value_size
                ),
            ));
        }
        self.inner
            .backend
            .set(&full, bytes, ttl.unwrap_or(self.inner.default_ttl))
            .await
    }

    /// Deletes every entry under this cache's prefix (`SCAN` + `UNLINK` in batches on Redis,
    /// never `KEYS` or `FLUSHDB`; other prefixes and other programs' keys are untouched).
    /// Returns how many keys were removed: values and their generation counters.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let cache = cache_runtime::Cache::builder("memory://").prefix("app").build().await?;
    /// cache.set("a", &1, None).await?;
    /// cache.set("b", &2, None).await?;
    /// assert_eq!(cache.clear().await?, 3); // two values and the `all` generation
    /// assert_eq!(cache.get::<i32>("a").await?, None);
    /// # Ok::<(), cache_runtime::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn clear(&self) -> Result<u64> {
        self.inner.backend.delete_prefix(&self.full_key("")).await
    }

    /// Deletes `{prefix}:1:{key}`; true when it existed.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        self.inner
            .backend
            .delete(&self.full_key(&format!("1:{key}")))
            .await
    }
}

static INSTALLED: RwLock<Option<Cache>> = RwLock::new(None);

tokio::task_local! {
    static SCOPED: Cache;
}

/// Sets the process-wide default cache used by `#[cached_query]` and `#[cached_view]`
/// (Django's `"default"` cache). Installing again replaces it.
///
/// Until a cache is installed, cached functions run uncached (and say so once in the log).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let cache = cache_runtime::Cache::from_url("memory://").await.unwrap();
/// cache_runtime::install(cache);
/// assert!(cache_runtime::installed().is_some());
/// # });
/// ```
pub fn install(cache: Cache) {
    *INSTALLED.write().unwrap_or_else(|e| e.into_inner()) = Some(cache);
}

/// The installed default cache, if any.
pub fn installed() -> Option<Cache> {
    INSTALLED.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Runs `fut` with `cache` as the default for every cached function it calls, on this
/// task only: parallel tests each get their own cache. Tasks spawned inside do not
/// inherit it.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let cache = cache_runtime::Cache::from_url("memory://").await.unwrap();
/// let prefix = cache_runtime::scope(cache, async {
///     cache_runtime::current().unwrap().prefix().to_string()
/// }).await;
/// assert_eq!(prefix, "");
/// # });
/// ```
pub async fn scope<F: std::future::Future>(cache: Cache, fut: F) -> F::Output {
    SCOPED.scope(cache, fut).await
}

/// The cache a cached function would use here: the task's [`scope`], else the
/// [`install`]ed one.
pub fn current() -> Option<Cache> {
    SCOPED.try_with(Cache::clone).ok().or_else(installed)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn error_of(url: &str) -> String {
        let err = Cache::from_url(url).await.expect_err(url);
        assert!(err.is_config(), "{url}: {err:?}");
        err.to_string()
    }

    #[tokio::test]
    async fn malformed_urls_name_the_problem() {
        assert!(
            error_of("localhost:6379")
                .await
                .contains("unsupported cache URL scheme `localhost`")
        );
        assert!(error_of("not a url").await.contains("invalid cache URL"));
        assert!(error_of("memcached://h:1").await.contains("`memcached`"));
        assert!(
            error_of("redis://h:6379/zero")
                .await
                .contains("must be a number, got `zero`")
        );
        assert!(error_of("redis://h:99999/0").await.contains("invalid port"));
        assert!(error_of("redis:///0").await.contains("no host"));
        assert!(
            error_of("memory://somewhere")
                .await
                .contains("takes no host")
        );
        #[cfg(not(feature = "tls"))]
        assert!(
            error_of("rediss://h:6380/0")
                .await
                .contains("`tls` feature")
        );
    }

    #[tokio::test]
    async fn passwords_never_appear_in_errors() {
        let message = error_of("redis://user:s3cret@h:6379/zero").await;
        assert!(!message.contains("s3cret"), "{message}");
    }

    #[tokio::test]
    async fn well_formed_urls_build_even_without_a_server() {
        for url in [
            "memory://",
            "redis://127.0.0.1:1",
            "redis://user:pw@127.0.0.1:1/3",
        ] {
            let cache = Cache::from_url(url).await.expect(url);
            assert_eq!(cache.prefix(), "");
        }
    }

    #[tokio::test]
    async fn bad_settings_are_errors() {
        let zero = Cache::builder("memory://")
            .timeout(Duration::ZERO)
            .build()
            .await;
        assert!(zero.unwrap_err().to_string().contains("timeout"));
        let ttl = Cache::builder("memory://")
            .default_ttl(Duration::ZERO)
            .build()
            .await;
        assert!(ttl.unwrap_err().to_string().contains("TTL"));
        let prefix = Cache::builder("memory://").prefix("my app").build().await;
        assert!(prefix.unwrap_err().to_string().contains("whitespace"));
    }
}
