//! The `metrics` of each name (a query function, a view, `layer`, `get`, ...): their keys
//! built once per name, and their handles registered once per name with the global
//! recorder.
//!
//! `metrics::counter!(metric, "name" => name)` builds its key on every call (a `Vec` for the
//! label, a hash of it) and registers it with the recorder (a map lookup, and with the
//! Prometheus exporter a copy of the key and a new handle): a dozen allocations per hit,
//! more than a memory hit's lookup cost. Here a name's keys are built once, and each
//! metric's handle is kept the first time it is recorded through the global recorder
//! (`metrics::set_global_recorder` sets it once for the process, so its handles stay
//! valid). A call made under any other recorder (none installed yet, or a test's local
//! recorder) registers its prebuilt key with that recorder each time: every recorder sees
//! every call.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use metrics::{Counter, Histogram, Key, Label, Level, Metadata, Recorder};

use crate::stats::Event;

const HIT_SECONDS: &str = "cache_hit_duration_seconds";
const FILL_SECONDS: &str = "cache_fill_duration_seconds";
const BACKEND_SECONDS: &str = "cache_backend_duration_seconds";
const VALUE_BYTES: &str = "cache_value_bytes";
const READ_BYTES: &str = "cache_read_bytes_total";
const WRITTEN_BYTES: &str = "cache_written_bytes_total";
const WAITS: &str = "cache_waits_total";

/// Names beyond this many get metrics built per call instead of kept: names are static
/// strings (function paths, fixed words), so this is only reached by a program that makes
/// names at run time, whose keys must not be kept forever.
const MAX_NAMES: usize = 4096;

/// Backend operations with a kept metric (others build theirs per call).
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

/// One metric of one name: its key, and its handle with the global recorder once used.
struct Metric<H> {
    key: Key,
    global: OnceLock<H>,
}

/// The metrics of one name.
pub(crate) struct Meters {
    name: &'static str,
    events: [Metric<Counter>; Event::ALL.len()],
    hit_seconds: Metric<Histogram>,
    read_bytes: Metric<Counter>,
    fill_seconds: Metric<Histogram>,
    waits: Metric<Counter>,
    value_bytes: Metric<Histogram>,
    written_bytes: Metric<Counter>,
    backend_seconds: [Metric<Histogram>; OPS.len()],
}

/// Kept metrics, by the address and length of the name (a name is a static string: its
/// address names it without hashing its text).
static KEPT: RwLock<Option<HashMap<(usize, usize), &'static Meters>>> = RwLock::new(None);

/// The metrics of `name`.
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

/// Metrics kept for the process, or built for one call.
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

fn metric<H>(key: Key) -> Metric<H> {
    Metric {
        key,
        global: OnceLock::new(),
    }
}

/// Where a recorder lives, and whether it is a zero-sized one (the no-op recorder used
/// while none is installed), whose address names nothing.
fn identity(recorder: &dyn Recorder) -> (usize, bool) {
    let address = std::ptr::from_ref(recorder).cast::<()>() as usize;
    (address, std::mem::size_of_val(recorder) == 0)
}

/// The global recorder's address, once one is installed. Learned on a thread of its own,
/// where no local recorder can be set; asked again at most once a second while a call
/// sees a recorder that is not known to be the global one.
fn global_recorder() -> Option<usize> {
    static GLOBAL: OnceLock<usize> = OnceLock::new();
    static ASKED: Mutex<Option<Instant>> = Mutex::new(None);
    if let Some(address) = GLOBAL.get() {
        return Some(*address);
    }
    {
        let mut asked = ASKED.lock().unwrap_or_else(|e| e.into_inner());
        if asked.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
            return None;
        }
        *asked = Some(Instant::now());
    }
    let (address, noop) = std::thread::Builder::new()
        .name("cache-metrics-probe".into())
        .spawn(|| metrics::with_recorder(identity))
        .ok()?
        .join()
        .ok()?;
    if noop {
        return None;
    }
    Some(*GLOBAL.get_or_init(|| address))
}

/// Whether the recorder a call here records into is the global one.
fn recording_globally() -> bool {
    let (address, noop) = metrics::with_recorder(identity);
    !noop && global_recorder() == Some(address)
}

impl<H> Metric<H> {
    /// Runs `record` on this metric's handle with the current recorder (`register` makes
    /// one): the kept one for the global recorder, a fresh one for any other.
    fn with(&self, register: fn(&dyn Recorder, &Key) -> H, record: impl FnOnce(&H)) {
        if recording_globally() {
            record(
                self.global
                    .get_or_init(|| metrics::with_recorder(|r| register(r, &self.key))),
            );
        } else {
            record(&metrics::with_recorder(|r| register(r, &self.key)));
        }
    }
}

impl Metric<Counter> {
    fn increment(&self, n: u64) {
        self.with(
            |r, key| r.register_counter(key, &METADATA),
            |counter| counter.increment(n),
        );
    }
}

impl Metric<Histogram> {
    fn record(&self, value: f64) {
        self.with(
            |r, key| r.register_histogram(key, &METADATA),
            |histogram| histogram.record(value),
        );
    }
}

impl Meters {
    fn new(name: &'static str) -> Meters {
        Meters {
            name,
            events: Event::ALL.map(|event| metric(named(event.metric(), name))),
            hit_seconds: metric(named(HIT_SECONDS, name)),
            read_bytes: metric(named(READ_BYTES, name)),
            fill_seconds: metric(named(FILL_SECONDS, name)),
            waits: metric(named(WAITS, name)),
            value_bytes: metric(named(VALUE_BYTES, name)),
            written_bytes: metric(named(WRITTEN_BYTES, name)),
            backend_seconds: OPS.map(|op| {
                metric(key(
                    BACKEND_SECONDS,
                    vec![Label::new("op", op), Label::new("name", name)],
                ))
            }),
        }
    }

    /// One `event`.
    pub(crate) fn event(&self, event: Event) {
        self.events[event as usize].increment(1);
    }

    /// A hit that took `took` and read `bytes`.
    pub(crate) fn hit(&self, took: Duration, bytes: usize) {
        self.hit_seconds.record(took.as_secs_f64());
        self.read_bytes.increment(bytes as u64);
    }

    /// A fill that took `took`.
    pub(crate) fn fill(&self, took: Duration) {
        self.fill_seconds.record(took.as_secs_f64());
    }

    /// A caller waiting on another caller's fill.
    pub(crate) fn wait(&self) {
        self.waits.increment(1);
    }

    /// A value of `bytes` written.
    pub(crate) fn write(&self, bytes: usize) {
        self.value_bytes.record(bytes as f64);
        self.written_bytes.increment(bytes as u64);
    }

    /// One backend operation `op` that took `took`.
    pub(crate) fn backend(&self, op: &'static str, took: Duration) {
        match OPS.iter().position(|o| *o == op) {
            Some(i) => self.backend_seconds[i].record(took.as_secs_f64()),
            None => metric::<Histogram>(key(
                BACKEND_SECONDS,
                vec![Label::new("op", op), Label::new("name", self.name)],
            ))
            .record(took.as_secs_f64()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    use metrics::{CounterFn, GaugeFn, HistogramFn, KeyName, SharedString, Unit};

    use super::*;

    /// A recorder that sums every counter increment it is handed.
    #[derive(Default)]
    struct Summing(Arc<Sum>);

    #[derive(Default)]
    struct Sum(AtomicU64);

    impl CounterFn for Sum {
        fn increment(&self, n: u64) {
            self.0.fetch_add(n, Relaxed);
        }
        fn absolute(&self, _: u64) {}
    }
    impl GaugeFn for Sum {
        fn increment(&self, _: f64) {}
        fn decrement(&self, _: f64) {}
        fn set(&self, _: f64) {}
    }
    impl HistogramFn for Sum {
        fn record(&self, _: f64) {}
    }

    impl Recorder for Summing {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(Arc::clone(&self.0))
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> metrics::Gauge {
            metrics::Gauge::from_arc(Arc::clone(&self.0))
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::from_arc(Arc::clone(&self.0))
        }
    }

    /// No global recorder is installed in this test binary: calls under two local
    /// recorders, one after the other, each reach the recorder they ran under.
    #[test]
    fn a_local_recorder_sees_every_call_made_under_it() {
        for expected in [2, 3] {
            let recorder = Summing::default();
            metrics::with_local_recorder(&recorder, || {
                for _ in 0..expected {
                    of("meters::tests::local").event(Event::Hit);
                }
            });
            assert_eq!(recorder.0.0.load(Relaxed), expected);
        }
    }

    #[test]
    fn a_name_keeps_one_set_of_keys_and_the_labels_it_names() {
        let a = of("meters::tests::a");
        let again = of("meters::tests::a");
        assert!(matches!((&a, &again), (Kept::Shared(x), Kept::Shared(y)) if std::ptr::eq(*x, *y)));
        let labels: Vec<_> = a.backend_seconds[0]
            .key
            .labels()
            .map(|l| (l.key(), l.value()))
            .collect();
        assert_eq!(labels, [("op", "read"), ("name", "meters::tests::a")]);
        assert_eq!(
            a.events[Event::Miss as usize].key.name(),
            "cache_misses_total"
        );
    }
}
