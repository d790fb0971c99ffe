//! Counters behind [`Cache::stats`](crate::Cache::stats) (`crate::observe` mirrors them to the
//! `metrics` facade).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of a cache's counters since it was built.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let cache = cache_runtime::Cache::from_url("memory://").await.unwrap();
/// let stats = cache.stats();
/// assert_eq!(stats.hits + stats.misses, 0);
/// # });
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Reads answered from the cache (including callers that shared another caller's fill).
    pub hits: u64,
    /// Hits of them answered from this process's L1, without a round trip.
    pub l1_hits: u64,
    /// Reads that found nothing usable and ran the function.
    pub misses: u64,
    /// Values written after a miss.
    pub fills: u64,
    /// Values found but invalidated since they were filled (counted as misses too).
    pub invalidated: u64,
    /// Expired values served within their stale window (while one call refreshed them, or
    /// in place of a refresh that failed).
    pub served_stale: u64,
    /// Fills that refreshed a value still servable: stale, or chosen for early refresh.
    pub refreshes: u64,
    /// Misses that waited for another process's fill (leases).
    pub lease_waits: u64,
    /// Stored bytes that were not a valid value (foreign, corrupt, other codec): misses.
    pub decode_errors: u64,
    /// Backend operations that failed or timed out (each became a miss or a skipped write).
    pub backend_errors: u64,
    /// Operations not sent because the circuit breaker was open.
    pub skipped: u64,
    /// Values computed on a miss but not stored: they depend on something no generation
    /// covers (a cached call that ran uncached), on more than 4,096 generations, or on an
    /// invalidation that ran while they were computed, or they are over the size limit.
    pub not_stored: u64,
    /// Bytes of the stored values hits served (read from the backend, or held in the L1 or
    /// a local copy).
    pub bytes_read: u64,
    /// Bytes written to the backend by fills.
    pub bytes_written: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    hits: AtomicU64,
    l1_hits: AtomicU64,
    misses: AtomicU64,
    fills: AtomicU64,
    invalidated: AtomicU64,
    served_stale: AtomicU64,
    refreshes: AtomicU64,
    lease_waits: AtomicU64,
    decode_errors: AtomicU64,
    backend_errors: AtomicU64,
    skipped: AtomicU64,
    not_stored: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
}

/// One counted event.
#[derive(Clone, Copy)]
pub(crate) enum Event {
    Hit,
    L1Hit,
    Miss,
    Fill,
    Invalidated,
    ServedStale,
    Refresh,
    LeaseWait,
    DecodeError,
    BackendError,
    Skipped,
    NotStored,
}

impl Event {
    /// Every event, in declaration order (`event as usize` indexes it).
    pub(crate) const ALL: [Event; 12] = [
        Event::Hit,
        Event::L1Hit,
        Event::Miss,
        Event::Fill,
        Event::Invalidated,
        Event::ServedStale,
        Event::Refresh,
        Event::LeaseWait,
        Event::DecodeError,
        Event::BackendError,
        Event::Skipped,
        Event::NotStored,
    ];

    /// The counter this event is mirrored to.
    pub(crate) fn metric(self) -> &'static str {
        match self {
            Event::Hit => "cache_hits_total",
            Event::L1Hit => "cache_l1_hits_total",
            Event::Miss => "cache_misses_total",
            Event::Fill => "cache_fills_total",
            Event::Invalidated => "cache_invalidated_total",
            Event::ServedStale => "cache_served_stale_total",
            Event::Refresh => "cache_refreshes_total",
            Event::LeaseWait => "cache_lease_waits_total",
            Event::DecodeError => "cache_decode_errors_total",
            Event::BackendError => "cache_backend_errors_total",
            Event::Skipped => "cache_skipped_total",
            Event::NotStored => "cache_not_stored_total",
        }
    }
}

impl Counters {
    /// Counts `event` (its metric is recorded by the caller, see `crate::observe`).
    pub(crate) fn add(&self, event: Event) {
        let counter = match event {
            Event::Hit => &self.hits,
            Event::L1Hit => &self.l1_hits,
            Event::Miss => &self.misses,
            Event::Fill => &self.fills,
            Event::Invalidated => &self.invalidated,
            Event::ServedStale => &self.served_stale,
            Event::Refresh => &self.refreshes,
            Event::LeaseWait => &self.lease_waits,
            Event::DecodeError => &self.decode_errors,
            Event::BackendError => &self.backend_errors,
            Event::Skipped => &self.skipped,
            Event::NotStored => &self.not_stored,
        };
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn read_bytes(&self, n: usize) {
        self.bytes_read.fetch_add(n as u64, Relaxed);
    }

    pub(crate) fn wrote_bytes(&self, n: usize) {
        self.bytes_written.fetch_add(n as u64, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            hits: self.hits.load(Relaxed),
            l1_hits: self.l1_hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            fills: self.fills.load(Relaxed),
            invalidated: self.invalidated.load(Relaxed),
            served_stale: self.served_stale.load(Relaxed),
            refreshes: self.refreshes.load(Relaxed),
            lease_waits: self.lease_waits.load(Relaxed),
            decode_errors: self.decode_errors.load(Relaxed),
            backend_errors: self.backend_errors.load(Relaxed),
            skipped: self.skipped.load(Relaxed),
            not_stored: self.not_stored.load(Relaxed),
            bytes_read: self.bytes_read.load(Relaxed),
            bytes_written: self.bytes_written.load(Relaxed),
        }
    }
}
