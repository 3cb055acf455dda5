//! The entry pipeline: the one path every cached read-or-compute takes, whoever the caller.
//!
//! key → near cache → read under the call's Redis budget → envelope decode (with its guards) →
//! single-flight → cross-process lock → compute → encode (the guards of `guard.rs`) → size
//! check → write → repair → counters.
//!
//! Three callers go through it, each with its [`Rules`]:
//! * cached functions (`#[redis_cache]`): [`memo`], [`memo_bg`] and the companions, with the
//!   function's `Spec`;
//! * the typed handle's `get_or_set_with` (`handle/fill.rs`), every option off;
//! * the HTTP layer (`axum/`), which uses the read ([`read::fetch`]), decode, encode and write
//!   steps around its own handler call.
//!
//! | file | concept |
//! |---|---|
//! | `mod.rs` | [`run`]: the call algorithm and its single-flight loop |
//! | `rules.rs` | what varies between callers; base-TTL resolution |
//! | `entry.rs` | entries as bytes: decode and guarded encode |
//! | `read.rs` | the read, freshness (stale, early refresh), near-cache fill |
//! | `write.rs` | size check, write with tag bookkeeping, repair |
//! | `lock.rs` | the cross-process lock |
//! | `refresh.rs` | background refreshes, at most one per key |
//! | `functions.rs` | the entry points of cached functions |
//! | `companions.rs` | the companions (`peek`, `evict`, `key`, `refresh`) |
//! | `batch.rs` | batch calls (`f_many`): one read and one write pipeline for many keys |

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use crate::cache::Inner;
use crate::flight::{self, Lead, Outcome, Role, Wait};
use crate::observe::CallOutcome;
use crate::shape::Shape;
use crate::store::Budget;

pub(crate) mod batch;
pub(crate) mod companions;
pub(crate) mod entry;
pub(crate) mod functions;
pub(crate) mod lock;
pub(crate) mod read;
pub(crate) mod refresh;
pub(crate) mod rules;
pub(crate) mod write;

pub use batch::memo_many;
pub use companions::{evict, key_string, peek, refresh};
pub use functions::{memo, memo_bg};
pub(crate) use rules::Rules;

use lock::{cross_process, LockGuard, Locked};
use read::{read_entry, Missed, Read};

/// Where an entry lives: the cache, its Redis key and the tags it is recorded under.
#[derive(Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) inner: &'a Arc<Inner>,
    pub(crate) key: &'a str,
    pub(crate) tags: &'a [String],
}

/// Starts a background refresh of the call's key (at most one per key per process).
pub(crate) type Refresher<'a> = &'a (dyn Fn() + Sync);

/// The pipeline: hit → the decoded value; miss → `make()`'s result, stored; Redis trouble →
/// `make()`'s result, not stored. `make` runs at most once, and only when no value is found.
///
/// Concurrent calls with the same key share one body run (single-flight) unless the rules opt
/// out: hits need no coordination, so every caller reads first and joins the flight table only
/// on a miss. A flight that ended between our read and our join (its value is in Redis now) has
/// bumped the stamp, so a caller that then leads reads again instead of running the body a
/// second time.
pub(crate) async fn run<S, R, Ru, M, F>(
    rules: &Ru,
    target: Target<'_>,
    make: M,
    refresh: Option<Refresher<'_>>,
) -> R
where
    S: Shape<R>,
    Ru: Rules + ?Sized,
    M: FnOnce() -> F,
    F: Future<Output = R>,
{
    let inner = target.inner;
    if rules.local_ms().is_some()
        && let Some(near) = inner.near()
        && let Some(held) = near.get(target.key)
    {
        // Kept decoded: a downcast and a clone. Another value type under this key
        // (or a cached `None` this shape cannot return) is a miss, never a wrong value.
        if let Some(r) = S::from_held(&held) {
            rules.count(CallOutcome::Hit);
            rules.count_local_hit();
            return r;
        }
        near.invalidate(target.key.as_bytes());
    }
    if inner.store.breaker.bypassing() || !crate::runtime::usable() {
        rules.count(CallOutcome::Bypass);
        return make().await;
    }
    // One Redis time budget for the whole call: every Redis operation it waits for (read,
    // re-read, lock, write, tags, repair) is charged to it.
    let mut budget = Budget::new(inner.store.op_timeout());
    if !rules.single_flight() {
        return match crate::outline::Outlined::new(read_entry::<S, R, Ru>(
            rules,
            target,
            refresh,
            &mut budget,
        ))
        .await
        {
            Read::Hit(r, _) => r,
            Read::Miss(missed) => {
                crate::outline::Outlined::new(compute::<S, R, Ru, M, F>(
                    rules,
                    target,
                    make,
                    None,
                    missed,
                    &mut budget,
                ))
                .await
            }
        };
    }
    let stamp = inner.flights.stamp(target.key);
    let mut missed = match crate::outline::Outlined::new(read_entry::<S, R, Ru>(
        rules,
        target,
        refresh,
        &mut budget,
    ))
    .await
    {
        Read::Hit(r, _) => return r,
        Read::Miss(m) => m,
    };
    loop {
        match inner.flights.join(target.key) {
            Role::Leader(flight) => {
                if inner.flights.ended_since(stamp) {
                    // The flight that ended has just written the value, on the master.
                    budget.read_master();
                    match crate::outline::Outlined::new(read_entry::<S, R, Ru>(
                        rules,
                        target,
                        refresh,
                        &mut budget,
                    ))
                    .await
                    {
                        Read::Hit(r, bytes) => {
                            flight.finish_with(|| Outcome::Shared(Arc::from(bytes)));
                            return r;
                        }
                        Read::Miss(m) => missed = m,
                    }
                }
                return crate::outline::Outlined::new(compute::<S, R, Ru, M, F>(
                    rules,
                    target,
                    make,
                    Some(flight),
                    missed,
                    &mut budget,
                ))
                .await;
            }
            Role::Follower(slot) => match flight::wait(slot).await {
                Wait::Shared(bytes) => {
                    if let Ok((r, _)) = entry::decode::<S, R>(&bytes, usize::MAX) {
                        rules.count(CallOutcome::Hit);
                        rules.count_coalesced();
                        return r;
                    }
                    rules.count(CallOutcome::Miss);
                    return make().await;
                }
                Wait::NotShared => {
                    // The leader's body returned an `Err` (E has no Clone or serde bound) or
                    // panicked: every follower is released at once and runs its own body now,
                    // concurrently, and stores an `Ok` it computes. No re-read (the leader
                    // stored nothing) and no cross-process lock: the released followers would
                    // queue on it one by one.
                    missed.missing = false;
                    return crate::outline::Outlined::new(compute::<S, R, Ru, M, F>(
                        rules,
                        target,
                        make,
                        None,
                        missed,
                        &mut budget,
                    ))
                    .await;
                }
                // The leader was cancelled: race to lead (one run still serves everyone).
                Wait::Abandoned => continue,
            },
        }
    }
}

/// After a miss: the cross-process lock if any, the body, the write, the repair of a corrupt
/// entry, and the result published to followers.
async fn compute<S, R, Ru, M, F>(
    rules: &Ru,
    target: Target<'_>,
    make: M,
    flight: Option<Lead<'_>>,
    missed: Missed,
    budget: &mut Budget,
) -> R
where
    S: Shape<R>,
    Ru: Rules + ?Sized,
    M: FnOnce() -> F,
    F: Future<Output = R>,
{
    let inner = target.inner;
    let Missed {
        corrupt,
        missing,
        failure,
    } = missed;
    // Cross-process stampede lock: another process may be computing this key already.
    let mut lock: Option<LockGuard> = None;
    if let (true, Some(lease)) = (missing, rules.lock_lease()) {
        match cross_process::<S, R, Ru>(rules, target, lease, budget).await {
            Locked::Acquired(guard) => lock = Some(guard),
            Locked::Value(r, bytes) => {
                rules.count(CallOutcome::Hit);
                if let Some(flight) = flight {
                    flight.finish_with(|| Outcome::Shared(Arc::from(bytes)));
                }
                return r;
            }
            Locked::GaveUp(maybe_ours) => lock = maybe_ours,
        }
    }
    if let Some(failure) = failure {
        rules.count(failure);
    }
    let started = Instant::now();
    let r = match flight::catching(make()).await {
        Ok(r) => r,
        Err(panic) => {
            // Release the followers (they run their own bodies at once) and the lock (waiters
            // in other processes take over now, not after the lease; awaited, because this
            // process may be about to exit), then let the panic go on to our caller.
            if let Some(flight) = flight {
                flight.finish(Outcome::NotShared);
            }
            if let Some(lock) = lock {
                lock.release(budget).await;
            }
            std::panic::resume_unwind(panic);
        }
    };
    rules.observe_body(started.elapsed());
    let encoded = entry::encode::<S, R, Ru>(rules, inner, &r, started.elapsed());
    let mut written = false;
    if failure.is_none() {
        // A miss; or an error when Redis refused or failed the write (e.g. OOM).
        let mut outcome = CallOutcome::Miss;
        if let Some(encoded) = &encoded {
            match write::store(rules, target, encoded, budget).await {
                Ok(w) => written = w,
                Err(_) => outcome = CallOutcome::Error,
            }
        }
        rules.count(outcome);
    }
    if let (false, Some(seen)) = (written, corrupt) {
        // Nothing overwrote the bad entry: remove it unless someone replaced it meanwhile.
        write::repair(target, &seen, budget).await;
    }
    if let Some(lock) = lock {
        lock.release(budget).await;
    }
    if let Some(flight) = flight {
        // Followers get the result even when Redis is failing: one body run per key.
        flight.finish_with(|| match encoded {
            Some(encoded) => Outcome::Shared(Arc::from(encoded.bytes)),
            None => match entry::shared_none::<S, R, Ru>(rules, inner, &r) {
                Some(bytes) => Outcome::Shared(Arc::from(bytes)),
                None => Outcome::NotShared,
            },
        });
    }
    r
}
