//! The cross-process stampede lock: on a miss, one process computes a key while the others
//! wait for its value (`lock_timeout`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cache::Inner;
use crate::shape::Shape;
use crate::store::Budget;

use super::entry::decode;
use super::{Rules, Target};

/// What taking the lock came to.
pub(crate) enum Locked<R> {
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
pub(crate) struct LockGuard {
    inner: Arc<Inner>,
    key: String,
    token: String,
}

impl LockGuard {
    /// Releases the lock within what is left of the call's budget; with nothing left (or when
    /// that fails), in the background with a budget of its own.
    pub(crate) async fn release(mut self, budget: &mut Budget) {
        if budget.left().is_some() {
            let (inner, key, token) = (&self.inner, &self.key, &self.token);
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
        let inner = Arc::clone(&self.inner);
        let (key, token) = (
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.token),
        );
        self.inner.spawn(async move {
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
///
/// Only the decoding is generic: the lock's Redis work is [`Taking::step`], compiled once for
/// every value type.
pub(crate) async fn cross_process<S: Shape<R>, R, Ru: Rules + ?Sized>(
    rules: &Ru,
    target: Target<'_>,
    lease: Duration,
    budget: &mut Budget,
) -> Locked<R> {
    let max = target.inner.config.max_value_bytes;
    let mut taking = Taking::new(target, lease);
    loop {
        let (bytes, from) =
            match crate::outline::Outlined::new(taking.step(rules.label(), target, budget)).await {
                Step::Acquired(lock) => return Locked::Acquired(lock),
                Step::GaveUp(lock) => return Locked::GaveUp(lock),
                Step::Found(bytes, from) => (bytes, from),
            };
        match (decode::<S, R>(&bytes, max), from) {
            (Ok((r, _)), Found::Rechecked(lock)) => {
                lock.release(budget).await;
                return Locked::Value(r, bytes);
            }
            (Ok((r, _)), _) => return Locked::Value(r, bytes),
            (Err(_), Found::Polled) => return Locked::GaveUp(None),
            // Held by someone else: wait for its value.
            (Err(_), Found::Peeked) => {}
            (Err(_), Found::Rechecked(lock)) => return Locked::Acquired(lock),
        }
    }
}

/// One pass of taking the lock, up to its outcome or an entry to decode.
enum Step {
    Acquired(LockGuard),
    GaveUp(Option<LockGuard>),
    /// An entry was read; whether it decodes decides (see [`Found`]).
    Found(Vec<u8>, Found),
}

/// Where an entry found while taking the lock was read.
enum Found {
    /// Polled while another process held the lock: not decoding, we compute.
    Polled,
    /// Read with a `SET NX` that failed (someone else holds the lock): not decoding, we wait.
    Peeked,
    /// Read after taking the lock (see [`Taking::step`]): decoding, the lock is
    /// released and the value served; not decoding, we compute under the lock.
    Rechecked(LockGuard),
}

/// The state of one call's taking of the lock, across [`Taking::step`]s.
struct Taking {
    lock_key: String,
    token: String,
    lease: Duration,
    deadline: Instant,
    pause: Duration,
    /// The first pass tries the lock at once; later passes wait, read, and try again only when
    /// the value is still missing: the holder may have given up (an `Err` result is not
    /// stored), so take over as soon as the lock is free instead of waiting out the whole lease.
    first: bool,
}

impl Taking {
    fn new(target: Target<'_>, lease: Duration) -> Taking {
        Taking {
            lock_key: format!("{}:lock", target.key),
            token: format!("{:032x}", fastrand::u128(..)),
            lease,
            deadline: Instant::now() + lease,
            pause: Duration::from_millis(2),
            first: true,
        }
    }

    fn guard(&mut self, inner: &Arc<Inner>) -> LockGuard {
        LockGuard {
            inner: Arc::clone(inner),
            key: std::mem::take(&mut self.lock_key),
            token: std::mem::take(&mut self.token),
        }
    }

    /// The polls and the re-read after taking the lock read the master (`get_master`): the
    /// holder wrote the value there a moment ago, and a lagging replica would make us run the
    /// body once more.
    ///
    /// Holding the lock, our miss may be older than it: the previous holder can have stored
    /// the value and released the lock between our read and our `SET NX`. Holders store before
    /// they release, so one more read after taking the lock (pipelined behind the `SET NX` on a
    /// single node) sees such a value ([`Found::Rechecked`]); then the body does not run again.
    async fn step(&mut self, label: &str, target: Target<'_>, budget: &mut Budget) -> Step {
        let inner = target.inner;
        loop {
            if !self.first {
                let now = Instant::now();
                if now >= self.deadline {
                    tracing::debug!(function = label, "waited a whole lock lease; computing");
                    return Step::GaveUp(None);
                }
                tokio::time::sleep(self.pause.min(self.deadline - now)).await;
                self.pause = (self.pause * 2).min(Duration::from_millis(50));
                match budget
                    .run(|limit| inner.store.get_master(target.key, limit))
                    .await
                {
                    Ok(Some(bytes)) => return Step::Found(bytes, Found::Polled),
                    Ok(None) => {}
                    Err(_) => return Step::GaveUp(None),
                }
            }
            self.first = false;
            if budget.left().is_none() {
                return Step::GaveUp(None);
            }
            if !inner.store.is_cluster() {
                // One round trip: the lock and the re-check of the entry pipelined.
                let locked = budget
                    .run(|limit| {
                        inner.store.try_lock_get(
                            &self.lock_key,
                            &self.token,
                            self.lease,
                            target.key,
                            limit,
                        )
                    })
                    .await;
                match locked {
                    Ok((true, seen)) => return self.held(inner, seen),
                    // Someone else holds the lock, and a value is there already (stored since
                    // our read): no need to wait for a poll.
                    Ok((false, Some(bytes))) => return Step::Found(bytes, Found::Peeked),
                    Ok((false, None)) => {}
                    Err(_) => return Step::GaveUp(Some(self.guard(inner))),
                }
                continue;
            }
            let locked = budget
                .run(|limit| {
                    inner
                        .store
                        .try_lock(&self.lock_key, &self.token, self.lease, limit)
                })
                .await;
            match locked {
                Ok(true) => {
                    let seen = budget
                        .run(|limit| inner.store.get_master(target.key, limit))
                        .await
                        .ok()
                        .flatten();
                    return self.held(inner, seen);
                }
                Ok(false) => {}
                Err(_) => return Step::GaveUp(Some(self.guard(inner))),
            }
        }
    }

    /// We hold the lock; `seen` is the entry read after taking it.
    fn held(&mut self, inner: &Arc<Inner>, seen: Option<Vec<u8>>) -> Step {
        let lock = self.guard(inner);
        match seen {
            Some(bytes) => Step::Found(bytes, Found::Rechecked(lock)),
            None => Step::Acquired(lock),
        }
    }
}
