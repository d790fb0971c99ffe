//! Single-flight: concurrent misses of one key in one process run the body once.
//!
//! Only misses join a flight (a hit takes no lock). The first missing caller for a key
//! becomes the leader: it runs the function and stores the value. Callers missing
//! meanwhile wait for the leader's value, opened once for all of them. If the leader has
//! nothing to share (its function returned an error, or it was cancelled), the waiters run
//! the function themselves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::watch;

use crate::envelope::Opened;

/// What a leader hands its followers.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The value, as it was (or would have been) stored.
    pub(crate) value: Opened,
    /// When the leader read the generations the value records (or, when it could not,
    /// started computing it): a follower that joined before this sees a value computed
    /// after its own call began, so it needs no check.
    pub(crate) since: Instant,
    /// Whether the value can be checked against its generations (they were read, and the
    /// body read nothing they do not cover). A follower that joined after `since` is
    /// served only a value that can be checked, and is.
    pub(crate) checkable: bool,
}

type Slot = watch::Receiver<Option<Arc<Shared>>>;

#[derive(Default)]
pub(crate) struct Flights {
    in_flight: Mutex<HashMap<String, (u64, Slot)>>,
    next_id: std::sync::atomic::AtomicU64,
}

pub(crate) enum Join<'a> {
    Leader(Leader<'a>),
    Follower(Slot),
}

/// The leader's handle; dropping it ends the flight (waiters then run on their own).
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    key: String,
    id: u64,
    tx: watch::Sender<Option<Arc<Shared>>>,
}

impl Flights {
    /// Leads a new flight for `key`, unless one is under way (then `None`, and nobody
    /// waits).
    pub(crate) fn try_lead(&self, key: &str) -> Option<Leader<'_>> {
        if self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(key)
        {
            return None;
        }
        match self.join(key) {
            Join::Leader(leader) => Some(leader),
            Join::Follower(_) => None,
        }
    }

    pub(crate) fn join(&self, key: &str) -> Join<'_> {
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, rx)) = map.get(key) {
            return Join::Follower(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        map.insert(key.to_owned(), (id, rx));
        Join::Leader(Leader {
            flights: self,
            key: key.to_owned(),
            id,
            tx,
        })
    }
}

impl Leader<'_> {
    /// Whether any caller waits for this leader's value.
    pub(crate) fn followed(&self) -> bool {
        self.tx.receiver_count() > 1
    }

    /// Hands the value to every waiter and ends the flight.
    pub(crate) fn publish(self, value: Shared) {
        self.tx.send_replace(Some(Arc::new(value)));
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        let mut map = self
            .flights
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if map.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
            map.remove(&self.key);
        }
    }
}

/// Waits for the leader; `None` when it ended without a value to share.
pub(crate) async fn wait(mut slot: Slot) -> Option<Arc<Shared>> {
    if let Ok(value) = slot.wait_for(Option::is_some).await {
        return value.clone();
    }
    // The sender is gone: a value sent just before it went is still in the channel.
    slot.borrow().clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{self, Compression, Header, Kind};

    fn shared(payload: &'static [u8]) -> Shared {
        let header = Header::new(
            Kind::Value,
            1,
            std::time::Duration::from_secs(1),
            std::time::Duration::ZERO,
        );
        let compression = Compression {
            above: None,
            limit: 1 << 20,
        };
        let mut writer = envelope::Writer::new(&header, std::iter::empty(), 1).unwrap();
        writer.payload().extend_from_slice(payload);
        let bytes = writer.seal(compression);
        Shared {
            value: envelope::open(bytes, 1 << 20).unwrap(),
            since: Instant::now(),
            checkable: true,
        }
    }

    #[tokio::test]
    async fn followers_get_the_leaders_value() {
        let flights = Flights::default();
        let Join::Leader(leader) = flights.join("k") else {
            panic!("first is leader")
        };
        let Join::Follower(slot) = flights.join("k") else {
            panic!("second follows")
        };
        let waiter = tokio::spawn(wait(slot));
        leader.publish(shared(b"v"));
        let got = waiter.await.unwrap().unwrap();
        assert_eq!(&got.value.payload[..], b"v");
        assert!(matches!(flights.join("k"), Join::Leader(_)), "flight ended");
    }

    #[tokio::test]
    async fn a_dropped_leader_releases_followers_empty_handed() {
        let flights = Flights::default();
        let leader = flights.join("k");
        let Join::Follower(slot) = flights.join("k") else {
            panic!()
        };
        drop(leader);
        assert!(wait(slot).await.is_none());
    }

    #[test]
    fn keys_fly_independently() {
        let flights = Flights::default();
        let _a = flights.join("a");
        assert!(matches!(flights.join("b"), Join::Leader(_)));
    }
}
