//! A small tokio runtime of the cache's own, on a thread of its own, started on first use and
//! living as long as the process: where redis-rs may spawn the helper tasks of a connection
//! set up outside any runtime (a cache built from blocking code), and where they outlive the
//! runtime that happened to build the cache.
//!
//! Requests themselves do not go through it: a hop to another thread per command costs about
//! 15% of a Redis hit (measured with `cargo bench -p cache-tests --bench hit_concurrent`). The
//! L1's subscription and heartbeat run on it.

use std::sync::OnceLock;

use tokio::runtime::Handle;

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

/// Runs `f` with the I/O runtime as the current one, so that what it spawns lives there.
pub(crate) fn enter<T>(f: impl FnOnce() -> T) -> T {
    let _guard = handle().enter();
    f()
}

/// Runs `future` on the I/O runtime, so that what it sets up (a cluster connection's tasks,
/// the L1's subscription and heartbeat) outlives the caller's runtime.
pub(crate) fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    handle().spawn(future)
}
