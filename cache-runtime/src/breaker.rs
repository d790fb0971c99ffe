//! A circuit breaker: after repeated backend failures, skip the backend for a cool-down
//! so a dead Redis costs nothing per request; then let one call through to probe it.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

pub(crate) struct Breaker {
    threshold: u32,
    cool_down_ms: u64,
    epoch: Instant,
    failures: AtomicU32,
    /// `CLOSED`, or the milliseconds since `epoch` until which calls are skipped. Once
    /// that time has passed the breaker is half-open: the first caller moves it one
    /// cool-down ahead and is the only one let through (the probe).
    open_until_ms: AtomicU64,
}

/// `open_until_ms` of a closed breaker.
const CLOSED: u64 = 0;

impl Breaker {
    /// `threshold` consecutive failures open the breaker for `cool_down`; 0 disables it.
    /// Any `cool_down` works, `Duration::MAX` included (it then never probes again).
    pub(crate) fn new(threshold: u32, cool_down: Duration) -> Self {
        Breaker {
            threshold,
            cool_down_ms: u64::try_from(cool_down.as_millis()).unwrap_or(u64::MAX),
            epoch: Instant::now(),
            failures: AtomicU32::new(0),
            open_until_ms: AtomicU64::new(CLOSED),
        }
    }

    /// Milliseconds since `epoch`, never `CLOSED`.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Whether a call may go to the backend now: always while closed; while open, never
    /// until the cool-down has passed, then for exactly one caller (the probe), whose
    /// success closes the breaker and whose failure opens it for another cool-down. A
    /// probe that never reports back lets the next one through a cool-down later.
    pub(crate) fn allow(&self) -> bool {
        if self.threshold == 0 {
            return true;
        }
        let until = self.open_until_ms.load(Relaxed);
        if until == CLOSED {
            return true;
        }
        let now = self.now_ms();
        if now < until {
            return false;
        }
        let next = now.saturating_add(self.cool_down_ms);
        self.open_until_ms
            .compare_exchange(until, next, Relaxed, Relaxed)
            .is_ok()
    }

    pub(crate) fn success(&self) {
        if self.failures.load(Relaxed) != 0 {
            self.failures.store(0, Relaxed);
        }
        if self.open_until_ms.load(Relaxed) != CLOSED {
            self.open_until_ms.store(CLOSED, Relaxed);
        }
    }

    /// Counts a failure; true when it opened (or re-opened) the breaker.
    pub(crate) fn failure(&self) -> bool {
        if self.threshold == 0 {
            return false;
        }
        let failures = self.failures.fetch_add(1, Relaxed).saturating_add(1);
        if failures >= self.threshold {
            // Open (or re-open after a failed probe); the next probe comes after the cool-down.
            let until = self.now_ms().saturating_add(self.cool_down_ms);
            self.open_until_ms.store(until, Relaxed);
            self.failures.store(self.threshold - 1, Relaxed);
            return true;
        }
        false
    }

    /// The cool-down an opening starts.
    pub(crate) fn cool_down(&self) -> Duration {
        Duration::from_millis(self.cool_down_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn opens_after_threshold_and_closes_after_cool_down() {
        let b = Breaker::new(3, Duration::from_millis(50));
        assert!(b.allow());
        b.failure();
        assert!(!b.failure());
        assert!(b.allow(), "two failures are below the threshold");
        assert!(b.failure(), "the third failure opens it");
        assert!(!b.allow(), "open after three");
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.allow(), "a probe goes through after the cool-down");
        b.failure();
        assert!(!b.allow(), "a failed probe re-opens at once");
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.allow(), "the next probe");
        b.success();
        assert!(b.allow() && b.allow(), "a successful probe closes it");
        b.failure();
        assert!(b.allow(), "a success resets the count");
    }

    #[test]
    fn half_open_lets_exactly_one_probe_through() {
        let b = Arc::new(Breaker::new(1, Duration::from_millis(30)));
        b.failure();
        assert!(!b.allow());
        std::thread::sleep(Duration::from_millis(40));
        let barrier = Arc::new(std::sync::Barrier::new(16));
        let allowed: usize = (0..16)
            .map(|_| {
                let (b, barrier) = (b.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    usize::from(b.allow())
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(allowed, 1, "one probe, the others skip");
        // A probe that never reports back does not wedge the breaker.
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow());
    }

    #[test]
    fn huge_cool_downs_do_not_overflow() {
        let b = Breaker::new(1, Duration::MAX);
        b.failure();
        assert!(!b.allow());
        b.failure();
        assert!(!b.allow());
    }

    #[test]
    fn zero_threshold_never_opens() {
        let b = Breaker::new(0, Duration::from_secs(60));
        for _ in 0..100 {
            b.failure();
        }
        assert!(b.allow());
    }
}
