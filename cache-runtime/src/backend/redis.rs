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

/// Escapes glob characters so a key prefix matches only itself in `SCAN MATCH`.
fn glob_escape(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('*');
    out
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

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let pattern = glob_escape(prefix);
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let pattern = &pattern;
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .run("SCAN", |mut c| async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(500)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            if !keys.is_empty() {
                let n: u64 = self
                    .run("UNLINK", |mut c| async move {
                        redis::cmd("UNLINK").arg(&keys).query_async(&mut c).await
                    })
                    .await?;
                removed += n;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(
            super::glob_escape("app:1:a*b?[c]"),
            "app:1:a\\*b\\?\\[c\\]*"
        );
    }
}
