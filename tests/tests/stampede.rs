//! Stampedes across processes: several real OS processes (the `stampede_worker` binary) share
//! one `redis-server` and hammer one hot key whose body takes 50 ms. With leases, each expiry
//! runs the body once in the whole fleet; with single-flight alone, once per process.

use std::process::{Command, Stdio};

use cache_tests::{raw_connection, redis_server_url, unique_prefix};

/// Runs `processes` workers of `mode` with `clients` callers each for `seconds`; returns
/// how many times the body ran in all of them, and the calls they made.
async fn fleet(mode: &str, processes: usize, clients: usize, seconds: f64) -> (u64, u64) {
    let url = redis_server_url();
    let prefix = unique_prefix(&format!("stampede-{mode}")).replace(':', "-");
    let workers: Vec<_> = (0..processes)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_stampede_worker"))
                .args([
                    &url,
                    &prefix,
                    mode,
                    &clients.to_string(),
                    &seconds.to_string(),
                ])
                .stdout(Stdio::piped())
                .spawn()
                .expect("start stampede_worker")
        })
        .collect();
    let mut calls = 0;
    for worker in workers {
        let out = worker.wait_with_output().expect("worker ran");
        assert!(out.status.success(), "worker failed: {out:?}");
        let line = String::from_utf8(out.stdout).unwrap();
        calls += line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse::<u64>().ok())
            .expect("calls N ...");
    }
    let mut conn = raw_connection(&url).await;
    let runs: Option<u64> = redis::cmd("GET")
        .arg(format!("{prefix}:runs"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let runs = runs.unwrap_or(0);
    println!(
        "{mode}: {processes} processes × {clients} callers for {seconds} s: {calls} calls, {runs} body runs"
    );
    (runs, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_key_expiring_under_load_runs_its_body_once_per_expiry_in_the_fleet() {
    // TTL 1 s over 3.5 s: the first fill and three expiries.
    let (runs, calls) = fleet("test", 4, 8, 3.5).await;
    assert!(calls > 1_000, "the fleet made {calls} calls");
    assert!(
        (3..=5).contains(&runs),
        "the body ran {runs} times for 4 fills across 4 processes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_leases_every_process_fills() {
    // The same load with single-flight only (TTL 2 s over 2.5 s: the first fill and one
    // expiry), so the test above can tell leases from single-flight.
    let (runs, _) = fleet("flight", 4, 8, 2.5).await;
    assert!(
        runs >= 6,
        "the body ran only {runs} times: 2 fills × 4 processes expected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_window_refreshes_once_per_expiry_in_the_fleet() {
    // TTL 2 s, stale = 10, over 5 s: the first fill and refreshes at about 2 and 4 s. A
    // process whose lookup saw the old value before another's refresh was stored, and which
    // took the lease after that refresh freed it, serves that refresh (it ran the body
    // again before: 6 runs for 4 in the stampede bench).
    let (runs, calls) = fleet("stale", 4, 8, 5.0).await;
    assert!(calls > 1_000, "the fleet made {calls} calls");
    assert!(
        (2..=3).contains(&runs),
        "the body ran {runs} times for 3 fills across 4 processes"
    );
}
