//! The dashboard in a real browser: headless Chromium, driven through chromedriver (W3C
//! WebDriver over HTTP), against the real `active_users` server after real traffic. The
//! page shows the traffic's numbers, reloads them by itself, a screenshot is saved, and its
//! invalidate button makes the next request a miss. `/metrics` is checked on the same run.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/test` installs them); without them
//! the test fails saying what to install, it is never skipped.

mod common;

use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::Server;
use serde_json::{Value, json};

const QUERY: &str = "active_users::app::active_users";
const PAGE: &str = "active_users::app::active_users_page";
const MISSING: &str = "chromium and chromedriver are needed for the dashboard test: run `apt-get install -y chromium chromium-driver` (Debian; `.ci/test` does it when run as root)";

/// chromedriver on a free port; killed on drop.
struct Driver {
    child: Child,
    url: String,
    profile: PathBuf,
}

impl Driver {
    async fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        // A process group of its own, which the browsers it starts join: Drop kills them
        // all, whatever happened to the session (a failed test never closes it).
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{MISSING} (starting chromedriver: {e})"));
        let profile =
            std::env::temp_dir().join(format!("dashboard-test-{}-{port}", std::process::id()));
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profile,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = reqwest::get(format!("{}/status", driver.url)).await
                && let Ok(status) = r.json::<Value>().await
                && status["value"]["ready"] == true
            {
                return driver;
            }
            assert!(Instant::now() < deadline, "chromedriver did not get ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn session(&self) -> Session {
        let chromium = ["/usr/bin/chromium", "/usr/lib/chromium/chromium"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or_else(|| panic!("{MISSING}"));
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--window-size=1400,1250",
            &format!("--user-data-dir={}", self.profile.display()),
        ];
        let answer = post(
            &format!("{}/session", self.url),
            json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": chromium, "args": args},
            }}}),
        )
        .await;
        let id = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {answer}"));
        Session {
            url: format!("{}/session/{id}", self.url),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

async fn post(url: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let answer: Value = response.json().await.unwrap();
    answer["value"].clone()
}

/// One browser window.
struct Session {
    url: String,
}

impl Session {
    async fn open(&self, url: &str) {
        post(&format!("{}/url", self.url), json!({ "url": url })).await;
    }

    /// The element `css` selects; panics with the page's text when there is none.
    async fn find(&self, css: &str) -> String {
        let found = post(
            &format!("{}/element", self.url),
            json!({"using": "css selector", "value": css}),
        )
        .await;
        match found["element-6066-11e4-a52e-4f735466cecf"].as_str() {
            Some(id) => id.to_owned(),
            None => panic!("no {css} on the page: {found}\n{}", self.text("body").await),
        }
    }

    async fn text(&self, css: &str) -> String {
        let script =
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;";
        let value = post(
            &format!("{}/execute/sync", self.url),
            json!({"script": script, "args": [css]}),
        )
        .await;
        value.as_str().unwrap_or_default().to_owned()
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        post(&format!("{}/element/{id}/click", self.url), json!({})).await;
    }

    async fn screenshot(&self) -> Vec<u8> {
        let answer = reqwest::get(format!("{}/screenshot", self.url))
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        base64::engine::general_purpose::STANDARD
            .decode(answer["value"].as_str().expect("a screenshot"))
            .unwrap()
    }

    /// Waits until `css`'s text satisfies `ok`, up to `within`.
    async fn wait_text(&self, css: &str, within: Duration, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        loop {
            let text = self.text(css).await;
            if ok(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{css} still reads {text:?} after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn close(self) {
        let _ = reqwest::Client::new().delete(&self.url).send().await;
    }
}

fn row(name: &str, cell: &str) -> String {
    format!(r#"tr[data-name="{name}"] td[{cell}]"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_real_traffic_and_its_button_invalidates() {
    let started = Instant::now();
    let driver = Driver::start().await;
    let server = Server::start("memory://");

    // Traffic: the query misses once then hits four times; the page once then twice.
    for _ in 0..5 {
        server.get("/users/query").await;
    }
    for _ in 0..3 {
        server.get("/users/page").await;
    }
    server.wait_for("Cache MISS for active users.", 1).await;

    let browser = driver.session().await;
    browser.open(&format!("{}/cache", server.base)).await;
    assert_eq!(browser.text(&row(QUERY, "data-hits")).await, "4");
    assert_eq!(browser.text(&row(QUERY, "data-misses")).await, "1");
    assert_eq!(browser.text(&row(QUERY, "data-ratio")).await, "80.0%");
    assert_eq!(browser.text(&row(PAGE, "data-hits")).await, "2");
    assert!(
        browser
            .text(&row(QUERY, "data-stored"))
            .await
            .contains("KiB in 1")
    );
    assert_eq!(browser.text("#total-hits").await, "6");
    assert!(browser.text("#hottest").await.starts_with(QUERY));
    browser
        .find("svg.chart.ratio polyline, svg.chart.ratio circle")
        .await;

    // The page reloads its numbers by itself.
    server.get("/users/query").await;
    browser
        .wait_text(&row(QUERY, "data-hits"), Duration::from_secs(8), |t| {
            t == "5"
        })
        .await;

    let png = browser.screenshot().await;
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    let artifact = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&artifact, &png).unwrap();
    println!("screenshot: {}", artifact.display());

    // The invalidate button of the query: the next request is a miss.
    browser
        .click(&format!(r#"button[data-invalidate="{QUERY}"]"#))
        .await;
    let listed = browser
        .wait_text("#invalidations tbody", Duration::from_secs(5), |t| {
            t.contains(QUERY)
        })
        .await;
    assert!(
        listed.contains("query") && listed.contains("dashboard"),
        "{listed}"
    );
    assert_eq!(server.count("Cache MISS for active users."), 1);
    server.get("/users/query").await;
    server.wait_for("Cache MISS for active users.", 2).await;

    // A POST without the page's token, or sent from another site, is refused.
    let html = server.get("/cache").await.text().await.unwrap();
    let token = html
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page holds a token");
    let client = reqwest::Client::new();
    let attempt = |csrf: &str, site: &str| {
        client
            .post(format!("{}/cache/invalidate", server.base))
            .header("sec-fetch-site", site)
            .form(&[("csrf", csrf), ("kind", "query"), ("name", QUERY)])
            .send()
    };
    assert_eq!(
        attempt("forged", "same-origin").await.unwrap().status(),
        403
    );
    assert_eq!(attempt(token, "cross-site").await.unwrap().status(), 403);
    let sent = attempt(token, "same-origin").await.unwrap();
    assert_eq!(sent.url().path(), "/cache", "redirected back to the page");

    // Prometheus metrics of the same traffic, by name, never by key.
    let metrics = server.get("/metrics").await.text().await.unwrap();
    let count = |metric: &str| -> u64 {
        let line = format!("{metric}{{name=\"{QUERY}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .unwrap_or_else(|| panic!("no {line} in\n{metrics}"))
            .parse()
            .unwrap()
    };
    assert_eq!(count("cache_hit_duration_seconds_count"), 5);
    assert_eq!(count("cache_fill_duration_seconds_count"), 2);
    assert_eq!(count("cache_hits_total"), 5);
    assert!(metrics.contains(r#"cache_invalidations_total{kind="query",result="ok"} 2"#));
    assert!(metrics.contains(r#"cache_backend_duration_seconds_bucket{op="read",name=""#));
    assert!(!metrics.contains("active_users:1:"), "no key is a label");

    browser.close().await;
    println!("dashboard test took {:?}", started.elapsed());
}
