//! Storage backends: one trait, an embedded memory store and Redis.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::error::Result;

pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;

/// What the runtime needs from a store. Keys arrive complete (prefix included).
///
/// Implementations bound every operation in time themselves; errors are reported,
/// and the runtime turns them into misses and no-ops.
pub trait Backend: Send + Sync + 'static {
    /// The stored bytes, or `None` when absent or expired. A hit is one round trip.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>>> + Send;
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
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        dispatch!(self, b => b.get(key).await)
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<()> {
        dispatch!(self, b => b.set(key, value, ttl).await)
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        dispatch!(self, b => b.delete(key).await)
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        dispatch!(self, b => b.delete_prefix(prefix).await)
    }
}
