//! Test harness for the caching toolkit's integration tests and benchmarks.
//!
//! Tests run against **real** `redis-server` processes, never mocks:
//!
//! - [`redis_server_url`] gives the one Redis shared by every test of a test binary (or the
//!   server named by `CACHE_TEST_REDIS_URL`). Tests sharing it isolate their keys with
//!   [`unique_prefix`].
//! - [`RedisServer::start`] gives a test its own server, which it may [`kill`](RedisServer::kill),
//!   [`restart`](RedisServer::restart), [`pause`](RedisServer::pause) and
//!   [`resume`](RedisServer::resume) to exercise failure handling.
//! - [`redis_cluster_url`] gives the one Redis Cluster (three primaries) shared by every test
//!   of a test binary that asks for it (or the cluster named by `CACHE_TEST_CLUSTER_URL`);
//!   [`RedisCluster::start`] gives a test its own, with replicas, to kill a primary.
//! - [`raw_connection`] opens a plain `redis` crate connection for tests that poke Redis
//!   directly (read a raw value, delete a generation counter, ...).
//!
//! No `redis-server` on `PATH` is a panic with install instructions, never a silent skip.
//! The servers this harness starts die with the test process, however it ends.
//!
//! # Servers never outlive the tests
//!
//! Every server is started through a small `/bin/sh` supervisor whose
//! standard input is a pipe, the *lifeline*, whose only write end is held by this process
//! (Rust opens it close-on-exec, so no other child inherits it). The supervisor starts
//! `redis-server` in the background, and a watchdog subshell blocks reading the lifeline. The
//! read returns end-of-file exactly when the write end closes, which happens when
//!
//! - the harness stops the server ([`RedisServer::kill`], `Drop`), or
//! - the test process ends in *any* way: normal exit (statics such as the shared server are
//!   never dropped), panic, `abort`, a timeout's `SIGKILL`, Ctrl-C. The kernel closes the
//!   dead process's descriptors, so no code of ours has to run.
//!
//! The watchdog then `SIGKILL`s redis-server (which works even on a `SIGSTOP`ped one), the
//! supervisor reaps it and removes the server's temporary directory.
//!
//! Alternatives rejected: an `atexit` hook does not run on `SIGKILL`, `abort` or a signal;
//! `PR_SET_PDEATHSIG` is Linux-only, needs `unsafe` `pre_exec`, and fires when the *thread*
//! that spawned the child exits (libtest runs each test on its own thread, so the shared server
//! would die with the first test that happened to start it); polling `kill -0 $PPID` lags by
//! the poll interval and can be fooled by pid reuse. Pipe end-of-file is immediate, exact and
//! portable to every Unix.
//!
//! A server's directory survives only when a signal to the whole process group (Ctrl-C,
//! `timeout`) killed redis-server before the lifeline closed; the first server a later test
//! process starts removes the directories of test processes that are gone.

pub mod l1_workers;
mod redis_cluster;
mod redis_server;

pub use redis_cluster::{CLUSTER_URL_ENV, NODE_TIMEOUT, RedisCluster, cli, redis_cluster_url};

pub use redis_server::{
    MISSING_REDIS_SERVER, REDIS_URL_ENV, RedisServer, locate_redis_server, redis_server_url,
};

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A key prefix unique to one test: `{name}-{pid}-{nonce}-{counter}` (a prefix may not
/// contain `:`, see `CacheBuilder::prefix`).
///
/// The process id and a per-process random nonce keep concurrent and successive test runs
/// apart (a pid alone is reused across runs, which matters against a long-lived server named
/// by `CACHE_TEST_REDIS_URL` still holding keys with a TTL); the counter keeps the tests of one
/// process apart, even when one test asks twice.
pub fn unique_prefix(name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static NONCE: OnceLock<u32> = OnceLock::new();
    let nonce = *NONCE.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        // RandomState is seeded from the OS's randomness once per process.
        RandomState::new().hash_one(nanos) as u32
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{name}-{}-{nonce:08x}-{n}", std::process::id())
}

/// A multiplexed connection to `url`, for tests that talk to Redis directly.
///
/// Its timeouts are generous (connect 2 s, response 5 s) so that a loaded CI machine does not
/// make tests flaky; a test that expects a timeout wraps its call in `tokio::time::timeout`.
/// Panics (with the URL) if the server cannot be reached.
pub async fn raw_connection(url: &str) -> redis::aio::MultiplexedConnection {
    let client =
        redis::Client::open(url).unwrap_or_else(|e| panic!("invalid Redis URL {url:?}: {e}"));
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(5)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to Redis at {url}: {e}"))
}

/// The number `field` of Redis's `INFO {section}` (`total_net_output_bytes` of `stats`,
/// `expired_keys` of `all`): what a test reads of the server's own counters.
pub async fn redis_info(url: &str, section: &str, field: &str) -> u64 {
    let mut conn = raw_connection(url).await;
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("INFO {section} at {url}: {e}"));
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("INFO {section} has no number {field}"))
}

/// Each command's calls and total µs since the last `CONFIG RESETSTAT`, from the `INFO
/// commandstats` of the server behind `conn` (names as Redis gives them: `mget`,
/// `config|resetstat`).
pub async fn commandstats(
    conn: &mut redis::aio::MultiplexedConnection,
) -> BTreeMap<String, (u64, u64)> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap_or_else(|e| panic!("INFO commandstats: {e}"));
    parse_commandstats(&info)
}

/// Calls per command since the last `CONFIG RESETSTAT`, leaving out what a test sends to
/// count them (`INFO`, `CONFIG RESETSTAT`; the cache sends neither).
pub async fn command_calls(
    conn: &mut redis::aio::MultiplexedConnection,
) -> std::collections::HashMap<String, u64> {
    commandstats(conn)
        .await
        .into_iter()
        .map(|(command, (calls, _))| (command, calls))
        .filter(|(command, _)| command != "info" && command != "config|resetstat")
        .collect()
}

/// `cmdstat_get:calls=12,usec=34,usec_per_call=2.83,...` lines: command -> (calls, µs).
pub fn parse_commandstats(info: &str) -> BTreeMap<String, (u64, u64)> {
    info.lines()
        .filter_map(|line| {
            let (command, fields) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |name: &str| {
                fields
                    .split(',')
                    .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))?
                    .parse::<u64>()
                    .ok()
            };
            Some((command.to_owned(), (field("calls")?, field("usec")?)))
        })
        .collect()
}

/// One suite, both backends: for each `case`, a `memory::case` and a `redis::case` test that
/// call `case(Env::memory("case").await)` and `case(Env::redis("case").await)`, where `Env`
/// is the calling test file's own environment type.
///
/// ```text
/// cache_tests::on_both_backends!(a_hit_skips_the_body, versions_do_not_share_entries);
/// ```
#[macro_export]
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Env::memory(stringify!($case)).await).await
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Env::redis(stringify!($case)).await).await
                }
            )*
        }
    };
}

/// The cluster variant of [`on_both_backends!`]: for each `case`, a `cluster::case` test that
/// calls `case(Env::cluster("case").await)`, on the test binary's shared Redis Cluster
/// ([`redis_cluster_url`]). Cases that poke a single server's keys by hand stay off it.
///
/// ```text
/// cache_tests::on_cluster!(a_hit_skips_the_body, versions_do_not_share_entries);
/// ```
#[macro_export]
macro_rules! on_cluster {
    ($($case:ident),* $(,)?) => {
        mod cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Env::cluster(stringify!($case)).await).await
                }
            )*
        }
    };
}

/// The backend a test case runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded `memory://` store.
    Memory,
    /// The test binary's shared `redis-server` ([`redis_server_url`]).
    Redis,
    /// The test binary's shared Redis Cluster ([`redis_cluster_url`]).
    Cluster,
}

/// A cache of its own for one test: a [`unique_prefix`], and on Redis the shared server (or
/// cluster) with a 2 s operation timeout (so a loaded CI machine does not turn slow answers
/// into misses). `configure` adds the test's own settings. Returns the cache and, on Redis
/// (not on a cluster), its URL.
pub async fn test_cache(
    backend: Backend,
    test: &str,
    configure: impl FnOnce(cache_runtime::CacheBuilder) -> cache_runtime::CacheBuilder,
) -> (cache_runtime::Cache, Option<String>) {
    let url = match backend {
        Backend::Memory => "memory://".to_owned(),
        Backend::Redis => redis_server_url(),
        Backend::Cluster => redis_cluster_url(),
    };
    let mut builder = cache_runtime::Cache::builder(&url)
        .prefix(unique_prefix(test))
        .timeout(Duration::from_secs(2));
    if backend == Backend::Redis && with_l1() {
        builder = builder.l1(64 * 1024 * 1024);
    }
    let cache = configure(builder).build().await.expect("test cache");
    (cache, (backend == Backend::Redis).then_some(url))
}

/// Whether `CACHE_TEST_L1` asks for the Redis cases to run with an L1 in front
/// (`.ci/test` runs the parameterized suites once more that way).
pub fn with_l1() -> bool {
    std::env::var_os("CACHE_TEST_L1").is_some_and(|v| v != "0" && !v.is_empty())
}

/// The CPU time (user + system, all threads) process `pid` has used so far, from
/// `/proc/{pid}/stat`; `None` off Linux or once the process is gone.
///
/// Benchmarks divide its growth over a run by the work done: CPU per request or per call,
/// which other load on a shared machine disturbs far less than wall-clock throughput, and
/// which says in which process (server, Redis, client) the time goes. Resolution: one clock
/// tick (10 ms), so runs should last seconds.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    stat_cpu(&pid.to_string(), 11)
}

/// The CPU time used so far by this process's children that have ended and been waited for
/// (`cutime` + `cstime`): around one `Command::output()` of a load generator, what it used.
pub fn children_cpu_time() -> Option<Duration> {
    stat_cpu("self", 13)
}

/// Two adjacent tick counters of `/proc/{pid}/stat`, summed. `first` counts the fields after
/// the command name, which is in parentheses and may hold spaces: state is 0, utime 11,
/// stime 12, cutime 13, cstime 14 (fields 14 to 17 of proc(5)).
fn stat_cpu(pid: &str, first: usize) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let ticks =
        fields.get(first)?.parse::<u64>().ok()? + fields.get(first + 1)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(
        ticks as f64 / clock_ticks_per_second(),
    ))
}

/// `getconf CLK_TCK` (the kernel's USER_HZ), once; 100, its value on every common Linux,
/// if that fails.
fn clock_ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_redis_commandstats() {
        let info = "# Commandstats\r\n\
            cmdstat_evalsha:calls=10,usec=95,usec_per_call=9.50,rejected_calls=0,failed_calls=0\r\n\
            cmdstat_config|resetstat:calls=1,usec=3,usec_per_call=3.00\r\n\
            cmdstat_get:calls=7,usec=14,usec_per_call=2.00,rejected_calls=0,failed_calls=0\r\n";
        let stats = parse_commandstats(info);
        assert_eq!(stats["evalsha"], (10, 95));
        assert_eq!(stats["config|resetstat"], (1, 3));
        assert_eq!(stats["get"], (7, 14));
        assert_eq!(stats.len(), 3);
    }
}
