//! Where every observation of a cache goes: its counters ([`crate::Stats`]), the `metrics`
//! facade (latency histograms and byte counters, listed below and in
//! `docs/OPERATIONS.md`), and, once a dashboard is mounted, its recent history
//! ([`crate::events`]).
//!
//! Labels are bounded: `name` is a query function's path, a view's path or `layer` (or
//! `get`/`set`/`delete` for `Cache` operations), never a key; `op` and `kind` take a few
//! fixed values.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `cache_hit_duration_seconds` | histogram | `name` |
//! | `cache_fill_duration_seconds` | histogram | `name` |
//! | `cache_backend_duration_seconds` | histogram | `op` (`read`, `write`, `generations`, `delete`), `name` |
//! | `cache_invalidation_duration_seconds` | histogram | `kind` (`all`, `query`, `entry`, `tag`, `view`, `path`) |
//! | `cache_value_bytes` | histogram | `name` |
//! | `cache_read_bytes_total`, `cache_written_bytes_total` | counter | `name` |
//! | `cache_waits_total` | counter | `name` |
//! | `cache_invalidations_total` | counter | `kind`, `result` (`ok`, `error`) |
//! | `cache_breaker_opened_total` | counter | none |

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::cache::Cache;
use crate::events::{Count, Invalidation, Recorder, Site};
use crate::key::generation;
use crate::meters;
use crate::stats::Event;

// The metrics recorded per name are named in `meters.rs`; these are recorded here.
const INVALIDATION_SECONDS: &str = "cache_invalidation_duration_seconds";
const INVALIDATIONS: &str = "cache_invalidations_total";
const BREAKER_OPENED: &str = "cache_breaker_opened_total";

impl Cache {
    /// The recorder of this cache's recent history, switched on (dashboards call this).
    #[cfg_attr(not(feature = "dashboard"), allow(dead_code))]
    pub(crate) fn recorder(&self) -> &Arc<Recorder> {
        self.inner.events.get_or_init(|| Arc::new(Recorder::new()))
    }

    fn recording(&self) -> Option<&Arc<Recorder>> {
        self.inner.events.get()
    }

    /// Counts one event (see [`Stats`](crate::Stats)).
    pub(crate) fn count(&self, event: Event, name: &'static str) {
        self.inner.counters.add(event);
        meters::of(name).event(event);
        if let Some(recorder) = self.recording() {
            recorder.event(event, name);
        }
    }

    /// A hit of `name` that began at `started` and read `bytes`: counted (as
    /// [`Event::Hit`]) with its latency and bytes, in one pass.
    pub(crate) fn observed_hit(&self, name: &'static str, started: Instant, bytes: usize) {
        let took = started.elapsed();
        self.inner.counters.add(Event::Hit);
        self.inner.counters.read_bytes(bytes);
        let meters = meters::of(name);
        meters.event(Event::Hit);
        meters.hit(took, bytes);
        if let Some(recorder) = self.recording() {
            recorder.hit(name, took, bytes);
        }
    }

    /// A fill of `name` (generations, body, write) that took `took`.
    pub(crate) fn observed_fill(&self, name: &'static str, took: Duration) {
        meters::of(name).fill(took);
        if let Some(recorder) = self.recording() {
            recorder.fill(name, took);
        }
    }

    /// A caller of `name` that waits on another caller's fill of the same key.
    pub(crate) fn observed_wait(&self, name: &'static str) {
        meters::of(name).wait();
        if let Some(recorder) = self.recording() {
            recorder.add(name, Count::Wait, 1);
        }
    }

    /// A value of `bytes` written for `name` under `key`.
    pub(crate) fn observed_write(&self, name: &'static str, key: &str, bytes: usize) {
        self.inner.counters.wrote_bytes(bytes);
        meters::of(name).write(bytes);
        if let Some(recorder) = self.recording() {
            recorder.add(name, Count::BytesWritten, bytes as u64);
            recorder.learn(name, self.inner.layout.read(key));
        }
    }

    /// One backend operation of `name`.
    pub(crate) fn observed_backend(&self, op: &'static str, name: &'static str, took: Duration) {
        meters::of(name).backend(op, took);
    }

    /// The circuit breaker opened after a failure of `op` for `name`.
    pub(crate) fn observed_breaker_opened(&self, op: &'static str, name: &'static str) {
        metrics::counter!(BREAKER_OPENED).increment(1);
        tracing::warn!(op, name, cool_down = ?self.inner.breaker.cool_down(), "cache: circuit breaker opened; the backend is skipped during the cool-down");
        if let Some(recorder) = self.recording() {
            recorder.incident(format!(
                "circuit breaker opened for {:?} after a failed {op} of {name}",
                self.inner.breaker.cool_down()
            ));
        }
    }

    /// An invalidation of generation `name`, asked for at `site`.
    pub(crate) fn observed_invalidation(
        &self,
        name: &str,
        site: Site,
        took: Duration,
        result: &crate::Result<()>,
    ) {
        let kind = generation::kind(name);
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::histogram!(INVALIDATION_SECONDS, "kind" => kind).record(took);
        metrics::counter!(INVALIDATIONS, "kind" => kind, "result" => outcome).increment(1);
        if let Some(recorder) = self.recording() {
            recorder.invalidation(Invalidation {
                at: SystemTime::now(),
                kind,
                generation: name.to_owned(),
                site: site.to_string(),
                took,
                error: result.as_ref().err().map(ToString::to_string),
            });
        }
    }
}
