//! Storage backends: one trait, an embedded memory store, Redis and Redis Cluster.
//!
//! A backend is a plain key-value store with expiry: it knows nothing of envelopes,
//! generations or fills. Keys arrive complete (prefix included). Generation counters are
//! ordinary keys holding 8 bytes.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::error::Result;

#[cfg(feature = "cluster")]
pub(crate) mod cluster;
#[cfg(feature = "redis")]
pub(crate) mod io;
pub(crate) mod memory;
#[cfg(feature = "redis")]
pub(crate) mod redis;
#[cfg(feature = "redis")]
pub(crate) mod redis_sync;

/// The longest anything is kept: longer TTLs (a setting of `Duration::MAX`, a `ttl` of
/// `u64::MAX` seconds) are this. Ten years: well within what Redis (`PX`), the memory store
/// and an HTTP date (`Expires`, up to the year 9999) can express.
pub const MAX_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// What a probe reads (see [`Backend::probe`]): the value's key, the length of its fixed
/// head, and the generation keys it recorded. Built once per local copy, since none of it
/// changes while the copy lives; a backend keeps its request ready-made beside it.
pub(crate) struct ProbeKeys {
    pub(crate) key: String,
    pub(crate) head: usize,
    pub(crate) keys: Vec<String>,
    /// Redis: the `GETRANGE` + `MGET` pipeline, made on the first probe.
    #[cfg(feature = "redis")]
    pub(crate) pipeline: std::sync::OnceLock<::redis::Pipeline>,
}

impl ProbeKeys {
    pub(crate) fn new(key: String, head: usize, keys: Vec<String>) -> ProbeKeys {
        ProbeKeys {
            key,
            head,
            keys,
            #[cfg(feature = "redis")]
            pipeline: std::sync::OnceLock::new(),
        }
    }
}

/// What the runtime needs from a store.
///
/// Implementations bound every operation in time themselves; errors are reported, and the
/// runtime turns them into misses and no-ops.
pub(crate) trait Backend: Send + Sync + 'static {
    /// The values of `keys`, in order, read at one instant (Redis: one `MGET`).
    fn mget(&self, keys: Vec<String>) -> impl Future<Output = Result<Vec<Option<Bytes>>>> + Send;
    /// The first `head` bytes of the value under `key` (empty when there is none; `None`
    /// when the store refused to read them), then the values of `keys`, in one round trip:
    /// enough to tell whether a copy of that value held in this process is still the stored
    /// one, and still current (Redis: `GETRANGE` and `MGET` in one pipeline, so the value
    /// itself does not cross the network).
    fn probe(
        &self,
        probe: &ProbeKeys,
    ) -> impl Future<Output = Result<(Option<Bytes>, Vec<Option<Bytes>>)>> + Send {
        async move {
            let mut all = Vec::with_capacity(1 + probe.keys.len());
            all.push(probe.key.clone());
            all.extend(probe.keys.iter().cloned());
            let mut values = self.mget(all).await?.into_iter();
            let value = values.next().flatten().unwrap_or_default();
            let head = value.slice(..probe.head.min(value.len()));
            Ok((Some(head), values.collect()))
        }
    }
    /// Stores `value` under `key`, for `ttl` (`None`: until evicted).
    fn set(
        &self,
        key: String,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// For each `(key, value, ttl)`: stores `value` when `key` is missing, then reads what
    /// `key` holds. With a `ttl`, the key expires `ttl` from now whether it was created or
    /// found (a counter outlives every value that records it, however often it is used);
    /// without, a created key lives until evicted. One round trip.
    fn get_or_create(
        &self,
        items: Vec<(String, Bytes, Option<Duration>)>,
    ) -> impl Future<Output = Result<Vec<Option<Bytes>>>> + Send;
    /// Replaces the value of `key` with `value` when `key` exists, keeping its expiry (it
    /// never creates one), and removes `delete`, in one atomic step.
    fn replace_and_delete(
        &self,
        key: String,
        value: Bytes,
        delete: Option<String>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Replaces the value of each of `keys` with `value` when it exists, keeping its expiry
    /// (never creating one); returns once every one is replaced. Not atomic across keys: for
    /// the copies of one generation counter on a cluster (see [`crate::key::Layout`]).
    fn replace_all(
        &self,
        keys: Vec<String>,
        value: Bytes,
    ) -> impl Future<Output = Result<()>> + Send {
        async move {
            for key in keys {
                self.replace_and_delete(key, value.clone(), None).await?;
            }
            Ok(())
        }
    }
    /// Removes `key`; true when it existed.
    fn delete(&self, key: String) -> impl Future<Output = Result<bool>> + Send;
    /// Removes every key starting with `prefix` but not with `spare` (Redis: `SCAN` +
    /// `UNLINK` in batches, never `KEYS`); returns how many were removed.
    fn delete_prefix(
        &self,
        prefix: String,
        spare: String,
    ) -> impl Future<Output = Result<u64>> + Send;
    /// Stores `value` under `key` for `ttl` only when `key` is missing; true when stored.
    fn set_nx(
        &self,
        key: String,
        value: Bytes,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Removes `key` only while it holds `value`, in one atomic step; true when removed.
    fn delete_if(&self, key: String, value: Bytes) -> impl Future<Output = Result<bool>> + Send;
    /// For a store in this process (`memory://`): its epoch, which moves after every write
    /// is done. Values and generations read after loading epoch `e` and found current are
    /// still current while the epoch is `e`: nothing was written since. `None` for a store
    /// other processes write to.
    fn epoch(&self) -> Option<u64> {
        None
    }
    /// Whether the store is shared with other processes (Redis), so that leases matter.
    fn shared(&self) -> bool;
    /// One page of the keys that start with `prefix` and hold `contains` after it, each with
    /// its size and time to live, from `cursor` (0 starts; a page whose `cursor` is 0 is the
    /// last). Redis: `SCAN MATCH` (never `KEYS`), then `STRLEN` and `PTTL` in one pipeline;
    /// a page may be empty before the last. For `cachectl` and the dashboard.
    fn scan(
        &self,
        prefix: String,
        contains: String,
        cursor: u64,
        count: usize,
    ) -> impl Future<Output = Result<ScanPage>> + Send;
    /// Whether the store answers (Redis: `PING`).
    fn ping(&self) -> impl Future<Output = Result<()>> + Send;
}

/// One page of [`Backend::scan`].
#[derive(Debug, Default)]
pub(crate) struct ScanPage {
    /// Where the next page starts; 0 when this was the last.
    pub(crate) cursor: u64,
    pub(crate) keys: Vec<KeyInfo>,
}

/// A stored key, its size and its time to live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyInfo {
    pub(crate) key: String,
    /// Bytes of the value.
    pub(crate) size: u64,
    /// Time left before it expires; `None` when it does not expire.
    pub(crate) ttl: Option<Duration>,
}

/// The backends a [`Cache`](crate::Cache) can run on, dispatched without boxing.
pub(crate) enum AnyBackend {
    Memory(memory::MemoryBackend),
    #[cfg(feature = "redis")]
    Redis(Box<redis::RedisBackend>),
    #[cfg(feature = "cluster")]
    Cluster(Box<cluster::ClusterBackend>),
}

macro_rules! dispatch {
    ($self:expr, $b:ident => $body:expr) => {
        match $self {
            AnyBackend::Memory($b) => $body,
            #[cfg(feature = "redis")]
            AnyBackend::Redis($b) => $body,
            #[cfg(feature = "cluster")]
            AnyBackend::Cluster($b) => $body,
        }
    };
}

impl AnyBackend {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            AnyBackend::Memory(_) => "memory",
            #[cfg(feature = "redis")]
            AnyBackend::Redis(_) => "redis",
            #[cfg(feature = "cluster")]
            AnyBackend::Cluster(_) => "cluster",
        }
    }
}

impl Backend for AnyBackend {
    async fn mget(&self, keys: Vec<String>) -> Result<Vec<Option<Bytes>>> {
        dispatch!(self, b => b.mget(keys).await)
    }
    async fn probe(&self, probe: &ProbeKeys) -> Result<(Option<Bytes>, Vec<Option<Bytes>>)> {
        dispatch!(self, b => b.probe(probe).await)
    }
    async fn set(&self, key: String, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        dispatch!(self, b => b.set(key, value, ttl).await)
    }
    async fn get_or_create(
        &self,
        items: Vec<(String, Bytes, Option<Duration>)>,
    ) -> Result<Vec<Option<Bytes>>> {
        dispatch!(self, b => b.get_or_create(items).await)
    }
    async fn replace_and_delete(
        &self,
        key: String,
        value: Bytes,
        delete: Option<String>,
    ) -> Result<()> {
        dispatch!(self, b => b.replace_and_delete(key, value, delete).await)
    }
    async fn replace_all(&self, keys: Vec<String>, value: Bytes) -> Result<()> {
        dispatch!(self, b => b.replace_all(keys, value).await)
    }
    async fn delete(&self, key: String) -> Result<bool> {
        dispatch!(self, b => b.delete(key).await)
    }
    async fn delete_prefix(&self, prefix: String, spare: String) -> Result<u64> {
        dispatch!(self, b => b.delete_prefix(prefix, spare).await)
    }
    async fn set_nx(&self, key: String, value: Bytes, ttl: Duration) -> Result<bool> {
        dispatch!(self, b => b.set_nx(key, value, ttl).await)
    }
    async fn delete_if(&self, key: String, value: Bytes) -> Result<bool> {
        dispatch!(self, b => b.delete_if(key, value).await)
    }
    fn epoch(&self) -> Option<u64> {
        dispatch!(self, b => b.epoch())
    }
    fn shared(&self) -> bool {
        dispatch!(self, b => b.shared())
    }
    async fn scan(
        &self,
        prefix: String,
        contains: String,
        cursor: u64,
        count: usize,
    ) -> Result<ScanPage> {
        dispatch!(self, b => b.scan(prefix, contains, cursor, count).await)
    }
    async fn ping(&self) -> Result<()> {
        dispatch!(self, b => b.ping().await)
    }
}
