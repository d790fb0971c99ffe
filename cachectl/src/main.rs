//! `cachectl`: operate a `cache-runtime` cache in Redis from the shell, with the app's keys,
//! generations and ACL user (everything goes through `cache_runtime::admin`).
//!
//! ```text
//! export CACHE_URL=redis://app:password@127.0.0.1:6379/0 CACHE_PREFIX=active_users
//! cachectl stats                            # entries and bytes per query and view
//! cachectl keys active_users                # one query's entries: TTL, size, key
//! cachectl get active_users:1:active_users  # one value, decoded to JSON
//! cachectl invalidate tag users             # also: query <fn>, view <fn>, path <view> <path>
//! cachectl clear --yes                      # delete every key under the prefix
//! ```

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use cache_runtime::Cache;
use cache_runtime::admin::{self, Progress, StoredKey, Target};
use clap::{Parser, Subcommand};

/// Operate a cache-runtime cache in Redis: what is stored, one value, invalidations.
///
/// Reads CACHE_URL (the app's `redis://[user:password@]host:port/db`) and the key prefix
/// from --prefix or CACHE_PREFIX (the app's `CacheBuilder::prefix`, default empty).
#[derive(Parser, Debug)]
#[command(name = "cachectl", version)]
struct Cli {
    /// The app's key prefix [env: CACHE_PREFIX]
    #[arg(long, global = true)]
    prefix: Option<String>,
    /// Bound on each Redis command, in milliseconds.
    #[arg(long, global = true, default_value_t = 5000)]
    timeout_ms: u64,
    /// No progress lines on long scans.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Entries and bytes per query and view, and the generation counters.
    Stats,
    /// The entries of one query or view: TTL, size and key.
    ///
    /// NAME is a query's function path (`app::users::active`), or for a query with a `key`
    /// template the template's head (`user` for "user:{id}"), or a view's function path.
    Keys { name: String },
    /// One stored value (the whole key, as `keys` lists it), decoded to JSON when its codec
    /// describes itself (MessagePack, JSON), with the generations it depends on.
    Get { key: String },
    /// Invalidate in one write; values filled before are never served again.
    Invalidate {
        #[command(subcommand)]
        what: What,
    },
    /// Delete every key under the prefix (SCAN + UNLINK, never FLUSHDB).
    Clear {
        /// Really delete them.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand, Debug)]
enum What {
    /// Every value carrying one of these tags.
    Tag {
        #[arg(required = true)]
        tags: Vec<String>,
    },
    /// Every entry of these query functions (their paths: `app::users::active`).
    Query {
        #[arg(required = true)]
        functions: Vec<String>,
    },
    /// Every response of these views (their function paths; `layer` for a CacheLayer).
    View {
        #[arg(required = true)]
        functions: Vec<String>,
    },
    /// The responses of one view for one path and query (`/users?page=2`).
    Path { view: String, path: String },
}

/// A failure, said to the user; `usage` ones exit with 2.
struct Failure {
    message: String,
    usage: bool,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            usage: true,
        }
    }
}

impl From<cache_runtime::Error> for Failure {
    fn from(e: cache_runtime::Error) -> Failure {
        Failure {
            usage: e.is_config(),
            message: e.to_string(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("cachectl: {}", failure.message);
            ExitCode::from(if failure.usage { 2 } else { 1 })
        }
    }
}

async fn connect(cli: &Cli) -> Result<Cache, Failure> {
    let url = std::env::var("CACHE_URL").map_err(|_| {
        Failure::usage(
            "CACHE_URL is not set: export the app's cache URL, e.g. CACHE_URL=redis://127.0.0.1:6379/0",
        )
    })?;
    if url.starts_with("memory:") {
        return Err(Failure::usage(
            "CACHE_URL is memory://, which lives inside the app's process: point CACHE_URL at the app's Redis",
        ));
    }
    let prefix = cli
        .prefix
        .clone()
        .or_else(|| std::env::var("CACHE_PREFIX").ok())
        .unwrap_or_default();
    let cache = Cache::builder(&url)
        .prefix(prefix)
        .timeout(Duration::from_millis(cli.timeout_ms.max(1)))
        .circuit_breaker(0, Duration::ZERO)
        .build()
        .await?;
    admin::ping(&cache).await?;
    Ok(cache)
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let cache = connect(&cli).await?;
    let mut out = std::io::stdout().lock();
    let progress = progress_line(cli.quiet);
    match cli.command {
        Command::Stats => {
            let summary = admin::summary(&cache, progress).await?;
            let mut rows: Vec<(String, u64, u64)> = summary
                .names
                .iter()
                .map(|(name, usage)| (name.clone(), usage.entries, usage.bytes))
                .collect();
            rows.push((
                "(generation counters)".into(),
                summary.generations.entries,
                summary.generations.bytes,
            ));
            if summary.other.entries > 0 {
                rows.push((
                    "(other keys)".into(),
                    summary.other.entries,
                    summary.other.bytes,
                ));
            }
            let _ = writeln!(out, "{:>9} {:>12}  NAME", "ENTRIES", "BYTES");
            for (name, entries, bytes) in &rows {
                let _ = writeln!(out, "{entries:>9} {bytes:>12}  {name}");
            }
            let entries: u64 = rows.iter().map(|r| r.1).sum();
            let bytes: u64 = rows.iter().map(|r| r.2).sum();
            let _ = writeln!(
                out,
                "{entries:>9} {bytes:>12}  total under prefix `{}`",
                cache.prefix()
            );
        }
        Command::Keys { name } => {
            let keys = admin::keys(&cache, &name, progress).await?;
            let _ = writeln!(out, "{:>10} {:>10}  KEY", "TTL", "BYTES");
            for StoredKey { key, size, ttl, .. } in &keys {
                let _ = writeln!(out, "{:>10} {size:>10}  {key}", ttl_text(*ttl));
            }
            let bytes: u64 = keys.iter().map(|k| k.size).sum();
            let entries = if keys.len() == 1 { "entry" } else { "entries" };
            let _ = writeln!(out, "{} {entries}, {bytes} bytes", keys.len());
            if keys.is_empty() {
                eprintln!(
                    "cachectl: no entries named `{name}` (a query with a `key` template is stored under the template's head; `cachectl stats` lists the names)"
                );
            }
        }
        Command::Get { key } => match admin::get(&cache, &key).await? {
            Some(value) => {
                let text = serde_json::to_string_pretty(&value).unwrap_or_default();
                let _ = writeln!(out, "{text}");
            }
            None => {
                return Err(Failure {
                    message: format!("no value under `{key}`"),
                    usage: false,
                });
            }
        },
        Command::Invalidate { what } => {
            for target in targets(what) {
                admin::invalidate(&cache, &target).await?;
                let _ = writeln!(out, "invalidated {target}");
            }
        }
        Command::Clear { yes } => {
            if !yes {
                return Err(Failure::usage(format!(
                    "clear deletes every key under the prefix `{}`: run `cachectl clear --yes`",
                    cache.prefix()
                )));
            }
            let removed = admin::clear(&cache).await?;
            let _ = writeln!(
                out,
                "removed {removed} keys under prefix `{}`",
                cache.prefix()
            );
        }
    }
    Ok(())
}

fn targets(what: What) -> Vec<Target> {
    match what {
        What::Tag { tags } => tags.into_iter().map(Target::Tag).collect(),
        What::Query { functions } => functions.into_iter().map(Target::Query).collect(),
        What::View { functions } => functions.into_iter().map(Target::View).collect(),
        What::Path { view, path } => vec![Target::Path { view, path }],
    }
}

/// Progress on stderr once a scan takes more than one page: a line at the second page,
/// then every ten pages.
fn progress_line(quiet: bool) -> impl FnMut(Progress) {
    move |p: Progress| {
        if !quiet && p.pages % 10 == 2 {
            eprintln!(
                "cachectl: scanned {} keys in {} pages, {} kept so far",
                p.seen, p.pages, p.kept
            );
        }
    }
}

fn ttl_text(ttl: Option<Duration>) -> String {
    let Some(ttl) = ttl else {
        return "none".into();
    };
    let s = ttl.as_secs();
    match s {
        0 => format!("{}ms", ttl.as_millis()),
        1..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}
