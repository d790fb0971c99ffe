#![cfg_attr(not(feature = "dashboard"), allow(dead_code))]
//! Recent history of one cache, for the dashboard: per name (query function, view, layer),
//! ten-second slots over the last ten minutes of hits, misses, fills, stale values, errors,
//! callers that waited on another caller's fill, bytes, and log-scale latency histograms of
//! hits and fills; the last invalidations with their call sites; circuit breaker openings.
//!
//! Nothing is kept until [`Recorder`] is switched on for a cache (mounting a dashboard does
//! it): until then each observation costs one atomic load. Counts are approximate by
//! design: a slot being recycled for a new ten seconds may lose an increment racing it.
//! Names are bounded ([`MAX_NAMES`]; later ones count as `(other)`), keys are never kept.

use std::collections::{HashMap, VecDeque};
use std::panic::Location;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use crate::key::Stored;
use crate::stats::Event;

/// Length of one slot.
pub(crate) const SLOT: Duration = Duration::from_secs(10);
/// Slots kept: ten minutes.
pub(crate) const SLOTS: usize = 60;
/// Names tracked one by one; later names share [`OTHER`].
pub(crate) const MAX_NAMES: usize = 256;
/// Where names past [`MAX_NAMES`] are counted.
pub(crate) const OTHER: &str = "(other)";
/// Invalidations and incidents kept.
const MAX_LOG: usize = 50;
/// Latency buckets: bucket `i` holds latencies in `[2^(i/2), 2^((i+1)/2))` µs; the last
/// one everything from about 11.9 s up.
const LATENCY_BUCKETS: usize = 48;

/// What one slot counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Count {
    Hit,
    Miss,
    Fill,
    Stale,
    /// Decode errors, backend errors and operations skipped by the breaker.
    Error,
    /// A caller that waited on another caller's fill of the same key (a stampede absorbed).
    Wait,
    BytesRead,
    BytesWritten,
}
const COUNTS: usize = 8;

/// Where an invalidation came from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Site {
    /// A line of code (a `#[track_caller]` entry point's caller).
    At(&'static Location<'static>),
    /// A named origin: the dashboard's button, a generated companion.
    Named(&'static str),
}

impl std::fmt::Display for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Site::At(at) => write!(f, "{}:{}", at.file(), at.line()),
            Site::Named(name) => f.write_str(name),
        }
    }
}

/// One invalidation, as the dashboard lists it.
#[derive(Debug, Clone)]
pub(crate) struct Invalidation {
    pub(crate) at: SystemTime,
    /// `tag`, `query`, `view`, ... (see [`crate::key::generation::kind`]).
    pub(crate) kind: &'static str,
    /// The generation's name: `t:users`, `q:app::users`.
    pub(crate) generation: String,
    pub(crate) site: String,
    pub(crate) took: Duration,
    /// Why it failed, if it did.
    pub(crate) error: Option<String>,
}

/// A breaker opening, as the dashboard lists it.
#[derive(Debug, Clone)]
pub(crate) struct Incident {
    pub(crate) at: SystemTime,
    pub(crate) what: String,
}

struct Slot {
    /// The slot number this slot holds, plus one (0: never used).
    number: AtomicU64,
    counts: [AtomicU64; COUNTS],
    hit_latency: [AtomicU32; LATENCY_BUCKETS],
    fill_latency: [AtomicU32; LATENCY_BUCKETS],
}

impl Slot {
    fn new() -> Slot {
        Slot {
            number: AtomicU64::new(0),
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            hit_latency: std::array::from_fn(|_| AtomicU32::new(0)),
            fill_latency: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }

    /// This slot, made to hold slot `number` (cleared when it held an older one).
    fn claim(&self, number: u64) -> &Slot {
        let held = self.number.load(Relaxed);
        if held != number + 1
            && self
                .number
                .compare_exchange(held, number + 1, Relaxed, Relaxed)
                .is_ok()
        {
            self.counts.iter().for_each(|c| c.store(0, Relaxed));
            self.hit_latency.iter().for_each(|c| c.store(0, Relaxed));
            self.fill_latency.iter().for_each(|c| c.store(0, Relaxed));
        }
        self
    }
}

/// The slots of one name.
struct Series {
    slots: Box<[Slot]>,
}

/// The recent history of one cache (see the module docs).
pub(crate) struct Recorder {
    start: Instant,
    start_wall: SystemTime,
    names: RwLock<HashMap<&'static str, Series>>,
    invalidations: Mutex<VecDeque<Invalidation>>,
    incidents: Mutex<VecDeque<Incident>>,
    /// What each name's keys look like, learnt from its writes.
    shapes: RwLock<HashMap<&'static str, Shape>>,
}

/// What the values of one name are, and the name their keys carry (see
/// [`crate::key::Layout::read`]): a query with a `key` template is stored under the
/// template's head, not its function path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shape {
    /// Responses of a view (or layer), not query values.
    pub(crate) view: bool,
    /// The name in its keys.
    pub(crate) key_name: String,
}

fn bucket(latency: Duration) -> usize {
    let us = latency.as_micros().max(1) as f64;
    ((2.0 * us.log2()).floor() as usize).min(LATENCY_BUCKETS - 1)
}

/// The upper bound of latency bucket `i`.
fn bucket_bound(i: usize) -> Duration {
    Duration::from_secs_f64(2f64.powf((i + 1) as f64 / 2.0) / 1e6)
}

impl Recorder {
    pub(crate) fn new() -> Recorder {
        Recorder {
            start: Instant::now(),
            start_wall: SystemTime::now(),
            names: RwLock::new(HashMap::new()),
            invalidations: Mutex::new(VecDeque::new()),
            incidents: Mutex::new(VecDeque::new()),
            shapes: RwLock::new(HashMap::new()),
        }
    }

    /// Remembers what a value written for `name` under `stored` looks like.
    pub(crate) fn learn(&self, name: &'static str, stored: Option<Stored<'_>>) {
        let (view, key_name) = match stored {
            Some(Stored::Value(n)) => (false, n),
            Some(Stored::View(n)) => (true, n),
            _ => return,
        };
        let known = self.shapes.read().unwrap_or_else(|e| e.into_inner());
        if known.get(name).is_some_and(|s| s.key_name == key_name) || known.len() >= MAX_NAMES {
            return;
        }
        drop(known);
        let shape = Shape {
            view,
            key_name: key_name.to_owned(),
        };
        self.shapes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, shape);
    }

    /// What the values of `name` look like, once one was written here.
    pub(crate) fn shape(&self, name: &str) -> Option<Shape> {
        let shapes = self.shapes.read().unwrap_or_else(|e| e.into_inner());
        shapes.get(name).cloned()
    }

    fn now_slot(&self) -> u64 {
        (self.start.elapsed().as_millis() / SLOT.as_millis()) as u64
    }

    /// Runs `f` on the current slot of `name`.
    fn with_slot(&self, name: &'static str, f: impl FnOnce(&Slot)) {
        let number = self.now_slot();
        let index = (number % SLOTS as u64) as usize;
        {
            let names = self.names.read().unwrap_or_else(|e| e.into_inner());
            if let Some(series) = names.get(name) {
                return f(series.slots[index].claim(number));
            }
        }
        let mut names = self.names.write().unwrap_or_else(|e| e.into_inner());
        let name = if names.len() >= MAX_NAMES && !names.contains_key(name) {
            OTHER
        } else {
            name
        };
        let series = names.entry(name).or_insert_with(|| Series {
            slots: (0..SLOTS).map(|_| Slot::new()).collect(),
        });
        f(series.slots[index].claim(number));
    }

    /// Adds `n` to what `name` counts as `count` now.
    pub(crate) fn add(&self, name: &'static str, count: Count, n: u64) {
        self.with_slot(name, |slot| {
            slot.counts[count as usize].fetch_add(n, Relaxed);
        });
    }

    /// Counts one event of the cache's [`Stats`](crate::Stats).
    pub(crate) fn event(&self, event: Event, name: &'static str) {
        let count = match event {
            Event::Hit => Count::Hit,
            Event::Miss => Count::Miss,
            Event::Fill => Count::Fill,
            Event::Invalidated => Count::Stale,
            // A process that waited for another's fill: a stampede absorbed, as a local wait.
            Event::LeaseWait => Count::Wait,
            // An L1 hit is counted as a hit already.
            Event::ServedStale | Event::Refresh | Event::L1Hit => return,
            Event::DecodeError | Event::BackendError | Event::Skipped => Count::Error,
            Event::NotStored => return,
        };
        self.add(name, count, 1);
    }

    /// Counts a hit, its latency and the bytes it read.
    pub(crate) fn hit(&self, name: &'static str, took: Duration, bytes: usize) {
        self.with_slot(name, |slot| {
            slot.counts[Count::Hit as usize].fetch_add(1, Relaxed);
            slot.hit_latency[bucket(took)].fetch_add(1, Relaxed);
            slot.counts[Count::BytesRead as usize].fetch_add(bytes as u64, Relaxed);
        });
    }

    /// Records a fill's latency (generations, body, write).
    pub(crate) fn fill(&self, name: &'static str, took: Duration) {
        self.with_slot(name, |slot| {
            slot.fill_latency[bucket(took)].fetch_add(1, Relaxed);
        });
    }

    pub(crate) fn invalidation(&self, invalidation: Invalidation) {
        push_bounded(&self.invalidations, invalidation);
    }

    pub(crate) fn incident(&self, what: String) {
        push_bounded(
            &self.incidents,
            Incident {
                at: SystemTime::now(),
                what,
            },
        );
    }

    /// What the last `window` slots (the current one included) hold.
    pub(crate) fn snapshot(&self, window: usize) -> Snapshot {
        let window = window.clamp(1, SLOTS);
        // Slots before the recorder started (negative numbers) are empty.
        let now = self.now_slot() as i64;
        let numbers: Vec<i64> = (now + 1 - window as i64..=now).collect();
        let names = self.names.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<NameStats> = names
            .iter()
            .map(|(name, series)| NameStats::of(name, series, &numbers))
            .filter(|s| s.total(Count::Hit) + s.total(Count::Miss) + s.total(Count::Fill) > 0)
            .collect();
        out.sort_by(|a, b| a.name.cmp(b.name));
        let slot_start = |n: i64| {
            let offset = SLOT * n.unsigned_abs() as u32;
            if n >= 0 {
                self.start_wall + offset
            } else {
                self.start_wall - offset
            }
        };
        Snapshot {
            slot_starts: numbers.iter().map(|&n| slot_start(n)).collect(),
            names: out,
            invalidations: copy_newest_first(&self.invalidations),
            incidents: copy_newest_first(&self.incidents),
        }
    }
}

fn push_bounded<T>(log: &Mutex<VecDeque<T>>, item: T) {
    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
    if log.len() == MAX_LOG {
        log.pop_front();
    }
    log.push_back(item);
}

fn copy_newest_first<T: Clone>(log: &Mutex<VecDeque<T>>) -> Vec<T> {
    let log = log.lock().unwrap_or_else(|e| e.into_inner());
    log.iter().rev().cloned().collect()
}

/// The recent history of all names.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    /// When each slot of the window began, oldest first.
    pub(crate) slot_starts: Vec<SystemTime>,
    /// Names with traffic in the window, by name.
    pub(crate) names: Vec<NameStats>,
    /// Newest first.
    pub(crate) invalidations: Vec<Invalidation>,
    /// Newest first.
    pub(crate) incidents: Vec<Incident>,
}

/// One name's counts per slot of a window, oldest first, and its latency histograms.
#[derive(Debug, Clone)]
pub(crate) struct NameStats {
    pub(crate) name: &'static str,
    per_slot: Vec<[u64; COUNTS]>,
    hit_latency: [u64; LATENCY_BUCKETS],
    fill_latency: [u64; LATENCY_BUCKETS],
}

impl NameStats {
    fn of(name: &'static str, series: &Series, numbers: &[i64]) -> NameStats {
        let mut stats = NameStats {
            name,
            per_slot: Vec::with_capacity(numbers.len()),
            hit_latency: [0; LATENCY_BUCKETS],
            fill_latency: [0; LATENCY_BUCKETS],
        };
        for &number in numbers {
            let Ok(number) = u64::try_from(number) else {
                stats.per_slot.push([0; COUNTS]);
                continue;
            };
            let slot = &series.slots[(number % SLOTS as u64) as usize];
            if slot.number.load(Relaxed) != number + 1 {
                stats.per_slot.push([0; COUNTS]);
                continue;
            }
            stats
                .per_slot
                .push(std::array::from_fn(|i| slot.counts[i].load(Relaxed)));
            for i in 0..LATENCY_BUCKETS {
                stats.hit_latency[i] += u64::from(slot.hit_latency[i].load(Relaxed));
                stats.fill_latency[i] += u64::from(slot.fill_latency[i].load(Relaxed));
            }
        }
        stats
    }

    /// The window's total of `count`.
    pub(crate) fn total(&self, count: Count) -> u64 {
        self.per_slot.iter().map(|s| s[count as usize]).sum()
    }

    /// `count` per slot, oldest first.
    pub(crate) fn series(&self, count: Count) -> impl Iterator<Item = u64> + '_ {
        self.per_slot.iter().map(move |s| s[count as usize])
    }

    /// Hits over hits and misses in the window; `None` without either.
    pub(crate) fn hit_ratio(&self) -> Option<f64> {
        ratio(self.total(Count::Hit), self.total(Count::Miss))
    }

    /// The hit ratio per slot, oldest first (`None` for slots without reads).
    pub(crate) fn hit_ratios(&self) -> Vec<Option<f64>> {
        self.per_slot
            .iter()
            .map(|s| ratio(s[Count::Hit as usize], s[Count::Miss as usize]))
            .collect()
    }

    /// The `q` quantile (0 to 1) of hit latency: the upper bound of its bucket (within a
    /// factor of 1.42). `None` without hits.
    pub(crate) fn hit_quantile(&self, q: f64) -> Option<Duration> {
        quantile(&self.hit_latency, q)
    }

    /// Like [`NameStats::hit_quantile`], for fills.
    pub(crate) fn fill_quantile(&self, q: f64) -> Option<Duration> {
        quantile(&self.fill_latency, q)
    }
}

fn ratio(hits: u64, misses: u64) -> Option<f64> {
    let reads = hits + misses;
    (reads > 0).then(|| hits as f64 / reads as f64)
}

fn quantile(buckets: &[u64; LATENCY_BUCKETS], q: f64) -> Option<Duration> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(bucket_bound(i));
        }
    }
    Some(bucket_bound(LATENCY_BUCKETS - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_ratios_per_name() {
        let r = Recorder::new();
        for _ in 0..3 {
            r.event(Event::Hit, "a");
        }
        r.event(Event::Miss, "a");
        r.event(Event::Miss, "b");
        r.event(Event::NotStored, "c");
        let s = r.snapshot(6);
        assert_eq!(s.slot_starts.len(), 6);
        let names: Vec<_> = s.names.iter().map(|n| n.name).collect();
        assert_eq!(names, ["a", "b"], "c had no reads");
        assert_eq!(s.names[0].hit_ratio(), Some(0.75));
        assert_eq!(s.names[1].hit_ratio(), Some(0.0));
        assert_eq!(s.names[0].hit_ratios().last(), Some(&Some(0.75)));
        assert_eq!(s.names[0].hit_ratios()[0], None, "older slots saw nothing");
    }

    #[test]
    fn quantiles_come_from_log_buckets() {
        let r = Recorder::new();
        for _ in 0..98 {
            r.hit("a", Duration::from_micros(100), 10);
        }
        r.hit("a", Duration::from_millis(50), 10);
        r.hit("a", Duration::from_millis(50), 10);
        let s = r.snapshot(1);
        let a = &s.names[0];
        assert_eq!(a.total(Count::Hit), 100, "a hit counts itself");
        let p50 = a.hit_quantile(0.5).unwrap();
        let p99 = a.hit_quantile(0.99).unwrap();
        assert!(p50 >= Duration::from_micros(100) && p50 < Duration::from_micros(142));
        assert!(p99 >= Duration::from_millis(50) && p99 < Duration::from_millis(71));
        assert_eq!(a.fill_quantile(0.5), None);
        assert_eq!(a.total(Count::BytesRead), 1000);
    }

    #[test]
    fn names_are_bounded() {
        let r = Recorder::new();
        let names: Vec<&'static str> = (0..MAX_NAMES + 10)
            .map(|i| &*Box::leak(format!("n{i}").into_boxed_str()))
            .collect();
        for name in &names {
            r.event(Event::Miss, name);
        }
        let s = r.snapshot(1);
        assert_eq!(s.names.len(), MAX_NAMES + 1);
        let other = s.names.iter().find(|n| n.name == OTHER).unwrap();
        assert_eq!(other.total(Count::Miss), 10);
    }

    #[test]
    fn logs_keep_the_newest() {
        let r = Recorder::new();
        for i in 0..MAX_LOG + 5 {
            r.incident(format!("i{i}"));
        }
        let s = r.snapshot(1);
        assert_eq!(s.incidents.len(), MAX_LOG);
        assert_eq!(s.incidents[0].what, format!("i{}", MAX_LOG + 4));
    }
}
