//! The read side of the pipeline: one read under the call's budget (`GET`, `GETEX` for sliding
//! expiry, `GET` + `PTTL` for a near cache), classified; a hit decoded, judged fresh, stale or
//! due for an early refresh, and kept in the near cache.

use std::time::{Duration, Instant};

use crate::cache::Inner;
use crate::clock::now_ms;
use crate::error::Error;
use crate::observe::CallOutcome;
use crate::shape::Shape;
use crate::store::Budget;

use super::entry::{decode_kept, Meta};
use super::{Refresher, Rules, Target};

/// What one read of Redis found, before decoding.
pub(crate) enum Fetched {
    /// Bytes under the key, and its `PTTL` when it was asked for (else -2).
    Found(Vec<u8>, i64),
    /// Redis answered that there is no entry.
    Missing,
    /// Another Redis type under the key (a list, a hash...): a miss whose entry is repaired.
    WrongType,
    /// Redis could not answer (error, timeout, open breaker, budget spent).
    Failed(Error),
}

/// One read of `target` within what is left of `budget` (charged), the time it took, and
/// whether it was a concurrent caller's read: `GETEX` when `extend` is given (sliding expiry),
/// `GET` + `PTTL` when `with_pttl`, else `GET` — the only one coalesced: concurrent plain reads
/// of one key share one `GET` in flight (`store/coalesce.rs`). The others stay one per caller:
/// a `GETEX` extends the TTL as of its own call, and a `GET` + `PTTL` fills the near cache
/// under its caller's ticket, taken before its own read was sent.
pub(crate) async fn fetch(
    target: Target<'_>,
    extend: Option<Duration>,
    with_pttl: bool,
    budget: &mut Budget,
) -> (Fetched, Duration, bool) {
    let inner = target.inner;
    let started = Instant::now();
    // Charged by hand rather than through `Budget::run`: the hit path reads the clock once.
    let Some(limit) = budget.left() else {
        let timeout = Error::Timeout(inner.store.op_timeout());
        return (Fetched::Failed(timeout), started.elapsed(), false);
    };
    let mut joined = false;
    let read = match (with_pttl, extend) {
        (true, _) => inner.store.get_pttl(target.key, limit).await,
        (false, Some(ttl)) => inner
            .store
            .get_ex(target.key, ttl, limit)
            .await
            .map(|b| (b, -2)),
        (false, None) if budget.reads_master() => inner
            .store
            .get_master(target.key, limit)
            .await
            .map(|b| (b, -2)),
        (false, None) => {
            let (read, followed) = inner.store.get_coalesced(target.key, limit).await;
            joined = followed;
            read.map(|b| (b, -2))
        }
    };
    let took = started.elapsed();
    budget.spent(took);
    let fetched = match read {
        Ok((Some(bytes), pttl)) => Fetched::Found(bytes, pttl),
        Ok((None, _)) => Fetched::Missing,
        Err(Error::WrongType) => Fetched::WrongType,
        Err(e) => Fetched::Failed(e),
    };
    (fetched, took, joined)
}

/// What a read found.
pub(crate) enum Read<R> {
    /// A decodable entry (counted): the value and the entry's bytes, for followers.
    Hit(R, Vec<u8>),
    /// Nothing usable: what the compute phase needs to know.
    Miss(Missed),
}

/// A read that found nothing usable.
pub(crate) struct Missed {
    /// The bytes of an undecodable entry (empty for a foreign type), to repair after the body.
    pub(crate) corrupt: Option<Vec<u8>>,
    /// Redis answered that there is no entry.
    pub(crate) missing: bool,
    /// The read failed: the call's outcome (not counted yet, so that a caller that then
    /// receives a leader's value counts a hit instead), and nothing is written.
    pub(crate) failure: Option<CallOutcome>,
}

/// The read of a call: a hit is decoded, counted, refreshed in the background when stale or
/// early, and kept in the near cache when the rules ask for one.
pub(crate) async fn read_entry<S, R, Ru>(
    rules: &Ru,
    target: Target<'_>,
    refresh: Option<Refresher<'_>>,
    budget: &mut Budget,
) -> Read<R>
where
    S: Shape<R>,
    Ru: Rules + ?Sized,
{
    let inner = target.inner;
    // A near cache reads the remaining TTL along with the value (one round trip), so a local
    // copy never outlives the Redis entry.
    let ticket = match rules.local_ms() {
        Some(_) => inner.near().and_then(|n| n.ticket(target.key)),
        None => None,
    };
    let extend = match rules.sliding() {
        true => rules.store_ttl(inner, false),
        false => None,
    };
    let (fetched, took, joined) = fetch(target, extend, ticket.is_some(), budget).await;
    rules.observe_redis(took);
    let mut corrupt = None;
    let mut missing = false;
    let mut failure = None;
    match fetched {
        Fetched::Found(bytes, pttl) => {
            match decode_kept::<S, R>(&bytes, inner.config.max_value_bytes, ticket.is_some()) {
                Ok((r, meta, held)) => {
                    let fresh = freshness(rules, inner, meta);
                    if let (Some(ticket), Some(held), Freshness::Fresh) = (ticket, held, &fresh)
                        && let (Some(near), Some(life)) =
                            (inner.near(), local_life(rules, inner, meta, pttl))
                    {
                        // Weighed as the entry decompressed: a compressed entry decodes to
                        // more than it stores.
                        near.fill(ticket, target.key, held, meta.len.max(bytes.len()), life);
                    }
                    let counter = match (refresh, fresh) {
                        (Some(refresh), Freshness::Stale) => {
                            refresh();
                            CallOutcome::Stale
                        }
                        (Some(refresh), Freshness::Early) => {
                            refresh();
                            CallOutcome::Hit
                        }
                        _ => CallOutcome::Hit,
                    };
                    if joined && matches!(counter, CallOutcome::Hit) {
                        rules.count_coalesced();
                    }
                    rules.count(counter);
                    return Read::Hit(r, bytes);
                }
                Err(why) => {
                    tracing::debug!(function = rules.label(), reason = %why, "undecodable cache entry; recomputing");
                    corrupt = Some(bytes);
                }
            }
        }
        Fetched::Missing => missing = true,
        Fetched::WrongType => corrupt = Some(Vec::new()),
        Fetched::Failed(Error::BreakerOpen) => failure = Some(CallOutcome::Bypass),
        Fetched::Failed(_) => failure = Some(CallOutcome::Error),
    }
    Read::Miss(Missed {
        corrupt,
        missing,
        failure,
    })
}

/// Whether a hit should be served stale or refreshed early, per the entry's metadata.
enum Freshness {
    Fresh,
    /// Past its TTL but inside the `stale` window: serve and refresh in the background.
    Stale,
    /// XFetch decided to recompute early: serve (a hit) and refresh in the background.
    Early,
}

fn freshness<Ru: Rules + ?Sized>(rules: &Ru, inner: &Inner, meta: Meta) -> Freshness {
    let (stale_ms, beta) = (rules.stale_ms(), rules.beta());
    if stale_ms.is_none() && beta.is_none() {
        return Freshness::Fresh;
    }
    let Some(ttl) = rules.base_ttl(inner, meta.is_none) else {
        return Freshness::Fresh;
    };
    let now = now_ms();
    let expiry = meta
        .written_at_ms
        .saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
    if stale_ms.is_some() && now >= expiry {
        return Freshness::Stale;
    }
    if let Some(beta) = beta {
        // XFetch (Vattani, Chierichetti, Lowenstein, VLDB 2015): recompute when
        // now − Δ·β·ln(rand()) ≥ expiry, Δ the time the last computation took.
        let delta = f64::from(meta.compute_ms.max(1));
        let rand = fastrand::f64().max(f64::MIN_POSITIVE);
        let early = -delta * beta * rand.ln();
        if now as f64 + early >= expiry as f64 {
            return Freshness::Early;
        }
    }
    Freshness::Fresh
}

/// How long a value just read from Redis may be served locally: the `local` cap (`local =
/// true`: the TTL), the key's remaining `PTTL` and what is left of its fresh TTL, whichever is
/// shortest; `None` when the key is already gone.
fn local_life<Ru: Rules + ?Sized>(
    rules: &Ru,
    inner: &Inner,
    meta: Meta,
    pttl_ms: i64,
) -> Option<Duration> {
    /// Bound for entries that nothing else bounds (no TTL anywhere): invalidations still apply.
    const UNBOUNDED: Duration = Duration::from_secs(24 * 3600);
    let ttl = rules.base_ttl(inner, meta.is_none);
    let mut life = match rules.local_ms()? {
        0 => ttl.unwrap_or(UNBOUNDED),
        ms => Duration::from_millis(ms),
    };
    match pttl_ms {
        -1 => {}
        ms if ms >= 0 => life = life.min(Duration::from_millis(ms.unsigned_abs())),
        _ => return None,
    }
    if let Some(ttl) = ttl {
        let expiry = meta
            .written_at_ms
            .saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        life = life.min(Duration::from_millis(expiry.saturating_sub(now_ms())));
    }
    Some(life)
}
