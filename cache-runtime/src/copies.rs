//! Copies of stored values, kept in this process so that a hit need not read the value
//! again.
//!
//! - On a single Redis, a hit asks Redis for the value's fixed header and its generations
//!   (one round trip of a few hundred bytes,
//!   [`Backend::probe`](crate::backend::Backend::probe)), and serves the copy when the
//!   header is the copy's. The header names one fill (it carries a random fill id, see
//!   [`crate::envelope`]): bytes another program wrote have a header of their own, so the
//!   copy is dropped and the value read and checked as usual.
//! - On `memory://`, a copy records the store's epoch when it was last found current
//!   ([`Backend::epoch`](crate::backend::Backend::epoch)); while the epoch has not moved,
//!   nothing was written and the hit reads nothing else. Once it moved, the hit checks the
//!   copy as on Redis. A copy shares the stored bytes: it costs no second copy of them.
//!
//! Every hit is still checked against the store (on `memory://`, through its epoch), so a
//! copy is never served after an invalidation, an overwrite or a delete: unlike the L1
//! ([`crate::l1`]), copies need no trust and no messages between instances.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use crate::backend::ProbeKeys;
use crate::envelope::Opened;

/// Not yet found current at any epoch.
const NEVER: u64 = u64::MAX;

/// One value kept.
pub(crate) struct Copy {
    pub(crate) value: Opened,
    /// The store's epoch when the value and every generation it recorded were last read and
    /// found current (`NEVER`: not on a store with epochs, or not checked since it was kept).
    verified: AtomicU64,
    /// What a hit on the copy reads, made on the first one and reused by the next.
    pub(crate) probe: OnceLock<ProbeKeys>,
}

impl Copy {
    /// Whether the value was found current at `epoch` (the store's epoch now).
    pub(crate) fn current_at(&self, epoch: Option<u64>) -> bool {
        epoch.is_some_and(|epoch| self.verified.load(Relaxed) == epoch)
    }

    /// The value was just found current by reads made after the store's epoch was `epoch`.
    pub(crate) fn verified(&self, epoch: Option<u64>) {
        if let Some(epoch) = epoch {
            self.verified.store(epoch, Relaxed);
        }
    }
}

/// The copies one cache keeps, bounded in bytes (`moka`, weighed by what each holds).
pub(crate) struct Copies {
    entries: moka::sync::Cache<String, Arc<Copy>>,
}

/// Room for what a copy's probe keeps once made ([`ProbeKeys`]): the key and the
/// generation names (each with the cache's prefix), as strings and again in the encoded
/// request.
fn probe_weight(key: &str, value: &Opened) -> u32 {
    let names: usize = value.deps().map(|(name, _)| name.len() + 48).sum();
    u32::try_from(2 * (key.len() + names)).unwrap_or(u32::MAX)
}

impl Copies {
    pub(crate) fn new(max_bytes: u64) -> Copies {
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, copy: &Arc<Copy>| {
                copy.value
                    .weight(key.len())
                    .saturating_add(probe_weight(key, &copy.value))
            })
            .build();
        Copies { entries }
    }

    /// The copy of the value under `key`, if one is kept.
    pub(crate) fn get(&self, key: &str) -> Option<Arc<Copy>> {
        self.entries.get(key)
    }

    /// Keeps `value`, just read from or written to `key`; `verified`: the store's epoch
    /// before the reads that found it current, if they did.
    pub(crate) fn keep(&self, key: &str, value: Opened, verified: Option<u64>) {
        value.decoded.retain();
        let copy = Copy {
            value,
            verified: AtomicU64::new(verified.unwrap_or(NEVER)),
            probe: OnceLock::new(),
        };
        self.entries.insert(key.to_owned(), Arc::new(copy));
    }

    /// Drops the copy under `key`: the stored value is another one, or is gone.
    pub(crate) fn forget(&self, key: &str) {
        self.entries.invalidate(key);
    }

    /// Drops every copy (the cache was cleared).
    pub(crate) fn clear(&self) {
        self.entries.invalidate_all();
    }
}
