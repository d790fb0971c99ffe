//! What an invalidation costs when instances keep an L1: `invalidate_tag` called from one
//! process (which has no L1 itself, like an admin tool) while 0, 1 or 3 other processes
//! (`l1_worker`) read the tagged value through their L1 every 2 ms. The call returns once
//! every instance trusting its L1 has applied it, so its duration bounds the propagation
//! delay to the other processes: the table gives its p50, p99 and max, and how many reads
//! the workers served from their L1 and how many saw an old value (must be 0).
//!
//! ```text
//! cargo bench -p cache-tests --bench l1_propagation
//! ```
//! Under `cargo test` (no `--bench`) it runs 10 invalidations with one worker and checks
//! none served an old value.

use std::time::Duration;

use cache_runtime::Cache;
use cache_tests::{RedisServer, l1_workers, raw_connection, unique_prefix};

const INVALIDATIONS: usize = 300;

fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

struct Run {
    instances: usize,
    latencies_us: Vec<f64>,
    reads: u64,
    l1_hits: u64,
    stale: u64,
}

async fn run(url: &str, instances: usize, invalidations: usize) -> Run {
    let prefix = unique_prefix("l1-propagation");
    // Long enough for the start-up, the invalidations (5 ms apart at most) and a margin.
    let seconds = 1.5 + invalidations as f64 * 0.008;
    let workers: Vec<_> = (0..instances)
        .map(|_| l1_workers::spawn(env!("CARGO_BIN_EXE_l1_worker"), url, &prefix, seconds, 2))
        .collect();
    let cache = Cache::builder(url)
        .prefix(prefix.as_str())
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    let mut conn = raw_connection(url).await;
    tokio::time::sleep(Duration::from_millis(1000)).await; // the workers trust their L1s
    let mut latencies_us = Vec::with_capacity(invalidations);
    for n in 1..=invalidations as u64 {
        let took = l1_workers::change(&mut conn, &cache, &prefix, n).await;
        latencies_us.push(took.as_secs_f64() * 1e6);
        tokio::time::sleep(Duration::from_millis(5)).await; // the workers read it again
    }
    let (mut reads, mut l1_hits, mut stale) = (0, 0, 0);
    for worker in workers {
        let report = l1_workers::finish(worker);
        (reads, l1_hits, stale) = (
            reads + report.reads,
            l1_hits + report.l1_hits,
            stale + report.stale,
        );
    }
    latencies_us.sort_by(f64::total_cmp);
    Run {
        instances,
        latencies_us,
        reads,
        l1_hits,
        stale,
    }
}

fn main() {
    let server = RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if !measuring() {
        let run = rt.block_on(run(&server.url(), 1, 10));
        assert_eq!(run.stale, 0, "a worker served an invalidated value");
        println!("l1_propagation: 10 invalidations, no old value served (run with `cargo bench`)");
        return;
    }
    let runs: Vec<Run> = [0, 1, 3]
        .into_iter()
        .map(|n| rt.block_on(run(&server.url(), n, INVALIDATIONS)))
        .collect();
    println!("\n## l1_propagation: {INVALIDATIONS} `invalidate_tag` calls per row\n");
    println!("```sh\ncargo bench -p cache-tests --bench l1_propagation\n```\n");
    println!(
        "| other instances with an L1 | p50 µs | p99 µs | max µs | their reads | from their L1 | old values served |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for run in &runs {
        let at =
            |p: f64| run.latencies_us[((run.latencies_us.len() - 1) as f64 * p).round() as usize];
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {} | {} | {} |",
            run.instances,
            at(0.5),
            at(0.99),
            run.latencies_us.last().unwrap(),
            run.reads,
            run.l1_hits,
            run.stale
        );
    }
}
