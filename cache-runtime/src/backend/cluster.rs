//! The Redis Cluster backend (`redis+cluster://`): redis-rs `cluster-async`, every operation
//! bounded by the cache's timeout, the same commands as [the Redis backend](super::redis),
//! each legal on a cluster.
//!
//! Which slot a key lives in is the [`Layout`](crate::key::Layout)'s choice: a value, its
//! lease and the copies of the counters it records share its bucket's slot, so a hit's
//! `MGET`, a fill's counter pipeline and an entry's `MULTI`/`EXEC` each go to one slot. This
//! backend keeps every command legal whatever it is given: an `MGET` over several slots is
//! split by redis-rs into one `MGET` per slot, sent concurrently (one round trip, not read at
//! one instant: see `docs/SCALING.md` for why that is safe), a pipeline is sent per slot, and
//! `MULTI`/`EXEC` only ever holds keys of one slot (a layout that broke that would get
//! `CROSSSLOT` errors, never a torn invalidation). Clearing a prefix runs `SCAN` on every
//! primary and `UNLINK`s what it finds (split per slot).
//!
//! The connection is made in the background, on the cache's own I/O runtime (so it outlives
//! the runtime that built the cache): a cluster that is down when the cache is built is not
//! an error; calls wait for the connection within their timeout, then run uncached. redis-rs
//! follows `MOVED`/`ASK` and refreshes its slot map after a failover by itself.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::try_join_all;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};

use super::redis::{
    DELETE_IF, create_and_get, glob_containing, glob_escape, mget_cmd, mget_reply,
    replace_and_unlink, set_cmd, set_nx_cmd,
};
use super::{Backend, KeyInfo, ScanPage, io};
use crate::error::{Error, ErrorKind, Result};
use crate::key::slot;

/// Bits of a [`Backend::scan`] cursor holding the node's own `SCAN` cursor; the bits above
/// say which primary (in the order of their first slot) is being scanned.
const NODE_CURSOR_BITS: u32 = 48;

/// A Redis Cluster reached through redis-rs's cluster client (one multiplexed connection
/// per node, following the cluster's slot map).
pub(crate) struct ClusterBackend {
    client: ClusterClient,
    state: Arc<Connecting>,
    timeout: Duration,
    delete_if: redis::Script,
    /// `CacheBuilder::wait_for_replicas`: replicas every invalidation must reach (on each
    /// primary it writes to), and how long it waits for them.
    wait: Option<(u32, Duration)>,
}

/// The connection, once made, and the attempt to make it.
#[derive(Default)]
struct Connecting {
    conn: Mutex<Option<ClusterConnection>>,
    /// An attempt is running.
    connecting: AtomicBool,
    /// Wakes the calls waiting for an attempt.
    attempted: tokio::sync::Notify,
}

impl Connecting {
    fn current(&self) -> Option<ClusterConnection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Seed nodes of a `redis+cluster://[user:password@]host:port[,host:port...]` URL as
/// `redis://` node URLs (`rediss://` for `rediss+cluster://`). `None` when it is not such a
/// URL; an error naming the problem when it is one, malformed.
pub(crate) fn seed_urls(raw: &str) -> Option<Result<Vec<String>>> {
    let (scheme, rest) = raw.split_once("://")?;
    let node_scheme = match scheme {
        "redis+cluster" => "redis",
        "rediss+cluster" => "rediss",
        _ => return None,
    };
    Some(seeds(node_scheme, rest))
}

fn seeds(node_scheme: &str, rest: &str) -> Result<Vec<String>> {
    if node_scheme == "rediss" && !cfg!(feature = "tls") {
        return Err(Error::config(
            "rediss+cluster:// needs TLS: enable the `tls` feature of cache-runtime",
        ));
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if !matches!(path, "" | "0") {
        return Err(Error::config(format!(
            "a Redis Cluster has only database 0, got `/{path}` in the URL"
        )));
    }
    let (user, hosts) = match authority.rsplit_once('@') {
        // `user:pw@h1:p1,user:pw@h2:p2` would read `pw@h1:p1,user:pw` as the password.
        Some((user, _)) if user.contains(',') => {
            return Err(Error::config(
                "credentials go once, before the first node: \
                 `redis+cluster://user:password@host:port,host:port`",
            ));
        }
        Some((user, hosts)) => (format!("{user}@"), hosts),
        None => (String::new(), authority),
    };
    let mut urls = Vec::new();
    for node in hosts.split(',') {
        let (host, port) = node.rsplit_once(':').ok_or_else(|| {
            Error::config(format!(
                "the cluster node `{node}` has no port: use `redis+cluster://host:port[,host:port...]`"
            ))
        })?;
        if host.is_empty() {
            return Err(Error::config(format!(
                "the cluster node `{node}` has no host"
            )));
        }
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(Error::config(format!(
                "invalid port `{port}` of the cluster node `{node}`"
            )));
        }
        urls.push(format!("{node_scheme}://{user}{host}:{port}"));
    }
    Ok(urls)
}

/// The error of a failed Redis answer to `op`.
fn failed(op: &'static str, e: redis::RedisError) -> Error {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Backend
    };
    Error::with_source(kind, op, e)
}

impl ClusterBackend {
    /// Connects in the background: a cluster that is down now is not an error.
    pub(crate) fn new(
        seeds: Vec<String>,
        timeout: Duration,
        wait: Option<(u32, Duration)>,
    ) -> Result<Self> {
        // Every operation is bounded by `timeout` here; only an invalidation's `WAIT` may take
        // longer, so the client's own bound leaves room for it.
        let longest = timeout.saturating_add(wait.map_or(Duration::ZERO, |(_, wait)| wait));
        let client = ClusterClient::builder(seeds)
            .connection_timeout(timeout)
            .response_timeout(longest)
            .retries(2)
            .min_retry_wait(5)
            .max_retry_wait(100)
            .build()
            .map_err(|e| {
                Error::with_source(ErrorKind::Config, "invalid Redis Cluster settings", e)
            })?;
        Ok(ClusterBackend {
            client,
            state: Arc::default(),
            timeout,
            delete_if: redis::Script::new(DELETE_IF),
            wait,
        })
    }

    /// The connection; when there is none yet, the outcome of one attempt (started here
    /// unless one is running) is waited for. The attempt runs on the I/O runtime, so that
    /// the connection's tasks outlive the caller's runtime, and finishes even when the
    /// caller gives up waiting.
    async fn connection(&self) -> Result<ClusterConnection> {
        let state = &self.state;
        if let Some(conn) = state.current() {
            return Ok(conn);
        }
        let attempted = state.attempted.notified();
        tokio::pin!(attempted);
        attempted.as_mut().enable();
        if let Some(conn) = state.current() {
            return Ok(conn);
        }
        if !state.connecting.swap(true, Ordering::AcqRel) {
            let client = self.client.clone();
            let state = self.state.clone();
            drop(io::spawn(async move {
                match client.get_async_connection().await {
                    Ok(conn) => *state.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn),
                    Err(e) => {
                        tracing::warn!(error = %e, "cache: cannot connect to the Redis Cluster yet; running uncached until it answers");
                    }
                }
                state.connecting.store(false, Ordering::Release);
                state.attempted.notify_waiters();
            }));
        }
        attempted.await;
        state.current().ok_or_else(|| {
            Error::new(
                ErrorKind::Backend,
                "connecting to the Redis Cluster failed (no seed node answered)",
            )
        })
    }

    /// Runs one operation within the timeout (waiting for the connection counts).
    async fn run<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T>
    where
        F: FnOnce(ClusterConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        self.run_within(op, self.timeout, f).await
    }

    async fn run_within<T, F, Fut>(&self, op: &'static str, bound: Duration, f: F) -> Result<T>
    where
        F: FnOnce(ClusterConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let answer = tokio::time::timeout(bound, async {
            let conn = self.connection().await?;
            f(conn).await.map_err(|e| failed(op, e))
        })
        .await;
        answer.unwrap_or_else(|_| {
            Err(Error::new(
                ErrorKind::Timeout,
                format!("{op}: no answer from the Redis Cluster within {bound:?}"),
            ))
        })
    }

    /// Sends a `PING` to every node.
    pub(crate) async fn ping(&self) -> Result<()> {
        self.run("PING", |mut c| async move {
            redis::cmd("PING").query_async::<()>(&mut c).await
        })
        .await
    }

    /// One slot of each primary, in slot order (`CLUSTER SLOTS`): where `SCAN`s go.
    async fn primaries(&self) -> Result<Vec<u16>> {
        let ranges: redis::Value = self
            .run("CLUSTER SLOTS", |mut c| async move {
                redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut c).await
            })
            .await?;
        let mut firsts: Vec<(u16, Vec<u8>)> = Vec::new();
        let redis::Value::Array(ranges) = ranges else {
            return Err(Error::new(
                ErrorKind::Backend,
                "CLUSTER SLOTS: not an array",
            ));
        };
        for range in ranges {
            let redis::Value::Array(range) = range else {
                continue;
            };
            let (Some(redis::Value::Int(start)), Some(redis::Value::Array(primary))) =
                (range.first(), range.get(2))
            else {
                continue;
            };
            // A primary is known by its id (third field), or its address.
            let id = match (primary.get(2), primary.first(), primary.get(1)) {
                (Some(redis::Value::BulkString(id)), _, _) => id.clone(),
                (_, Some(host), Some(port)) => format!("{host:?}:{port:?}").into_bytes(),
                _ => continue,
            };
            let Ok(start) = u16::try_from(*start) else {
                continue;
            };
            match firsts.iter_mut().find(|(_, known)| *known == id) {
                Some((first, _)) => *first = (*first).min(start),
                None => firsts.push((start, id)),
            }
        }
        let mut slots: Vec<u16> = firsts.into_iter().map(|(slot, _)| slot).collect();
        slots.sort_unstable();
        Ok(slots)
    }

    /// One `SCAN` page of the primary that owns `slot`.
    async fn scan_node(
        &self,
        slot: u16,
        cursor: u64,
        pattern: &str,
        count: usize,
    ) -> Result<(u64, Vec<String>)> {
        let value = self
            .run("SCAN", |mut c| async move {
                let mut cmd = redis::cmd("SCAN");
                cmd.arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(count);
                let route = Route::new(slot, SlotAddr::Master);
                c.route_command(
                    cmd,
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                )
                .await
            })
            .await?;
        redis::from_redis_value(value)
            .map_err(|e| Error::with_source(ErrorKind::Backend, "SCAN answered", e))
    }

    /// Sends `pipes` (each holding keys of one slot) concurrently; their answers, in order.
    async fn per_slot<T: redis::FromRedisValue + Send>(
        &self,
        op: &'static str,
        bound: Duration,
        pipes: Vec<redis::Pipeline>,
    ) -> Result<Vec<T>> {
        let pipes = &pipes;
        self.run_within(op, bound, |c| async move {
            try_join_all(pipes.iter().map(|pipe| {
                let mut c = c.clone();
                async move { pipe.query_async::<T>(&mut c).await }
            }))
            .await
        })
        .await
    }
}

/// Indices of `keys` grouped by hash slot, in order of first appearance.
fn by_slot<'k>(keys: impl Iterator<Item = &'k str>) -> Vec<Vec<usize>> {
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for (i, key) in keys.enumerate() {
        let slot = slot(key.as_bytes());
        match groups.iter_mut().find(|(s, _)| *s == slot) {
            Some((_, group)) => group.push(i),
            None => groups.push((slot, vec![i])),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

impl Backend for ClusterBackend {
    async fn mget(&self, keys: Vec<String>) -> Result<Vec<Option<Bytes>>> {
        let n = keys.len();
        let cmd = mget_cmd(&keys);
        let cmd = &cmd;
        // redis-rs splits an MGET over several slots into one per slot, sent concurrently,
        // and puts the answers back in the order of the keys.
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
        let groups = by_slot(items.iter().map(|(key, _, _)| key.as_str()));
        let pipes = groups
            .iter()
            .map(|group| {
                let mut pipe = redis::pipe();
                for &i in group {
                    let (key, value, ttl) = &items[i];
                    create_and_get(&mut pipe, key, value, *ttl);
                }
                pipe
            })
            .collect();
        let answers: Vec<Vec<Option<Vec<u8>>>> =
            self.per_slot("SET NX + GET", self.timeout, pipes).await?;
        let mut values = vec![None; items.len()];
        for (group, answer) in groups.iter().zip(answers) {
            if answer.len() != group.len() {
                return Err(Error::new(
                    ErrorKind::Backend,
                    "SET NX + GET answered the wrong number of values",
                ));
            }
            for (&i, value) in group.iter().zip(answer) {
                values[i] = value.map(Bytes::from);
            }
        }
        Ok(values)
    }

    async fn replace_and_delete(
        &self,
        key: String,
        value: Bytes,
        delete: Option<String>,
    ) -> Result<()> {
        // One slot (the layout puts an entry and its counter together): MULTI/EXEC is legal.
        let pipe = replace_and_unlink(key, &value, delete);
        self.replace_on_slots("MULTI SET UNLINK EXEC", vec![pipe])
            .await
    }

    async fn replace_all(&self, keys: Vec<String>, value: Bytes) -> Result<()> {
        let pipes = by_slot(keys.iter().map(String::as_str))
            .into_iter()
            .map(|group| {
                let mut pipe = redis::pipe();
                for i in group {
                    pipe.cmd("SET")
                        .arg(&keys[i])
                        .arg(&value[..])
                        .arg("XX")
                        .arg("KEEPTTL")
                        .ignore();
                }
                pipe
            })
            .collect();
        self.replace_on_slots("SET XX KEEPTTL", pipes).await
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
        let mut removed = 0;
        for node in self.primaries().await? {
            let mut cursor = 0;
            loop {
                let (next, mut keys) = self.scan_node(node, cursor, &pattern, 500).await?;
                keys.retain(|key| !key.starts_with(spare.as_str()));
                if !keys.is_empty() {
                    let keys = &keys;
                    // Split per slot by redis-rs; the counts are summed.
                    let n: u64 = self
                        .run("UNLINK", |mut c| async move {
                            redis::cmd("UNLINK").arg(keys).query_async(&mut c).await
                        })
                        .await?;
                    removed += n;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(removed)
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
        let pattern = glob_containing(&prefix, &contains);
        let nodes = self.primaries().await?;
        let index = usize::try_from(cursor >> NODE_CURSOR_BITS).unwrap_or(usize::MAX);
        let Some(&node) = nodes.get(index) else {
            return Ok(ScanPage::default());
        };
        let node_cursor = cursor & ((1 << NODE_CURSOR_BITS) - 1);
        let (next, keys) = self.scan_node(node, node_cursor, &pattern, count).await?;
        if next >> NODE_CURSOR_BITS != 0 {
            return Err(Error::new(
                ErrorKind::Backend,
                "SCAN cursor of a cluster node too large to page through",
            ));
        }
        let cursor = match next {
            0 if index + 1 < nodes.len() => ((index as u64) + 1) << NODE_CURSOR_BITS,
            0 => 0,
            next => ((index as u64) << NODE_CURSOR_BITS) | next,
        };
        if keys.is_empty() {
            return Ok(ScanPage {
                cursor,
                keys: Vec::new(),
            });
        }
        let groups = by_slot(keys.iter().map(String::as_str));
        let pipes = groups
            .iter()
            .map(|group| {
                let mut pipe = redis::pipe();
                for &i in group {
                    pipe.cmd("STRLEN").arg(&keys[i]).cmd("PTTL").arg(&keys[i]);
                }
                pipe
            })
            .collect();
        let answers: Vec<Vec<i64>> = self.per_slot("STRLEN + PTTL", self.timeout, pipes).await?;
        let mut sizes = vec![(0, -2); keys.len()];
        for (group, answer) in groups.iter().zip(answers) {
            for (&i, pair) in group.iter().zip(answer.chunks_exact(2)) {
                sizes[i] = (pair[0], pair[1]);
            }
        }
        let keys = keys
            .into_iter()
            .zip(sizes)
            // PTTL -2: the key expired since SCAN saw it.
            .filter(|(_, (_, ttl))| *ttl != -2)
            .map(|(key, (size, ttl))| KeyInfo {
                key,
                size: size.max(0) as u64,
                ttl: u64::try_from(ttl).ok().map(Duration::from_millis),
            })
            .collect();
        Ok(ScanPage { cursor, keys })
    }

    async fn ping(&self) -> Result<()> {
        ClusterBackend::ping(self).await
    }
}

impl ClusterBackend {
    /// Sends invalidation pipelines (each on one slot) concurrently, each followed by `WAIT`
    /// with [`CacheBuilder::wait_for_replicas`](crate::CacheBuilder::wait_for_replicas);
    /// an error unless every one was written (and reached its replicas).
    async fn replace_on_slots(
        &self,
        op: &'static str,
        mut pipes: Vec<redis::Pipeline>,
    ) -> Result<()> {
        let Some((replicas, wait)) = self.wait else {
            self.per_slot::<()>(op, self.timeout, pipes).await?;
            return Ok(());
        };
        let wait_ms = wait.as_millis().clamp(1, u64::MAX as u128) as u64;
        for pipe in &mut pipes {
            pipe.cmd("WAIT").arg(replicas).arg(wait_ms);
        }
        let reached: Vec<(u32,)> = self
            .per_slot(op, self.timeout.saturating_add(wait), pipes)
            .await?;
        let fewest = reached.iter().map(|(n,)| *n).min().unwrap_or(replicas);
        if fewest < replicas {
            return Err(Error::new(
                ErrorKind::Backend,
                format!(
                    "the invalidation reached {fewest} of {replicas} replicas within {wait:?}: \
                     a failover now could bring the old generation back"
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_from_urls() {
        let urls = seed_urls("redis+cluster://u:p@h1:7000,h2:7001")
            .unwrap()
            .unwrap();
        assert_eq!(urls, ["redis://u:p@h1:7000", "redis://u:p@h2:7001"]);
        assert_eq!(
            seed_urls("redis+cluster://h:1/").unwrap().unwrap(),
            ["redis://h:1"]
        );
        assert!(seed_urls("redis://h:1").is_none());
        let error = |url| seed_urls(url).unwrap().unwrap_err().to_string();
        assert!(error("redis+cluster://h1:7000,h2").contains("has no port"));
        assert!(error("redis+cluster://h:0").contains("invalid port"));
        assert!(error("redis+cluster://:7000").contains("no host"));
        assert!(error("redis+cluster://h:7000/3").contains("only database 0"));
        assert!(error("redis+cluster://u:p@h1:7000,u:p@h2:7001").contains("credentials go once"));
    }

    #[test]
    fn keys_are_grouped_by_slot() {
        let keys = ["a:{x}:1", "b", "c:{x}:2", "d"];
        let groups = by_slot(keys.iter().copied());
        assert_eq!(groups[0], [0, 2]);
        assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), 4);
    }
}
