//! `cachectl` end to end: the real binary against a real `redis-server` started by the
//! harness, logged in as an ACL user limited to the app's prefix and the commands the
//! README lists, over values written by real cached functions.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use cache_runtime::{Cache, cached_query};
use cache_tests::{RedisServer, raw_connection};

const PREFIX: &str = "shop";

static USER_CALLS: AtomicUsize = AtomicUsize::new(0);
static ACTIVE_CALLS: AtomicUsize = AtomicUsize::new(0);

#[derive(serde::Serialize, serde::Deserialize)]
struct User {
    id: u32,
    name: String,
}

#[cached_query(key = "user:{id}", ttl = 600, tags = ["users"])]
async fn user(id: u32) -> User {
    USER_CALLS.fetch_add(1, SeqCst);
    User {
        id,
        name: format!("user{id}"),
    }
}

#[cached_query(ttl = 600)]
async fn active() -> Vec<u32> {
    ACTIVE_CALLS.fetch_add(1, SeqCst);
    vec![1, 2, 3]
}

/// Runs `cachectl ARGS` with `CACHE_URL=url` (none when `None`) and `CACHE_PREFIX`.
fn cachectl(url: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cachectl"));
    command.args(args).env_remove("CACHE_URL");
    command.env("CACHE_PREFIX", PREFIX);
    if let Some(url) = url {
        command.env("CACHE_URL", url);
    }
    command.output().expect("cachectl runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// stdout of a run that must succeed.
fn ok(url: &str, args: &[&str]) -> String {
    let out = cachectl(Some(url), args);
    assert!(
        out.status.success(),
        "cachectl {args:?} failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// stderr and exit code of a run that must fail.
fn fails(url: Option<&str>, args: &[&str]) -> (String, i32) {
    let out = cachectl(url, args);
    assert!(!out.status.success(), "cachectl {args:?} should fail");
    (text(&out.stderr), out.status.code().unwrap_or(-1))
}

/// A server with an ACL user `app` who may use what the README lists, on `shop:*` only.
async fn server_with_acl_user() -> (RedisServer, String) {
    let server = RedisServer::start();
    let mut admin = raw_connection(&server.url()).await;
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "app",
            "on",
            ">apppw",
            "~shop:*",
            "+mget",
            "+getrange",
            "+get",
            "+set",
            "+pexpire",
            "+multi",
            "+exec",
            "+unlink",
            "+scan",
            "+ping",
            "+time",
            "+zrange",
            "+evalsha",
            "+script|load",
            "+strlen",
            "+pttl",
        ])
        .query_async(&mut admin)
        .await
        .unwrap();
    let url = format!("redis://app:apppw@127.0.0.1:{}/0", server.port());
    (server, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cachectl_reads_and_invalidates_what_the_app_stored() {
    let (server, url) = server_with_acl_user().await;
    let cache = Cache::builder(&url)
        .prefix(PREFIX)
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    cache_runtime::scope(cache.clone(), async {
        for id in 0..1500 {
            user(id).await;
        }
        active().await;
        user(1).await;
        active().await;
    })
    .await;
    assert_eq!(USER_CALLS.load(SeqCst), 1500);
    assert_eq!(ACTIVE_CALLS.load(SeqCst), 1);

    // stats: entries and bytes per name, over several SCAN pages (progress on stderr).
    let out = cachectl(Some(&url), &["stats"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stats = text(&out.stdout);
    let line = |name: &str| {
        stats
            .lines()
            .find(|l| l.ends_with(&format!("  {name}")))
            .unwrap_or_else(|| panic!("no {name} in\n{stats}"))
            .to_owned()
    };
    assert!(line("user").trim_start().starts_with("1500 "), "{stats}");
    let active_name = concat!(module_path!(), "::active");
    assert!(line(active_name).trim_start().starts_with("1 "), "{stats}");
    assert!(
        text(&out.stderr).contains("cachectl: scanned"),
        "a scan of several pages shows progress: {}",
        text(&out.stderr)
    );
    assert!(
        !cachectl(Some(&url), &["stats", "-q"])
            .stderr
            .starts_with(b"cachectl: scanned")
    );

    // keys: one query's entries with TTL and size.
    let keys = ok(&url, &["keys", "user"]);
    assert!(keys.contains("shop:1:user:42\n"), "{keys}");
    assert!(keys.contains("1500 entries"), "{keys}");
    let row = keys
        .lines()
        .find(|l| l.ends_with("  shop:1:user:42"))
        .unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert!(
        cols[0].starts_with("9m") || cols[0].starts_with("10m"),
        "TTL of 600 s: {row}"
    );
    assert!(cols[1].parse::<u64>().unwrap() > 20, "a size: {row}");
    let none = cachectl(Some(&url), &["keys", "nothing"]);
    assert!(text(&none.stdout).contains("0 entries"));
    assert!(text(&none.stderr).contains("cachectl stats"), "a hint");

    // get: the value decoded, with its generations.
    let value: serde_json::Value =
        serde_json::from_str(&ok(&url, &["get", "shop:1:user:42"])).unwrap();
    assert_eq!(value["kind"], "value");
    assert_eq!(value["codec"], "msgpack");
    assert_eq!(value["current"], true);
    assert_eq!(value["value"], serde_json::json!([42, "user42"]), "{value}");
    let deps = value["depends_on"].as_array().unwrap();
    assert!(deps.iter().any(|d| d["generation"] == "t:users"));
    let (missing, code) = fails(Some(&url), &["get", "shop:1:user:none"]);
    assert!(
        missing.contains("no value under `shop:1:user:none`"),
        "{missing}"
    );
    assert_eq!(code, 1);
    let (foreign, code) = fails(Some(&url), &["get", "other:1:x"]);
    assert!(foreign.contains("not a key of this cache"), "{foreign}");
    assert_eq!(code, 2);

    // invalidate tag: the next call is a miss.
    let said = ok(&url, &["invalidate", "tag", "users"]);
    assert_eq!(said.trim(), "invalidated tag users");
    let value: serde_json::Value =
        serde_json::from_str(&ok(&url, &["get", "shop:1:user:42"])).unwrap();
    assert_eq!(value["current"], false, "{value}");
    cache_runtime::scope(cache.clone(), user(42)).await;
    assert_eq!(
        USER_CALLS.load(SeqCst),
        1501,
        "invalidated by cachectl: a miss"
    );

    // invalidate query, by the function's path.
    ok(&url, &["invalidate", "query", active_name]);
    cache_runtime::scope(cache.clone(), active()).await;
    assert_eq!(ACTIVE_CALLS.load(SeqCst), 2);

    // invalidate view and path: the generations the library reads are replaced (a path's
    // covers every query string of it; invalidations never create counters).
    let mut conn = raw_connection(&server.url()).await;
    let view_gen = "shop:gen:v:app::page";
    let path_gen = "shop:gen:p:app::page:/users";
    for generation in [view_gen, path_gen] {
        let _: () = redis::cmd("SET")
            .arg(generation)
            .arg(&[1u8; 8][..])
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    ok(&url, &["invalidate", "view", "app::page"]);
    ok(&url, &["invalidate", "path", "app::page", "/users?page=2"]);
    let (view_now, path_now): (Vec<u8>, Vec<u8>) = redis::pipe()
        .get(view_gen)
        .get(path_gen)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_ne!(view_now, [1u8; 8], "the view's generation was replaced");
    assert_ne!(path_now, [1u8; 8], "the path's generation was replaced");
    assert_eq!((view_now.len(), path_now.len()), (8, 8));

    // clear: only with --yes, and only this prefix.
    let _: () = redis::cmd("SET")
        .arg("elsewhere")
        .arg("kept")
        .query_async(&mut conn)
        .await
        .unwrap();
    let (refused, code) = fails(Some(&url), &["clear"]);
    assert!(refused.contains("cachectl clear --yes"), "{refused}");
    assert_eq!(code, 2);
    let total = |stats: &str| -> u64 {
        let last = stats.lines().last().unwrap();
        assert!(last.ends_with("total under prefix `shop`"), "{stats}");
        last.split_whitespace().next().unwrap().parse().unwrap()
    };
    let before = total(&ok(&url, &["stats"]));
    assert!(
        before > 3000,
        "values, entry generations and the others: {before}"
    );
    let cleared = ok(&url, &["clear", "--yes"]);
    assert_eq!(
        cleared.trim(),
        format!("removed {before} keys under prefix `shop`")
    );
    let after = ok(&url, &["stats"]);
    assert_eq!(total(&after), 0, "{after}");
    let kept: Option<String> = redis::cmd("GET")
        .arg("elsewhere")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some("kept"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cachectl_errors_say_what_to_fix() {
    let (missing, code) = fails(None, &["stats"]);
    assert!(
        missing.starts_with("cachectl: CACHE_URL is not set"),
        "{missing}"
    );
    assert_eq!(code, 2);

    let (bad, code) = fails(Some("redis://127.0.0.1:6379/zero"), &["stats"]);
    assert!(bad.contains("must be a number, got `zero`"), "{bad}");
    assert_eq!(code, 2);

    let (scheme, _) = fails(Some("localhost:6379"), &["stats"]);
    assert!(scheme.contains("unsupported cache URL scheme"), "{scheme}");

    let (memory, code) = fails(Some("memory://"), &["stats"]);
    assert!(
        memory.contains("point CACHE_URL at the app's Redis"),
        "{memory}"
    );
    assert_eq!(code, 2);

    // A port nothing listens on: refused at once.
    let (down, code) = fails(Some("redis://127.0.0.1:1/0"), &["stats"]);
    assert!(
        down.contains("cannot reach the cache backend redis://127.0.0.1:1/0")
            && down.contains("refused"),
        "{down}"
    );
    assert_eq!(code, 1);

    // A wrong password: named, and the password is not printed.
    let (server, url) = server_with_acl_user().await;
    let wrong = url.replace("apppw", "nope");
    let (denied, code) = fails(Some(&wrong), &["stats"]);
    assert!(
        denied.contains("cannot reach the cache backend"),
        "{denied}"
    );
    assert!(!denied.contains("nope"), "{denied}");
    assert_eq!(code, 1);

    // Usage errors come from clap, with the valid choices.
    let (usage, code) = fails(Some(&url), &["invalidate", "everything"]);
    assert!(usage.contains("unrecognized subcommand"), "{usage}");
    assert_eq!(code, 2);
    drop(server);
}
