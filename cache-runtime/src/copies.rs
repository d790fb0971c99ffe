//! Copies of values read from Redis, kept in this process so that a hit need not read the
//! value again: it asks Redis for the value's fixed header and its generations (one round
//! trip of a few hundred bytes, [`Backend::probe`](crate::backend::Backend::probe)), and
//! serves the copy when the header is the copy's. Every hit is still checked against Redis,
//! so a copy is never served after an invalidation, an overwrite or a delete: unlike the
//! L1 ([`crate::l1`]), copies need no trust and no messages between instances.
//!
//! The header names one fill (it carries a random fill id, see [`crate::envelope`]): bytes
//! another program wrote have a header of their own, so the copy is dropped and the value
//! read and checked as usual.

// Without Redis no copies are kept: the type stays so that the fill's code paths need no `cfg`.
#![cfg_attr(not(feature = "redis"), allow(dead_code))]

use std::sync::Arc;

use crate::envelope::Opened;

/// The copies one cache keeps, bounded in bytes (`moka`, weighed by what each holds).
pub(crate) struct Copies {
    entries: moka::sync::Cache<String, Arc<Opened>>,
}

impl Copies {
    pub(crate) fn new(max_bytes: u64) -> Copies {
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, value: &Arc<Opened>| {
                u32::try_from(key.len() + value.held + 128).unwrap_or(u32::MAX)
            })
            .build();
        Copies { entries }
    }

    /// The copy of the value under `key`, if one is kept.
    pub(crate) fn get(&self, key: &str) -> Option<Arc<Opened>> {
        self.entries.get(key)
    }

    /// Keeps `value`, just read from or written to `key`.
    pub(crate) fn keep(&self, key: &str, value: Arc<Opened>) {
        self.entries.insert(key.to_owned(), value);
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
