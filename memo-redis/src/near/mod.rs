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
//! Entries are kept decoded ([`Held`]: the function's `Option<V>` behind an `Arc<dyn Any>`), so a
//! local hit is a table lookup, a downcast and a clone of the value; a downcast that fails (another
//! function's value type under the same key) is a miss, never a wrong value.
//!
//! On Redis Cluster (`near/cluster.rs`) there is one such tracking connection per master, and a
//! topology watch that reads `CLUSTER SLOTS` every heartbeat: each of them is a *link* whose own
//! sync point the tier keeps, and the tier's sync point is the oldest of them, so entries are
//! served only while every master's link and the topology proved sync within the bound. Any link
//! coming up or going down, and any change of the slot map, flushes the whole tier.
//!
//! Bounds: the tier is weighted by key + the encoded bytes the value was decoded from
//! (decompressed; `REDIS_LOCAL_MAX_BYTES`); each entry lives at most the function's `local` cap, the Redis
//! key's remaining `PTTL` and its fresh TTL.
//!
//! Here: the tier (entries, stripes, tickets, the sync bound). The tracking task is `track.rs`;
//! how a cache creates and reports its tier is `cache/near.rs`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::{PushInfo, PushKind, Value};

use crate::config::Config;
use crate::error::Error;
use crate::shape::Held;

mod cluster;
mod track;

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
    value: Held,
    /// The length of the encoded entry the value was decoded from: its weight.
    len: usize,
    expires: Instant,
}

#[derive(Clone)]
struct Weigh;

impl quick_cache::Weighter<Box<str>, Local> for Weigh {
    fn weight(&self, key: &Box<str>, val: &Local) -> u64 {
        (key.len() + val.len + ENTRY_OVERHEAD) as u64
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
    /// The links whose sync points `healthy` and `synced` aggregate (one on a single node; one
    /// per master plus the topology watch on a cluster).
    links: Mutex<Vec<Link>>,
    /// Ids of links, never reused: a late call of a removed link's task is ignored.
    next_link: AtomicU64,
}

/// What happened to one link (sync points in `synced` units).
enum LinkEvent {
    Up(u64),
    Synced(u64),
    Down,
}

/// One link's state: whether its tracking is on, and its own last sync point (`synced` units).
struct Link {
    id: u64,
    healthy: bool,
    synced: u64,
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
            links: Mutex::new(Vec::new()),
            next_link: AtomicU64::new(1),
        }
    }

    /// Starts the tracking task (connected as `config` says) unless it runs already: on a
    /// single node one tracking connection, on a cluster one per master under a topology watch
    /// (woken early by `topology`'s change notice, the store's slot map). Outside a usable tokio
    /// runtime nothing starts and the tier stays dark; a later call tries again.
    pub(crate) fn start(
        self: &Arc<Self>,
        config: &Config,
        topology: Option<&Arc<crate::store::cluster::Nodes>>,
    ) {
        if self.running.load(Ordering::Acquire) || self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        // A runtime without its drivers would make the tracking task panic, again on every
        // call: the tier stays dark there.
        match crate::runtime::check().and_then(|()| {
            tokio::runtime::Handle::try_current()
                .map_err(|_| Error::Runtime("called outside a Tokio runtime"))
        }) {
            Ok(handle) => {
                // Without the `cluster` feature no cache has a cluster configuration (its store
                // fails to build: cluster_api), so the cluster links are not compiled in.
                let task: crate::runtime::Task = if cfg!(feature = "cluster") && config.is_cluster()
                {
                    Box::pin(cluster::track(
                        Arc::clone(self),
                        config.clone(),
                        topology.cloned(),
                    ))
                } else {
                    Box::pin(track::track(Arc::clone(self), config.clone()))
                };
                let task = handle.spawn(task);
                if let Ok(mut t) = self.task.lock() {
                    *t = Some(task);
                }
            }
            Err(_) => self.running.store(false, Ordering::Release),
        }
    }

    /// The locally held value for `key`, if the tier is live and the entry has not expired.
    #[inline]
    pub(crate) fn get(&self, key: &str) -> Option<Held> {
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
        Some(local.value)
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Every invalidation Redis sent for writes it processed before `at` has been applied (the
    /// unit tests' stand-in for a link's sync point).
    #[cfg(test)]
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

    /// Stores what a read taken under `ticket` returned (`value`, decoded from `len` encoded
    /// bytes: its weight), for at most `life` counted from the ticket (before the read was
    /// sent), unless an invalidation or a flush came in between (checked again after the
    /// insert, so one that races the insert removes the entry).
    pub(crate) fn fill(&self, ticket: Ticket, key: &str, value: Held, len: usize, life: Duration) {
        if life.is_zero() || !self.unchanged(&ticket) {
            return;
        }
        let Some(expires) = ticket.taken.checked_add(life) else {
            return;
        };
        if expires <= Instant::now() {
            return;
        }
        self.entries.insert(
            key.into(),
            Local {
                value,
                len,
                expires,
            },
        );
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

    /// Drops every link and empties the tier: nothing is served until links are added again
    /// and prove sync (the tracking task ended, or `stop`).
    fn go_dark(&self) {
        if let Ok(mut links) = self.links.lock() {
            links.clear();
        }
        self.healthy.store(false, Ordering::SeqCst);
        self.synced.store(0, Ordering::Release);
        self.flush();
    }

    /// Registers a link, not up yet: the tier is dark until it proves sync.
    fn add_link(&self) -> u64 {
        let id = self.next_link.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut links) = self.links.lock() {
            links.push(Link {
                id,
                healthy: false,
                synced: 0,
            });
            self.aggregate(&links);
        }
        id
    }

    /// Forgets a link (a master that left the slot map). Unknown ids are ignored.
    fn remove_link(&self, id: u64) {
        if let Ok(mut links) = self.links.lock() {
            let before = links.len();
            links.retain(|l| l.id != id);
            if links.len() != before {
                self.aggregate(&links);
            }
        }
    }

    /// The link's tracking is on as of `at`: the tier starts empty (nothing stored before is
    /// covered by it; entries are filled only by reads sent from now on, which see every
    /// earlier write).
    fn link_up(&self, id: u64, at: Instant) {
        self.flush();
        self.update_link(id, LinkEvent::Up(self.nanos(at).max(1)));
    }

    /// Every invalidation the link's node sent for writes before `at` has been applied. Ignored
    /// for a link that is not up (only `link_up`, which flushes, brings a link up).
    fn link_synced(&self, id: u64, at: Instant) {
        self.update_link(id, LinkEvent::Synced(self.nanos(at).max(1)));
    }

    /// The link is lost: the tier goes dark and is emptied.
    fn link_down(&self, id: u64) {
        self.update_link(id, LinkEvent::Down);
        self.flush();
    }

    fn update_link(&self, id: u64, event: LinkEvent) {
        let Ok(mut links) = self.links.lock() else {
            return;
        };
        let Some(link) = links.iter_mut().find(|l| l.id == id) else {
            // Removed (its master left the map, or the tier went dark): not a proof of anything.
            return;
        };
        match event {
            LinkEvent::Up(at) => {
                link.healthy = true;
                link.synced = at;
            }
            LinkEvent::Synced(at) if link.healthy => link.synced = link.synced.max(at),
            LinkEvent::Synced(_) => return,
            LinkEvent::Down => {
                link.healthy = false;
                link.synced = 0;
            }
        }
        self.aggregate(&links);
    }

    /// The tier is healthy when every link is (and there is one), and in sync as of the oldest
    /// link's sync point. Called with the links locked, so two updates cannot interleave.
    fn aggregate(&self, links: &[Link]) {
        let up = !links.is_empty() && links.iter().all(|l| l.healthy);
        if up {
            let oldest = links.iter().map(|l| l.synced).min().unwrap_or(0);
            self.synced.store(oldest, Ordering::Release);
            self.healthy.store(true, Ordering::SeqCst);
        } else {
            self.healthy.store(false, Ordering::SeqCst);
            self.synced.store(0, Ordering::Release);
        }
    }

    /// Stops the tracking task (shutdown) and empties the tier.
    pub(crate) fn stop(&self) {
        if let Ok(mut t) = self.task.lock()
            && let Some(task) = t.take()
        {
            task.abort();
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

    /// A held copy of `bytes` (as the tier holds a function's `Option<V>`).
    fn held(bytes: &[u8]) -> Held {
        Arc::new(Some(bytes.to_vec()))
    }

    /// What `n` serves for `key`, as the bytes `held` was made of.
    fn got(n: &Near, key: &str) -> Option<Vec<u8>> {
        n.get(key)?.downcast_ref::<Option<Vec<u8>>>()?.clone()
    }

    #[test]
    fn nothing_is_served_when_the_last_sync_point_is_older_than_the_bound() {
        // Generous against a stall between two lines on a loaded machine.
        let n = Near::new(1 << 20, Duration::from_millis(200));
        n.mark_synced(Instant::now());
        n.healthy.store(true, Ordering::SeqCst);
        let t = n.ticket("ns:a").unwrap();
        n.fill(t, "ns:a", held(b"v"), 1, Duration::from_secs(60));
        assert_eq!(got(&n, "ns:a").as_deref(), Some(&b"v"[..]));
        std::thread::sleep(Duration::from_millis(250));
        assert!(
            n.get("ns:a").is_none(),
            "invalidations unapplied for too long"
        );
        assert!(!n.is_live());
        n.mark_synced(Instant::now());
        assert_eq!(got(&n, "ns:a").as_deref(), Some(&b"v"[..]), "in sync again");
    }

    #[test]
    fn with_several_links_entries_are_served_only_while_every_link_is_up_and_in_sync() {
        // A cluster: two masters' links and the topology watch.
        let n = Near::new(1 << 20, Duration::from_secs(60));
        let (a, b, watch) = (n.add_link(), n.add_link(), n.add_link());
        let now = Instant::now();
        n.link_up(a, now);
        n.link_up(b, now);
        assert!(!n.is_live(), "one link not up yet");
        assert!(
            n.ticket("ns:a").is_none(),
            "nothing is read for the tier while dark"
        );
        n.link_up(watch, now);
        assert!(n.is_live());
        let t = n.ticket("ns:a").unwrap();
        n.fill(t, "ns:a", held(b"v"), 1, Duration::from_secs(60));
        assert_eq!(got(&n, "ns:a").as_deref(), Some(&b"v"[..]));

        // The tier's sync point is the oldest link's.
        let later = now + Duration::from_secs(30);
        n.link_synced(a, later);
        n.link_synced(b, later);
        assert_eq!(n.synced.load(Ordering::SeqCst), n.nanos(now).max(1));
        n.link_synced(watch, later);
        assert_eq!(n.synced.load(Ordering::SeqCst), n.nanos(later));

        // One master's link lost: dark and flushed; back up: live, and empty.
        n.link_down(b);
        assert!(n.get("ns:a").is_none() && !n.is_live());
        assert_eq!(n.len(), 0);
        n.link_up(b, Instant::now());
        assert!(n.is_live());

        // A new master: dark until its link is up; the old one's removal does not make it live.
        let c = n.add_link();
        n.remove_link(a);
        assert!(!n.is_live());
        n.link_up(c, Instant::now());
        assert!(n.is_live());
        // A removed link's late report changes nothing.
        n.link_down(a);
        assert!(n.is_live(), "a removed link is ignored");
        n.link_down(c);
        n.link_synced(c, Instant::now());
        assert!(
            !n.is_live(),
            "a link that is down is brought up only by link_up"
        );
        n.link_up(c, Instant::now());
        assert!(n.is_live());
        n.go_dark();
        n.link_up(c, Instant::now());
        assert!(!n.is_live(), "going dark forgets every link");
    }

    #[test]
    fn an_invalidation_during_the_read_prevents_the_fill() {
        let n = live();
        let t = n.ticket("ns:a").unwrap();
        n.invalidate(b"ns:a");
        n.fill(t, "ns:a", held(b"old"), 3, Duration::from_secs(60));
        assert!(n.get("ns:a").is_none());
    }

    #[test]
    fn a_flush_during_the_read_prevents_the_fill() {
        let n = live();
        let t = n.ticket("ns:a").unwrap();
        n.flush();
        n.fill(t, "ns:a", held(b"old"), 3, Duration::from_secs(60));
        assert!(n.get("ns:a").is_none());
    }

    #[test]
    fn an_undisturbed_read_fills_and_is_served_until_invalidated() {
        let n = live();
        let t = n.ticket("ns:a").unwrap();
        n.fill(t, "ns:a", held(b"v"), 1, Duration::from_secs(60));
        assert_eq!(got(&n, "ns:a").as_deref(), Some(&b"v"[..]));
        n.invalidate(b"ns:a");
        assert!(n.get("ns:a").is_none());
    }

    #[test]
    fn nothing_is_served_or_stored_while_dark() {
        let n = live();
        let t = n.ticket("ns:a").unwrap();
        n.fill(t, "ns:a", held(b"v"), 1, Duration::from_secs(60));
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
        n.fill(t, "ns:a", held(b"v"), 1, Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert!(n.get("ns:a").is_none());

        let small = live_with(64 * 1024);
        for i in 0..10_000 {
            let key = format!("ns:{i}");
            let t = small.ticket(&key).unwrap();
            small.fill(t, &key, held(&[0u8; 100]), 100, Duration::from_secs(60));
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
        n.fill(t, "ns:abc", held(&[7u8; 100]), 100, Duration::from_secs(60));
        // 6 key bytes + 100 value bytes + 180.
        assert_eq!(n.weight(), 286);
    }

    #[test]
    fn a_decoded_value_weighs_the_encoded_bytes_it_came_from() {
        // The bound keeps its meaning when values are held decoded: the weight is the entry's
        // encoded length, whatever the decoded value's size in memory.
        let n = live();
        let t = n.ticket("ns:abc").unwrap();
        n.fill(
            t,
            "ns:abc",
            Arc::new(Some(7u64)),
            100,
            Duration::from_secs(60),
        );
        assert_eq!(n.weight(), 286);
    }

    #[test]
    fn a_disturbed_read_is_never_inserted_even_for_a_moment() {
        // Room for one entry of 286 bytes, not two: inserting a second one evicts the first.
        let n = live_with(400);
        let t = n.ticket("ns:a").unwrap();
        n.fill(t, "ns:a", held(&[1u8; 100]), 100, Duration::from_secs(60));
        assert_eq!(n.len(), 1);
        let t = n.ticket("ns:b").unwrap();
        n.invalidate(b"ns:b");
        n.fill(t, "ns:b", held(&[2u8; 100]), 100, Duration::from_secs(60));
        // Had "ns:b" been inserted (and removed again by the check after the insert), it would
        // have evicted "ns:a" on the way, and been visible to concurrent readers meanwhile.
        assert_eq!(
            got(&n, "ns:a").as_deref(),
            Some(&[1u8; 100][..]),
            "ns:a kept"
        );
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
        n.fill(t, "ns:a", held(b"v"), 1, Duration::from_secs(60));
        assert_eq!(
            got(&n, "ns:a").as_deref(),
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
                value: held(b"v"),
                len: 1,
                expires: Instant::now(),
            },
        );
        assert_eq!(n.len(), 1);
        assert!(n.get("ns:a").is_none(), "expired: not served");
        assert_eq!(n.len(), 0, "and removed, not left to the eviction");
    }
}
