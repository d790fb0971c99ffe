//! Storage backends: one trait, an embedded memory store and Redis.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::error::Result;

pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;

/// The result of a checked read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// No entry under the key.
    Missing,
    /// An entry exists, but a generation it was filled under has changed since (or is gone):
    /// it must not be served.
    Stale,
    /// The stored bytes; their generations still match (or they are not an envelope at all,
    /// which the caller rejects when decoding).
    Found(Bytes),
}

/// What the runtime needs from a store. Keys arrive complete (prefix included).
///
/// Implementations bound every operation in time themselves; errors are reported,
/// and the runtime turns them into misses and no-ops.
pub trait Backend: Send + Sync + 'static {
    /// Stores `value` under `key` for `ttl`.
    fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Removes `key`; true when it existed.
    fn delete(&self, key: &str) -> impl Future<Output = Result<bool>> + Send;
    /// Removes every key starting with `prefix` (Redis: `SCAN` + `UNLINK` in batches, never
    /// `KEYS`); returns how many were removed.
    fn delete_prefix(&self, prefix: &str) -> impl Future<Output = Result<u64>> + Send;
    /// Reads `key` and checks, in the same round trip, every generation its envelope
    /// records against the current one under `gen_prefix` + name.
    fn get_fresh(&self, key: &str, gen_prefix: &str)
    -> impl Future<Output = Result<Lookup>> + Send;
    /// Like [`Backend::get_fresh`], for a value whose dependencies are expected to be the
    /// `expected` generation names: on Redis one `MGET` of the entry and those counters
    /// (cheaper than the script), then a second round trip only for any dependency the
    /// envelope records beyond them.
    fn get_fresh_expecting(
        &self,
        key: &str,
        gen_prefix: &str,
        expected: &[String],
    ) -> impl Future<Output = Result<Lookup>> + Send;
    /// Whether every recorded generation still matches the current one.
    fn check(
        &self,
        gen_prefix: &str,
        deps: &[(String, u64)],
    ) -> impl Future<Output = Result<bool>> + Send;
    /// The current generation of each key, creating missing ones with the value offered
    /// (random, so a recreated counter never equals a lost one). `ttl` bounds the life of a
    /// created counter; `None` keeps it until evicted.
    fn generations(
        &self,
        keys: &[(String, Option<Duration>)],
        offered: &[u64],
    ) -> impl Future<Output = Result<Vec<u64>>> + Send;
    /// Replaces the generation under `gen_key` with `value` and, in the same atomic step,
    /// removes `entry` when given.
    fn bump(
        &self,
        gen_key: &str,
        value: u64,
        ttl: Option<Duration>,
        entry: Option<&str>,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// The backends a [`Cache`](crate::Cache) can run on, dispatched without boxing.
pub(crate) enum AnyBackend {
    Memory(memory::MemoryBackend),
    #[cfg(feature = "redis")]
    Redis(redis::RedisBackend),
}

macro_rules! dispatch {
    ($self:expr, $b:ident => $body:expr) => {
        match $self {
            AnyBackend::Memory($b) => $body,
            #[cfg(feature = "redis")]
            AnyBackend::Redis($b) => $body,
        }
    };
}

impl AnyBackend {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            AnyBackend::Memory(_) => "memory",
            #[cfg(feature = "redis")]
            AnyBackend::Redis(_) => "redis",
        }
    }
}

impl Backend for AnyBackend {
    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<()> {
        dispatch!(self, b => b.set(key, value, ttl).await)
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        dispatch!(self, b => b.delete(key).await)
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        dispatch!(self, b => b.delete_prefix(prefix).await)
    }
    async fn get_fresh(&self, key: &str, gen_prefix: &str) -> Result<Lookup> {
        dispatch!(self, b => b.get_fresh(key, gen_prefix).await)
    }
    async fn get_fresh_expecting(
        &self,
        key: &str,
        gen_prefix: &str,
        expected: &[String],
    ) -> Result<Lookup> {
        dispatch!(self, b => b.get_fresh_expecting(key, gen_prefix, expected).await)
    }
    async fn check(&self, gen_prefix: &str, deps: &[(String, u64)]) -> Result<bool> {
        dispatch!(self, b => b.check(gen_prefix, deps).await)
    }
    async fn generations(
        &self,
        keys: &[(String, Option<Duration>)],
        offered: &[u64],
    ) -> Result<Vec<u64>> {
        dispatch!(self, b => b.generations(keys, offered).await)
    }
    async fn bump(
        &self,
        gen_key: &str,
        value: u64,
        ttl: Option<Duration>,
        entry: Option<&str>,
    ) -> Result<()> {
        dispatch!(self, b => b.bump(gen_key, value, ttl, entry).await)
    }
}
