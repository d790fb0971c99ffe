//! Handing out a decoded value again without decoding it: for cached types that are an
//! `Arc`, whose clone is the value itself.
//!
//! A value opened from stored bytes carries a slot for its decoded form ([`Decoded`]),
//! shared by every clone of the opened value. When it stays in memory across calls (the
//! L1, a local copy, or one leader's value handed to its followers), the first call decodes
//! it and keeps an `Arc` clone there; later calls clone that `Arc` and never touch the
//! bytes. `#[cached_query]` picks this at compile time, by type: its
//! expansion asks [`Probe`] for a [`Sharing`], which only `Arc<U>` answers (autoref
//! specialization: [`ShareArc`] is found on `Probe<T>` before [`ShareNone`] on `&Probe<T>`).

use std::any::Any;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

/// The decoded form of an opened value, once a call has decoded it (and its type shares).
pub(crate) type Decoded = Arc<OnceLock<Arc<dyn Any + Send + Sync>>>;

/// How to keep a decoded `T` beside its bytes and read it back, for a `T` that shares.
#[doc(hidden)]
pub struct Sharing<T> {
    keep: fn(&T) -> Arc<dyn Any + Send + Sync>,
    load: fn(&(dyn Any + Send + Sync)) -> Option<T>,
}

impl<T> Sharing<T> {
    /// The value kept in `slot`, handed out again.
    pub(crate) fn load(&self, slot: &Decoded) -> Option<T> {
        slot.get().and_then(|kept| (self.load)(kept.as_ref()))
    }

    /// Keeps `value` in `slot` (the first decoder wins).
    pub(crate) fn keep(&self, slot: &Decoded, value: &T) {
        let _ = slot.set((self.keep)(value));
    }
}

/// Names the cached type for [`ShareArc`] / [`ShareNone`].
#[doc(hidden)]
pub struct Probe<T>(PhantomData<fn() -> T>);

impl<T> Probe<T> {
    #[doc(hidden)]
    pub const NEW: Self = Probe(PhantomData);
}

/// Found first, for `Arc<U>`: decoded values are kept and handed out as `Arc` clones.
#[doc(hidden)]
pub trait ShareArc<T> {
    fn sharing(&self) -> Option<Sharing<T>>;
}

impl<U: ?Sized + Send + Sync + 'static> ShareArc<Arc<U>> for Probe<Arc<U>> {
    fn sharing(&self) -> Option<Sharing<Arc<U>>> {
        Some(Sharing {
            keep: |value| Arc::new(Arc::clone(value)),
            load: |kept| kept.downcast_ref::<Arc<U>>().cloned(),
        })
    }
}

/// Found otherwise: every call decodes its own value.
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

    // The borrow is the probe: `&Probe<T>` is what the expansion calls `sharing` on.
    #[allow(clippy::needless_borrow)]
    #[test]
    fn only_arcs_share_and_they_share_the_same_allocation() {
        #[allow(unused_imports)]
        use super::{ShareArc as _, ShareNone as _};
        assert!((&Probe::<Vec<u8>>::NEW).sharing().is_none());
        assert!((&Probe::<String>::NEW).sharing().is_none());
        let sharing = (&Probe::<Arc<Vec<u8>>>::NEW)
            .sharing()
            .expect("an Arc shares");
        let slot = Decoded::default();
        assert!(sharing.load(&slot).is_none());
        let value = Arc::new(vec![1, 2, 3]);
        sharing.keep(&slot, &value);
        let again = sharing.load(&slot).unwrap();
        assert!(Arc::ptr_eq(&value, &again), "no copy");
        // Unsized contents share too.
        let sharing = (&Probe::<Arc<str>>::NEW).sharing().unwrap();
        let slot = Decoded::default();
        sharing.keep(&slot, &Arc::from("users"));
        assert_eq!(&*sharing.load(&slot).unwrap(), "users");
        // A slot kept by another type is not read as this one.
        let other = (&Probe::<Arc<Vec<u8>>>::NEW).sharing().unwrap();
        assert!(other.load(&slot).is_none());
    }
}
