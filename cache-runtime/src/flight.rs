//! Single-flight: concurrent misses of one key in one process run the body once.
//!
//! The first caller for a key becomes the leader: it reads the backend and, on a miss,
//! runs the function and stores the value. Callers arriving meanwhile wait for the
//! leader's encoded value and decode it. If the leader has nothing to share (its
//! function returned an error, or it was cancelled), the waiters run the function
//! themselves.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::watch;

type Slot = watch::Receiver<Option<Bytes>>;

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
    tx: watch::Sender<Option<Bytes>>,
}

impl Flights {
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
    /// Hands the encoded value to every waiter and ends the flight.
    pub(crate) fn publish(self, value: Bytes) {
        self.tx.send_replace(Some(value));
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
pub(crate) async fn wait(mut slot: Slot) -> Option<Bytes> {
    if let Ok(value) = slot.wait_for(Option::is_some).await {
        return value.clone();
    }
    // The sender is gone: a value sent just before it went is still in the channel.
    slot.borrow().clone()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        leader.publish(Bytes::from_static(b"v"));
        assert_eq!(waiter.await.unwrap().as_deref(), Some(&b"v"[..]));
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
        assert_eq!(wait(slot).await, None);
    }

    #[test]
    fn keys_fly_independently() {
        let flights = Flights::default();
        let _a = flights.join("a");
        assert!(matches!(flights.join("b"), Join::Leader(_)));
    }
}
