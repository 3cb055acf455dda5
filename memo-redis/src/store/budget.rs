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
}

impl Budget {
    pub(crate) fn new(total: Duration) -> Budget {
        Budget { total, left: total }
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
