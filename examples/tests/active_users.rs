//! End to end: the real `active_users` server, started as its own process on a free port,
//! against the embedded cache and a private `redis-server`, driven by real HTTP requests.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cache_tests::RedisServer;

/// The running example; killed on drop.
struct Server {
    child: Child,
    base: String,
    output: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(cache_url: &str) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_active_users"))
            .env("PORT", "0")
            .env("CACHE_URL", cache_url)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the active_users binary starts");
        let stdout = child.stdout.take().unwrap();
        let output = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(
                        rest.split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_owned(),
                    );
                }
                lines.lock().unwrap().push(line);
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server says where it listens");
        Server {
            child,
            base,
            output,
        }
    }

    fn count(&self, needle: &str) -> usize {
        self.output
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits until the log holds `n` lines with `needle` (logs arrive through a pipe).
    async fn wait_for(&self, needle: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.count(needle) < n {
            assert!(
                Instant::now() < deadline,
                "expected {n} × {needle:?} in {:#?}",
                self.output.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        let response = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response
    }

    async fn users_in(&self, path: &str) -> (usize, bool, Option<String>) {
        let response = self.get(path).await;
        let age = response
            .headers()
            .get("age")
            .map(|v| v.to_str().unwrap().to_owned());
        let html = response.text().await.unwrap();
        (
            html.matches("<li").count(),
            html.contains("id=\"user-1\""),
            age,
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn the_seed_app_caches_and_invalidates(cache_url: &str) {
    let server = Server::start(cache_url);

    // Uncached: every request renders 700 active users from SQLite.
    assert_eq!(server.users_in("/users").await, (700, true, None));

    // The page cache: a miss, then a hit (with an Age header), the same body.
    let (n, _, age) = server.users_in("/users/page").await;
    assert_eq!((n, age), (700, None));
    let (n, _, age) = server.users_in("/users/page").await;
    assert_eq!(n, 700);
    assert!(age.is_some(), "the second GET is served from the cache");

    // The query cache logs as the seed does.
    assert_eq!(server.users_in("/users/query").await.0, 700);
    server.wait_for("Cache MISS for active users.", 1).await;
    assert_eq!(server.users_in("/users/query").await.0, 700);
    server.wait_for("Cache HIT for active users.", 1).await;
    assert_eq!(server.count("Cache MISS for active users."), 1);

    // Deactivating a user invalidates both, so the next GETs show the change.
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/users/1/deactivate", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(server.users_in("/users/query").await.0, 699);
    server.wait_for("Cache MISS for active users.", 2).await;
    let (n, has_user_1, age) = server.users_in("/users/page").await;
    assert_eq!(
        (n, has_user_1, age),
        (699, false, None),
        "the page was re-rendered"
    );
    let (n, _, age) = server.users_in("/users/page").await;
    assert_eq!(n, 699);
    assert!(age.is_some(), "and cached again");

    let stats: serde_json::Value = server.get("/stats").await.json().await.unwrap();
    assert_eq!(stats["backend_errors"], 0, "{stats}");
    assert!(stats["hits"].as_u64().unwrap() >= 3, "{stats}");
}

#[tokio::test]
async fn on_memory() {
    the_seed_app_caches_and_invalidates("memory://").await;
}

#[tokio::test]
async fn on_redis() {
    let redis = RedisServer::start();
    the_seed_app_caches_and_invalidates(&redis.url()).await;
    let mut conn = cache_tests::raw_connection(&redis.url()).await;
    let exists: bool = redis::cmd("EXISTS")
        .arg("active_users:1:active_users")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(exists, "the query entry lives in Redis");
}
