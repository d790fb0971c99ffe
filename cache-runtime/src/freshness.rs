//! How long a value may be served: fresh until its TTL, then (with a stale window) served
//! stale while one caller refreshes it, and recomputed early by probability as expiry nears
//! (XFetch). An invalidated value is never served at all: invalidation means gone, expiry
//! means old.
//!
//! | state | when | a call |
//! |---|---|---|
//! | fresh | before expiry | is served the value |
//! | early | before expiry, and [`xfetch`] fires | refreshes it (one caller per key in the fleet); the others are served the value |
//! | stale | expiry to expiry + `stale` | refreshes it (one caller); the others are served the value at once; a refresh that fails is served the value too (stale-if-error) |
//! | gone | after expiry + `stale`, or invalidated | misses |

use std::time::Duration;

use crate::envelope::Header;

/// A function's (or view's, or layer's) freshness rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Freshness {
    /// How long after expiry a value is still served while one caller refreshes it.
    pub(crate) stale: Duration,
    /// XFetch's β: `None` never refreshes early; 1.0 is the paper's choice.
    pub(crate) early: Option<f64>,
    /// Whether a fill takes a lease, so one process in the fleet fills while the others wait.
    pub(crate) lease: bool,
}

/// What a value found under a key is good for, now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Fresh,
    /// Fresh, but chosen to be refreshed early.
    Early,
    /// Expired, within the stale window.
    Stale,
}

impl Freshness {
    /// The state of a value filled as `header` says at `now_ms`; `None` once it is gone.
    pub(crate) fn state(&self, header: &Header, now_ms: u64) -> Option<State> {
        if now_ms < header.fresh_until_ms {
            let remaining = header.fresh_until_ms - now_ms;
            let early = self.early.is_some_and(|beta| {
                xfetch(remaining, header.cost_us, beta, 1.0 - rand::random::<f64>())
            });
            return Some(if early { State::Early } else { State::Fresh });
        }
        let stale_ms = u64::try_from(self.stale.as_millis()).unwrap_or(u64::MAX);
        (now_ms < header.fresh_until_ms.saturating_add(stale_ms)).then_some(State::Stale)
    }

    /// How long the backend keeps a value of TTL `ttl`: through its stale window too.
    pub(crate) fn keep(&self, ttl: Duration) -> Duration {
        ttl.saturating_add(self.stale)
    }
}

/// XFetch (Vattani, Chierichetti, Lowenstein, VLDB 2015): refresh now when the time left,
/// `remaining_ms`, is at most `cost · β · −ln u` for `u` uniform in (0, 1]: the probability
/// is `exp(−remaining / (cost · β))`, rising to 1 at expiry, and higher for values that take
/// longer to compute. A value whose fill cost nothing is never refreshed early.
pub(crate) fn xfetch(remaining_ms: u64, cost_us: u32, beta: f64, u: f64) -> bool {
    let cost_ms = f64::from(cost_us) / 1000.0;
    cost_ms > 0.0 && (remaining_ms as f64) <= cost_ms * beta * -u.ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Kind;
    use rand::{RngExt, SeedableRng};

    /// The fraction of `trials` in which XFetch fires, with a fixed seed.
    fn fired(remaining_ms: u64, cost_us: u32, beta: f64, trials: u32) -> f64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let hits = (0..trials)
            .filter(|_| xfetch(remaining_ms, cost_us, beta, 1.0 - rng.random::<f64>()))
            .count();
        hits as f64 / f64::from(trials)
    }

    #[test]
    fn xfetch_fires_with_probability_exp_minus_remaining_over_cost_beta() {
        // cost 50 ms, β = 1: P = exp(-r / 50).
        for (remaining, expected) in [
            (0, 1.0),
            (25, (-0.5f64).exp()),
            (50, (-1.0f64).exp()),
            (150, (-3.0f64).exp()),
        ] {
            let p = fired(remaining, 50_000, 1.0, 40_000);
            assert!(
                (p - expected).abs() < 0.01,
                "r={remaining}: {p} vs {expected}"
            );
        }
        // β = 2 doubles the horizon.
        let p = fired(100, 50_000, 2.0, 40_000);
        assert!((p - (-1.0f64).exp()).abs() < 0.01, "{p}");
        // Far from expiry, practically never; free fills, never.
        assert_eq!(fired(5_000, 50_000, 1.0, 40_000), 0.0);
        assert_eq!(fired(0, 0, 1.0, 1_000), 0.0);
    }

    fn header(fresh_until_ms: u64) -> Header {
        let mut header = Header::new(Kind::Value, 1, Duration::ZERO, Duration::from_millis(10));
        header.fresh_until_ms = fresh_until_ms;
        header
    }

    #[test]
    fn states_at_every_edge_of_the_windows() {
        let rules = Freshness {
            stale: Duration::from_millis(500),
            early: None,
            lease: false,
        };
        let h = header(1_000);
        assert_eq!(rules.state(&h, 999), Some(State::Fresh));
        assert_eq!(
            rules.state(&h, 1_000),
            Some(State::Stale),
            "expired at its TTL"
        );
        assert_eq!(rules.state(&h, 1_499), Some(State::Stale));
        assert_eq!(
            rules.state(&h, 1_500),
            None,
            "gone at the end of the window"
        );
        let no_window = Freshness {
            stale: Duration::ZERO,
            ..rules
        };
        assert_eq!(no_window.state(&h, 999), Some(State::Fresh));
        assert_eq!(no_window.state(&h, 1_000), None);
        assert_eq!(
            no_window.keep(Duration::from_secs(3)),
            Duration::from_secs(3)
        );
        assert_eq!(
            rules.keep(Duration::from_secs(3)),
            Duration::from_millis(3_500)
        );
        let always_early = Freshness {
            early: Some(1e12),
            ..rules
        };
        assert_eq!(always_early.state(&h, 999), Some(State::Early));
        assert_eq!(always_early.state(&h, 1_000), Some(State::Stale));
    }
}
