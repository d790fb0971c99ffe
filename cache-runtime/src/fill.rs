//! The one fill protocol, run by every cached call: `#[cached_query]`, `#[cached_view]`,
//! `CacheLayer` and `Cache::get`. It knows neither queries nor HTTP: a [`Filler`] brings
//! what differs (how a value is read and written, what may be stored, how to answer).
//!
//! 1. **Look up**, taking no lock: one `MGET` of the value and the generations it is
//!    expected to record (its own, plus those its last fill in this process recorded beyond
//!    them). A value is served only while every generation it recorded is current.
//! 2. On a miss, **join the flight** for the key: one caller per key and process (the
//!    leader) runs the body; the others wait for its value.
//! 3. The leader **starts the fill**: it reads (creating when missing) its own generations,
//!    before the body runs, so an invalidation from now on makes this fill's value stale.
//! 4. It **runs the body**, collecting the generations of every cached value the body reads
//!    (and whether it read anything no generation covers).
//! 5. It **seals** the value in an envelope recording all those generations, **writes** it
//!    when it can be checked later (or not at all), hands its dependencies up to the fill
//!    it runs inside, if any, and **publishes** it to its followers.
//! 6. A **follower** serves the leader's value when the leader read its generations after
//!    the follower joined, or when the value's generations are still current; otherwise it
//!    runs the body itself.
//!
//! See `docs/INVALIDATION.md` for why this never serves a value after an invalidation that
//! returned before the call began.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::Instrument;

use crate::backend::{Backend, ProbeKeys};
use crate::cache::Cache;
use crate::copies::Copy;
use crate::deps::{self, Dep, Unstorable};
use crate::envelope::{self, Header, Opened, Writer};
use crate::flight::{self, Join, Shared};
use crate::freshness::{Freshness, State};
use crate::lease::{self, Take};
use crate::stats::Event;

/// Clocks of app servers disagree: a value may claim to stay fresh this much longer than a
/// fill here would make it before it counts as foreign.
const CLOCK_SKEW_MS: u64 = 60_000;

/// One cached call: where its value lives and what it depends on by itself.
pub(crate) struct Plan<'a> {
    pub(crate) cache: Cache,
    /// Names the function, view or layer in logs and metrics (never a key).
    pub(crate) name: &'static str,
    /// The stored key.
    pub(crate) key: String,
    /// How long a value stays fresh.
    pub(crate) ttl: Duration,
    /// The generations a value depends on by itself.
    pub(crate) own: Own<'a>,
    /// Stale window, early refresh, lease.
    pub(crate) freshness: Freshness,
}

/// Generation names, and how long a counter created for one lives (`None`: until evicted).
pub(crate) type Names = Vec<(String, Option<Duration>)>;

/// The generations a value depends on by itself, built when first asked for: a hit on a
/// local copy that nothing was written to the store since (`memory://`) needs none of them,
/// and building a page's costs a few allocations.
pub(crate) struct Own<'a> {
    names: OnceLock<Names>,
    build: Option<&'a (dyn Fn() -> Names + Sync)>,
}

impl<'a> Own<'a> {
    /// Names already built.
    pub(crate) fn built(names: Names) -> Own<'static> {
        Own {
            names: OnceLock::from(names),
            build: None,
        }
    }

    /// Names `build` makes when they are first asked for (a view's).
    #[cfg(feature = "view")]
    pub(crate) fn lazy(build: &'a (dyn Fn() -> Names + Sync)) -> Own<'a> {
        Own {
            names: OnceLock::new(),
            build: Some(build),
        }
    }

    pub(crate) fn get(&self) -> &[(String, Option<Duration>)] {
        self.names
            .get_or_init(|| self.build.map(|build| build()).unwrap_or_default())
    }
}

impl Plan<'_> {
    /// Whether a fill takes a lease: asked for, and the store is shared with other processes.
    fn leases(&self) -> bool {
        self.freshness.lease && self.cache.inner.backend.shared()
    }
}

/// What differs between kinds of cached calls.
pub(crate) trait Filler {
    /// What the body returns.
    type Out;
    /// What the call returns.
    type Answer;
    /// Sets the header fields of this kind of value (kind, codec, fingerprint).
    fn stamp(&self, header: &mut Header);
    /// The answer from a stored or shared value; `None` when the value is not of this
    /// kind or does not decode (a miss).
    fn answer(&self, value: &Opened) -> Option<Self::Answer>;
    /// The answer from the body's output, writing the payload to store into `writer`
    /// (the envelope's header is in it already); false when nothing is to be stored.
    fn finish(&self, out: Self::Out, header: &Header, writer: &mut Writer) -> (Self::Answer, bool);
    /// The answer from the body's output when nothing is stored.
    fn pass(&self, out: Self::Out) -> Self::Answer;
    /// Whether the body's output is a failure (an `Err`, a 5xx) that an old value within its
    /// stale window replaces (stale-if-error).
    fn failed(&self, out: &Self::Out) -> bool;
    /// Whether `value` may be served once expired, within the stale window (a response
    /// whose own headers forbid it may not: `must-revalidate`).
    fn serves_stale(&self, _value: &Opened) -> bool {
        true
    }
}

/// The state of `value` now, for `filler`: an expired value that `filler` may not serve
/// stale is gone.
fn state_of<F: Filler>(plan: &Plan<'_>, filler: &F, value: &Opened) -> Option<State> {
    match plan.freshness.state(&value.header, envelope::now_ms()) {
        Some(State::Stale) if !filler.serves_stale(value) => None,
        state => state,
    }
}

/// Runs one cached call: answers from the cache when it can, else runs `body` (once per
/// key and process) and stores what may be stored. Without a plan (no cache, a key that
/// cannot be built) it runs `body` uncached.
///
/// Not an `async fn`, and callers hand their future straight to it rather than awaiting it
/// inside an `async fn` of their own: an `async fn` keeps a by-value argument twice (as
/// passed, and as the local it binds), so every such layer would double the size of nested
/// cached calls (a page calling a query calling a query). The `async move` block below
/// holds `body` once, and only a miss moves it to the heap.
#[allow(clippy::manual_async_fn)] // on purpose: see above
pub(crate) fn run<F: Filler>(
    plan: Option<Plan<'_>>,
    filler: F,
    body: impl Future<Output = F::Out>,
) -> impl Future<Output = F::Answer> {
    async move {
        let Some(plan) = plan else {
            // Nothing can be checked about what this call reads: an enclosing fill must
            // not store a value built from it.
            deps::taint();
            return filler.pass(Box::pin(body).await);
        };
        let started = Instant::now();
        if let Some(value) = l1_get(&plan)
            && plan.freshness.state(&value.header, envelope::now_ms()) == Some(State::Fresh)
        {
            // Unreadable here is unreadable in Redis too: the lookup below counts the
            // decode error (once per call) and the fill replaces the bytes.
            match filler.answer(&value) {
                Some(answer) => {
                    plan.cache.count(Event::L1Hit, plan.name);
                    return hit(&plan, answer, &value, started);
                }
                None => l1_forget(&plan),
            }
        }
        let epoch = l1_epoch(&plan);
        let found = lookup(&plan, Count::Yes).await.ok().flatten();
        // Which fill this call saw, if any: waiting for another process's fill means waiting
        // for another one.
        let seen = found.as_ref().map(|value| value.header.filled_at_ms);
        let old = match found {
            Some(value) => match state_of(&plan, &filler, &value) {
                Some(State::Fresh) => match serve(&plan, &filler, &value, started) {
                    Some(answer) => {
                        l1_keep(&plan, value, epoch);
                        return answer;
                    }
                    None => None,
                },
                Some(state) => Some((value, state)),
                None => None,
            },
            None => None,
        };
        let body = Box::pin(body);
        if let Some((value, state)) = old {
            return refresh(&plan, &filler, value, state, body, started).await;
        }
        let joined = Instant::now();
        match plan.cache.inner.flights.join(&plan.key) {
            Join::Leader(leader) => {
                fill(&plan, &filler, leader, body, seen)
                    .instrument(
                        tracing::debug_span!("cache.fill", name = plan.name, key = %plan.key),
                    )
                    .await
            }
            Join::Follower(slot) => {
                plan.cache.observed_wait(plan.name);
                if let Some(shared) = flight::wait(slot).await
                    && let Some(answer) = follow(&plan, &filler, &shared, joined).await
                {
                    return answer;
                }
                // The leader had nothing this call may serve: run uncached.
                deps::taint();
                filler.pass(body.await)
            }
        }
    }
}

/// A miss led by this call: with leases, one process in the fleet fills and this one may
/// end up waiting for its value instead.
async fn fill<F: Filler>(
    plan: &Plan<'_>,
    filler: &F,
    leader: flight::Leader<'_>,
    body: impl Future<Output = F::Out>,
    seen: Option<u64>,
) -> F::Answer {
    // A value another process stored since this call's lookup (not the fill it saw), still
    // servable.
    let poll = || async {
        let since = Instant::now();
        let value = lookup(plan, Count::No).await.ok()??;
        if Some(value.header.filled_at_ms) == seen {
            return None;
        }
        state_of(plan, filler, &value).map(|_| (value, since))
    };
    let lease = if plan.leases() {
        let found = match lease::take(&plan.cache, &plan.key, plan.name).await {
            // Taken: the lease's last holder may have filled and freed it since the lookup.
            Take::Taken(lease) => match poll().await {
                Some(found) => {
                    lease.release(&plan.cache, plan.name).await;
                    Ok(found)
                }
                None => Err(Some(lease)),
            },
            Take::Unavailable => Err(None),
            Take::Held => lease::wait(&plan.cache, &plan.key, plan.name, poll).await,
        };
        match found {
            Ok((value, since)) => match serve(plan, filler, &value, since) {
                Some(answer) => {
                    leader.publish(Shared {
                        value,
                        since,
                        checkable: true,
                    });
                    return answer;
                }
                None => None,
            },
            Err(lease) => lease,
        }
    } else {
        None
    };
    let answer = lead(plan, filler, leader, body, None).await;
    if let Some(lease) = lease {
        lease.release(&plan.cache, plan.name).await;
    }
    answer
}

/// A value that is stale or chosen for early refresh: one caller per key (in this process,
/// and with leases in the fleet) recomputes it; every other is served the value at once.
async fn refresh<F: Filler>(
    plan: &Plan<'_>,
    filler: &F,
    old: Opened,
    state: State,
    body: impl Future<Output = F::Out>,
    started: Instant,
) -> F::Answer {
    let served = |plan: &Plan| {
        if state == State::Stale {
            plan.cache.count(Event::ServedStale, plan.name);
        }
        serve(plan, filler, &old, started)
    };
    let Some(leader) = plan.cache.inner.flights.try_lead(&plan.key) else {
        // Being refreshed in this process already.
        if let Some(answer) = served(plan) {
            return answer;
        }
        deps::taint();
        return filler.pass(body.await);
    };
    let lease = if plan.leases() {
        match lease::take(&plan.cache, &plan.key, plan.name).await {
            // Taken: the lease's last holder may have refreshed and freed it since the lookup.
            Take::Taken(lease) => {
                let since = Instant::now();
                if let Ok(Some(value)) = lookup(plan, Count::No).await
                    && value.header.filled_at_ms != old.header.filled_at_ms
                    && plan.freshness.state(&value.header, envelope::now_ms()) == Some(State::Fresh)
                    && let Some(answer) = serve(plan, filler, &value, since)
                {
                    lease.release(&plan.cache, plan.name).await;
                    leader.publish(Shared {
                        value,
                        since,
                        checkable: true,
                    });
                    return answer;
                }
                Some(lease)
            }
            Take::Unavailable => None,
            Take::Held => {
                // Being refreshed in another process.
                if let Some(answer) = served(plan) {
                    return answer;
                }
                None
            }
        }
    } else {
        None
    };
    plan.cache.count(Event::Refresh, plan.name);
    let answer = lead(plan, filler, leader, body, Some(&old)).await;
    if let Some(lease) = lease {
        lease.release(&plan.cache, plan.name).await;
    }
    answer
}

/// The answer from the value stored under `plan.key`, when one may be served (a hit, and
/// its dependencies go to the fill this call runs inside). An error only when the backend
/// failed.
pub(crate) async fn cached_answer<F: Filler>(
    plan: &Plan<'_>,
    filler: &F,
) -> crate::Result<Option<F::Answer>> {
    let started = Instant::now();
    let Some(value) = lookup(plan, Count::Yes).await? else {
        return Ok(None);
    };
    Ok(match state_of(plan, filler, &value) {
        Some(state) => {
            if state == State::Stale {
                plan.cache.count(Event::ServedStale, plan.name);
            }
            serve(plan, filler, &value, started)
        }
        None => None,
    })
}

/// The answer from a value found by [`lookup`], counted as a hit; its dependencies go to
/// the fill this call runs inside. `None` (counted) when the filler cannot read it.
fn serve<F: Filler>(
    plan: &Plan<'_>,
    filler: &F,
    value: &Opened,
    started: Instant,
) -> Option<F::Answer> {
    let Some(answer) = filler.answer(value) else {
        plan.cache.count(Event::DecodeError, plan.name);
        tracing::warn!(key = %plan.key, name = plan.name, "cache: stored value is not readable; recomputing");
        return None;
    };
    Some(hit(plan, answer, value, started))
}

/// Counts and records a hit on `value` whose answer is `answer`.
fn hit<A>(plan: &Plan<'_>, answer: A, value: &Opened, started: Instant) -> A {
    if deps::active() {
        deps::record(value.deps());
    }
    tracing::debug!(key = %plan.key, name = plan.name, "cache hit");
    plan.cache
        .observed_hit(plan.name, started, value.stored_len);
    answer
}

/// Runs the fill itself: reads the generations, runs the body, stores and publishes what may
/// be. When the body fails and `old` is a value still within its stale window, `old` is the
/// answer (stale-if-error).
async fn lead<F: Filler>(
    plan: &Plan<'_>,
    filler: &F,
    leader: flight::Leader<'_>,
    body: impl Future<Output = F::Out>,
    old: Option<&Opened>,
) -> F::Answer {
    let Plan {
        cache, name, key, ..
    } = plan;
    if old.is_none() {
        cache.count(Event::Miss, name);
        tracing::debug!(key = %key, name, "cache miss");
    }

    let since = Instant::now();
    let epoch = l1_epoch(plan);
    let generations = start(cache, plan.own.get(), name).await;
    let started = Instant::now();
    let (out, collected) = deps::collect(body).await;
    let cost = started.elapsed();

    if filler.failed(&out)
        && let Some(old) = old
        && state_of(plan, filler, old).is_some()
        && let Some(answer) = filler.answer(old)
    {
        cache.count(Event::ServedStale, name);
        tracing::warn!(key = %key, name, "cache: the refresh failed; serving the value it was to replace");
        if deps::active() {
            deps::record(old.deps());
        }
        return answer;
    }

    let deps = match generations {
        Ok(own) => collected.merge(&own),
        Err(_) => Err(Unstorable::Unchecked),
    };
    // The enclosing fill, if any, depends on whatever this one read, stored or not.
    match &deps {
        Ok(deps) => deps::record(deps.iter().map(|(n, g)| (n.as_str(), *g))),
        Err(_) => deps::taint(),
    }

    let mut header = Header::new(envelope::Kind::Value, 0, plan.ttl, cost);
    filler.stamp(&mut header);
    let recorded: &[Dep] = deps.as_deref().unwrap_or_default();
    let writer = Writer::new(&header, recorded.iter().map(|(n, g)| (n.as_str(), *g)), 256);
    let Some(mut writer) = writer else {
        return filler.pass(out);
    };
    let (answer, stored) = filler.finish(out, &header, &mut writer);
    if !stored {
        return answer;
    }
    let bytes = writer.seal(cache.compression());
    let stored = match &deps {
        Ok(_) if bytes.len() > cache.inner.max_value_size => {
            cache.count(Event::NotStored, name);
            tracing::debug!(key = %key, name, size = bytes.len(), "cache: value over the size limit; not stored");
            false
        }
        Ok(recorded) => {
            let keep = plan.freshness.keep(plan.ttl);
            remember_beyond_own(plan, recorded.iter().map(|(n, _)| n.as_str()));
            cache.write(key.clone(), bytes.clone(), keep, name).await
        }
        Err(why) => {
            cache.count(Event::NotStored, name);
            tracing::debug!(key = %key, name, reason = why.reason(), "cache: value not stored");
            false
        }
    };
    cache.observed_fill(name, since.elapsed());
    let keep = stored && epoch != NO_L1;
    let copy = stored && cache.inner.copies.is_some();
    if (leader.followed() || keep || copy)
        && let Some(value) = envelope::open(bytes, usize::MAX)
    {
        if keep {
            l1_keep(plan, value.clone(), epoch);
        }
        if copy {
            // Not checked since it was written: its first hit checks it.
            keep_copy(plan, &value, None);
        }
        leader.publish(Shared {
            value,
            since: if deps.is_ok() { since } else { started },
            checkable: deps.is_ok(),
        });
    }
    answer
}

/// What [`l1_epoch`] says without an L1.
const NO_L1: u64 = u64::MAX;

/// The value kept under `plan.key` in this process's L1, if it has one and trusts it.
fn l1_get(plan: &Plan<'_>) -> Option<std::sync::Arc<Opened>> {
    plan.cache.inner.l1.as_ref()?.get(&plan.key)
}

/// Drops the value kept under `plan.key` in this process's L1, if it has one.
fn l1_forget(plan: &Plan<'_>) {
    if let Some(l1) = &plan.cache.inner.l1 {
        l1.forget(&plan.key);
    }
}

/// The L1's epoch before a read from Redis ([`NO_L1`] without one).
fn l1_epoch(plan: &Plan<'_>) -> u64 {
    plan.cache.inner.l1.as_ref().map_or(NO_L1, |l1| l1.epoch())
}

/// Keeps `value`, read from Redis or just written there by a read that began at `epoch`, in
/// this process's L1, if it has one.
fn l1_keep(plan: &Plan<'_>, value: Opened, epoch: u64) {
    if let Some(l1) = &plan.cache.inner.l1 {
        l1.keep(&plan.key, std::sync::Arc::new(value), epoch);
    }
}

/// The answer from a leader's value, when this follower may serve it.
async fn follow<F: Filler>(
    plan: &Plan<'_>,
    filler: &F,
    shared: &Shared,
    joined: Instant,
) -> Option<F::Answer> {
    // Joined before the leader read its generations: the value is newer than this call.
    // Joined later: the leader's fill may predate an invalidation that returned before
    // this call began, so its generations are checked.
    let usable = joined <= shared.since
        || (shared.checkable && current(&plan.cache, shared.value.deps(), plan.name).await);
    if !usable {
        return None;
    }
    // The followers share the leader's value: the first to decode it keeps it for the rest.
    shared.value.decoded.retain();
    let answer = filler.answer(&shared.value)?;
    plan.cache.count(Event::Hit, plan.name);
    if shared.checkable {
        deps::record(shared.value.deps());
    } else {
        deps::taint();
    }
    tracing::debug!(key = %plan.key, name = plan.name, "cache hit (shared flight)");
    Some(answer)
}

/// Reads the value under `plan.key` with, in the same `MGET`, the generations it is
/// expected to record; `None` (counted) when there is none that may be served: missing,
/// invalidated or unreadable. Whether it is fresh is the caller's question
/// ([`Freshness::state`]). An error when the backend failed.
async fn lookup(plan: &Plan<'_>, count: Count) -> crate::Result<Option<Opened>> {
    let Plan {
        cache, name, key, ..
    } = plan;
    let inner = &cache.inner;
    if let Some(copies) = &inner.copies
        && let Some(copy) = copies.get(key)
    {
        // Loaded before anything is read: see `Backend::epoch`.
        let epoch = inner.backend.epoch();
        if copy.current_at(epoch) {
            return Ok(Some(copy.value.clone()));
        }
        match probe(plan, &copy).await? {
            Probed::Same { current: true } => {
                copy.verified(epoch);
                return Ok(Some(copy.value.clone()));
            }
            Probed::Same { current: false } => {
                copies.forget(key);
                return Ok(invalidated(plan, count));
            }
            Probed::Gone => {
                copies.forget(key);
                return Ok(None);
            }
            // Another fill's value (or another program's bytes): read it whole.
            Probed::Other => copies.forget(key),
        }
    }
    let epoch = inner.backend.epoch();
    let hint = inner.hints.get(key);
    let expected: Vec<&str> = plan
        .own
        .get()
        .iter()
        .map(|(n, _)| n.as_str())
        .chain(hint.iter().flat_map(|h| h.iter().map(String::as_str)))
        .collect();
    let mut keys = Vec::with_capacity(1 + expected.len());
    keys.push(key.clone());
    keys.extend(expected.iter().map(|n| inner.layout.generation(n)));
    let mut values = cache.mget(keys, name, key).await?.into_iter();
    let Some(Some(bytes)) = values.next() else {
        return Ok(None);
    };
    let generations: Vec<Option<Bytes>> = values.collect();

    let Some(value) = envelope::open(bytes, cache.compression().limit) else {
        if count == Count::Yes {
            cache.count(Event::DecodeError, name);
            tracing::warn!(key = %key, name, "cache: stored bytes are not a value; recomputing");
        }
        return Ok(None);
    };
    let now = envelope::now_ms();
    let ttl_ms = u64::try_from(plan.ttl.as_millis()).unwrap_or(u64::MAX);
    if value.header.fresh_until_ms > now.saturating_add(ttl_ms).saturating_add(CLOCK_SKEW_MS) {
        // Fresher than any fill with this TTL makes it: foreign, or the TTL was lowered.
        if count == Count::Yes {
            cache.count(Event::DecodeError, name);
            tracing::warn!(key = %key, name, "cache: stored value claims a longer life than its TTL; recomputing");
        }
        return Ok(None);
    }
    let mut beyond = Vec::new();
    for (dep, generation) in value.deps() {
        match expected.iter().position(|e| *e == dep) {
            Some(i) if holds(&generations[i], generation) => {}
            Some(_) => return Ok(invalidated(plan, count)),
            None => beyond.push((dep, generation)),
        }
    }
    if !beyond.is_empty() {
        // Dependencies this process did not expect (another process filled the value, or
        // the page reads other queries now): one more round trip, then remembered.
        if !current(cache, beyond.iter().copied(), name).await {
            return Ok(invalidated(plan, count));
        }
        remember_beyond_own(plan, value.deps().map(|(n, _)| n));
    }
    keep_copy(plan, &value, epoch);
    Ok(Some(value))
}

/// What Redis holds under a key this process has a copy of.
enum Probed {
    /// The copy's value; `current` when every generation it recorded still is.
    Same { current: bool },
    /// Nothing.
    Gone,
    /// Something else, or the store would not say.
    Other,
}

/// Asks the store whether `copy` is still the value under `plan.key`, and whether the
/// generations it recorded are current, in one round trip that does not read the value.
async fn probe(plan: &Plan<'_>, copy: &Copy) -> crate::Result<Probed> {
    let Plan {
        cache, name, key, ..
    } = plan;
    let reads = copy.probe.get_or_init(|| {
        let layout = &cache.inner.layout;
        let keys = copy.value.deps().map(|(n, _)| layout.generation(n));
        ProbeKeys::new(key.clone(), envelope::HEAD_LEN, keys.collect())
    });
    let probe = cache.inner.backend.probe(reads);
    let (head, generations) = cache.guarded(name, "read", Some(key), probe).await?;
    let copy = &copy.value;
    let Some(head) = head else {
        return Ok(Probed::Other);
    };
    Ok(if head.is_empty() {
        Probed::Gone
    } else if head != copy.head {
        Probed::Other
    } else {
        let current = copy
            .deps()
            .zip(&generations)
            .all(|((_, generation), raw)| holds(raw, generation));
        Probed::Same { current }
    })
}

/// Keeps a copy of `value`, read from or written to `plan.key`, when the cache keeps copies.
fn keep_copy(plan: &Plan<'_>, value: &Opened, verified: Option<u64>) {
    if let Some(copies) = &plan.cache.inner.copies {
        copies.keep(&plan.key, value.clone(), verified);
    }
}

/// Whether a lookup counts what it finds: the first look of a call does; the polls of a
/// call waiting for another process's fill do not (they would count one value many times).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Count {
    Yes,
    No,
}

fn invalidated(plan: &Plan<'_>, count: Count) -> Option<Opened> {
    if count == Count::Yes {
        plan.cache.count(Event::Invalidated, plan.name);
        tracing::debug!(key = %plan.key, name = plan.name, "cache: invalidated value");
    }
    None
}

/// Remembers, for the next lookup of `plan.key`, the generation names among `names` that
/// are not the value's own.
fn remember_beyond_own<'n>(plan: &Plan<'_>, names: impl Iterator<Item = &'n str>) {
    let beyond: Vec<String> = names
        .filter(|n| !plan.own.get().iter().any(|(own, _)| own == n))
        .map(str::to_owned)
        .collect();
    if !beyond.is_empty() {
        plan.cache
            .inner
            .hints
            .insert(plan.key.clone(), Arc::from(beyond));
    }
}

/// Whether the raw counter `raw` holds `generation`.
fn holds(raw: &Option<Bytes>, generation: u64) -> bool {
    raw.as_deref() == Some(&generation.to_le_bytes()[..])
}

/// Whether every generation in `deps` is still current (one `MGET`); a backend failure
/// says no.
pub(crate) async fn current<'d>(
    cache: &Cache,
    deps: impl ExactSizeIterator<Item = (&'d str, u64)> + Clone,
    name: &'static str,
) -> bool {
    if deps.len() == 0 {
        return true;
    }
    let layout = &cache.inner.layout;
    let keys = deps.clone().map(|(n, _)| layout.generation(n)).collect();
    let Ok(values) = cache.mget(keys, name, "generations").await else {
        return false;
    };
    let fresh = deps.zip(&values).all(|((_, g), raw)| holds(raw, g));
    if !fresh {
        cache.count(Event::Invalidated, name);
    }
    fresh
}

/// Reads the generations `own` names, creating missing ones with a random value (so a
/// recreated counter never equals a lost one). An error when the backend failed: the
/// fill's value must then not be stored. A counter holding bytes that are not a generation
/// (another program wrote there) is replaced: it is as good as missing.
pub(crate) async fn start(
    cache: &Cache,
    own: &[(String, Option<Duration>)],
    name: &'static str,
) -> crate::Result<Vec<Dep>> {
    let layout = &cache.inner.layout;
    let offer = || Bytes::copy_from_slice(&rand::random::<u64>().to_le_bytes());
    let items: Vec<_> = own
        .iter()
        .map(|(n, ttl)| (layout.generation(n), offer(), *ttl))
        .collect();
    let first = items.first().map(|(key, _, _)| key.clone());
    let backend = &cache.inner.backend;
    let values = cache
        .guarded(
            name,
            "generations",
            first.as_deref(),
            crate::backend::Backend::get_or_create(backend, items),
        )
        .await?;
    let mut deps = Vec::with_capacity(own.len());
    for ((gen_name, ttl), raw) in own.iter().zip(values) {
        let generation = match raw.as_deref().map(<[u8; 8]>::try_from) {
            Some(Ok(bytes)) => u64::from_le_bytes(bytes),
            _ => {
                cache.count(Event::DecodeError, name);
                tracing::warn!(generation = %gen_name, name, "cache: a generation counter holds foreign bytes; replacing it");
                let fresh = rand::random::<u64>();
                let set = backend.set(
                    layout.generation(gen_name),
                    Bytes::copy_from_slice(&fresh.to_le_bytes()),
                    *ttl,
                );
                cache.guarded(name, "generations", None, set).await?;
                fresh
            }
        };
        deps.push((gen_name.clone(), generation));
    }
    Ok(deps)
}
