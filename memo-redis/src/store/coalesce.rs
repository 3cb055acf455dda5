//! Coalesced reads of a hot key: concurrent plain `GET`s of one key through one store share one
//! request in flight (go-redis/cache's single-flight), so a hot key costs one round trip per
//! burst of callers instead of one per caller.
//!
//! The first caller of a key leads: it registers the read in its key's shard and sends the
//! `GET`; callers of the same key arriving before the reply follow and get a copy of it. The
//! shards are [`SHARDS`] small vectors, each behind its own lock held for a few instructions, so
//! two cold keys rarely meet on one lock; a cold read allocates nothing (the wake-up state is
//! created by the first follower, and only then is the key copied).
//!
//! The rules, also in docs/stampedes-and-freshness.md ("Coalesced reads"):
//! - a follower waits at most its own remaining budget; on its timeout it fails like a `GET`
//!   that timed out, but is not counted on the breaker: the leader's read counts once, if it
//!   fails;
//! - the leader's error (or miss, or foreign type) is every follower's;
//! - a leader whose future is dropped abandons the read: its followers race to lead a new one
//!   within what is left of their own budgets (nothing is spawned, nothing is stranded);
//! - a read never serves a caller that began after a write of its key through this store
//!   completed: every write bumps its key's stripe (or, for writes whose keys are not known one
//!   by one, the epoch) once it is over, and a read whose stamp moved is closed to new
//!   followers — so `f_evict(x)` then `f(x)` never gets the value read before the eviction,
//!   and a flight's re-read never joins a read older than the flight's write.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use super::Store;
use crate::error::Error;

/// Shards of the table of reads in flight (a power of two).
const SHARDS: usize = 64;
/// Write stripes, by key hash.
const STRIPES: usize = 1024;

/// The reads in flight of one store, and the write stamps that close them.
pub(crate) struct Reads {
    shards: Box<[Shard]>,
    hasher: foldhash::fast::RandomState,
    /// Writes completed (or abandoned) per key stripe.
    written: Box<[AtomicU64]>,
    /// Writes whose keys are not known one by one (scripts, `UNLINK` of many keys).
    epoch: AtomicU64,
}

/// One shard, alone on its cache lines.
#[repr(align(128))]
#[derive(Default)]
struct Shard {
    reads: Mutex<InFlight>,
}

#[derive(Default)]
struct InFlight {
    next_id: u64,
    reads: Vec<Read>,
}

struct Read {
    hash: u64,
    id: u64,
    /// The write stamps (stripe + epoch) when the read was registered, before it was sent.
    stamp: u64,
    /// A write of the key completed since: no new follower.
    closed: bool,
    /// Created by the first follower.
    slot: Option<Arc<Slot>>,
}

/// Where followers wait for the reply.
struct Slot {
    state: Mutex<State>,
    done: Notify,
}

enum State {
    Pending,
    /// The leader's key (followers compare it: they joined by hash) and its reply.
    Done(Box<str>, Reply),
    /// The leader's future was dropped before the reply.
    Abandoned,
}

/// A reply every follower can copy.
enum Reply {
    Found(Arc<[u8]>),
    Missing,
    Failed(Error),
}

/// What a follower got.
enum Waited {
    Reply(Box<str>, Result<Option<Arc<[u8]>>, Error>),
    Abandoned,
}

enum Role<'a> {
    Lead(Lead<'a>),
    Follow(Arc<Slot>),
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// A copy of a read's error for a follower: the same class, so the follower's call takes the
/// same way (bypass for an open breaker, error otherwise).
fn copy_error(e: &Error) -> Error {
    match e {
        Error::Config(c) => Error::Config(c.clone()),
        Error::AlreadyInitialised => Error::AlreadyInitialised,
        Error::Redis(r) => Error::Redis(r.clone()),
        Error::Timeout(d) => Error::Timeout(*d),
        Error::BreakerOpen => Error::BreakerOpen,
        Error::WrongType => Error::WrongType,
        Error::Codec(s) => Error::Codec(s.clone()),
        Error::Key(s) => Error::Key(s.clone()),
        Error::Runtime(s) => Error::Runtime(s),
    }
}

impl Default for Reads {
    fn default() -> Self {
        Reads {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            hasher: foldhash::fast::RandomState::default(),
            written: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            epoch: AtomicU64::new(0),
        }
    }
}

impl std::fmt::Debug for Reads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reads")
            .field("in_flight", &self.len())
            .finish()
    }
}

impl Reads {
    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    fn shard(&self, hash: u64) -> &Shard {
        &self.shards[(hash as usize) & (SHARDS - 1)]
    }

    fn stamp(&self, hash: u64) -> u64 {
        let stripe = ((hash >> 32) as usize) % STRIPES;
        self.written[stripe]
            .load(Ordering::SeqCst)
            .wrapping_add(self.epoch.load(Ordering::SeqCst))
    }

    /// Joins the read of `key` in flight, or leads a new one.
    fn join(&self, key: &str) -> Role<'_> {
        let hash = self.hash(key);
        let shard = self.shard(hash);
        let mut inflight = locked(&shard.reads);
        // Under the shard lock, so a write's bump either precedes the stamp of a new read or is
        // seen by every later joiner.
        let stamp = self.stamp(hash);
        if let Some(read) = inflight
            .reads
            .iter_mut()
            .find(|r| r.hash == hash && !r.closed)
        {
            if read.stamp == stamp {
                let slot = read.slot.get_or_insert_with(|| {
                    Arc::new(Slot {
                        state: Mutex::new(State::Pending),
                        done: Notify::new(),
                    })
                });
                return Role::Follow(Arc::clone(slot));
            }
            // Sent before a write of the key that is over now: not for callers that began
            // after it. It still answers its own followers.
            read.closed = true;
        }
        let id = inflight.next_id;
        inflight.next_id = id.wrapping_add(1);
        inflight.reads.push(Read {
            hash,
            id,
            stamp,
            closed: false,
            slot: None,
        });
        Role::Lead(Lead {
            reads: self,
            hash,
            id,
            ended: false,
        })
    }

    /// Reads in flight.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| locked(&s.reads).reads.len())
            .sum()
    }

    /// A write of `key` is over (done, failed or dropped): reads sent before it take no new
    /// followers.
    pub(crate) fn wrote(&self, key: &str) {
        let stripe = ((self.hash(key) >> 32) as usize) % STRIPES;
        self.written[stripe].fetch_add(1, Ordering::SeqCst);
    }

    /// A write of keys not known one by one is over: no read in flight takes new followers.
    pub(crate) fn wrote_any(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }
}

/// Calls [`Reads::wrote`] (or [`Reads::wrote_any`] without a key) when dropped: after the write
/// it guards is over, however it ended.
pub(crate) struct Writing<'a> {
    pub(crate) reads: &'a Reads,
    pub(crate) key: Option<&'a str>,
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        match self.key {
            Some(key) => self.reads.wrote(key),
            None => self.reads.wrote_any(),
        }
    }
}

/// The leader's guard: dropped without [`Lead::finish`], the read is abandoned.
struct Lead<'a> {
    reads: &'a Reads,
    hash: u64,
    id: u64,
    ended: bool,
}

impl Lead<'_> {
    /// Takes the read out of the table: its followers' slot, if any.
    fn take(&mut self) -> Option<Arc<Slot>> {
        self.ended = true;
        let mut inflight = locked(&self.reads.shard(self.hash).reads);
        let i = inflight.reads.iter().position(|r| r.id == self.id)?;
        inflight.reads.swap_remove(i).slot
    }

    /// Hands the reply to the followers (a copy, only if there are any).
    fn finish(mut self, key: &str, result: &Result<Option<Vec<u8>>, Error>) {
        let Some(slot) = self.take() else {
            return;
        };
        let reply = match result {
            Ok(Some(bytes)) => Reply::Found(Arc::from(&bytes[..])),
            Ok(None) => Reply::Missing,
            Err(e) => Reply::Failed(copy_error(e)),
        };
        *locked(&slot.state) = State::Done(Box::from(key), reply);
        slot.done.notify_waiters();
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        if let Some(slot) = self.take() {
            *locked(&slot.state) = State::Abandoned;
            slot.done.notify_waiters();
        }
    }
}

/// Waits for the leader of `slot`'s read.
async fn wait(slot: &Slot) -> Waited {
    loop {
        let notified = slot.done.notified();
        tokio::pin!(notified);
        // Registered before the state is read: a `notify_waiters` after the read wakes us.
        notified.as_mut().enable();
        match &*locked(&slot.state) {
            State::Pending => {}
            State::Done(key, reply) => {
                let got = match reply {
                    Reply::Found(bytes) => Ok(Some(Arc::clone(bytes))),
                    Reply::Missing => Ok(None),
                    Reply::Failed(e) => Err(copy_error(e)),
                };
                return Waited::Reply(key.clone(), got);
            }
            State::Abandoned => return Waited::Abandoned,
        }
        notified.await;
    }
}

impl Store {
    /// `GET key` within `limit`, shared with the concurrent `GET`s of `key` through this store
    /// (see the module docs): the reply, and whether it was another caller's read (`true`: the
    /// caller followed and sent nothing).
    pub(crate) async fn get_coalesced(
        &self,
        key: &str,
        limit: Duration,
    ) -> (Result<Option<Vec<u8>>, Error>, bool) {
        // Read from the clock only by a follower (a cold read costs no clock read here): the
        // wait and any read after an abandoned one end here.
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            match self.reads.join(key) {
                Role::Lead(lead) => {
                    let left = match deadline {
                        None => limit,
                        Some(d) => d.saturating_duration_since(tokio::time::Instant::now()),
                    };
                    if left < Duration::from_millis(1) {
                        // As a spent budget: no round trip, nothing counted on the breaker.
                        drop(lead);
                        return (Err(Error::Timeout(limit)), false);
                    }
                    let result = self.get(key, left).await;
                    lead.finish(key, &result);
                    return (result, false);
                }
                Role::Follow(slot) => {
                    // A leader's read checks in `run_op`; the follower's timer needs it too.
                    if let Err(e) = crate::runtime::check() {
                        return (Err(e), true);
                    }
                    let deadline =
                        *deadline.get_or_insert_with(|| tokio::time::Instant::now() + limit);
                    match tokio::time::timeout_at(deadline, wait(&slot)).await {
                        // Our budget is spent before the reply: a timed-out read for this caller;
                        // the leader's read counts on the breaker if it fails.
                        Err(_) => return (Err(Error::Timeout(limit)), true),
                        Ok(Waited::Reply(theirs, reply)) if &*theirs == key => {
                            return (reply.map(|found| found.map(|b| b.to_vec())), true);
                        }
                        // Another key with the same hash: a read of our own.
                        Ok(Waited::Reply(..)) => {
                            let left =
                                deadline.saturating_duration_since(tokio::time::Instant::now());
                            if left < Duration::from_millis(1) {
                                return (Err(Error::Timeout(limit)), false);
                            }
                            return (self.get(key, left).await, false);
                        }
                        // The leader was cancelled: race to lead a new read.
                        Ok(Waited::Abandoned) => continue,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_get_the_leaders_reply_and_a_cold_read_allocates_no_slot() {
        let reads = Reads::default();
        let Role::Lead(lead) = reads.join("k") else {
            panic!("the first caller leads")
        };
        assert!(
            locked(&reads.shard(reads.hash("k")).reads).reads[0]
                .slot
                .is_none(),
            "no follower yet: no slot"
        );
        let Role::Follow(slot) = reads.join("k") else {
            panic!("the second caller follows")
        };
        let Role::Lead(other) = reads.join("other") else {
            panic!("another key has its own read")
        };
        assert_eq!(reads.len(), 2);
        lead.finish("k", &Ok(Some(b"v".to_vec())));
        assert!(matches!(
            wait(&slot).await,
            Waited::Reply(k, Ok(Some(b))) if &*k == "k" && &*b == b"v"
        ));
        other.finish("other", &Ok(None));
        assert_eq!(reads.len(), 0);
    }

    #[tokio::test]
    async fn a_dropped_leader_abandons_its_followers_who_lead_again() {
        let reads = Reads::default();
        let Role::Lead(lead) = reads.join("k") else {
            panic!("the first caller leads")
        };
        let Role::Follow(slot) = reads.join("k") else {
            panic!("the second caller follows")
        };
        drop(lead);
        assert!(matches!(wait(&slot).await, Waited::Abandoned));
        assert_eq!(reads.len(), 0);
        assert!(matches!(reads.join("k"), Role::Lead(_)), "a follower leads");
    }

    #[tokio::test]
    async fn a_write_of_the_key_closes_the_read_to_new_followers() {
        let reads = Reads::default();
        let Role::Lead(old) = reads.join("k") else {
            panic!("the first caller leads")
        };
        let Role::Follow(before) = reads.join("k") else {
            panic!("before the write: follows")
        };
        drop(Writing {
            reads: &reads,
            key: Some("k"),
        });
        let Role::Lead(new) = reads.join("k") else {
            panic!("after the write: a read of its own")
        };
        let Role::Follow(after) = reads.join("k") else {
            panic!("the new read takes followers")
        };
        old.finish("k", &Ok(Some(b"old".to_vec())));
        new.finish("k", &Ok(Some(b"new".to_vec())));
        assert!(matches!(wait(&before).await, Waited::Reply(_, Ok(Some(b))) if &*b == b"old"));
        assert!(matches!(wait(&after).await, Waited::Reply(_, Ok(Some(b))) if &*b == b"new"));

        let Role::Lead(lead) = reads.join("k") else {
            panic!("the first caller leads")
        };
        reads.wrote_any();
        assert!(
            matches!(reads.join("k"), Role::Lead(_)),
            "a write of unknown keys closes every read"
        );
        drop(lead);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_follower_waits_its_own_budget_and_counts_nothing_on_the_breaker() {
        // A server that accepts connections and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let accepting = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let config = crate::Config::builder()
            .url(format!("redis://{addr}"))
            .connect_timeout(Duration::from_secs(10))
            .breaker_threshold(1)
            .build()
            .expect("config");
        let store = Arc::new(Store::new(&config).expect("store"));
        let leader = tokio::spawn({
            let store = Arc::clone(&store);
            async move { store.get_coalesced("k", Duration::from_secs(10)).await }
        });
        while store.reads.len() == 0 {
            tokio::task::yield_now().await;
        }
        // A follower with less budget left than the leader: it stops waiting when its own
        // budget is spent, as a `GET` of its own would have.
        let (got, followed) = store.get_coalesced("k", Duration::from_millis(50)).await;
        assert!(followed, "joined the leader's read");
        assert!(matches!(got, Err(Error::Timeout(_))), "{got:?}");
        assert!(
            !leader.is_finished(),
            "the leader still waits for its reply"
        );
        assert!(
            !store.breaker.bypassing(),
            "one failure opens this breaker: the follower's timeout was not counted"
        );
        leader.abort();
        accepting.abort();
    }

    #[tokio::test]
    async fn errors_reach_followers_as_the_same_class() {
        let reads = Reads::default();
        let Role::Lead(lead) = reads.join("k") else {
            panic!("the first caller leads")
        };
        let Role::Follow(slot) = reads.join("k") else {
            panic!("the second caller follows")
        };
        lead.finish("k", &Err(Error::BreakerOpen));
        assert!(matches!(
            wait(&slot).await,
            Waited::Reply(_, Err(Error::BreakerOpen))
        ));
    }
}
