//! The Redis backend: redis-rs `ConnectionManager` (multiplexed, reconnecting), every
//! operation bounded by the cache's timeout.
//!
//! Commands go out from the caller's task, with no hop to another thread. A `Cache` may
//! outlive the tokio runtime that first used it (built in a set-up runtime, shared by many
//! `#[tokio::test]`s): the connection's driver task died with that runtime, so an operation
//! that finds the connection dropped (or its runtime shutting down) is tried again, at most
//! twice, on the connection redis-rs has meanwhile opened from the caller's runtime, within
//! the same deadline.
//! Blocking calls send the same commands on pooled synchronous connections instead
//! ([`redis_sync`](super::redis_sync)), within the same deadline.
//!
//! Plain commands: `MGET` (a hit: the entry and its generations, read at one instant),
//! `GETRANGE` + `MGET` in one pipeline (a hit on a local copy: the entry's header and its
//! generations, [`crate::copies`]),
//! `SET` (`NX` to create a generation or take a lease), `PEXPIRE` (to keep a counter alive as
//! long as the values recording it), `GET`, `MULTI`/`SET XX KEEPTTL`/`UNLINK`/`EXEC` (an
//! invalidation), `SCAN` + `UNLINK` (clearing a prefix), `PING`, `WAIT` (with
//! `CacheBuilder::wait_for_replicas`); for tools listing keys (`cachectl`, the dashboard),
//! `SCAN` + `STRLEN` and `PTTL`; and one short script, releasing a lease only while it
//! is the caller's (`EVALSHA`, `SCRIPT LOAD` when Redis does not know it yet).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::redis_sync::{Conn, Pool};
use super::{Backend, KeyInfo, MAX_TTL, ProbeKeys, ScanPage, io};
use crate::blocking;
use crate::error::{Error, ErrorKind, Result};

/// Removes a lease only while it holds the caller's token (KEYS: lease; ARGV: token): the one
/// script the toolkit sends, since Redis 7 has no compare-and-delete command.
pub(super) const DELETE_IF: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('UNLINK', KEYS[1]) end
return 0
";

/// A Redis server reached through one multiplexed, self-reconnecting connection.
pub(crate) struct RedisBackend {
    client: redis::Client,
    conn: ConnectionManager,
    /// Synchronous connections for blocking calls ([`crate::blocking`]).
    pool: Arc<Pool>,
    timeout: Duration,
    delete_if: redis::Script,
    /// `CacheBuilder::wait_for_replicas`: replicas every invalidation must reach, and how
    /// long it waits for them (on top of the operation timeout).
    wait: Option<(u32, Duration)>,
    /// Whether Redis refused a `GETRANGE` already (warned once).
    getrange_refused: std::sync::atomic::AtomicBool,
}

/// `ttl` in the milliseconds `PX` and `PEXPIRE` take: at least 1, at most [`MAX_TTL`].
fn millis(ttl: Duration) -> u64 {
    ttl.min(MAX_TTL).as_millis().max(1) as u64
}

fn px(cmd: &mut redis::Cmd, ttl: Option<Duration>) {
    if let Some(ttl) = ttl {
        cmd.arg("PX").arg(millis(ttl));
    }
}

/// `SET key value [PX ttl]`, as both Redis backends send it.
pub(super) fn set_cmd(key: String, value: &[u8], ttl: Option<Duration>) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(value);
    px(&mut cmd, ttl);
    cmd
}

/// `SET key value NX [PX ttl]`: creates `key` only when it does not exist.
pub(super) fn set_nx_cmd(key: &str, value: &[u8], ttl: Option<Duration>) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(value).arg("NX");
    px(&mut cmd, ttl);
    cmd
}

/// Adds to `pipe` what creates `key` with `value` unless it exists, then reads it (one
/// answer: the value now there): `SET NX`, `PEXPIRE` (found rather than created, it lives
/// `ttl` from now too), `GET`.
pub(super) fn create_and_get(
    pipe: &mut redis::Pipeline,
    key: &str,
    value: &[u8],
    ttl: Option<Duration>,
) {
    pipe.add_command(set_nx_cmd(key, value, ttl)).ignore();
    if let Some(ttl) = ttl {
        pipe.cmd("PEXPIRE").arg(key).arg(millis(ttl)).ignore();
    }
    pipe.cmd("GET").arg(key);
}

/// `MULTI`, `SET key value XX KEEPTTL`, `UNLINK delete` (if any), `EXEC`: replaces an
/// existing value, keeping its expiry, and drops another key in the same transaction.
pub(super) fn replace_and_unlink(
    key: String,
    value: &[u8],
    delete: Option<String>,
) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.cmd("MULTI").ignore();
    pipe.cmd("SET")
        .arg(key)
        .arg(value)
        .arg("XX")
        .arg("KEEPTTL")
        .ignore();
    if let Some(delete) = delete {
        pipe.cmd("UNLINK").arg(delete).ignore();
    }
    pipe.cmd("EXEC").ignore();
    pipe
}

fn bytes(values: Vec<Option<Vec<u8>>>) -> Vec<Option<Bytes>> {
    values.into_iter().map(|v| v.map(Bytes::from)).collect()
}

/// The `n` values of an `MGET` reply, moved out of it (a hit's hot path: the generic
/// `FromRedisValue` conversion cost more than parsing the reply). `None` for another shape.
pub(super) fn mget_reply(reply: redis::Value, n: usize) -> Option<Vec<Option<Bytes>>> {
    let redis::Value::Array(items) = reply else {
        return None;
    };
    if items.len() != n {
        return None;
    }
    items
        .into_iter()
        .map(|item| match item {
            redis::Value::BulkString(bytes) => Some(Some(Bytes::from(bytes))),
            redis::Value::Nil => Some(None),
            _ => None,
        })
        .collect()
}

/// `MGET keys`, its buffer sized up front.
pub(super) fn mget_cmd(keys: &[String]) -> redis::Cmd {
    let data = keys.iter().map(String::len).sum::<usize>() + 4;
    let mut cmd = redis::Cmd::with_capacity(1 + keys.len(), data);
    cmd.arg("MGET").arg(keys);
    cmd
}

impl RedisBackend {
    /// Connects lazily: a server that is down now is not an error; calls fail (and the
    /// cache runs uncached) until it answers, and reconnection happens in the background.
    pub(crate) fn new(
        client: redis::Client,
        timeout: Duration,
        wait: Option<(u32, Duration)>,
    ) -> Result<Self> {
        // No response timeout of redis-rs's own: `run_within` bounds every call by its
        // operation's bound (an invalidation's `WAIT` may take longer than `timeout`), and
        // a second timer per call would cost every hit.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(None)
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(500));
        let pool = Pool::new(client.clone());
        let conn = io::enter(|| ConnectionManager::new_lazy_with_config(client.clone(), config))
            .map_err(|e| {
                Error::with_source(ErrorKind::Config, "cannot set up the Redis connection", e)
            })?;
        Ok(RedisBackend {
            client,
            conn,
            pool,
            timeout,
            delete_if: redis::Script::new(DELETE_IF),
            wait,
            getrange_refused: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The client, for connections of their own (the L1's subscription).
    pub(crate) fn client(&self) -> redis::Client {
        self.client.clone()
    }

    /// Runs one operation within the timeout; once more when the connection was dropped.
    pub(crate) async fn run<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        self.run_within(op, self.timeout, f).await
    }

    /// [`run`](Self::run) with a bound of its own.
    async fn run_within<T, F, Fut>(&self, op: &'static str, bound: Duration, f: F) -> Result<T>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let deadline = Instant::now() + bound;
        let mut answer = blocking::timeout_at(deadline, self.send(&f, deadline)).await;
        // A connection whose driver died with a runtime answers "broken pipe"; one whose
        // runtime is shutting down, an I/O error of tokio's ("being shutdown") until it is
        // gone. Either way redis-rs reconnects from this call's runtime: try again.
        for _ in 0..2 {
            match &answer {
                Ok(Err(e))
                    if !e.is_timeout()
                        && (e.is_connection_dropped()
                            || e.is_unrecoverable_error()
                            || e.is_io_error()) =>
                {
                    answer = blocking::timeout_at(deadline, self.send(&f, deadline)).await;
                }
                _ => break,
            }
        }
        match answer {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if e.is_timeout() => Err(Error::with_source(ErrorKind::Timeout, op, e)),
            Ok(Err(e)) => Err(Error::with_source(ErrorKind::Backend, op, e)),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("{op}: no answer from Redis within {bound:?}"),
            )),
        }
    }

    /// Sends one operation on the connection of this kind of call: the multiplexed one, or a
    /// pooled synchronous one in a blocking call ([`crate::blocking`]).
    async fn send<T, F, Fut>(&self, f: &F, deadline: Instant) -> redis::RedisResult<T>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let conn = if blocking::active() {
            Conn::Blocking(self.pool.get(deadline)?)
        } else {
            Conn::Async(self.conn.clone())
        };
        f(conn).await
    }

    /// Sends a `PING` (used to warm the connection up front).
    pub(crate) async fn ping(&self) -> Result<()> {
        self.run("PING", |mut c| async move {
            redis::cmd("PING").query_async::<()>(&mut c).await
        })
        .await
    }
}

/// Escapes glob characters so a key prefix matches only itself in `SCAN MATCH`.
pub(super) fn glob_escape(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    push_escaped(&mut out, prefix);
    out.push('*');
    out
}

fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// `SCAN MATCH` pattern of the keys starting with `prefix` and holding `contains` after it.
pub(super) fn glob_containing(prefix: &str, contains: &str) -> String {
    let mut out = glob_escape(prefix);
    if !contains.is_empty() {
        push_escaped(&mut out, contains);
        out.push('*');
    }
    out
}

impl Backend for RedisBackend {
    async fn mget(&self, keys: Vec<String>) -> Result<Vec<Option<Bytes>>> {
        let n = keys.len();
        let cmd = mget_cmd(&keys);
        let cmd = &cmd;
        let reply: redis::Value = self
            .run("MGET", |mut c| async move { cmd.query_async(&mut c).await })
            .await?;
        mget_reply(reply, n).ok_or_else(|| {
            Error::new(
                ErrorKind::Backend,
                "MGET answered the wrong number of values",
            )
        })
    }

    async fn probe(&self, probe: &ProbeKeys) -> Result<(Option<Bytes>, Vec<Option<Bytes>>)> {
        let n = probe.keys.len();
        let pipe = probe.pipeline.get_or_init(|| {
            let mut pipe = redis::Pipeline::with_capacity(2);
            // A key of another type answers GETRANGE with WRONGTYPE: as MGET answers nil
            // for it, that is no value (the fill overwrites it), not a failing backend.
            pipe.ignore_errors();
            let mut getrange = redis::Cmd::with_capacity(4, probe.key.len() + 16);
            getrange
                .arg("GETRANGE")
                .arg(&probe.key)
                .arg(0)
                .arg(probe.head.max(1) - 1);
            pipe.add_command(getrange);
            if n > 0 {
                pipe.add_command(mget_cmd(&probe.keys));
            }
            pipe
        });
        let mut answers: Vec<redis::Value> = self
            .run("GETRANGE + MGET", |mut c| async move {
                pipe.query_async(&mut c).await
            })
            .await?;
        let wrong = || {
            Error::new(
                ErrorKind::Backend,
                "GETRANGE + MGET answered the wrong shape",
            )
        };
        let values = match answers.len() {
            2 if n > 0 => answers
                .pop()
                .and_then(|reply| mget_reply(reply, n))
                .ok_or_else(wrong)?,
            1 if n == 0 => Vec::new(),
            _ => return Err(wrong()),
        };
        let head = match answers.pop() {
            Some(redis::Value::BulkString(head)) => Some(Bytes::from(head)),
            Some(redis::Value::ServerError(e)) if e.code() == "WRONGTYPE" => Some(Bytes::new()),
            // Refused (an ACL user without `+getrange`): the caller reads the value whole.
            Some(redis::Value::ServerError(e)) => {
                if !self
                    .getrange_refused
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::warn!(error = ?e, "cache: Redis refused GETRANGE; every hit reads \
                        its value whole. Allow `+getrange` to the cache's ACL user, or turn \
                        local copies off (CacheBuilder::local_copies(0))");
                }
                None
            }
            _ => return Err(wrong()),
        };
        Ok((head, values))
    }

    async fn set(&self, key: String, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        let cmd = &set_cmd(key, &value, ttl);
        self.run(
            "SET",
            |mut c| async move { cmd.query_async::<()>(&mut c).await },
        )
        .await
    }

    async fn get_or_create(
        &self,
        items: Vec<(String, Bytes, Option<Duration>)>,
    ) -> Result<Vec<Option<Bytes>>> {
        let n = items.len();
        let mut pipe = redis::pipe();
        for (key, value, ttl) in &items {
            create_and_get(&mut pipe, key, value, *ttl);
        }
        let pipe = &pipe;
        let values: Vec<Option<Vec<u8>>> = self
            .run("SET NX + GET", |mut c| async move {
                pipe.query_async(&mut c).await
            })
            .await?;
        if values.len() != n {
            return Err(Error::new(
                ErrorKind::Backend,
                "SET NX + GET answered the wrong number of values",
            ));
        }
        Ok(bytes(values))
    }

    async fn replace_and_delete(
        &self,
        key: String,
        value: Bytes,
        delete: Option<String>,
    ) -> Result<()> {
        // MULTI/EXEC by hand: WAIT must follow EXEC, outside the transaction.
        let mut pipe = replace_and_unlink(key, &value, delete);
        let Some((replicas, wait)) = self.wait else {
            let pipe = &pipe;
            return self
                .run("MULTI SET UNLINK EXEC", |mut c| async move {
                    pipe.query_async::<()>(&mut c).await
                })
                .await;
        };
        let wait_ms = wait.as_millis().clamp(1, u64::MAX as u128) as u64;
        pipe.cmd("WAIT").arg(replicas).arg(wait_ms);
        let pipe = &pipe;
        let (reached,): (u32,) = self
            .run_within(
                "MULTI SET UNLINK EXEC WAIT",
                self.timeout.saturating_add(wait),
                |mut c| async move { pipe.query_async(&mut c).await },
            )
            .await?;
        if reached < replicas {
            return Err(Error::new(
                ErrorKind::Backend,
                format!(
                    "the invalidation reached {reached} of {replicas} replicas within {wait:?}: \
                     a failover now could bring the old generation back"
                ),
            ));
        }
        Ok(())
    }

    async fn delete(&self, key: String) -> Result<bool> {
        let key = &key;
        let n: u64 = self
            .run("UNLINK", |mut c| async move {
                redis::cmd("UNLINK").arg(key).query_async(&mut c).await
            })
            .await?;
        Ok(n > 0)
    }

    async fn delete_prefix(&self, prefix: String, spare: String) -> Result<u64> {
        let pattern = glob_escape(&prefix);
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let pattern = &pattern;
            let (next, mut keys): (u64, Vec<Vec<u8>>) = self
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
            keys.retain(|key| !key.starts_with(spare.as_bytes()));
            if !keys.is_empty() {
                let keys = &keys;
                let n: u64 = self
                    .run("UNLINK", |mut c| async move {
                        redis::cmd("UNLINK").arg(keys).query_async(&mut c).await
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

    async fn set_nx(&self, key: String, value: Bytes, ttl: Duration) -> Result<bool> {
        let cmd = &set_nx_cmd(&key, &value, Some(ttl));
        let stored: Option<String> = self
            .run(
                "SET NX",
                |mut c| async move { cmd.query_async(&mut c).await },
            )
            .await?;
        Ok(stored.is_some())
    }

    async fn delete_if(&self, key: String, value: Bytes) -> Result<bool> {
        let mut invocation = self.delete_if.key(key);
        invocation.arg(&value[..]);
        let invocation = &invocation;
        let removed: u64 = self
            .run("delete if", |mut c| async move {
                invocation.invoke_async(&mut c).await
            })
            .await?;
        Ok(removed > 0)
    }

    fn shared(&self) -> bool {
        true
    }

    async fn scan(
        &self,
        prefix: String,
        contains: String,
        cursor: u64,
        count: usize,
    ) -> Result<ScanPage> {
        let pattern = &glob_containing(&prefix, &contains);
        let (next, keys): (u64, Vec<String>) = self
            .run("SCAN", |mut c| async move {
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(count)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        if keys.is_empty() {
            return Ok(ScanPage {
                cursor: next,
                keys: Vec::new(),
            });
        }
        let mut pipe = redis::pipe();
        // A key of another type (a set, a hash: the L1's bookkeeping, another program's)
        // answers STRLEN with WRONGTYPE: size 0, and the page goes on.
        pipe.ignore_errors();
        for key in &keys {
            pipe.cmd("STRLEN").arg(key).cmd("PTTL").arg(key);
        }
        let pipe = &pipe;
        let sizes: Vec<redis::RedisResult<i64>> = self
            .run("STRLEN + PTTL", |mut c| async move {
                pipe.query_async(&mut c).await
            })
            .await?;
        let keys = keys
            .into_iter()
            .zip(sizes.chunks_exact(2))
            .filter_map(|(key, pair)| {
                let ttl = *pair[1].as_ref().ok()?;
                // PTTL -2: the key expired since SCAN saw it.
                (ttl != -2).then(|| KeyInfo {
                    key,
                    size: pair[0].as_ref().map_or(0, |n| (*n).max(0) as u64),
                    ttl: u64::try_from(ttl).ok().map(Duration::from_millis),
                })
            })
            .collect();
        Ok(ScanPage { cursor: next, keys })
    }

    async fn ping(&self) -> Result<()> {
        RedisBackend::ping(self).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn scan_patterns_escape_both_parts() {
        assert_eq!(super::glob_containing("app:", ""), "app:*");
        assert_eq!(super::glob_containing("app:", "a*b"), "app:*a\\*b*");
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(
            super::glob_escape("app:1:a*b?[c]"),
            "app:1:a\\*b\\?\\[c\\]*"
        );
    }
}
