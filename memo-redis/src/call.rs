//! The call algorithm — hit / miss / stale / early refresh / bypass — and the companions.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cache::Inner;
use crate::envelope::{self, Envelope};
use crate::error::Error;
use crate::flight::{self, Lead, Outcome, Role, Wait};
use crate::observe::{self, CallOutcome};
use crate::shape::Shape;
use crate::spec::key::Key;
use crate::spec::{Spec, Ttl};
use crate::store::Budget;
use tracing::Instrument;

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// What the envelope says about an entry, for freshness decisions.
#[derive(Clone, Copy)]
pub(crate) struct Meta {
    written_at_ms: u64,
    compute_ms: u32,
    is_none: bool,
}

pub(crate) fn decode<S: Shape<R>, R>(bytes: &[u8], max_len: usize) -> Result<(R, Meta), String> {
    let env = Envelope::parse(bytes, max_len).map_err(|e| e.to_string())?;
    if !env.shape_matches(crate::schema::tag_of::<S::Value>()) {
        return Err("entry written for a value type of another shape".into());
    }
    let value = if env.is_none() {
        None
    } else {
        let payload = env.decompressed(max_len).map_err(|e| e.to_string())?;
        Some(env.codec.decode::<S::Value>(&payload)?)
    };
    let r = S::from_cached(value)
        .ok_or_else(|| "cached None under a function that cannot return None".to_string())?;
    Ok((
        r,
        Meta {
            written_at_ms: env.written_at_ms,
            compute_ms: env.compute_ms,
            is_none: env.is_none(),
        },
    ))
}

/// An encoded entry and whether it is a cached `None`.
struct Entry {
    bytes: Vec<u8>,
    is_none: bool,
}

/// The entry `r` would be stored as; `None` when nothing is cached for it.
fn encode_entry<S: Shape<R>, R>(
    spec: &'static Spec,
    inner: &Inner,
    r: &R,
    compute: Duration,
) -> Option<Entry> {
    let stored = S::stored(r, spec.cache_none)?;
    let compute_ms = u32::try_from(compute.as_millis()).unwrap_or(u32::MAX);
    let codec = spec.codec_for(inner);
    let shape = crate::schema::tag_of::<S::Value>();
    match crate::guard::encode::<S::Value, S::Value>(
        codec,
        stored,
        shape,
        now_ms(),
        compute_ms,
        spec.compress_for(inner),
        inner.config.max_value_bytes,
    ) {
        Ok(bytes) => Some(Entry {
            bytes,
            is_none: stored.is_none(),
        }),
        Err(refused) => {
            spec.count_refused(codec, &refused);
            None
        }
    }
}

fn resolve(ttl: Ttl, inner: &Inner) -> Option<Duration> {
    match ttl {
        Ttl::Default => inner.config.default_ttl,
        Ttl::Never => None,
        Ttl::Millis(ms) => Some(Duration::from_millis(ms)),
    }
}

/// The PX an entry is written with: its TTL (the `none_ttl` for a cached `None`), spread by
/// `jitter`, plus the `stale` window during which it may still be served.
fn store_ttl(spec: &Spec, inner: &Inner, is_none: bool) -> Option<Duration> {
    let base = match (is_none, spec.none_ttl) {
        (true, Some(t)) => resolve(t, inner),
        _ => resolve(spec.ttl, inner),
    }?;
    let jittered = if spec.jitter > 0.0 {
        // Uniform in [1 - j, 1 + j].
        let factor = 1.0 + spec.jitter * (fastrand::f64() * 2.0 - 1.0);
        base.mul_f64(factor.max(0.001))
    } else {
        base
    };
    Some(jittered + Duration::from_millis(spec.stale_ms.unwrap_or(0)))
}

/// Stores an encoded entry within what is left of the call's Redis budget.
///
/// `Ok(false)`: deliberately not stored (too large, budget spent); `Err`: Redis refused or failed.
async fn store_entry(
    spec: &'static Spec,
    key: &Key,
    entry: &Entry,
    budget: &mut Budget,
) -> Result<bool, Error> {
    let inner = key.inner;
    if entry.bytes.len().saturating_sub(envelope::HEADER_LEN) > inner.config.max_value_bytes {
        spec.count_too_large(entry.bytes.len());
        tracing::debug!(
            function = spec.name,
            size = entry.bytes.len(),
            "result too large to cache"
        );
        return Ok(false);
    }
    let ttl = store_ttl(spec, inner, entry.is_none);
    if ttl.is_none() {
        inner.check_eviction_policy();
    }
    let Some(limit) = budget.left() else {
        tracing::debug!(
            function = spec.name,
            "redis time budget spent on the read; not storing"
        );
        return Ok(false);
    };
    let started = Instant::now();
    let stored = inner.store.set(&key.key, &entry.bytes, ttl, limit).await;
    budget.spend(started);
    stored?;
    if !key.tags.is_empty() {
        // After the write, with an expiry taken after it (so never earlier than the entry's),
        // within what is left of the same budget.
        let now = now_ms();
        let expiry =
            ttl.map(|t| now.saturating_add(u64::try_from(t.as_millis()).unwrap_or(u64::MAX)));
        if let Err(e) = crate::tags::record(inner, &key.tags, &key.key, expiry, now, budget).await {
            // An entry missing from its tag sets would survive `invalidate_tags`: take it back
            // (in the background, not charged to this call). Redis refused the bookkeeping (an
            // ACL without scripting) or failed; the store logged why.
            tracing::debug!(function = spec.name, error = %e, "could not record tags; entry removed");
            let stored_key = key.key.clone();
            inner.spawn(async move {
                let _ = inner.store.del(&stored_key).await;
            });
            return Err(e);
        }
    }
    Ok(true)
}

/// Starts a background refresh of `key` (at most one per key per process).
type Refresher<'a> = &'a (dyn Fn(&Key) + Sync);

/// The memoized call: hit → decoded value; miss → body, then store; Redis trouble → body.
///
/// Concurrent calls with the same key share one read and one body run (single-flight) unless
/// the function opted out with `single_flight = false`.
pub async fn memo<S, R, F>(spec: &'static Spec, key: Result<Key, Error>, body: F) -> R
where
    S: Shape<R>,
    F: Future<Output = R>,
{
    run::<S, R, F>(spec, key, body, None)
        .instrument(spec.call_span())
        .await
}

/// [`memo`] for functions with `stale` or `early_refresh`: `make` builds the body future, once
/// for this call and again for each background refresh, so it must own clones of the arguments.
pub async fn memo_bg<S, R, M, F>(spec: &'static Spec, key: Result<Key, Error>, make: M) -> R
where
    S: Shape<R> + 'static,
    R: Send + 'static,
    M: Fn() -> F + Clone + Send + Sync + 'static,
    F: Future<Output = R> + Send + 'static,
{
    let refresher = |key: &Key| spawn_refresh::<S, R, M, F>(spec, key, make.clone());
    run::<S, R, F>(spec, key, make(), Some(&refresher))
        .instrument(spec.call_span())
        .await
}

async fn run<S, R, F>(
    spec: &'static Spec,
    key: Result<Key, Error>,
    body: F,
    bg: Option<Refresher<'_>>,
) -> R
where
    S: Shape<R>,
    F: Future<Output = R>,
{
    spec.register();
    let stats = &spec.stats;
    let key = match key {
        Ok(k) => k,
        Err(e) => {
            spec.count(CallOutcome::Bypass);
            if !matches!(e, Error::Config(_)) {
                spec.log_key_error(&e);
            }
            return body.await;
        }
    };
    let inner = key.inner;
    observe::record_key(&tracing::Span::current(), &key.key);
    if spec.local_ms.is_some() {
        if let Some(near) = inner.near() {
            if let Some(bytes) = near.get(&key.key) {
                if let Ok((r, _)) = decode::<S, R>(&bytes, usize::MAX) {
                    spec.count(CallOutcome::Hit);
                    stats.mine().local_hits.fetch_add(1, Ordering::Relaxed);
                    return r;
                }
                near.invalidate(key.key.as_bytes());
            }
        }
    }
    if inner.store.breaker.bypassing() || !crate::runtime::usable() {
        spec.count(CallOutcome::Bypass);
        return body.await;
    }
    // One Redis time budget for the whole call: every Redis operation it waits for (read,
    // re-read, lock, write, tags, repair) is charged to it.
    let mut budget = Budget::new(inner.store.op_timeout());
    if !spec.single_flight {
        return lead::<S, R, F>(spec, &key, body, None, bg, &mut budget).await;
    }
    // Hits need no coordination: read first, and join the flight table only on a miss. A flight
    // that ended between our read and our join (its value is in Redis now) has bumped the stamp,
    // so a caller that then leads reads again instead of running the body a second time.
    let stamp = inner.flights.stamp(&key.key);
    let mut missed = match read_entry::<S, R>(spec, &key, bg, &mut budget).await {
        Read::Hit(r, _) => return r,
        Read::Miss(m) => m,
    };
    loop {
        match inner.flights.join(&key.key) {
            Role::Leader(flight) => {
                if inner.flights.ended_since(stamp) {
                    match read_entry::<S, R>(spec, &key, bg, &mut budget).await {
                        Read::Hit(r, bytes) => {
                            flight.finish_with(|| Outcome::Shared(Arc::from(bytes)));
                            return r;
                        }
                        Read::Miss(m) => missed = m,
                    }
                }
                return compute::<S, R, F>(spec, &key, body, Some(flight), missed, &mut budget)
                    .await;
            }
            Role::Follower(slot) => match flight::wait(slot).await {
                Wait::Shared(bytes) => {
                    if let Ok((r, _)) = decode::<S, R>(&bytes, usize::MAX) {
                        spec.count(CallOutcome::Hit);
                        stats.mine().coalesced.fetch_add(1, Ordering::Relaxed);
                        return r;
                    }
                    spec.count(CallOutcome::Miss);
                    return body.await;
                }
                Wait::NotShared => {
                    // The leader's body returned an `Err` (E has no Clone or serde bound) or
                    // panicked: every follower is released at once and runs its own body now,
                    // concurrently, and stores an `Ok` it computes. No re-read (the leader
                    // stored nothing) and no cross-process lock: the released followers would
                    // queue on it one by one.
                    missed.missing = false;
                    return compute::<S, R, F>(spec, &key, body, None, missed, &mut budget).await;
                }
                // The leader was cancelled: race to lead (one run still serves everyone).
                Wait::Abandoned => continue,
            },
        }
    }
}

/// The read: `GETEX` when the function has sliding expiry, `GET` otherwise.
async fn read(spec: &Spec, key: &Key, limit: Duration) -> Result<Option<Vec<u8>>, Error> {
    let inner = key.inner;
    if spec.sliding {
        if let Some(ttl) = store_ttl(spec, inner, false) {
            return inner.store.get_ex(&key.key, ttl, limit).await;
        }
    }
    inner.store.get(&key.key, limit).await
}

/// Whether a hit should be served stale or refreshed early, per the entry's metadata.
enum Freshness {
    Fresh,
    /// Past its TTL but inside the `stale` window: serve and refresh in the background.
    Stale,
    /// XFetch decided to recompute early: serve (a hit) and refresh in the background.
    Early,
}

fn freshness(spec: &Spec, inner: &Inner, meta: Meta) -> Freshness {
    if spec.stale_ms.is_none() && spec.beta.is_none() {
        return Freshness::Fresh;
    }
    let ttl = match (meta.is_none, spec.none_ttl) {
        (true, Some(t)) => resolve(t, inner),
        _ => resolve(spec.ttl, inner),
    };
    let Some(ttl) = ttl else {
        return Freshness::Fresh;
    };
    let now = now_ms();
    let expiry = meta
        .written_at_ms
        .saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
    if spec.stale_ms.is_some() && now >= expiry {
        return Freshness::Stale;
    }
    if let Some(beta) = spec.beta {
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

/// How long a value just read from Redis may be served locally: the function's `local` cap
/// (`local = true`: its TTL), the key's remaining `PTTL` and what is left of its fresh TTL,
/// whichever is shortest; `None` when the key is already gone.
fn local_life(spec: &Spec, inner: &Inner, meta: Meta, pttl_ms: i64) -> Option<Duration> {
    /// Bound for entries that nothing else bounds (no TTL anywhere): invalidations still apply.
    const UNBOUNDED: Duration = Duration::from_secs(24 * 3600);
    let ttl = match (meta.is_none, spec.none_ttl) {
        (true, Some(t)) => resolve(t, inner),
        _ => resolve(spec.ttl, inner),
    };
    let mut life = match spec.local_ms? {
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

/// What a read found.
enum Read<R> {
    /// A decodable entry (counted): the value and the entry's bytes, for followers.
    Hit(R, Vec<u8>),
    /// Nothing usable: what the compute phase needs to know.
    Miss(Missed),
}

/// A read that found nothing usable.
struct Missed {
    /// The bytes of an undecodable entry (empty for a foreign type), to repair after the body.
    corrupt: Option<Vec<u8>>,
    /// Redis answered that there is no entry.
    missing: bool,
    /// The read failed: the call's outcome (not counted yet, so that a caller that then
    /// receives a leader's value counts a hit instead), and nothing is written.
    failure: Option<CallOutcome>,
}

/// One read, and on a miss one body run and one write, publishing the entry to followers.
async fn lead<S, R, F>(
    spec: &'static Spec,
    key: &Key,
    body: F,
    flight: Option<Lead<'static>>,
    bg: Option<Refresher<'_>>,
    budget: &mut Budget,
) -> R
where
    S: Shape<R>,
    F: Future<Output = R>,
{
    match read_entry::<S, R>(spec, key, bg, budget).await {
        Read::Hit(r, bytes) => {
            if let Some(flight) = flight {
                flight.finish_with(|| Outcome::Shared(Arc::from(bytes)));
            }
            r
        }
        Read::Miss(missed) => compute::<S, R, F>(spec, key, body, flight, missed, budget).await,
    }
}

/// The read of a call: a hit is decoded, counted, refreshed in the background when stale or
/// early, and kept in the near cache when the function has one.
async fn read_entry<S, R>(
    spec: &'static Spec,
    key: &Key,
    bg: Option<Refresher<'_>>,
    budget: &mut Budget,
) -> Read<R>
where
    S: Shape<R>,
{
    let inner = key.inner;
    let mut corrupt: Option<Vec<u8>> = None;
    let read_started = Instant::now();
    // A function with a near cache reads the remaining TTL along with the value (one round
    // trip), so a local copy never outlives the Redis entry.
    let ticket = match spec.local_ms {
        Some(_) => inner.near().and_then(|n| n.ticket(&key.key)),
        None => None,
    };
    // Charged by hand rather than through `Budget::run`: the hit path reads the clock once.
    let (read, pttl) = match budget.left() {
        None => (Err(Error::Timeout(inner.store.op_timeout())), -2),
        Some(limit) => match ticket {
            Some(_) => match inner.store.get_pttl(&key.key, limit).await {
                Ok((bytes, pttl)) => (Ok(bytes), pttl),
                Err(e) => (Err(e), -2),
            },
            None => (read(spec, key, limit).await, -2),
        },
    };
    let read_took = read_started.elapsed();
    budget.spent(read_took);
    spec.observe_redis(read_took);
    let mut failure = None;
    let mut missing = false;
    match read {
        Ok(Some(bytes)) => match decode::<S, R>(&bytes, inner.config.max_value_bytes) {
            Ok((r, meta)) => {
                let fresh = freshness(spec, inner, meta);
                if let (Some(ticket), Freshness::Fresh) = (ticket, &fresh) {
                    if let (Some(near), Some(life)) =
                        (inner.near(), local_life(spec, inner, meta, pttl))
                    {
                        near.fill(ticket, &key.key, Arc::from(&bytes[..]), life);
                    }
                }
                let counter = match (bg, fresh) {
                    (Some(refresh), Freshness::Stale) => {
                        refresh(key);
                        CallOutcome::Stale
                    }
                    (Some(refresh), Freshness::Early) => {
                        refresh(key);
                        CallOutcome::Hit
                    }
                    _ => CallOutcome::Hit,
                };
                spec.count(counter);
                return Read::Hit(r, bytes);
            }
            Err(why) => {
                tracing::debug!(function = spec.name, reason = %why, "undecodable cache entry; recomputing");
                corrupt = Some(bytes);
            }
        },
        Ok(None) => missing = true,
        Err(Error::WrongType) => corrupt = Some(Vec::new()),
        Err(Error::BreakerOpen) => failure = Some(CallOutcome::Bypass),
        Err(_) => failure = Some(CallOutcome::Error),
    }
    Read::Miss(Missed {
        corrupt,
        missing,
        failure,
    })
}

/// After a miss: the cross-process lock if any, the body, the write, the repair of a corrupt
/// entry, and the result published to followers.
async fn compute<S, R, F>(
    spec: &'static Spec,
    key: &Key,
    body: F,
    flight: Option<Lead<'static>>,
    missed: Missed,
    budget: &mut Budget,
) -> R
where
    S: Shape<R>,
    F: Future<Output = R>,
{
    let inner = key.inner;
    let Missed {
        corrupt,
        missing,
        failure,
    } = missed;
    // Cross-process stampede lock: another process may be computing this key already.
    let mut lock: Option<LockGuard> = None;
    if let (true, Some(lease_ms)) = (missing, spec.lock_ms) {
        match cross_process::<S, R>(spec, key, Duration::from_millis(lease_ms), budget).await {
            Locked::Acquired(guard) => lock = Some(guard),
            Locked::Value(r, bytes) => {
                spec.count(CallOutcome::Hit);
                if let Some(flight) = flight {
                    flight.finish_with(|| Outcome::Shared(Arc::from(bytes)));
                }
                return r;
            }
            Locked::GaveUp(maybe_ours) => lock = maybe_ours,
        }
    }
    if let Some(failure) = failure {
        spec.count(failure);
    }
    let started = Instant::now();
    let r = match flight::catching(body).await {
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
    spec.observe_body(started.elapsed());
    let entry = encode_entry::<S, R>(spec, inner, &r, started.elapsed());
    let mut written = false;
    if failure.is_none() {
        // A miss; or an error when Redis refused or failed the write (e.g. OOM).
        let mut outcome = CallOutcome::Miss;
        if let Some(entry) = &entry {
            match store_entry(spec, key, entry, budget).await {
                Ok(w) => written = w,
                Err(_) => outcome = CallOutcome::Error,
            }
        }
        spec.count(outcome);
    }
    if let (false, Some(seen)) = (written, corrupt) {
        // Nothing overwrote the bad entry: remove it unless someone replaced it meanwhile.
        let seen = &seen;
        let _ = budget
            .run(|limit| inner.store.repair(&key.key, seen, limit))
            .await;
    }
    if let Some(lock) = lock {
        lock.release(budget).await;
    }
    if let Some(flight) = flight {
        // Followers get the result even when Redis is failing: one body run per key.
        flight.finish_with(|| match entry {
            Some(entry) => Outcome::Shared(Arc::from(entry.bytes)),
            None => match shared_none::<S, R>(spec, inner, &r) {
                Some(bytes) => Outcome::Shared(bytes),
                None => Outcome::NotShared,
            },
        });
    }
    r
}

/// An uncached `None` (no `cache_none`) is not stored, but the followers of the flight get it,
/// as a `None` entry: it is what the body returned for their key while they waited, exactly as
/// a shared value is. `None` for anything else (an `Err`).
fn shared_none<S: Shape<R>, R>(spec: &Spec, inner: &Inner, r: &R) -> Option<Arc<[u8]>> {
    match S::stored(r, true) {
        Some(None) => envelope::encode::<S::Value>(spec.codec_for(inner), None, now_ms(), 0)
            .ok()
            .map(Arc::from),
        _ => None,
    }
}

enum Locked<R> {
    /// We hold the lock: compute, store, release.
    Acquired(LockGuard),
    /// Another process computed it while we waited.
    Value(R, Vec<u8>),
    /// Lock unavailable (Redis failing) or the wait bound passed: compute ourselves. `Some`
    /// when our `SET NX` may have taken the lock without us hearing the reply: it is released
    /// (compare-and-delete) after the body like a held lock, so it does not block other
    /// processes for a lease.
    GaveUp(Option<LockGuard>),
}

/// A held cross-process lock. Released after the store, and before a panic of the body goes
/// on; if the leader's future is dropped (cancelled) first, `Drop` releases it in the
/// background, so the waiters here and in other processes take over at once instead of
/// waiting out the lease.
struct LockGuard {
    inner: &'static Arc<Inner>,
    key: String,
    token: String,
}

impl LockGuard {
    /// Releases the lock within what is left of the call's budget; with nothing left (or when
    /// that fails), in the background with a budget of its own.
    async fn release(mut self, budget: &mut Budget) {
        if budget.left().is_some() {
            let (inner, key, token) = (self.inner, &self.key, &self.token);
            let released = budget
                .run(|limit| inner.store.unlock(key, token, limit))
                .await;
            if released.is_ok() {
                self.token.clear();
            }
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.token.is_empty() {
            return; // released
        }
        let inner = self.inner;
        let (key, token) = (
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.token),
        );
        inner.spawn(async move {
            let _ = inner
                .store
                .unlock(&key, &token, inner.store.op_timeout())
                .await;
        });
    }
}

/// `SET {key}:lock token NX PX lease`; the losers poll for the value with exponential backoff
/// (2 ms doubling to 50 ms: a handful of GETs per wait, never a busy loop) until the lease runs
/// out, then compute themselves. Every Redis operation is charged to the call's budget (the
/// sleeps between polls are not: they wait for another process's body); once it is spent the
/// waiter computes itself.
async fn cross_process<S: Shape<R>, R>(
    spec: &'static Spec,
    key: &Key,
    lease: Duration,
    budget: &mut Budget,
) -> Locked<R> {
    let inner = key.inner;
    let guard = |lock_key: String, token: String| LockGuard {
        inner,
        key: lock_key,
        token,
    };
    let lock_key = format!("{}:lock", key.key);
    let token = format!("{:032x}", fastrand::u128(..));
    let deadline = Instant::now() + lease;
    let mut pause = Duration::from_millis(2);
    // The first pass tries the lock at once; later passes wait, read, and try again only when
    // the value is still missing: the holder may have given up (an `Err` result is not stored),
    // so take over as soon as the lock is free instead of waiting out the whole lease.
    let mut first = true;
    loop {
        if !first {
            let now = Instant::now();
            if now >= deadline {
                tracing::debug!(function = spec.name, "waited a whole lock lease; computing");
                return Locked::GaveUp(None);
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_millis(50));
            match budget.run(|limit| inner.store.get(&key.key, limit)).await {
                Ok(Some(bytes)) => {
                    return match decode::<S, R>(&bytes, inner.config.max_value_bytes) {
                        Ok((r, _)) => Locked::Value(r, bytes),
                        Err(_) => Locked::GaveUp(None),
                    }
                }
                Ok(None) => {}
                Err(_) => return Locked::GaveUp(None),
            }
        }
        first = false;
        if budget.left().is_none() {
            return Locked::GaveUp(None);
        }
        let locked = budget
            .run(|limit| inner.store.try_lock(&lock_key, &token, lease, limit))
            .await;
        match locked {
            Ok(true) => return recheck::<S, R>(key, guard(lock_key, token), budget).await,
            Ok(false) => {}
            Err(_) => return Locked::GaveUp(Some(guard(lock_key, token))),
        }
    }
}

/// We hold the lock, but our miss may be older than it: the previous holder can have stored
/// the value and released the lock between our read and our `SET NX`. Holders store before they
/// release, so one more read now sees such a value; then the body does not run again.
async fn recheck<S: Shape<R>, R>(key: &Key, lock: LockGuard, budget: &mut Budget) -> Locked<R> {
    let inner = key.inner;
    if let Ok(Some(bytes)) = budget.run(|limit| inner.store.get(&key.key, limit)).await {
        if let Ok((r, _)) = decode::<S, R>(&bytes, inner.config.max_value_bytes) {
            lock.release(budget).await;
            return Locked::Value(r, bytes);
        }
    }
    Locked::Acquired(lock)
}

/// Keys being refreshed in the background right now, per process.
static REFRESHING: Mutex<Option<HashSet<String>>> = Mutex::new(None);

struct RefreshGuard(String);

impl Drop for RefreshGuard {
    fn drop(&mut self) {
        if let Ok(mut set) = REFRESHING.lock() {
            if let Some(set) = set.as_mut() {
                set.remove(&self.0);
            }
        }
    }
}

/// Identifies a refresh per cache instance and key (two caches may share a namespace).
fn refresh_id(key: &Key) -> String {
    format!("{:p}/{}", Arc::as_ptr(key.inner), key.key)
}

fn spawn_refresh<S, R, M, F>(spec: &'static Spec, key: &Key, make: M)
where
    S: Shape<R> + 'static,
    R: Send + 'static,
    M: Fn() -> F + Send + Sync + 'static,
    F: Future<Output = R> + Send + 'static,
{
    let claimed = match REFRESHING.lock() {
        Ok(mut set) => set.get_or_insert_with(HashSet::new).insert(refresh_id(key)),
        Err(_) => false,
    };
    if !claimed {
        return;
    }
    let guard = RefreshGuard(refresh_id(key));
    let key = Key {
        inner: key.inner,
        key: key.key.clone(),
        tags: key.tags.clone(),
    };
    key.inner.spawn(async move {
        let _guard = guard;
        let started = Instant::now();
        let r = make().await;
        spec.stats.mine().refreshes.fetch_add(1, Ordering::Relaxed);
        if let Some(entry) = encode_entry::<S, R>(spec, key.inner, &r, started.elapsed()) {
            let mut budget = Budget::new(key.inner.store.op_timeout());
            // A failed write is logged by the store; the result is returned either way.
            let _ = store_entry(spec, &key, &entry, &mut budget).await;
        }
    });
}

/// Companion `peek`: the value a hit would return, without running the body.
///
/// # Errors
/// Redis failed, timed out or the breaker is open; the key could not be computed.
pub async fn peek<S: Shape<R>, R>(key: Result<Key, Error>) -> Result<Option<R>, Error> {
    let key = key?;
    let inner = key.inner;
    match inner.store.get(&key.key, inner.store.op_timeout()).await {
        Ok(Some(bytes)) => Ok(decode::<S, R>(&bytes, inner.config.max_value_bytes)
            .ok()
            .map(|(r, _)| r)),
        Ok(None) | Err(Error::WrongType) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Companion `evict`: deletes the entry; `true` if one existed.
///
/// # Errors
/// Redis failed, timed out or the breaker is open; the key could not be computed.
pub async fn evict(key: Result<Key, Error>) -> Result<bool, Error> {
    let key = key?;
    key.inner.forget_local(&key.key);
    let existed = key.inner.store.del(&key.key).await?;
    key.inner
        .announce(crate::events::Event::Keys(vec![key.key]))
        .await;
    Ok(existed)
}

/// Companion `key`: the exact Redis key.
///
/// # Errors
/// The cache configuration is invalid or the key could not be computed.
pub fn key_string(key: Result<Key, Error>) -> Result<String, Error> {
    key.map(|k| k.key)
}

/// Companion `refresh`: runs the body and stores its result (write-through), whatever is cached.
pub async fn refresh<S, R, F>(spec: &'static Spec, key: Result<Key, Error>, body: F) -> R
where
    S: Shape<R>,
    F: Future<Output = R>,
{
    let started = Instant::now();
    let r = body.await;
    match key {
        Ok(key) => {
            let mut budget = Budget::new(key.inner.store.op_timeout());
            if let Some(entry) = encode_entry::<S, R>(spec, key.inner, &r, started.elapsed()) {
                // A failed write is logged by the store; the result is returned either way.
                let _ = store_entry(spec, &key, &entry, &mut budget).await;
            }
            key.inner.forget_local(&key.key);
        }
        Err(e) => spec.log_key_error(&e),
    }
    r
}
