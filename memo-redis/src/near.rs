//! The near cache: an optional in-process tier in front of Redis for functions declared with
//! `local = ...`, kept coherent by Redis server-assisted client-side caching.
//!
//! One tracking connection per cache speaks RESP3 and runs
//! `CLIENT TRACKING ON BCAST PREFIX {namespace}:`, so Redis pushes an `invalidate` message for
//! every key of the namespace that is written, deleted, evicted or expires — whoever changed it.
//! The tier serves entries only while that connection is up (the `healthy` flag); it is flushed
//! whenever the connection drops, reconnects, fails its heartbeat, or its task ends.
//!
//! A value read from Redis is stored locally only if no invalidation for its key (its *stripe*)
//! and no flush happened between the moment before the read was sent and the moment after it
//! was stored (the ticket check, done on both sides of the insert), so an invalidation that
//! overtakes a read can never leave the older value behind.
//!
//! Redis pushes nothing on `SWAPDB`, so the heartbeat reads a per-namespace epoch key (a random
//! token written once): another token, or none, means another dataset, and the tier flushes.
//!
//! Entries are served only while the tier is *in sync*: the tracking task proves at every
//! heartbeat that it has applied every invalidation Redis sent before the heartbeat's command was
//! sent (they precede its reply on the connection). When that proof is older than heartbeat + operation
//! timeout (a link that died silently, or a tracking task that cannot run: a runtime not being
//! polled, a caller spinning on local hits without yielding) nothing is served locally, so the
//! old value of a key written meanwhile is never served past that bound either.
//!
//! Bounds: the tier is weighted by key + value bytes (`REDIS_LOCAL_MAX_BYTES`); each entry lives
//! at most the function's `local` cap, the Redis key's remaining `PTTL` and its fresh TTL.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::{AsyncConnectionConfig, ProtocolVersion, PushInfo, PushKind, Value};

use crate::cache::Inner;
use crate::error::Error;

/// Invalidation stripes: an invalidation bumps the counter of its key's stripe; a read in flight
/// for any key of that stripe is then not stored locally.
const STRIPES: usize = 4096;
/// How often the tracking connection is pinged; a silent link is detected within this plus the
/// operation timeout, and the tier is flushed.
pub(crate) const HEARTBEAT: Duration = Duration::from_millis(500);
/// Fixed per-entry overhead counted against the byte bound: the key's and the value's heap
/// blocks, the `Arc` header and the table slot. Measured (`tests/benches/memory.rs`): with 64 it
/// undercounted real memory by about 115 bytes per small entry, so the bound held for the
/// counted bytes but RSS grew 1.5× the bound.
const ENTRY_OVERHEAD: usize = 180;

#[derive(Clone)]
struct Local {
    bytes: Arc<[u8]>,
    expires: Instant,
}

#[derive(Clone)]
struct Weigh;

impl quick_cache::Weighter<Box<str>, Local> for Weigh {
    fn weight(&self, key: &Box<str>, val: &Local) -> u64 {
        (key.len() + val.bytes.len() + ENTRY_OVERHEAD) as u64
    }
}

/// The in-process tier of one cache.
pub(crate) struct Near {
    entries: quick_cache::sync::Cache<Box<str>, Local, Weigh>,
    stripes: Box<[AtomicU64]>,
    generation: AtomicU64,
    /// The tracking connection is up and `CLIENT TRACKING` is on: entries may be served.
    healthy: AtomicBool,
    /// The tracking task has been started (and not ended).
    running: AtomicBool,
    /// Time origin of `synced`.
    origin: Instant,
    /// Nanoseconds after `origin` of the last sync point: every invalidation Redis sent for a
    /// write it processed before then has been applied. 0: none since the tier last went dark.
    synced: AtomicU64,
    /// How old the last sync point may be while entries are served (heartbeat + op timeout).
    max_lag: Duration,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Why tracking cannot start (e.g. an ACL user without `CLIENT`), at most once per interval.
    start_errors: crate::log::RateLimited,
}

/// State observed before a Redis read, checked before and after storing its result locally.
#[derive(Clone, Copy)]
pub(crate) struct Ticket {
    stripe: usize,
    seen: u64,
    generation: u64,
    /// Taken before the read is sent: a lifetime derived from the reply (its `PTTL`) counts
    /// from here, so a local copy never outlives the Redis key by the read's round trip.
    taken: Instant,
}

/// FNV-1a: cheap, and the same for a key as `&str` and as the bytes Redis pushes back.
fn stripe_of(key: &[u8]) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % STRIPES as u64) as usize
}

impl Near {
    pub(crate) fn new(max_bytes: usize, max_lag: Duration) -> Near {
        let max_bytes = max_bytes.max(1) as u64;
        // quick_cache sizes its tables from an item estimate; 256 B per entry is typical.
        let estimate = usize::try_from((max_bytes / 256).clamp(16, 1 << 20)).unwrap_or(1 << 20);
        Near {
            entries: quick_cache::sync::Cache::with_weighter(estimate, max_bytes, Weigh),
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            generation: AtomicU64::new(0),
            healthy: AtomicBool::new(false),
            running: AtomicBool::new(false),
            origin: Instant::now(),
            synced: AtomicU64::new(0),
            max_lag,
            task: Mutex::new(None),
            start_errors: crate::log::RateLimited::new(),
        }
    }

    /// The locally held entry for `key`, if the tier is live and the entry has not expired.
    #[inline]
    pub(crate) fn get(&self, key: &str) -> Option<Arc<[u8]>> {
        if !self.healthy.load(Ordering::Acquire) {
            return None;
        }
        let local = self.entries.get(key)?;
        let now = Instant::now();
        if !self.in_sync(now) {
            return None;
        }
        if local.expires <= now {
            let _ = self.entries.remove_if(key, |l| l.expires <= Instant::now());
            return None;
        }
        Some(local.bytes)
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Every invalidation Redis sent for writes it processed before `at` has been applied.
    fn mark_synced(&self, at: Instant) {
        self.synced.store(self.nanos(at).max(1), Ordering::Release);
    }

    /// The last sync point is recent enough for entries to be served at `now`: a write not yet
    /// applied happened after it, so it is at most `max_lag` old.
    fn in_sync(&self, now: Instant) -> bool {
        let synced = self.synced.load(Ordering::Acquire);
        let lag = u64::try_from(self.max_lag.as_nanos()).unwrap_or(u64::MAX);
        synced != 0 && self.nanos(now) <= synced.saturating_add(lag)
    }

    /// Taken right before the Redis read whose result may be stored locally; `None` when the
    /// tier is not live (nothing will be stored).
    pub(crate) fn ticket(&self, key: &str) -> Option<Ticket> {
        if !self.healthy.load(Ordering::Acquire) {
            return None;
        }
        let stripe = stripe_of(key.as_bytes());
        Some(Ticket {
            stripe,
            seen: self.stripes[stripe].load(Ordering::SeqCst),
            generation: self.generation.load(Ordering::SeqCst),
            taken: Instant::now(),
        })
    }

    fn unchanged(&self, t: &Ticket) -> bool {
        self.healthy.load(Ordering::SeqCst)
            && self.generation.load(Ordering::SeqCst) == t.generation
            && self.stripes[t.stripe].load(Ordering::SeqCst) == t.seen
    }

    /// Stores what a read taken under `ticket` returned, for at most `life` counted from the
    /// ticket (before the read was sent), unless an invalidation or a flush came in between
    /// (checked again after the insert, so one that races the insert removes the entry).
    pub(crate) fn fill(&self, ticket: Ticket, key: &str, bytes: Arc<[u8]>, life: Duration) {
        if life.is_zero() || !self.unchanged(&ticket) {
            return;
        }
        let Some(expires) = ticket.taken.checked_add(life) else {
            return;
        };
        if expires <= Instant::now() {
            return;
        }
        self.entries.insert(key.into(), Local { bytes, expires });
        if !self.unchanged(&ticket) {
            self.entries.remove(key);
        }
    }

    /// Drops `key` and fails any read of its stripe in flight.
    pub(crate) fn invalidate(&self, key: &[u8]) {
        self.stripes[stripe_of(key)].fetch_add(1, Ordering::SeqCst);
        if let Ok(key) = std::str::from_utf8(key) {
            self.entries.remove(key);
        }
    }

    /// Drops everything and fails every read in flight.
    pub(crate) fn flush(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries.clear();
    }

    /// Entries held now (for tests and stats).
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes held, as weighed against the bound.
    pub(crate) fn weight(&self) -> u64 {
        self.entries.weight()
    }

    /// Whether entries are being served (the tracking connection is up and in sync).
    pub(crate) fn is_live(&self) -> bool {
        self.healthy.load(Ordering::Acquire) && self.in_sync(Instant::now())
    }

    fn go_dark(&self) {
        self.healthy.store(false, Ordering::SeqCst);
        self.synced.store(0, Ordering::Release);
        self.flush();
    }

    /// Stops the tracking task (shutdown) and empties the tier.
    pub(crate) fn stop(&self) {
        if let Ok(mut t) = self.task.lock() {
            if let Some(task) = t.take() {
                task.abort();
            }
        }
        self.go_dark();
    }

    fn handle(&self, push: PushInfo) -> bool {
        match push.kind {
            PushKind::Invalidate => {
                for v in push.data {
                    match v {
                        Value::Array(keys) => {
                            for k in keys {
                                if let Value::BulkString(k) = k {
                                    self.invalidate(&k);
                                }
                            }
                        }
                        // `FLUSHALL`/`FLUSHDB`: Redis says "everything".
                        Value::Nil => self.flush(),
                        _ => {}
                    }
                }
                true
            }
            PushKind::Disconnection => false,
            _ => true,
        }
    }
}

impl Inner {
    /// The near cache of this cache, starting its tracking task on first use; `None` on Redis
    /// Cluster (unsupported: tracking would need one connection per master) or outside a tokio
    /// runtime.
    pub(crate) fn near(self: &Arc<Self>) -> Option<&Near> {
        if self.config.is_cluster() {
            self.warn_near_cluster();
            return None;
        }
        let near = self.near.get_or_init(|| {
            Near::new(
                self.config.local_max_bytes,
                HEARTBEAT.saturating_add(self.config.op_timeout),
            )
        });
        if !near.running.load(Ordering::Acquire) && !near.running.swap(true, Ordering::AcqRel) {
            // A runtime without its drivers would make the tracking task panic, again on every
            // call: the tier stays dark there.
            match crate::runtime::check().and_then(|()| {
                tokio::runtime::Handle::try_current()
                    .map_err(|_| Error::Runtime("called outside a Tokio runtime"))
            }) {
                Ok(handle) => {
                    let task = handle.spawn(track(Arc::clone(self)));
                    if let Ok(mut t) = near.task.lock() {
                        *t = Some(task);
                    }
                }
                Err(_) => near.running.store(false, Ordering::Release),
            }
        }
        Some(near)
    }

    /// Drops this process's local copy of `key` at once (after an evict or a write-through).
    pub(crate) fn forget_local(&self, key: &str) {
        if let Some(near) = self.near.get() {
            near.invalidate(key.as_bytes());
        }
    }

    /// Drops every local copy (after a bulk invalidation).
    pub(crate) fn forget_local_all(&self) {
        if let Some(near) = self.near.get() {
            near.flush();
        }
    }
}

/// Marks the tier dark when the tracking task ends for any reason (runtime shut down, aborted),
/// so a later call restarts it on a live runtime.
struct Running(Arc<Inner>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(near) = self.0.near.get() {
            near.go_dark();
            near.running.store(false, Ordering::Release);
        }
    }
}

/// Why the tracking connection could not be set up.
enum Failed {
    /// Redis unreachable or slow: the store's own warnings cover it.
    Connect(Error),
    /// Redis answered but refused `CLIENT TRACKING` (ACL, RESP3 unsupported): worth a warning.
    Refused(Error),
}

async fn connect(
    inner: &Inner,
) -> Result<
    (
        redis::aio::MultiplexedConnection,
        tokio::sync::mpsc::UnboundedReceiver<PushInfo>,
    ),
    Failed,
> {
    let info = inner.config.connection.clone();
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let mut config = inner.config.clone();
    config.connection = info.set_redis_settings(settings);
    let client = crate::store::open_client(&config).map_err(Failed::Refused)?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let conn_config = AsyncConnectionConfig::new()
        .set_push_sender(tx)
        .set_connection_timeout(Some(inner.config.connect_timeout))
        .set_response_timeout(Some(inner.config.op_timeout));
    let mut conn = tokio::time::timeout(
        inner.config.connect_timeout,
        client.get_multiplexed_async_connection_with_config(&conn_config),
    )
    .await
    .map_err(|_| Failed::Connect(Error::Timeout(inner.config.connect_timeout)))?
    .map_err(|e| {
        // A server that answers but rejects the RESP3 handshake or the credentials.
        if e.code().is_some() {
            Failed::Refused(e.into())
        } else {
            Failed::Connect(e.into())
        }
    })?;
    let prefix = format!("{}:", inner.config.namespace);
    tokio::time::timeout(
        inner.config.op_timeout,
        redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("BCAST")
            .arg("PREFIX")
            .arg(&prefix)
            .query_async::<()>(&mut conn),
    )
    .await
    .map_err(|_| Failed::Connect(Error::Timeout(inner.config.op_timeout)))?
    .map_err(|e| Failed::Refused(e.into()))?;
    Ok((conn, rx))
}

/// The key whose value identifies the dataset the tracking connection sees: a random token,
/// written once (`SET NX`, no expiry) by whichever process comes first. After `SWAPDB` (which
/// Redis reports to no tracking client) the connection's database holds another token, or none.
fn epoch_key(inner: &Inner) -> String {
    format!("{}:near-epoch", inner.config.namespace)
}

/// What the heartbeat compares.
enum Epoch {
    /// The dataset's token as last read (`None`: the key is missing and could not be written,
    /// e.g. on a read-only replica; a token appearing later still counts as a change).
    Checked(Option<Vec<u8>>),
    /// The key cannot be read (refused): the heartbeat pings, and a `SWAPDB` goes unnoticed.
    Unchecked,
}

/// Reads the dataset's token, creating it if missing. `Err` when Redis failed or timed out
/// (the link is then treated as down).
async fn epoch_of(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
    limit: Duration,
) -> Result<Epoch, ()> {
    let token = format!("{:032x}", fastrand::u128(..));
    let set = tokio::time::timeout(
        limit,
        redis::cmd("SET")
            .arg(key)
            .arg(&token)
            .arg("NX")
            .query_async::<Option<String>>(conn),
    )
    .await
    .map_err(|_| ())?;
    if let Err(e) = set {
        if crate::store::classify(&e) != crate::store::Fault::Refused {
            return Err(());
        }
    }
    match tokio::time::timeout(
        limit,
        redis::cmd("GET")
            .arg(key)
            .query_async::<Option<Vec<u8>>>(conn),
    )
    .await
    .map_err(|_| ())?
    {
        Ok(v) => Ok(Epoch::Checked(v)),
        Err(e) if crate::store::classify(&e) == crate::store::Fault::Refused => {
            Ok(Epoch::Unchecked)
        }
        Err(_) => Err(()),
    }
}

/// The tracking task: connect, enable tracking, apply invalidations, heartbeat; on any failure
/// go dark (flush) and reconnect with backoff.
async fn track(inner: Arc<Inner>) {
    let _running = Running(Arc::clone(&inner));
    let Some(near) = inner.near.get() else {
        return;
    };
    let mut backoff = Duration::from_millis(50);
    loop {
        match connect(&inner).await {
            Ok((mut conn, mut rx)) => {
                backoff = Duration::from_millis(50);
                let epoch_key = epoch_key(&inner);
                let mut epoch = match epoch_of(&mut conn, &epoch_key, inner.config.op_timeout).await
                {
                    Ok(e) => e,
                    Err(()) => {
                        near.go_dark();
                        tokio::time::sleep(backoff).await;
                        continue;
                    }
                };
                // Anything stored before tracking was on is not covered by it. Entries are filled
                // only by reads sent from now on, which see every earlier write: a sync point.
                near.flush();
                near.mark_synced(Instant::now());
                near.healthy.store(true, Ordering::SeqCst);
                let mut heartbeat = tokio::time::interval(HEARTBEAT);
                heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                heartbeat.tick().await;
                'link: loop {
                    tokio::select! {
                        push = rx.recv() => match push {
                            Some(push) => if !near.handle(push) { break },
                            None => break,
                        },
                        _ = heartbeat.tick() => {
                            let sent = Instant::now();
                            // The heartbeat reads the epoch key (or pings when it cannot): any
                            // reply orders the pushes before it, and a changed epoch reveals a
                            // `SWAPDB` (or a restored dataset), for which Redis sends no
                            // invalidation.
                            let beat = match &epoch {
                                Epoch::Checked(_) => tokio::time::timeout(
                                    inner.config.op_timeout,
                                    redis::cmd("GET").arg(&epoch_key).query_async::<Option<Vec<u8>>>(&mut conn),
                                )
                                .await
                                .map(|r| r.map(Some)),
                                Epoch::Unchecked => tokio::time::timeout(
                                    inner.config.op_timeout,
                                    redis::cmd("PING").query_async::<()>(&mut conn),
                                )
                                .await
                                .map(|r| r.map(|()| None)),
                            };
                            let seen = match beat {
                                Ok(Ok(seen)) => seen,
                                // Refused (an ACL without `GET` on it): ping from now on.
                                Ok(Err(e)) if crate::store::classify(&e) == crate::store::Fault::Refused => {
                                    epoch = Epoch::Unchecked;
                                    None
                                }
                                _ => break,
                            };
                            if let (Epoch::Checked(known), Some(seen)) = (&epoch, seen) {
                                if *known != seen {
                                    // Another dataset under our connection: nothing held is
                                    // known to match it.
                                    near.flush();
                                    tracing::debug!("near cache: dataset changed (SWAPDB?); local tier flushed");
                                    epoch = match epoch_of(&mut conn, &epoch_key, inner.config.op_timeout).await {
                                        Ok(e) => e,
                                        Err(()) => break,
                                    };
                                }
                            }
                            // Redis sends the invalidations of a write processed before the
                            // `PING` arrived ahead of the `PONG`, and the connection queues
                            // pushes in order before resolving a reply: apply them all, then
                            // vouch for every write before `sent`.
                            loop {
                                match rx.try_recv() {
                                    Ok(push) => if !near.handle(push) { break 'link },
                                    Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                                    Err(_) => break 'link,
                                }
                            }
                            near.mark_synced(sent);
                        }
                    }
                }
                near.go_dark();
                tracing::debug!("near cache: tracking connection lost; local tier flushed");
            }
            Err(Failed::Connect(e)) => {
                tracing::debug!(error = %e, "near cache: tracking connection not up");
            }
            Err(Failed::Refused(e)) => {
                // The functions still work through Redis; say why their near cache is dark.
                near.start_errors.hit(|suppressed| {
                    tracing::warn!(
                        url = %inner.config.redacted_url(),
                        error = %e,
                        suppressed,
                        "memo-redis: near cache unavailable (could not enable CLIENT TRACKING); `local` functions use Redis only until it works"
                    );
                });
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live_with(max_bytes: usize) -> Near {
        let n = Near::new(max_bytes, Duration::from_secs(60));
        n.mark_synced(Instant::now());
        n.healthy.store(true, Ordering::SeqCst);
        n
    }

    fn live() -> Near {
        live_with(1 << 20)
    }

    #[test]
    fn nothing_is_served_when_the_last_sync_point_is_older_than_the_bound() {
        // Generous against a stall between two lines on a loaded machine.
        let n = Near::new(1 << 20, Duration::from_millis(200));
        n.mark_synced(Instant::now());
        n.healthy.store(true, Ordering::SeqCst);
        let t = n.ticket("ns:a").unwrap();
        n.fill(t, "ns:a", Arc::from(&b"v"[..]), Duration::from_secs(60));
        assert_eq!(n.get("ns:a").as_deref(), Some(&b"v"[..]));
        std::thread::sleep(Duration::from_millis(250));
        assert!(
            n.get("ns:a").is_none(),
            "invalidations unapplied for too long"
        );
        assert!(!n.is_live());
        n.mark_synced(Instant::now());
        assert_eq!(n.get("ns:a").as_deref(), Some(&b"v"[..]), "in sync again");
    }

    #[test]
    fn an_invalidation_during_the_read_prevents_the_fill() {
        let n = live();
        let t = n.ticket("ns:a").unwrap();
        n.invalidate(b"ns:a");
        n.fill(t, "ns:a", Arc::from(&b"old"[..]), Duration::from_secs(60));
        assert!(n.get("ns:a").is_none());
    }

    #[test]
    fn a_flush_during_the_read_prevents_the_fill() {
        let n = live();
        let t = n.ticket("ns:a").unwrap();
        n.flush();
        n.fill(t, "ns:a", Arc::from(&b"old"[..]), Duration::from_secs(60));
        assert!(n.get("ns:a").is_none());
    }

    #[test]
    fn an_undisturbed_read_fills_and_is_served_until_invalidated() {
        let n = live();
        let t = n.ticket("ns:a").unwrap();
        n.fill(t, "ns:a", Arc::from(&b"v"[..]), Duration::from_secs(60));
        assert_eq!(n.get("ns:a").as_deref(), Some(&b"v"[..]));
        n.invalidate(b"ns:a");
        assert!(n.get("ns:a").is_none());
    }

    #[test]
    fn nothing_is_served_or_stored_while_dark() {
        let n = live();
        let t = n.ticket("ns:a").unwrap();
        n.fill(t, "ns:a", Arc::from(&b"v"[..]), Duration::from_secs(60));
        n.go_dark();
        assert!(n.get("ns:a").is_none());
        assert!(n.ticket("ns:a").is_none());
        n.healthy.store(true, Ordering::SeqCst);
        assert!(n.get("ns:a").is_none(), "going dark flushed the tier");
    }

    #[test]
    fn entries_expire_and_the_byte_bound_holds() {
        let n = live();
        let t = n.ticket("ns:a").unwrap();
        n.fill(t, "ns:a", Arc::from(&b"v"[..]), Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert!(n.get("ns:a").is_none());

        let small = live_with(64 * 1024);
        for i in 0..10_000 {
            let key = format!("ns:{i}");
            let t = small.ticket(&key).unwrap();
            small.fill(t, &key, Arc::from(vec![0u8; 100]), Duration::from_secs(60));
        }
        assert!(small.entries.weight() <= 64 * 1024);
        // Independent of the weigher: each entry weighs at least 4 key bytes ("ns:0") + 100 value
        // bytes + 180 overhead, so at most 65536 / 284 = 230 fit.
        assert!(small.len() <= 230, "{} entries", small.len());
    }

    #[test]
    fn an_entry_weighs_its_key_its_value_and_180_bytes() {
        let n = live();
        let t = n.ticket("ns:abc").unwrap();
        n.fill(
            t,
            "ns:abc",
            Arc::from(vec![7u8; 100]),
            Duration::from_secs(60),
        );
        // 6 key bytes + 100 value bytes + 180.
        assert_eq!(n.weight(), 286);
    }

    #[test]
    fn a_disturbed_read_is_never_inserted_even_for_a_moment() {
        // Room for one entry of 286 bytes, not two: inserting a second one evicts the first.
        let n = live_with(400);
        let t = n.ticket("ns:a").unwrap();
        n.fill(
            t,
            "ns:a",
            Arc::from(vec![1u8; 100]),
            Duration::from_secs(60),
        );
        assert_eq!(n.len(), 1);
        let t = n.ticket("ns:b").unwrap();
        n.invalidate(b"ns:b");
        n.fill(
            t,
            "ns:b",
            Arc::from(vec![2u8; 100]),
            Duration::from_secs(60),
        );
        // Had "ns:b" been inserted (and removed again by the check after the insert), it would
        // have evicted "ns:a" on the way, and been visible to concurrent readers meanwhile.
        assert_eq!(n.get("ns:a").as_deref(), Some(&[1u8; 100][..]), "ns:a kept");
        assert!(n.get("ns:b").is_none());
    }

    #[test]
    fn invalidations_of_other_keys_rarely_share_a_stripe() {
        // 1000 keys over 4096 stripes: a uniform hash leaves about 890 distinct ones (FNV-1a:
        // 914). Fewer means more reads in flight failed by another key's invalidation.
        let stripes: std::collections::HashSet<usize> = (0..1000)
            .map(|i| stripe_of(format!("ns:{i}").as_bytes()))
            .collect();
        assert!(stripes.len() >= 800, "{} distinct stripes", stripes.len());

        let n = live();
        assert_ne!(stripe_of(b"ns:a"), stripe_of(b"ns:b"));
        let t = n.ticket("ns:a").unwrap();
        n.invalidate(b"ns:b");
        n.fill(t, "ns:a", Arc::from(&b"v"[..]), Duration::from_secs(60));
        assert_eq!(
            n.get("ns:a").as_deref(),
            Some(&b"v"[..]),
            "another stripe's invalidation does not fail the read"
        );
    }

    #[test]
    fn an_expired_entry_met_by_a_read_is_removed() {
        let n = live();
        // Already expired when read (no sleep needed: inserted with its expiry now).
        n.entries.insert(
            "ns:a".into(),
            Local {
                bytes: Arc::from(&b"v"[..]),
                expires: Instant::now(),
            },
        );
        assert_eq!(n.len(), 1);
        assert!(n.get("ns:a").is_none(), "expired: not served");
        assert_eq!(n.len(), 0, "and removed, not left to the eviction");
    }
}
