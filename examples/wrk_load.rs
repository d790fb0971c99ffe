//! External load against the release binary: `wrk` drives the real `active_users` server
//! (its own process, as deployed) and, in the same run, a ceiling: a plain axum server that
//! answers the same bytes from memory (`examples/ceiling.rs`). Reports req/s, p50 and p99,
//! and each target's ratio to the ceiling.
//!
//! ```text
//! apt-get install -y wrk       # Debian's wrk 4.1
//! cargo run --release -p cache-examples --example wrk_load -- [seconds per run, default 5] [rounds, default 2]
//! ```
//! The harness builds what it starts itself, with the profile it was built with:
//! `cargo build --release -p cache-examples --bin active_users` (as a user builds the app:
//! default features, so no lz4) and `cargo build --release -p cache-examples --example
//! ceiling`.
//!
//! Targets, each `wrk -t2 -c32 -d{seconds}s --latency` with the same browser headers:
//! 1. the ceiling, serving `/users/page`'s body and content type from memory;
//! 2. `/users/page` (`#[cached_view]`) with `CACHE_URL=memory://`;
//! 3. `/users/page` with `CACHE_URL` on a private `redis-server` started for the run
//!    (or `CACHE_TEST_REDIS_URL`);
//!    (local copies on, the default: a hit reads the page's header and generations);
//! 4. the round trip alone: the ceiling server making, before each answer, the same
//!    `GETRANGE` + `MGET` round trip a hit on a copy makes, hand-written with redis-rs (on a
//!    `redis-server` of its own, or `CACHE_TEST_REDIS_URL`): the most a page that asks Redis
//!    once per request can reach on this machine;
//! 5. `/users/page` on Redis with local copies off (`CACHE_LOCAL_COPIES_MB=0`: a hit reads
//!    the whole page);
//! 6. `/users/page` on Redis with an L1 in the app (`CACHE_L1_MB=64`);
//! 7. `/users` (uncached: SQLite + template on every request), on the memory app.
//!
//! After a 1 s warm-up of each, the seven run in rounds, in alternating order (1 2 3 ... 7 1 2
//! ...), so drift of the machine hits every target alike; the table shows every round and the
//! mean. On a shared virtual machine, rounds differ by up to a third: run more of them.
//! Beside req/s and latency, the CPU time the server, Redis and wrk each spent per request
//! (from `/proc`): where the time goes, and a figure other load on the machine disturbs far
//! less than req/s.
//! wrk, the servers and Redis share this machine's cores: the ratios within one run are the
//! point, not the absolute numbers.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail, ensure};

const WRK_THREADS: u32 = 2;
const WRK_CONNECTIONS: u32 = 32;
const WARM_UP_SECONDS: u64 = 1;
const REDIS_PAGE: &str = "`/users/page` `#[cached_view]`, Redis";
const ROUND_TRIP: &str =
    "the round trip alone: ceiling + hand-written redis-rs `GETRANGE` + `MGET`";

/// What a current desktop Firefox sends for a page load (no cookies), the same for every
/// target and for the harness's own fetches.
const BROWSER_HEADERS: [(&str, &str); 5] = [
    (
        "User-Agent",
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    ),
    (
        "Accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
    ),
    ("Accept-Encoding", "gzip, deflate, br, zstd"),
    ("Accept-Language", "en-US,en;q=0.5"),
    ("Upgrade-Insecure-Requests", "1"),
];

/// A server process of this run, killed on drop.
struct Server {
    name: &'static str,
    child: Child,
    base: String,
}

impl Server {
    /// Spawns `command` and waits for its `... listening on http://ADDR` line. Later output
    /// is drained; warnings and errors are forwarded to stderr.
    fn start(name: &'static str, mut command: Command) -> anyhow::Result<Server> {
        let mut child = command
            .env("PORT", "0")
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {name}: {command:?}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                } else if line.contains("WARN") || line.contains("ERROR") {
                    eprintln!("[{name}] {line}");
                }
            }
        });
        let mut server = Server {
            name,
            child,
            base: String::new(),
        };
        server.base = rx
            .recv_timeout(Duration::from_secs(60))
            .with_context(|| format!("{name} did not say where it listens"))?;
        Ok(server)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One wrk run, parsed from its `--latency` report.
#[derive(Debug, Clone, Copy, PartialEq)]
struct WrkRun {
    requests: u64,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn wrk_args(seconds: u64) -> Vec<String> {
    let mut args = vec![
        format!("-t{WRK_THREADS}"),
        format!("-c{WRK_CONNECTIONS}"),
        format!("-d{seconds}s"),
        "--latency".to_owned(),
    ];
    for (name, value) in BROWSER_HEADERS {
        args.push("-H".to_owned());
        args.push(format!("{name}: {value}"));
    }
    args
}

fn wrk(url: &str, seconds: u64) -> anyhow::Result<WrkRun> {
    let output = Command::new("wrk")
        .args(wrk_args(seconds))
        .arg(url)
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "wrk {url} failed ({}):\n{text}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    parse_wrk(&text).with_context(|| format!("reading wrk's report for {url}:\n{text}"))
}

/// Reads requests, Requests/sec and the 50% and 99% latencies from wrk's `--latency`
/// report. Non-2xx/3xx responses or socket errors are an error: a run that failed requests
/// measured something else.
fn parse_wrk(text: &str) -> anyhow::Result<WrkRun> {
    let (mut requests, mut rps, mut p50, mut p99) = (None, None, None, None);
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("50%"), Some(v)) => p50 = Some(latency_ms(v)?),
            (Some("99%"), Some(v)) => p99 = Some(latency_ms(v)?),
            (Some("Requests/sec:"), Some(v)) => rps = Some(v.parse::<f64>()?),
            (Some(n), Some("requests")) => requests = Some(n.parse::<u64>()?),
            (Some("Non-2xx"), _) => bail!("failed requests: {line}"),
            (Some("Socket"), Some("errors:")) => bail!("{line}"),
            _ => {}
        }
    }
    Ok(WrkRun {
        requests: requests.context("no request count")?,
        rps: rps.context("no Requests/sec")?,
        p50_ms: p50.context("no 50% latency (was --latency given?)")?,
        p99_ms: p99.context("no 99% latency")?,
    })
}

/// wrk's latency figures: `812.00us`, `1.25ms`, `2.00s`, `1.50m`.
fn latency_ms(value: &str) -> anyhow::Result<f64> {
    let split = value
        .find(|c: char| c.is_ascii_alphabetic())
        .with_context(|| format!("no unit in {value:?}"))?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse()?;
    Ok(match unit {
        "us" => number / 1e3,
        "ms" => number,
        "s" => number * 1e3,
        "m" => number * 60e3,
        "h" => number * 3600e3,
        _ => bail!("unknown unit in {value:?}"),
    })
}

/// Builds the app and the ceiling with this harness's own profile and target directory,
/// and returns their paths. Two invocations on purpose: building an example turns on the
/// crate's dev-dependencies, and with them cache-runtime features (lz4, through
/// cache-tests) that the app as users build it does not have.
fn build() -> anyhow::Result<(PathBuf, PathBuf)> {
    let exe = std::env::current_exe()?;
    let examples_dir = exe.parent().context("the harness's directory")?;
    let profile_dir = examples_dir.parent().context("the profile directory")?;
    let target_dir = profile_dir.parent().context("the target directory")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    for target in [["--bin", "active_users"], ["--example", "ceiling"]] {
        let mut command = Command::new(&cargo);
        command
            .args(["build", "--quiet", "--manifest-path", manifest])
            .arg("--target-dir")
            .arg(target_dir)
            .args(target);
        if !cfg!(debug_assertions) {
            command.arg("--release");
        }
        let status = command.status().context("running cargo build")?;
        ensure!(status.success(), "{command:?} failed: {status}");
    }
    Ok((
        profile_dir.join("active_users"),
        examples_dir.join("ceiling"),
    ))
}

fn app(
    binary: &Path,
    name: &'static str,
    cache_url: &str,
    env: &[(&str, &str)],
    db: &Path,
) -> anyhow::Result<Server> {
    let mut command = Command::new(binary);
    command
        .env("CACHE_URL", cache_url)
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .envs(env.iter().copied());
    Server::start(name, command)
}

/// `GET url` with the browser headers: (content type, body).
async fn fetch(client: &reqwest::Client, url: &str) -> anyhow::Result<(String, Vec<u8>)> {
    let mut request = client.get(url);
    for (name, value) in BROWSER_HEADERS {
        request = request.header(name, value);
    }
    let response = request.send().await?;
    ensure!(response.status() == 200, "GET {url}: {}", response.status());
    let content_type = response
        .headers()
        .get("content-type")
        .context("no content type")?
        .to_str()?
        .to_owned();
    Ok((content_type, response.bytes().await?.to_vec()))
}

async fn stats(client: &reqwest::Client, server: &Server) -> anyhow::Result<serde_json::Value> {
    Ok(client
        .get(server.url("/stats"))
        .send()
        .await?
        .json()
        .await?)
}

struct Target<'a> {
    name: &'static str,
    server: &'a Server,
    path: &'static str,
    /// The pid of the Redis this target's requests reach, if any.
    redis_pid: Option<u32>,
}

/// One timed run of one target, with the CPU each process spent on it.
#[derive(Debug, Clone, Copy)]
struct Measured {
    wrk: WrkRun,
    /// CPU µs per request of the server process, of Redis and of wrk (`None` where
    /// `/proc` or the process is not there to read).
    server_cpu: Option<f64>,
    redis_cpu: Option<f64>,
    wrk_cpu: Option<f64>,
}

fn measure(target: &Target, seconds: u64) -> anyhow::Result<Measured> {
    let server_pid = target.server.child.id();
    let server = cache_tests::cpu_time(server_pid);
    let redis = target.redis_pid.and_then(cache_tests::cpu_time);
    let client = cache_tests::children_cpu_time();
    let wrk = wrk(&target.server.url(target.path), seconds)?;
    let per_request = |before: Option<Duration>, after: Option<Duration>| {
        Some((after? - before?).as_secs_f64() * 1e6 / wrk.requests as f64)
    };
    Ok(Measured {
        wrk,
        server_cpu: per_request(server, cache_tests::cpu_time(server_pid)),
        redis_cpu: per_request(redis, target.redis_pid.and_then(cache_tests::cpu_time)),
        wrk_cpu: per_request(client, cache_tests::children_cpu_time()),
    })
}

/// `12.3`, or `-` when not measured.
fn micros(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{v:.1}"))
}

fn main() -> anyhow::Result<()> {
    const USAGE: &str = "usage: wrk_load [seconds per run] [rounds]";
    let seconds: u64 = match std::env::args().nth(1) {
        Some(s) => s.parse().context(USAGE)?,
        None => 5,
    };
    let rounds: usize = match std::env::args().nth(2) {
        Some(s) => s.parse().ok().filter(|&n| n > 0).context(USAGE)?,
        None => 2,
    };
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("apt-get install -y wrk");
        std::process::exit(1);
    }
    let (app_binary, ceiling_binary) = build()?;
    let redis = std::env::var(cache_tests::REDIS_URL_ENV)
        .is_err()
        .then(cache_tests::RedisServer::start);
    let redis_url = redis
        .as_ref()
        .map(|r| r.url())
        .unwrap_or_else(cache_tests::redis_server_url);
    let dir = std::env::temp_dir().join(format!("wrk_load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let redis_pid = redis.as_ref().and_then(|r| r.pid());
    // The hand-written round trip gets a Redis of its own, so the apps' command counts
    // stay theirs (on `CACHE_TEST_REDIS_URL` it shares it).
    let floor_redis = redis.is_some().then(cache_tests::RedisServer::start);
    let floor = floor_redis
        .as_ref()
        .map_or((redis_url.clone(), redis_pid), |r| (r.url(), r.pid()));
    let result = run(
        (seconds, rounds),
        &app_binary,
        &ceiling_binary,
        (&redis_url, redis_pid),
        (&floor.0, floor.1),
        &dir,
    );
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run(
    (seconds, rounds): (u64, usize),
    app_binary: &Path,
    ceiling_binary: &Path,
    (redis_url, redis_pid): (&str, Option<u32>),
    (floor_url, floor_pid): (&str, Option<u32>),
    dir: &Path,
) -> anyhow::Result<()> {
    let memory_app = app(
        app_binary,
        "memory app",
        "memory://",
        &[],
        &dir.join("memory.db"),
    )?;
    let redis_app = app(
        app_binary,
        "redis app",
        redis_url,
        &[],
        &dir.join("redis.db"),
    )?;
    let uncopied_app = app(
        app_binary,
        "redis app without copies",
        redis_url,
        &[("CACHE_LOCAL_COPIES_MB", "0")],
        &dir.join("uncopied.db"),
    )?;
    let l1_app = app(
        app_binary,
        "L1 app",
        redis_url,
        &[("CACHE_L1_MB", "64")],
        &dir.join("l1.db"),
    )?;

    // The page as a browser gets it; the first GET on each app fills its cache.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = reqwest::Client::new();
    let (content_type, page) = rt.block_on(fetch(&client, &memory_app.url("/users/page")))?;
    for redis_app in [&redis_app, &uncopied_app] {
        let from_redis = rt.block_on(fetch(&client, &redis_app.url("/users/page")))?;
        ensure!(
            from_redis == (content_type.clone(), page.clone()),
            "the apps on memory and Redis serve different pages"
        );
    }
    // Twice: the first fills (or reads Redis), the L1 keeps it.
    for _ in 0..2 {
        let from_l1 = rt.block_on(fetch(&client, &l1_app.url("/users/page")))?;
        ensure!(
            from_l1 == (content_type.clone(), page.clone()),
            "the app with an L1 serves another page"
        );
    }
    let body_file = dir.join("page.html");
    std::fs::write(&body_file, &page)?;
    // The ceiling, alone or making the round trip to `redis`, serving the app's page.
    let ceiling_server = |name: &'static str, redis: Option<&str>| -> anyhow::Result<Server> {
        let mut command = Command::new(ceiling_binary);
        command.arg(&body_file).arg(&content_type).args(redis);
        let server = Server::start(name, command)?;
        ensure!(
            rt.block_on(fetch(&client, &server.url("/users/page")))?
                == (content_type.clone(), page.clone()),
            "{name} serves other bytes than the app"
        );
        Ok(server)
    };
    let ceiling = ceiling_server("ceiling", None)?;
    let floor = ceiling_server("round trip", Some(floor_url))?;

    let targets = [
        Target {
            name: "ceiling (axum, bytes from memory)",
            server: &ceiling,
            path: "/users/page",
            redis_pid: None,
        },
        Target {
            name: "`/users/page` `#[cached_view]`, memory://",
            server: &memory_app,
            path: "/users/page",
            redis_pid: None,
        },
        Target {
            name: REDIS_PAGE,
            server: &redis_app,
            path: "/users/page",
            redis_pid,
        },
        Target {
            name: ROUND_TRIP,
            server: &floor,
            path: "/users/page",
            redis_pid: floor_pid,
        },
        Target {
            name: "`/users/page` `#[cached_view]`, Redis, no local copies",
            server: &uncopied_app,
            path: "/users/page",
            redis_pid,
        },
        Target {
            name: "`/users/page` `#[cached_view]`, Redis + L1",
            server: &l1_app,
            path: "/users/page",
            redis_pid,
        },
        Target {
            name: "`/users` uncached",
            server: &memory_app,
            path: "/users",
            redis_pid: None,
        },
    ];

    println!(
        "# wrk_load: {} bytes of `{content_type}`, {seconds} s per run, {rounds} rounds\n",
        page.len()
    );
    println!(
        "```sh\ncargo run --release -p cache-examples --example wrk_load -- {seconds} {rounds}"
    );
    let quoted: Vec<String> = wrk_args(seconds)
        .into_iter()
        .map(|a| if a.contains(' ') { format!("'{a}'") } else { a })
        .collect();
    println!("# each run: wrk {} URL\n```\n", quoted.join(" "));

    let before = (
        rt.block_on(stats(&client, &memory_app))?,
        rt.block_on(stats(&client, &redis_app))?,
        rt.block_on(stats(&client, &l1_app))?,
        rt.block_on(stats(&client, &uncopied_app))?,
    );
    let commands_before = rt.block_on(commandstats(redis_url))?;
    for target in &targets {
        wrk(&target.server.url(target.path), WARM_UP_SECONDS)?;
    }
    // runs[target][round]
    let mut runs: Vec<Vec<Measured>> = vec![Vec::new(); targets.len()];
    println!(
        "| round | target | requests | req/s | p50 ms | p99 ms | vs ceiling | \
         server CPU µs/req | Redis CPU µs/req | wrk CPU µs/req |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for round in 0..rounds {
        for (i, target) in targets.iter().enumerate() {
            let run = measure(target, seconds)?;
            let ceiling_rps = runs[0].get(round).map_or(run.wrk.rps, |c| c.wrk.rps);
            println!(
                "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.3} | {} | {} | {} |",
                round + 1,
                target.name,
                run.wrk.requests,
                run.wrk.rps,
                run.wrk.p50_ms,
                run.wrk.p99_ms,
                run.wrk.rps / ceiling_rps,
                micros(run.server_cpu),
                micros(run.redis_cpu),
                micros(run.wrk_cpu),
            );
            runs[i].push(run);
        }
    }
    let after = (
        rt.block_on(stats(&client, &memory_app))?,
        rt.block_on(stats(&client, &redis_app))?,
        rt.block_on(stats(&client, &l1_app))?,
        rt.block_on(stats(&client, &uncopied_app))?,
    );
    let commands_after = rt.block_on(commandstats(redis_url))?;

    let mean = |runs: &[Measured], f: fn(&Measured) -> f64| {
        runs.iter().map(f).sum::<f64>() / runs.len() as f64
    };
    let mean_cpu = |runs: &[Measured], f: fn(&Measured) -> Option<f64>| {
        let values: Option<Vec<f64>> = runs.iter().map(f).collect();
        values.map(|v| v.iter().sum::<f64>() / v.len() as f64)
    };
    let ceiling_rps = mean(&runs[0], |r| r.wrk.rps);
    println!("\nMean of the {rounds} rounds:\n");
    println!(
        "| target | req/s (rounds) | req/s | p50 ms | p99 ms | vs ceiling | \
         server CPU µs/req | Redis CPU µs/req | wrk CPU µs/req |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (target, runs) in targets.iter().zip(&runs) {
        let rounds: Vec<String> = runs.iter().map(|r| format!("{:.0}", r.wrk.rps)).collect();
        let rps = mean(runs, |r| r.wrk.rps);
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.3} | {} | {} | {} |",
            target.name,
            rounds.join(" / "),
            rps,
            mean(runs, |r| r.wrk.p50_ms),
            mean(runs, |r| r.wrk.p99_ms),
            rps / ceiling_rps,
            micros(mean_cpu(runs, |r| r.server_cpu)),
            micros(mean_cpu(runs, |r| r.redis_cpu)),
            micros(mean_cpu(runs, |r| r.wrk_cpu)),
        );
    }
    let rps_of = |name: &str| {
        let i = targets.iter().position(|t| t.name == name)?;
        Some(mean(&runs[i], |r| r.wrk.rps))
    };
    if let (Some(page), Some(round_trip)) = (rps_of(REDIS_PAGE), rps_of(ROUND_TRIP)) {
        println!(
            "\nThe Redis page against the round trip alone: {:.3} (what the cache costs beyond \
             asking Redis once per request)",
            page / round_trip
        );
    }

    // Every timed page request must have been a hit: no fill, no miss while wrk ran.
    for (name, (before, after)) in [
        (memory_app.name, (&before.0, &after.0)),
        (redis_app.name, (&before.1, &after.1)),
        (l1_app.name, (&before.2, &after.2)),
        (uncopied_app.name, (&before.3, &after.3)),
    ] {
        let delta =
            |field: &str| after[field].as_u64().unwrap_or(0) - before[field].as_u64().unwrap_or(0);
        println!(
            "\n{name} during the runs: {} hits ({} from the L1), {} misses, {} fills, {} backend errors",
            delta("hits"),
            delta("l1_hits"),
            delta("misses"),
            delta("fills"),
            delta("backend_errors")
        );
        ensure!(
            delta("misses") == 0 && delta("fills") == 0,
            "{name}: the timed page requests were not all hits"
        );
    }

    // What one page hit asks of Redis (warm-up and timed runs; nothing else used it): the
    // app with copies sends GETRANGE + MGET per hit, the one without an MGET.
    let hits_of = |before: &serde_json::Value, after: &serde_json::Value| {
        after["hits"].as_u64().unwrap_or(0) - before["hits"].as_u64().unwrap_or(0)
    };
    let copied_hits = hits_of(&before.1, &after.1);
    let hits = copied_hits + hits_of(&before.3, &after.3);
    println!(
        "\nRedis per page hit of the two Redis apps ({copied_hits} of {hits} hits with copies; \
         `INFO commandstats` over the runs):\n"
    );
    println!("| command | calls per hit | Redis µs per call |");
    println!("|---|---:|---:|");
    for (command, (calls, usec)) in &commands_after {
        let (calls_before, usec_before) = commands_before.get(command).copied().unwrap_or((0, 0));
        let (calls, usec) = (calls - calls_before, usec - usec_before);
        if calls * 100 < hits {
            continue; // INFO itself, setup: under one call per hundred hits
        }
        println!(
            "| `{command}` | {:.2} | {:.2} |",
            calls as f64 / hits as f64,
            usec as f64 / calls as f64
        );
    }
    Ok(())
}

/// `INFO commandstats`: command → (calls, total µs).
async fn commandstats(redis_url: &str) -> anyhow::Result<BTreeMap<String, (u64, u64)>> {
    let mut conn = cache_tests::raw_connection(redis_url).await;
    Ok(cache_tests::commandstats(&mut conn).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report of Debian's wrk 4.1.0.
    const REPORT: &str = "\
Running 5s test @ http://127.0.0.1:41234/users/page
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.20ms    1.02ms  31.74ms   92.10%
    Req/Sec    14.36k     1.71k   17.52k    70.00%
  Latency Distribution
     50%  812.00us
     75%    1.51ms
     90%    2.04ms
     99%    5.27ms
  142907 requests in 5.00s, 5.73GB read
Requests/sec:  28581.40
Transfer/sec:      1.15GB
";

    #[test]
    fn reads_wrk_reports() {
        assert_eq!(
            parse_wrk(REPORT).unwrap(),
            WrkRun {
                requests: 142907,
                rps: 28581.40,
                p50_ms: 0.812,
                p99_ms: 5.27,
            }
        );
    }

    #[test]
    fn failed_requests_are_an_error() {
        let report = REPORT.replace(
            "Requests/sec:",
            "  Non-2xx or 3xx responses: 3\nRequests/sec:",
        );
        assert!(parse_wrk(&report).is_err());
        let report = REPORT.replace(
            "Requests/sec:",
            "  Socket errors: connect 0, read 2, write 0, timeout 0\nRequests/sec:",
        );
        assert!(parse_wrk(&report).is_err());
    }

    #[test]
    fn reads_every_latency_unit() {
        assert_eq!(latency_ms("812.00us").unwrap(), 0.812);
        assert_eq!(latency_ms("2.00s").unwrap(), 2000.0);
        assert_eq!(latency_ms("1.50m").unwrap(), 90000.0);
        assert!(latency_ms("12").is_err());
    }
}
