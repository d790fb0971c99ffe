//! L1: a bounded tier in this process, in front of Redis, that stays coherent across instances.
//!
//! A value read from (or written to) Redis is kept here, as opened (its envelope parsed, its
//! payload a shared slice), and served without a round trip while this instance *knows every
//! invalidation published since*. That knowledge is a lease on trust, renewed by a heartbeat:
//!
//! - Every instance with an L1 subscribes to `{prefix}:l1`. Every invalidation (from any
//!   instance, `cachectl`, the dashboard) replaces its generation in Redis, then publishes
//!   `inv {id} {generation}` there (`del {id} {key}` for a value `Cache::set` overwrote or
//!   `Cache::delete` removed; `inv {id} all` after `Cache::clear`). An instance applies it (drops the values that recorded
//!   that generation) and acknowledges it (`SADD {prefix}:l1:ack:{id} {instance}`).
//! - Every `trust / 4` an instance publishes a heartbeat on the same channel and records, in
//!   the sorted set `{prefix}:l1:instances`, until when it may trust its L1 (Redis's clock at
//!   the heartbeat, plus `trust`). When its own heartbeat comes back through its
//!   subscription, it has received every message published before it, so it may serve its L1
//!   for `trust` after sending it. No heartbeat back (the subscription died, or the network
//!   is cut): the trust lapses, and the instance reads Redis until it has resubscribed
//!   (dropping its whole L1) and heard its own heartbeat again.
//! - An invalidation returns only once every instance listed as trusting has acknowledged it,
//!   or its listed trust has run out. So after `invalidate_*` returns, no instance serves the
//!   old value, partitioned ones included; the price is one round trip and the acknowledgements
//!   of the live instances (about a millisecond each on a LAN), and at most `trust` when an
//!   instance is cut off.
//!
//! A value read while an invalidation was being applied is not kept (the L1's epoch moved
//! during the read). Generation counters themselves are never kept: a read from Redis checks
//! them as usual.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::aio::ConnectionManager;

use crate::backend::redis::RedisBackend;
use crate::envelope::Opened;
pub(crate) use crate::invalidate::Change;

/// How many heartbeats per trust period.
const HEARTBEATS_PER_TRUST: u32 = 4;
/// How long an announcer polls for acknowledgements without pausing.
const BACK_TO_BACK: Duration = Duration::from_millis(3);
/// How long an acknowledgement set lives.
const ACK_TTL_MS: u64 = 30_000;

/// One cache's L1.
pub(crate) struct L1 {
    entries: moka::sync::Cache<String, Arc<Opened>>,
    /// Moves on every invalidation applied here and every loss of the subscription.
    epoch: AtomicU64,
    /// Until when this instance may serve its L1: nanoseconds since `base`.
    trusted_until: AtomicU64,
    base: Instant,
    /// This instance, in `{prefix}:l1:instances` and in acknowledgements.
    pub(crate) id: String,
    pub(crate) trust: Duration,
    pub(crate) names: Names,
    heartbeats: Mutex<Heartbeats>,
}

/// The keys and channel of one prefix's L1 protocol (built in `key.rs`).
#[derive(Debug, Clone)]
pub(crate) struct Names {
    pub(crate) channel: String,
    pub(crate) instances: String,
    pub(crate) ack_prefix: String,
}

/// Heartbeats sent and not yet confirmed (both echoed and recorded).
#[derive(Default)]
struct Heartbeats {
    next: u64,
    /// seq → (sent at, echoed, recorded)
    pending: VecDeque<(u64, Instant, bool, bool)>,
}

impl L1 {
    pub(crate) fn new(max_bytes: u64, trust: Duration, names: Names) -> L1 {
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, value: &Arc<Opened>| {
                u32::try_from(key.len() + value.stored_len + 128).unwrap_or(u32::MAX)
            })
            .support_invalidation_closures()
            .build();
        L1 {
            entries,
            epoch: AtomicU64::new(0),
            trusted_until: AtomicU64::new(0),
            base: Instant::now(),
            id: format!("{:016x}", rand::random::<u64>()),
            trust,
            names,
            heartbeats: Mutex::default(),
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Whether this instance knows every invalidation published until now.
    pub(crate) fn trusted(&self) -> bool {
        self.nanos(Instant::now()) < self.trusted_until.load(Ordering::Acquire)
    }

    /// The value kept under `key`, while trusted.
    pub(crate) fn get(&self, key: &str) -> Option<Arc<Opened>> {
        if !self.trusted() {
            return None;
        }
        self.entries.get(key)
    }

    /// Where the epoch stands: take it before reading Redis, hand it to [`L1::keep`].
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Keeps `value`, read from Redis (or written there) by a read that began at `epoch`,
    /// unless an invalidation was applied since, or this instance is not trusted.
    pub(crate) fn keep(&self, key: &str, value: Arc<Opened>, epoch: u64) {
        if !self.trusted() {
            return;
        }
        self.entries.insert(key.to_owned(), value);
        // An invalidation applied between the read and the insert: undo.
        if self.epoch() != epoch {
            self.entries.invalidate(key);
        }
    }

    /// Applies an invalidation of generation `name`: the values that recorded it are gone.
    pub(crate) fn apply(&self, name: &str) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if name == crate::key::generation::ALL {
            self.entries.invalidate_all();
            return;
        }
        let name = name.to_owned();
        let dropped = self
            .entries
            .invalidate_entries_if(move |_, value| value.deps().any(|(dep, _)| dep == name));
        if dropped.is_err() {
            // Too many predicates queued: forget everything instead.
            self.entries.invalidate_all();
        }
    }

    /// Drops the value kept under `key` (it was overwritten or deleted in Redis).
    pub(crate) fn forget(&self, key: &str) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate(key);
    }

    /// Applies `change`, published by some instance.
    fn take(&self, change: Change<'_>) {
        match change {
            Change::Generation(name) => self.apply(name),
            Change::Entry(key) => self.forget(key),
        }
    }

    /// Stops trusting and forgets everything (the subscription was lost or is new).
    fn distrust(&self) {
        self.trusted_until.store(0, Ordering::Release);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate_all();
    }

    fn heartbeat_sent(&self, at: Instant) -> u64 {
        let mut hb = self.heartbeats.lock().unwrap_or_else(|e| e.into_inner());
        let seq = hb.next;
        hb.next += 1;
        hb.pending.push_back((seq, at, false, false));
        while hb.pending.len() > 16 {
            hb.pending.pop_front();
        }
        seq
    }

    /// A heartbeat came back (`echoed`) or was recorded in the instances set: once both,
    /// trust runs until `trust` after it was sent.
    fn heartbeat_confirmed(&self, seq: u64, echoed: bool) {
        let mut hb = self.heartbeats.lock().unwrap_or_else(|e| e.into_inner());
        let Some(slot) = hb.pending.iter_mut().find(|(s, ..)| *s == seq) else {
            return;
        };
        if echoed {
            slot.2 = true;
        } else {
            slot.3 = true;
        }
        if slot.2 && slot.3 {
            let until = self.nanos(slot.1 + self.trust);
            let before = self.trusted_until.fetch_max(until, Ordering::AcqRel);
            // Trust had lapsed: an invalidation may have gone unannounced meanwhile (an
            // announcer publishes only to instances listed as trusting), so start afresh.
            if before <= self.nanos(Instant::now()) && before < until {
                self.epoch.fetch_add(1, Ordering::AcqRel);
                self.entries.invalidate_all();
            }
        }
    }
}

/// Starts the subscriber and the heartbeat of `l1` on the cache's own I/O runtime, on
/// connections of their own; they end when the L1 does (its cache was dropped).
pub(crate) fn start(
    l1: &Arc<L1>,
    client: redis::Client,
    timeout: Duration,
) -> redis::RedisResult<()> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let conn = crate::backend::io::enter(|| {
        ConnectionManager::new_lazy_with_config(client.clone(), config)
    })?;
    let weak = Arc::downgrade(l1);
    drop(crate::backend::io::spawn(subscribe(
        weak.clone(),
        client,
        conn.clone(),
    )));
    drop(crate::backend::io::spawn(heartbeat(weak, conn)));
    Ok(())
}

async fn subscribe(l1: Weak<L1>, client: redis::Client, conn: ConnectionManager) {
    let mut pause = Duration::from_millis(10);
    loop {
        let Some(channel) = l1.upgrade().map(|l1| l1.names.channel.clone()) else {
            return;
        };
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => {
                if pubsub.subscribe(&channel).await.is_ok() {
                    pause = Duration::from_millis(10);
                    // Messages published before now were missed: start from nothing.
                    if let Some(l1) = l1.upgrade() {
                        l1.distrust();
                    }
                    let mut messages = pubsub.into_on_message();
                    while let Some(message) = messages.next().await {
                        let Some(l1) = l1.upgrade() else { return };
                        let Ok(text) = message.get_payload::<String>() else {
                            continue;
                        };
                        on_message(&l1, &text, conn.clone()).await;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cache: L1 cannot subscribe; serving from Redis"),
        }
        match l1.upgrade() {
            Some(l1) => l1.distrust(),
            None => return,
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

async fn on_message(l1: &L1, text: &str, mut conn: ConnectionManager) {
    let mut parts = text.splitn(3, ' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(kind), Some(id), Some(what)) if kind == "inv" || kind == "del" => {
            l1.take(if kind == "inv" {
                Change::Generation(what)
            } else {
                Change::Entry(what)
            });
            let ack = format!("{}{id}", l1.names.ack_prefix);
            let _: Result<(), _> = redis::pipe()
                .cmd("SADD")
                .arg(&ack)
                .arg(&l1.id)
                .ignore()
                .cmd("PEXPIRE")
                .arg(&ack)
                .arg(ACK_TTL_MS)
                .ignore()
                .query_async(&mut conn)
                .await;
        }
        (Some("hb"), Some(id), Some(seq)) if id == l1.id => {
            if let Ok(seq) = seq.parse() {
                l1.heartbeat_confirmed(seq, true);
            }
        }
        _ => {}
    }
}

async fn heartbeat(l1: Weak<L1>, mut conn: ConnectionManager) {
    loop {
        let Some(strong) = l1.upgrade() else { return };
        let every = strong.trust / HEARTBEATS_PER_TRUST;
        let sent = Instant::now();
        let seq = strong.heartbeat_sent(sent);
        let message = format!("hb {} {seq}", strong.id);
        let reply: redis::RedisResult<((u64, u64), u64)> = redis::pipe()
            .cmd("TIME")
            .cmd("PUBLISH")
            .arg(&strong.names.channel)
            .arg(&message)
            .query_async(&mut conn)
            .await;
        if let Ok(((secs, micros), _)) = reply {
            let now_ms = secs * 1000 + micros / 1000;
            let until = now_ms + u64::try_from(strong.trust.as_millis()).unwrap_or(u64::MAX);
            let recorded: redis::RedisResult<()> = redis::pipe()
                .cmd("ZADD")
                .arg(&strong.names.instances)
                .arg(until)
                .arg(&strong.id)
                .ignore()
                .cmd("ZREMRANGEBYSCORE")
                .arg(&strong.names.instances)
                .arg("-inf")
                .arg(now_ms.saturating_sub(60_000))
                .ignore()
                .query_async(&mut conn)
                .await;
            if recorded.is_ok() {
                strong.heartbeat_confirmed(seq, false);
            }
        }
        drop(strong);
        tokio::time::sleep(every.saturating_sub(sent.elapsed())).await;
    }
}

/// Publishes `change` (already made in Redis) and waits until every instance listed as
/// trusting its L1 has acknowledged it or stopped trusting. `own` is this instance's L1,
/// applied at once. With no other instance trusting its L1, nothing is published: one that
/// trusts again later starts from an empty L1. Each command is bounded by the cache's
/// timeout (and runs on a blocking call's connection in one); the wait, by `budget`.
pub(crate) async fn announce(
    redis: &RedisBackend,
    names: &Names,
    change: Change<'_>,
    own: Option<&L1>,
    budget: Duration,
) -> crate::Result<()> {
    if let Some(l1) = own {
        l1.take(change);
    }
    let instances = &names.instances;
    let ((secs, micros), listed): ((u64, u64), Vec<(String, u64)>) = redis
        .run("L1 instances", |mut c| async move {
            redis::pipe()
                .cmd("TIME")
                .cmd("ZRANGE")
                .arg(instances)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(&mut c)
                .await
        })
        .await?;
    let now_ms = secs * 1000 + micros / 1000;
    let own_id = own.map(|l1| l1.id.as_str());
    let mut pending: HashMap<String, u64> = listed
        .into_iter()
        .filter(|(member, until)| *until > now_ms && Some(member.as_str()) != own_id)
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    let id = format!("{:016x}", rand::random::<u64>());
    let message = &match change {
        Change::Generation(name) => format!("inv {id} {name}"),
        Change::Entry(key) => format!("del {id} {key}"),
    };
    let channel = &names.channel;
    redis
        .run("L1 publish", |mut c| async move {
            redis::cmd("PUBLISH")
                .arg(channel)
                .arg(message)
                .exec_async(&mut c)
                .await
        })
        .await?;
    let started = Instant::now();
    let ack = &format!("{}{id}", names.ack_prefix);
    while !pending.is_empty() {
        // Back to back (paced by the round trip) while acknowledgements are due, then every
        // millisecond: a timer sleep alone would add a millisecond or two to every call.
        if started.elapsed() > BACK_TO_BACK {
            crate::blocking::sleep(Duration::from_millis(1)).await;
        }
        let acked: Vec<String> = redis
            .run("L1 acknowledgements", |mut c| async move {
                redis::cmd("SMEMBERS").arg(ack).query_async(&mut c).await
            })
            .await?;
        for member in acked {
            pending.remove(&member);
        }
        let now_ms = now_ms + u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        pending.retain(|_, until| *until > now_ms);
        if started.elapsed() > budget {
            return Err(crate::Error::new(
                crate::ErrorKind::Timeout,
                format!(
                    "{} instance(s) did not acknowledge the invalidation within {budget:?}",
                    pending.len()
                ),
            ));
        }
    }
    Ok(())
}
