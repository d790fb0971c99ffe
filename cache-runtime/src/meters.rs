//! The `metrics` keys of each name (a query function, a view, `layer`, `get`, ...), built
//! once per name and reused.
//!
//! `metrics::counter!(metric, "name" => name)` builds its key on every call: a `Vec` for the
//! label, a hash of it, and the Prometheus exporter's own copy of the key. A hit records
//! three such metrics, which cost a memory hit more than its lookup did (a dozen
//! allocations). A prebuilt key carries its hash and shares its label, so registering it
//! is a lookup. Each call still asks the current recorder (`metrics::with_recorder`), so a
//! recorder installed after the first call, or a test's local recorder, sees every call.

use std::collections::HashMap;
use std::sync::RwLock;

use metrics::{Counter, Histogram, Key, Label, Level, Metadata};

use crate::observe::BACKEND_SECONDS;
use crate::stats::Event;

/// Names beyond this many get keys built per call instead of kept: names are static
/// strings (function paths, fixed words), so this is only reached by a program that makes
/// names at run time, whose keys must not be kept forever.
const MAX_NAMES: usize = 4096;

/// Backend operations with a kept key (others build theirs per call).
const OPS: [&str; 6] = [
    "read",
    "write",
    "generations",
    "set",
    "lease",
    "release lease",
];

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The keys of the metrics of one name.
pub(crate) struct Meters {
    name: &'static str,
    events: [Key; Event::ALL.len()],
    hit_seconds: Key,
    read_bytes: Key,
    fill_seconds: Key,
    waits: Key,
    value_bytes: Key,
    written_bytes: Key,
    backend_seconds: [Key; OPS.len()],
}

/// Kept keys, by the address and length of the name (a name is a static string: its
/// address names it without hashing its text).
static KEPT: RwLock<Option<HashMap<(usize, usize), &'static Meters>>> = RwLock::new(None);

/// The keys of `name`'s metrics.
pub(crate) fn of(name: &'static str) -> Kept {
    let id = (name.as_ptr() as usize, name.len());
    if let Some(meters) = KEPT
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|kept| kept.get(&id))
    {
        return Kept::Shared(meters);
    }
    let mut kept = KEPT.write().unwrap_or_else(|e| e.into_inner());
    let kept = kept.get_or_insert_with(HashMap::new);
    if let Some(meters) = kept.get(&id) {
        return Kept::Shared(meters);
    }
    if kept.len() >= MAX_NAMES {
        return Kept::Own(Box::new(Meters::new(name)));
    }
    // Leaked on purpose: at most MAX_NAMES of them, each kept for the process's life.
    let meters: &'static Meters = Box::leak(Box::new(Meters::new(name)));
    kept.insert(id, meters);
    Kept::Shared(meters)
}

/// Keys kept for the process, or built for one call.
pub(crate) enum Kept {
    Shared(&'static Meters),
    Own(Box<Meters>),
}

impl std::ops::Deref for Kept {
    type Target = Meters;
    fn deref(&self) -> &Meters {
        match self {
            Kept::Shared(meters) => meters,
            Kept::Own(meters) => meters,
        }
    }
}

/// A key whose labels are shared: recorders copy a key they are handed
/// (`Key::to_retained`), which costs an allocation unless it is shared already.
fn key(metric: &'static str, labels: Vec<Label>) -> Key {
    Key::from_parts(metric, labels).to_retained()
}

fn named(metric: &'static str, name: &'static str) -> Key {
    key(metric, vec![Label::new("name", name)])
}

fn counter(key: &Key) -> Counter {
    metrics::with_recorder(|recorder| recorder.register_counter(key, &METADATA))
}

fn histogram(key: &Key) -> Histogram {
    metrics::with_recorder(|recorder| recorder.register_histogram(key, &METADATA))
}

impl Meters {
    fn new(name: &'static str) -> Meters {
        use crate::observe::{
            FILL_SECONDS, HIT_SECONDS, READ_BYTES, VALUE_BYTES, WAITS, WRITTEN_BYTES,
        };
        Meters {
            name,
            events: Event::ALL.map(|event| named(event.metric(), name)),
            hit_seconds: named(HIT_SECONDS, name),
            read_bytes: named(READ_BYTES, name),
            fill_seconds: named(FILL_SECONDS, name),
            waits: named(WAITS, name),
            value_bytes: named(VALUE_BYTES, name),
            written_bytes: named(WRITTEN_BYTES, name),
            backend_seconds: OPS.map(|op| {
                key(
                    BACKEND_SECONDS,
                    vec![Label::new("op", op), Label::new("name", name)],
                )
            }),
        }
    }

    /// One `event`.
    pub(crate) fn event(&self, event: Event) {
        counter(&self.events[event as usize]).increment(1);
    }

    /// A hit that took `took` and read `bytes`.
    pub(crate) fn hit(&self, took: std::time::Duration, bytes: usize) {
        histogram(&self.hit_seconds).record(took);
        counter(&self.read_bytes).increment(bytes as u64);
    }

    /// A fill that took `took`.
    pub(crate) fn fill(&self, took: std::time::Duration) {
        histogram(&self.fill_seconds).record(took);
    }

    /// A caller waiting on another caller's fill.
    pub(crate) fn wait(&self) {
        counter(&self.waits).increment(1);
    }

    /// A value of `bytes` written.
    pub(crate) fn write(&self, bytes: usize) {
        histogram(&self.value_bytes).record(bytes as f64);
        counter(&self.written_bytes).increment(bytes as u64);
    }

    /// One backend operation `op` that took `took`.
    pub(crate) fn backend(&self, op: &'static str, took: std::time::Duration) {
        match OPS.iter().position(|o| *o == op) {
            Some(i) => histogram(&self.backend_seconds[i]).record(took),
            None => histogram(&key(
                BACKEND_SECONDS,
                vec![Label::new("op", op), Label::new("name", self.name)],
            ))
            .record(took),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_keeps_one_set_of_keys_and_the_labels_it_names() {
        let a = of("meters::tests::a");
        let again = of("meters::tests::a");
        assert!(matches!((&a, &again), (Kept::Shared(x), Kept::Shared(y)) if std::ptr::eq(*x, *y)));
        let labels: Vec<_> = a.backend_seconds[0]
            .labels()
            .map(|l| (l.key(), l.value()))
            .collect();
        assert_eq!(labels, [("op", "read"), ("name", "meters::tests::a")]);
        assert_eq!(a.events[Event::Miss as usize].name(), "cache_misses_total");
    }
}
