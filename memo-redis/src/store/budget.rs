//! One call's time for Redis.

use std::time::Duration;

use crate::error::Error;

/// What is left of one call's time for Redis: a cached call waits on Redis at most the operation
/// timeout *in total* — read, re-read, lock, write, tag bookkeeping and repair together — not per
/// operation. Created once when the call starts and passed down; time spent running the body or
/// waiting for another caller's body is not charged, only time spent waiting for Redis.
/// Background work the caller does not wait for (a spawned refresh, a lock released after a
/// cancellation) gets a budget of its own.
#[derive(Debug)]
pub(crate) struct Budget {
    total: Duration,
    left: Duration,
    /// The call's later reads must see writes other callers just made: on a cluster that reads
    /// from replicas they go to the master (see [`Budget::read_master`]).
    master: bool,
}

impl Budget {
    pub(crate) fn new(total: Duration) -> Budget {
        Budget {
            total,
            left: total,
            master: false,
        }
    }

    /// From now on this call reads from the master, not a replica: for the re-reads that look
    /// for a value another caller has just written (after a flight ended, while waiting on or
    /// after taking the cross-process lock). A replica may not have it yet (replication lag),
    /// and reading it there would run the body once more. No effect unless the cache reads from
    /// replicas.
    pub(crate) fn read_master(&mut self) {
        self.master = true;
    }

    /// Whether this call's reads go to the master (see [`Budget::read_master`]).
    pub(crate) fn reads_master(&self) -> bool {
        self.master
    }

    /// The time left, or `None` once it is too small to be worth a round trip.
    pub(crate) fn left(&self) -> Option<Duration> {
        (self.left >= Duration::from_millis(1)).then_some(self.left)
    }

    pub(crate) fn spend(&mut self, since: std::time::Instant) {
        self.spent(since.elapsed());
    }

    pub(crate) fn spent(&mut self, took: Duration) {
        self.left = self.left.saturating_sub(took);
    }

    /// Runs one Redis operation within what is left (its argument), charging the time it took.
    /// A spent budget fails at once with [`Error::Timeout`], without asking Redis (nor counting
    /// on the breaker).
    pub(crate) async fn run<T, Fut>(&mut self, op: impl FnOnce(Duration) -> Fut) -> Result<T, Error>
    where
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let Some(limit) = self.left() else {
            return Err(Error::Timeout(self.total));
        };
        let started = std::time::Instant::now();
        let result = op(limit).await;
        self.spend(started);
        result
    }
}
