//! Django-style operations on a [`Cache`]: `get`, `set`, `delete`, `clear`.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Cache;
use crate::backend::Backend;
use crate::codec::{CacheDefault, SelectCodec};
use crate::envelope::{Header, Kind, Writer};
use crate::error::{Error, ErrorKind, Result};
use crate::fill::{self, Own, Plan};
use crate::freshness::Freshness;
use crate::invalidate::Change;
use crate::key::{self, generation};
use crate::stats::Event;
use crate::value::Values;

impl Cache {
    /// The plan of a `get`/`set` of `key`: stored under `{prefix}:1:{key}`, depending on the
    /// whole cache's generation only. Its TTL is the caller's, unknown to `get`.
    fn plain_plan(&self, key: &str, ttl: Duration) -> Plan<'static> {
        let logical = key::plain(key);
        let layout = &self.inner.layout;
        Plan {
            cache: self.clone(),
            name: "get",
            key: layout.entry(&logical),
            ttl,
            own: Own::built(layout.own(&logical, vec![(generation::ALL.to_owned(), None)])),
            freshness: Freshness {
                stale: Duration::ZERO,
                early: None,
                lease: false,
            },
        }
    }

    /// Reads a value stored with [`Cache::set`] under `{prefix}:1:{key}` (Django's
    /// `cache.get`): `None` when there is none, it expired, it was invalidated, or it does
    /// not decode as a `T`. Unlike cached functions, a backend failure is an error.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let plan = self.plain_plan(key, Duration::MAX);
        let values = Values::<T, T, CacheDefault>::reader(self.inner.codec);
        let found = fill::cached_answer(&plan, &values).await?;
        if found.is_none() {
            self.count(Event::Miss, "get");
        }
        Ok(found)
    }

    /// Stores `value` under `{prefix}:1:{key}` for `ttl` (the default TTL when `None`).
    ///
    /// # Errors
    ///
    /// When the backend fails, the value does not encode, or it is larger than the cache's
    /// maximum value size.
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let ttl = ttl.unwrap_or(self.inner.default_ttl);
        let plan = self.plain_plan(key, ttl);
        let deps = fill::start(self, plan.own.get(), "set").await?;
        let codec = CacheDefault::codec_id(self.inner.codec);
        let header = Header::new(Kind::Value, codec, ttl, Duration::ZERO);
        let mut writer = Writer::new(&header, deps.iter().map(|(n, g)| (n.as_str(), *g)), 64)
            .ok_or_else(|| Error::new(ErrorKind::Codec, "the value's dependencies do not fit"))?;
        CacheDefault::encode_plain(self.inner.codec, value, writer.payload())?;
        let bytes = writer.seal(self.compression());
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
        let set = self.inner.backend.set(plan.key.clone(), bytes, Some(ttl));
        self.guarded("set", "write", Some(&plan.key), set).await?;
        self.announce(Change::Entry(&plan.key)).await
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
        let root = self.inner.layout.root().to_owned();
        // The L1 protocol's keys stay: the announcement below waits for the instances they list.
        let spare = self.inner.layout.l1_root();
        let removed = self.inner.backend.delete_prefix(root, spare).await?;
        // They would be misses anyway (a hit checks its copy against Redis): free the memory.
        if let Some(copies) = &self.inner.copies {
            copies.clear();
        }
        self.announce(Change::Generation(generation::ALL)).await?;
        Ok(removed)
    }

    /// Deletes `{prefix}:1:{key}`; true when it existed.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let key = self.inner.layout.entry(&key::plain(key));
        let existed = self
            .guarded(
                "delete",
                "delete",
                Some(&key.clone()),
                self.inner.backend.delete(key.clone()),
            )
            .await?;
        self.announce(Change::Entry(&key)).await?;
        Ok(existed)
    }

    /// The bytes stored under `stored_key` (the whole key, prefix included), as they are,
    /// for tools and tests that look beneath the cache (`cachectl get`, a test writing what
    /// another program could). `None` when there are none.
    pub async fn raw_get(&self, stored_key: &str) -> Result<Option<Vec<u8>>> {
        let mut values = self.inner.backend.mget(vec![stored_key.to_owned()]).await?;
        Ok(values.pop().flatten().map(|b| b.to_vec()))
    }

    /// Stores `bytes` under `stored_key` as they are, for `ttl` (`None`: until evicted).
    /// Nothing the cache reads back from it is trusted: see [`Cache::raw_get`]. Like
    /// [`Cache::set`], it is announced: no instance's L1 keeps serving what was there.
    pub async fn raw_set(
        &self,
        stored_key: &str,
        bytes: &[u8],
        ttl: Option<Duration>,
    ) -> Result<()> {
        let value = bytes::Bytes::copy_from_slice(bytes);
        self.inner
            .backend
            .set(stored_key.to_owned(), value, ttl)
            .await?;
        self.announce(Change::Entry(stored_key)).await
    }
}
