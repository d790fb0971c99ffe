//! A real Redis Cluster of local `redis-server` processes for tests: each node a
//! [`RedisServer`] (so each dies with the test process through its own lifeline), joined
//! with `redis-cli --cluster create`.

use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::redis_server::RedisServer;

/// The environment variable naming an already running cluster for [`redis_cluster_url`]
/// (a `redis+cluster://host:port[,host:port...]` URL).
pub const CLUSTER_URL_ENV: &str = "CACHE_TEST_CLUSTER_URL";

/// How long a new cluster gets to agree on its slots (and its replicas to catch up).
const FORM_TIMEOUT: Duration = Duration::from_secs(30);

/// `cluster-node-timeout` of every node: how long a node may be unreachable before the
/// others mark it failed (and a replica takes over). Short, so a failover test is quick;
/// long enough that a loaded CI machine does not fail nodes that are only slow.
pub const NODE_TIMEOUT: Duration = Duration::from_millis(2000);

/// A Redis Cluster owned by one test (or one test binary): `primaries` primaries with the
/// 16,384 slots split evenly, each with `replicas_per_primary` replicas, on free ports of
/// 127.0.0.1.
///
/// Nodes run with `cluster-require-full-coverage no`, so that while a primary is down the
/// slots of the others keep being served (the default stops the whole cluster until a
/// replica takes over). Dropping the cluster kills every node; if the test process dies
/// first, they die with it.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `primaries × (1 + replicas_per_primary)` nodes, creates the cluster and waits
    /// until every node sees every slot served and every replica is in sync.
    ///
    /// Panics (with `redis-cli`'s output) when the cluster does not form within 30 s, and
    /// with install instructions when `redis-server` or `redis-cli` is missing.
    #[track_caller]
    pub fn start(primaries: usize, replicas_per_primary: usize) -> RedisCluster {
        assert!(primaries >= 3, "Redis Cluster needs at least 3 primaries");
        let timeout_ms = NODE_TIMEOUT.as_millis().to_string();
        let count = primaries * (1 + replicas_per_primary);
        let nodes: Vec<RedisServer> = (0..count)
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    &timeout_ms,
                    "--cluster-require-full-coverage",
                    "no",
                ])
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", &replicas_per_primary.to_string()])
            .arg("--cluster-yes")
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "running redis-cli (it comes with redis-server: `apt-get install -y \
                     redis-tools` if it is missing): {e}"
                )
            });
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = RedisCluster { nodes };
        let deadline = Instant::now() + FORM_TIMEOUT;
        while !cluster.formed(primaries, count - primaries) {
            assert!(
                Instant::now() < deadline,
                "the cluster did not form within {FORM_TIMEOUT:?}:\n{}",
                String::from_utf8_lossy(&output.stdout)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    /// Whether every node says the cluster is ok with every slot assigned, and sees
    /// `primaries` primaries each with its replicas online and in sync.
    fn formed(&self, primaries: usize, replicas: usize) -> bool {
        self.nodes.iter().all(|node| {
            let info = cli(node.port(), &["CLUSTER", "INFO"]);
            info.contains("cluster_state:ok")
                && info.contains("cluster_slots_ok:16384")
                && info.contains(&format!("cluster_known_nodes:{}", self.nodes.len()))
        }) && {
            let nodes = cli(self.nodes[0].port(), &["CLUSTER", "NODES"]);
            let masters = nodes.lines().filter(|l| l.contains("master")).count();
            let synced = self
                .nodes
                .iter()
                .filter(|n| {
                    let info = cli(n.port(), &["INFO", "replication"]);
                    info.contains("role:slave") && info.contains("master_link_status:up")
                })
                .count();
            masters == primaries && synced == replicas
        }
    }

    /// `redis+cluster://127.0.0.1:PORT,...` of every node: what `Cache::from_url` takes.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// Every node, primaries and replicas, in the order they were started.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The node serving `key` as a primary now (`CLUSTER KEYSLOT`, then `CLUSTER SHARDS`
    /// as one live node sees them).
    pub fn primary_of(&self, key: &str) -> &RedisServer {
        let port = self.primary_port_of(key);
        self.nodes
            .iter()
            .find(|n| n.port() == port)
            .expect("the primary is one of this cluster's nodes")
    }

    fn primary_port_of(&self, key: &str) -> u16 {
        let live = self.live_node();
        let slot: u16 = cli(live, &["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .expect("CLUSTER KEYSLOT answers a number");
        // CLUSTER NODES: `id addr flags master ping pong epoch state slot-ranges...`
        let nodes = cli(live, &["CLUSTER", "NODES"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| {
                let (start, end) = range.split_once('-').unwrap_or((range, range));
                matches!((start.parse::<u16>(), end.parse::<u16>()), (Ok(s), Ok(e)) if s <= slot && slot <= e)
            });
            if serves {
                let addr = fields[1].split('@').next().unwrap_or_default();
                return addr
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse().ok())
                    .expect("a node address with a port");
            }
        }
        panic!("no live primary serves slot {slot}:\n{nodes}")
    }

    /// A node that is running.
    fn live_node(&self) -> u16 {
        self.nodes
            .iter()
            .find(|n| n.pid().is_some())
            .expect("a live node")
            .port()
    }

    /// Waits until a live primary serves every slot again (after a primary was killed, its
    /// replica took over), for at most `timeout`; panics otherwise.
    pub fn wait_until_covered(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let live: Vec<&RedisServer> = self.nodes.iter().filter(|n| n.pid().is_some()).collect();
            if live.iter().all(|n| {
                let info = cli(n.port(), &["CLUSTER", "INFO"]);
                info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
            }) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no replica took over within {timeout:?}:\n{}",
                cli(live[0].port(), &["CLUSTER", "NODES"])
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The calls of `command` (lower case, e.g. `mget`) in `INFO commandstats` of each live
    /// node, in the order of [`nodes`](Self::nodes) (killed nodes left out).
    pub fn calls(&self, command: &str) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| n.pid().is_some())
            .map(|node| {
                crate::parse_commandstats(&cli(node.port(), &["INFO", "commandstats"]))
                    .get(command)
                    .map_or(0, |&(calls, _)| calls)
            })
            .collect()
    }

    /// How many keys starting with `prefix` each live node holds (`SCAN`, through
    /// `redis-cli --scan`), in the order of [`nodes`](Self::nodes).
    pub fn keys_per_node(&self, prefix: &str) -> Vec<usize> {
        let pattern = format!("{prefix}*");
        self.nodes
            .iter()
            .filter(|n| n.pid().is_some())
            .map(|node| {
                cli(node.port(), &["--scan", "--pattern", &pattern])
                    .lines()
                    .filter(|l| !l.is_empty())
                    .count()
            })
            .collect()
    }

    /// `CONFIG RESETSTAT` on every live node.
    pub fn reset_stats(&self) {
        for node in self.nodes.iter().filter(|n| n.pid().is_some()) {
            cli(node.port(), &["CONFIG", "RESETSTAT"]);
        }
    }
}

/// Runs `redis-cli -p PORT ARGS...` and returns its output (empty when it fails).
pub fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The URL of the Redis Cluster shared by all tests of this test binary.
///
/// `CACHE_TEST_CLUSTER_URL` when set (and not empty); otherwise one [`RedisCluster`] of three
/// primaries without replicas, started on first use and kept for the life of the process
/// (its nodes die with the process). Tests sharing it keep to their own keys:
/// [`unique_prefix`](crate::unique_prefix).
pub fn redis_cluster_url() -> String {
    if let Some(url) = std::env::var_os(CLUSTER_URL_ENV)
        && !url.is_empty()
    {
        return url.to_string_lossy().into_owned();
    }
    static SHARED: OnceLock<RedisCluster> = OnceLock::new();
    SHARED.get_or_init(|| RedisCluster::start(3, 0)).url()
}
