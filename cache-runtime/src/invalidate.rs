//! Invalidation by generations: nothing is ever served after an invalidation that returned.
//!
//! Every stored value records, in its envelope, the generation of each thing it depends
//! on, read when its fill started: the whole cache (`all`), its query function
//! (`q:{function}`), its own entry (`e:{key}`), each of its tags (`t:{tag}`), and for
//! responses their view (`v:{function}`) and path (`p:{function}:{path}`). Fills that
//! run inside another fill (a cached query called while a page renders) hand their
//! dependencies up, so the page depends on them too.
//!
//! A read compares the recorded generations with the current ones in the same round trip
//! as the read itself (one script on Redis); any difference, or a counter that is gone,
//! makes the value stale: a miss. Invalidating replaces a counter with a new random
//! 64-bit value. Because generations are compared for equality and new ones are random, a
//! fill that started before an invalidation can still write its value, but that value
//! records the old generation and is never served; and a lost counter (evicted, Redis
//! restarted) is recreated with a value no old entry recorded.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::backend::Backend;
use crate::cache::Cache;
use crate::error::{Error, Result};

/// The generation every value depends on (bumped by [`Cache::invalidate_all`]).
pub(crate) const ALL: &str = "all";

pub(crate) fn query(function: &str) -> String {
    format!("q:{function}")
}
pub(crate) fn entry(logical_key: &str) -> String {
    format!("e:{logical_key}")
}
pub(crate) fn tag(tag: &str) -> String {
    format!("t:{tag}")
}
#[cfg(feature = "view")]
pub(crate) fn view(function: &str) -> String {
    format!("v:{function}")
}
#[cfg(feature = "view")]
pub(crate) fn view_path(function: &str, path_and_query: &str) -> String {
    format!("p:{function}:{path_and_query}")
}

/// Recorded dependencies: generation names and values.
pub(crate) type Deps = Vec<(String, u64)>;

tokio::task_local! {
    static COLLECTOR: Arc<Mutex<Deps>>;
}

/// Hands `deps` to the fill this code runs inside, if any.
pub(crate) fn record(deps: &[(String, u64)]) {
    if deps.is_empty() {
        return;
    }
    let _ = COLLECTOR.try_with(|c| {
        c.lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(deps)
    });
}

/// Runs a fill's body, collecting the dependencies of every cached value it reads.
pub(crate) async fn collect<F: Future>(fut: F) -> (F::Output, Deps) {
    let collector = Arc::new(Mutex::new(Vec::new()));
    let out = COLLECTOR.scope(collector.clone(), fut).await;
    let deps = std::mem::take(&mut *collector.lock().unwrap_or_else(|e| e.into_inner()));
    (out, deps)
}

/// A generation name and how long a newly created counter lives (`None`: until evicted).
pub(crate) type Wanted = (String, Option<Duration>);

impl Cache {
    fn gen_key(&self, name: &str) -> String {
        format!("{}{name}", self.gen_prefix())
    }

    pub(crate) fn gen_prefix(&self) -> &str {
        &self.inner.gen_prefix
    }

    /// Reads (creating when missing) the generations a fill depends on. `None` when the
    /// backend failed: the fill's value must then not be stored.
    pub(crate) async fn start_fill(&self, wanted: Vec<Wanted>, name: &'static str) -> Option<Deps> {
        let keys: Vec<Wanted> = wanted
            .iter()
            .map(|(n, ttl)| (self.gen_key(n), *ttl))
            .collect();
        let offered: Vec<u64> = keys.iter().map(|_| rand::random()).collect();
        let values = self
            .guarded(
                name,
                "generations",
                None,
                self.inner.backend.generations(&keys, &offered),
            )
            .await?;
        Some(wanted.into_iter().map(|(n, _)| n).zip(values).collect())
    }

    /// Whether a value shared by another caller's fill is still valid: that fill may have
    /// started before an invalidation that has returned since. A backend failure says no.
    pub(crate) async fn still_fresh(&self, deps: &[(String, u64)], name: &'static str) -> bool {
        if deps.is_empty() {
            // Not stored, nothing to check: the leader computed it while this call waited.
            return true;
        }
        let prefix = self.gen_prefix();
        let fresh = self
            .guarded(name, "check", None, self.inner.backend.check(prefix, deps))
            .await;
        if fresh == Some(false) {
            self.inner.counters.count(crate::stats::Event::Stale, name);
        }
        fresh == Some(true)
    }

    /// Replaces generation `name` (and removes `entry`, a full key, in the same step).
    pub(crate) async fn bump(
        &self,
        name: &str,
        ttl: Option<Duration>,
        entry: Option<&str>,
    ) -> Result<()> {
        let result = self
            .inner
            .backend
            .bump(&self.gen_key(name), rand::random(), ttl, entry)
            .await;
        if let Err(e) = &result {
            tracing::error!(error = %e, generation = name, "cache: invalidation failed");
        }
        result.map_err(|e| Error::with_source(e.kind(), format!("invalidating `{name}` failed"), e))
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
    pub async fn invalidate_tag(&self, tag_name: &str) -> Result<()> {
        self.bump(&tag(tag_name), None, None).await
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
    pub async fn invalidate_all(&self) -> Result<()> {
        self.bump(ALL, None, None).await
    }
}

/// Lifetime of an entry's own generation counter: it must outlive the entry (an early
/// expiry only costs a miss).
pub(crate) fn entry_gen_ttl(ttl: Duration) -> Option<Duration> {
    Some(ttl.saturating_mul(2).max(Duration::from_secs(1)))
}
