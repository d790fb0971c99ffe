//! The embedded backend (`memory://`): a moka cache bounded in bytes, with per-entry TTL.

use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::Expiry;

use super::{Backend, Lookup};
use crate::envelope;
use crate::error::Result;

/// Most generation counters kept in memory; an evicted one is recreated with a new random
/// value, which only makes the entries that recorded it stale (never wrongly fresh).
const MAX_GENERATIONS: u64 = 1_000_000;

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

#[derive(Clone, Copy)]
struct Generation {
    value: u64,
    ttl: Option<Duration>,
}

struct GenerationTtl;

impl Expiry<String, Generation> for GenerationTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        g: &Generation,
        _now: Instant,
    ) -> Option<Duration> {
        g.ttl
    }
    fn expire_after_update(
        &self,
        _key: &String,
        g: &Generation,
        _now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        g.ttl
    }
}

/// An in-process store; entries are evicted by size (TinyLFU) and expire by their TTL.
pub struct MemoryBackend {
    entries: moka::sync::Cache<String, Entry>,
    generations: moka::sync::Cache<String, Generation>,
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
        let generations = moka::sync::Cache::builder()
            .max_capacity(MAX_GENERATIONS)
            .expire_after(GenerationTtl)
            .build();
        MemoryBackend {
            entries,
            generations,
        }
    }
}

impl Backend for MemoryBackend {
    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<()> {
        self.entries.insert(key.to_owned(), Entry { value, ttl });
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        Ok(self.entries.remove(key).is_some())
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let mut removed = 0;
        let entries: Vec<_> = self
            .entries
            .iter()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with(prefix))
            .collect();
        for key in entries {
            removed += u64::from(self.entries.remove(key.as_str()).is_some());
        }
        let generations: Vec<_> = self
            .generations
            .iter()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with(prefix))
            .collect();
        for key in generations {
            removed += u64::from(self.generations.remove(key.as_str()).is_some());
        }
        Ok(removed)
    }

    async fn get_fresh(&self, key: &str, gen_prefix: &str) -> Result<Lookup> {
        let Some(entry) = self.entries.get(key) else {
            return Ok(Lookup::Missing);
        };
        if let Some((header, _)) = envelope::read(&entry.value)
            && !self.check(gen_prefix, &header.deps).await?
        {
            return Ok(Lookup::Stale);
        }
        Ok(Lookup::Found(entry.value))
    }

    async fn get_fresh_expecting(
        &self,
        key: &str,
        gen_prefix: &str,
        _expected: &[String],
    ) -> Result<Lookup> {
        // In process there is no round trip to save.
        self.get_fresh(key, gen_prefix).await
    }

    async fn check(&self, gen_prefix: &str, deps: &[(String, u64)]) -> Result<bool> {
        let mut name = String::from(gen_prefix);
        for (dep, recorded) in deps {
            name.truncate(gen_prefix.len());
            name.push_str(dep);
            if self.generations.get(&name).map(|g| g.value) != Some(*recorded) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn generations(
        &self,
        keys: &[(String, Option<Duration>)],
        offered: &[u64],
    ) -> Result<Vec<u64>> {
        Ok(keys
            .iter()
            .zip(offered)
            .map(|((key, ttl), &value)| {
                self.generations
                    .get_with_by_ref(key.as_str(), || Generation { value, ttl: *ttl })
                    .value
            })
            .collect())
    }

    async fn bump(
        &self,
        gen_key: &str,
        value: u64,
        ttl: Option<Duration>,
        entry: Option<&str>,
    ) -> Result<()> {
        self.generations
            .insert(gen_key.to_owned(), Generation { value, ttl });
        if let Some(entry) = entry {
            self.entries.remove(entry);
        }
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
            backend
                .set(&format!("k{i}"), value.clone(), Duration::from_secs(60))
                .await
                .unwrap();
        }
        backend.entries.run_pending_tasks();
        let weight = backend.entries.weighted_size();
        assert!(weight <= max, "{weight} bytes held, bound {max}");
        assert!(weight > max / 2, "it does keep what fits: {weight}");
    }

    #[tokio::test]
    async fn entries_expire_by_their_own_ttl() {
        let backend = MemoryBackend::new(1 << 20);
        backend
            .set("short", Bytes::from_static(b"x"), Duration::from_millis(50))
            .await
            .unwrap();
        backend
            .set("long", Bytes::from_static(b"y"), Duration::from_secs(60))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(
            backend.get_fresh("short", "g:").await.unwrap(),
            Lookup::Missing
        );
        assert_eq!(
            backend.get_fresh("long", "g:").await.unwrap(),
            Lookup::Found(Bytes::from_static(b"y"))
        );
    }
}
