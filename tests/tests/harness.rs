//! Tests of the test harness itself: real redis-server processes, started, killed,
//! restarted, paused, resumed, and never leaked.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cache_tests::{
    MISSING_REDIS_SERVER, REDIS_URL_ENV, RedisServer, children_cpu_time, cpu_time,
    locate_redis_server, raw_connection, redis_server_url, unique_prefix,
};

/// Set in the child processes some tests start; names the child test to act as.
const CHILD_ENV: &str = "CACHE_TESTS_HARNESS_CHILD";

async fn ping(conn: &mut redis::aio::MultiplexedConnection) -> redis::RedisResult<String> {
    redis::cmd("PING").query_async(conn).await
}

/// A fresh connection attempt, bounded so a hung server cannot hang the test.
async fn try_connect(url: &str) -> Result<redis::aio::MultiplexedConnection, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    match tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("connect timed out".into()),
    }
}

fn alive(pid: u32) -> bool {
    Command::new("/bin/sh")
        .args(["-c", r#"kill -0 "$1" 2>/dev/null"#, "sh"])
        .arg(pid.to_string())
        .status()
        .expect("running /bin/sh")
        .success()
}

/// Waits (up to 5 s) until `pid` is gone and `dir` removed.
fn assert_cleaned_up(pid: u32, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while (alive(pid) || dir.exists()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(pid), "redis-server {pid} outlived its owner");
    assert!(!dir.exists(), "{} outlived its owner", dir.display());
}

fn server_dir(server: &RedisServer) -> PathBuf {
    server
        .log_path()
        .expect("running")
        .parent()
        .unwrap()
        .to_owned()
}

/// Runs this test binary again, as the single test `name`, with `env` applied
/// (`None` removes the variable).
fn run_child(name: &str, env: &[(&str, Option<&str>)]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, name);
    for (key, value) in env {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    cmd
}

fn is_child(name: &str) -> bool {
    std::env::var(CHILD_ENV).as_deref() == Ok(name)
}

fn empty_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cache-tests-empty-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn combined(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn start_ping_kill_restart() {
    let server = RedisServer::start();
    assert_eq!(
        server.url(),
        format!("redis://127.0.0.1:{}/", server.port())
    );
    assert_ne!(server.port(), 6379, "never the machine's own Redis");

    let mut conn = raw_connection(&server.url()).await;
    assert_eq!(ping(&mut conn).await.unwrap(), "PONG");
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async(&mut conn)
        .await
        .unwrap();

    let pid = server.pid().unwrap();
    let dir = server_dir(&server);
    server.kill();
    assert_eq!(server.pid(), None);
    assert!(!alive(pid), "kill() returns once the process is gone");
    assert!(!dir.exists());
    assert!(ping(&mut conn).await.is_err(), "old connection is dead");
    let refused = try_connect(&server.url()).await;
    assert!(refused.is_err(), "a killed server refuses connections");
    server.kill(); // idempotent

    let port = server.port();
    server.restart();
    assert_eq!(server.port(), port, "restart keeps the port");
    assert_ne!(server.pid(), Some(pid), "restart is a new process");
    let mut conn = try_connect(&server.url()).await.expect("restarted server");
    assert_eq!(ping(&mut conn).await.unwrap(), "PONG");
    let value: Option<String> = redis::cmd("GET")
        .arg("k")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(value, None, "nothing persists across a restart");

    // restart() of a running server kills it first.
    let pid = server.pid().unwrap();
    server.restart();
    assert!(!alive(pid));
    let mut conn = try_connect(&server.url()).await.expect("restarted server");
    assert_eq!(ping(&mut conn).await.unwrap(), "PONG");
}

#[tokio::test]
async fn pause_makes_commands_hang_and_resume_answers() {
    let server = RedisServer::start();
    let mut conn = raw_connection(&server.url()).await;
    assert_eq!(ping(&mut conn).await.unwrap(), "PONG");

    server.pause();
    let hung = tokio::time::timeout(Duration::from_millis(200), ping(&mut conn)).await;
    assert!(hung.is_err(), "a paused server does not answer: {hung:?}");

    server.resume();
    let answered = tokio::time::timeout(Duration::from_secs(5), ping(&mut conn)).await;
    assert_eq!(answered.expect("answers after resume").unwrap(), "PONG");
}

#[tokio::test]
async fn two_servers_are_independent() {
    let a = RedisServer::start();
    let b = RedisServer::start();
    assert_ne!(a.port(), b.port());
    assert_ne!(a.url(), b.url());

    let mut ca = raw_connection(&a.url()).await;
    let mut cb = raw_connection(&b.url()).await;
    let _: () = redis::cmd("SET")
        .arg("only-in-a")
        .arg(1)
        .query_async(&mut ca)
        .await
        .unwrap();
    let in_b: Option<i64> = redis::cmd("GET")
        .arg("only-in-a")
        .query_async(&mut cb)
        .await
        .unwrap();
    assert_eq!(in_b, None);

    a.kill();
    assert_eq!(
        ping(&mut cb).await.unwrap(),
        "PONG",
        "killing a leaves b alone"
    );
}

#[tokio::test]
async fn start_with_passes_extra_arguments() {
    let server =
        RedisServer::start_with(&["--maxmemory", "1mb", "--maxmemory-policy", "allkeys-lru"]);
    let mut conn = raw_connection(&server.url()).await;
    let maxmemory: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(maxmemory, ["maxmemory", "1048576"]);
    // The defaults still hold: nothing is persisted.
    let save: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("save")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(save, ["save", ""]);

    // Extra arguments survive a restart.
    server.restart();
    let mut conn = raw_connection(&server.url()).await;
    let policy: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(policy, ["maxmemory-policy", "allkeys-lru"]);
}

#[test]
#[should_panic(expected = "exited during startup")]
fn a_server_that_cannot_start_panics_with_its_log() {
    RedisServer::start_with(&["--no-such-option", "x"]);
}

#[test]
fn drop_kills_even_a_paused_server_and_removes_its_dir() {
    // A child that spins shows in this process's children's time once waited for.
    let children = children_cpu_time().expect("children's CPU time");
    let status = Command::new("/bin/sh")
        .args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        children_cpu_time().unwrap() > children,
        "the child's CPU time was not counted"
    );
    let server = RedisServer::start();
    let pid = server.pid().unwrap();
    let dir = server_dir(&server);
    assert!(dir.join("redis.log").exists());
    server.pause();
    drop(server);
    assert!(!alive(pid));
    assert!(!dir.exists());
}

/// Another test binary's sweep may remove a server's directory once its owner is gone, before
/// the watchdog has seen the lifeline close (consecutive test binaries, a few milliseconds
/// apart): the server must die all the same. (It outlived CI when the watchdog's marker
/// could not be written.)
#[test]
fn a_server_whose_dir_was_swept_still_dies_with_its_lifeline() {
    let server = RedisServer::start();
    let pid = server.pid().unwrap();
    let dir = server_dir(&server);
    std::fs::remove_dir_all(&dir).unwrap();
    drop(server);
    assert_cleaned_up(pid, &dir);
}

#[tokio::test]
async fn shared_server_is_started_once() {
    let url = redis_server_url();
    assert_eq!(redis_server_url(), url);
    let mut conn = raw_connection(&url).await;
    assert_eq!(ping(&mut conn).await.unwrap(), "PONG");
}

#[cfg(target_os = "linux")]
#[test]
fn cpu_time_grows_with_work_and_ends_with_the_process() {
    let me = std::process::id();
    let before = cpu_time(me).expect("this process's CPU time");
    // Spin until 50 ms of CPU show (a few clock ticks), however loaded the machine is.
    let start = Instant::now();
    while cpu_time(me).unwrap() < before + Duration::from_millis(50) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "spinning shows no CPU time"
        );
    }
    // A child that spins shows in this process's children's time once waited for.
    let children = children_cpu_time().expect("children's CPU time");
    let status = Command::new("/bin/sh")
        .args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        children_cpu_time().unwrap() > children,
        "the child's CPU time was not counted"
    );
    let server = RedisServer::start();
    let pid = server.pid().unwrap();
    assert!(cpu_time(pid).is_some());
    drop(server);
    assert_eq!(cpu_time(pid), None, "a killed server has no CPU time");
}

#[test]
fn unique_prefixes_differ() {
    let a = unique_prefix("harness");
    let b = unique_prefix("harness");
    assert_ne!(a, b);
    assert!(a.starts_with("harness-"), "{a}");
    assert!(!a.contains(':'), "a prefix may not contain `:`: {a}");
    assert!(a.contains(&std::process::id().to_string()), "{a}");
}

#[test]
fn locate_finds_redis_server_on_path() {
    let found = locate_redis_server(std::env::var_os("PATH").as_deref()).unwrap();
    assert!(found.ends_with("redis-server"), "{}", found.display());
}

#[test]
fn locate_reports_a_missing_binary_with_instructions() {
    let empty = empty_dir("locate");
    assert_eq!(
        locate_redis_server(Some(empty.as_os_str())),
        Err(MISSING_REDIS_SERVER.to_string())
    );
    assert_eq!(
        locate_redis_server(None),
        Err(MISSING_REDIS_SERVER.to_string())
    );
    assert_eq!(
        locate_redis_server(Some("".as_ref())),
        Err(MISSING_REDIS_SERVER.to_string()),
        "an empty PATH entry is not the current directory"
    );
    std::fs::remove_dir_all(empty).unwrap();
}

#[test]
fn missing_binary_is_a_clear_panic_not_a_skip() {
    let empty = empty_dir("missing");
    let output = run_child(
        "child_start_without_redis_on_path",
        &[("PATH", empty.to_str()), (REDIS_URL_ENV, None)],
    )
    .output()
    .unwrap();
    std::fs::remove_dir_all(empty).unwrap();
    let text = combined(&output);
    assert!(!output.status.success(), "the child must fail:\n{text}");
    assert!(text.contains(MISSING_REDIS_SERVER), "{text}");
    assert!(text.contains("1 failed"), "{text}");
}

#[test]
// Entry point of a child process started by missing_binary_is_a_clear_panic_not_a_skip; returns at once otherwise.
fn child_start_without_redis_on_path() {
    if !is_child("child_start_without_redis_on_path") {
        return;
    }
    // The shared server without CACHE_TEST_REDIS_URL starts one: the same panic.
    let _ = redis_server_url();
}

#[test]
fn shared_url_comes_from_the_environment_when_set() {
    let empty = empty_dir("env-url");
    let output = run_child(
        "child_print_shared_url",
        &[
            // No redis-server on PATH: proves none is started when the URL is given.
            ("PATH", empty.to_str()),
            (REDIS_URL_ENV, Some("redis://127.0.0.1:1/")),
        ],
    )
    .output()
    .unwrap();
    std::fs::remove_dir_all(empty).unwrap();
    let text = combined(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("SHARED-URL redis://127.0.0.1:1/"), "{text}");
}

#[test]
// Entry point of a child process started by shared_url_comes_from_the_environment_when_set; returns at once otherwise.
fn child_print_shared_url() {
    if !is_child("child_print_shared_url") {
        return;
    }
    println!("SHARED-URL {}", redis_server_url());
}

/// A test process killed with SIGKILL (no destructor, no atexit runs) takes its servers, the
/// shared one and a paused owned one, with it.
#[test]
fn servers_die_with_a_killed_test_process() {
    let mut child = run_child("child_hold_servers_until_killed", &[(REDIS_URL_ENV, None)])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut probe = None;
    for line in stdout.lines() {
        let line = line.unwrap();
        // libtest prints "test NAME ... " before the test's own output, on the same line.
        if let Some((_, rest)) = line.split_once("LEAK-PROBE ") {
            probe = Some(rest.to_owned());
            break;
        }
    }
    let probe = probe.unwrap_or_else(|| {
        let status = child.wait();
        panic!("the child printed no LEAK-PROBE line: {status:?}")
    });
    let fields: Vec<&str> = probe.split(' ').collect();
    let [shared_pid, shared_dir, owned_pid, owned_dir] = fields[..] else {
        panic!("bad probe line {probe:?}")
    };
    let servers = [
        (
            shared_pid.parse::<u32>().unwrap(),
            PathBuf::from(shared_dir),
        ),
        (owned_pid.parse::<u32>().unwrap(), PathBuf::from(owned_dir)),
    ];
    for (pid, dir) in &servers {
        assert!(alive(*pid), "server {pid} runs while the child lives");
        assert!(dir.exists());
    }

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    for (pid, dir) in &servers {
        assert_cleaned_up(*pid, dir);
    }
}

#[tokio::test]
// Entry point of a child process started by servers_die_with_a_killed_test_process; returns at once otherwise.
async fn child_hold_servers_until_killed() {
    if !is_child("child_hold_servers_until_killed") {
        return;
    }
    let mut shared = raw_connection(&redis_server_url()).await;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut shared)
        .await
        .unwrap();
    let shared_pid = info
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .unwrap()
        .trim()
        .to_owned();
    let dir: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("dir")
        .query_async(&mut shared)
        .await
        .unwrap();

    let owned = RedisServer::start();
    owned.pause();
    println!(
        "LEAK-PROBE {shared_pid} {} {} {}",
        dir[1],
        owned.pid().unwrap(),
        server_dir(&owned).display()
    );
    // Bounded: the parent kills us long before this ends.
    tokio::time::sleep(Duration::from_secs(60)).await;
}
