//! Stampedes across processes: 4 app processes × 8 concurrent callers on one hot key whose
//! body takes 50 ms (TTL 2 s), through expiries and an invalidation, for each protection:
//! none (hand-written get/set), single-flight only, leases, early refresh (leases + XFetch),
//! stale-while-revalidate (leases + `stale = 10`). Reports body runs and latency per variant,
//! side by side in one run, and draws `docs/stampede.svg`.
//!
//! ```text
//! cargo bench -p cache-tests --bench stampede
//! ```
//! Without `--bench` (as `cargo test` runs benches) it makes one short smoke run and writes
//! nothing.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use cache_runtime::Cache;
use cache_tests::{RedisServer, redis_server_url, unique_prefix};
use plotters::prelude::*;

const VARIANTS: [(&str, &str); 5] = [
    ("none", "no protection"),
    ("flight", "single-flight only"),
    ("lease", "lease"),
    ("early", "early refresh"),
    ("stale", "stale-while-revalidate"),
];

struct Run {
    label: &'static str,
    /// The variant's name, short enough for the chart's axis.
    short: &'static str,
    runs: u64,
    calls: u64,
    hist: BTreeMap<u32, u64>,
}

impl Run {
    /// The latency at quantile `q`, in ms (bucket `b` is 1.05^b µs, 5% wide).
    fn quantile_ms(&self, q: f64) -> f64 {
        let total: u64 = self.hist.values().sum();
        let target = (q * total as f64).ceil() as u64;
        let mut seen = 0;
        for (&b, &n) in &self.hist {
            seen += n;
            if seen >= target {
                return 1.05f64.powi(b as i32 + 1) / 1000.0;
            }
        }
        0.0
    }
}

async fn run(
    url: &str,
    mode: &'static str,
    label: &'static str,
    processes: usize,
    seconds: f64,
    invalidate_at: Option<f64>,
) -> Run {
    let prefix = unique_prefix(&format!("stampede-{mode}")).replace(':', "-");
    let workers: Vec<_> = (0..processes)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_stampede_worker"))
                .args([url, &prefix, mode, "8", &seconds.to_string()])
                .stdout(Stdio::piped())
                .spawn()
                .expect("start stampede_worker")
        })
        .collect();
    let cache = Cache::builder(url).prefix(&prefix).build().await.unwrap();
    if let Some(at) = invalidate_at {
        tokio::time::sleep(Duration::from_secs_f64(at)).await;
        cache.invalidate_tag("hot").await.unwrap();
        if mode == "none" {
            cache.delete("hot").await.unwrap();
        }
    }
    let mut calls = 0;
    let mut hist = BTreeMap::new();
    for worker in workers {
        let out = tokio::task::spawn_blocking(move || worker.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        let line = String::from_utf8(out.stdout).unwrap();
        let mut words = line.split_whitespace();
        words.next();
        calls += words
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        for pair in words.skip(1) {
            if let Some((b, n)) = pair.split_once(':') {
                *hist.entry(b.parse().unwrap()).or_default() += n.parse::<u64>().unwrap();
            }
        }
    }
    let mut conn = cache_tests::raw_connection(url).await;
    let runs: Option<u64> = redis::cmd("GET")
        .arg(format!("{prefix}:runs"))
        .query_async(&mut conn)
        .await
        .unwrap();
    Run {
        label,
        short: mode,
        runs: runs.unwrap_or(0),
        calls,
        hist,
    }
}

fn chart(runs: &[Run], path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (960, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(480);
    let n = runs.len() as u32;
    let max_runs = runs.iter().map(|r| r.runs).max().unwrap_or(1) as f64 * 1.15;
    let mut body = ChartBuilder::on(&left)
        .caption("body runs (4 processes, 6.5 s)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(70)
        .y_label_area_size(45)
        .build_cartesian_2d((0u32..n).into_segmented(), 0f64..max_runs)?;
    body.configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => runs
                .get(*i as usize)
                .map_or(String::new(), |r| r.short.to_owned()),
            _ => String::new(),
        })
        .draw()?;
    body.draw_series(runs.iter().enumerate().map(|(i, r)| {
        let i = i as u32;
        Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), r.runs as f64),
            ],
            BLUE.mix(0.6).filled(),
        )
    }))?;
    let max_p99 = runs.iter().map(|r| r.quantile_ms(0.99)).fold(1.0, f64::max) * 1.15;
    let mut latency = ChartBuilder::on(&right)
        .caption("p99 latency, ms", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(70)
        .y_label_area_size(45)
        .build_cartesian_2d((0u32..n).into_segmented(), 0f64..max_p99)?;
    latency
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => runs
                .get(*i as usize)
                .map_or(String::new(), |r| r.short.to_owned()),
            _ => String::new(),
        })
        .draw()?;
    latency.draw_series(runs.iter().enumerate().map(|(i, r)| {
        let i = i as u32;
        Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), r.quantile_ms(0.99)),
            ],
            RED.mix(0.6).filled(),
        )
    }))?;
    root.present()?;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let own = RedisServer::start();
    let url = if benching {
        own.url()
    } else {
        redis_server_url()
    };
    if !benching {
        let smoke = run(&url, "lease", "lease", 1, 0.3, None).await;
        assert!(
            smoke.calls > 0 && smoke.runs >= 1,
            "smoke run made no calls"
        );
        return;
    }
    // TTL 2 s over 6.5 s, an invalidation at 3 s: fills at 0, 2, 3 and 5 s.
    let mut results = Vec::new();
    for (mode, label) in VARIANTS {
        results.push(run(&url, mode, label, 4, 6.5, Some(3.0)).await);
    }
    println!(
        "## stampede: 4 processes × 8 callers, body 50 ms, TTL 2 s, 6.5 s, an invalidation at 3 s\n"
    );
    println!("```sh\ncargo bench -p cache-tests --bench stampede\n```\n");
    println!("| protection | body runs | calls | p50 ms | p99 ms | p99.9 ms | max ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in &results {
        println!(
            "| {} | {} | {} | {:.2} | {:.1} | {:.1} | {:.1} |",
            r.label,
            r.runs,
            r.calls,
            r.quantile_ms(0.5),
            r.quantile_ms(0.99),
            r.quantile_ms(0.999),
            r.quantile_ms(1.0)
        );
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/stampede.svg");
    chart(&results, path).expect("chart");
    println!("\nchart: docs/stampede.svg");
}
