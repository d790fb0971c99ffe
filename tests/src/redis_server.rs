//! Real `redis-server` processes for tests: start, kill, restart, pause, resume.
//!
//! How servers are kept from outliving the tests: see the crate documentation.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, Once, OnceLock};
use std::time::{Duration, Instant};

/// The environment variable naming an already running Redis for [`redis_server_url`].
pub const REDIS_URL_ENV: &str = "CACHE_TEST_REDIS_URL";

/// The panic message when `redis-server` cannot be found.
pub const MISSING_REDIS_SERVER: &str = "redis-server not found on PATH. Install it: \
`apt-get install -y redis-server` (Debian/Ubuntu) or `brew install redis` (macOS), or set \
CACHE_TEST_REDIS_URL=redis://host:port/ to use a running server.";

/// How long a server gets to answer `PING` after it was spawned.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How many fresh ports [`RedisServer::start`] tries when the chosen one was taken meanwhile.
const PORT_ATTEMPTS: usize = 5;
/// How many lines of the server's log a startup panic shows.
const LOG_TAIL_LINES: usize = 40;
/// The log file, inside the server's directory.
const LOG_FILE: &str = "redis.log";

/// The supervisor: `sh -c SUPERVISOR sh DIR REDIS_SERVER ARGS...`.
///
/// Prints redis-server's pid on stdout (then closes stdout); redis-server's output goes to
/// the supervisor's stderr, which is the log file. Exits when redis-server exits, with its
/// status; removes DIR when the exit came from the lifeline closing (otherwise the harness
/// reads the log first and removes DIR itself).
///
/// The watchdog marks the lifeline's end with `true >FILE`, not `: >FILE`: when DIR is gone
/// (another test binary swept it once this one had exited), the redirection fails, and a
/// special builtin's failed redirection would end the watchdog before its `kill`.
///
/// The supervisor and its watchdog ignore HUP, INT and TERM: a Ctrl-C or a `timeout` signals
/// the whole process group, and the watchdog must outlive the test process to kill a server
/// that does not die of those signals itself (a `SIGSTOP`ped one). redis-server installs its
/// own INT and TERM handlers (a clean shutdown), so it still reacts to them.
const SUPERVISOR: &str = r#"
trap '' HUP INT TERM
dir=$1
shift
"$@" </dev/null >&2 &
pid=$!
echo "$pid"
exec >/dev/null 3<&0 </dev/null
{
  while read -r line <&3; do :; done
  true >"$dir/lifeline-closed"
  kill -9 "$pid" 2>/dev/null
} &
wd=$!
exec 3<&-
wait "$pid"
rc=$?
if [ -e "$dir/lifeline-closed" ]; then
  wait "$wd"
  rm -rf -- "$dir"
else
  kill -9 "$wd" 2>/dev/null
fi
exit "$rc"
"#;

/// A `redis-server` process owned by one test, on its own port of 127.0.0.1.
///
/// Started with `--save "" --appendonly no` (nothing persists: a [`restart`](Self::restart)
/// comes back empty) and its files in a fresh temporary directory. Every method takes `&self`,
/// so a server can be shared (`Arc<RedisServer>`) with the tasks of a test that kill or pause
/// it while others use it. Dropping it kills the process and removes its directory; if the
/// test process dies first, the server dies with it (see the [crate documentation](crate)).
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    binary: PathBuf,
    extra_args: Vec<String>,
    state: Mutex<Option<Running>>,
}

/// One incarnation of the server.
#[derive(Debug)]
struct Running {
    /// The `/bin/sh` supervisor.
    supervisor: Child,
    /// The write end of the lifeline: dropping it makes the watchdog kill redis-server.
    lifeline: Option<ChildStdin>,
    /// redis-server's own pid (the supervisor's child).
    pid: u32,
    /// The temporary directory holding the log (`--dir` too).
    dir: PathBuf,
}

/// Why a spawn did not give a running server (other failures panic right away).
enum SpawnError {
    /// redis-server could not bind the port: someone took it since we chose it.
    PortTaken { log_tail: String },
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers `PING`.
    ///
    /// Panics with install instructions when `redis-server` is not on `PATH`, and with the
    /// server's log when it does not come up within 10 s.
    #[track_caller]
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// Like [`start`](Self::start), with extra `redis-server` arguments appended, e.g.
    /// `RedisServer::start_with(&["--maxmemory", "1mb", "--maxmemory-policy", "allkeys-lru"])`.
    #[track_caller]
    pub fn start_with(args: &[&str]) -> RedisServer {
        let binary = redis_server_binary();
        let extra_args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = reserve_port();
            match spawn(&binary, port, &extra_args) {
                Ok(running) => {
                    return RedisServer {
                        port,
                        binary,
                        extra_args,
                        state: Mutex::new(Some(running)),
                    };
                }
                Err(SpawnError::PortTaken { log_tail }) => last_log = log_tail,
            }
        }
        panic!(
            "redis-server could not bind a free port in {PORT_ATTEMPTS} attempts; last log:\n{last_log}"
        )
    }

    /// `redis://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The TCP port, the same across [`restart`](Self::restart)s.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The redis-server process id, or `None` after [`kill`](Self::kill).
    pub fn pid(&self) -> Option<u32> {
        self.lock().as_ref().map(|r| r.pid)
    }

    /// The current incarnation's log file, or `None` after [`kill`](Self::kill).
    pub fn log_path(&self) -> Option<PathBuf> {
        self.lock().as_ref().map(|r| r.dir.join(LOG_FILE))
    }

    /// Kills the server with `SIGKILL` and waits until it is gone (its port closed, its
    /// directory removed). Idempotent. The server stays down until [`restart`](Self::restart).
    pub fn kill(&self) {
        if let Some(running) = self.lock().take() {
            stop(running);
        }
    }

    /// Kills the server if it runs, then starts a fresh, empty process on the same port and
    /// waits until it answers `PING`. Panics if the port was taken meanwhile.
    pub fn restart(&self) {
        let mut state = self.lock();
        if let Some(running) = state.take() {
            stop(running);
        }
        match spawn(&self.binary, self.port, &self.extra_args) {
            Ok(running) => *state = Some(running),
            Err(SpawnError::PortTaken { log_tail }) => panic!(
                "restarting redis-server: port {} was taken by another process while the \
                 server was down; log:\n{log_tail}",
                self.port
            ),
        }
    }

    /// Freezes the server with `SIGSTOP`: connections stay open, commands get no answer
    /// (a hung server, as opposed to [`kill`](Self::kill)'s refused connections).
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Thaws a [`pause`](Self::pause)d server with `SIGCONT`; it answers what was queued.
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, signal: &str) {
        let mut state = self.lock();
        let running = state.as_mut().unwrap_or_else(|| {
            panic!(
                "SIG{signal}: the redis-server on port {} was killed",
                self.port
            )
        });
        if let Ok(Some(status)) = running.supervisor.try_wait() {
            panic!(
                "SIG{signal}: the redis-server on port {} exited by itself ({status}); log:\n{}",
                self.port,
                log_tail(&running.dir)
            );
        }
        // The shell's builtin `kill`: no dependency, present wherever /bin/sh is.
        let status = Command::new("/bin/sh")
            .args(["-c", r#"kill -s "$1" "$2""#, "sh", signal])
            .arg(running.pid.to_string())
            .status()
            .expect("running /bin/sh to send a signal");
        assert!(
            status.success(),
            "kill -s {signal} {} failed: {status}",
            running.pid
        );
    }

    fn lock(&self) -> MutexGuard<'_, Option<Running>> {
        // A test that panicked while holding the lock leaves a usable state behind.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let running = self
            .state
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(running) = running {
            stop(running);
        }
    }
}

/// The URL of the Redis shared by all tests of this test binary.
///
/// `CACHE_TEST_REDIS_URL` when set (and not empty); otherwise one [`RedisServer`] started on
/// first use and kept for the life of the process (it dies with the process). Tests sharing
/// it must keep to their own keys: [`unique_prefix`](crate::unique_prefix).
pub fn redis_server_url() -> String {
    if let Some(url) = std::env::var_os(REDIS_URL_ENV)
        && !url.is_empty()
    {
        return url.to_string_lossy().into_owned();
    }
    static SHARED: OnceLock<RedisServer> = OnceLock::new();
    SHARED.get_or_init(RedisServer::start).url()
}

/// Finds an executable `redis-server` in `path` (a `PATH`-style list), or returns
/// [`MISSING_REDIS_SERVER`]. Empty entries are skipped rather than read as the current
/// directory.
pub fn locate_redis_server(path: Option<&OsStr>) -> Result<PathBuf, String> {
    let path = path.unwrap_or_default();
    std::env::split_paths(path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| MISSING_REDIS_SERVER.to_string())
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[track_caller]
fn redis_server_binary() -> PathBuf {
    match locate_redis_server(std::env::var_os("PATH").as_deref()) {
        Ok(path) => path,
        Err(msg) => panic!("{msg}"),
    }
}

/// A port of 127.0.0.1 that was free a moment ago and that no other server of this process
/// ever had (so a killed server's port is not handed to another test before it restarts).
fn reserve_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    for _ in 0..100 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .expect("binding 127.0.0.1:0 to find a free port");
        let port = listener
            .local_addr()
            .expect("local address of a bound listener")
            .port();
        drop(listener);
        // The ephemeral range never holds 6379, but the machine's own Redis is never ours.
        if port == 6379 {
            continue;
        }
        if HANDED_OUT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(port)
        {
            return port;
        }
    }
    panic!("no free port found on 127.0.0.1 in 100 attempts")
}

const DIR_PREFIX: &str = "cache-tests-redis-";

/// A fresh directory under the system's temp dir: `cache-tests-redis-{pid}-{port}-{n}`.
fn make_temp_dir(port: u16) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static SWEEP: Once = Once::new();
    SWEEP.call_once(sweep_stale_dirs);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("{DIR_PREFIX}{}-{port}-{n}", std::process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => return dir,
            // Left over by an earlier process with the same pid: take the next name.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("creating {}: {e}", dir.display()),
        }
    }
}

/// Removes the directories of test processes that are gone (Linux, through `/proc`).
///
/// The supervisor removes a server's directory itself whenever the lifeline closes first; a
/// directory survives only when the server died of a signal before that (Ctrl-C, `timeout`),
/// which leaves a few kilobytes of log behind. This sweep keeps those from piling up.
fn sweep_stale_dirs() {
    let proc_fs = Path::new("/proc");
    if !proc_fs.join("self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !proc_fs.join(pid.to_string()).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Spawns one incarnation on `port` and waits until it answers.
fn spawn(binary: &Path, port: u16, extra_args: &[String]) -> Result<Running, SpawnError> {
    let dir = make_temp_dir(port);
    let log = fs::File::create(dir.join(LOG_FILE))
        .unwrap_or_else(|e| panic!("creating {}: {e}", dir.join(LOG_FILE).display()));
    let port_arg = port.to_string();
    let mut supervisor = Command::new("/bin/sh")
        .arg("-c")
        .arg(SUPERVISOR)
        .arg("sh")
        .arg(&dir)
        .arg(binary)
        .args(["--port", &port_arg, "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(&dir)
        .args(extra_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("spawning /bin/sh to run {}: {e}", binary.display()));
    let lifeline = supervisor.stdin.take();
    let mut line = String::new();
    let stdout = supervisor.stdout.take().expect("piped stdout");
    let read = BufReader::new(stdout).read_line(&mut line);
    let pid = match read.ok().and_then(|_| line.trim().parse::<u32>().ok()) {
        Some(pid) => pid,
        None => {
            drop(lifeline);
            let _ = supervisor.wait();
            let tail = log_tail(&dir);
            let _ = fs::remove_dir_all(&dir);
            panic!("the redis-server supervisor printed no pid ({line:?}); log:\n{tail}");
        }
    };
    let running = Running {
        supervisor,
        lifeline,
        pid,
        dir,
    };
    wait_ready(running, port)
}

fn wait_ready(mut running: Running, port: u16) -> Result<Running, SpawnError> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Ok(Some(status)) = running.supervisor.try_wait() {
            // redis-server exited by itself: the supervisor leaves the directory to us.
            let tail = log_tail(&running.dir);
            stop(running);
            if tail.contains("Address already in use") || tail.contains("Failed listening on port")
            {
                return Err(SpawnError::PortTaken { log_tail: tail });
            }
            panic!("redis-server on port {port} exited during startup ({status}); log:\n{tail}");
        }
        // Another process may answer on the port (ours then fails to bind and exits, which
        // the check above sees): only our own pid counts.
        if probe(port) == Some(running.pid) {
            return Ok(running);
        }
        if Instant::now() >= deadline {
            let tail = log_tail(&running.dir);
            stop(running);
            panic!(
                "redis-server on port {port} did not answer PING within {}s; log:\n{tail}",
                STARTUP_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `PING` over a plain socket; on `+PONG`, the answering server's `process_id`.
fn probe(port: u16) -> Option<u32> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(1)))
        .ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut writer = stream;

    writer.write_all(b"*1\r\n$4\r\nPING\r\n").ok()?;
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    if line != "+PONG\r\n" {
        return None; // e.g. -LOADING
    }

    writer
        .write_all(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
        .ok()?;
    line.clear();
    reader.read_line(&mut line).ok()?;
    let len: usize = line.strip_prefix('$')?.trim_end().parse().ok()?;
    let mut body = vec![0; len + 2];
    reader.read_exact(&mut body).ok()?;
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
}

/// Closes the lifeline, waits for the supervisor (so redis-server is dead and reaped) and
/// removes the directory if the supervisor did not.
fn stop(mut running: Running) {
    drop(running.lifeline.take());
    let _ = running.supervisor.wait();
    let _ = fs::remove_dir_all(&running.dir);
}

fn log_tail(dir: &Path) -> String {
    let text = fs::read(dir.join(LOG_FILE))
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_else(|e| format!("(no log: {e})"));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}
