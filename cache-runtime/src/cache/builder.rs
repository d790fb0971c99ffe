//! [`CacheBuilder`]: settings, URL parsing, and building a [`Cache`].

use std::sync::Arc;
use std::time::Duration;

use super::{Cache, Inner};
use crate::backend::AnyBackend;
use crate::backend::memory::MemoryBackend;
use crate::breaker::Breaker;
use crate::codec::CodecKind;
use crate::error::{Error, Result};
use crate::flight::Flights;
use crate::key::Layout;
use crate::stats::Counters;

/// Django's default timeout: five minutes.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// Bound on every backend operation unless configured otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);
/// Largest encoded value stored unless configured otherwise; larger ones are not cached.
pub const DEFAULT_MAX_VALUE_SIZE: usize = 4 * 1024 * 1024;
/// Encoded values larger than this are lz4-compressed when the `lz4` feature is on.
pub const DEFAULT_COMPRESS_ABOVE: usize = 16 * 1024;
/// How long an instance trusts its L1 without hearing its heartbeat, unless configured.
pub const DEFAULT_L1_TRUST: Duration = Duration::from_secs(2);
/// How long a lease holds unless configured otherwise.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(5);
/// Bytes of values a `redis://` or `memory://` cache keeps copies of in the process unless configured
/// otherwise ([`CacheBuilder::local_copies`]).
pub const DEFAULT_LOCAL_COPIES_BYTES: u64 = 32 * 1024 * 1024;
/// Default size bound of the `memory://` backend.
pub const DEFAULT_MEMORY_BYTES: u64 = 64 * 1024 * 1024;
/// Buckets of a Redis Cluster's key layout unless configured otherwise
/// ([`CacheBuilder::cluster_buckets`]).
pub const DEFAULT_CLUSTER_BUCKETS: usize = 64;
/// Bytes of dependency names remembered per cache to keep page hits one round trip.
const HINT_BYTES: u64 = 4 * 1024 * 1024;

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
    leases: bool,
    lease_ttl: Duration,
    trust_forwarded: bool,
    wait_for_replicas: Option<(u32, Duration)>,
    l1: Option<(u64, Duration)>,
    local_copies: u64,
    cluster_buckets: usize,
}

impl CacheBuilder {
    /// Key prefix, Django's `KEY_PREFIX` (default empty): keys are `{prefix}:{version}:...`.
    ///
    /// It may not contain `:` (nor whitespace): every key of the cache starts with
    /// `{prefix}:`, so with `:` allowed the keys of a cache prefixed `app:x` would also
    /// start with `app:`, and `clear()` on the cache prefixed `app` would delete them.
    /// [`build`](Self::build) refuses such a prefix; use `-` or `.` instead.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let err = cache_runtime::Cache::builder("memory://").prefix("app:x").build().await.unwrap_err();
    /// assert!(err.to_string().contains("`:`"));
    /// assert!(cache_runtime::Cache::builder("memory://").prefix("app-x").build().await.is_ok());
    /// # });
    /// ```
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
    /// Whether a miss takes a lease, so that one process in the fleet runs the body while
    /// the others wait for its value (default true; on `memory://`, which no other process
    /// shares, a lease is never taken). Per function: `#[cached_query(lease = false)]`.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let cache = cache_runtime::Cache::builder("memory://").leases(false).build().await?;
    /// # Ok::<(), cache_runtime::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn leases(mut self, on: bool) -> Self {
        self.leases = on;
        self
    }
    /// How long a lease holds (default 5 s): the longest another process waits for this
    /// one's fill before running the body itself, as when the holder died. Make it longer
    /// than the slowest body.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }
    /// After `failures` consecutive backend errors, skip the backend for `cool_down`
    /// (default 5 failures, 1 s). `failures = 0` turns the breaker off.
    pub fn circuit_breaker(mut self, failures: u32, cool_down: Duration) -> Self {
        self.breaker_threshold = failures;
        self.breaker_cool_down = cool_down;
        self
    }

    /// Whether cached views and `CacheLayer`s believe the headers a proxy uses to tell the
    /// app the URL the client used (`Forwarded` `host`/`proto`, `X-Forwarded-Host`,
    /// `-Proto`, `-Port`, `-Prefix`; default `false`), like Django's `USE_X_FORWARDED_HOST`.
    ///
    /// - `false`: a request carrying any of them runs uncached (neither read nor written),
    ///   since any client can send them: one forged `X-Forwarded-Host: evil.test` must not
    ///   store a page whose links point at evil.test for everyone.
    /// - `true`: they are part of every response's key (of `Forwarded`, only `host` and
    ///   `proto`). Turn it on only when a proxy you run sets or strips them on every
    ///   request; each value a client may still choose is its own entry.
    ///
    /// It is a setting of the cache, not of one view: it describes the deployment (is
    /// there a proxy in front), which every view and layer on the cache shares. See
    /// `docs/SECURITY.md`.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let cache = cache_runtime::Cache::builder("memory://").trust_forwarded(true).build().await?;
    /// # Ok::<(), cache_runtime::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn trust_forwarded(mut self, trust: bool) -> Self {
        self.trust_forwarded = trust;
        self
    }

    /// Keeps up to `max_bytes` of values read from Redis in this process too (an L1, `moka`,
    /// weighed in bytes, a query's value with room for its decoded form as in
    /// [`local_copies`](Self::local_copies)), and serves them without a round trip while this
    /// instance knows every invalidation since: invalidations are published to every instance
    /// and wait for their acknowledgements, so after `invalidate_*` returns no instance serves
    /// the old value (see `docs/SCALING.md`). Needs a `redis://` URL.
    ///
    /// ```no_run
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let cache = cache_runtime::Cache::builder("redis://127.0.0.1:6379/0")
    ///     .l1(64 * 1024 * 1024)
    ///     .build()
    ///     .await?;
    /// # Ok::<(), cache_runtime::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn l1(mut self, max_bytes: u64) -> Self {
        let trust = self.l1.map_or(DEFAULT_L1_TRUST, |(_, trust)| trust);
        self.l1 = Some((max_bytes, trust));
        self
    }

    /// Keeps copies of up to `max_bytes` of values read from a single Redis or `memory://`
    /// (or filled into them) in this process (default [`DEFAULT_LOCAL_COPIES_BYTES`],
    /// 32 MiB; 0 turns them off).
    ///
    /// A hit on a value this process holds a copy of does not read the value again: in the
    /// same single round trip, it reads the value's 44-byte header (`GETRANGE`, which names
    /// one fill) and its generations (`MGET`), and serves the copy while the header is the
    /// copy's and the generations are current. So a hit is still checked against Redis, as
    /// every hit is (never stale after an invalidation, an overwrite or a delete, with no
    /// messages between instances), but a 40 KB page no longer crosses the network, nor
    /// costs Redis the CPU to send it. Unlike [`l1`](Self::l1), which skips the round trip,
    /// this needs no trust period and no subscription.
    ///
    /// A `#[cached_query]` value of a `Clone` type is decoded once per copy; every hit on the
    /// copy hands out a clone of it (cheaper than decoding: for 700 rows, 74 µs of CPU a hit
    /// against 103 µs, `hit_concurrent` with an L1). A copy of a query's value is weighed as
    /// its bytes plus three times its payload, room for that decoded form (700 rows of four
    /// fields: 22.8 KB stored, about 90 KB decoded).
    ///
    /// On `memory://`, a copy is the decoded form of a stored value, sharing its bytes: a
    /// hit serves it without reading the value or its generations again while nothing was
    /// written to the store since the copy was last found current (the store counts its
    /// writes), and checks it as above otherwise. A copy keeps its bytes alive after the
    /// store evicted them, so the process may hold up to `max_bytes` beyond the store's own
    /// bound. Ignored on a cluster.
    ///
    /// ```no_run
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// // A process short of memory: read every hit's value from Redis.
    /// let cache = cache_runtime::Cache::builder("redis://127.0.0.1:6379/0")
    ///     .local_copies(0)
    ///     .build()
    ///     .await?;
    /// # Ok::<(), cache_runtime::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn local_copies(mut self, max_bytes: u64) -> Self {
        self.local_copies = max_bytes;
        self
    }

    /// How long an instance may serve its L1 without hearing its own heartbeat back (default
    /// 2 s): the longest an invalidation waits for an instance cut off from Redis (one that
    /// answers waits only for its acknowledgement, about a round trip). Only with [`l1`](Self::l1).
    pub fn l1_trust(mut self, trust: Duration) -> Self {
        if let Some((bytes, _)) = self.l1 {
            self.l1 = Some((bytes, trust));
        } else {
            self.l1 = Some((0, trust));
        }
        self
    }

    /// Makes every invalidation wait until `replicas` replicas have acknowledged it (Redis
    /// `WAIT`), for at most `timeout` on top of the operation timeout; fewer is an error
    /// from the invalidation (retry it, or fail the write that needed it). Off by default.
    ///
    /// Without it, an invalidation that returned may exist on the primary alone: if the
    /// primary dies and a replica that missed it is promoted (Sentinel, Cluster, a managed
    /// failover), the old generation comes back with the old entries, which are served
    /// again. With it, an invalidation that returned `Ok` is on `replicas` replicas, so a
    /// failover to one of them keeps it (Sentinel and Cluster promote the most up-to-date
    /// replica). `WAIT` does not make a write survive a restart of one server: see
    /// "Durability" in `docs/SECURITY.md`. Needs `+wait` under an ACL user. Only for
    /// `redis://` URLs: [`build`](Self::build) refuses it for `memory://`.
    ///
    /// ```no_run
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::time::Duration;
    /// let cache = cache_runtime::Cache::builder("redis://primary:6379/0")
    ///     .wait_for_replicas(1, Duration::from_millis(500))
    ///     .build()
    ///     .await?;
    /// # Ok::<(), cache_runtime::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn wait_for_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.wait_for_replicas = (replicas > 0).then_some((replicas, timeout));
        self
    }

    /// On a Redis Cluster (`redis+cluster://`), how many buckets the keys are spread over
    /// (default 64; a power of two up to 16,384; ignored elsewhere).
    ///
    /// Each value belongs to one bucket, chosen by its key; each bucket is one hash slot
    /// (slots evenly spaced, so buckets spread over the primaries as their slots do); and
    /// each generation counter has one copy per bucket, which only that bucket's values read.
    /// So a hit reads its value and every counter it checks on one node in one `MGET`, and
    /// no counter (`all`, a hot query's or tag's) is read by every hit of the cluster. The
    /// price is paid by invalidations of shared counters (a query, a tag, a view, a path,
    /// everything): each replaces the copy in every bucket (one write per bucket, sent to
    /// all primaries at once). More buckets spread data and load more finely over large
    /// clusters (and move in smaller pieces when resharding); fewer make those
    /// invalidations cheaper. Changing it moves every key: the values stored before are
    /// misses. See `docs/SCALING.md`.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let builder = cache_runtime::Cache::builder("redis+cluster://127.0.0.1:7000,127.0.0.1:7001");
    /// assert!(builder.clone().cluster_buckets(48).build().await.is_err(), "not a power of two");
    /// let cache = builder.cluster_buckets(256).build().await?;
    /// # Ok::<(), cache_runtime::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn cluster_buckets(mut self, buckets: usize) -> Self {
        self.cluster_buckets = buckets;
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
        if self.lease_ttl.is_zero() {
            return Err(Error::config("the lease TTL must be greater than zero"));
        }
        if self.prefix.contains(char::is_whitespace) {
            return Err(Error::config(format!(
                "the key prefix {:?} contains whitespace",
                self.prefix
            )));
        }
        if self.prefix.contains(':') {
            return Err(Error::config(format!(
                "the key prefix {:?} contains `:`, which separates the prefix from the rest of \
                 a key: the cache prefixed with what comes before it would share (and clear) \
                 its keys. Use `-` or `.` instead",
                self.prefix
            )));
        }
        #[cfg_attr(not(feature = "cluster"), allow(unused_mut))]
        let mut layout = Layout::new(&self.prefix);
        let backend = match parse_url(&self.url)? {
            Location::Memory if self.l1.is_some() => {
                return Err(Error::config(
                    "l1 needs a redis:// URL: a memory:// cache is in this process already",
                ));
            }
            Location::Memory if self.wait_for_replicas.is_some() => {
                return Err(Error::config(
                    "wait_for_replicas needs a redis:// URL: memory:// has no replicas",
                ));
            }
            Location::Memory => AnyBackend::Memory(MemoryBackend::new(self.memory_max_bytes)),
            #[cfg(feature = "redis")]
            Location::Redis(client) => {
                let backend = crate::backend::redis::RedisBackend::new(
                    client,
                    self.timeout,
                    self.wait_for_replicas,
                )?;
                AnyBackend::Redis(Box::new(backend))
            }
            #[cfg(feature = "cluster")]
            Location::Cluster(seeds) => {
                let buckets = self.cluster_buckets;
                if !buckets.is_power_of_two() || buckets > crate::key::SLOTS {
                    return Err(Error::config(format!(
                        "cluster_buckets must be a power of two from 1 to 16384, got {buckets}"
                    )));
                }
                if self.prefix.contains(['{', '}']) {
                    return Err(Error::config(format!(
                        "the key prefix {:?} contains `{{` or `}}`: on a Redis Cluster it would \
                         be the hash tag of every key, putting the whole cache on one slot",
                        self.prefix
                    )));
                }
                layout = Layout::cluster(&self.prefix, buckets);
                let backend = crate::backend::cluster::ClusterBackend::new(
                    seeds,
                    self.timeout,
                    self.wait_for_replicas,
                )?;
                AnyBackend::Cluster(Box::new(backend))
            }
        };
        let l1 = match (&backend, self.l1) {
            (_, Some((0, _))) => {
                return Err(Error::config(
                    "l1_trust needs l1(max_bytes) too: set the L1's size",
                ));
            }
            (_, Some((_, trust))) if trust.is_zero() => {
                return Err(Error::config("the L1 trust must be greater than zero"));
            }
            #[cfg(feature = "redis")]
            (AnyBackend::Redis(redis), Some((bytes, trust))) => {
                let l1 = Arc::new(crate::l1::L1::new(
                    bytes,
                    trust,
                    crate::l1::Names::new(&layout.l1_root()),
                ));
                crate::l1::start(&l1, redis.client(), self.timeout).map_err(|e| {
                    Error::with_source(crate::ErrorKind::Config, "cannot set up the L1", e)
                })?;
                Some(l1)
            }
            #[cfg(feature = "cluster")]
            (AnyBackend::Cluster(_), Some(_)) => {
                return Err(Error::config(
                    "l1 needs a single Redis (redis://) for now: on a cluster, pub/sub and \
                     Redis's clock are per node",
                ));
            }
            _ => None,
        };
        let copies = match &backend {
            AnyBackend::Memory(_) if self.local_copies > 0 => {
                Some(crate::copies::Copies::new(self.local_copies))
            }
            #[cfg(feature = "redis")]
            AnyBackend::Redis(_) if self.local_copies > 0 => {
                Some(crate::copies::Copies::new(self.local_copies))
            }
            _ => None,
        };
        let hints = moka::sync::Cache::builder()
            .max_capacity(HINT_BYTES)
            .weigher(|key: &String, names: &Arc<[String]>| {
                let names: usize = names.iter().map(|n| n.len() + 24).sum();
                u32::try_from(key.len() + names + 64).unwrap_or(u32::MAX)
            })
            .build();
        let cache = Cache {
            inner: Arc::new(Inner {
                backend,
                location: without_password(&self.url),
                layout: layout.clone(),
                l1,
                copies,
                prefix: self.prefix,
                hints,
                default_ttl: self.default_ttl,
                max_value_size: self.max_value_size,
                compress_above: self.compress_above,
                codec: self.codec,
                counters: Counters::default(),
                flights: Flights::default(),
                breaker: Breaker::new(self.breaker_threshold, self.breaker_cool_down),
                bucket_breakers: (0..layout.buckets())
                    .map(|_| Breaker::new(self.breaker_threshold, self.breaker_cool_down))
                    .collect(),
                leases: self.leases,
                lease_ttl: self.lease_ttl,
                trust_forwarded: self.trust_forwarded,
                events: std::sync::OnceLock::new(),
            }),
        };
        cache.warm_up();
        Ok(cache)
    }
}

/// `url` with its password, if any, replaced by `***`.
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        // `redis+cluster://user:password@h1:1,h2:2`, which `Url` does not parse.
        Err(_) => match url.split_once("://") {
            Some((scheme, rest)) if rest.contains('@') => {
                let (userinfo, hosts) = rest.rsplit_once('@').unwrap_or(("", rest));
                match userinfo.split_once(':') {
                    Some((user, _)) => format!("{scheme}://{user}:***@{hosts}"),
                    None => url.to_owned(),
                }
            }
            _ => url.to_owned(),
        },
    }
}

enum Location {
    Memory,
    #[cfg(feature = "redis")]
    Redis(redis::Client),
    /// The seed nodes of a cluster, as `redis://` URLs.
    #[cfg(feature = "cluster")]
    Cluster(Vec<String>),
}

fn parse_url(raw: &str) -> Result<Location> {
    if raw.starts_with("redis+cluster://") || raw.starts_with("rediss+cluster://") {
        return cluster_location(raw);
    }
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
            "unsupported cache URL scheme `{other}`: use `memory://`, `redis://` (`rediss://` with the `tls` feature) or `redis+cluster://`"
        ))),
    }
}

#[cfg(feature = "cluster")]
fn cluster_location(raw: &str) -> Result<Location> {
    let seeds = crate::backend::cluster::seed_urls(raw).expect("a cluster URL")?;
    Ok(Location::Cluster(seeds))
}

#[cfg(not(feature = "cluster"))]
fn cluster_location(_raw: &str) -> Result<Location> {
    Err(Error::config(
        "redis+cluster:// needs the `cluster` feature of cache-runtime",
    ))
}

#[cfg(feature = "redis")]
fn redis_location(raw: &str) -> Result<Location> {
    redis::Client::open(raw)
        .map(Location::Redis)
        .map_err(|e| Error::with_source(crate::ErrorKind::Config, "invalid Redis URL", e))
}

#[cfg(not(feature = "redis"))]
fn redis_location(_raw: &str) -> Result<Location> {
    Err(Error::config(
        "redis:// needs the `redis` feature of cache-runtime",
    ))
}

impl Cache {
    /// Builds a cache from a URL with default settings: `memory://`,
    /// `redis://[user:password@]host:port/db` (`rediss://` with the `tls` feature), or a Redis
    /// Cluster's seed nodes, `redis+cluster://[user:password@]host:port[,host:port...]`
    /// (feature `cluster`, on by default; see [`Cache::cluster_builder`]).
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
            leases: true,
            lease_ttl: DEFAULT_LEASE_TTL,
            trust_forwarded: false,
            wait_for_replicas: None,
            l1: None,
            local_copies: DEFAULT_LOCAL_COPIES_BYTES,
            cluster_buckets: DEFAULT_CLUSTER_BUCKETS,
        }
    }

    /// Starts a [`CacheBuilder`] for the Redis Cluster reached through `seeds` (`host:port`
    /// of one or more of its nodes; the others are found from them): the same as
    /// `Cache::builder("redis+cluster://host:port,host:port")`.
    ///
    /// ```no_run
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let cache = cache_runtime::Cache::cluster_builder(["10.0.0.1:6379", "10.0.0.2:6379"])
    ///     .prefix("app")
    ///     .build()
    ///     .await?;
    /// # Ok::<(), cache_runtime::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn cluster_builder<S: AsRef<str>>(seeds: impl IntoIterator<Item = S>) -> CacheBuilder {
        let seeds: Vec<String> = seeds.into_iter().map(|s| s.as_ref().to_owned()).collect();
        Cache::builder(&format!("redis+cluster://{}", seeds.join(",")))
    }
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

    #[test]
    fn locations_hide_passwords() {
        assert_eq!(
            without_password("redis://app:s3cret@h:6379/0"),
            "redis://app:***@h:6379/0"
        );
        assert_eq!(without_password("memory://"), "memory://");
        assert_eq!(
            without_password("redis+cluster://app:s3cret@h1:1,h2:2"),
            "redis+cluster://app:***@h1:1,h2:2"
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
        let colon = Cache::builder("memory://").prefix("app:x").build().await;
        assert!(colon.unwrap_err().to_string().contains("contains `:`"));
    }
}
