//! Cached calls from blocking code (a Diesel query, a sync `fn`): the same fill protocol,
//! driven to completion on the caller's thread, with no tokio runtime needed.
//!
//! [`block_on`] runs a future (the one [`crate::fill::run`] returns, exactly as an async call
//! awaits it) on the calling thread with `pollster`'s park/unpark executor, which nests: a
//! blocking query whose body calls another blocking query runs a second executor inside the
//! first, on the same thread, so the inner call's dependencies reach the outer fill's
//! collector ([`crate::deps`] is a task-local, which is a thread-local while a future is
//! polled). While it runs, a thread-local flag says so, and the protocol's few steps that
//! need a runtime switch here, in one place each:
//!
//! | step | async call | blocking call |
//! |---|---|---|
//! | a Redis command | the multiplexed `ConnectionManager` | a pooled synchronous connection with connect, read and write timeouts (`backend/redis.rs`) |
//! | a timeout | `tokio::time::timeout_at` ([`timeout_at`]) | the socket's timeouts, set from the same deadline |
//! | a pause (lease polls) | `tokio::time::sleep` ([`sleep`]) | `std::thread::sleep` |
//! | memory backend, single-flight, dependencies | the same code: they never need a runtime | |
//!
//! A blocking call inside a tokio worker works too: it blocks that worker for the call, as
//! any blocking code does. Run it on `tokio::task::spawn_blocking` (through
//! [`spawn_blocking`](crate::spawn_blocking), so a page still follows the queries it calls).

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;
#[cfg(feature = "redis")]
use std::time::Instant;

thread_local! {
    static BLOCKING: Cell<bool> = const { Cell::new(false) };
}

/// Whether the current thread runs a blocking cached call (its backend operations must not
/// need a runtime).
pub(crate) fn active() -> bool {
    BLOCKING.with(Cell::get)
}

/// Runs `fut` to completion on this thread, as a blocking cached call: what the expansion of
/// a sync `#[cached_query]` and its companions call, and what blocking code may call to
/// run any of the cache's async operations (`Cache::invalidate_tag`, `Cache::get`) without a
/// runtime. Nests: a blocking call inside a blocking call's body runs on the same thread.
///
/// ```
/// let cache = cache_runtime::block_on(cache_runtime::Cache::from_url("memory://")).unwrap();
/// cache_runtime::block_on(cache.set("greeting", &"hello", None)).unwrap();
/// let got: Option<String> = cache_runtime::block_on(cache.get("greeting")).unwrap();
/// assert_eq!(got.as_deref(), Some("hello"));
/// ```
pub fn block_on<F: Future>(fut: F) -> F::Output {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            BLOCKING.with(|b| b.set(self.0));
        }
    }
    let _restore = Restore(BLOCKING.with(|b| b.replace(true)));
    pollster::block_on(fut)
}

/// Pauses for `duration`: a timer of the runtime in an async call, the thread's sleep in a
/// blocking one.
pub(crate) async fn sleep(duration: Duration) {
    if active() {
        std::thread::sleep(duration);
    } else {
        tokio::time::sleep(duration).await;
    }
}

/// `fut`, unless `deadline` passes first (`Err`). In a blocking call `fut` is bounded by the
/// deadline itself (its sockets' timeouts are set from it), so it is simply awaited.
#[cfg(feature = "redis")]
pub(crate) async fn timeout_at<F: Future>(deadline: Instant, fut: F) -> Result<F::Output, Elapsed> {
    if active() {
        return Ok(fut.await);
    }
    tokio::time::timeout_at(deadline.into(), fut)
        .await
        .map_err(|_| Elapsed)
}

/// A deadline passed.
#[cfg(feature = "redis")]
#[derive(Debug)]
pub(crate) struct Elapsed;
