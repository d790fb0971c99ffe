//! The L1 protocol's traffic with Redis (see the parent module): each instance's subscriber
//! and heartbeat, and the announcement every change makes.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::aio::ConnectionManager;

use super::{Change, L1, Names};
use crate::backend::redis::RedisBackend;

/// How many heartbeats per trust period.
const HEARTBEATS_PER_TRUST: u32 = 4;
/// How long an announcer polls for acknowledgements without pausing.
const BACK_TO_BACK: Duration = Duration::from_millis(3);
/// How long an acknowledgement set lives.
const ACK_TTL_MS: u64 = 30_000;

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
        let Some((channel, trust)) = l1.upgrade().map(|l1| (l1.names.channel.clone(), l1.trust))
        else {
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
                    loop {
                        // Wakes at least once per trust period to end with the cache (its
                        // heartbeat, the one steady message, stops then).
                        let next = tokio::time::timeout(trust, messages.next()).await;
                        let Some(l1) = l1.upgrade() else { return };
                        match next {
                            Ok(Some(message)) => {
                                if let Ok(text) = message.get_payload::<String>() {
                                    on_message(&l1, &text, conn.clone()).await;
                                }
                            }
                            Ok(None) => break,
                            Err(_) => {}
                        }
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
