//! Leases (the memcache idea, NSDI 2013): on a miss, one process in the whole fleet fills a
//! key while the others wait for its value.
//!
//! The filler takes the key's lease with `SET {prefix}:lease:{key} token NX PX ttl` (a random
//! token) and releases it when its fill is done, by a script that deletes it only while it
//! still holds that token. A process that finds the lease taken polls for the value with a
//! backoff, for at most the lease's TTL, then fills itself: a holder that dies leaves a lease
//! that expires, so nobody waits forever, and a Redis that fails means filling without one.
//! Invalidations need nothing from leases: a fill that raced one records old generations, so
//! its value is never served, and the wait goes on until the lease is free or gone.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::backend::Backend;
use crate::cache::Cache;
use crate::stats::Event;

/// The shortest and the longest pause between two polls for another process's fill; in
/// between, a tenth of the time waited so far, so a wait overshoots the fill by at most about
/// 10% (and 1 ms), whatever the body's cost.
const SHORTEST_POLL: Duration = Duration::from_millis(1);
const LONGEST_POLL: Duration = Duration::from_millis(50);

/// A lease this process holds.
#[derive(Debug)]
pub(crate) struct Lease {
    key: String,
    token: Bytes,
}

/// The outcome of trying to take a lease.
pub(crate) enum Take {
    /// This process fills the key.
    Taken(Lease),
    /// Another process does.
    Held,
    /// The backend did not answer: fill without a lease.
    Unavailable,
}

/// Tries to take the lease of the value stored under `entry_key`.
pub(crate) async fn take(cache: &Cache, entry_key: &str, name: &'static str) -> Take {
    let key = cache.inner.layout.lease(entry_key);
    let token = Bytes::copy_from_slice(&rand::random::<u64>().to_le_bytes());
    let ttl = cache.inner.lease_ttl;
    let set = cache.inner.backend.set_nx(key.clone(), token.clone(), ttl);
    match cache.guarded(name, "lease", Some(&key), set).await {
        Ok(true) => Take::Taken(Lease { key, token }),
        Ok(false) => Take::Held,
        Err(_) => Take::Unavailable,
    }
}

impl Lease {
    /// Frees the lease, if it is still this process's (it may have expired and been taken
    /// since). A failure is logged; the lease then expires by itself.
    pub(crate) async fn release(self, cache: &Cache, name: &'static str) {
        let delete = cache.inner.backend.delete_if(self.key.clone(), self.token);
        let _ = cache
            .guarded(name, "release lease", Some(&self.key), delete)
            .await;
    }
}

/// Polls while another process holds the lease: `poll` looks for the value
/// (`Some` ends the wait), then the lease is tried again (taken: this process fills). After
/// the lease's TTL, or when the backend fails, this process fills without a lease.
pub(crate) async fn wait<T, F, Fut>(
    cache: &Cache,
    entry_key: &str,
    name: &'static str,
    mut poll: F,
) -> Result<T, Option<Lease>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    cache.count(Event::LeaseWait, name);
    let started = Instant::now();
    let deadline = started + cache.inner.lease_ttl;
    loop {
        let pause = (started.elapsed() / 10).clamp(SHORTEST_POLL, LONGEST_POLL);
        crate::blocking::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
        if let Some(found) = poll().await {
            return Ok(found);
        }
        match take(cache, entry_key, name).await {
            Take::Taken(lease) => return Err(Some(lease)),
            Take::Unavailable => return Err(None),
            Take::Held if Instant::now() >= deadline => {
                tracing::warn!(
                    key = entry_key,
                    name,
                    "cache: waited a lease's whole TTL for another process's fill; filling here"
                );
                return Err(None);
            }
            Take::Held => {}
        }
    }
}
