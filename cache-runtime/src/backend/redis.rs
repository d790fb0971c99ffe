//! The Redis backend: redis-rs `ConnectionManager` (multiplexed, reconnecting), every
//! operation bounded by the cache's timeout.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::Backend;
use crate::error::{Error, ErrorKind, Result};

/// A Redis server reached through one multiplexed, self-reconnecting connection.
pub struct RedisBackend {
    conn: ConnectionManager,
    timeout: Duration,
}

impl RedisBackend {
    /// Connects lazily: a server that is down now is not an error; calls fail (and the
    /// cache runs uncached) until it answers, and reconnection happens in the background.
    pub fn new(client: redis::Client, timeout: Duration) -> Result<Self> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(|e| {
            Error::with_source(ErrorKind::Config, "cannot set up the Redis connection", e)
        })?;
        Ok(RedisBackend { conn, timeout })
    }

    /// Runs one command on a clone of the shared connection, within the timeout.
    async fn run<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(self.timeout, f(self.conn.clone())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if e.is_timeout() => Err(Error::with_source(ErrorKind::Timeout, op, e)),
            Ok(Err(e)) => Err(Error::with_source(ErrorKind::Backend, op, e)),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("{op}: no answer from Redis within {:?}", self.timeout),
            )),
        }
    }

    /// Sends a `PING` (used to warm the connection up front).
    pub async fn ping(&self) -> Result<()> {
        self.run("PING", |mut c| async move {
            redis::cmd("PING").query_async::<()>(&mut c).await
        })
        .await
    }
}

impl Backend for RedisBackend {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let value: Option<Vec<u8>> = self
            .run("GET", |mut c| async move {
                redis::cmd("GET").arg(key).query_async(&mut c).await
            })
            .await?;
        Ok(value.map(Bytes::from))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<()> {
        let ms = ttl.as_millis().clamp(1, u64::MAX as u128) as u64;
        self.run("SET", |mut c| async move {
            redis::cmd("SET")
                .arg(key)
                .arg(&value[..])
                .arg("PX")
                .arg(ms)
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let n: u64 = self
            .run("UNLINK", |mut c| async move {
                redis::cmd("UNLINK").arg(key).query_async(&mut c).await
            })
            .await?;
        Ok(n > 0)
    }
}
