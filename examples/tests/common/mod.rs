//! The real `active_users` server for end-to-end tests: its own process on a free port,
//! its log lines collected.
#![allow(dead_code)] // each test binary uses a part

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The running example; killed on drop.
pub struct Server {
    child: Child,
    pub base: String,
    output: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(cache_url: &str) -> Server {
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

    pub fn count(&self, needle: &str) -> usize {
        self.output
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits until the log holds `n` lines with `needle` (logs arrive through a pipe).
    pub async fn wait_for(&self, needle: &str, n: usize) {
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

    pub async fn get(&self, path: &str) -> reqwest::Response {
        let response = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response
    }

    pub async fn users_in(&self, path: &str) -> (usize, bool, Option<String>) {
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
