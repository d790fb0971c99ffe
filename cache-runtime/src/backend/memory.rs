//! The embedded backend (`memory://`): a moka cache bounded in bytes, with per-entry TTL.

use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::Expiry;

use super::Backend;
use crate::error::Result;

/// Fixed per-entry cost added to key and value sizes when weighing an entry.
const ENTRY_OVERHEAD: usize = 64;

#[derive(Clone)]
struct Entry {
    value: Bytes,
    ttl: Duration,
}

struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, entry: &Entry, _now: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }
    fn expire_after_update(
        &self,
        _key: &String,
        entry: &Entry,
        _now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// An in-process store; entries are evicted by size (TinyLFU) and expire by their TTL.
pub struct MemoryBackend {
    entries: moka::sync::Cache<String, Entry>,
}

impl MemoryBackend {
    /// A store holding at most about `max_bytes` of keys and values.
    pub fn new(max_bytes: u64) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, entry: &Entry| {
                u32::try_from(key.len() + entry.value.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .build();
        MemoryBackend { entries }
    }
}

impl Backend for MemoryBackend {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        Ok(self.entries.get(key).map(|e| e.value))
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<()> {
        self.entries.insert(key.to_owned(), Entry { value, ttl });
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        Ok(self.entries.remove(key).is_some())
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let keys: Vec<_> = self
            .entries
            .iter()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with(prefix))
            .collect();
        let mut removed = 0;
        for key in keys {
            removed += u64::from(self.entries.remove(key.as_str()).is_some());
        }
        Ok(removed)
    }
}
