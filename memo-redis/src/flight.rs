//! In-process single-flight: concurrent calls with the same key share one Redis read and, on a
//! miss, one run of the body.
//!
//! Shape after moka's `value_initializer`: the first caller of a key becomes the leader and holds
//! a [`Lead`] guard; the others follow a `watch` channel. The leader publishes the entry's encoded
//! bytes (each follower decodes its own copy, so results need no `Clone`), or says the result is
//! not shareable (an `Err`, an uncached `None`). A leader that panics or whose future is dropped
//! never publishes: its guard's `Drop` removes the entry and closes the channel, and the followers
//! race to become the next leader. Entries leave the table when their flight ends, so the table
//! holds only keys being computed right now.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

const SHARDS: usize = 16;

/// What a flight ended with.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// Still running.
    Pending,
    /// An encoded entry (envelope bytes) every follower can decode.
    Shared(Arc<[u8]>),
    /// The result cannot be shared (`Err`, uncached `None`, encoding failed): followers run the
    /// body themselves.
    NotShared,
}

/// A follower's view of the flight it joined.
pub(crate) enum Wait {
    Shared(Arc<[u8]>),
    NotShared,
    /// The leader panicked or was cancelled: try to lead.
    Abandoned,
}

#[derive(Default)]
pub(crate) struct Flights {
    shards: [Mutex<HashMap<Arc<str>, watch::Receiver<Outcome>>>; SHARDS],
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
    Follower(watch::Receiver<Outcome>),
}

impl Flights {
    fn shard(&self, key: &str) -> &Mutex<HashMap<Arc<str>, watch::Receiver<Outcome>>> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    /// Joins the flight for `key`, leading it if there is none.
    pub(crate) fn join<'a>(&'a self, key: &str) -> Role<'a> {
        let mut map = match self.shard(key).lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Followers look up by `&str`: only a new flight allocates its key, once, shared by the
        // table and the leader's guard.
        if let Some(rx) = map.get(key) {
            return Role::Follower(rx.clone());
        }
        let key: Arc<str> = Arc::from(key);
        let (tx, rx) = watch::channel(Outcome::Pending);
        map.insert(Arc::clone(&key), rx);
        Role::Leader(Lead {
            flights: self,
            key,
            tx: Some(tx),
        })
    }

    /// Keys currently in flight.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|m| m.len()).unwrap_or(0))
            .sum()
    }

    fn remove(&self, key: &str) {
        let mut map = match self.shard(key).lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.remove(key);
    }
}

/// The leader's guard. Dropping it without [`Lead::finish`] abandons the flight.
pub(crate) struct Lead<'a> {
    flights: &'a Flights,
    key: Arc<str>,
    tx: Option<watch::Sender<Outcome>>,
}

impl Lead<'_> {
    /// Publishes the outcome and ends the flight.
    pub(crate) fn finish(mut self, outcome: Outcome) {
        // Remove first, so callers arriving now start a new flight (and read Redis) instead of
        // joining one that is over.
        self.flights.remove(&self.key);
        if let Some(tx) = self.tx.take() {
            tx.send_replace(outcome);
        }
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        if self.tx.is_some() {
            self.flights.remove(&self.key);
            // Dropping the sender closes the channel: followers see `Abandoned`.
            self.tx.take();
        }
    }
}

/// Waits for the leader of the flight `rx` belongs to.
pub(crate) async fn wait(mut rx: watch::Receiver<Outcome>) -> Wait {
    match rx.wait_for(|o| !matches!(o, Outcome::Pending)).await {
        Ok(o) => match &*o {
            Outcome::Shared(bytes) => Wait::Shared(Arc::clone(bytes)),
            Outcome::NotShared | Outcome::Pending => Wait::NotShared,
        },
        Err(_) => Wait::Abandoned,
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
}
