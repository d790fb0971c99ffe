//! Driving the `l1_worker` binary (`tests/src/bin/l1_worker.rs`), shared by the L1 tests and
//! the `l1_propagation` bench: start workers, change the value they read as the protocol says
//! (set `{prefix}:data`, invalidate tag `data`, then set `{prefix}:done`), read their report.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What a worker reported when it ended: `reads R l1_hits H stale S`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Report {
    pub reads: u64,
    pub l1_hits: u64,
    pub stale: u64,
}

/// Starts the worker binary `exe` (`env!("CARGO_BIN_EXE_l1_worker")` of the caller) on
/// `url` and `prefix` for `seconds`, reading every `pause_ms`.
pub fn spawn(exe: &str, url: &str, prefix: &str, seconds: f64, pause_ms: u64) -> Child {
    Command::new(exe)
        .args([url, prefix, &format!("{seconds:.1}"), &pause_ms.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start l1_worker")
}

/// Waits for a worker to end and reads its report; panics if it failed.
pub fn finish(worker: Child) -> Report {
    let out = worker.wait_with_output().expect("worker ran");
    assert!(out.status.success(), "worker failed: {out:?}");
    let line = String::from_utf8(out.stdout).unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    let number = |name: &str| {
        let i = words.iter().position(|w| *w == name).expect(name);
        words[i + 1].parse::<u64>().unwrap()
    };
    Report {
        reads: number("reads"),
        l1_hits: number("l1_hits"),
        stale: number("stale"),
    }
}

/// One change of the workers' value to `n`: sets it, invalidates tag `data` through `cache`,
/// then tells the workers it returned. Returns how long the invalidation took.
pub async fn change(
    conn: &mut redis::aio::MultiplexedConnection,
    cache: &cache_runtime::Cache,
    prefix: &str,
    n: u64,
) -> Duration {
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}:data"))
        .arg(n)
        .query_async(conn)
        .await
        .unwrap();
    let started = Instant::now();
    cache.invalidate_tag("data").await.unwrap();
    let took = started.elapsed();
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}:done"))
        .arg(n)
        .query_async(conn)
        .await
        .unwrap();
    took
}
