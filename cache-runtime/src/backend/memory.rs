//! The embedded backend (`memory://`): one moka cache bounded in bytes, with per-entry TTL.
//!
//! Values and generation counters share the one store and its byte bound, as they share
//! Redis's memory: a flood of distinct keys evicts (TinyLFU) instead of growing. An evicted
//! counter is recreated with a new random value, which only makes the values that recorded
//! it stale (a miss), never wrongly fresh.
//!
//! Every write moves the store's epoch ([`Backend::epoch`]) once it is done: a value this
//! process found current at one epoch is still current while the epoch has not moved, so a
//! hit on a local copy ([`crate::copies`]) reads nothing else.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::Expiry;
use moka::ops::compute::{CompResult, Op};

use super::{Backend, KeyInfo, MAX_TTL, ScanPage};
use crate::error::Result;

/// Fixed per-entry cost added to key and value sizes when weighing an entry.
const ENTRY_OVERHEAD: usize = 64;

#[derive(Clone)]
struct Entry {
    value: Bytes,
    ttl: Option<Duration>,
    /// When it was written, for [`Backend::scan`]'s time to live.
    written: Instant,
}

impl Entry {
    fn new(value: Bytes, ttl: Option<Duration>) -> Entry {
        Entry {
            value,
            ttl,
            written: Instant::now(),
        }
    }
}

struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, entry: &Entry, _now: Instant) -> Option<Duration> {
        entry.ttl.map(|ttl| ttl.min(MAX_TTL))
    }
    fn expire_after_update(
        &self,
        _key: &String,
        entry: &Entry,
        _now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        entry.ttl.map(|ttl| ttl.min(MAX_TTL))
    }
}

/// An in-process store; entries are evicted by size (TinyLFU) and expire by their TTL.
pub(crate) struct MemoryBackend {
    entries: moka::sync::Cache<String, Entry>,
    /// Moved after every write (see the module's docs).
    epoch: AtomicU64,
}

impl MemoryBackend {
    /// A store holding at most about `max_bytes` of keys and values.
    pub(crate) fn new(max_bytes: u64) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, entry: &Entry| {
                u32::try_from(key.len() + entry.value.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .build();
        MemoryBackend {
            entries,
            epoch: AtomicU64::new(0),
        }
    }

    /// Marks the end of a write: whoever reads the epoch from now on reads after it.
    fn wrote(&self) {
        self.epoch.fetch_add(1, SeqCst);
    }

    /// Bytes held, after pending evictions (for tests of the bound).
    #[cfg(test)]
    pub(crate) fn weighed(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.weighted_size()
    }
}

impl Backend for MemoryBackend {
    async fn mget(&self, keys: Vec<String>) -> Result<Vec<Option<Bytes>>> {
        Ok(keys
            .iter()
            .map(|key| self.entries.get(key).map(|e| e.value))
            .collect())
    }

    async fn set(&self, key: String, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.entries.insert(key, Entry::new(value, ttl));
        self.wrote();
        Ok(())
    }

    async fn get_or_create(
        &self,
        items: Vec<(String, Bytes, Option<Duration>)>,
    ) -> Result<Vec<Option<Bytes>>> {
        let values = items
            .into_iter()
            .map(|(key, value, ttl)| {
                // One key-level lock with `replace_and_delete`: a refresh never writes back
                // a generation an invalidation replaced meanwhile.
                let computed = self.entries.entry(key).and_compute_with(|found| {
                    let kept = match found {
                        Some(_) if ttl.is_none() => return Op::Nop,
                        Some(found) => found.into_value().value,
                        None => value,
                    };
                    Op::Put(Entry::new(kept, ttl))
                });
                match computed {
                    CompResult::Inserted(e)
                    | CompResult::ReplacedWith(e)
                    | CompResult::Unchanged(e) => Some(e.into_value().value),
                    CompResult::StillNone(_) | CompResult::Removed(_) => None,
                }
            })
            .collect();
        self.wrote();
        Ok(values)
    }

    async fn replace_and_delete(
        &self,
        key: String,
        value: Bytes,
        delete: Option<String>,
    ) -> Result<()> {
        // The counter first: a reader that still finds the entry then sees the new counter.
        self.entries
            .entry(key)
            .and_compute_with(|found| match found {
                Some(found) => Op::Put(Entry::new(value, found.into_value().ttl)),
                None => Op::Nop,
            });
        if let Some(delete) = delete {
            self.entries.remove(&delete);
        }
        self.wrote();
        Ok(())
    }

    async fn delete(&self, key: String) -> Result<bool> {
        let existed = self.entries.remove(&key).is_some();
        self.wrote();
        Ok(existed)
    }

    async fn delete_prefix(&self, prefix: String, spare: String) -> Result<u64> {
        let keys: Vec<_> = self
            .entries
            .iter()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with(&prefix) && !k.starts_with(&spare))
            .collect();
        let mut removed = 0;
        for key in keys {
            removed += u64::from(self.entries.remove(key.as_str()).is_some());
        }
        self.wrote();
        Ok(removed)
    }

    async fn set_nx(&self, key: String, value: Bytes, ttl: Duration) -> Result<bool> {
        let entry = self
            .entries
            .entry(key)
            .or_insert_with(|| Entry::new(value, Some(ttl)));
        self.wrote();
        Ok(entry.is_fresh())
    }

    async fn delete_if(&self, key: String, value: Bytes) -> Result<bool> {
        use moka::ops::compute::{CompResult, Op};
        let result = self
            .entries
            .entry(key)
            .and_compute_with(|entry| match entry {
                Some(entry) if entry.value().value == value => Op::Remove,
                _ => Op::Nop,
            });
        self.wrote();
        Ok(matches!(result, CompResult::Removed(_)))
    }

    fn epoch(&self) -> Option<u64> {
        Some(self.epoch.load(SeqCst))
    }

    fn shared(&self) -> bool {
        false
    }

    /// Every matching key in one page (the store is in this process: no round trips to
    /// bound).
    async fn scan(
        &self,
        prefix: String,
        contains: String,
        _cursor: u64,
        _count: usize,
    ) -> Result<ScanPage> {
        let now = Instant::now();
        let keys = self
            .entries
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix(&prefix)
                    .is_some_and(|rest| rest.contains(&contains))
            })
            .map(|(k, e)| KeyInfo {
                key: k.as_ref().clone(),
                size: e.value.len() as u64,
                ttl: e.ttl.map(|ttl| ttl.saturating_sub(now - e.written)),
            })
            .collect();
        Ok(ScanPage { cursor: 0, keys })
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stays_within_its_byte_bound() {
        let max = 64 * 1024;
        let backend = MemoryBackend::new(max);
        let value = Bytes::from(vec![7u8; 1000]);
        for i in 0..1000 {
            let ttl = Some(Duration::from_secs(60));
            backend
                .set(format!("k{i}"), value.clone(), ttl)
                .await
                .unwrap();
        }
        let created: Vec<_> = (0..10_000)
            .map(|i| (format!("gen:{i}"), Bytes::from_static(&[1; 8]), None))
            .collect();
        backend.get_or_create(created).await.unwrap();
        let weight = backend.weighed();
        assert!(weight <= max, "{weight} bytes held, bound {max}");
        assert!(weight > max / 2, "it does keep what fits: {weight}");
    }

    #[tokio::test]
    async fn entries_expire_by_their_own_ttl() {
        let backend = MemoryBackend::new(1 << 20);
        let short = Some(Duration::from_millis(50));
        backend
            .set("short".into(), Bytes::from_static(b"x"), short)
            .await
            .unwrap();
        backend
            .set("long".into(), Bytes::from_static(b"y"), None)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(80)).await;
        let got = backend
            .mget(vec!["short".into(), "long".into()])
            .await
            .unwrap();
        assert_eq!(got, [None, Some(Bytes::from_static(b"y"))]);
    }

    #[tokio::test]
    async fn get_or_create_keeps_what_is_there() {
        let backend = MemoryBackend::new(1 << 20);
        let offer = |v: &'static [u8]| vec![("g".to_string(), Bytes::from_static(v), None)];
        assert_eq!(
            backend.get_or_create(offer(b"1")).await.unwrap(),
            [Some(Bytes::from_static(b"1"))]
        );
        assert_eq!(
            backend.get_or_create(offer(b"2")).await.unwrap(),
            [Some(Bytes::from_static(b"1"))]
        );
    }
}
