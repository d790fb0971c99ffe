//! A circuit breaker: after repeated backend failures, skip the backend for a cool-down
//! so a dead Redis costs nothing per request.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

pub(crate) struct Breaker {
    threshold: u32,
    cool_down: Duration,
    epoch: Instant,
    failures: AtomicU32,
    /// Milliseconds since `epoch` until which calls are skipped.
    open_until_ms: AtomicU64,
}

impl Breaker {
    /// `threshold` consecutive failures open the breaker for `cool_down`; 0 disables it.
    pub(crate) fn new(threshold: u32, cool_down: Duration) -> Self {
        Breaker {
            threshold,
            cool_down,
            epoch: Instant::now(),
            failures: AtomicU32::new(0),
            open_until_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether a call may go to the backend now. After the cool-down calls go through
    /// again, and a single further failure re-opens the breaker.
    pub(crate) fn allow(&self) -> bool {
        self.threshold == 0 || self.now_ms() >= self.open_until_ms.load(Relaxed)
    }

    pub(crate) fn success(&self) {
        if self.failures.load(Relaxed) != 0 {
            self.failures.store(0, Relaxed);
        }
    }

    /// Counts a failure; true when it opened (or re-opened) the breaker.
    pub(crate) fn failure(&self) -> bool {
        if self.threshold == 0 {
            return false;
        }
        let failures = self.failures.fetch_add(1, Relaxed) + 1;
        if failures >= self.threshold {
            // Open (or re-open after a failed probe); the next probe comes after the cool-down.
            self.open_until_ms
                .store(self.now_ms() + self.cool_down.as_millis() as u64, Relaxed);
            self.failures.store(self.threshold - 1, Relaxed);
            return true;
        }
        false
    }

    /// The cool-down an opening starts.
    pub(crate) fn cool_down(&self) -> Duration {
        self.cool_down
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        b.success();
        b.failure();
        assert!(b.allow(), "a success resets the count");
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
