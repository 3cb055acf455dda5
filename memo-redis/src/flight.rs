//! In-process single-flight: concurrent calls with the same key share one Redis read and, on a
//! miss, one run of the body.
//!
//! Shape after moka's `value_initializer`: the first caller of a key becomes the leader and holds
//! a [`Lead`] guard; the others wait on the flight's slot. The leader publishes the entry's encoded
//! bytes (each follower decodes its own copy, so results need no `Clone`; an uncached `None` is
//! shared as a `None` entry that is not stored), or says the result is not shareable (an `Err`, a
//! body that panicked): then every follower is released at once and runs its own body,
//! concurrently — a body that fails the same way each time must not be retried by one caller
//! after another. A leader whose future is dropped (cancelled) never publishes: its guard's `Drop`
//! removes the entry and marks the flight abandoned, and the followers race to become the next
//! leader (a cancellation says nothing about the body, so one run still serves them all). Entries
//! leave the table when their flight ends, so the table holds only keys being computed right now.

use std::future::Future;
use std::hash::BuildHasher;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;

use tokio::sync::Notify;

const SHARDS: usize = 16;
/// Counters bumped when a flight ends, by key hash: a caller that missed compares its stamp
/// before leading (see [`Flights::ended_since`]).
const STAMPS: usize = 1024;

/// What a flight ended with.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// Still running.
    Pending,
    /// An encoded entry (envelope bytes) every follower can decode.
    Shared(Arc<[u8]>),
    /// The result cannot be shared (`Err`, encoding failed, the body panicked): followers run
    /// the body themselves, all at once.
    NotShared,
    /// The leader's future was dropped (or unwound outside the body).
    Abandoned,
}

/// A follower's view of the flight it joined.
pub(crate) enum Wait {
    Shared(Arc<[u8]>),
    NotShared,
    /// The leader was cancelled: try to lead.
    Abandoned,
}

/// Awaits `body`, catching a panic in it (moka's `catch_unwind` around the loader), so that the
/// leader can release its followers and its cross-process lock before the panic goes on to its
/// caller (`std::panic::resume_unwind`).
pub(crate) async fn catching<F: Future>(body: F) -> std::thread::Result<F::Output> {
    let mut body = std::pin::pin!(body);
    std::future::poll_fn(move |cx| {
        // Unwind safety: after a panic nothing here touches the body's state again; the
        // caller only publishes an outcome and re-raises the panic.
        match std::panic::catch_unwind(AssertUnwindSafe(|| body.as_mut().poll(cx))) {
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    })
    .await
}

/// One flight: its outcome once known, and the followers' wake-up.
#[derive(Debug)]
pub(crate) struct Slot {
    outcome: Mutex<Outcome>,
    done: Notify,
}

/// The flights of one shard, by the key's hash under `Flights::pick` (the one hash of a key a
/// flight computes: it picks the shard and the stamp slot too).
type Table = hashbrown::HashTable<(Arc<str>, Arc<Slot>)>;

pub(crate) struct Flights {
    shards: [Mutex<Table>; SHARDS],
    /// Hashes keys: picks a key's shard, its stamp slot and its place in the shard's table.
    pick: foldhash::fast::RandomState,
    ended: Box<[AtomicU64]>,
}

impl Default for Flights {
    fn default() -> Self {
        Flights {
            shards: Default::default(),
            pick: foldhash::fast::RandomState::default(),
            ended: (0..STAMPS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// Which flights had ended for a key's stamp slot when a caller started its read.
#[derive(Clone, Copy)]
pub(crate) struct Stamp {
    slot: usize,
    seen: u64,
}

impl std::fmt::Debug for Flights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flights")
            .field("in_flight", &self.len())
            .finish()
    }
}

pub(crate) enum Role<'a> {
    Leader(Lead<'a>),
    Follower(Arc<Slot>),
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Flights {
    fn hash(&self, key: &str) -> u64 {
        self.pick.hash_one(key)
    }

    fn shard(&self, hash: u64) -> &Mutex<Table> {
        // Bits the shard's table does not use (it places entries by the low bits and tags them
        // with the top seven), so the keys of one shard spread over its whole table.
        &self.shards[((hash >> 32) as usize) % SHARDS]
    }

    fn stamp_slot(hash: u64) -> usize {
        ((hash >> 16) as usize) % STAMPS
    }

    /// Taken before a read that may miss.
    pub(crate) fn stamp(&self, key: &str) -> Stamp {
        let slot = Self::stamp_slot(self.hash(key));
        Stamp {
            slot,
            seen: self.ended[slot].load(Ordering::SeqCst),
        }
    }

    /// Whether a flight of the stamp's slot ended since the stamp was taken: its value may be
    /// in Redis now although our read (sent before it was written) missed it. False positives
    /// (another key of the same slot) cost one extra read.
    pub(crate) fn ended_since(&self, stamp: Stamp) -> bool {
        self.ended[stamp.slot].load(Ordering::SeqCst) != stamp.seen
    }

    /// Joins the flight for `key`, leading it if there is none.
    pub(crate) fn join<'a>(&'a self, key: &str) -> Role<'a> {
        // The key is hashed once; the leader's guard keeps the hash for leaving.
        let hash = self.hash(key);
        let mut table = locked(self.shard(hash));
        // Followers look up by `&str`: only a new flight allocates its key, once, shared by the
        // table and the leader's guard.
        if let Some((_, slot)) = table.find(hash, |(k, _)| **k == *key) {
            return Role::Follower(Arc::clone(slot));
        }
        let key: Arc<str> = Arc::from(key);
        let slot = Arc::new(Slot {
            outcome: Mutex::new(Outcome::Pending),
            done: Notify::new(),
        });
        let pick = &self.pick;
        table.insert_unique(hash, (Arc::clone(&key), Arc::clone(&slot)), |(k, _)| {
            pick.hash_one(&**k)
        });
        Role::Leader(Lead {
            flights: self,
            key,
            hash,
            slot,
            ended: false,
        })
    }

    /// Keys currently in flight.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| locked(s).len()).sum()
    }

    fn remove(&self, key: &str, hash: u64) {
        if let Ok(entry) = locked(self.shard(hash)).find_entry(hash, |(k, _)| **k == *key) {
            entry.remove();
        }
    }
}

/// The leader's guard. Dropping it without [`Lead::finish`] abandons the flight.
pub(crate) struct Lead<'a> {
    flights: &'a Flights,
    key: Arc<str>,
    /// `key`'s hash under `Flights::pick`.
    hash: u64,
    slot: Arc<Slot>,
    ended: bool,
}

impl Lead<'_> {
    /// Publishes the outcome and ends the flight.
    pub(crate) fn finish(self, outcome: Outcome) {
        self.finish_with(|| outcome);
    }

    /// Ends the flight, building the outcome only if someone is waiting for it (most flights
    /// have no follower: a hit then costs no copy of the entry and no wake-up).
    pub(crate) fn finish_with(mut self, outcome: impl FnOnce() -> Outcome) {
        self.end(outcome);
    }

    fn end(&mut self, outcome: impl FnOnce() -> Outcome) {
        self.ended = true;
        // Stamp before leaving the table: a caller that does not find this flight any more
        // sees the stamp moved and reads again instead of computing.
        let slot = Flights::stamp_slot(self.hash);
        self.flights.ended[slot].fetch_add(1, Ordering::SeqCst);
        // Remove first, so callers arriving now start a new flight (and read Redis) instead of
        // joining one that is over. Followers only get the slot under the shard lock, so once it
        // is out of the table the count of other holders can only fall.
        self.flights.remove(&self.key, self.hash);
        if Arc::strong_count(&self.slot) > 1 {
            *locked(&self.slot.outcome) = outcome();
            self.slot.done.notify_waiters();
        }
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.end(|| Outcome::Abandoned);
        }
    }
}

/// Waits for the leader of the flight `slot` belongs to.
pub(crate) async fn wait(slot: Arc<Slot>) -> Wait {
    loop {
        let notified = slot.done.notified();
        tokio::pin!(notified);
        // Registered before the outcome is read: a `notify_waiters` after the read wakes us.
        notified.as_mut().enable();
        match &*locked(&slot.outcome) {
            Outcome::Pending => {}
            Outcome::Shared(bytes) => return Wait::Shared(Arc::clone(bytes)),
            Outcome::NotShared => return Wait::NotShared,
            Outcome::Abandoned => return Wait::Abandoned,
        }
        notified.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn leader_follower_and_abandon() {
        let f = Flights::default();
        let Role::Leader(lead) = f.join("k") else {
            panic!("first caller leads")
        };
        let Role::Follower(rx) = f.join("k") else {
            panic!("second caller follows")
        };
        assert_eq!(f.len(), 1);
        drop(lead);
        assert_eq!(f.len(), 0, "abandoned flight leaves the table");
        assert!(matches!(wait(rx).await, Wait::Abandoned));

        let Role::Leader(lead) = f.join("k") else {
            panic!("a follower takes over")
        };
        let Role::Follower(rx) = f.join("k") else {
            panic!()
        };
        lead.finish(Outcome::Shared(Arc::from(&b"x"[..])));
        assert!(matches!(wait(rx).await, Wait::Shared(b) if &*b == b"x"));
        assert_eq!(f.len(), 0);
    }

    #[tokio::test]
    async fn a_flight_ending_moves_the_stamp_of_its_key_only() {
        let f = Flights::default();
        // A key in another stamp slot than "a" (there are 1024 slots).
        let other = (0..100)
            .map(|i| format!("b{i}"))
            .find(|k| Flights::stamp_slot(f.hash(k)) != Flights::stamp_slot(f.hash("a")))
            .expect("keys spread over the stamp slots");
        let (a, b) = (f.stamp("a"), f.stamp(&other));
        assert!(!f.ended_since(a), "nothing ended yet");
        let Role::Leader(lead) = f.join("a") else {
            panic!("first caller leads")
        };
        assert!(!f.ended_since(a), "a flight running has not ended");
        lead.finish(Outcome::NotShared);
        assert!(
            f.ended_since(a),
            "the flight of \"a\" ended since the stamp"
        );
        assert!(!f.ended_since(b), "no flight of {other:?}'s slot ended");
        assert!(!f.ended_since(f.stamp("a")), "a fresh stamp has seen it");
    }

    #[tokio::test]
    async fn the_outcome_is_built_only_when_a_follower_waits() {
        let f = Flights::default();
        let Role::Leader(lead) = f.join("k") else {
            panic!("first caller leads")
        };
        let mut built = false;
        lead.finish_with(|| {
            built = true;
            Outcome::NotShared
        });
        assert!(!built, "no follower: no outcome built");

        let Role::Leader(lead) = f.join("k") else {
            panic!("the flight ended: a new one")
        };
        let Role::Follower(rx) = f.join("k") else {
            panic!("second caller follows")
        };
        lead.finish_with(|| {
            built = true;
            Outcome::Shared(Arc::from(&b"y"[..]))
        });
        assert!(built, "a follower waits: outcome built");
        assert!(matches!(wait(rx).await, Wait::Shared(b) if &*b == b"y"));
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn debug_shows_the_flights_in_progress() {
        let f = Flights::default();
        let _lead = f.join("k");
        assert_eq!(format!("{f:?}"), "Flights { in_flight: 1 }");
    }
}
