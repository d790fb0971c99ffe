//! Invalidation by generations: nothing is ever served after an invalidation that returned.
//!
//! Every stored value records, in its envelope, the generation of each thing it depends
//! on, read when its fill started: the whole cache (`all`), its query function
//! (`q:{function}`), its own entry (`e:{key}`), each of its tags (`t:{tag}`), for responses
//! their view (`v:{function}`) and path (`p:{function}:{path}`), and everything the cached
//! values its body read recorded (see [`crate::deps`]). The names are built in
//! [`crate::key::generation`].
//!
//! A read compares the recorded generations with the current ones in the same `MGET` as
//! the value itself; any difference, or a counter that is gone, makes the value stale: a
//! miss. Invalidating replaces a counter with a new random 64-bit value. Because
//! generations are compared for equality and new ones are random, a fill that started
//! before an invalidation can still write its value, but that value records the old
//! generation and is never served; and a lost counter (evicted, Redis restarted) is
//! recreated with a value no old entry recorded.

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::Instrument;

use crate::backend::Backend;
use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::events::Site;
use crate::key::generation;
pub(crate) use crate::l1::Change;

/// The longest an invalidation waits for the instances' L1s: longer than any instance's
/// trust, which bounds the wait by itself.
#[cfg(feature = "redis")]
const ANNOUNCE_BUDGET: Duration = Duration::from_secs(60);

impl Cache {
    /// Replaces generation `name` when it exists, keeping its expiry (and removes `entry`, a
    /// stored key, in the same atomic step), for a generated companion (`{fn}_invalidate`,
    /// `{fn}_invalidate_all`, a view's) or a function of [`crate::view`]. A counter that does
    /// not exist is left so: every value that recorded it is stale already, and the next fill
    /// creates it with a new random value. So invalidations never create keys; fills create
    /// every counter, with the lifetime of the values that record it (see [`counter_ttl`]).
    pub(crate) async fn bump(&self, name: &str, entry: Option<String>) -> Result<()> {
        let site = match generation::kind(name) {
            "query" => "a query's `_invalidate_all()`",
            "entry" => "a query's `_invalidate(..)`",
            "view" => "a view's `_invalidate_all()`",
            _ => "a view's `_invalidate(path)`",
        };
        self.bump_from(name, entry, Site::Named(site)).await
    }

    /// [`Cache::bump`], asked for at `site`: timed, counted, logged in a `cache.invalidate`
    /// span and listed on the dashboard.
    pub(crate) async fn bump_from(
        &self,
        name: &str,
        entry: Option<String>,
        site: Site,
    ) -> Result<()> {
        let value = Bytes::copy_from_slice(&rand::random::<u64>().to_le_bytes());
        let mut keys = self.inner.layout.replaced(name, entry.as_deref());
        let started = Instant::now();
        let span = tracing::info_span!("cache.invalidate", generation = name, site = %site);
        let backend = &self.inner.backend;
        let mut result = async {
            match keys.pop() {
                Some(key) if keys.is_empty() => backend.replace_and_delete(key, value, entry).await,
                // The copies of a counter on a cluster, one per bucket.
                Some(key) => {
                    keys.push(key);
                    backend.replace_all(keys, value).await
                }
                None => Ok(()),
            }
        }
        .instrument(span.clone())
        .await;
        if result.is_ok() {
            result = self
                .announce(Change::Generation(name))
                .instrument(span.clone())
                .await;
        }
        self.observed_invalidation(name, site, started.elapsed(), &result);
        match &result {
            Ok(()) => span.in_scope(|| tracing::debug!("cache invalidated")),
            Err(e) => span.in_scope(
                || tracing::error!(error = %e, generation = name, "cache: invalidation failed"),
            ),
        }
        result.map_err(|e| Error::with_source(e.kind(), format!("invalidating `{name}` failed"), e))
    }

    /// Tells every instance's L1 of `change`, and waits until each one that may serve from
    /// its L1 has applied it (see `crate::l1`); this instance's at once. Nothing to do on
    /// `memory://`.
    pub(crate) async fn announce(&self, change: Change<'_>) -> Result<()> {
        #[cfg(feature = "redis")]
        if let crate::backend::AnyBackend::Redis(redis) = &self.inner.backend {
            let own = self.inner.l1.as_deref();
            let names = crate::l1::Names::new(&self.inner.layout.l1_root());
            return crate::l1::announce(redis, &names, change, own, ANNOUNCE_BUDGET)
                .await
                .map_err(|e| {
                    Error::with_source(
                        e.kind(),
                        "the change is in Redis, but not every instance's L1 confirmed it",
                        e,
                    )
                });
        }
        let _ = change;
        Ok(())
    }

    /// Invalidates every value tagged `tag` (`tags = ["user:{id}"]` on a query or view), in
    /// one write, whatever the number of values. Values filled before this returns are never
    /// served after it.
    ///
    /// Tag values are interpolated with the key encoding: `{id}` with `id = 42` gives
    /// `user:42`; a string `"a:b"` gives `a%3Ab`.
    ///
    /// An error means the invalidation may not have happened: retry it, or fail the write
    /// that needed it. Unlike reads, it is never silently skipped.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let cache = cache_runtime::Cache::from_url("memory://").await?;
    /// cache.invalidate_tag("user:42").await?;
    /// # Ok::<(), cache_runtime::Error>(())
    /// # }).unwrap();
    /// ```
    #[track_caller]
    pub fn invalidate_tag<'a>(
        &'a self,
        tag: &'a str,
    ) -> impl Future<Output = Result<()>> + Send + 'a {
        let site = Site::At(std::panic::Location::caller());
        async move { self.bump_from(&generation::tag(tag), None, site).await }
    }

    /// Invalidates every value under this cache's prefix in one write (like bumping a
    /// global version): old values are never served again and expire by their TTL. Use
    /// [`Cache::clear`] to also free their memory.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let cache = cache_runtime::Cache::from_url("memory://").await?;
    /// cache.set("greeting", &"hello", None).await?;
    /// cache.invalidate_all().await?;
    /// assert_eq!(cache.get::<String>("greeting").await?, None);
    /// # Ok::<(), cache_runtime::Error>(())
    /// # }).unwrap();
    /// ```
    #[track_caller]
    pub fn invalidate_all(&self) -> impl Future<Output = Result<()>> + Send + '_ {
        let site = Site::At(std::panic::Location::caller());
        async move { self.bump_from(generation::ALL, None, site).await }
    }
}

/// The cache an invalidation acts on. None is an error: an invalidation that did not
/// happen must not look like success (the caller may have meant a cache it forgot to
/// `install` or `scope`).
pub(crate) fn require(cache: Option<Cache>, what: &str) -> Result<Cache> {
    cache.ok_or_else(|| {
        Error::new(
            crate::ErrorKind::Config,
            format!("cannot invalidate `{what}`: no cache installed (call cache_runtime::install, or run inside cache_runtime::scope)"),
        )
    })
}

/// Lifetime of a generation counter named from request data (an entry's `e:{key}`, a
/// path's `p:{view}:{path}`, an interpolated tag such as `t:user:42`), given the TTL of the
/// value a fill is about to record it in: twice that, at least a second. Every fill that
/// records the counter resets its expiry to this (see `Backend::get_or_create`), so it
/// outlives the values recording it, and counters a scanner made up expire with them.
/// Values of different TTLs sharing one counter (a tag) may see it expire early after a
/// shorter-lived fill: a miss, never a stale hit (a recreated counter is a new random
/// value). Counters named by the code alone (`all`, `q:{function}`, `v:{view}`, tags
/// without placeholders) are bounded in number by it and never expire.
pub(crate) fn counter_ttl(ttl: Duration) -> Option<Duration> {
    Some(ttl.saturating_mul(2).max(Duration::from_secs(1)))
}
