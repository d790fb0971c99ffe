//! Handing out a decoded value again without decoding it: for cached types that are
//! `Clone`, as moka and the `cached` crate hand out clones of what they keep.
//!
//! A value opened from stored bytes carries a slot for its decoded form ([`Decoded`]),
//! shared by every clone of the opened value. When it stays in memory across calls (the
//! L1, a local copy, or one leader's value handed to its followers), the first call decodes
//! it and keeps it there; later calls clone it and never touch the bytes. Cloning is
//! cheaper than decoding (700 rows of four fields: 74 µs of CPU a hit against 103 µs, both
//! mostly allocation; `hit_concurrent` with an L1), and for an `Arc` it is a reference
//! count. `#[cached_query]` picks this at compile time, by type: its expansion asks
//! [`Probe`] for a [`Sharing`], which every `Clone + Send + Sync + 'static` type answers
//! (autoref specialization: [`ShareClone`] is found on `Probe<T>` before [`ShareNone`] on
//! `&Probe<T>`). A type that is not `Clone` is decoded on every hit.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

/// The slot of an opened value and all its clones.
pub(crate) type Decoded = Arc<Slot>;

/// The decoded form of an opened value, once a call has decoded it (and its type shares),
/// and whether the value stays in memory for other calls.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    value: OnceLock<Arc<dyn Any + Send + Sync>>,
    retained: AtomicBool,
}

impl Slot {
    /// The decoded form, once kept.
    pub(crate) fn get(&self) -> Option<&Arc<dyn Any + Send + Sync>> {
        self.value.get()
    }

    /// Keeps the decoded form (the first one kept wins).
    pub(crate) fn set(&self, decoded: Arc<dyn Any + Send + Sync>) {
        let _ = self.value.set(decoded);
    }

    /// The value is kept for other calls (a local copy, the L1, a leader's value for its
    /// followers): its decoded form is worth keeping.
    pub(crate) fn retain(&self) {
        self.retained.store(true, Relaxed);
    }
}

/// How to keep a decoded `T` beside its bytes and read it back, for a `T` that shares.
#[doc(hidden)]
pub struct Sharing<T> {
    keep: fn(&T) -> Arc<dyn Any + Send + Sync>,
    load: fn(&(dyn Any + Send + Sync)) -> Option<T>,
}

impl<T> Sharing<T> {
    /// The value kept in `slot`, handed out again.
    pub(crate) fn load(&self, slot: &Slot) -> Option<T> {
        slot.get().and_then(|kept| (self.load)(kept.as_ref()))
    }

    /// Keeps `value` in `slot` (the first decoder wins) when the value is retained: one read
    /// for this call alone (no copy, no L1, no follower) is not read again, and keeping it
    /// would cost a clone for nothing.
    pub(crate) fn keep(&self, slot: &Slot, value: &T) {
        if slot.retained.load(Relaxed) {
            slot.set((self.keep)(value));
        }
    }
}

/// Names the cached type for [`ShareClone`] / [`ShareNone`].
#[doc(hidden)]
pub struct Probe<T>(PhantomData<fn() -> T>);

impl<T> Probe<T> {
    #[doc(hidden)]
    pub const NEW: Self = Probe(PhantomData);
}

/// Found first, for a `Clone` type: decoded values are kept and handed out as clones (for
/// an `Arc`, of the same allocation).
#[doc(hidden)]
pub trait ShareClone<T> {
    fn sharing(&self) -> Option<Sharing<T>>;
}

impl<T: Clone + Send + Sync + 'static> ShareClone<T> for Probe<T> {
    fn sharing(&self) -> Option<Sharing<T>> {
        Some(Sharing {
            keep: |value| Arc::new(value.clone()),
            load: |kept| kept.downcast_ref::<T>().cloned(),
        })
    }
}

/// Found otherwise (a type that is not `Clone`): every call decodes its own value.
#[doc(hidden)]
pub trait ShareNone<T> {
    fn sharing(&self) -> Option<Sharing<T>>;
}

impl<T> ShareNone<T> for &Probe<T> {
    fn sharing(&self) -> Option<Sharing<T>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A type that is not `Clone`.
    #[derive(Debug, PartialEq)]
    struct Unshared(u32);

    // The borrow is the probe: `&Probe<T>` is what the expansion calls `sharing` on.
    #[allow(clippy::needless_borrow)]
    #[test]
    fn clone_types_share_and_arcs_share_the_same_allocation() {
        #[allow(unused_imports)]
        use super::{ShareClone as _, ShareNone as _};
        assert!((&Probe::<Unshared>::NEW).sharing().is_none());
        let sharing = (&Probe::<Vec<u8>>::NEW)
            .sharing()
            .expect("a Clone type shares");
        let slot = Slot::default();
        sharing.keep(&slot, &vec![1, 2, 3]);
        assert!(sharing.load(&slot).is_none(), "not retained: not kept");
        slot.retain();
        sharing.keep(&slot, &vec![1, 2, 3]);
        assert_eq!(sharing.load(&slot), Some(vec![1, 2, 3]));
        let sharing = (&Probe::<Arc<Vec<u8>>>::NEW)
            .sharing()
            .expect("an Arc shares");
        let slot = Slot::default();
        slot.retain();
        let value = Arc::new(vec![1, 2, 3]);
        sharing.keep(&slot, &value);
        let again = sharing.load(&slot).unwrap();
        assert!(Arc::ptr_eq(&value, &again), "no copy");
        // Unsized contents share too.
        let sharing = (&Probe::<Arc<str>>::NEW).sharing().unwrap();
        let slot = Slot::default();
        slot.retain();
        sharing.keep(&slot, &Arc::from("users"));
        assert_eq!(&*sharing.load(&slot).unwrap(), "users");
        // A slot kept by another type is not read as this one.
        let other = (&Probe::<Arc<Vec<u8>>>::NEW).sharing().unwrap();
        assert!(other.load(&slot).is_none());
    }
}
