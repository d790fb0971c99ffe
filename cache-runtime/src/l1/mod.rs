//! L1: a bounded tier in this process, in front of Redis, that stays coherent across instances.
//!
//! A value read from (or written to) Redis is kept here, as opened (its envelope parsed, its
//! payload a shared slice), and served without a round trip while this instance *knows every
//! invalidation published since*. That knowledge is a lease on trust, renewed by a heartbeat:
//!
//! - Every instance with an L1 subscribes to `{prefix}:l1`. Every change (an invalidation
//!   from any instance, `cachectl` or the dashboard; `Cache::set`, `delete`, `clear`) is made
//!   in Redis first; then the instance making it reads the instances listed as trusting
//!   their L1 and, if there are any, publishes `inv {id} {generation}` (`del {id} {key}` for
//!   one value, `inv {id} all` after `clear`). An instance applies it (drops the values that
//!   recorded that generation) and acknowledges it (`SADD {prefix}:l1:ack:{id} {instance}`).
//! - Every `trust / 4` an instance publishes a heartbeat on the same channel and records, in
//!   the sorted set `{prefix}:l1:instances`, until when it may trust its L1 (Redis's clock at
//!   the heartbeat, plus `trust`). When its own heartbeat comes back through its
//!   subscription, it has received every message published before it, so it may serve its L1
//!   for `trust` after sending it. No heartbeat back (the subscription died, or the network
//!   is cut): the trust lapses, and the instance reads Redis until it has heard its own
//!   heartbeat again; it then starts from an empty L1 (announcers skip instances that are not
//!   trusting).
//! - A change returns only once every instance listed as trusting has acknowledged it, or
//!   its listed trust has run out. So after `invalidate_*` returns, no instance serves the
//!   old value, partitioned ones included; the price is a round trip (the list), and with
//!   trusting instances the publish and their acknowledgements (well under a millisecond on
//!   loopback), and at most `trust` when an instance is cut off.
//!
//! A value read while an invalidation was being applied is not kept (the L1's epoch moved
//! during the read). Generation counters themselves are never kept: a read from Redis checks
//! them as usual.

// Without Redis no L1 is built: the type stays so that the cache's code paths need no `cfg`.
#![cfg_attr(not(feature = "redis"), allow(dead_code))]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::envelope::Opened;

#[cfg(feature = "redis")]
mod protocol;
#[cfg(feature = "redis")]
pub(crate) use protocol::{announce, start};

/// One cache's L1.
pub(crate) struct L1 {
    entries: moka::sync::Cache<String, Arc<Opened>>,
    /// Moves on every invalidation applied here and every loss of the subscription.
    epoch: AtomicU64,
    /// Until when this instance may serve its L1: nanoseconds since `base`.
    trusted_until: AtomicU64,
    base: Instant,
    /// This instance, in `{prefix}:l1:instances` and in acknowledgements.
    pub(crate) id: String,
    pub(crate) trust: Duration,
    pub(crate) names: Names,
    heartbeats: Mutex<Heartbeats>,
}

/// The keys and channel of one prefix's L1 protocol.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    pub(crate) channel: String,
    pub(crate) instances: String,
    pub(crate) ack_prefix: String,
}

impl Names {
    /// The names under `root`, `{prefix}:l1:` ([`crate::key::Layout::l1_root`]).
    pub(crate) fn new(root: &str) -> Names {
        Names {
            instances: format!("{root}instances"),
            ack_prefix: format!("{root}ack:"),
            channel: root.trim_end_matches(':').to_owned(),
        }
    }
}

/// A change made in Redis that L1s must hear of.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Change<'a> {
    /// Generation `name` was replaced (or, for `all`, every value is gone).
    Generation(&'a str),
    /// The value under this stored key was overwritten or deleted.
    Entry(&'a str),
}

/// Heartbeats sent and not yet confirmed (both echoed and recorded).
#[derive(Default)]
struct Heartbeats {
    next: u64,
    /// seq → (sent at, echoed, recorded)
    pending: VecDeque<(u64, Instant, bool, bool)>,
}

impl L1 {
    pub(crate) fn new(max_bytes: u64, trust: Duration, names: Names) -> L1 {
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, value: &Arc<Opened>| value.weight(key.len()))
            .support_invalidation_closures()
            .build();
        L1 {
            entries,
            epoch: AtomicU64::new(0),
            trusted_until: AtomicU64::new(0),
            base: Instant::now(),
            id: format!("{:016x}", rand::random::<u64>()),
            trust,
            names,
            heartbeats: Mutex::default(),
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Whether this instance knows every invalidation published until now.
    pub(crate) fn trusted(&self) -> bool {
        self.nanos(Instant::now()) < self.trusted_until.load(Ordering::Acquire)
    }

    /// The value kept under `key`, while trusted.
    pub(crate) fn get(&self, key: &str) -> Option<Arc<Opened>> {
        if !self.trusted() {
            return None;
        }
        self.entries.get(key)
    }

    /// Where the epoch stands: take it before reading Redis, hand it to [`L1::keep`].
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Keeps `value`, read from Redis (or written there) by a read that began at `epoch`,
    /// unless an invalidation was applied since, or this instance is not trusted.
    pub(crate) fn keep(&self, key: &str, value: Arc<Opened>, epoch: u64) {
        if !self.trusted() {
            return;
        }
        value.decoded.retain();
        self.entries.insert(key.to_owned(), value);
        // An invalidation applied between the read and the insert: undo.
        if self.epoch() != epoch {
            self.entries.invalidate(key);
        }
    }

    /// Applies an invalidation of generation `name`: the values that recorded it are gone.
    pub(crate) fn apply(&self, name: &str) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if name == crate::key::generation::ALL {
            self.entries.invalidate_all();
            return;
        }
        let name = name.to_owned();
        let dropped = self
            .entries
            .invalidate_entries_if(move |_, value| value.deps().any(|(dep, _)| dep == name));
        if dropped.is_err() {
            // Too many predicates queued: forget everything instead.
            self.entries.invalidate_all();
        }
    }

    /// Drops the value kept under `key` (it was overwritten or deleted in Redis).
    pub(crate) fn forget(&self, key: &str) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate(key);
    }

    /// Applies `change`, published by some instance.
    pub(super) fn take(&self, change: Change<'_>) {
        match change {
            Change::Generation(name) => self.apply(name),
            Change::Entry(key) => self.forget(key),
        }
    }

    /// Stops trusting and forgets everything (the subscription was lost or is new).
    pub(super) fn distrust(&self) {
        self.trusted_until.store(0, Ordering::Release);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate_all();
    }

    pub(super) fn heartbeat_sent(&self, at: Instant) -> u64 {
        let mut hb = self.heartbeats.lock().unwrap_or_else(|e| e.into_inner());
        let seq = hb.next;
        hb.next += 1;
        hb.pending.push_back((seq, at, false, false));
        while hb.pending.len() > 16 {
            hb.pending.pop_front();
        }
        seq
    }

    /// A heartbeat came back (`echoed`) or was recorded in the instances set: once both,
    /// trust runs until `trust` after it was sent.
    pub(super) fn heartbeat_confirmed(&self, seq: u64, echoed: bool) {
        let mut hb = self.heartbeats.lock().unwrap_or_else(|e| e.into_inner());
        let Some(slot) = hb.pending.iter_mut().find(|(s, ..)| *s == seq) else {
            return;
        };
        if echoed {
            slot.2 = true;
        } else {
            slot.3 = true;
        }
        if slot.2 && slot.3 {
            let until = self.nanos(slot.1 + self.trust);
            let before = self.trusted_until.fetch_max(until, Ordering::AcqRel);
            // Trust had lapsed: an invalidation may have gone unannounced meanwhile (an
            // announcer publishes only to instances listed as trusting), so start afresh.
            if before <= self.nanos(Instant::now()) && before < until {
                self.epoch.fetch_add(1, Ordering::AcqRel);
                self.entries.invalidate_all();
            }
        }
    }
}
