//! What a fill depends on: the generations of every cached value its body read.
//!
//! A fill runs its body inside [`collect`]. Every cached call inside the body (a query a
//! page calls, a query a query calls) hands up the generations its value was filled under
//! with [`record`], or, when it ran without a value that can be checked later (the backend
//! failed, its key could not be encoded, it ran uncached for any reason), says so with
//! [`taint`]. The enclosing fill then stores its value with all those generations, so
//! invalidating anything the page read invalidates the page, or does not store it at all.
//!
//! Only cached calls made on the fill's own task are seen: a cached call inside a
//! `tokio::spawn`ed task is not (the collector is task-local). Use `join!` / `join_all`
//! inside a cached body, not `spawn`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;

use crate::envelope::MAX_DEPS;

/// One recorded generation: its name and value.
pub(crate) type Dep = (String, u64);

/// What a body read, as far as the cache can tell.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    /// Recorded generations, in the order first seen.
    deps: Vec<Dep>,
    /// Index of each name in `deps`.
    seen: HashMap<String, usize>,
    /// The same generation was seen with two values: an invalidation ran mid-fill.
    conflict: bool,
    /// The body read something no generation covers.
    tainted: bool,
}

/// Why a fill's value is not stored although the function allowed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unstorable {
    /// The body read a value that cannot be checked later.
    Unchecked,
    /// An invalidation ran while the body read the values it depends on.
    Invalidated,
    /// The value depends on more than [`MAX_DEPS`] generations.
    TooManyDeps,
}

impl Unstorable {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Unstorable::Unchecked => "it read a value no generation covers",
            Unstorable::Invalidated => "an invalidation ran while it was computed",
            Unstorable::TooManyDeps => "it depends on too many generations",
        }
    }
}

impl Collected {
    fn add(&mut self, name: &str, generation: u64) {
        match self.seen.get(name) {
            Some(&i) => self.conflict |= self.deps[i].1 != generation,
            None => {
                self.seen.insert(name.to_owned(), self.deps.len());
                self.deps.push((name.to_owned(), generation));
            }
        }
    }

    /// The generations of a value filled under `own` whose body read what `self` holds:
    /// `own` first, then the rest, each name once.
    pub(crate) fn merge(mut self, own: &[Dep]) -> Result<Vec<Dep>, Unstorable> {
        if self.tainted {
            return Err(Unstorable::Unchecked);
        }
        let inner = std::mem::take(&mut self.deps);
        let mut all = Collected::default();
        for (name, generation) in own.iter().chain(&inner) {
            all.add(name, *generation);
        }
        if self.conflict || all.conflict {
            return Err(Unstorable::Invalidated);
        }
        if all.deps.len() > MAX_DEPS {
            return Err(Unstorable::TooManyDeps);
        }
        Ok(all.deps)
    }
}

tokio::task_local! {
    static COLLECTOR: RefCell<Collected>;
}

/// Runs a fill's body, collecting what every cached value it reads depends on.
pub(crate) async fn collect<F: Future>(fut: F) -> (F::Output, Collected) {
    let (out, collected) = COLLECTOR
        .scope(RefCell::default(), async move {
            let out = fut.await;
            (out, COLLECTOR.with(RefCell::take))
        })
        .await;
    (out, collected)
}

/// [`collect`] for a blocking closure run on a thread of its own
/// ([`crate::spawn_blocking`]): what its cached calls read, for [`hand_up`].
pub(crate) fn collect_blocking<T>(f: impl FnOnce() -> T) -> (T, Option<Collected>) {
    COLLECTOR.sync_scope(RefCell::default(), || {
        let out = f();
        (out, Some(COLLECTOR.with(RefCell::take)))
    })
}

/// Hands what [`collect_blocking`] collected to the fill this code runs inside, if any, as
/// if those cached calls had run here.
pub(crate) fn hand_up(collected: Collected) {
    let _ = COLLECTOR.try_with(|c| {
        let mut c = c.borrow_mut();
        for (name, generation) in &collected.deps {
            c.add(name, *generation);
        }
        c.conflict |= collected.conflict;
        c.tainted |= collected.tainted;
    });
}

/// Whether this code runs inside a fill (so that recording is worth its cost).
pub(crate) fn active() -> bool {
    COLLECTOR.try_with(|_| ()).is_ok()
}

/// Hands `deps` to the fill this code runs inside, if any.
pub(crate) fn record<'a>(deps: impl IntoIterator<Item = (&'a str, u64)>) {
    let _ = COLLECTOR.try_with(|c| {
        let mut c = c.borrow_mut();
        for (name, generation) in deps {
            c.add(name, generation);
        }
    });
}

/// Tells the fill this code runs inside, if any, that it read something no generation
/// covers: its value must not be stored.
pub(crate) fn taint() {
    let _ = COLLECTOR.try_with(|c| c.borrow_mut().tainted = true);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> Vec<Dep> {
        vec![("all".into(), 1), ("v:page".into(), 2)]
    }

    #[tokio::test]
    async fn nested_fills_hand_their_deps_up_deduplicated() {
        let ((), outer) = collect(async {
            record([("t:users", 5), ("all", 1)]);
            let ((), inner) = collect(async { record([("q:f", 9)]) }).await;
            record(
                inner
                    .merge(&[("e:k".into(), 3)])
                    .unwrap()
                    .iter()
                    .map(|(n, g)| (n.as_str(), *g)),
            );
            record([("t:users", 5)]);
        })
        .await;
        let deps = outer.merge(&own()).unwrap();
        let names: Vec<&str> = deps.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["all", "v:page", "t:users", "e:k", "q:f"]);
    }

    #[tokio::test]
    async fn conflicts_taint_and_bounds_make_values_unstorable() {
        let ((), c) = collect(async { record([("t:a", 1), ("t:a", 2)]) }).await;
        assert_eq!(c.merge(&own()), Err(Unstorable::Invalidated));
        let ((), c) = collect(async { record([("all", 7)]) }).await;
        assert_eq!(
            c.merge(&own()),
            Err(Unstorable::Invalidated),
            "own vs inner"
        );
        let ((), c) = collect(async { taint() }).await;
        assert_eq!(c.merge(&own()), Err(Unstorable::Unchecked));
        let names: Vec<String> = (0..MAX_DEPS).map(|i| format!("t:{i}")).collect();
        let ((), c) = collect(async { record(names.iter().map(|n| (n.as_str(), 1))) }).await;
        assert_eq!(c.merge(&own()), Err(Unstorable::TooManyDeps));
    }

    #[tokio::test]
    async fn outside_a_fill_nothing_is_recorded() {
        assert!(!active());
        record([("all", 1)]);
        taint();
        let (active_inside, _) = collect(async { active() }).await;
        assert!(active_inside);
    }
}
