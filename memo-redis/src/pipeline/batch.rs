//! Batch calls (companion `f_many`): many argument tuples of one cached function served with
//! one read and one write for all of them, through the steps of the one pipeline.
//!
//! near cache → one `MGET` of the distinct keys (on a cluster one per slot, concurrently) under
//! one Redis budget for the whole batch → decode (a corrupt entry is a miss for its key only) →
//! single-flight per missed key → the bodies of the misses, at most [`CONCURRENCY`] at a time →
//! guarded encode and size check per result → one pipeline of `SET`s (one per slot on a
//! cluster) → repair of corrupt entries → flights finished → counters per key.
//!
//! Rare paths go through the single-call pipeline ([`run`]) key by key rather than copying it: a
//! key whose flight (led by another caller) ended without a shareable value, and duplicates of a
//! key whose result cannot be shared (an `Err`). Entries with tags are written one by one
//! ([`write::store`], which records the tags). A batch does not take the cross-process lock, does
//! not extend sliding entries, serves an entry past its TTL (the `stale` window) as a miss
//! rather than refreshing it in the background, and does not fill the near cache.

use std::collections::HashMap;
use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};

use crate::cache::Inner;
use crate::clock::now_ms;
use crate::error::Error;
use crate::flight::{self, Lead, Outcome, Role, Stamp, Wait};
use crate::observe::CallOutcome;
use crate::shape::Shape;
use crate::spec::key::Key;
use crate::spec::Spec;
use crate::store::Budget;

use super::entry::{self, Encoded, Meta};
use super::{run, write, Rules, Target};

/// How many bodies of one batch call (companion `f_many`) run at once: enough to overlap the
/// I/O of typical bodies (database or HTTP calls), few enough not to flood what they call. A
/// batch with more misses runs them in waves; split the batch, or call the function, for
/// another bound.
///
/// ```
/// assert_eq!(memo_redis::BATCH_CONCURRENCY, 16);
/// ```
pub const CONCURRENCY: usize = 16;

/// One distinct key of the batch and the items (input positions and arguments) that share it.
struct Group<A> {
    key: Key,
    items: Vec<(usize, A)>,
}

/// What the batch read found for one key.
enum Found {
    Bytes(Vec<u8>),
    Missing,
    /// The read failed: the outcome to count (`Error`, or `Bypass` for an open breaker).
    Failed(CallOutcome),
}

/// A missed key whose body this batch runs (its arguments travel beside it).
struct Miss {
    group: usize,
    /// The input position of the item whose body runs; the group's other items are duplicates.
    pos: usize,
    lead: Option<Lead<'static>>,
    stamp: Option<Stamp>,
    corrupt: Option<Vec<u8>>,
    failure: Option<CallOutcome>,
}

/// The batch call: each item's result in input order, as that many single calls would return
/// them, with one `MGET` and one write pipeline instead of a round trip per item.
pub async fn memo_many<S, R, A, K, M, F>(
    spec: &'static Spec,
    items: impl IntoIterator<Item = A>,
    key: K,
    make: M,
) -> Vec<R>
where
    S: Shape<R>,
    K: Fn(&A) -> Result<Key, Error>,
    M: Fn(A) -> F,
    F: Future<Output = R>,
{
    spec.register();
    let mut out: Vec<Option<R>> = Vec::new();
    let mut direct: Vec<(usize, A)> = Vec::new();
    let mut groups: Vec<Group<A>> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, args) in items.into_iter().enumerate() {
        out.push(None);
        match key(&args) {
            Ok(k) => match seen.get(&*k.key) {
                Some(&g) => groups[g].items.push((i, args)),
                None => {
                    seen.insert(k.key.to_string(), groups.len());
                    groups.push(Group {
                        key: k,
                        items: vec![(i, args)],
                    });
                }
            },
            Err(e) => {
                spec.count(CallOutcome::Bypass);
                if !matches!(e, Error::Config(_)) {
                    spec.log_key_error(&e);
                }
                direct.push((i, args));
            }
        }
    }
    drop(seen);
    if let Some(inner) = groups.first().map(|g| g.key.inner) {
        serve::<S, R, A, M, F>(spec, inner, groups, &mut out, &mut direct, &make).await;
    }
    // Bodies run directly (key error, bypass): nothing is read or stored for them.
    let ran: Vec<(usize, R)> = stream::iter(direct)
        .map(|(i, args)| {
            let body = make(args);
            async move { (i, body.await) }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for (i, r) in ran {
        out[i] = Some(r);
    }
    // Every position is filled: each item was a hit, a body run, or a single call.
    out.into_iter().flatten().collect()
}

/// The groups' values into `out`; items to run directly (bypass) are pushed onto `direct`.
async fn serve<S, R, A, M, F>(
    spec: &'static Spec,
    inner: &'static Arc<Inner>,
    mut groups: Vec<Group<A>>,
    out: &mut [Option<R>],
    direct: &mut Vec<(usize, A)>,
    make: &M,
) where
    S: Shape<R>,
    M: Fn(A) -> F,
    F: Future<Output = R>,
{
    // The near cache first, as for single calls.
    // (`near()` starts the near cache: only asked when the function has one.)
    if let Some(near) = spec.local_ms().and_then(|_| inner.near()) {
        groups.retain(|g| {
            let Some(held) = near.get(&g.key.key) else {
                return true;
            };
            // Kept decoded: a clone per item; another value type under the key is a miss.
            let mut values = Vec::with_capacity(g.items.len());
            for _ in &g.items {
                match S::from_held(&held) {
                    Some(r) => values.push(r),
                    None => {
                        near.invalidate(g.key.key.as_bytes());
                        return true;
                    }
                }
            }
            for ((i, _), r) in g.items.iter().zip(values) {
                out[*i] = Some(r);
                spec.count(CallOutcome::Hit);
                spec.count_local_hit();
            }
            false
        });
    }
    if groups.is_empty() {
        return;
    }
    if inner.store.breaker.bypassing() || !crate::runtime::usable() {
        for g in groups {
            for item in g.items {
                spec.count(CallOutcome::Bypass);
                direct.push(item);
            }
        }
        return;
    }
    // One Redis time budget for the whole batch: the reads, the write pipeline, tags, repairs.
    let mut budget = Budget::new(inner.store.op_timeout());
    let stamps: Vec<Option<Stamp>> = groups
        .iter()
        .map(|g| {
            spec.single_flight()
                .then(|| inner.flights.stamp(&g.key.key))
        })
        .collect();
    let found = {
        let keys: Vec<&str> = groups.iter().map(|g| g.key.key.deref()).collect();
        read_all(spec, inner, &keys, &mut budget).await
    };

    // Hits are served; each missed key joins its flight.
    let mut misses: Vec<(Miss, A)> = Vec::new();
    let mut follows: Vec<(usize, Arc<flight::Slot>)> = Vec::new();
    for (g, (found, stamp)) in found.into_iter().zip(stamps).enumerate() {
        let group = &mut groups[g];
        let (mut corrupt, mut failure) = (None, None);
        match found {
            Found::Bytes(bytes) => {
                match entry::decode::<S, R>(&bytes, inner.config.max_value_bytes) {
                    Ok((r, meta)) if !expired(spec, inner, meta) => {
                        // The first item takes the value decoded here; repeats decode their own.
                        let count = || spec.count(CallOutcome::Hit);
                        if let Some(((first, _), rest)) = group.items.split_first()
                            && serve_from::<S, R, A>(&bytes, rest, out, count)
                        {
                            out[*first] = Some(r);
                            count();
                            continue;
                        }
                    }
                    Ok(_) => {}
                    Err(why) => {
                        tracing::debug!(function = spec.label(), reason = %why, "undecodable cache entry; recomputing");
                        corrupt = Some(bytes);
                    }
                }
            }
            Found::Missing => {}
            Found::Failed(outcome) => failure = Some(outcome),
        }
        let lead = match spec.single_flight() {
            true => match inner.flights.join(&group.key.key) {
                Role::Leader(lead) => Some(lead),
                Role::Follower(slot) => {
                    follows.push((g, slot));
                    continue;
                }
            },
            false => None,
        };
        if group.items.is_empty() {
            continue; // never: a group is made with its first item
        }
        let (pos, args) = group.items.remove(0);
        let miss = Miss {
            group: g,
            pos,
            lead,
            stamp,
            corrupt,
            failure,
        };
        misses.push((miss, args));
    }

    reread::<S, R, A>(spec, inner, &mut groups, &mut misses, out, &mut budget).await;

    // The bodies of the misses, at most CONCURRENCY at a time.
    let ran: Vec<(Miss, R, Duration)> = stream::iter(misses)
        .map(|(mut miss, args)| {
            let body = make(args);
            async move {
                let started = Instant::now();
                match flight::catching(body).await {
                    Ok(r) => {
                        let took = started.elapsed();
                        spec.observe_body(took);
                        (miss, r, took)
                    }
                    Err(panic) => {
                        // Released at once, as a single call's leader does; the batch's other
                        // flights are abandoned when the unwind drops them.
                        if let Some(lead) = miss.lead.take() {
                            lead.finish(Outcome::NotShared);
                        }
                        std::panic::resume_unwind(panic);
                    }
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;

    let singles = settle::<S, R, A>(spec, inner, &mut groups, ran, out, &mut budget).await;

    // Other callers' flights, awaited only now: this batch's own flights are all finished, so
    // two batches that lead each other's keys cannot wait on each other.
    let waits = follows
        .into_iter()
        .map(|(g, slot)| async move { (g, flight::wait(slot).await) });
    let mut singles = singles;
    for (g, wait) in futures_util::future::join_all(waits).await {
        let group = &mut groups[g];
        let shared = match wait {
            Wait::Shared(bytes) => serve_from::<S, R, A>(&bytes, &group.items, out, || {
                spec.count(CallOutcome::Hit);
                spec.count_coalesced();
            }),
            Wait::NotShared | Wait::Abandoned => false,
        };
        if !shared {
            singles.extend(group.items.drain(..).map(|(i, a)| (g, i, a)));
        }
    }

    // The rare rest, through the single-call pipeline, key by key.
    let groups = &groups;
    let ran: Vec<(usize, R)> = stream::iter(singles)
        .map(|(g, i, args)| {
            let key = &groups[g].key;
            let target = Target {
                inner,
                key: &key.key,
                tags: &key.tags,
            };
            async move {
                (
                    i,
                    run::<S, R, Spec, _, F>(spec, target, || make(args), None).await,
                )
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for (i, r) in ran {
        out[i] = Some(r);
    }
}

/// Leaders whose key's flight ended between the batch read and the join (its value is in
/// Redis now) read those keys once more instead of running their bodies a second time.
async fn reread<S, R, A>(
    spec: &'static Spec,
    inner: &'static Arc<Inner>,
    groups: &mut [Group<A>],
    misses: &mut Vec<(Miss, A)>,
    out: &mut [Option<R>],
    budget: &mut Budget,
) where
    S: Shape<R>,
{
    let again: Vec<usize> = (0..misses.len())
        .filter(|&m| {
            let miss = &misses[m].0;
            miss.failure.is_none()
                && miss.lead.is_some()
                && miss.stamp.is_some_and(|s| inner.flights.ended_since(s))
        })
        .collect();
    if again.is_empty() {
        return;
    }
    // Those flights have just written their values, on the masters.
    budget.read_master();
    let found = {
        let keys: Vec<&str> = again
            .iter()
            .map(|&m| groups[misses[m].0.group].key.key.deref())
            .collect();
        read_all(spec, inner, &keys, budget).await
    };
    let mut served = Vec::new();
    for (&m, found) in again.iter().zip(found) {
        let Found::Bytes(bytes) = found else { continue };
        let miss = &mut misses[m].0;
        let group = &mut groups[miss.group];
        let count = || spec.count(CallOutcome::Hit);
        let Ok((r, _)) = entry::decode::<S, R>(&bytes, inner.config.max_value_bytes) else {
            continue;
        };
        if !serve_from::<S, R, A>(&bytes, &group.items, out, count) {
            continue;
        }
        out[miss.pos] = Some(r);
        count();
        if let Some(lead) = miss.lead.take() {
            lead.finish(Outcome::Shared(Arc::from(bytes)));
        }
        group.items.clear();
        served.push(m);
    }
    for m in served.into_iter().rev() {
        misses.remove(m);
    }
}

/// After the bodies: guarded encode and admission of each result, one write pipeline (one per
/// slot on a cluster; entries with tags one by one), repairs, counters, the flights finished,
/// and the duplicates served. Returns the items left for single calls (group, position, args).
async fn settle<S, R, A>(
    spec: &'static Spec,
    inner: &'static Arc<Inner>,
    groups: &mut [Group<A>],
    ran: Vec<(Miss, R, Duration)>,
    out: &mut [Option<R>],
    budget: &mut Budget,
) -> Vec<(usize, usize, A)>
where
    S: Shape<R>,
{
    let encoded: Vec<Option<Encoded>> = ran
        .iter()
        .map(|(_, r, took)| entry::encode::<S, R, Spec>(spec, inner, r, *took))
        .collect();
    // `Some(true)`: written; `Some(false)`: Redis failed the write; `None`: not written.
    let mut written: Vec<Option<bool>> = (0..ran.len()).map(|_| None).collect();
    let mut piped: Vec<(usize, Option<Duration>)> = Vec::new();
    for (m, ((miss, _, _), enc)) in ran.iter().zip(&encoded).enumerate() {
        let Some(enc) = enc.as_ref().filter(|_| miss.failure.is_none()) else {
            continue;
        };
        let Some(write::Admitted(ttl)) = write::admit(spec, inner, enc, budget) else {
            continue;
        };
        let key = &groups[miss.group].key;
        if key.tags.is_empty() {
            piped.push((m, ttl));
        } else {
            let target = Target {
                inner,
                key: &key.key,
                tags: &key.tags,
            };
            written[m] = Some(spec.write(target, &enc.bytes, ttl, budget).await.is_ok());
        }
    }
    if !piped.is_empty() {
        let entries: Vec<(&str, &[u8], Option<Duration>)> = piped
            .iter()
            .filter_map(|&(m, ttl)| {
                let enc = encoded[m].as_ref()?;
                Some((groups[ran[m].0.group].key.key.deref(), &enc.bytes[..], ttl))
            })
            .collect();
        let results = write_all(inner, &entries, budget).await;
        for (&(m, _), result) in piped.iter().zip(results) {
            written[m] = Some(result);
        }
    }

    let mut singles = Vec::new();
    for ((mut miss, r, _), (enc, written)) in ran.into_iter().zip(encoded.into_iter().zip(written))
    {
        let outcome = match (miss.failure, &written) {
            (Some(failure), _) => failure,
            (None, Some(false)) => CallOutcome::Error,
            (None, _) => CallOutcome::Miss,
        };
        spec.count(outcome);
        let group = &mut groups[miss.group];
        let target = Target {
            inner,
            key: &group.key.key,
            tags: &group.key.tags,
        };
        if let (Some(seen), false) = (&miss.corrupt, written == Some(true)) {
            // Nothing overwrote the bad entry: remove it unless someone replaced it meanwhile.
            write::repair(target, seen, budget).await;
        }
        let shared: Option<Vec<u8>> = match enc {
            Some(enc) => Some(enc.bytes),
            None => entry::shared_none::<S, R, Spec>(spec, inner, &r),
        };
        if let Some(lead) = miss.lead.take() {
            lead.finish(match &shared {
                Some(bytes) => Outcome::Shared(Arc::from(&bytes[..])),
                None => Outcome::NotShared,
            });
        }
        // Duplicates in the batch share the result as followers of a flight do.
        let served = shared.as_ref().is_some_and(|bytes| {
            serve_from::<S, R, A>(bytes, &group.items, out, || {
                spec.count(CallOutcome::Hit);
                spec.count_coalesced();
            })
        });
        if !served {
            singles.extend(group.items.drain(..).map(|(i, a)| (miss.group, i, a)));
        }
        out[miss.pos] = Some(r);
    }
    singles
}

/// Serves every item of `items` from `bytes` (each decodes its own copy), calling `count` for
/// each; `false`, serving nothing, when the bytes do not decode.
fn serve_from<S: Shape<R>, R, A>(
    bytes: &[u8],
    items: &[(usize, A)],
    out: &mut [Option<R>],
    count: impl Fn(),
) -> bool {
    let mut values = Vec::with_capacity(items.len());
    for _ in items {
        match entry::decode::<S, R>(bytes, usize::MAX) {
            Ok((r, _)) => values.push(r),
            Err(_) => return false,
        }
    }
    for ((i, _), r) in items.iter().zip(values) {
        out[*i] = Some(r);
        count();
    }
    true
}

/// Whether an entry is past its TTL (served in the `stale` window by single calls, with a
/// background refresh): a batch recomputes it instead.
fn expired(spec: &Spec, inner: &Inner, meta: Meta) -> bool {
    if spec.stale_ms().is_none() {
        return false;
    }
    let Some(ttl) = spec.base_ttl(inner, meta.is_none) else {
        return false;
    };
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    now_ms() >= meta.written_at_ms.saturating_add(ttl_ms)
}

/// One read of `keys` within the budget: one `MGET`, or on a cluster one per slot, concurrently.
async fn read_all(spec: &Spec, inner: &Inner, keys: &[&str], budget: &mut Budget) -> Vec<Found> {
    let started = Instant::now();
    let found = match budget.left() {
        None => failed_all(keys.len(), &Error::Timeout(inner.store.op_timeout())),
        Some(limit) => {
            let groups = by_slot(inner, keys.iter().copied());
            let master = budget.reads_master();
            let reads = groups.iter().map(|idx| {
                let ks: Vec<&str> = idx.iter().map(|&i| keys[i]).collect();
                async move {
                    match master {
                        true => inner.store.mget_master(&ks, limit).await,
                        false => inner.store.mget(&ks, limit).await,
                    }
                }
            });
            let replies = futures_util::future::join_all(reads).await;
            let mut found: Vec<Found> = (0..keys.len()).map(|_| Found::Missing).collect();
            for (idx, reply) in groups.iter().zip(replies) {
                match reply {
                    Ok(values) if values.len() == idx.len() => {
                        for (&i, v) in idx.iter().zip(values) {
                            found[i] = v.map_or(Found::Missing, Found::Bytes);
                        }
                    }
                    Ok(_) => {
                        let e = Error::Timeout(limit);
                        for &i in idx {
                            found[i] = failed(&e);
                        }
                    }
                    Err(e) => {
                        for &i in idx {
                            found[i] = failed(&e);
                        }
                    }
                }
            }
            found
        }
    };
    let took = started.elapsed();
    budget.spent(took);
    spec.observe_redis(took);
    found
}

fn failed(e: &Error) -> Found {
    Found::Failed(match e {
        Error::BreakerOpen => CallOutcome::Bypass,
        _ => CallOutcome::Error,
    })
}

fn failed_all(n: usize, e: &Error) -> Vec<Found> {
    (0..n).map(|_| failed(e)).collect()
}

/// The positions of `keys` grouped by cluster slot (one group on a single node).
fn by_slot<'k>(inner: &Inner, keys: impl Iterator<Item = &'k str>) -> Vec<Vec<usize>> {
    let keys: Vec<&str> = keys.collect();
    if !inner.store.is_cluster() {
        return vec![(0..keys.len()).collect()];
    }
    let mut slots: HashMap<u16, usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let slot = crate::slot::slot_of(k.as_bytes());
        let g = *slots.entry(slot).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(i);
    }
    groups
}

/// One write pipeline of `entries` within the budget (on a cluster one per slot, concurrently):
/// whether each entry was written (`false`: Redis failed or refused it; the store logged why).
async fn write_all(
    inner: &Inner,
    entries: &[(&str, &[u8], Option<Duration>)],
    budget: &mut Budget,
) -> Vec<bool> {
    let Some(limit) = budget.left() else {
        return vec![false; entries.len()];
    };
    let started = Instant::now();
    let groups = by_slot(inner, entries.iter().map(|e| e.0));
    let writes = groups.iter().map(|idx| {
        let part: Vec<(&str, &[u8], Option<Duration>)> = idx.iter().map(|&i| entries[i]).collect();
        async move { inner.store.set_many(&part, limit).await }
    });
    let replies = futures_util::future::join_all(writes).await;
    budget.spend(started);
    let mut results = vec![true; entries.len()];
    for (idx, reply) in groups.iter().zip(replies) {
        if reply.is_err() {
            for &i in idx {
                results[i] = false;
            }
        }
    }
    results
}
