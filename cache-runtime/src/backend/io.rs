//! The runtime that owns every Redis connection: one small tokio runtime on a thread of its
//! own, started on first use and living as long as the process.
//!
//! redis-rs spawns a connection's driver task (and every reconnection) on the runtime that
//! happens to make the call. An app's runtime can end while its `Cache` lives on: a cache
//! built in a set-up runtime, or installed once and shared by many `#[tokio::test]`s, each
//! with a runtime of its own. The connection would die with the first runtime, and every
//! later call would fail. Here every Redis operation runs as a task of this runtime, so the
//! connection lives as long as the cache, whatever runtime the caller is on (or none).

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

fn handle() -> &'static Handle {
    static IO: OnceLock<Handle> = OnceLock::new();
    IO.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("cache-io")
            .build()
            .expect("cache-runtime: cannot start its I/O runtime");
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("cache-io".into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .expect("cache-runtime: cannot start its I/O thread");
        handle
    })
}

/// Runs `fut` on the I/O runtime.
pub(crate) fn spawn<F>(fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    handle().spawn(fut)
}

/// Runs `f` with the I/O runtime as the current one, so that what it spawns lives there.
pub(crate) fn enter<T>(f: impl FnOnce() -> T) -> T {
    let _guard = handle().enter();
    f()
}
