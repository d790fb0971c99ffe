//! The process default cache: [`install`], [`scope`], [`scope_blocking`], [`current`]
//! (Django's `"default"`).

use std::sync::RwLock;

use super::Cache;

static INSTALLED: RwLock<Option<Cache>> = RwLock::new(None);

tokio::task_local! {
    static SCOPED: Cache;
}

/// Sets the process-wide default cache used by `#[cached_query]` and `#[cached_view]`
/// (Django's `"default"` cache). Installing again replaces it.
///
/// Until a cache is installed, cached functions run uncached (and say so once in the log).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let cache = cache_runtime::Cache::from_url("memory://").await.unwrap();
/// cache_runtime::install(cache);
/// assert!(cache_runtime::installed().is_some());
/// # });
/// ```
pub fn install(cache: Cache) {
    *INSTALLED.write().unwrap_or_else(|e| e.into_inner()) = Some(cache);
}

/// The installed default cache, if any.
pub fn installed() -> Option<Cache> {
    INSTALLED.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Runs `fut` with `cache` as the default for every cached function it calls, on this
/// task only: parallel tests each get their own cache. Tasks spawned inside do not
/// inherit it.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let cache = cache_runtime::Cache::from_url("memory://").await.unwrap();
/// let prefix = cache_runtime::scope(cache, async {
///     cache_runtime::current().unwrap().prefix().to_string()
/// }).await;
/// assert_eq!(prefix, "");
/// # });
/// ```
pub async fn scope<F: std::future::Future>(cache: Cache, fut: F) -> F::Output {
    SCOPED.scope(cache, fut).await
}

/// Runs `f` with `cache` as the default for every cached call it makes on this thread: the
/// [`scope`] of blocking code (a sync `#[cached_query]` called from `f`, at any depth).
///
/// ```
/// let cache = cache_runtime::block_on(cache_runtime::Cache::from_url("memory://")).unwrap();
/// let same = cache_runtime::scope_blocking(cache.clone(), || cache_runtime::current().unwrap());
/// assert_eq!(same.prefix(), cache.prefix());
/// assert!(cache_runtime::current().is_none(), "only inside");
/// ```
pub fn scope_blocking<T>(cache: Cache, f: impl FnOnce() -> T) -> T {
    SCOPED.sync_scope(cache, f)
}

/// The cache [`scope`]d (or [`scope_blocking`]ed) here, if any.
pub(crate) fn scoped() -> Option<Cache> {
    SCOPED.try_with(Cache::clone).ok()
}

/// The cache a cached function would use here: the task's [`scope`], else the
/// [`install`]ed one.
pub fn current() -> Option<Cache> {
    SCOPED.try_with(Cache::clone).ok().or_else(installed)
}

/// [`tokio::task::spawn_blocking`] for code that makes blocking cached calls from async code:
/// it runs `f` on tokio's blocking pool with the task's [`scope`](crate::scope)d cache, and
/// hands what the cached calls in `f` read to the fill this task runs, if any, so a cached
/// page that runs a blocking query this way follows that query (a plain `spawn_blocking`
/// loses both: its thread is not the task's).
///
/// ```
/// use cache_runtime::{cached_query, Cache};
///
/// #[cached_query(key = "answer")]
/// fn answer() -> u32 {
///     42 // a Diesel query, say
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let cache = Cache::from_url("memory://").await.unwrap();
/// cache_runtime::scope(cache.clone(), async {
///     assert_eq!(cache_runtime::spawn_blocking(answer).await.unwrap(), 42);
///     assert_eq!(cache_runtime::spawn_blocking(answer).await.unwrap(), 42);
/// })
/// .await;
/// assert_eq!(cache.stats().hits, 1);
/// # });
/// ```
///
/// # Errors
///
/// As `tokio::task::spawn_blocking`: when `f` panicked (or the runtime is shutting down).
///
/// # Panics
///
/// Outside a tokio runtime.
pub async fn spawn_blocking<T, F>(f: F) -> Result<T, tokio::task::JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let cache = scoped();
    let collect = crate::deps::active();
    let (out, collected) = tokio::task::spawn_blocking(move || {
        let run = || {
            if collect {
                crate::deps::collect_blocking(f)
            } else {
                (f(), None)
            }
        };
        match cache {
            Some(cache) => scope_blocking(cache, run),
            None => run(),
        }
    })
    .await?;
    if let Some(collected) = collected {
        crate::deps::hand_up(collected);
    }
    Ok(out)
}
